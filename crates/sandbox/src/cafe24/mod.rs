//! An in-memory stand-in for the Cafe24 side of installing the app: the signed launch of
//! the App URL, OAuth 2.0 authorization code grant (consent page, code exchange, refresh
//! rotation) and the slice of the Admin API the service calls (`shops`, `paymentgateway`,
//! `scripttags`), with Cafe24's shapes and error replies (sources:
//! `shared/PROTOCOL.md` §12, `shared/reference/cafe24-install.md`). It owns its state
//! (malls, codes, tokens, registrations, a log of API requests) and shares no types with
//! the service; the service reaches it only over HTTP, as it reaches Cafe24.
//!
//! Each Cafe24 mall has its own API host, `https://{mall_id}.cafe24api.com`; here the mall
//! is the first path segment under the mount point instead, so the service's
//! `CAFE24_API_BASE` is [`Cafe24Sandbox::api_base_template`],
//! `"{public_base}/{mall_id}"`. Any valid mall id (1–50 characters of `a-z 0-9 _ -`)
//! exists, with one default shop until [`Cafe24Sandbox::set_shops`] says otherwise; the
//! app is installed on a mall by the first "Allow" on its consent page.
//!
//! Secrets (the client secret, codes, tokens) are never logged.

mod admin;
mod api;
mod notifications;
mod oauth;
mod orders;
mod page;
mod reply;
mod state;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::web;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use notifications::{Cafe24Notification, HashCheck};
use orders::OrderSpec;
use state::State;

/// The app as registered in Cafe24's Developer Center. Its `Debug` shows
/// `client_secret` as `"…"`, so that printing it logs no secret.
#[derive(Clone)]
pub struct Cafe24App {
    /// The OAuth client id (`client_id` of authorize and token requests).
    pub client_id: String,
    /// The OAuth client secret: the password of the token endpoint's Basic auth and the
    /// key of the launch query's `hmac`.
    pub client_secret: String,
    /// Shown on the consent page.
    pub app_name: String,
    /// The App URL, e.g. `"http://127.0.0.1:8080/cafe24/launch"`: where a launch goes.
    pub app_url: String,
}

impl fmt::Debug for Cafe24App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cafe24App")
            .field("client_id", &self.client_id)
            .field("client_secret", &"…")
            .field("app_name", &self.app_name)
            .field("app_url", &self.app_url)
            .finish()
    }
}

/// Handle to the Cafe24 stand-in's state; cheap to clone (an `Arc` inside) and
/// thread-safe. The state sits behind a `std::sync::Mutex` that is never held across an
/// `.await`.
#[derive(Clone)]
pub struct Cafe24Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    /// Absolute URL of the mount point as a browser sees it, without trailing slash.
    public_base: String,
    app: Cafe24App,
    state: Mutex<State>,
    /// The orders `GET /admin/orders/{order_id}` shows, by (mall, order id).
    orders: Mutex<std::collections::HashMap<(String, String), OrderSpec>>,
    /// The notification receiver's service key and what it received.
    notifications: notifications::Inbox,
}

/// One shop of a mall, as `GET /api/v2/admin/shops` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopSpec {
    /// 1 for the mall's default shop (`"default": "T"`).
    pub shop_no: i64,
    /// The shop's display name.
    pub shop_name: String,
    /// ISO 4217, e.g. `"JPY"`.
    pub currency_code: String,
    /// Cafe24's form, e.g. `"ja_JP"`.
    pub language_code: String,
    /// e.g. `"demomall.cafe24.com"`.
    pub primary_domain: String,
    /// The skin (theme) of the PC storefront.
    pub pc_skin_no: i64,
    /// The skin (theme) of the mobile storefront.
    pub mobile_skin_no: i64,
    /// The shop's IANA time zone, e.g. `"Asia/Tokyo"` (`shops[].timezone`: Cafe24's
    /// API reference, Shops property list, transcribed in `noston/cafe24-api-spec`
    /// `cafe24_chapters/shops.md`, whose sample lists `Asia/Seoul` and
    /// `America/Los_Angeles`).
    pub timezone: String,
}

/// A payment gateway registration (`POST /api/v2/admin/paymentgateway`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentGateway {
    /// The shop it was registered for.
    pub shop_no: i64,
    /// As sent, 1–50 characters (the service's `{mall_id}:{shop_no}:{public_ref}`).
    pub partner_id: String,
    /// The registering app's client id.
    pub client_id: String,
    /// `"FREE"`, `"PRE"` or `"PAD"`.
    pub membership_fee_type: String,
}

/// A script tag (`POST /api/v2/admin/scripttags`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptTag {
    /// Digits, unique across malls.
    pub script_no: String,
    /// The shop it was created for.
    pub shop_no: i64,
    /// The creating app's client id.
    pub client_id: String,
    /// The script's absolute http(s) URL.
    pub src: String,
    /// e.g. `["PRODUCT_DETAIL", "ORDER_BASKET"]`.
    pub display_location: Vec<String>,
    /// Skins it is shown in; empty when not given.
    pub skin_no: Vec<i64>,
    /// `sha384-…` or `sha512-…`, if given.
    pub integrity: Option<String>,
}

/// One request under `/{mall_id}/api/v2` (token endpoint, Admin API, and the authorize
/// pages) as the stand-in saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cafe24Request {
    /// The mall's path segment as sent.
    pub mall_id: String,
    /// HTTP method, upper case.
    pub method: String,
    /// Path after `/{mall_id}`, without query, e.g. `"/api/v2/admin/shops"` or
    /// `"/api/v2/oauth/token"`.
    pub path: String,
    /// For the token endpoint, the `grant_type` sent (if any); else `None`.
    pub grant_type: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The `X-Trace_ID` header of the reply (every API reply carries one).
    pub trace_id: String,
}

/// The fields of a launch ([`Cafe24Sandbox::launch_url_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch<'a> {
    pub mall_id: &'a str,
    pub shop_no: i64,
    /// e.g. `"ja_JP"`, `"en"`.
    pub lang: &'a str,
    pub user_id: &'a str,
    pub user_name: &'a str,
    /// `P` representative operator, `A` sub-operator, `S` supplier (PROTOCOL.md §12).
    pub user_type: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
}

/// The app-lifecycle events the stand-in sends ([`Cafe24Sandbox::send_app_event`]):
/// `event_no` 90077 and 90078 of Cafe24's "Event sample data"
/// (`noston/cafe24-api-spec` `cafe24-webhook-spec.md`, "App event sample data").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEvent {
    /// 90077: "When an installed app has been deleted from the store".
    Deleted,
    /// 90078: "When an installed app has expired on the store".
    Expired,
}

impl AppEvent {
    /// The event's `event_no`.
    pub fn event_no(self) -> i64 {
        match self {
            AppEvent::Deleted => 90077,
            AppEvent::Expired => 90078,
        }
    }
}

/// A fault injected by [`Cafe24Sandbox::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cafe24Fault {
    /// Answer this status without processing, in the Admin API's error shape
    /// `{"error":{"code":N,"message":"…"}}`; a 429 carries `Retry-After: 1`.
    Status(u16),
    /// Process normally, then sleep this long before answering.
    Delay(Duration),
}

/// 2 hours, as Cafe24 issues access tokens.
const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// 14 days, as Cafe24 issues refresh tokens.
const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(14 * 86_400);

impl Cafe24Sandbox {
    /// Creates a stand-in with no mall installed. `public_base` is the absolute URL of the
    /// mount point as a browser sees it, without trailing slash (one is trimmed), e.g.
    /// `"http://127.0.0.1:8080/sandbox/cafe24"`; the consent page's form posts there.
    pub fn new(public_base: &str, app: Cafe24App) -> Cafe24Sandbox {
        Cafe24Sandbox {
            inner: Arc::new(Inner {
                public_base: public_base.trim_end_matches('/').to_string(),
                app,
                state: Mutex::new(State::new(
                    DEFAULT_ACCESS_LIFETIME,
                    DEFAULT_REFRESH_LIFETIME,
                )),
                orders: Mutex::default(),
                notifications: Default::default(),
            }),
        }
    }

    /// Returns a closure for `App::configure` / `ServiceConfig::configure` that mounts one
    /// `actix_web::Scope` at `prefix` (`""` when served alone, `"/sandbox/cafe24"` inside
    /// the service), like `Sandbox::configure`, holding:
    ///
    /// - `GET /`: a development form that makes a launch link; `GET /launch?mall_id&
    ///   shop_no&lang&user_id&user_name`: the page with the signed link
    ///   (`<a id="launch">`), timestamp now.
    /// - `GET|POST /{mall_id}/api/v2/oauth/authorize`: the consent page and its decision
    ///   (302 to `redirect_uri` with `code` and `state`, or `error=access_denied`).
    /// - `POST /{mall_id}/api/v2/oauth/token`: code exchange and refresh (form body, Basic
    ///   client auth); OAuth errors `{"error":"invalid_grant","error_description":"…"}`.
    /// - `/{mall_id}/api/v2/admin/…`: `GET shops`, `POST paymentgateway`,
    ///   `DELETE paymentgateway/{client_id}?shop_no=N`, `GET scripttags?shop_no=N`,
    ///   `POST scripttags`, `DELETE scripttags/{script_no}?shop_no=N`; Bearer auth with
    ///   the endpoint's scope required; `X-Cafe24-Api-Version` optional (a malformed one
    ///   is 400); errors `{"error":{"code":N,"message":"…","more_info":{}}}` with an integer
    ///   `code`; every reply has `X-Api-Call-Limit: n/40`.
    ///
    /// Every reply under `/{mall_id}/api/v2` (token endpoint included) carries an
    /// `X-Trace_ID`.
    /// - `POST /notifications/{kind}`, `GET /notifications`: the receiver of the service's
    ///   notifications (`notifications.rs`).
    ///
    /// Anything else under the prefix is 404 in the Admin API's error shape.
    pub fn configure(&self, prefix: &str) -> impl FnOnce(&mut web::ServiceConfig) + 'static {
        let sandbox = self.clone();
        let prefix = prefix.trim_end_matches('/').to_string();
        move |cfg: &mut web::ServiceConfig| {
            cfg.service(
                web::scope(&prefix)
                    .app_data(web::Data::new(sandbox))
                    .route("", web::get().to(page::launch_form))
                    .route("/", web::get().to(page::launch_form))
                    .route("/launch", web::get().to(page::launch_link))
                    .route("/notifications", web::get().to(notifications::list))
                    .route(
                        "/notifications/{kind}",
                        web::post().to(notifications::receive),
                    )
                    .route("/{mall_id}/api/v2/{tail:.*}", web::route().to(api::handle))
                    .default_service(web::to(api::not_found)),
            );
        }
    }

    /// The API base for the service's `CAFE24_API_BASE` setting:
    /// `"{public_base}/{mall_id}"`, literally containing the text `{mall_id}`, which the
    /// service replaces with the mall's id.
    pub fn api_base_template(&self) -> String {
        format!("{}/{{mall_id}}", self.inner.public_base)
    }

    /// Makes `GET /admin/orders/{order_id}?shop_no={shop_no}` of `mall_id` show an
    /// unpaid order in `currency` whose amount to pay is `amount_due` (Cafe24's decimal
    /// format, e.g. `"5000.00"`; see `orders.rs`); a mall's other orders are 404.
    pub fn set_order(
        &self,
        mall_id: &str,
        order_id: &str,
        shop_no: i64,
        currency: &str,
        amount_due: &str,
    ) {
        let order = OrderSpec {
            order_id: order_id.to_string(),
            shop_no,
            currency: currency.to_string(),
            amount_due: amount_due.to_string(),
        };
        let key = (mall_id.to_string(), order.order_id.clone());
        self.inner
            .orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, order);
    }

    fn order(&self, mall_id: &str, order_id: &str) -> Option<OrderSpec> {
        let key = (mall_id.to_string(), order_id.to_string());
        self.inner
            .orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Sets the shops `GET /admin/shops` lists for `mall_id` (and which exist for
    /// `paymentgateway` and `scripttags`). A mall never set has one default shop:
    /// `shop_no` 1, `"{mall_id} shop"`, JPY, `ja_JP`, `{mall_id}.cafe24.com`, skins 1 and 2.
    pub fn set_shops(&self, mall_id: &str, shops: Vec<ShopSpec>) {
        self.lock().mall_mut(mall_id).shops = Some(shops);
    }

    /// A launch URL as Cafe24 would open it, for the representative operator
    /// (`user_type=P`): [`Cafe24Sandbox::launch_url_for`] with these fields.
    pub fn launch_url(
        &self,
        mall_id: &str,
        shop_no: i64,
        lang: &str,
        user_id: &str,
        user_name: &str,
        timestamp: i64,
    ) -> String {
        self.launch_url_for(&Launch {
            mall_id,
            shop_no,
            lang,
            user_id,
            user_name,
            user_type: "P",
            timestamp,
        })
    }

    /// A launch URL as Cafe24 would open it: `app_url + "?" + query`, the query being
    /// `is_multi_shop=F` (`T` when the mall has more than one shop) `&lang=…&mall_id=…
    /// &nation=KR&shop_no=…&timestamp=…&user_id=…&user_name=…&user_type=…`, keys in
    /// alphabetical order (every real launch seen is; the official
    /// `cafe24_app_discount_sample`'s `AppService.validationCheck` assumes `hmac` last),
    /// each value percent-encoded with upper-case escapes and a space as `%20`, never
    /// `+` (PROTOCOL.md §12: "Real launches encode a space as `%20` and upper-case their
    /// percent-escapes"), then `&hmac=` and the standard Base64 of HMAC-SHA256(key = the
    /// client secret, message = the query before `&hmac=` exactly as built), encoded the
    /// same way (`+` → `%2B`, `=` → `%3D`, as in the official sample's vector).
    /// `timestamp` is in Unix seconds.
    pub fn launch_url_for(&self, launch: &Launch<'_>) -> String {
        let multi_shop = self.lock().shops(launch.mall_id).len() > 1;
        let shop_no = launch.shop_no.to_string();
        let timestamp = launch.timestamp.to_string();
        let pairs = [
            ("is_multi_shop", if multi_shop { "T" } else { "F" }),
            ("lang", launch.lang),
            ("mall_id", launch.mall_id),
            ("nation", "KR"),
            ("shop_no", &shop_no),
            ("timestamp", &timestamp),
            ("user_id", launch.user_id),
            ("user_name", launch.user_name),
            ("user_type", launch.user_type),
        ];
        let query = pairs
            .iter()
            .map(|(key, value)| format!("{key}={}", encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let hmac = launch_hmac(&self.client_secret(), &query);
        format!("{}?{query}&hmac={}", self.inner.app.app_url, encode(&hmac))
    }

    /// Every access token of `mall_id` issued so far stops working (Admin API calls answer
    /// 401) while the mall's refresh token still works.
    pub fn expire_access_tokens(&self, mall_id: &str) {
        self.lock().expire_access_tokens(mall_id);
    }

    /// The app is removed from the mall: Admin API calls with any of its tokens answer
    /// 403, a refresh answers 400 `invalid_grant`, its registrations stay; a new
    /// authorization ("Allow", then the code exchange) installs it again, and tokens of
    /// the earlier installation stay dead (401, `invalid_grant`).
    pub fn uninstall(&self, mall_id: &str) {
        self.lock().uninstall(mall_id);
    }

    /// Whether the app is installed on the mall (an "Allow" since the last
    /// [`Cafe24Sandbox::uninstall`]).
    pub fn is_installed(&self, mall_id: &str) -> bool {
        self.lock()
            .malls
            .get(mall_id)
            .is_some_and(|mall| mall.installed)
    }

    /// Injects `fault` into each of the next `n` requests under `/{mall_id}/api/v2` (any
    /// mall; the token endpoint and the Admin API, whether or not they authenticate; not
    /// the HTML authorize pages); then it clears itself. Calls queue up like
    /// `Sandbox::fail_next`; `n == 0` does nothing.
    pub fn fail_next(&self, n: u32, fault: Cafe24Fault) {
        if n > 0 {
            self.lock().faults.push_back((fault, n));
        }
    }

    /// The token endpoint processes every request, then sleeps this long before answering
    /// (`Duration::ZERO` turns it off), so concurrent refreshes overlap: the first one
    /// processed rotates the refresh token while its answer is still on the way.
    pub fn set_token_delay(&self, delay: Duration) {
        self.lock().token_delay = delay;
    }

    /// Lifetimes of the access and refresh tokens issued from now on (defaults 2 hours and
    /// 14 days).
    pub fn set_token_lifetimes(&self, access: Duration, refresh: Duration) {
        let mut state = self.lock();
        state.access_lifetime = access;
        state.refresh_lifetime = refresh;
    }

    /// From now on the token endpoint's replies name `mall_id` instead of the mall asked
    /// (`None` resets), to test a service that must refuse a token reply for another mall.
    /// The tokens themselves still belong to the mall asked.
    pub fn set_token_reply_mall(&self, mall_id: Option<&str>) {
        self.lock().token_reply_mall = mall_id.map(str::to_string);
    }

    /// The Developer Center reissues the app's client secret: from now on only `secret`
    /// opens the token endpoint and keys launch links; "the old Secret Key after
    /// reissuance can no longer be used" (Cafe24's developer guide, "Terms", Client
    /// secret: developer.cafe24.com/guide/front/develop?guide_no=154).
    pub fn rotate_client_secret(&self, secret: &str) {
        self.lock().client_secret = Some(secret.to_string());
    }

    /// Registers the app's webhook as the Developer Center does: where lifecycle events go
    /// and the fixed credential Cafe24 sends with each in `x-api-key` (PROTOCOL.md §12,
    /// "App lifecycle"; Cafe24's developer notice of 2023-08-02).
    pub fn set_app_webhook(&self, url: &str, api_key: &str) {
        self.lock().app_webhook = Some(state::AppWebhook {
            url: url.to_string(),
            api_key: api_key.to_string(),
        });
    }

    /// Whether Cafe24 lets this client use `paymentgateway` at all: the API "is open only
    /// to clients Cafe24 has authorized" (PROTOCOL.md §12). `false` makes every
    /// `paymentgateway` call answer 403 whatever the token's scopes.
    pub fn set_paymentgateway_authorized(&self, authorized: bool) {
        self.lock().paymentgateway_authorized = authorized;
    }

    /// The body of `event` for `mall_id` as Cafe24 sends it (`event_no` a number,
    /// `resource.{mall_id, client_id, app_name, deleted_date | expired_date}`, the date
    /// in KST with its offset), as in `cafe24-webhook-spec.md`'s sample data.
    pub fn app_event_body(&self, mall_id: &str, event: AppEvent) -> serde_json::Value {
        let when = state::format_admin_time(&chrono::Utc::now());
        let date_field = match event {
            AppEvent::Deleted => "deleted_date",
            AppEvent::Expired => "expired_date",
        };
        let app = self.app();
        let mut resource = serde_json::Map::new();
        resource.insert("mall_id".into(), mall_id.into());
        resource.insert("client_id".into(), app.client_id.clone().into());
        resource.insert("app_name".into(), app.app_name.clone().into());
        resource.insert(date_field.into(), when.into());
        serde_json::json!({"event_no": event.event_no(), "resource": resource})
    }

    /// Sends `event` for `mall_id` to the app's webhook ([`Cafe24Sandbox::set_app_webhook`])
    /// as Cafe24 does: `POST`, JSON, the registered credential in `x-api-key`, no
    /// signature (none is documented). Returns the status the app answered. Errors: no
    /// webhook registered, or the app could not be reached.
    pub async fn send_app_event(&self, mall_id: &str, event: AppEvent) -> Result<u16, String> {
        let webhook = self
            .lock()
            .app_webhook
            .clone()
            .ok_or("no app webhook registered (set_app_webhook)")?;
        let body =
            serde_json::to_vec(&self.app_event_body(mall_id, event)).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let reply = client
            .post(&webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-api-key", &webhook.api_key)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        log::debug!(
            "cafe24 sandbox: event {} for mall {mall_id} answered {}",
            event.event_no(),
            reply.status()
        );
        Ok(reply.status().as_u16())
    }

    /// The mall's payment gateway registrations, oldest first.
    pub fn payment_gateways(&self, mall_id: &str) -> Vec<PaymentGateway> {
        self.lock()
            .malls
            .get(mall_id)
            .map(|mall| mall.payment_gateways.clone())
            .unwrap_or_default()
    }

    /// The mall's script tags (every shop, every client), oldest first.
    pub fn script_tags(&self, mall_id: &str) -> Vec<ScriptTag> {
        self.lock()
            .malls
            .get(mall_id)
            .map(|mall| mall.script_tags.iter().map(|t| t.tag.clone()).collect())
            .unwrap_or_default()
    }

    /// Every request received under `/{mall_id}/api/v2`, in the order they were answered.
    pub fn requests(&self) -> Vec<Cafe24Request> {
        self.lock().requests.clone()
    }

    /// Every authorization code, access token and refresh token issued so far, for tests
    /// that check none of them ever reaches a log line or a page.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.lock().issued_secrets()
    }

    fn public_base(&self) -> &str {
        &self.inner.public_base
    }

    fn app(&self) -> &Cafe24App {
        &self.inner.app
    }

    /// The client secret in force: the registered one until
    /// [`Cafe24Sandbox::rotate_client_secret`].
    fn client_secret(&self) -> String {
        self.lock()
            .client_secret
            .clone()
            .unwrap_or_else(|| self.inner.app.client_secret.clone())
    }

    /// Locks the state; a poisoned lock is recovered, since every change leaves the state
    /// consistent before it can panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Percent-encoding as a real launch has it: `url::form_urlencoded::byte_serialize`
/// (upper-case escapes; `*-._` and alphanumerics kept), with a space as `%20` instead of
/// `+` (a literal `+` is already `%2B`).
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Standard Base64 of HMAC-SHA256(key = `client_secret`, message = `query`).
fn launch_hmac(client_secret: &str, query: &str) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(query.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// 1–50 characters of `a-z 0-9 _ -`.
fn valid_mall_id(mall_id: &str) -> bool {
    (1..=50).contains(&mall_id.len())
        && mall_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
