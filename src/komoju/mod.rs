//! The KOMOJU REST client (PROTOCOL.md §7; KOMOJU's Sessions API, seeds
//! `komoju-hosted-page-{en,ja}.txt`).
//!
//! A plain struct around `reqwest::Client`: HTTP Basic with the merchant's secret key
//! (`sk_…:`), JSON bodies, a timeout on every call, and `X-KOMOJU-IDEMPOTENCY` on every
//! POST with a key the caller stored before the call. A 409 (same key still in flight)
//! is retried after a pause with the same key and body. Replies are read into the
//! exact wire types below and converted to [`crate::orders::state::Event`]s beside them.
//!
//! It never decides anything about orders, never logs a secret key or a request body,
//! and never follows redirects.

pub mod webhook;
mod wire;

pub use wire::{
    CreateSession, Payment, PaymentDetails, PaymentMethod, Refund, Session, SessionPaymentData,
};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a POST answered 409 (its idempotency key still in flight at KOMOJU) is tried
/// again with the same key and body (PROTOCOL.md §7), and the first pause between tries
/// (doubling up to [`CONFLICT_PAUSE_MAX`]).
const CONFLICT_DEADLINE: Duration = Duration::from_secs(30);
const CONFLICT_PAUSE: Duration = Duration::from_millis(100);
const CONFLICT_PAUSE_MAX: Duration = Duration::from_secs(2);

/// A failed KOMOJU call. `Display` never includes the secret key or a request body.
#[derive(Debug, thiserror::Error)]
pub enum KomojuError {
    /// KOMOJU answered an error envelope (`{"error":{"code","message","param"}}`).
    /// Branch on `status` (the HTTP status); `code` is an open set (PROTOCOL.md §7:
    /// `bad_request`, `unprocessable_entity`, `not_refundable`, `card_declined`, …),
    /// for logs and reasons.
    #[error("KOMOJU answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        param: Option<String>,
    },
    /// No answer in time.
    #[error("KOMOJU did not answer in time")]
    Timeout,
    /// Connection refused, reset, DNS…
    #[error("KOMOJU could not be reached: {0}")]
    Transport(String),
    /// An answer we cannot read (not the expected JSON, or an unexpected status).
    #[error("KOMOJU answered something unreadable ({status}): {detail}")]
    Unreadable { status: u16, detail: String },
    /// The idempotency key stayed in flight past every retry.
    #[error("KOMOJU kept answering 409 for this idempotency key")]
    StillInFlight,
}

impl KomojuError {
    /// The HTTP status KOMOJU answered with an error envelope; `None` for a timeout, a
    /// transport failure, an unreadable reply or a key still in flight.
    pub fn status(&self) -> Option<u16> {
        match self {
            KomojuError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when KOMOJU refused the request itself (a 4xx other than 409, which is a key
    /// in flight, and 429): sending it again changes nothing. Everything else (5xx,
    /// timeout, transport, unreadable) leaves the outcome unknown.
    pub fn is_refusal(&self) -> bool {
        self.status()
            .is_some_and(|s| (400..500).contains(&s) && s != 409 && s != 429)
    }

    /// The KOMOJU error code, when KOMOJU answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            KomojuError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    param: Option<String>,
}

/// The client. Cheap to clone; one per service.
#[derive(Clone, Debug)]
pub struct KomojuClient {
    http: reqwest::Client,
    base: url::Url,
    /// `base` as text, without a trailing slash, for logs.
    base_text: String,
    /// Where each call is counted (`komoju_requests_total`, its latency histogram).
    metrics: Option<crate::metrics::Metrics>,
    /// `GET /payment_methods` per secret key (see [`KomojuClient::payment_methods_cached`]).
    methods: Arc<Mutex<MethodsCache>>,
}

/// The payment methods of each secret key (by the key's SHA-256), with when they were read.
type MethodsCache = HashMap<[u8; 32], (std::time::Instant, Arc<Vec<PaymentMethod>>)>;

/// How long a merchant's list of payment methods is reused for its sessions.
pub const PAYMENT_METHODS_TTL: Duration = Duration::from_secs(300);

impl KomojuClient {
    /// A client for the API at `base` (e.g. `https://komoju.com/api/v1`), each call
    /// bounded by `timeout`. Errors: `base` is not an absolute URL, or the HTTP client
    /// cannot be built (`Transport`).
    pub fn new(base: &str, timeout: Duration) -> Result<KomojuClient, KomojuError> {
        let base_url = url::Url::parse(base)
            .map_err(|e| KomojuError::Transport(format!("KOMOJU API base is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cafe24-komoju/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| KomojuError::Transport(e.to_string()))?;
        Ok(KomojuClient {
            http,
            base: base_url,
            base_text: base.trim_end_matches('/').to_owned(),
            metrics: None,
            methods: Arc::default(),
        })
    }

    /// The same client, counting every call in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> KomojuClient {
        self.metrics = Some(metrics);
        self
    }

    /// Sends one request of `operation` (e.g. `sessions.create`), recording its status
    /// class and latency.
    async fn send(
        &self,
        operation: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, KomojuError> {
        let started = std::time::Instant::now();
        let sent = request.send().await;
        if let Some(m) = &self.metrics {
            let status = match &sent {
                Ok(r) if r.status().is_success() => "2xx",
                Ok(r) if r.status().is_client_error() => "4xx",
                Ok(r) if r.status().is_server_error() => "5xx",
                Ok(_) => "other",
                Err(e) if e.is_timeout() => "timeout",
                Err(_) => "error",
            };
            m.komoju_call(operation, status, started.elapsed().as_secs_f64());
        }
        sent.map_err(transport)
    }

    /// The API base this client calls.
    pub fn base(&self) -> &str {
        &self.base_text
    }

    /// `base` + the path `segments`, each percent-encoded as a segment.
    fn endpoint(&self, segments: &[&str]) -> url::Url {
        crate::urls::with_path(&self.base, segments)
    }

    /// `POST /sessions` with the exact stored `body` (JSON text) and idempotency key.
    pub async fn create_session(
        &self,
        secret_key: &SecretString,
        idempotency_key: &str,
        body: &str,
    ) -> Result<Session, KomojuError> {
        self.post(secret_key, &["sessions"], idempotency_key, Some(body))
            .await
    }

    /// `GET /sessions/{id}`.
    pub async fn get_session(
        &self,
        secret_key: &SecretString,
        id: &str,
    ) -> Result<Session, KomojuError> {
        self.get(secret_key, &["sessions", path_segment(id)?]).await
    }

    /// `POST /payments/{id}/refund` with the exact stored `body` (`{"amount":…,
    /// "description":…}`; without `amount`, KOMOJU refunds all that is left). Every
    /// payment type: for konbini, bank transfer and Pay-easy the new refund carries a
    /// `redirect_url` where the buyer gives a bank account.
    pub async fn refund_payment(
        &self,
        secret_key: &SecretString,
        idempotency_key: &str,
        payment_id: &str,
        body: &str,
    ) -> Result<Payment, KomojuError> {
        let path = ["payments", path_segment(payment_id)?, "refund"];
        self.post(secret_key, &path, idempotency_key, Some(body))
            .await
    }

    /// `POST /payments/{id}/cancel`, no body (a payment not captured yet: `pending` or
    /// `authorized`).
    pub async fn cancel_payment(
        &self,
        secret_key: &SecretString,
        idempotency_key: &str,
        payment_id: &str,
    ) -> Result<Payment, KomojuError> {
        let path = ["payments", path_segment(payment_id)?, "cancel"];
        self.post(secret_key, &path, idempotency_key, None).await
    }

    /// `POST /payments/{id}/capture`, no body (the full authorized amount): a card
    /// authorization of a manual-capture session (§7; KOMOJU: "Only works on payments
    /// with a payment_type of credit_card"). A payment that cannot be captured is a 4xx
    /// refusal (`not_capturable`, …).
    pub async fn capture_payment(
        &self,
        secret_key: &SecretString,
        idempotency_key: &str,
        payment_id: &str,
    ) -> Result<Payment, KomojuError> {
        let path = ["payments", path_segment(payment_id)?, "capture"];
        self.post(secret_key, &path, idempotency_key, None).await
    }

    /// `POST /sessions/{id}/cancel`, no body (KOMOJU's SessionsApi): the buyer can no
    /// longer pay the session. Before a new checkout attempt replaces an open session.
    pub async fn cancel_session(
        &self,
        secret_key: &SecretString,
        idempotency_key: &str,
        session_id: &str,
    ) -> Result<Session, KomojuError> {
        let path = ["sessions", path_segment(session_id)?, "cancel"];
        self.post(secret_key, &path, idempotency_key, None).await
    }

    /// Development only, against the KOMOJU sandbox (`cafe24-komoju-sandbox`), never a
    /// real KOMOJU: `POST /webhook_endpoints` with `{"url","secret"}`, the sandbox's
    /// stand-in for registering the merchant's webhook in KOMOJU's dashboard. From then on
    /// the sandbox POSTs the payment events of `secret_key` to `url`, signed with
    /// `webhook_secret`. Registering again replaces the endpoint, so calling it before
    /// every session is fine. Neither the key nor the secret is logged.
    pub async fn register_sandbox_webhook(
        &self,
        secret_key: &SecretString,
        url: &str,
        webhook_secret: &SecretString,
    ) -> Result<(), KomojuError> {
        #[derive(Serialize)]
        struct Body<'a> {
            url: &'a str,
            secret: &'a str,
        }
        #[derive(Deserialize)]
        struct Registered {
            registered: bool,
        }
        let request = self
            .http
            .post(self.endpoint(&["webhook_endpoints"]))
            .basic_auth(secret_key.expose_secret(), Some(""))
            .header("Accept", "application/json")
            .json(&Body {
                url,
                secret: webhook_secret.expose_secret(),
            });
        let response = self.send("webhook_endpoints.register", request).await?;
        let status = response.status().as_u16();
        match read::<Registered>(response).await? {
            Registered { registered: true } => Ok(()),
            Registered { registered: false } => Err(KomojuError::Unreadable {
                status,
                detail: "the sandbox did not register the webhook endpoint".into(),
            }),
        }
    }

    /// `GET /payment_methods`: the payment methods KOMOJU offers to the account of
    /// `secret_key`, one entry per type and currency. Also the settings site's check of a
    /// key before it is saved: a refused key is [`KomojuError::Api`] with status 401.
    pub async fn payment_methods(
        &self,
        secret_key: &SecretString,
    ) -> Result<Vec<PaymentMethod>, KomojuError> {
        self.get(secret_key, &["payment_methods"]).await
    }

    /// [`KomojuClient::payment_methods`], kept per secret key for
    /// [`PAYMENT_METHODS_TTL`] so a checkout pays for the list once in a while, not at
    /// every session (the key itself is not kept: its SHA-256 names the entry).
    pub async fn payment_methods_cached(
        &self,
        secret_key: &SecretString,
    ) -> Result<Arc<Vec<PaymentMethod>>, KomojuError> {
        let id: [u8; 32] = Sha256::digest(secret_key.expose_secret().as_bytes()).into();
        if let Some((at, list)) = self.lock_methods().get(&id) {
            if at.elapsed() < PAYMENT_METHODS_TTL {
                return Ok(list.clone());
            }
        }
        let list = Arc::new(self.payment_methods(secret_key).await?);
        self.lock_methods()
            .insert(id, (std::time::Instant::now(), list.clone()));
        Ok(list)
    }

    fn lock_methods(&self) -> std::sync::MutexGuard<'_, MethodsCache> {
        self.methods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Development only, against the KOMOJU sandbox: `POST /webhook_endpoints/ping`, which
    /// makes the sandbox send a signed `ping` event to the endpoint registered for
    /// `secret_key`. A real KOMOJU sends pings from its dashboard.
    pub async fn sandbox_ping(&self, secret_key: &SecretString) -> Result<(), KomojuError> {
        let request = self
            .http
            .post(self.endpoint(&["webhook_endpoints", "ping"]))
            .basic_auth(secret_key.expose_secret(), Some(""))
            .header("Accept", "application/json")
            .json(&serde_json::json!({}));
        let response = self.send("webhook_endpoints.ping", request).await?;
        read::<serde_json::Value>(response).await.map(|_| ())
    }

    /// `GET /payments/{id}`.
    pub async fn get_payment(
        &self,
        secret_key: &SecretString,
        id: &str,
    ) -> Result<Payment, KomojuError> {
        self.get(secret_key, &["payments", path_segment(id)?]).await
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        secret_key: &SecretString,
        path: &[&str],
    ) -> Result<T, KomojuError> {
        let request = self
            .http
            .get(self.endpoint(path))
            .basic_auth(secret_key.expose_secret(), Some(""))
            .header("Accept", "application/json");
        read(self.send(&operation("get", path), request).await?).await
    }

    /// POSTs `body` (JSON text; `None`: no body) with `idempotency_key`. A 409 (the key
    /// still in flight at KOMOJU) is sent again with the same key and body, pausing
    /// between tries, for up to [`CONFLICT_DEADLINE`].
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        secret_key: &SecretString,
        path: &[&str],
        idempotency_key: &str,
        body: Option<&str>,
    ) -> Result<T, KomojuError> {
        let deadline = tokio::time::Instant::now() + CONFLICT_DEADLINE;
        let mut pause = CONFLICT_PAUSE;
        loop {
            let mut request = self
                .http
                .post(self.endpoint(path))
                .basic_auth(secret_key.expose_secret(), Some(""))
                .header("Accept", "application/json")
                .header("X-KOMOJU-IDEMPOTENCY", idempotency_key);
            if let Some(body) = body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_owned());
            }
            let response = self.send(&operation("post", path), request).await?;
            if response.status() != StatusCode::CONFLICT {
                return read(response).await;
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(KomojuError::StillInFlight);
            }
            log::debug!(
                "KOMOJU POST /{}: idempotency key in flight, retrying",
                path.join("/")
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(CONFLICT_PAUSE_MAX);
        }
    }
}

/// The metrics label of a call: `sessions.create`, `sessions.get`, `payments.refund`,
/// `payment_methods.list`… (never an id).
fn operation(method: &str, path: &[&str]) -> String {
    let resource = path.first().copied().unwrap_or("unknown");
    let verb = match (method, path.len()) {
        (_, 3) => path[2],
        ("post", _) => "create",
        ("get", 1) => "list",
        _ => "get",
    };
    format!("{resource}.{verb}")
}

fn transport(e: reqwest::Error) -> KomojuError {
    if e.is_timeout() {
        KomojuError::Timeout
    } else {
        // Without the URL: it is ours, but keep the message short and stable.
        KomojuError::Transport(e.without_url().to_string())
    }
}

async fn read<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, KomojuError> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| KomojuError::Unreadable {
            status: status.as_u16(),
            detail: e.to_string(),
        });
    }
    match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
        Ok(env) => Err(KomojuError::Api {
            status: status.as_u16(),
            code: env.error.code,
            message: env.error.message,
            param: env.error.param,
        }),
        Err(_) => Err(KomojuError::Unreadable {
            status: status.as_u16(),
            detail: "error reply without KOMOJU's error envelope".into(),
        }),
    }
}

/// KOMOJU ids are short alphanumerics; anything else never reaches a URL path.
fn path_segment(id: &str) -> Result<&str, KomojuError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(id)
    } else {
        Err(KomojuError::Api {
            status: 404,
            code: "not_found".into(),
            message: "malformed id".into(),
            param: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::state::Event;

    /// The session example of the seed `komoju-hosted-page-en.txt`, verbatim.
    const SEED_SESSION: &str = r#"{
  "id": "e9x5mvx3jkpkofzcg7umfael6",
  "resource": "session",
  "mode": "payment",
  "amount": 8888,
  "currency": "JPY",
  "payment": null,
  "session_url": "https://komoju.com/sessions/e9x5mvx3jkpkofzcg7umfael6",
  "return_url": "https://example.com",
  "default_locale": "ja",
  "payment_methods": [
    { "type": "credit_card" },
    { "type": "konbini", "brands": { "seven-eleven": "/images/konbini/seven-eleven.svg", "lawson": "/images/konbini/lawson.svg", "family-mart": "/images/konbini/family-mart.svg", "ministop": "/images/konbini/ministop.svg", "daily-yamazaki": "/images/konbini/daily-yamazaki.svg", "seicomart": "/images/konbini/seicomart.svg" } }
  ],
  "created_at": "2020-08-17T18:03:53.000+09:00",
  "cancelled_at": null,
  "completed_at": null,
  "status": "pending"
}"#;

    #[test]
    fn reads_the_seed_session_and_it_says_nothing_yet() {
        let s: Session = serde_json::from_str(SEED_SESSION).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.id, "e9x5mvx3jkpkofzcg7umfael6");
        assert_eq!(s.status, "pending");
        assert_eq!(s.amount, Some(8888));
        assert!(s.payment.is_none());
        assert_eq!(s.to_event(), None);
    }

    #[test]
    fn cancelled_session_with_a_pending_try_is_a_cancel() {
        let json = r#"{"id":"s1","status":"cancelled","payment":{"id":"p1","status":"pending","amount":1,"currency":"JPY","session":"s1"}}"#;
        let s: Session = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.to_event(),
            Some(Event::SessionCancelled {
                session_id: "s1".into()
            })
        );
    }

    #[test]
    fn ids_with_path_characters_never_reach_a_url() {
        assert!(path_segment("abc123").is_ok());
        assert!(path_segment("../payments").is_err());
        assert!(path_segment("a/b").is_err());
        assert!(path_segment("").is_err());
    }
}
