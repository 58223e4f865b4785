//! The merchant's KOMOJU webhook: the events it subscribes to, registering its endpoint
//! where the service does that itself (a [`WebhookRegistrar`] from start-up; with a real
//! KOMOJU the merchant does it in KOMOJU's dashboard), and the webhook test (a ping).

use chrono::NaiveDateTime;

use super::merchant_keys::{merchant_row, open_secret, KomojuSecret};
use super::{db_error, SiteError};
use crate::db;
use crate::keys::session::Session;
use crate::services::{Services, WebhookRegistrar};

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
/// How long the webhook test waits for the requested ping to arrive.
const PING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often the webhook test looks for the ping meanwhile.
const PING_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Registers the mall's webhook endpoint with KOMOJU when the service has a registrar;
/// a failure is logged, never the merchant's error (the settings are saved).
pub(super) async fn register_endpoint(app: &Services, mall_id: &str) {
    let Some(registrar) = &app.webhook_registrar else {
        return;
    };
    match app.merchants.load(mall_id, None).await {
        Ok(m) => {
            let url = app.komoju_webhook_url(mall_id);
            let registered = registrar
                .register(&m.komoju_secret_key, &url, &m.komoju_webhook_secret)
                .await;
            if let Err(e) = registered {
                log::warn!("registering the KOMOJU webhook of {mall_id}: {e}");
            }
        }
        Err(e) => log::warn!("registering the KOMOJU webhook of {mall_id}: {e}"),
    }
}

/// The webhook test. With a registrar: registers the endpoint, has KOMOJU send a signed
/// ping and waits (`PING_WAIT` at most) for it to arrive; without one: reports the last
/// ping (the merchant sends one from KOMOJU's dashboard). Returns when the newest signed
/// ping arrived. Errors: no key saved ([`SiteError::Form`]), KOMOJU did not send the
/// ping, the database.
pub async fn test_webhook(
    app: &Services,
    session: &Session,
) -> Result<Option<NaiveDateTime>, SiteError> {
    let mall_id = session.mall_id.as_str();
    let Some(registrar) = &app.webhook_registrar else {
        return last_ping(app, mall_id).await;
    };
    let row = merchant_row(app, mall_id).await?;
    let Some(key) = open_secret(app, &row, KomojuSecret::SecretKey)? else {
        return Err(SiteError::Form("Save your KOMOJU keys first".into()));
    };
    register_endpoint(app, mall_id).await;
    let before = last_ping(app, mall_id).await?;
    request_ping(registrar, mall_id, &key).await?;
    let deadline = tokio::time::Instant::now() + PING_WAIT;
    loop {
        let now = last_ping(app, mall_id).await?;
        if now != before || tokio::time::Instant::now() >= deadline {
            return Ok(now);
        }
        tokio::time::sleep(PING_POLL).await;
    }
}

async fn request_ping(
    registrar: &WebhookRegistrar,
    mall_id: &str,
    key: &secrecy::SecretString,
) -> Result<(), SiteError> {
    registrar.ping(key).await.map_err(|e| {
        log::warn!("KOMOJU ping for {mall_id}: {e}");
        SiteError::Upstream("KOMOJU did not send the ping".into())
    })
}

/// When the newest signed `ping` of the mall arrived.
async fn last_ping(app: &Services, mall_id: &str) -> Result<Option<NaiveDateTime>, SiteError> {
    let mall = mall_id.to_owned();
    app.db
        .run(move |c| db::webhook_events::last_received(c, &mall, "ping"))
        .await
        .map_err(|e| db_error("reading the last ping", e))
}
