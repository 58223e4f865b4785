//! The settings site's use cases (PROTOCOL.md §12, "Settings site"): what the page
//! shows, saving the KOMOJU settings (a key is checked with KOMOJU before it is stored),
//! turning a shop's payment gateway and external-checkout script tag on and off at
//! Cafe24, the webhook test, and disconnecting.
//!
//! Registrations at Cafe24 are recorded before and after each call
//! ([`Registration`]): a call that fails halfway leaves `registering` or
//! `unregistering`, and the next try first removes whatever the lost call may have
//! created, so nothing is registered twice.
//!
//! Every request's session must be of the mall's current session generation (a
//! disconnect ends them all), and only a representative operator's session (`P`) may
//! post a form; a write that enables anything checks again, in its transaction, that
//! the session is current and the mall connected, so no write re-enables a mall that was
//! disconnected meanwhile. A call Cafe24 refuses while the mall is still installed (a
//! scope missing) is shown to the merchant with the permission to add.

use chrono::NaiveDateTime;
use secrecy::{ExposeSecret, SecretString};

use super::tokens::{self, AdminError};
use crate::cafe24::admin::{Cafe24Error, Shop};
use crate::cafe24::partner_id::PartnerId;
use crate::db::{self, merchants::Registration, DbError};
use crate::keys::session::Session;
use crate::merchant::{CancelMode, SECRET_KEY_COLUMN, WEBHOOK_SECRET_COLUMN};
use crate::services::Services;

/// The KOMOJU events the merchant subscribes the webhook to.
pub const WEBHOOK_EVENTS: [&str; 7] = [
    "payment.authorized",
    "payment.captured",
    "payment.expired",
    "payment.cancelled",
    "payment.refunded",
    "payment.failed",
    "ping",
];
/// How long the webhook test waits for the sandbox's ping to arrive.
const PING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The merchant's locale for a launch `lang`: `ja…` → `ja`, `ko…` → `ko`, else `en`.
pub fn locale_of(lang: &str) -> &'static str {
    if lang.starts_with("ja") {
        "ja"
    } else if lang.starts_with("ko") {
        "ko"
    } else {
        "en"
    }
}

/// Why a settings request was refused or failed; each is a page with its status.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// No session cookie, or an expired or foreign one (401).
    #[error("your session has ended; open the app again from the Cafe24 admin")]
    NoSession,
    /// A session of another mall, or a form without this session's CSRF token (403).
    #[error("this request is not allowed for this session")]
    Forbidden,
    /// A form posted by a sub-operator's session: only the representative operator may
    /// change the settings (403).
    #[error(
        "only the mall's representative operator can change these settings; you can view them"
    )]
    ReadOnly,
    /// Cafe24 refused a call while the app is still installed: the message says what it
    /// refused and which permission to add (502). Nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The mall has no tokens (never installed, or disconnected) (403).
    #[error("the app is not connected to this mall; open it again from the Cafe24 admin")]
    NotConnected,
    /// A form field is wrong; nothing was saved (422). The message names the field.
    #[error("{0}")]
    Form(String),
    /// The shop is not one of the mall's (404).
    #[error("no such shop in this mall")]
    UnknownShop,
    /// Cafe24 or KOMOJU failed; what was recorded says how far it got (502).
    #[error("{0}")]
    Upstream(String),
    #[error("the service is temporarily unavailable; try again in a moment")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl SiteError {
    /// The HTTP status of the page.
    pub fn status(&self) -> actix_web::http::StatusCode {
        use actix_web::http::StatusCode as S;
        match self {
            SiteError::NoSession => S::UNAUTHORIZED,
            SiteError::Forbidden | SiteError::NotConnected | SiteError::ReadOnly => S::FORBIDDEN,
            SiteError::Refused(_) => S::BAD_GATEWAY,
            SiteError::Form(_) => S::UNPROCESSABLE_ENTITY,
            SiteError::UnknownShop => S::NOT_FOUND,
            SiteError::Upstream(_) => S::BAD_GATEWAY,
            SiteError::Unavailable => S::SERVICE_UNAVAILABLE,
            SiteError::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }
}

fn db_error(context: &str, e: DbError) -> SiteError {
    log::error!("{context}: {e}");
    if e.is_unavailable() {
        SiteError::Unavailable
    } else {
        SiteError::Internal
    }
}

fn admin_error(context: &str, mall_id: &str, e: AdminError) -> SiteError {
    log::warn!("{context} for {mall_id}: {e}");
    match e {
        AdminError::NotConnected | AdminError::Disconnected => SiteError::NotConnected,
        AdminError::Db(e) => db_error(context, e),
        AdminError::Sealed => SiteError::Internal,
        AdminError::Refused { message } => SiteError::Refused(message),
        AdminError::Cafe24(crate::cafe24::admin::Cafe24Error::AppCredentials { .. }) => {
            SiteError::Upstream(
                "Cafe24 refused the app's own credentials; nothing was changed. The app's operator must check its client id and secret".into(),
            )
        }
        AdminError::Cafe24(_) => SiteError::Upstream(format!(
            "Cafe24 did not complete the request ({context}); nothing was doubled, try again"
        )),
    }
}

/// What `scopes` (the permissions the refused call needs) the merchant or the app's
/// operator must add, after Cafe24's own `message`.
async fn refusal(app: &Services, mall_id: &str, message: &str, scopes: &[&str]) -> SiteError {
    let granted = tokens::granted_scopes(app, mall_id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let asked = app.cafe24.scopes();
    let mut text =
        format!("Cafe24 refused the request: \u{201c}{message}\u{201d}. Nothing was changed. ");
    match scopes.iter().find(|s| !granted.iter().any(|g| g == *s)) {
        Some(scope) if asked.contains(scope) => text.push_str(&format!(
            "The app's access to this mall lacks the permission {scope}: open the app again from the Cafe24 admin and allow it."
        )),
        Some(scope) => text.push_str(&format!(
            "The app does not ask for the permission {scope}: its operator must add {scope} to the app's permissions in the Cafe24 Developer Center and to CAFE24_SCOPES; then open the app again from the Cafe24 admin and allow it."
        )),
        None => text.push_str(&format!(
            "The app holds the permission {}; Cafe24 opens this API only to apps it has approved (a PG app must be approved by Cafe24): the app's operator must ask Cafe24.",
            scopes.join(", ")
        )),
    }
    SiteError::Refused(text)
}

/// A Cafe24 call's result as the site reports it; a refusal names the permission
/// (`scopes`) the call needs.
async fn through_cafe24<T>(
    app: &Services,
    mall_id: &str,
    context: &str,
    scopes: &[&str],
    result: Result<T, AdminError>,
) -> Result<T, SiteError> {
    match result {
        Ok(value) => Ok(value),
        Err(AdminError::Refused { message }) => {
            log::warn!("{context} for {mall_id}: Cafe24 refused ({message})");
            Err(refusal(app, mall_id, &message, scopes).await)
        }
        Err(e) => Err(admin_error(context, mall_id, e)),
    }
}

/// The permissions of the calls the site makes (Cafe24's Admin API reference, each
/// endpoint's "SCOPE": `paymentgateway.md`, `scripttags.md`).
const WRITE_STORE: &str = "mall.write_store";
const READ_APPLICATION: &str = "mall.read_application";
const WRITE_APPLICATION: &str = "mall.write_application";

/// True when `session` is still of the mall's current generation and the mall has
/// tokens: checked inside the transaction of every write that enables something.
fn still_current(c: &mut db::DbConnection, session: &Session) -> Result<bool, DbError> {
    Ok(
        db::cafe24::session_generation(c, &session.mall_id)? == session.gen
            && db::cafe24::find_token(c, &session.mall_id)?.is_some(),
    )
}

/// Checks a request of the settings site for `path_mall`: the session cookie must be
/// one of ours and unexpired, for this mall, and of the mall's current session
/// generation (a disconnect ends every session); a form (`csrf` is `Some`) must carry
/// the session's CSRF token and come from a session that may change the settings (the
/// representative operator's).
pub async fn authorize(
    app: &Services,
    cookie: Option<&str>,
    path_mall: &str,
    csrf: Option<Option<&str>>,
) -> Result<Session, SiteError> {
    let session = app
        .session_keys
        .verify(cookie, app.clock.unix_seconds())
        .ok_or(SiteError::NoSession)?;
    if session.mall_id != path_mall {
        log::warn!(
            "session of {} refused for mall {path_mall}",
            session.mall_id
        );
        return Err(SiteError::Forbidden);
    }
    if let Some(token) = csrf {
        if !app.session_keys.csrf_valid(&session, token) {
            log::warn!("settings form of {path_mall} without its session's CSRF token");
            return Err(SiteError::Forbidden);
        }
    }
    let mall = session.mall_id.clone();
    let generation = app
        .db
        .run(move |c| db::cafe24::session_generation(c, &mall))
        .await
        .map_err(|e| db_error("checking the session", e))?;
    if generation != session.gen {
        log::info!("a session of {path_mall} ended by a disconnect was refused");
        return Err(SiteError::NoSession);
    }
    if csrf.is_some() && !session.may_change() {
        log::warn!(
            "settings form of {path_mall} from user {} (user_type {}): read-only, refused",
            session.user_id,
            session.user_type
        );
        return Err(SiteError::ReadOnly);
    }
    Ok(session)
}

/// A shop as the page shows it.
#[derive(Debug, Clone)]
pub struct ShopView {
    pub shop_no: i32,
    pub shop_name: String,
    pub currency: String,
    pub partner_id: String,
    pub gateway: Registration,
    pub script: Registration,
}

/// A payment type KOMOJU offers the account.
#[derive(Debug, Clone)]
pub struct PaymentTypeView {
    pub type_slug: String,
    pub name_en: String,
    pub name_ja: String,
    pub selected: bool,
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
    pub cancel_mode: String,
    pub locale: String,
    pub external_review: bool,
    /// The mall takes payments (KOMOJU keys saved).
    pub enabled: bool,
    pub webhook_url: String,
    /// When the newest signed ping arrived.
    pub last_ping: Option<NaiveDateTime>,
    /// KOMOJU is the development sandbox (the webhook test sends a ping itself).
    pub sandbox: bool,
}

async fn merchant_row(
    app: &Services,
    mall_id: &str,
) -> Result<db::merchants::MerchantRow, SiteError> {
    let mall = mall_id.to_owned();
    app.db
        .run(move |c| db::merchants::find(c, &mall))
        .await
        .map_err(|e| db_error("loading the merchant", e))?
        .ok_or(SiteError::NotConnected)
}

fn open_secret(
    app: &Services,
    row: &db::merchants::MerchantRow,
    column: &str,
) -> Result<Option<SecretString>, SiteError> {
    let sealed = if column == SECRET_KEY_COLUMN {
        &row.komoju_secret_key
    } else {
        &row.komoju_webhook_secret
    };
    if sealed.is_empty() {
        return Ok(None);
    }
    app.secrets
        .open(&row.mall_id, column, sealed)
        .map(Some)
        .map_err(|e| {
            log::error!("merchant {}: {e}", row.mall_id);
            SiteError::Internal
        })
}

/// The webhook URL the merchant registers in KOMOJU's dashboard.
pub fn webhook_url(app: &Services, mall_id: &str) -> String {
    app.public_url(
        "/api/asynchronous-checkout/checkout/webhook",
        &[("mall_id", mall_id)],
    )
}

/// The mall's shops from Cafe24 (the truth about them), each recorded locally.
async fn cafe24_shops(app: &Services, mall_id: &str) -> Result<Vec<Shop>, AdminError> {
    let shops = tokens::shops(app, mall_id).await?;
    let mall = mall_id.to_owned();
    let now = app.clock.now_naive();
    let recorded = shops.clone();
    app.db
        .run(move |c| {
            for s in &recorded {
                let currency = if s.currency_code.is_empty() {
                    "JPY"
                } else {
                    &s.currency_code
                };
                db::merchants::ensure_shop(c, &mall, s.shop_no, &s.shop_name, currency, now)?;
            }
            Ok(())
        })
        .await?;
    Ok(shops)
}

/// What the settings page of `session`'s mall shows. Cafe24 or KOMOJU failing shows as
/// a warning on the page, not an error.
pub async fn view(app: &Services, session: &Session) -> Result<SettingsView, SiteError> {
    let mall_id = session.mall_id.as_str();
    let shops = match cafe24_shops(app, mall_id).await {
        Ok(_) => Ok(()),
        Err(AdminError::NotConnected) | Err(AdminError::Disconnected) => {
            return Err(SiteError::NotConnected)
        }
        Err(e) => {
            log::warn!("listing the shops of {mall_id}: {e}");
            Err("Cafe24 did not list the mall's shops; reload the page to try again".to_owned())
        }
    };
    let row = merchant_row(app, mall_id).await?;
    let mall = mall_id.to_owned();
    let (shop_rows, last_ping) = app
        .db
        .run(move |c| {
            Ok((
                db::merchants::shops(c, &mall)?,
                db::webhook_events::last_received(c, &mall, "ping")?,
            ))
        })
        .await
        .map_err(|e| db_error("loading the shops", e))?;
    let shops = shops.map(|()| {
        shop_rows
            .iter()
            .map(|s| ShopView {
                shop_no: s.shop_no,
                shop_name: s.shop_name.clone(),
                currency: s.currency.clone(),
                partner_id: PartnerId::new(mall_id, s.shop_no, &row.public_ref)
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
                gateway: Registration::parse(&s.gateway_state),
                script: Registration::parse(&s.script_state),
            })
            .collect()
    });
    let secret_key = open_secret(app, &row, SECRET_KEY_COLUMN)?;
    let webhook_secret = open_secret(app, &row, WEBHOOK_SECRET_COLUMN)?;
    let selected: Vec<String> = row.payment_types.split(',').map(str::to_owned).collect();
    let payment_types = match &secret_key {
        None => Err("Save a KOMOJU secret key to choose payment types".to_owned()),
        Some(key) => match app.komoju.payment_methods(key).await {
            Ok(methods) => {
                let mut seen = std::collections::BTreeSet::new();
                Ok(methods
                    .into_iter()
                    .filter(|m| seen.insert(m.type_slug.clone()))
                    .map(|m| PaymentTypeView {
                        selected: selected.contains(&m.type_slug),
                        name_en: m.name_en.unwrap_or_else(|| m.type_slug.clone()),
                        name_ja: m.name_ja.unwrap_or_else(|| m.type_slug.clone()),
                        type_slug: m.type_slug,
                    })
                    .collect())
            }
            Err(e) => {
                log::warn!("KOMOJU payment methods of {mall_id}: {e}");
                Err(
                    "KOMOJU did not list the payment types; reload the page to try again"
                        .to_owned(),
                )
            }
        },
    };
    Ok(SettingsView {
        mall_id: mall_id.to_owned(),
        lang: session.lang.clone(),
        may_change: session.may_change(),
        csrf: if session.may_change() {
            app.session_keys.csrf(session)
        } else {
            String::new()
        },
        shops,
        mode: secret_key.as_ref().map(|k| {
            if k.expose_secret().starts_with("sk_live_") {
                "live"
            } else {
                "test"
            }
        }),
        secret_key_hint: secret_key
            .as_ref()
            .map(|k| crate::secrets::mask(k.expose_secret())),
        webhook_secret_hint: webhook_secret
            .as_ref()
            .map(|k| crate::secrets::mask(k.expose_secret())),
        payment_types,
        cancel_mode: row.cancel_mode.as_str().to_owned(),
        locale: row.locale.as_str().to_owned(),
        external_review: row.external_review,
        enabled: row.enabled,
        webhook_url: webhook_url(app, mall_id),
        last_ping,
        sandbox: app.komoju_is_sandbox,
    })
}

/// The KOMOJU form. Empty key fields leave the stored keys as they are.
#[derive(Debug, Default)]
pub struct KomojuForm {
    pub secret_key: SecretString,
    pub webhook_secret: SecretString,
    pub payment_types: Vec<String>,
    /// The page showed the payment-type choices (so an empty list is the merchant's
    /// choice, refused, not the absence of a choice).
    pub payment_types_shown: bool,
    pub cancel_mode: String,
    pub locale: String,
    pub external_review: bool,
}

/// Saves the KOMOJU settings. A new secret key must look like `sk_live_…`/`sk_test_…`
/// and is checked with one KOMOJU call (`GET /payment_methods`) before anything is
/// stored; the payment types must be ones KOMOJU offers that key. Errors: a field is
/// wrong ([`SiteError::Form`], nothing saved), KOMOJU unreachable, the database.
pub async fn save_komoju(
    app: &Services,
    session: &Session,
    form: KomojuForm,
) -> Result<(), SiteError> {
    let mall_id = session.mall_id.as_str();
    let mut row = merchant_row(app, mall_id).await?;
    let new_key = form.secret_key.expose_secret().trim().to_owned();
    let new_secret = form.webhook_secret.expose_secret().trim().to_owned();
    let looks_like_a_key = new_key.starts_with("sk_live_") || new_key.starts_with("sk_test_");
    if (!new_key.is_empty() && !looks_like_a_key)
        || new_key.len() > 200
        || new_key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(SiteError::Form(
            "The secret key must be a KOMOJU secret key (sk_live_… or sk_test_…)".into(),
        ));
    }
    if !new_secret.is_empty() && (new_secret.len() < 8 || new_secret.len() > 200) {
        return Err(SiteError::Form(
            "The webhook secret must be 8 to 200 characters".into(),
        ));
    }
    let key = match (
        new_key.is_empty(),
        open_secret(app, &row, SECRET_KEY_COLUMN)?,
    ) {
        (false, _) => SecretString::from(new_key.clone()),
        (true, Some(stored)) => stored,
        (true, None) => return Err(SiteError::Form("Enter your KOMOJU secret key".into())),
    };
    let offered = offered_to(app, mall_id, &key).await?;
    // The first save has no list to choose from yet (it comes from KOMOJU with the key):
    // the stored default, where KOMOJU offers it.
    let payment_types: Vec<String> = if form.payment_types_shown {
        form.payment_types
    } else {
        row.payment_types
            .split(',')
            .filter(|t| offered.iter().any(|m| m.type_slug == *t))
            .map(str::to_owned)
            .collect()
    };
    if payment_types.is_empty() {
        return Err(SiteError::Form("Choose at least one payment type".into()));
    }
    if let Some(t) = payment_types
        .iter()
        .find(|t| !offered.iter().any(|m| &m.type_slug == *t))
    {
        return Err(SiteError::Form(format!(
            "KOMOJU does not offer the payment type {t} to this account"
        )));
    }
    let cancel_mode = CancelMode::parse(&form.cancel_mode)
        .ok_or_else(|| SiteError::Form("Cancel mode must be sync or async".into()))?;
    let locale = crate::merchant::Locale::parse(&form.locale)
        .ok_or_else(|| SiteError::Form("Locale must be ja, en or ko".into()))?;
    let seal = |column: &str, value: &str| {
        app.secrets
            .seal(mall_id, column, &SecretString::from(value.to_owned()))
            .map_err(|e| {
                log::error!("sealing a KOMOJU secret of {mall_id}: {e}");
                SiteError::Internal
            })
    };
    if !new_key.is_empty() {
        row.komoju_secret_key = seal(SECRET_KEY_COLUMN, &new_key)?;
    }
    if !new_secret.is_empty() {
        row.komoju_webhook_secret = seal(WEBHOOK_SECRET_COLUMN, &new_secret)?;
    }
    if row.komoju_webhook_secret.is_empty() {
        return Err(SiteError::Form("Enter your KOMOJU webhook secret".into()));
    }
    row.payment_types = payment_types.join(",");
    row.cancel_mode = cancel_mode;
    row.locale = locale;
    row.external_review = form.external_review;
    row.enabled = true;
    row.updated_at = app.clock.now_naive();
    store_if_current(app, session, row).await?;
    log::info!("merchant {mall_id}: KOMOJU settings saved");
    if app.komoju_is_sandbox {
        register_sandbox_webhook(app, mall_id).await;
    }
    Ok(())
}

/// What KOMOJU offers `key` (`GET /payment_methods`): the key's check. Errors: KOMOJU
/// refuses the key (a form error), or cannot be reached.
async fn offered_to(
    app: &Services,
    mall_id: &str,
    key: &SecretString,
) -> Result<Vec<crate::komoju::PaymentMethod>, SiteError> {
    match app.komoju.payment_methods(key).await {
        Ok(methods) => Ok(methods),
        Err(crate::komoju::KomojuError::Api { status: 401, .. }) => {
            log::info!("merchant {mall_id}: KOMOJU refused the secret key; nothing saved");
            Err(SiteError::Form(
                "KOMOJU did not accept this secret key; nothing was saved".into(),
            ))
        }
        Err(e) => {
            log::warn!("checking the KOMOJU key of {mall_id}: {e}");
            Err(SiteError::Upstream(
                "KOMOJU could not be reached to check the key; nothing was saved".into(),
            ))
        }
    }
}

/// Stores the merchant row in one transaction that first checks the session is still
/// of the mall's generation and the mall connected: a save racing a disconnect enables
/// nothing ([`SiteError::NoSession`]).
async fn store_if_current(
    app: &Services,
    session: &Session,
    row: db::merchants::MerchantRow,
) -> Result<(), SiteError> {
    let current = session.clone();
    let saved = app
        .db
        .run(move |c| {
            db::transaction(c, |c| {
                if !still_current(c, &current)? {
                    return Ok(false);
                }
                db::merchants::update(c, &row)?;
                Ok(true)
            })
        })
        .await
        .map_err(|e| db_error("saving the KOMOJU settings", e))?;
    if !saved {
        log::warn!(
            "merchant {}: KOMOJU settings not saved, the session ended (disconnected)",
            session.mall_id
        );
        return Err(SiteError::NoSession);
    }
    Ok(())
}

/// Development: tells the KOMOJU sandbox where to send this merchant's webhooks (what the
/// merchant does in KOMOJU's dashboard with a real KOMOJU).
async fn register_sandbox_webhook(app: &Services, mall_id: &str) {
    match app.merchants.load(mall_id, None).await {
        Ok(m) => {
            if let Err(e) = app
                .komoju
                .register_sandbox_webhook(
                    &m.komoju_secret_key,
                    &webhook_url(app, mall_id),
                    &m.komoju_webhook_secret,
                )
                .await
            {
                log::warn!("registering the sandbox webhook of {mall_id}: {e}");
            }
        }
        Err(e) => log::warn!("registering the sandbox webhook of {mall_id}: {e}"),
    }
}

/// The shop as recorded here and as Cafe24 lists it now (one `GET /admin/shops`).
async fn shop_row(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
) -> Result<(db::merchants::ShopRow, Shop), SiteError> {
    let shops = cafe24_shops(app, mall_id)
        .await
        .map_err(|e| admin_error("listing the shops", mall_id, e))?;
    let listed = shops
        .into_iter()
        .find(|s| s.shop_no == shop_no)
        .ok_or(SiteError::UnknownShop)?;
    let mall = mall_id.to_owned();
    let row = app
        .db
        .run(move |c| db::merchants::find_shop(c, &mall, shop_no))
        .await
        .map_err(|e| db_error("loading the shop", e))?
        .ok_or(SiteError::UnknownShop)?;
    Ok((row, listed))
}

async fn record_gateway(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    state: Registration,
    enabled: bool,
) -> Result<(), SiteError> {
    let mall = mall_id.to_owned();
    let now = app.clock.now_naive();
    app.db
        .run(move |c| db::merchants::set_gateway(c, &mall, shop_no, state, enabled, now))
        .await
        .map_err(|e| db_error("recording the payment gateway", e))
}

async fn record_script(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    state: Registration,
    script_no: Option<String>,
) -> Result<(), SiteError> {
    let mall = mall_id.to_owned();
    let now = app.clock.now_naive();
    app.db
        .run(move |c| {
            db::merchants::set_script(c, &mall, shop_no, state, script_no.as_deref(), now)
        })
        .await
        .map_err(|e| db_error("recording the script tag", e))
}

/// Records the shop's gateway `on` and the shop enabled, in one transaction that first
/// checks the session is still current and the mall connected (a disconnect meanwhile
/// leaves it `registering`, to be cleaned up by the next try).
async fn gateway_on(app: &Services, session: &Session, shop_no: i32) -> Result<(), SiteError> {
    let current = session.clone();
    let now = app.clock.now_naive();
    let recorded = app
        .db
        .run(move |c| {
            db::transaction(c, |c| {
                if !still_current(c, &current)? {
                    return Ok(false);
                }
                let (mall, on) = (&current.mall_id, Registration::On);
                db::merchants::set_gateway(c, mall, shop_no, on, true, now)?;
                Ok(true)
            })
        })
        .await
        .map_err(|e| db_error("recording the payment gateway", e))?;
    if recorded {
        Ok(())
    } else {
        Err(SiteError::NoSession)
    }
}

/// Turns the shop's payment gateway on (registers this app with Cafe24 with the shop's
/// `partner_id`, then takes its checkouts) or off (stops taking checkouts, removes the
/// script tag, unregisters). Repeating a finished switch does nothing; repeating a
/// failed one finishes it without doubling anything.
pub async fn set_gateway(
    app: &Services,
    session: &Session,
    shop_no: i32,
    on: bool,
) -> Result<(), SiteError> {
    let mall_id = session.mall_id.as_str();
    let (shop, _) = shop_row(app, mall_id, shop_no).await?;
    let before = Registration::parse(&shop.gateway_state);
    if on {
        let merchant = merchant_row(app, mall_id).await?;
        if !merchant.enabled {
            return Err(SiteError::Form(
                "Save your KOMOJU keys before turning a shop on".into(),
            ));
        }
        if before == Registration::On {
            return Ok(());
        }
        let partner_id = PartnerId::new(mall_id, shop_no, &merchant.public_ref)
            .map_err(|_| SiteError::Internal)?;
        record_gateway(app, mall_id, shop_no, Registration::Registering, false).await?;
        let registered = tokens::with_access(app, mall_id, |access| {
            let partner_id = partner_id.as_str().to_owned();
            async move {
                if before != Registration::Off {
                    // An earlier try may have reached Cafe24: start from nothing.
                    app.cafe24
                        .unregister_gateway(mall_id, &access, shop_no)
                        .await?;
                }
                app.cafe24
                    .register_gateway(mall_id, &access, shop_no, &partner_id)
                    .await
            }
        })
        .await;
        let context = "registering the payment gateway";
        through_cafe24(app, mall_id, context, &[WRITE_STORE], registered).await?;
        gateway_on(app, session, shop_no).await?;
        log::info!("mall {mall_id} shop {shop_no}: payment gateway on ({partner_id})");
    } else {
        if before == Registration::Off {
            return Ok(());
        }
        record_gateway(app, mall_id, shop_no, Registration::Unregistering, false).await?;
        if Registration::parse(&shop.script_state) != Registration::Off {
            remove_script(app, mall_id, shop_no).await?;
        }
        let unregistered = tokens::with_access(app, mall_id, |access| async move {
            app.cafe24
                .unregister_gateway(mall_id, &access, shop_no)
                .await
        })
        .await;
        let context = "unregistering the payment gateway";
        through_cafe24(app, mall_id, context, &[WRITE_STORE], unregistered).await?;
        record_gateway(app, mall_id, shop_no, Registration::Off, false).await?;
        log::info!("mall {mall_id} shop {shop_no}: payment gateway off");
    }
    Ok(())
}

/// The loader's URL and integrity, as registered with Cafe24.
fn loader(app: &Services) -> (String, String) {
    let script = crate::external_checkout::loader_script(app.public_base());
    (
        app.public_url("/api/external-checkout/script", &[]),
        crate::external_checkout::integrity(&script),
    )
}

/// Deletes every script tag of this app's loader in the shop, then records `off`.
async fn remove_script(app: &Services, mall_id: &str, shop_no: i32) -> Result<(), SiteError> {
    let (src, _) = loader(app);
    record_script(app, mall_id, shop_no, Registration::Unregistering, None).await?;
    let removed = tokens::with_access(app, mall_id, |access| {
        let src = src.clone();
        async move {
            for tag in app.cafe24.script_tags(mall_id, &access, shop_no).await? {
                if tag.src == src {
                    app.cafe24
                        .delete_script_tag(mall_id, &access, shop_no, &tag.script_no)
                        .await?;
                }
            }
            Ok::<(), Cafe24Error>(())
        }
    })
    .await;
    let scopes = [READ_APPLICATION, WRITE_APPLICATION];
    through_cafe24(app, mall_id, "removing the script tag", &scopes, removed).await?;
    record_script(app, mall_id, shop_no, Registration::Off, None).await
}

/// Turns the shop's external-checkout button on (a script tag for the loader, on the
/// product and basket pages of the shop's skins, with its `integrity`) or off.
pub async fn set_script(
    app: &Services,
    session: &Session,
    shop_no: i32,
    on: bool,
) -> Result<(), SiteError> {
    let mall_id = session.mall_id.as_str();
    let (shop, listed) = shop_row(app, mall_id, shop_no).await?;
    let before = Registration::parse(&shop.script_state);
    if !on {
        if before == Registration::Off {
            return Ok(());
        }
        remove_script(app, mall_id, shop_no).await?;
        log::info!("mall {mall_id} shop {shop_no}: external checkout off");
        return Ok(());
    }
    if Registration::parse(&shop.gateway_state) != Registration::On {
        return Err(SiteError::Form(
            "Turn the shop's payment gateway on before its external checkout".into(),
        ));
    }
    if before == Registration::On {
        return Ok(());
    }
    if before != Registration::Off {
        remove_script(app, mall_id, shop_no).await?;
    }
    record_script(app, mall_id, shop_no, Registration::Registering, None).await?;
    let (src, integrity) = loader(app);
    // The skins of the listing `shop_row` just read: no second `GET /admin/shops`.
    let skins: Vec<i64> = [listed.pc_skin_no, listed.mobile_skin_no]
        .into_iter()
        .flatten()
        .collect();
    let created = tokens::with_access(app, mall_id, |access| {
        let (src, integrity, skins) = (src.clone(), integrity.clone(), skins.clone());
        async move {
            app.cafe24
                .create_script_tag(mall_id, &access, shop_no, &src, &skins, &integrity)
                .await
        }
    })
    .await;
    let context = "installing the script tag";
    let script_no = through_cafe24(app, mall_id, context, &[WRITE_APPLICATION], created).await?;
    record_script(app, mall_id, shop_no, Registration::On, Some(script_no)).await?;
    log::info!("mall {mall_id} shop {shop_no}: external checkout on");
    Ok(())
}

/// The webhook test: with the sandbox, registers the endpoint, has the sandbox send a
/// signed ping and waits (a few seconds at most) for it to arrive; with a real KOMOJU,
/// reports the last ping (the merchant sends one from KOMOJU's dashboard). Returns when
/// the newest signed ping arrived.
pub async fn test_webhook(
    app: &Services,
    session: &Session,
) -> Result<Option<NaiveDateTime>, SiteError> {
    let mall_id = session.mall_id.as_str();
    let last = || async {
        let mall = mall_id.to_owned();
        app.db
            .run(move |c| db::webhook_events::last_received(c, &mall, "ping"))
            .await
            .map_err(|e| db_error("reading the last ping", e))
    };
    if !app.komoju_is_sandbox {
        return last().await;
    }
    let row = merchant_row(app, mall_id).await?;
    let Some(key) = open_secret(app, &row, SECRET_KEY_COLUMN)? else {
        return Err(SiteError::Form("Save your KOMOJU keys first".into()));
    };
    register_sandbox_webhook(app, mall_id).await;
    let before = last().await?;
    app.komoju.sandbox_ping(&key).await.map_err(|e| {
        log::warn!("sandbox ping for {mall_id}: {e}");
        SiteError::Upstream("the KOMOJU sandbox did not send the ping".into())
    })?;
    let deadline = tokio::time::Instant::now() + PING_WAIT;
    loop {
        let now = last().await?;
        if now != before || tokio::time::Instant::now() >= deadline {
            return Ok(now);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Disconnects the mall: removes every script tag and payment-gateway registration at
/// Cafe24, deletes the tokens and disables the mall. The orders stay. When Cafe24 says
/// the app is already gone, what is left is forgotten all the same.
pub async fn disconnect(app: &Services, session: &Session) -> Result<(), SiteError> {
    let mall_id = session.mall_id.as_str();
    let mall = mall_id.to_owned();
    let shops = app
        .db
        .run(move |c| db::merchants::shops(c, &mall))
        .await
        .map_err(|e| db_error("loading the shops", e))?;
    for shop in shops {
        let gone = Registration::parse(&shop.gateway_state) == Registration::Off
            && Registration::parse(&shop.script_state) == Registration::Off;
        if gone {
            continue;
        }
        match set_gateway(app, session, shop.shop_no, false).await {
            Ok(()) | Err(SiteError::NotConnected) | Err(SiteError::UnknownShop) => {}
            Err(e) => return Err(e),
        }
    }
    tokens::forget_mall(app, mall_id)
        .await
        .map_err(|e| db_error("disconnecting", e))?;
    log::info!("mall {mall_id} disconnected by its operator");
    Ok(())
}
