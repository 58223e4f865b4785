//! The operator's interface (PROTOCOL.md §11): one binary, `cafe24-komoju`, with the
//! subcommands `serve`, `migrate`, `merchant add|list|enable|disable`,
//! `notifications list|retry` and `sign`.
//! Commands other than `serve` write their result to the given writer, so tests can run
//! them in-process.

pub use super::error::CliError;
use std::io::Write;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use crate::app::settings::Settings;
use crate::app::startup::Application;
use crate::cafe24::hash_data;
use crate::clock::Clock;
use crate::db::notifications::NotificationState;
use crate::db::{self, Database};
use crate::merchant::{CancelMode, Locale, MerchantInput, NotifyEncoding};
use crate::orders::state::OrderState;
use crate::secrets::{mask, SecretBox};

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

/// `merchant …`.
#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Register or update a merchant and enable one of its shops (repeat for more shops).
    Add(Box<AddMerchant>),
    /// List merchants and shops, secrets masked.
    List,
    /// Enable a mall, or one shop with --shop-no.
    Enable(Target),
    /// Disable a mall, or one shop with --shop-no.
    Disable(Target),
    /// External checkout: the largest amount a reservation Cafe24 could not confirm may
    /// carry in this shop (its currency's decimal format), or `off` for no ceiling.
    Limit(LimitArgs),
}

/// `merchant limit --mall-id M --shop-no N --external-max AMOUNT|off`.
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    #[arg(long)]
    pub mall_id: String,
    #[arg(long)]
    pub shop_no: i32,
    /// An amount in the shop's currency (`50000`, `300.00`), or `off`.
    #[arg(long)]
    pub external_max: String,
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

/// Which mall or shop.
#[derive(Debug, Args)]
pub struct Target {
    #[arg(long)]
    pub mall_id: String,
    #[arg(long)]
    pub shop_no: Option<i32>,
}

/// `merchant add`. The secrets may come from the environment instead of the command
/// line (which shells keep in their history).
#[derive(Debug, Args)]
pub struct AddMerchant {
    #[arg(long)]
    pub mall_id: String,
    #[arg(long)]
    pub shop_no: i32,
    /// KOMOJU secret key (sk_…).
    #[arg(long, env = "MERCHANT_KOMOJU_SECRET_KEY", hide_env_values = true)]
    pub komoju_secret_key: String,
    /// KOMOJU webhook secret token.
    #[arg(long, env = "MERCHANT_KOMOJU_WEBHOOK_SECRET", hide_env_values = true)]
    pub komoju_webhook_secret: String,
    /// The third part of partner_id (mall_id:shop_no:public_ref).
    #[arg(long, default_value = "komoju")]
    pub public_ref: String,
    #[arg(long, value_delimiter = ',', default_value = "credit_card,konbini")]
    pub payment_types: Vec<String>,
    /// The KOMOJU hosted page's default language.
    #[arg(long, value_enum, default_value_t = LocaleArg::Ja)]
    pub locale: LocaleArg,
    /// How Cafe24 cancels: synchronous (§6.4) or asynchronous (§6.5).
    #[arg(long, value_enum, default_value_t = CancelModeArg::Sync)]
    pub cancel_mode: CancelModeArg,
    /// An extra callback host for this merchant (exact host, or .suffix); repeatable.
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,
    /// A paymethod override TYPE=CODE (e.g. paypay=etc); repeatable.
    #[arg(long = "paymethod")]
    pub paymethod_codes: Vec<String>,
    /// How notifications to Cafe24 are encoded.
    #[arg(long, value_enum, default_value_t = EncodingArg::Form)]
    pub notify_encoding: EncodingArg,
    /// The shop's name, shown by the external-checkout button.
    #[arg(long, default_value = "")]
    pub shop_name: String,
    /// The shop's currency (ISO code), for the external-checkout button.
    #[arg(long, default_value = "JPY")]
    pub currency: String,
    /// External checkout: show a review page before KOMOJU.
    #[arg(long, value_enum, default_value_t = OnOff::Off)]
    pub review_page: OnOff,
    /// Refund a duplicate payment (a second capture for an order already paid) in full
    /// automatically.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub refund_duplicates: OnOff,
}

/// `--locale`: the KOMOJU hosted page's languages (§7 `default_locale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LocaleArg {
    Ja,
    En,
    Ko,
}

/// `--cancel-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CancelModeArg {
    Sync,
    Async,
}

/// `--notify-encoding` (§9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncodingArg {
    Form,
    Json,
}

/// A switch: `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
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
        Command::Merchant(cmd) => merchant(cmd, &settings, out),
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
    }
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

/// `merchant add|list|enable|disable|limit`.
fn merchant(
    cmd: MerchantCommand,
    settings: &Settings,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut conn = connect(settings)?;
    let secrets = SecretBox::new(&settings.app_secret);
    let now = Clock::system().now_naive();
    match cmd {
        MerchantCommand::Add(a) => add_merchant(&mut conn, &secrets, a.into_input(), now, out),
        MerchantCommand::List => list_merchants(&mut conn, &secrets, out),
        MerchantCommand::Enable(t) | MerchantCommand::Disable(t) if t.mall_id.is_empty() => {
            Err(CliError::Usage("--mall-id is required".into()))
        }
        MerchantCommand::Enable(t) => set_enabled(&mut conn, t, true, now, out),
        MerchantCommand::Disable(t) => set_enabled(&mut conn, t, false, now, out),
        MerchantCommand::Limit(l) => set_limit(&mut conn, l, now, out),
    }
}

impl AddMerchant {
    /// The input to validate: the flags as given, lists trimmed, hosts lower-cased,
    /// the currency upper-cased.
    fn into_input(self) -> MerchantInput {
        MerchantInput {
            mall_id: self.mall_id,
            shop_no: self.shop_no,
            public_ref: self.public_ref,
            komoju_secret_key: SecretString::from(self.komoju_secret_key),
            komoju_webhook_secret: SecretString::from(self.komoju_webhook_secret),
            payment_types: self
                .payment_types
                .into_iter()
                .map(|t| t.trim().to_owned())
                .collect(),
            locale: match self.locale {
                LocaleArg::Ja => Locale::Ja,
                LocaleArg::En => Locale::En,
                LocaleArg::Ko => Locale::Ko,
            },
            cancel_mode: match self.cancel_mode {
                CancelModeArg::Sync => CancelMode::Sync,
                CancelModeArg::Async => CancelMode::Async,
            },
            allowed_hosts: self
                .allowed_hosts
                .into_iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            paymethod_codes: self.paymethod_codes,
            notify_encoding: match self.notify_encoding {
                EncodingArg::Form => NotifyEncoding::Form,
                EncodingArg::Json => NotifyEncoding::Json,
            },
            shop_name: self.shop_name,
            currency: self.currency.to_ascii_uppercase(),
            external_review: self.review_page == OnOff::On,
            refund_duplicates: self.refund_duplicates == OnOff::On,
        }
    }
}

/// `merchant add`: validates ([`MerchantInput::validate`]), seals and stores the
/// merchant with the shop enabled; prints the key masked.
fn add_merchant(
    conn: &mut db::DbConnection,
    secrets: &SecretBox,
    input: MerchantInput,
    now: chrono::NaiveDateTime,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    input.validate().map_err(CliError::Usage)?;
    let row = input
        .to_row(secrets, now)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    db::merchants::upsert_with_shop(conn, &row, &input.to_shop_row(now))?;
    writeln!(
        out,
        "merchant {} saved; shop {} enabled; partner_id {}:{}:{}; KOMOJU key {}",
        input.mall_id,
        input.shop_no,
        input.mall_id,
        input.shop_no,
        input.public_ref,
        mask(input.komoju_secret_key.expose_secret())
    )?;
    Ok(())
}

/// `merchant list`: each merchant and its shops, secrets masked.
fn list_merchants(
    conn: &mut db::DbConnection,
    secrets: &SecretBox,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let all = db::merchants::list(conn)?;
    if all.is_empty() {
        writeln!(out, "no merchants")?;
    }
    for (m, shops) in all {
        let shown = |column: &str, sealed: &str| match secrets.open(&m.mall_id, column, sealed) {
            Ok(s) => mask(s.expose_secret()),
            Err(_) => "<cannot open: APP_SECRET changed?>".to_owned(),
        };
        writeln!(
            out,
            "{} [{}] public_ref={} key={} webhook_secret={} payment_types={} locale={} cancel_mode={} allowed_hosts={} paymethod={}",
            m.mall_id,
            if m.enabled { "enabled" } else { "disabled" },
            m.public_ref,
            shown(crate::merchant::SECRET_KEY_COLUMN, &m.komoju_secret_key),
            shown(crate::merchant::WEBHOOK_SECRET_COLUMN, &m.komoju_webhook_secret),
            m.payment_types,
            m.locale,
            m.cancel_mode,
            if m.allowed_hosts.is_empty() { "-" } else { &m.allowed_hosts },
            if m.paymethod_codes.is_empty() { "-" } else { &m.paymethod_codes },
        )?;
        for s in shops {
            writeln!(
                out,
                "  shop {} [{}] {} {}",
                s.shop_no,
                if s.enabled { "enabled" } else { "disabled" },
                s.currency,
                s.shop_name
            )?;
        }
    }
    Ok(())
}

/// `merchant limit`: the shop's external-checkout ceiling, read in its currency.
fn set_limit(
    conn: &mut db::DbConnection,
    l: LimitArgs,
    now: chrono::NaiveDateTime,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let shop = db::merchants::find_shop(conn, &l.mall_id, l.shop_no)?.ok_or_else(|| {
        CliError::Usage(format!(
            "shop {} of {} is not registered",
            l.shop_no, l.mall_id
        ))
    })?;
    let max = match l.external_max.as_str() {
        "off" => None,
        text => {
            let currency = crate::money::Currency::parse(&shop.currency)
                .map_err(|e| CliError::Usage(format!("shop currency {}: {e}", shop.currency)))?;
            let money = crate::money::Money::parse_positive(text, currency)
                .map_err(|e| CliError::Usage(format!("--external-max: {e}")))?;
            Some(money)
        }
    };
    db::limits::set_external_max(conn, &l.mall_id, l.shop_no, max.map(|m| m.minor()), now)?;
    match max {
        Some(m) => writeln!(
            out,
            "shop {} of {}: reservations Cafe24 cannot confirm are accepted up to {} {}",
            l.shop_no,
            l.mall_id,
            m.to_decimal_string(),
            m.currency()
        )?,
        None => writeln!(
            out,
            "shop {} of {}: no ceiling for reservations Cafe24 cannot confirm",
            l.shop_no, l.mall_id
        )?,
    }
    Ok(())
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

fn set_enabled(
    conn: &mut db::DbConnection,
    t: Target,
    enabled: bool,
    now: chrono::NaiveDateTime,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let changed = db::merchants::set_enabled(conn, &t.mall_id, t.shop_no, enabled, now)?;
    let what = match t.shop_no {
        Some(n) => format!("shop {n} of {}", t.mall_id),
        None => format!("mall {}", t.mall_id),
    };
    if changed == 0 {
        return Err(CliError::Usage(format!("{what} is not registered")));
    }
    writeln!(
        out,
        "{what} {}",
        if enabled { "enabled" } else { "disabled" }
    )?;
    Ok(())
}
