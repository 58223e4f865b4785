//! What the settings page shows: the view models and the one use case that fills them.
//! Secrets appear only as masked hints; Cafe24 or KOMOJU failing shows as a warning on
//! the page, not an error.

use secrecy::{ExposeSecret, SecretString};

use super::merchant_keys::{merchant_row, open_secret, KomojuSecret};
use super::shops::cafe24_shops;
use super::{db_error, SiteError};
use crate::cafe24::partner_id::PartnerId;
use crate::db::{
    self,
    merchants::{MerchantRow, Registration, ShopRow},
};
use crate::install::tokens::AdminError;
use crate::keys::session::Session;
use crate::services::Services;

/// A shop as the page shows it.
#[derive(Debug, Clone)]
pub struct ShopView {
    pub shop_no: i32,
    pub shop_name: String,
    /// ISO 4217 code, e.g. `JPY`.
    pub currency: String,
    /// The `partner_id` the shop is registered with at Cafe24 (empty if none fits).
    pub partner_id: String,
    pub gateway: Registration,
    pub script: Registration,
}

/// A payment type KOMOJU offers the account.
#[derive(Debug, Clone)]
pub struct PaymentTypeView {
    /// KOMOJU's `type_slug`, e.g. `credit_card`.
    pub type_slug: String,
    pub name_en: String,
    pub name_ja: String,
    pub name_ko: String,
    /// The merchant offers it at checkout.
    pub selected: bool,
}

impl PaymentTypeView {
    /// KOMOJU's name of the type in `lang`.
    pub fn name(&self, lang: crate::i18n::Lang) -> &str {
        match lang {
            crate::i18n::Lang::Ja => &self.name_ja,
            crate::i18n::Lang::Ko => &self.name_ko,
            crate::i18n::Lang::En => &self.name_en,
        }
    }
}

/// Everything the settings page shows. Secrets only as masked hints.
#[derive(Debug, Clone)]
pub struct SettingsView {
    pub mall_id: String,
    pub lang: String,
    /// The session may change the settings (`P`): the forms are shown. A sub-operator's
    /// page has none.
    pub may_change: bool,
    /// Empty for a read-only session (it posts nothing).
    pub csrf: String,
    /// The shops, or why Cafe24 could not list them.
    pub shops: Result<Vec<ShopView>, String>,
    pub secret_key_hint: Option<String>,
    pub webhook_secret_hint: Option<String>,
    /// `test` or `live`, from the key's prefix.
    pub mode: Option<&'static str>,
    /// What KOMOJU offers the saved key, or why it could not be read.
    pub payment_types: Result<Vec<PaymentTypeView>, String>,
    /// `sync` or `async` (§6.1 `cancel_mode`).
    pub cancel_mode: String,
    /// `ja`, `en` or `ko`.
    pub locale: String,
    pub external_review: bool,
    /// `auto` or `manual`.
    pub capture: String,
    /// Days before an uncaptured authorization is captured automatically.
    pub auto_capture_after_days: i32,
    /// The mall takes payments (KOMOJU keys saved).
    pub enabled: bool,
    /// The URL the merchant registers in KOMOJU's dashboard.
    pub webhook_url: String,
    /// When the newest signed ping arrived, in the mall's first shop's zone
    /// ([`crate::clock::shop_time`]).
    pub last_ping: Option<String>,
    /// KOMOJU deliveries whose signature failed since the last correctly signed one: how
    /// many, and since when (in the mall's first shop's zone, [`crate::clock::shop_time`]).
    pub signature_failures: Option<(i64, String)>,
}

/// What the settings page of `session`'s mall shows. Errors: the mall is not connected,
/// the database; Cafe24 or KOMOJU failing is a warning on the page.
pub async fn view(app: &Services, session: &Session) -> Result<SettingsView, SiteError> {
    let mall_id = session.mall_id.as_str();
    let listed = list_shops(app, mall_id).await?;
    let row = merchant_row(app, mall_id).await?;
    let mall = mall_id.to_owned();
    let (shop_rows, last_ping, failures) = app
        .db
        .run(move |c| {
            Ok((
                db::merchants::shops(c, &mall)?,
                db::webhook_events::last_received(c, &mall, "ping")?,
                db::webhook_events::bad_signatures(c, &mall)?,
            ))
        })
        .await
        .map_err(|e| db_error("loading the shops", e))?;
    let zone = shop_rows.first().map_or("", |s| s.timezone.as_str());
    let signature_failures =
        failures.map(|f| (f.failures, crate::clock::shop_time(f.first_at, zone)));
    let shops = listed.map(|()| shop_views(&row, &shop_rows));
    let secret_key = open_secret(app, &row, KomojuSecret::SecretKey)?;
    let webhook_secret = open_secret(app, &row, KomojuSecret::WebhookSecret)?;
    let payment_types = payment_type_views(app, &row, secret_key.as_ref()).await;
    let may_change = session.may_change();
    Ok(SettingsView {
        mall_id: mall_id.to_owned(),
        lang: session.lang.clone(),
        may_change,
        csrf: if may_change {
            app.session_keys.csrf(session)
        } else {
            String::new()
        },
        shops,
        mode: secret_key.as_ref().map(mode_of),
        secret_key_hint: secret_key.as_ref().map(hint),
        webhook_secret_hint: webhook_secret.as_ref().map(hint),
        payment_types,
        cancel_mode: row.cancel_mode.as_str().to_owned(),
        locale: row.locale.as_str().to_owned(),
        external_review: row.external_review,
        capture: row.capture.as_str().to_owned(),
        auto_capture_after_days: row.auto_capture_after_days,
        enabled: row.enabled,
        webhook_url: app.komoju_webhook_url(mall_id),
        last_ping: last_ping.map(|at| crate::clock::shop_time(at, zone)),
        signature_failures,
    })
}

/// Has Cafe24 list (and record) the mall's shops: `Err` with the page's warning when it
/// did not. Errors: the mall is not connected.
async fn list_shops(app: &Services, mall_id: &str) -> Result<Result<(), String>, SiteError> {
    match cafe24_shops(app, mall_id).await {
        Ok(_) => Ok(Ok(())),
        Err(AdminError::NotConnected) | Err(AdminError::Disconnected) => {
            Err(SiteError::NotConnected)
        }
        Err(e) => {
            log::warn!("listing the shops of {mall_id}: {e}");
            Ok(Err(
                "Cafe24 did not list the mall's shops; reload the page to try again".to_owned(),
            ))
        }
    }
}

fn shop_views(merchant: &MerchantRow, shops: &[ShopRow]) -> Vec<ShopView> {
    shops
        .iter()
        .map(|s| ShopView {
            shop_no: s.shop_no,
            shop_name: s.shop_name.clone(),
            currency: s.currency.clone(),
            partner_id: PartnerId::new(&merchant.mall_id, s.shop_no, &merchant.public_ref)
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            gateway: s.gateway_state,
            script: s.script_state,
        })
        .collect()
}

/// The payment types KOMOJU offers the saved key (each once), the merchant's marked
/// `selected`; `Err` with the page's warning when there is no key or KOMOJU did not list
/// them.
async fn payment_type_views(
    app: &Services,
    row: &MerchantRow,
    secret_key: Option<&SecretString>,
) -> Result<Vec<PaymentTypeView>, String> {
    let Some(key) = secret_key else {
        return Err("Save a KOMOJU secret key to choose payment types".to_owned());
    };
    let methods = app.komoju.payment_methods(key).await.map_err(|e| {
        log::warn!("KOMOJU payment methods of {}: {e}", row.mall_id);
        "KOMOJU did not list the payment types; reload the page to try again".to_owned()
    })?;
    let selected: Vec<&str> = row.payment_types.iter().collect();
    let mut seen = std::collections::BTreeSet::new();
    Ok(methods
        .into_iter()
        .filter(|m| seen.insert(m.type_slug.clone()))
        .map(|m| PaymentTypeView {
            selected: selected.contains(&m.type_slug.as_str()),
            name_en: m.name_en.unwrap_or_else(|| m.type_slug.clone()),
            name_ja: m.name_ja.unwrap_or_else(|| m.type_slug.clone()),
            name_ko: m.name_ko.unwrap_or_else(|| m.type_slug.clone()),
            type_slug: m.type_slug,
        })
        .collect())
}

/// `live` for a `sk_live_…` key, else `test`.
fn mode_of(key: &SecretString) -> &'static str {
    if key.expose_secret().starts_with("sk_live_") {
        "live"
    } else {
        "test"
    }
}

/// The masked hint of a secret ([`crate::secrets::mask`]).
fn hint(secret: &SecretString) -> String {
    crate::secrets::mask(secret.expose_secret())
}
