//! What the use cases share, built once by the composition root ([`crate::app::startup`])
//! and handed down: the database, the KOMOJU client, the keys, the allow-list, the
//! clock, and the few settings the use cases read. A use case takes `&Services`, so it
//! runs the same from a route, the command line or a test. This module owns no rule of
//! the protocol; it only holds.

use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::Notify;

use crate::cafe24::callback_url::AllowedHosts;
use crate::cafe24::BodyLimits;
use crate::clock::Clock;
use crate::db::Database;
use crate::keys::order::OrderKeys;
use crate::komoju::{KomojuClient, KomojuError};
use crate::secrets::SecretBox;

/// Everything a use case needs. Built once; shared by every worker and task.
pub struct Services {
    pub db: Database,
    pub komoju: KomojuClient,
    /// Registers merchants' webhook endpoints with KOMOJU over its API, where the KOMOJU
    /// in use offers that; `None` (production) when the merchant registers the URL in
    /// KOMOJU's dashboard. Start-up decides; a use case only calls it when present.
    pub webhook_registrar: Option<WebhookRegistrar>,
    pub secrets: SecretBox,
    pub order_keys: OrderKeys,
    pub allowed_hosts: AllowedHosts,
    pub clock: Clock,
    /// The Cafe24 service key (`CAFE24_SERVICE_KEY`): keys every `hash_data`.
    pub cafe24_service_key: SecretString,
    /// This app's Cafe24 client id (`CAFE24_CLIENT_ID`).
    pub cafe24_client_id: String,
    /// Base of the URLs given to KOMOJU and browsers (`PUBLIC_BASE_URL`).
    pub public_base_url: url::Url,
    /// Limits of every request body.
    pub body_limits: BodyLimits,
    /// Issues and checks the operator API's bearer tokens (from `APP_SECRET`).
    pub operator_keys: crate::keys::operator::OperatorKeys,
    /// Keys the review page's form token ([`crate::keys::form_key`], from `APP_SECRET`).
    pub form_token_key: [u8; 32],
    /// Cafe24's OAuth and Admin API (§12).
    pub cafe24: crate::cafe24::admin::Cafe24Client,
    /// The app's client secret (`CAFE24_CLIENT_SECRET`): keys the launch `hmac`.
    pub cafe24_client_secret: SecretString,
    /// How far a launch's `timestamp` may be from now (`CAFE24_LAUNCH_MAX_AGE_SECS`).
    pub launch_max_age_secs: i64,
    /// The credential Cafe24 sends in `x-api-key` with lifecycle webhooks
    /// (`CAFE24_WEBHOOK_API_KEY`); `None` (development only) skips the check.
    pub cafe24_webhook_api_key: Option<SecretString>,
    /// The settings site's sessions and CSRF tokens (from `APP_SECRET`).
    pub session_keys: crate::keys::session::SessionKeys,
    /// Cookies carry `Secure` (production).
    pub cookie_secure: bool,
    /// The Prometheus registry and the domain counters (§13).
    pub metrics: crate::metrics::Metrics,
    /// Merchants recently read and opened (`MERCHANT_CACHE_SECS`).
    pub merchants: crate::merchant::cache::Merchants,
    /// Wakes the outbox worker after a commit that enqueued notifications.
    pub outbox_wake: Arc<Notify>,
    /// External checkout's `/script/hmac`: requests per (client address, mall).
    pub hmac_limiter: governor::DefaultKeyedRateLimiter<(String, String)>,
}

impl Services {
    /// `PUBLIC_BASE_URL` without its trailing slash (the loader script's base).
    pub fn public_base(&self) -> &str {
        self.public_base_url.as_str().trim_end_matches('/')
    }

    /// A URL of this service: `PUBLIC_BASE_URL` with `path` (`/api/…`) appended to its
    /// path and `query` to its query, built by [`crate::urls`].
    pub fn public_url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        crate::urls::with_query(
            crate::urls::with_path(&self.public_base_url, &segments),
            query,
        )
        .into()
    }
}

impl Services {
    /// The URL KOMOJU posts the payment events of `mall_id`'s merchant to (PROTOCOL.md
    /// §8): what the merchant registers in KOMOJU's dashboard, or the
    /// [`WebhookRegistrar`] registers.
    pub fn komoju_webhook_url(&self, mall_id: &str) -> String {
        self.public_url(
            "/api/asynchronous-checkout/checkout/webhook",
            &[("mall_id", mall_id)],
        )
    }
}

/// Registers a merchant's webhook endpoint with KOMOJU over its API and asks KOMOJU for
/// a signed `ping`: what a merchant does in KOMOJU's dashboard, done by the service when
/// the KOMOJU it talks to offers it (the development sandbox's `POST
/// /webhook_endpoints`). Built by [`crate::app::startup`] only then. Cheap to clone;
/// neither key nor secret is logged.
#[derive(Debug, Clone)]
pub struct WebhookRegistrar {
    komoju: KomojuClient,
}

impl WebhookRegistrar {
    /// A registrar calling the KOMOJU of `komoju`.
    pub fn new(komoju: KomojuClient) -> WebhookRegistrar {
        WebhookRegistrar { komoju }
    }

    /// Has KOMOJU post the payment events of `secret_key`'s account to `url`, signed
    /// with `webhook_secret`. Registering again replaces the endpoint, so repeating it is
    /// harmless. Errors: [`KomojuError`].
    pub async fn register(
        &self,
        secret_key: &SecretString,
        url: &str,
        webhook_secret: &SecretString,
    ) -> Result<(), KomojuError> {
        self.komoju
            .register_sandbox_webhook(secret_key, url, webhook_secret)
            .await
    }

    /// Has KOMOJU send a signed `ping` to the endpoint registered for `secret_key`.
    /// Errors: [`KomojuError`].
    pub async fn ping(&self, secret_key: &SecretString) -> Result<(), KomojuError> {
        self.komoju.sandbox_ping(secret_key).await
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("db", &self.db.backend_name())
            .field("komoju", &self.komoju.base())
            .field("webhook_registrar", &self.webhook_registrar.is_some())
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Order `order_pk` and its merchant, for a background task acting on the order
    /// (`what` names the task in the log). `None`, logged, when the order is gone or its
    /// merchant cannot be loaded now (disabled, keys that do not open): the task leaves
    /// it for a later pass. Errors: the database.
    pub async fn order_with_merchant(
        &self,
        order_pk: &str,
        what: &str,
    ) -> Result<Option<(crate::db::orders::OrderRow, crate::merchant::Merchant)>, crate::db::DbError>
    {
        let pk = order_pk.to_owned();
        let Some(order) = self
            .db
            .run(move |c| crate::db::orders::find(c, &pk))
            .await?
        else {
            log::warn!("{what}: order {order_pk} is gone");
            return Ok(None);
        };
        match self.merchants.load(&order.mall_id, None).await {
            Ok(merchant) => Ok(Some((order, merchant))),
            Err(e) => {
                log::warn!(
                    "{what} of order {}: merchant {}: {e}",
                    order.order_id,
                    order.mall_id
                );
                Ok(None)
            }
        }
    }
}
