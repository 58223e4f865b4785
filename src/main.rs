//! `cafe24-komoju`: reads `.env` and the environment, sets up logging, runs a command.

use clap::Parser;

use cafe24_komoju::app::cli::{self, Cli, Command};
use cafe24_komoju::app::settings::Settings;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let dotenv = dotenvy::dotenv();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            log::error!("refusing to start: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::Serve) {
        if settings.is_development() {
            log::warn!(
                "DEVELOPMENT mode (APP_ENV=development): {}; database {}{}",
                if settings.dev_defaults.is_empty() {
                    "no development defaults in use".to_owned()
                } else {
                    format!(
                        "development defaults in use for {}",
                        settings.dev_defaults.join(", ")
                    )
                },
                cafe24_komoju::db::Backend::from_url(&settings.database_url).name(),
                if dotenv.is_ok() { ", .env loaded" } else { "" }
            );
        } else {
            log::info!(
                "production mode; database {}",
                cafe24_komoju::db::Backend::from_url(&settings.database_url).name()
            );
        }
    }
    let mut stdout = std::io::stdout();
    match cli::run(cli, settings, &mut stdout).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
