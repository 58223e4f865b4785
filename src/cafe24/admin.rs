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

use chrono::{FixedOffset, NaiveDateTime};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

/// How often a 429 is tried again, and the longest pause honoured.
const RATE_LIMIT_RETRIES: u32 = 3;
const RATE_LIMIT_PAUSE_MAX: Duration = Duration::from_secs(2);
/// Lifetimes assumed when a token reply's timestamps cannot be read (shorter than
/// Cafe24's 2 h and 14 days, so the service refreshes early rather than late).
const FALLBACK_ACCESS: Duration = Duration::from_secs(3600);
const FALLBACK_REFRESH: Duration = Duration::from_secs(7 * 86400);
/// Cafe24's clock: token times without a zone are Korean time (PROTOCOL.md §12: a real
/// reply `"issued_at": "2021-07-31T18:00:21.000"` arrived at 09:00:21 UTC).
const KST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => unreachable!(),
};
/// The header that names a Cafe24 reply for Cafe24's support (PROTOCOL.md §12).
const TRACE_HEADER: &str = "x-trace_id";
/// `invalid_grant` with this description is the app's client secret refused
/// (PROTOCOL.md §12; a developer's log of real Cafe24, `kangHo-Jun/web_cadalog_ver10`
/// `docs/web_cadalog_ver10_완전_가이드.md`).
const INVALID_CLIENT_SECRET: &str = "invalid client_secret";

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

/// What the token endpoint granted. Cafe24's times carry no zone and are read as KST
/// (+09:00), then kept in UTC; the lifetimes (`*_expires_at − issued_at`) are the
/// fallback when an end is unreadable or already past by this service's clock
/// ([`TokenGrant::access_end`]).
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// When the access token ends (UTC), from `expires_at`.
    pub access_expires_at: Option<NaiveDateTime>,
    /// When the refresh token ends (UTC), from `refresh_token_expires_at`.
    pub refresh_expires_at: Option<NaiveDateTime>,
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
    pub mall_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
}

/// The token endpoint's reply as Cafe24 sends it.
#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    refresh_token: String,
    expires_at: Option<String>,
    refresh_token_expires_at: Option<String>,
    issued_at: Option<String>,
    mall_id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

impl TokenGrant {
    /// When the access token ends (UTC), as Cafe24 said; `now` + its lifetime when Cafe24's
    /// time is unreadable or not after `now` (a clock far off).
    pub fn access_end(&self, now: NaiveDateTime) -> NaiveDateTime {
        end_or(self.access_expires_at, now, self.access_lifetime)
    }

    /// When the refresh token ends (UTC), as [`TokenGrant::access_end`].
    pub fn refresh_end(&self, now: NaiveDateTime) -> NaiveDateTime {
        end_or(self.refresh_expires_at, now, self.refresh_lifetime)
    }
}

fn end_or(end: Option<NaiveDateTime>, now: NaiveDateTime, lifetime: Duration) -> NaiveDateTime {
    end.filter(|e| *e > now).unwrap_or_else(|| {
        now + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::zero())
    })
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

/// The grant of a token reply: times read as KST, lifetimes as their differences.
fn grant_of(reply: TokenReply) -> TokenGrant {
    let issued = reply.issued_at.as_deref().and_then(parse_time);
    let access_end = reply.expires_at.as_deref().and_then(parse_time);
    let refresh_end = reply
        .refresh_token_expires_at
        .as_deref()
        .and_then(parse_time);
    let lifetime = |end: Option<NaiveDateTime>, fallback: Duration| match (issued, end) {
        (Some(start), Some(end)) if end > start => (end - start).to_std().unwrap_or(fallback),
        _ => fallback,
    };
    TokenGrant {
        access_lifetime: lifetime(access_end, FALLBACK_ACCESS),
        refresh_lifetime: lifetime(refresh_end, FALLBACK_REFRESH),
        access_expires_at: access_end,
        refresh_expires_at: refresh_end,
        access_token: SecretString::from(reply.access_token),
        refresh_token: SecretString::from(reply.refresh_token),
        mall_id: reply.mall_id,
        user_id: reply.user_id.unwrap_or_default(),
        scopes: reply.scopes,
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

/// The token endpoint's refusal `{"error","error_description"}`: whose fault it is.
fn token_refusal(status: u16, bytes: &[u8]) -> Cafe24Error {
    let body = serde_json::from_slice::<Value>(bytes).ok();
    let field = |name: &str| {
        body.as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let error = crate::text::printable(&field("error"), 64)
        .filter(|e| !e.is_empty())
        .unwrap_or("unreadable")
        .to_owned();
    let description = field("error_description").to_ascii_lowercase();
    let app_at_fault = error == "invalid_client"
        || (error == "invalid_grant" && description.contains(INVALID_CLIENT_SECRET));
    if app_at_fault {
        Cafe24Error::AppCredentials { status, error }
    } else {
        Cafe24Error::Grant { status, error }
    }
}

/// The `X-Trace_ID` of a reply, printable, for the log ("-" when absent).
fn trace_of(reply: &reqwest::Response) -> String {
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
    http: reqwest::Client,
    /// `CAFE24_API_BASE` as the service calls it, with `{mall_id}` to replace.
    api_base: String,
    /// The same as a browser reaches it (differs from `api_base` only for the mounted
    /// sandbox, which the service calls over loopback).
    browser_base: String,
    api_version: String,
    client_id: String,
    client_secret: SecretString,
    scopes: String,
    /// Token requests refused for the app's own credentials (none until
    /// [`Cafe24Client::with_metrics`]).
    app_credentials_refused: Option<prometheus::IntCounter>,
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
    fn url(base: &str, mall_id: &str, path: &[&str]) -> Result<url::Url, Cafe24Error> {
        let base = url::Url::parse(&base.replace("{mall_id}", mall_id))
            .map_err(|e| Cafe24Error::Transport(format!("CAFE24_API_BASE: {e}")))?;
        let mut segments = vec!["api", "v2"];
        segments.extend_from_slice(path);
        Ok(crate::urls::with_path(&base, &segments))
    }

    /// Where the browser is sent to authorize the app for `mall_id` (§12):
    /// `…/api/v2/oauth/authorize?response_type=code&client_id&state&redirect_uri&scope`.
    pub fn authorize_url(
        &self,
        mall_id: &str,
        state: &str,
        redirect_uri: &str,
    ) -> Result<String, Cafe24Error> {
        let url = Cafe24Client::url(&self.browser_base, mall_id, &["oauth", "authorize"])?;
        Ok(crate::urls::with_query(
            url,
            &[
                ("response_type", "code"),
                ("client_id", &self.client_id),
                ("state", state),
                ("redirect_uri", redirect_uri),
                ("scope", &self.scopes),
            ],
        )
        .into())
    }

    /// Exchanges an authorization `code` (§12). Errors: the grant refused
    /// ([`Cafe24Error::Grant`]), or the call failed.
    pub async fn exchange_code(
        &self,
        mall_id: &str,
        code: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenGrant, Cafe24Error> {
        self.token(
            mall_id,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.expose_secret()),
                ("redirect_uri", redirect_uri),
            ],
        )
        .await
    }

    /// Refreshes with `refresh_token`; the reply carries a new refresh token, which the
    /// caller must store in place of the old one.
    pub async fn refresh(
        &self,
        mall_id: &str,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, Cafe24Error> {
        self.token(
            mall_id,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ],
        )
        .await
    }

    async fn token(&self, mall_id: &str, form: &[(&str, &str)]) -> Result<TokenGrant, Cafe24Error> {
        let url = Cafe24Client::url(&self.api_base, mall_id, &["oauth", "token"])?;
        let mut attempt = 0;
        let reply = loop {
            let sent = self
                .http
                .post(url.clone())
                .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
                .form(form)
                .send()
                .await
                .map_err(transport)?;
            if sent.status() == StatusCode::TOO_MANY_REQUESTS && attempt < RATE_LIMIT_RETRIES {
                attempt += 1;
                tokio::time::sleep(pause(&sent)).await;
                continue;
            }
            break sent;
        };
        let status = reply.status();
        let trace = trace_of(&reply);
        let bytes = reply.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(self.token_failure(mall_id, status, &trace, &bytes));
        }
        let reply: TokenReply =
            serde_json::from_slice(&bytes).map_err(|e| Cafe24Error::Unreadable {
                status: status.as_u16(),
                detail: format!("token reply: {}", unreadable(&e)),
            })?;
        Ok(grant_of(reply))
    }

    /// A failed token request: Cafe24 failing (5xx, 429 after the retries), or refusing
    /// the grant or the app's credentials (counted), each logged with its `X-Trace_ID`.
    fn token_failure(
        &self,
        mall_id: &str,
        status: StatusCode,
        trace: &str,
        bytes: &[u8],
    ) -> Cafe24Error {
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            log::warn!(
                "Cafe24's token endpoint for mall {mall_id} answered {status} (X-Trace_ID {trace})"
            );
            return Cafe24Error::Api {
                status: status.as_u16(),
                code: None,
                message: "the token endpoint failed".into(),
            };
        }
        let refusal = token_refusal(status.as_u16(), bytes);
        if let Cafe24Error::AppCredentials { .. } = refusal {
            log::error!("Cafe24 refused the app's client credentials for mall {mall_id} (X-Trace_ID {trace}): {refusal}; no mall is disconnected, fix the setting");
            if let Some(counter) = &self.app_credentials_refused {
                counter.inc();
            }
        } else {
            log::warn!(
                "Cafe24's token endpoint for mall {mall_id}: {refusal} (X-Trace_ID {trace})"
            );
        }
        refusal
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
fn unreadable(e: &serde_json::Error) -> String {
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

/// Cafe24's timestamps, in UTC: `2026-12-01T21:00:00.000` is Korean time (KST, +09:00);
/// one with an offset is read with it.
fn parse_time(s: &str) -> Option<NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.naive_utc())
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()?
                .and_local_timezone(KST)
                .single()
                .map(|d| d.naive_utc())
        })
}

fn pause(reply: &reqwest::Response) -> Duration {
    reply
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
        .min(RATE_LIMIT_PAUSE_MAX)
}

fn transport(e: reqwest::Error) -> Cafe24Error {
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

    fn utc(s: &str) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok()
    }

    #[test]
    fn times_without_zone_are_kst_and_with_offset_are_read() {
        // PROTOCOL.md §12's real reply: issued 18:00:21 KST is 09:00:21 UTC.
        assert_eq!(
            parse_time("2021-07-31T18:00:21.000"),
            utc("2021-07-31T09:00:21")
        );
        assert_eq!(
            parse_time("2026-12-01T21:00:00+09:00"),
            utc("2026-12-01T12:00:00")
        );
        assert_eq!(
            parse_time("2026-12-01T21:00:00Z"),
            utc("2026-12-01T21:00:00")
        );
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn an_end_already_past_falls_back_to_the_lifetime() {
        let now = utc("2026-12-01T12:00:00").unwrap_or_default();
        let grant = TokenGrant {
            access_token: SecretString::from("a"),
            refresh_token: SecretString::from("r"),
            access_expires_at: utc("2026-12-01T13:00:00"),
            refresh_expires_at: utc("2026-12-01T11:00:00"),
            access_lifetime: Duration::from_secs(7200),
            refresh_lifetime: Duration::from_secs(14 * 86400),
            mall_id: "m".into(),
            user_id: "u".into(),
            scopes: vec![],
        };
        assert_eq!(
            grant.access_end(now),
            utc("2026-12-01T13:00:00").unwrap_or_default()
        );
        assert_eq!(
            grant.refresh_end(now),
            utc("2026-12-15T12:00:00").unwrap_or_default()
        );
    }

    #[test]
    fn error_bodies_are_read_with_their_integer_code() {
        // The shape of PROTOCOL.md §12 (Cafe24's reference, "에러 응답 예제", with the
        // integer code real replies carry).
        let body = br#"{"error":{"code":422,"message":"partner_id is required","more_info":{}}}"#;
        assert_eq!(error_of(body), (Some(422), "partner_id is required".into()));
        assert_eq!(error_of(b"<html>"), (None, String::new()));
    }

    #[test]
    fn a_wrong_client_secret_is_the_apps_fault_and_a_used_refresh_token_the_grants() {
        let secret = br#"{"error":"invalid_grant","error_description":"Invalid client_secret"}"#;
        assert!(matches!(
            token_refusal(401, secret),
            Cafe24Error::AppCredentials { .. }
        ));
        let client = br#"{"error":"invalid_client","error_description":"Unknown client"}"#;
        assert!(matches!(
            token_refusal(401, client),
            Cafe24Error::AppCredentials { .. }
        ));
        let used = br#"{"error":"invalid_grant","error_description":"Invalid refresh_token"}"#;
        assert!(matches!(
            token_refusal(400, used),
            Cafe24Error::Grant { .. }
        ));
        assert!(matches!(
            token_refusal(400, b"x"),
            Cafe24Error::Grant { .. }
        ));
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
