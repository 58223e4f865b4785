//! The Cafe24 OAuth and Admin API client (PROTOCOL.md §12; Cafe24's OAuth guide and
//! Admin API reference: `shops`, `paymentgateway`, `scripttags`).
//!
//! A plain struct around `reqwest::Client`, like the KOMOJU client: the base URL of a
//! mall's API is `CAFE24_API_BASE` with `{mall_id}` replaced; OAuth calls send HTTP Basic
//! `client_id:client_secret` and a form; Admin API calls send `Authorization: Bearer`,
//! `X-Cafe24-Api-Version` and JSON `{"shop_no", "request"}`. A 429 is retried after a
//! pause (`Retry-After`, at most 2 s, three times); 401 and 403 are returned as their own
//! errors for the caller ([`crate::install::tokens`]) to refresh, confirm or disconnect.
//!
//! Whose fault a token refusal is (PROTOCOL.md §12): `invalid_client`, and
//! `invalid_grant` with `Invalid client_secret`, are the app's own credentials
//! ([`Cafe24Error::AppCredentials`], counted in
//! `cafe24_komoju_cafe24_app_credentials_refused_total`); any other refusal is the
//! grant's ([`Cafe24Error::Grant`]). Error bodies are read as Cafe24 sends them,
//! `{"error":{"code":<integer>,"message","more_info"}}`, and every failed call is logged
//! with Cafe24's `X-Trace_ID`. Token times carry no zone and are Korean time (KST).
//!
//! It never logs or returns a token, a code or the client secret, never follows
//! redirects, and decides nothing about merchants.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

/// How often a 429 is tried again, and the longest pause honoured.
pub(super) const RATE_LIMIT_RETRIES: u32 = 3;
const RATE_LIMIT_PAUSE_MAX: Duration = Duration::from_secs(2);
/// The header that names a Cafe24 reply for Cafe24's support (PROTOCOL.md §12).
const TRACE_HEADER: &str = "x-trace_id";
/// A failed Cafe24 call. `Display` never includes a token, a code or a body we sent.
#[derive(Debug, thiserror::Error)]
pub enum Cafe24Error {
    /// 401: the access token is not (or no longer) valid.
    #[error("Cafe24 refused the access token (401)")]
    Unauthorized,
    /// 403: the app is not installed on the mall, or the token lacks the call's scope
    /// (or the client is not authorized for the API). `message` is Cafe24's, printable
    /// and at most 200 characters.
    #[error("Cafe24 refused the call (403): {message}")]
    Forbidden { message: String },
    /// 404 from the Admin API.
    #[error("Cafe24 has no such resource (404)")]
    NotFound,
    /// 429 after every retry.
    #[error("Cafe24 kept answering 429 (rate limit)")]
    RateLimited,
    /// The OAuth token endpoint refused the grant itself (`invalid_grant` for a code or
    /// refresh token that does not hold, …): the mall must authorize again.
    #[error("Cafe24 refused the token request ({status} {error})")]
    Grant { status: u16, error: String },
    /// The OAuth token endpoint refused the app's own credentials (`invalid_client`, or
    /// `invalid_grant` with `Invalid client_secret`): `CAFE24_CLIENT_ID` or
    /// `CAFE24_CLIENT_SECRET` is wrong or was rotated. No mall is at fault.
    #[error("Cafe24 refused the app's client credentials ({status} {error}): check CAFE24_CLIENT_ID and CAFE24_CLIENT_SECRET")]
    AppCredentials { status: u16, error: String },
    /// Any other error status, with Cafe24's integer `code` and message.
    #[error("Cafe24 answered {status}: {message}")]
    Api {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    #[error("Cafe24 did not answer in time")]
    Timeout,
    #[error("Cafe24 could not be reached: {0}")]
    Transport(String),
    #[error("Cafe24 answered something unreadable ({status}): {detail}")]
    Unreadable { status: u16, detail: String },
}

/// A failed Admin API call (`what`: method and path), logged with Cafe24's integer
/// `code` and `X-Trace_ID`, as the error the caller decides on.
fn admin_failure(
    mall_id: &str,
    what: &str,
    status: StatusCode,
    trace: &str,
    bytes: &[u8],
) -> Cafe24Error {
    let (code, message) = error_of(bytes);
    let shown = code.map_or_else(|| "-".to_owned(), |c| c.to_string());
    log::warn!("Cafe24 {what} for mall {mall_id} answered {status} (code {shown}, X-Trace_ID {trace}): {message}");
    match status {
        StatusCode::UNAUTHORIZED => Cafe24Error::Unauthorized,
        StatusCode::FORBIDDEN => Cafe24Error::Forbidden { message },
        StatusCode::NOT_FOUND => Cafe24Error::NotFound,
        StatusCode::TOO_MANY_REQUESTS => Cafe24Error::RateLimited,
        s => Cafe24Error::Api {
            status: s.as_u16(),
            code,
            message,
        },
    }
}

/// Cafe24's error body, `{"error":{"code":422,"message":"…","more_info":{…}}}`: `code`
/// is an integer (PROTOCOL.md §12; its reference's "에러 응답 예제" shows the shape with
/// placeholders).
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// Cafe24's integer `code` and message of an error body, when it is one.
fn error_of(bytes: &[u8]) -> (Option<i64>, String) {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => (
            body.error.code,
            body.error
                .message
                .as_deref()
                .and_then(|m| crate::text::printable(m, 200))
                .unwrap_or_default()
                .to_owned(),
        ),
        Err(_) => (None, String::new()),
    }
}

/// The `X-Trace_ID` of a reply, printable, for the log ("-" when absent).
pub(super) fn trace_of(reply: &reqwest::Response) -> String {
    reply
        .headers()
        .get(TRACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::text::printable(v, 100))
        .filter(|v| !v.is_empty())
        .unwrap_or("-")
        .to_owned()
}

/// One shop of a mall (`GET /admin/shops`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Shop {
    pub shop_no: i32,
    pub shop_name: String,
    #[serde(default)]
    pub currency_code: String,
    #[serde(default)]
    pub language_code: String,
    /// The shop's IANA time zone, e.g. `Asia/Seoul` (`shops[].timezone`).
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub primary_domain: String,
    #[serde(default)]
    pub pc_skin_no: Option<i64>,
    #[serde(default)]
    pub mobile_skin_no: Option<i64>,
}

/// A script tag of a shop (`GET /admin/scripttags`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ScriptTag {
    pub script_no: String,
    #[serde(default)]
    pub src: String,
}

/// The client: one per process, shared by every mall.
#[derive(Clone)]
pub struct Cafe24Client {
    pub(super) http: reqwest::Client,
    /// `CAFE24_API_BASE` as the service calls it, with `{mall_id}` to replace.
    pub(super) api_base: String,
    /// The same as a browser reaches it (differs from `api_base` only for the mounted
    /// sandbox, which the service calls over loopback).
    pub(super) browser_base: String,
    pub(super) api_version: String,
    pub(super) client_id: String,
    pub(super) client_secret: SecretString,
    pub(super) scopes: String,
    /// Token requests refused for the app's own credentials (none until
    /// [`Cafe24Client::with_metrics`]).
    pub(super) app_credentials_refused: Option<prometheus::IntCounter>,
}

impl std::fmt::Debug for Cafe24Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cafe24Client")
            .field("api_base", &self.api_base)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// The client's settings (`CAFE24_*`).
#[derive(Debug, Clone)]
pub struct Cafe24Config {
    pub api_base: String,
    pub browser_base: String,
    pub api_version: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: String,
    pub timeout: Duration,
}

impl Cafe24Client {
    /// Builds the client. Errors: the HTTP client cannot be built.
    pub fn new(config: Cafe24Config) -> Result<Cafe24Client, Cafe24Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Cafe24Error::Transport(e.to_string()))?;
        Ok(Cafe24Client {
            http,
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            browser_base: config.browser_base.trim_end_matches('/').to_owned(),
            api_version: config.api_version,
            client_id: config.client_id,
            client_secret: config.client_secret,
            scopes: config.scopes,
            app_credentials_refused: None,
        })
    }

    /// Counts, on `registry`, token requests Cafe24 refused for the app's own credentials:
    /// `cafe24_komoju_cafe24_app_credentials_refused_total` (an operator alert:
    /// `docs/prometheus-alerts.yml`, `Cafe24AppCredentialsRefused`).
    pub fn with_metrics(mut self, registry: &prometheus::Registry) -> Cafe24Client {
        let opts = prometheus::Opts::new(
            "cafe24_app_credentials_refused_total",
            "Cafe24 token requests refused for the app's own credentials (CAFE24_CLIENT_ID / CAFE24_CLIENT_SECRET wrong or rotated)",
        )
        .namespace(crate::metrics::NAMESPACE);
        match prometheus::IntCounter::with_opts(opts) {
            Ok(counter) => {
                if let Err(e) = registry.register(Box::new(counter.clone())) {
                    log::error!("metric cafe24_app_credentials_refused_total not registered: {e}");
                }
                self.app_credentials_refused = Some(counter);
            }
            Err(e) => log::error!("metric cafe24_app_credentials_refused_total: {e}"),
        }
        self
    }

    /// The scopes asked at authorization (`CAFE24_SCOPES`), one by one.
    pub fn scopes(&self) -> Vec<&str> {
        self.scopes
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The API base as configured (with `{mall_id}`), for logs.
    pub fn base(&self) -> &str {
        &self.api_base
    }

    /// `https://{mall_id}.cafe24api.com/api/v2/…`: the mall's base with `path` appended.
    pub(super) fn url(base: &str, mall_id: &str, path: &[&str]) -> Result<url::Url, Cafe24Error> {
        let base = url::Url::parse(&base.replace("{mall_id}", mall_id))
            .map_err(|e| Cafe24Error::Transport(format!("CAFE24_API_BASE: {e}")))?;
        let mut segments = vec!["api", "v2"];
        segments.extend_from_slice(path);
        Ok(crate::urls::with_path(&base, &segments))
    }

    /// One Admin API call: `method` on `/api/v2/admin/{path}` with `query` and, for POST
    /// and PUT, the JSON `body`. Returns the reply's JSON.
    pub async fn call(
        &self,
        mall_id: &str,
        access_token: &SecretString,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, Cafe24Error> {
        let mut segments = vec!["admin"];
        segments.extend_from_slice(path);
        let url = crate::urls::with_query(
            Cafe24Client::url(&self.api_base, mall_id, &segments)?,
            query,
        );
        let mut attempt = 0;
        let reply = loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(access_token.expose_secret())
                .header("X-Cafe24-Api-Version", &self.api_version);
            if let Some(body) = body {
                request = request.json(body);
            }
            let sent = request.send().await.map_err(transport)?;
            if sent.status() == StatusCode::TOO_MANY_REQUESTS && attempt < RATE_LIMIT_RETRIES {
                attempt += 1;
                let wait = pause(&sent);
                log::info!("Cafe24 rate limit for mall {mall_id}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                continue;
            }
            break sent;
        };
        let status = reply.status();
        let trace = trace_of(&reply);
        let bytes = reply.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let failed = format!("{method} /api/v2/admin/{}", path.join("/"));
            return Err(admin_failure(mall_id, &failed, status, &trace, &bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| Cafe24Error::Unreadable {
            status: status.as_u16(),
            detail: unreadable(&e),
        })
    }

    /// `GET /admin/shops`: the mall's shops.
    pub async fn shops(
        &self,
        mall_id: &str,
        access_token: &SecretString,
    ) -> Result<Vec<Shop>, Cafe24Error> {
        let reply = self
            .call(mall_id, access_token, Method::GET, &["shops"], &[], None)
            .await?;
        list(reply, "shops")
    }

    /// `POST /admin/paymentgateway`: registers this app as the shop's payment gateway
    /// with `partner_id` (≤ 50 characters), free membership.
    pub async fn register_gateway(
        &self,
        mall_id: &str,
        access_token: &SecretString,
        shop_no: i32,
        partner_id: &str,
    ) -> Result<(), Cafe24Error> {
        let body = json!({
            "shop_no": shop_no,
            "request": {"partner_id": partner_id, "membership_fee_type": "FREE"},
        });
        self.call(
            mall_id,
            access_token,
            Method::POST,
            &["paymentgateway"],
            &[],
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /admin/paymentgateway/{client_id}?shop_no=N`. `Ok(false)` when Cafe24 has
    /// no such registration (404): already gone.
    pub async fn unregister_gateway(
        &self,
        mall_id: &str,
        access_token: &SecretString,
        shop_no: i32,
    ) -> Result<bool, Cafe24Error> {
        let shop = shop_no.to_string();
        gone_is_false(
            self.call(
                mall_id,
                access_token,
                Method::DELETE,
                &["paymentgateway", &self.client_id],
                &[("shop_no", &shop)],
                None,
            )
            .await,
        )
    }

    /// `GET /admin/scripttags?shop_no=N`: this app's script tags in the shop.
    pub async fn script_tags(
        &self,
        mall_id: &str,
        access_token: &SecretString,
        shop_no: i32,
    ) -> Result<Vec<ScriptTag>, Cafe24Error> {
        let shop = shop_no.to_string();
        let reply = self
            .call(
                mall_id,
                access_token,
                Method::GET,
                &["scripttags"],
                &[("shop_no", &shop)],
                None,
            )
            .await?;
        list(reply, "scripttags")
    }

    /// `POST /admin/scripttags`: installs `src` on the product and basket pages of the
    /// shop's skins, with its subresource `integrity`. Returns the `script_no`.
    pub async fn create_script_tag(
        &self,
        mall_id: &str,
        access_token: &SecretString,
        shop_no: i32,
        src: &str,
        skins: &[i64],
        integrity: &str,
    ) -> Result<String, Cafe24Error> {
        let body = json!({
            "shop_no": shop_no,
            "request": {
                "src": src,
                "display_location": ["PRODUCT_DETAIL", "ORDER_BASKET"],
                "skin_no": skins,
                "integrity": integrity,
            },
        });
        let reply = self
            .call(
                mall_id,
                access_token,
                Method::POST,
                &["scripttags"],
                &[],
                Some(&body),
            )
            .await?;
        reply
            .pointer("/scripttag/script_no")
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or(Cafe24Error::Unreadable {
                status: 201,
                detail: "scripttag without script_no".into(),
            })
    }

    /// `DELETE /admin/scripttags/{script_no}?shop_no=N`. `Ok(false)` when already gone.
    pub async fn delete_script_tag(
        &self,
        mall_id: &str,
        access_token: &SecretString,
        shop_no: i32,
        script_no: &str,
    ) -> Result<bool, Cafe24Error> {
        let shop = shop_no.to_string();
        gone_is_false(
            self.call(
                mall_id,
                access_token,
                Method::DELETE,
                &["scripttags", script_no],
                &[("shop_no", &shop)],
                None,
            )
            .await,
        )
    }
}

/// The array `field` of a list reply (`{"shops": […]}`), read as `T`s.
fn list<T: serde::de::DeserializeOwned>(
    mut reply: Value,
    field: &str,
) -> Result<Vec<T>, Cafe24Error> {
    let items = reply.get_mut(field).map(Value::take).unwrap_or(Value::Null);
    serde_json::from_value(items).map_err(|e| Cafe24Error::Unreadable {
        status: 200,
        detail: format!("{field}: {}", unreadable(&e)),
    })
}

/// What is wrong with a reply, without quoting it (a token reply holds secrets).
pub(super) fn unreadable(e: &serde_json::Error) -> String {
    format!(
        "{:?} at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

fn gone_is_false(result: Result<Value, Cafe24Error>) -> Result<bool, Cafe24Error> {
    match result {
        Ok(_) => Ok(true),
        Err(Cafe24Error::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

pub(super) fn pause(reply: &reqwest::Response) -> Duration {
    reply
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
        .min(RATE_LIMIT_PAUSE_MAX)
}

pub(super) fn transport(e: reqwest::Error) -> Cafe24Error {
    if e.is_timeout() {
        Cafe24Error::Timeout
    } else {
        // reqwest's Display names the URL, which holds no secret here (tokens travel in
        // headers and bodies only).
        Cafe24Error::Transport(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read_with_their_integer_code() {
        // The shape of PROTOCOL.md §12 (Cafe24's reference, "에러 응답 예제", with the
        // integer code real replies carry).
        let body = br#"{"error":{"code":422,"message":"partner_id is required","more_info":{}}}"#;
        assert_eq!(error_of(body), (Some(422), "partner_id is required".into()));
        assert_eq!(error_of(b"<html>"), (None, String::new()));
    }

    #[test]
    fn the_mall_id_is_placed_in_the_base() {
        let url = Cafe24Client::url(
            "https://{mall_id}.cafe24api.com",
            "demomall",
            &["oauth", "token"],
        );
        assert_eq!(
            url.map(String::from).ok().as_deref(),
            Some("https://demomall.cafe24api.com/api/v2/oauth/token")
        );
        let same = Cafe24Client::url(
            "http://127.0.0.1:9/sandbox/cafe24/{mall_id}",
            "m1",
            &["admin", "shops"],
        );
        assert_eq!(
            same.map(String::from).ok().as_deref(),
            Some("http://127.0.0.1:9/sandbox/cafe24/m1/api/v2/admin/shops")
        );
    }
}
