//! Installing the app from Cafe24 (PROTOCOL.md §12): the launch, the OAuth authorization
//! round, the mall's tokens in use ([`tokens`]), the merchant's session ([`crate::keys::session`]),
//! the settings site ([`settings`]) and Cafe24's app-lifecycle events ([`lifecycle`]).
//!
//! A launch URL is single use: the SHA-256 of its decoded `hmac` is recorded until its
//! window has passed, and a second use is refused. Who launched decides what follows:
//! the representative operator (`user_type=P`) gets a session that may change
//! everything, a sub-operator (`A`) a read-only one (and cannot connect a mall), a
//! supplier (`S`) none. Every session carries the mall's session generation, so a
//! disconnect ends them all.
//!
//! The launch's signature is [`crate::cafe24::launch`]'s rule and the calls to Cafe24
//! are [`crate::cafe24::admin`]'s; this module decides what they lead to.

pub mod lifecycle;
pub mod settings;
pub mod tokens;

use actix_web::http::StatusCode;
use secrecy::SecretString;

use crate::cafe24::admin::Cafe24Error;
use crate::cafe24::launch::{Launch, LaunchError};
use crate::db::{self, cafe24::StateRow, merchants::MerchantRow};
use crate::keys::session::{NewSession, USER_TYPE_OPERATOR, USER_TYPE_SUB_OPERATOR};
use crate::services::Services;

/// How long an OAuth `state` stays valid.
pub const STATE_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// Longest `partner_id` Cafe24 stores.
pub const PARTNER_ID_MAX: usize = 50;
/// Length of a generated `public_ref` when the mall id leaves room for it.
const PUBLIC_REF_LEN: usize = 16;
/// Shortest `public_ref` generated (a mall id too long to leave this much is refused).
const PUBLIC_REF_MIN: usize = 8;

/// Why a launch or a callback was refused. Each is a page with [`InstallError::status`]
/// and its message; none changed anything stored but a used `state`.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Launch(#[from] LaunchError),
    #[error("this launch link was already used; open the app again from the Cafe24 admin")]
    LaunchReused,
    #[error("suppliers cannot open the KOMOJU payment settings of the mall; ask the mall's representative operator")]
    Supplier,
    #[error("the launch's user_type is not one of a mall's operators")]
    UnknownUserType,
    #[error("only the mall's representative operator can connect the app to the mall; ask them to open it from the Cafe24 admin")]
    NotOperator,
    #[error("Cafe24 refused the app's own credentials; the app's operator must check CAFE24_CLIENT_ID and CAFE24_CLIENT_SECRET")]
    AppCredentials,
    #[error("the authorization's state is missing, wrong, used or expired; open the app from the Cafe24 admin again")]
    BadState,
    #[error("the authorization was refused in Cafe24")]
    Denied,
    #[error(
        "Cafe24 did not accept the authorization code; open the app from the Cafe24 admin again"
    )]
    GrantRefused,
    #[error("Cafe24's token reply is for another mall than the one that launched the app")]
    OtherMall,
    #[error("the mall id is too long to build a Cafe24 partner_id of at most 50 characters")]
    MallIdTooLong,
    #[error("Cafe24 could not be reached; try again in a moment")]
    Upstream,
    #[error("the service is temporarily unavailable; try again in a moment")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl InstallError {
    /// The HTTP status of the page.
    pub fn status(&self) -> StatusCode {
        match self {
            InstallError::Launch(_)
            | InstallError::LaunchReused
            | InstallError::Supplier
            | InstallError::UnknownUserType
            | InstallError::NotOperator => StatusCode::FORBIDDEN,
            InstallError::AppCredentials => StatusCode::BAD_GATEWAY,
            InstallError::BadState
            | InstallError::Denied
            | InstallError::GrantRefused
            | InstallError::OtherMall
            | InstallError::MallIdTooLong => StatusCode::BAD_REQUEST,
            InstallError::Upstream => StatusCode::BAD_GATEWAY,
            InstallError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            InstallError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn from_db(context: &str, e: db::DbError) -> InstallError {
        log::error!("{context}: {e}");
        if e.is_unavailable() {
            InstallError::Unavailable
        } else {
            InstallError::Internal
        }
    }
}

/// Where a launch leads.
#[derive(Debug)]
pub enum Launched {
    /// The mall has a live token: a fresh session (the cookie value) and the settings
    /// page.
    Settings { session: String, location: String },
    /// The mall must authorize the app: the `state` (the cookie value that binds it to
    /// this browser) and the authorize URL.
    Authorize { state: String, location: String },
}

/// The settings page of `mall_id`.
pub fn settings_location(app: &Services, mall_id: &str) -> String {
    app.public_url(&format!("/settings/{mall_id}"), &[])
}

/// The OAuth redirect URI registered in the Developer Center.
pub fn redirect_uri(app: &Services) -> String {
    app.public_url("/cafe24/oauth/callback", &[])
}

/// `GET /cafe24/launch` with its raw query (§12). Errors: a bad, stale or reused launch,
/// a supplier, a sub-operator where the mall must first be connected (403); the database
/// unavailable.
pub async fn launch(app: &Services, raw_query: &str) -> Result<Launched, InstallError> {
    let launch = verified(app, raw_query).await?;
    let mall = launch.mall_id.clone();
    let (has_merchant, generation) = app
        .db
        .run(move |c| {
            Ok((
                db::merchants::find(c, &mall)?.is_some(),
                db::cafe24::session_generation(c, &mall)?,
            ))
        })
        .await
        .map_err(|e| InstallError::from_db("launch", e))?;
    let granted = tokens::granted_scopes(app, &launch.mall_id)
        .await
        .map_err(|e| InstallError::from_db("launch", e))?;
    let operator = launch.user_type == USER_TYPE_OPERATOR;
    let scopes_missing = granted.as_ref().is_some_and(|g| {
        app.cafe24
            .scopes()
            .iter()
            .any(|s| !g.iter().any(|h| h == s))
    });
    match (has_merchant, granted) {
        // Connected: the settings, unless the representative operator should grant a
        // scope the app now asks for.
        (true, Some(_)) if !(operator && scopes_missing) => open_settings(app, &launch, generation),
        _ if !operator => {
            log::info!(
                "launch of {} by {} (user_type {}): not connected, and only the representative operator may connect it",
                launch.mall_id,
                launch.user_id,
                launch.user_type
            );
            Err(InstallError::NotOperator)
        }
        _ => ask_authorization(app, &launch).await,
    }
}

/// The launch checked (signature, age, `user_type`) and recorded as used.
async fn verified(app: &Services, raw_query: &str) -> Result<Launch, InstallError> {
    let launch = crate::cafe24::launch::verify(
        raw_query,
        &app.cafe24_client_secret,
        app.clock.unix_seconds(),
        app.launch_max_age_secs,
    )
    .map_err(|e| {
        log::warn!("launch refused: {e}");
        e
    })?;
    match launch.user_type.as_str() {
        USER_TYPE_OPERATOR | USER_TYPE_SUB_OPERATOR => {}
        "S" => {
            log::info!(
                "launch of {} by supplier {}: no session",
                launch.mall_id,
                launch.user_id
            );
            return Err(InstallError::Supplier);
        }
        _ => {
            log::warn!(
                "launch of {} with an unknown user_type: refused",
                launch.mall_id
            );
            return Err(InstallError::UnknownUserType);
        }
    }
    let now = app.clock.now_naive();
    let ends = chrono::DateTime::from_timestamp(launch.timestamp + app.launch_max_age_secs, 0)
        .map(|t| t.naive_utc())
        .unwrap_or(now);
    let hash = crate::secrets::sha256_hex(&base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &launch.tag,
    ));
    let mall = launch.mall_id.clone();
    let first = app
        .db
        .run(move |c| db::cafe24::use_launch(c, &hash, &mall, ends, now))
        .await
        .map_err(|e| InstallError::from_db("recording the launch", e))?;
    if !first {
        log::warn!(
            "launch of {} refused: the same launch URL was used before",
            launch.mall_id
        );
        return Err(InstallError::LaunchReused);
    }
    Ok(launch)
}

/// A fresh session of the launching operator and the settings page.
fn open_settings(
    app: &Services,
    launch: &Launch,
    generation: i64,
) -> Result<Launched, InstallError> {
    log::info!(
        "launch of {} by {} (user_type {}): session opened",
        launch.mall_id,
        launch.user_id,
        launch.user_type
    );
    let session = app
        .session_keys
        .issue(
            &NewSession {
                mall_id: &launch.mall_id,
                user_id: &launch.user_id,
                lang: &launch.lang,
                user_type: &launch.user_type,
                generation,
            },
            app.clock.unix_seconds(),
        )
        .ok_or(InstallError::Internal)?;
    Ok(Launched::Settings {
        session,
        location: settings_location(app, &launch.mall_id),
    })
}

/// A new OAuth `state` bound to this browser and the mall, and Cafe24's authorize URL.
async fn ask_authorization(app: &Services, launch: &Launch) -> Result<Launched, InstallError> {
    let now = app.clock.now_naive();
    let state = crate::secrets::random_token(24);
    let row = StateRow {
        state_hash: crate::secrets::sha256_hex(&state),
        mall_id: launch.mall_id.clone(),
        user_id: launch.user_id.clone(),
        lang: launch.lang.clone(),
        created_at: now,
        used_at: None,
    };
    app.db
        .run(move |c| db::cafe24::insert_state(c, &row, now - STATE_TTL))
        .await
        .map_err(|e| InstallError::from_db("storing the OAuth state", e))?;
    let location = app
        .cafe24
        .authorize_url(&launch.mall_id, &state, &redirect_uri(app))
        .map_err(|e| {
            log::error!("authorize URL: {e}");
            InstallError::Internal
        })?;
    log::info!(
        "launch of {} by {}: authorization asked",
        launch.mall_id,
        launch.user_id
    );
    Ok(Launched::Authorize { state, location })
}

/// The query of `GET /cafe24/oauth/callback`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// `GET /cafe24/oauth/callback` (§12): checks `state` against the browser's cookie and
/// the stored nonce (single use, 10 minutes), exchanges the code, checks the reply's
/// `mall_id`, stores the tokens sealed and the merchant if new (disabled until its KOMOJU
/// keys are set). Returns the session cookie value and the settings page. Errors:
/// [`InstallError`], each a page.
pub async fn callback(
    app: &Services,
    query: Callback,
    state_cookie: Option<&str>,
) -> Result<(String, String), InstallError> {
    let now = app.clock.now_naive();
    let started = use_state(app, query.state.as_deref(), state_cookie).await?;
    if query.error.is_some() {
        log::info!("mall {}: authorization refused in Cafe24", started.mall_id);
        return Err(InstallError::Denied);
    }
    let code = query
        .code
        .filter(|c| !c.is_empty() && c.len() <= 512)
        .map(SecretString::from)
        .ok_or(InstallError::GrantRefused)?;
    let grant = exchange(app, &started.mall_id, &code).await?;
    let mall_id = started.mall_id.clone();
    let tokens =
        tokens::sealed_row(app, &mall_id, &grant, now).map_err(|_| InstallError::Internal)?;
    let merchant = new_merchant(&mall_id, &started.lang, now)?;
    let (created, generation) = store_installation(app, tokens, merchant, now).await?;
    log::info!(
        "mall {mall_id} authorized the app (user {}){}",
        started.user_id,
        if created { "; merchant created" } else { "" }
    );
    // Only the representative operator is sent to authorize (`launch`), so the session of
    // a new installation is theirs.
    let session = app
        .session_keys
        .issue(
            &NewSession {
                mall_id: &mall_id,
                user_id: &started.user_id,
                lang: &started.lang,
                user_type: USER_TYPE_OPERATOR,
                generation,
            },
            app.clock.unix_seconds(),
        )
        .ok_or(InstallError::Internal)?;
    Ok((session, settings_location(app, &mall_id)))
}

/// The authorization round `state` started, used up: `state` must be the one this
/// browser's cookie carries and stored, unused and younger than [`STATE_TTL`]. Errors:
/// [`InstallError::BadState`], the database.
async fn use_state(
    app: &Services,
    state: Option<&str>,
    state_cookie: Option<&str>,
) -> Result<StateRow, InstallError> {
    let now = app.clock.now_naive();
    let state = state
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or(InstallError::BadState)?;
    let cookie = state_cookie.ok_or(InstallError::BadState)?;
    let hash = crate::secrets::sha256_hex(state);
    if crate::secrets::sha256_hex(cookie) != hash {
        log::warn!("OAuth callback: state not bound to this browser");
        return Err(InstallError::BadState);
    }
    let used = app
        .db
        .run(move |c| db::cafe24::use_state(c, &hash, now - STATE_TTL, now))
        .await
        .map_err(|e| InstallError::from_db("OAuth state", e))?;
    used.ok_or_else(|| {
        log::warn!("OAuth callback: state unknown, used or expired");
        InstallError::BadState
    })
}

/// Exchanges the authorization `code` for `mall_id`'s tokens; the reply must name the
/// same mall. Errors: Cafe24 refused the code or the app's credentials, or failed; the
/// reply names another mall ([`InstallError::OtherMall`], nothing stored).
async fn exchange(
    app: &Services,
    mall_id: &str,
    code: &SecretString,
) -> Result<crate::cafe24::oauth::TokenGrant, InstallError> {
    let grant = app
        .cafe24
        .exchange_code(mall_id, code, &redirect_uri(app))
        .await
        .map_err(|e| {
            log::warn!("mall {mall_id}: code exchange failed: {e}");
            match e {
                Cafe24Error::Grant { .. } => InstallError::GrantRefused,
                Cafe24Error::AppCredentials { .. } => InstallError::AppCredentials,
                _ => InstallError::Upstream,
            }
        })?;
    if grant.mall_id != mall_id {
        log::warn!("mall {mall_id}: Cafe24's token reply names another mall; nothing stored");
        return Err(InstallError::OtherMall);
    }
    Ok(grant)
}

/// Stores the tokens and the merchant if new, in one transaction; a merchant installed
/// again (after a disconnect) is enabled again only if its KOMOJU keys are set. Returns
/// whether the merchant was created and the mall's session generation.
async fn store_installation(
    app: &Services,
    tokens: db::cafe24::TokenRow,
    merchant: MerchantRow,
    now: chrono::NaiveDateTime,
) -> Result<(bool, i64), InstallError> {
    app.db
        .run(move |c| {
            db::transaction(c, |c| {
                db::cafe24::save_token(c, &tokens)?;
                let created = db::merchants::insert_if_new(c, &merchant)?;
                if !created {
                    // Installed again (after a disconnect): usable again once its KOMOJU
                    // keys are set, as a new one is.
                    if let Some(mut row) = db::merchants::find(c, &merchant.mall_id)? {
                        row.enabled = !row.komoju_secret_key.is_empty()
                            && !row.komoju_webhook_secret.is_empty();
                        row.updated_at = now;
                        db::merchants::update(c, &row)?;
                    }
                }
                Ok((
                    created,
                    db::cafe24::session_generation(c, &merchant.mall_id)?,
                ))
            })
        })
        .await
        .map_err(|e| InstallError::from_db("storing the Cafe24 tokens", e))
}

/// The merchant row of a newly installed mall: no KOMOJU keys, disabled, a fresh
/// `public_ref` short enough that `{mall_id}:{shop_no}:{public_ref}` fits in 50
/// characters for any shop number.
fn new_merchant(
    mall_id: &str,
    lang: &str,
    now: chrono::NaiveDateTime,
) -> Result<MerchantRow, InstallError> {
    let room = PARTNER_ID_MAX.saturating_sub(mall_id.len() + 2 + 4);
    if room < PUBLIC_REF_MIN {
        return Err(InstallError::MallIdTooLong);
    }
    let public_ref: String = crate::secrets::random_token(24)
        .chars()
        .take(room.min(PUBLIC_REF_LEN))
        .collect();
    Ok(MerchantRow {
        mall_id: mall_id.to_owned(),
        public_ref,
        komoju_secret_key: String::new(),
        komoju_webhook_secret: String::new(),
        payment_types: crate::merchant::kinds::PaymentTypes::from_list(&["credit_card"]),
        locale: crate::merchant::Locale::of_lang(lang).unwrap_or(crate::merchant::Locale::En),
        cancel_mode: crate::merchant::CancelMode::Sync,
        allowed_hosts: String::new(),
        paymethod_codes: String::new(),
        enabled: false,
        created_at: now,
        updated_at: now,
        notify_encoding: crate::merchant::NotifyEncoding::Form,
        external_review: false,
        refund_duplicates: true,
        capture: crate::merchant::CaptureMode::Auto,
        auto_capture_after_days: 7,
    })
}
