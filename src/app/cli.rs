//! The operator's interface (PROTOCOL.md §11): one binary, `cafe24-komoju`, with the
//! subcommands `serve`, `migrate`, `merchant add|list|enable|disable|limit` (in
//! [`super::merchant_cli`]), `notifications list|retry`, `orders show|list`, `operator
//! token`, `sign` and `script-integrity`.
//! Commands other than `serve` write their result to the given writer, so tests can run
//! them in-process.

pub use super::error::CliError;
use std::io::Write;

use clap::{Parser, Subcommand, ValueEnum};
use secrecy::ExposeSecret;

pub use super::merchant_cli::MerchantCommand;
use crate::app::settings::Settings;
use crate::app::startup::Application;
use crate::cafe24::hash_data;
use crate::clock::Clock;
use crate::db::notifications::NotificationState;
use crate::db::{self, Database};
use crate::orders::state::OrderState;
use crate::secrets::SecretBox;

/// Command line of `cafe24-komoju`.
#[derive(Debug, Parser)]
#[command(
    name = "cafe24-komoju",
    version,
    about = "Cafe24 PG app for KOMOJU payments"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pending migrations, then serve HTTP.
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Register and list merchants (Cafe24 malls).
    #[command(subcommand)]
    Merchant(MerchantCommand),
    /// See and replay notifications to Cafe24 (the outbox).
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Look orders up: one order's facts, timeline, notifications and refunds, or a list.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// The operator API's bearer tokens.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Fill the database with a realistic period of made-up traffic for benchmarks and
    /// query plans (new malls, shops, orders in every state, their events, webhook
    /// events, notifications and refunds; docs/benchmarks.md, "Seeding"). Never for a
    /// production database.
    Seed {
        /// Orders to write.
        #[arg(long, default_value_t = 100_000)]
        orders: u64,
        /// Malls to create (each with 1–3 shops).
        #[arg(long, default_value_t = 50)]
        malls: u32,
        /// Spread the orders over this many days before now.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Print the Scripttag `integrity` value (sha384-…) of the external-checkout loader
    /// served at PUBLIC_BASE_URL/api/external-checkout/script.
    ScriptIntegrity,
    /// Print the Cafe24 hash_data of the values (concatenated in order), keyed with CAFE24_SERVICE_KEY.
    Sign {
        /// The values, e.g. AMOUNT CURRENCY ORDER_ID PARTNER_ID for a payment request.
        #[arg(required = true)]
        values: Vec<String>,
    },
}

/// `notifications …`.
#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// List notifications, newest first.
    List {
        /// Only this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Make a pending or dead notification due now, with a fresh retry schedule.
    Retry {
        /// The notification id (first column of `list`).
        id: i64,
    },
}

/// `orders …`.
#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// One order: its facts, its timeline (every event seen: source, event, from -> to,
    /// applied or why not), its notifications and its refunds.
    Show {
        /// The Cafe24 mall id.
        mall_id: String,
        /// Cafe24's order_id.
        order_id: String,
    },
    /// Orders newest first.
    List {
        /// Only this mall.
        #[arg(long)]
        mall: Option<String>,
        /// Only this state.
        #[arg(long, value_enum)]
        state: Option<OrderStateArg>,
        /// Only orders created at or after this time: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC).
        #[arg(long, value_parser = crate::operator::parse_since)]
        since: Option<chrono::NaiveDateTime>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// `operator …`.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Print a bearer token for /operator/api/v1/ (HS256, audience cafe24-komoju/operator).
    Token {
        /// How long it is valid: a number with s, m, h or d (e.g. 1h, 30m).
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: i64,
    },
}

/// `--ttl`: `N` followed by `s`, `m`, `h` or `d`; at most 30 days.
fn parse_ttl(s: &str) -> Result<i64, String> {
    let (number, unit) = s.split_at(s.len().saturating_sub(1));
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?} is not N followed by s, m, h or d")),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not N followed by s, m, h or d"))?;
    match n.checked_mul(scale) {
        Some(secs) if secs > 0 && secs <= 30 * 86_400 => Ok(secs),
        _ => Err(format!("{s:?}: a lifetime from 1 s to 30 days")),
    }
}

/// `orders list --state`: the §5 states by their stored names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderStateArg(pub OrderState);

const ORDER_STATE_ARGS: [OrderStateArg; 10] = {
    let all = OrderState::ALL;
    [
        OrderStateArg(all[0]),
        OrderStateArg(all[1]),
        OrderStateArg(all[2]),
        OrderStateArg(all[3]),
        OrderStateArg(all[4]),
        OrderStateArg(all[5]),
        OrderStateArg(all[6]),
        OrderStateArg(all[7]),
        OrderStateArg(all[8]),
        OrderStateArg(all[9]),
    ]
};

impl ValueEnum for OrderStateArg {
    fn value_variants<'a>() -> &'a [Self] {
        &ORDER_STATE_ARGS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.as_str()))
    }
}

/// `notifications list --state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Pending,
    Delivered,
    Dead,
}

impl From<StateArg> for NotificationState {
    fn from(s: StateArg) -> NotificationState {
        match s {
            StateArg::Pending => NotificationState::Pending,
            StateArg::Delivered => NotificationState::Delivered,
            StateArg::Dead => NotificationState::Dead,
        }
    }
}

/// Runs a command. `serve` blocks until the server stops. Errors: [`CliError`] (a usage
/// error names the flag; no secret is printed but masked).
pub async fn run(cli: Cli, settings: Settings, out: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings, Clock::system()).await?;
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::Migrate => migrate(&settings, out),
        Command::Sign { values } => {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let key = settings.cafe24_service_key.expose_secret().as_bytes();
            writeln!(out, "{}", hash_data::sign(key, &refs))?;
            Ok(())
        }
        Command::ScriptIntegrity => {
            let base = settings.public_base_url.as_str().trim_end_matches('/');
            let script = crate::external_checkout::loader_script(base);
            writeln!(out, "{}", crate::external_checkout::integrity(&script))?;
            Ok(())
        }
        Command::Merchant(cmd) => {
            let mut conn = connect(&settings)?;
            let secrets = SecretBox::new(&settings.app_secret);
            let now = Clock::system().now_naive();
            super::merchant_cli::run(cmd, &mut conn, &secrets, now, out)
        }
        Command::Notifications(cmd) => notifications(cmd, &settings, out),
        Command::Operator(OperatorCommand::Token { ttl }) => {
            let keys = crate::keys::operator::OperatorKeys::new(&settings.app_secret);
            let token = keys
                .issue(Clock::system().unix_seconds(), ttl)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            writeln!(out, "{token}")?;
            Ok(())
        }
        Command::Orders(cmd) => orders(cmd, &settings, out),
        Command::Seed {
            orders,
            malls,
            days,
        } => seed(&settings, orders, malls, days, out),
    }
}

/// `seed`: writes the rows and says how many of each, and how long it took.
fn seed(
    settings: &Settings,
    orders: u64,
    malls: u32,
    days: u32,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut conn = connect(settings)?;
    let clock = Clock::system();
    let plan = db::seed::SeedPlan {
        orders,
        malls,
        days,
        now: clock.now_naive(),
        seed: clock.unix_seconds().unsigned_abs(),
        retry_schedule: &crate::notifications::SCHEDULE,
    };
    let started = std::time::Instant::now();
    let n = db::seed::seed(&mut conn, &plan)?;
    writeln!(
        out,
        "seeded in {:.1} s: {} merchants, {} shops, {} orders, {} order events, \
         {} webhook events, {} notifications, {} refunds",
        started.elapsed().as_secs_f64(),
        n.merchants,
        n.shops,
        n.orders,
        n.order_events,
        n.webhook_events,
        n.notifications,
        n.refunds
    )?;
    Ok(())
}

/// `migrate`: applies the pending migrations and lists them.
fn migrate(settings: &Settings, out: &mut dyn Write) -> Result<(), CliError> {
    let db = Database::connect_sized(&settings.database_url, settings.database_pool_size)?;
    let applied = db.run_migrations()?;
    writeln!(
        out,
        "{} migration(s) applied on {}",
        applied.len(),
        db.backend_name()
    )?;
    for m in applied {
        writeln!(out, "  {m}")?;
    }
    Ok(())
}

/// `orders show|list` ([`crate::app::inspect`]).
fn orders(cmd: OrdersCommand, settings: &Settings, out: &mut dyn Write) -> Result<(), CliError> {
    let mut conn = connect(settings)?;
    match cmd {
        OrdersCommand::Show { mall_id, order_id } => {
            let secrets = SecretBox::new(&settings.app_secret);
            crate::app::inspect::show(&mut conn, &secrets, &mall_id, &order_id, out)
        }
        OrdersCommand::List {
            mall,
            state,
            since,
            limit,
        } => crate::app::inspect::list(
            &mut conn,
            mall.as_deref(),
            state.map(|s| s.0),
            since,
            limit,
            out,
        ),
    }
}

/// The database of `settings`, migrated, and one connection to it.
fn connect(settings: &Settings) -> Result<r2d2::PooledConnection<db::ConnectionManager>, CliError> {
    let db = Database::connect_sized(&settings.database_url, settings.database_pool_size)?;
    db.run_migrations()?;
    Ok(db.get()?)
}

fn notifications(
    cmd: NotificationsCommand,
    settings: &Settings,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut conn = connect(settings)?;
    match cmd {
        NotificationsCommand::List { state, limit } => {
            let rows =
                db::notifications::list(&mut conn, state.map(Into::into), limit.clamp(1, 10_000))?;
            if rows.is_empty() {
                writeln!(out, "no notifications")?;
            }
            for n in rows {
                let order = db::orders::find(&mut conn, &n.order_pk)?;
                let (mall, order_id) = order.map(|o| (o.mall_id, o.order_id)).unwrap_or_default();
                writeln!(
                    out,
                    "{} {} {} mall={} order={} attempts={} next={} status={} error={} target={}",
                    n.id,
                    n.state,
                    n.kind,
                    mall,
                    order_id,
                    n.attempts,
                    n.next_attempt_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    n.last_status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    n.last_error.as_deref().unwrap_or("-"),
                    n.target_url,
                )?;
            }
            Ok(())
        }
        NotificationsCommand::Retry { id } => {
            let now = Clock::system().now_naive();
            if db::notifications::retry(&mut conn, id, now)? {
                writeln!(out, "notification {id} is due now (fresh schedule)")?;
                Ok(())
            } else {
                Err(CliError::Usage(format!(
                    "notification {id} does not exist or was already delivered"
                )))
            }
        }
    }
}
