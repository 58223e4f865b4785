//! `cafe24-komoju merchant …` (PROTOCOL.md §11): its arguments and what each
//! subcommand does: `add` (validated by [`MerchantInput::validate`], secrets sealed),
//! `list` (secrets masked), `enable`/`disable`, `limit`. The dispatcher in
//! [`super::cli`] opens the database; this module never reads the settings.

use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use super::error::CliError;
use crate::db;
use crate::merchant::{CancelMode, CaptureMode, Locale, MerchantInput, NotifyEncoding};
use crate::secrets::{mask, SecretBox};

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
    /// When card payments are captured: at once (`auto`), or when the merchant captures
    /// them from the payments page (`manual`; KOMOJU `payment_data.capture`).
    #[arg(long, value_enum, default_value_t = CaptureArg::Auto)]
    pub capture: CaptureArg,
    /// With `--capture manual`: days after the authorization an uncaptured card payment
    /// is captured automatically (1-29; KOMOJU's authorizations expire after 30 days).
    #[arg(long, default_value_t = 7)]
    pub auto_capture_after_days: i32,
}

/// `--capture` (§7 `payment_data.capture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureArg {
    Auto,
    Manual,
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

/// Runs `merchant add|list|enable|disable|limit` on `conn`. Errors: [`CliError`] (a
/// usage error names the flag, never a secret value).
pub fn run(
    cmd: MerchantCommand,
    conn: &mut db::DbConnection,
    secrets: &SecretBox,
    now: chrono::NaiveDateTime,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        MerchantCommand::Add(a) => add_merchant(conn, secrets, a.into_input(), now, out),
        MerchantCommand::List => list_merchants(conn, secrets, out),
        MerchantCommand::Enable(t) | MerchantCommand::Disable(t) if t.mall_id.is_empty() => {
            Err(CliError::Usage("--mall-id is required".into()))
        }
        MerchantCommand::Enable(t) => set_enabled(conn, t, true, now, out),
        MerchantCommand::Disable(t) => set_enabled(conn, t, false, now, out),
        MerchantCommand::Limit(l) => set_limit(conn, l, now, out),
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
            capture: match self.capture {
                CaptureArg::Auto => CaptureMode::Auto,
                CaptureArg::Manual => CaptureMode::Manual,
            },
            auto_capture_after_days: self.auto_capture_after_days,
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

/// `merchant enable|disable`: the mall, or one shop with `--shop-no`.
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
