//! An in-memory stand-in for KOMOJU: the slice of its REST API and of its hosted page
//! that the `cafe24-komoju` service depends on, behaving as the real KOMOJU does, fact by
//! fact, each fact's source named beside the code that implements it (KOMOJU's docs, the
//! OpenAPI-generated SDK `komoju/komoju-node-sdk` `docs/Models` and `models/*.ts`, KOMOJU's
//! plugins `komoju/komoju-eccube`, `komoju/komoju-woocommerce`,
//! `komoju/komoju-salesforce-commerce-cloud`, and `shared/reference/komoju-api.md`); where
//! no source says, the code says it guesses. It owns its state (sessions, payments,
//! refunds, refund requests, idempotent replies, a log of API requests) and builds its
//! JSON itself; it shares no types with the service's KOMOJU client and depends on
//! nothing of the service, so a test that passes against it says something about that
//! client.
//!
//! It is a crate of its own, for development and tests only. The service talks to it
//! only over HTTP, as it talks to KOMOJU: with its default `sandbox` cargo feature the
//! service mounts it under `/sandbox/komoju` in development mode when no real KOMOJU is
//! configured (a build with `--no-default-features` has no sandbox at all, and production
//! never mounts it), and integration tests serve it on its own loopback port. Test
//! controls (fault injection, amount skew, capture and expiry triggers, exchange rates,
//! fees, refund requests) live on [`Sandbox`]. It sends signed webhooks for payment
//! changes (`webhooks.rs`).
//!
//! Its tests hold its replies against fixtures transcribed from KOMOJU's own material
//! (`src/tests/fixtures.rs`: docs.komoju.com's "Show a payment" konbini example, the
//! WooCommerce plugin's `payment.refunded` webhook fixture, and the SDK's Payment,
//! Session, Refund, RefundRequest and PaymentMethod models with their enums).
//!
//! The crate also holds a stand-in for the Cafe24 side of installing the app,
//! [`Cafe24Sandbox`] (see [its section](#the-cafe24-stand-in) below).
//!
//! # The API
//!
//! ```text
//! POST {prefix}/api/v1/sessions                 mode "payment", amount, currency, return_url,
//!                                               default_locale, email, payment_types[],
//!                                               payment_data{external_order_num, capture},
//!                                               metadata, expires_in_seconds
//! GET  {prefix}/api/v1/sessions/{id}
//! POST {prefix}/api/v1/sessions/{id}/cancel     no body: pending → cancelled
//! GET  {prefix}/api/v1/payments/{id}
//! POST {prefix}/api/v1/payments/{id}/cancel     pending | authorized → cancelled
//! POST {prefix}/api/v1/payments/{id}/capture    {amount?}: an authorized card payment of a
//!                                               manual-capture session → captured
//! POST {prefix}/api/v1/payments/{id}/refund     {amount?, description?}: any type
//! GET  {prefix}/api/v1/payment_methods          one entry per type and currency
//! ```
//!
//! Every request is authenticated with HTTP Basic (the secret key as user name, empty
//! password), recorded ([`Sandbox::requests`]), and POSTs honour `X-KOMOJU-IDEMPOTENCY`.
//! Errors are `{"error":{"code","message","param","details":{}}}` with the codes and
//! HTTP statuses KOMOJU documents (`reply.rs`). Objects (events too) have ids of 25
//! lowercase alphanumerics and times in UTC with `Z` (`"2018-11-16T14:59:59Z"`). A
//! payment's `total` is `amount + tax + payment_method_fee`: tax is always 0 here, and a
//! fee per type is set with [`Sandbox::set_payment_method_fee`].
//!
//! # The hosted page
//!
//! `GET {prefix}/sessions/{id}` shows the amount and the types the session offers (a
//! converted one with what it charges); `POST {prefix}/sessions/{id}/pay` takes the form
//! field `method`, one of every type a merchant can choose or `return`:
//!
//! - `credit_card`, with an optional `card_number` (one of KOMOJU's test cards; none: the
//!   test Visa): `captured`, or `authorized` when the session's `payment_data.capture` is
//!   `manual` (or [`Sandbox::set_card_manual_capture`]); 302 to `return_url?session_id=…`.
//!   [`DECLINED_CARD_NUMBER`] and the other failing test cards make a `failed` payment,
//!   send `payment.failed`, keep the session open and answer 200 with the page and the
//!   reason; the buyer may pay again, and that new payment becomes `session.payment`.
//! - `paypay`: `captured`, 302 to `return_url`.
//! - `konbini` (with an optional `store`), `bank_transfer`, `pay_easy`: `authorized` until
//!   paid; the buyer stays on the page (200), which shows what to pay with (konbini:
//!   store, receipt number, confirmation code, deadline, `instructions_url`), the buttons
//!   "Simulate payment at the store" (`POST {prefix}/payments/{id}/simulate-capture`,
//!   as [`Sandbox::capture`]) and "Simulate the deadline passing", and a "Return to
//!   merchant" link. `GET {prefix}/instructions/{payment id}` shows the same.
//! - `return`: the session is cancelled; 302 to `return_url`.
//!
//! # Converted currencies
//!
//! A session keeps its own amount and currency. A type that does not take the session's
//! currency (konbini, PayPay, bank transfer and Pay-easy take only JPY) is still offered,
//! with `payment_methods[]{type, amount, currency: "JPY", exchange_rate}`, and its payment
//! is charged in JPY: the payment's `currency` and `amount` differ from the session's.
//! Rates are set with [`Sandbox::set_exchange_rate`] (default USD→JPY 150).
//!
//! # Refunds to a bank account
//!
//! A refund of a konbini, bank transfer or Pay-easy payment is accepted like a card's,
//! and its refund object carries a `redirect_url`: the stand-in's page where the buyer
//! gives a bank account (`GET|POST {prefix}/refund_requests/{token}`). The account becomes
//! a `pending` entry of the payment's `refund_requests[]`, `completed` once KOMOJU has
//! paid it ([`Sandbox::complete_refund_request`], or the page's "simulate" button).
//!
//! # Registering a webhook endpoint
//!
//! With KOMOJU, a merchant registers its webhook URL and secret in KOMOJU's dashboard.
//! The sandbox has no dashboard; its stand-in is a sandbox-only API call, authenticated
//! like every other one (HTTP Basic, the merchant's secret key as user name, empty
//! password):
//!
//! ```text
//! POST {prefix}/api/v1/webhook_endpoints
//! Content-Type: application/json
//!
//! {"url": "https://shop.example/webhook", "secret": "whsec_…"}
//!
//! 200 {"url": "https://shop.example/webhook", "registered": true}
//! ```
//!
//! From then on every payment change of that secret key's payments is POSTed to `url`,
//! signed with `secret`. Calling again replaces the endpoint (idempotent when repeated
//! with the same values), so a client may simply call it before each session. `url`
//! must be an absolute http or https URL and `secret` a non-empty string (422
//! otherwise). Tests can do the same in process with [`Sandbox::set_webhook`]; retries,
//! pausing, redelivery and injected stale events are test controls there.
//!
//! To check an endpoint (KOMOJU's dashboard has a "send test webhook" button), a client
//! asks for a `ping` event, with the same authentication; the body is empty or `{}`:
//!
//! ```text
//! POST {prefix}/api/v1/webhook_endpoints/ping
//!
//! 200 {"sent": true}
//! 404 {"error": {"code": "not_found", …}}    (the key has no registered endpoint)
//! ```
//!
//! The event, `{"id": "ev_…", "type": "ping", "resource": "event", "data": {},
//! "created_at": "…"}`, takes the path of every payment event: signed with the endpoint's
//! secret, sent with the same headers (`X-Komoju-Event: ping`) on a task of its own after
//! the reply, queued while webhooks are paused, retried, and listed by
//! [`Sandbox::deliveries`]. [`Sandbox::send_ping`] does the same in process.
//!
//! # Keys
//!
//! `GET {prefix}/api/v1/payment_methods` lists the payment types available to the key,
//! one entry per type and currency it takes (SDK `AvailablePaymentMethod`):
//! `[{"name_en": "Credit Card", "name_ja": "クレジットカード", "name_ko": "신용카드",
//! "type_slug": "credit_card", "currency": "JPY"}, {…"credit_card", "currency": "USD"}, …,
//! {…"konbini", "currency": "JPY"}, …]`: by default `credit_card` (every currency of
//! KOMOJU's enum), `konbini`, `paypay`, `bank_transfer` and `pay_easy` (JPY);
//! [`Sandbox::set_payment_methods`] restricts one key's list. Any `sk_…` key is accepted
//! unless [`Sandbox::refuse_key`] made the sandbox refuse it (401 `unauthorized`, as for a
//! missing key).
//!
//! # The Cafe24 stand-in
//!
//! [`Cafe24Sandbox`] plays Cafe24 for the app's installation (PROTOCOL.md §12,
//! `shared/reference/cafe24-install.md`), as [`Sandbox`] plays KOMOJU: in memory, over
//! HTTP only, sharing no types with the service. It is created for one app
//! ([`Cafe24App`]: client id and secret, name, App URL) and mounted with
//! [`Cafe24Sandbox::configure`] (the service would use `/sandbox/cafe24`). A real mall has
//! its own API host `https://{mall_id}.cafe24api.com`; here the mall id is the first path
//! segment, so the service's `CAFE24_API_BASE` is [`Cafe24Sandbox::api_base_template`],
//! `{public_base}/{mall_id}` with the literal `{mall_id}` for the service to fill in.
//!
//! ```text
//! GET  {prefix}/                                  launch form (development)
//! GET  {prefix}/launch?mall_id&shop_no&lang&user_id&user_name[&user_type]
//!                                                 page with the signed launch link
//! GET  {prefix}/{mall_id}/api/v2/oauth/authorize?response_type=code&client_id&state
//!      &redirect_uri&scope                        consent page (400 page if invalid)
//! POST {prefix}/{mall_id}/api/v2/oauth/authorize  decision=allow → 302 redirect_uri?code&state
//!                                                 decision=deny  → 302 …?error=access_denied&state
//! POST {prefix}/{mall_id}/api/v2/oauth/token      Basic client_id:client_secret; form
//!      grant_type=authorization_code&code&redirect_uri | grant_type=refresh_token&refresh_token
//!      200 {"access_token","expires_at","refresh_token","refresh_token_expires_at",
//!           "client_id","mall_id","user_id","scopes":[…],"issued_at","shop_no":"1",
//!           "token_type":"Bearer"}
//!      401 {"error":"invalid_grant","error_description":"Invalid client_secret"} (the
//!      app's id, a wrong secret)  401 {"error":"invalid_client",…}  400 invalid_request |
//!      invalid_grant | unsupported_grant_type
//! GET    {prefix}/{mall_id}/api/v2/admin/shops
//! POST   {prefix}/{mall_id}/api/v2/admin/paymentgateway       201 | 422
//! DELETE {prefix}/{mall_id}/api/v2/admin/paymentgateway/{client_id}?shop_no=N   200 | 404
//! GET    {prefix}/{mall_id}/api/v2/admin/scripttags?shop_no=N
//! POST   {prefix}/{mall_id}/api/v2/admin/scripttags           201 | 422
//! DELETE {prefix}/{mall_id}/api/v2/admin/scripttags/{script_no}?shop_no=N       200 | 404
//! ```
//!
//! The launch URL ([`Cafe24Sandbox::launch_url`]) is the App URL with Cafe24's query,
//! `is_multi_shop, lang, mall_id, nation, shop_no, timestamp, user_id, user_name,
//! user_type` in that order, each value percent-encoded (upper-case escapes, a space as
//! `%20`), then `&hmac=` and the encoded standard Base64 of HMAC-SHA256 under the client
//! secret of the query before it, as built ([`Cafe24Sandbox::launch_url_for`] sets
//! `user_type`). "Allow" installs the app on the mall and mints a code
//! good once, for 60 seconds, for that mall, client and exact `redirect_uri`. Token
//! timestamps are Korean wall-clock time without zone (`2026-12-01T21:00:00.000`); access
//! tokens live 2 hours, refresh tokens 14 days; a refresh rotates the refresh token (only
//! the mall's latest one works, once) and leaves earlier access tokens alive until they
//! expire; `user_id` is the mall id (the representative operator's id). The Admin API
//! wants `Authorization: Bearer` with a live access token of that very mall (else 401),
//! the app installed and the token granted the endpoint's scope (else 403; for
//! `paymentgateway` also a client Cafe24 authorized), and an `X-Cafe24-Api-Version`, when
//! sent, of the form `YYYY-MM-DD` (else 400; absent, Cafe24 uses the app's version);
//! errors are `{"error":{"code":N,"message":"…","more_info":{}}}` with an integer `code`,
//! every API reply carries an `X-Trace_ID` and Admin API replies
//! `X-Api-Call-Limit: n/40` (n: the mall's calls in the last second), bodies are
//! `{"shop_no": N, "request": {…}}` (`shop_no` 1 when absent). Anything else under
//! `/api/v2` is 404.
//!
//! Test controls on [`Cafe24Sandbox`]: shops per mall, expiring a mall's access tokens,
//! removing the app from a mall, faults (a status, or a delay) on the next API requests,
//! a delay on the token endpoint (to make concurrent refreshes overlap), token lifetimes,
//! a token reply naming another mall, a rotated client secret, a client not authorized
//! for `paymentgateway`, the app's webhook and its `x-api-key` with a control that sends
//! the lifecycle events 90077/90078 there, and reads of the registrations and of every
//! request (with the token endpoint's `grant_type` and the reply's `X-Trace_ID`). Client
//! secret, codes and tokens are never logged.
//!
//! It also receives the service's notifications to Cafe24 (`return_noty_url`,
//! `cancel_noty_url`, external checkout's `return_notification_url`): point them at
//! [`Cafe24Sandbox::notification_url`] (`{prefix}/notifications/{kind}`, form-encoded or
//! JSON, answered 200 `{"result":"OK"}` as Cafe24's PG sample app expects); `GET
//! {prefix}/notifications` lists them with their fields and whether `hash_data` verifies
//! (H3, or H4 for `cancelnoty`) under the service key given to
//! [`Cafe24Sandbox::set_service_key`]; [`Cafe24Sandbox::notifications`] reads them.
//!
//! The Cafe24 stand-in does not emulate the Admin API's other resources, token revocation,
//! lifecycle events other than `90077`/`90078`, Cafe24's real leaky bucket
//! (nothing is ever refused for rate; 429 only by [`Cafe24Sandbox::fail_next`]) or
//! several apps.
//!
//! # What the KOMOJU sandbox leaves out
//!
//! It does not emulate non-payment events other than `ping`, publishable keys,
//! `POST /sessions/{id}/pay`, `POST /payments`, payment lists, `POST
//! /payments/{id}/refund_request`, customers and the `customer` session modes, line
//! items, the `Komoju-Scenario` test header, 3-D Secure, tax (always 0: sessions carry
//! none), rejected refund requests, API versions, rate limits or the 24-hour lifetime of
//! idempotency keys. Paying a type the session did not offer is allowed (a misbehaving
//! KOMOJU, for tests).

mod api;
mod cafe24;
mod clock;
mod money;
mod page;
mod params;
mod reply;
mod state;
#[cfg(test)]
mod tests;
mod views;
mod webhooks;

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::web;

pub use cafe24::{AppEvent, Launch};
pub use cafe24::{
    Cafe24App, Cafe24Fault, Cafe24Notification, Cafe24Request, Cafe24Sandbox, HashCheck,
    PaymentGateway, ScriptTag, ShopSpec,
};
pub use state::DECLINED_CARD_NUMBER;
use state::{State, Transition};
pub use webhooks::WebhookDelivery;

/// Handle to the sandbox's state; cheap to clone (an `Arc` inside) and thread-safe. The
/// state sits behind a `std::sync::Mutex` that is never held across an `.await`.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    /// Absolute URL of the mount point as a browser sees it, without trailing slash.
    public_base: String,
    state: Mutex<State>,
}

/// A fault injected into the API by [`Sandbox::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 500 `{"error":{"code":"internal_server_error",…}}` without processing the
    /// request; nothing is stored under its idempotency key, so a retry is processed fresh.
    InternalError,
    /// Process the request normally (and store its idempotent reply), then sleep this long
    /// before answering, so that a client with a shorter timeout gives up.
    DelayAfterProcessing(Duration),
    /// Keep the request's idempotency key in flight this long before processing it, so
    /// that a retry with the same key meanwhile is answered 409 (KOMOJU's
    /// ja.doc.komoju.com/docs/idempotent-requests), as a slow KOMOJU would.
    SlowProcessing(Duration),
    /// Process normally, but the reply on the wire carries `amount` (of the session, of its
    /// embedded payment, of a payment) increased by 1. Stored state and the stored
    /// idempotent reply stay correct. Error replies are sent unchanged.
    WrongAmountInReply,
    /// Answer 422 with this error `code` (e.g. `not_capturable`) without processing the
    /// request: KOMOJU refusing a request it understood (PROTOCOL.md §7 lists the
    /// payment-specific codes; their conditions at the card network are not
    /// reproducible here, so the refusal is injected).
    Unprocessable(&'static str),
}

/// One API request (anything under `/api/v1`) as the sandbox saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, upper case, e.g. `"POST"`.
    pub method: String,
    /// Path without the mount prefix and without query, e.g. `"/api/v1/sessions"`.
    pub path: String,
    /// The `X-KOMOJU-IDEMPOTENCY` header as sent (lossily decoded), if any.
    pub idempotency_key: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
}

/// Why a test trigger ([`Sandbox::capture`], [`Sandbox::expire`]) did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxError {
    /// No payment with that id.
    NotFound,
    /// The payment is in a state the transition does not start from; the text says which.
    InvalidState(String),
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxError::NotFound => f.write_str("not found"),
            SandboxError::InvalidState(why) => write!(f, "invalid state: {why}"),
        }
    }
}

impl std::error::Error for SandboxError {}

impl Sandbox {
    /// Creates an empty sandbox. `public_base` is the absolute URL at which the sandbox's
    /// routes are reachable by a browser, without trailing slash (one is trimmed if given),
    /// e.g. `"http://127.0.0.1:8080/sandbox/komoju"`; sessions get
    /// `session_url = "{public_base}/sessions/{id}"` and the hosted page's forms post there.
    pub fn new(public_base: &str) -> Sandbox {
        Sandbox {
            inner: Arc::new(Inner {
                public_base: public_base.trim_end_matches('/').to_string(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Returns a closure for `App::configure` / `ServiceConfig::configure` that mounts one
    /// `actix_web::Scope` at `prefix` (e.g. `"/sandbox/komoju"`, or `""` when the sandbox is
    /// served alone) holding every route:
    ///
    /// - `/api/v1/…` (any method): the API of the crate documentation, and the
    ///   sandbox-only `POST /api/v1/webhook_endpoints` and
    ///   `POST /api/v1/webhook_endpoints/ping`; anything else there is 404 `not_found`.
    /// - `GET /sessions/{id}` and `POST /sessions/{id}/pay`: the hosted page.
    /// - `GET /instructions/{payment_id}`: konbini instructions.
    /// - `POST /payments/{id}/simulate-capture`, `POST /payments/{id}/simulate-expire`:
    ///   browser buttons for [`Sandbox::capture`] and [`Sandbox::expire`] (no auth).
    /// - `GET|POST /refund_requests/{token}`: a bank refund's `redirect_url` page, and
    ///   `POST /refund_requests/{token}/simulate-complete`
    ///   ([`Sandbox::complete_refund_request`]).
    ///
    /// Any other path under the prefix is answered 404 with KOMOJU's JSON error envelope.
    pub fn configure(&self, prefix: &str) -> impl FnOnce(&mut web::ServiceConfig) + 'static {
        let sandbox = self.clone();
        let prefix = prefix.trim_end_matches('/').to_string();
        move |cfg: &mut web::ServiceConfig| {
            cfg.service(
                web::scope(&prefix)
                    .app_data(web::Data::new(sandbox))
                    .route("/api/v1/{tail:.*}", web::route().to(api::handle))
                    .route("/sessions/{id}", web::get().to(page::show_session))
                    .route("/sessions/{id}/pay", web::post().to(page::pay))
                    .route("/instructions/{id}", web::get().to(page::instructions))
                    .route(
                        "/payments/{id}/simulate-capture",
                        web::post().to(page::simulate_capture),
                    )
                    .route(
                        "/payments/{id}/simulate-expire",
                        web::post().to(page::simulate_expire),
                    )
                    .route(
                        "/refund_requests/{token}",
                        web::get().to(page::refund_account_page),
                    )
                    .route(
                        "/refund_requests/{token}",
                        web::post().to(page::refund_account_submit),
                    )
                    .route(
                        "/refund_requests/{token}/simulate-complete",
                        web::post().to(page::refund_simulate_complete),
                    )
                    .default_service(web::to(api::not_found)),
            );
        }
    }

    /// Injects `fault` into each of the next `n` API requests (any method, any path under
    /// `/api/v1`, whether or not it authenticates); then the fault clears itself. Calls
    /// queue up: after the first call's `n` requests the next call's fault applies.
    /// `n == 0` does nothing.
    pub fn fail_next(&self, n: u32, fault: Fault) {
        if n > 0 {
            self.lock().faults.push_back((fault, n));
        }
    }

    /// Restricts what `GET /api/v1/payment_methods` lists for `secret_key` to `types`, in
    /// that order, duplicates dropped, each in every currency it takes (a type the
    /// sandbox has no names for is listed under its slug in every language, in JPY; an
    /// empty slice lists nothing). By default a key sees every type the sandbox knows:
    /// `credit_card`, `konbini`, `paypay`, `bank_transfer`, `pay_easy`. Sessions are not
    /// checked against the list.
    pub fn set_payment_methods(&self, secret_key: &str, types: &[&str]) {
        let mut list: Vec<String> = Vec::new();
        for t in types {
            if !list.iter().any(|known| known == t) {
                list.push(t.to_string());
            }
        }
        self.lock()
            .payment_methods
            .insert(secret_key.to_string(), list);
    }

    /// From now on every API request authenticated with `secret_key` is answered 401
    /// `unauthorized`, exactly as a missing or malformed key is (a key KOMOJU revoked or
    /// never issued). Objects the key owns stay, and its webhooks are still sent.
    pub fn refuse_key(&self, secret_key: &str) {
        self.lock().refused_keys.insert(secret_key.to_string());
    }

    /// Number of sessions created so far, across all secret keys (idempotent replays and
    /// rejected requests do not count).
    pub fn sessions_created(&self) -> usize {
        self.lock().sessions_created
    }

    /// Every API request received (anything under `/api/v1`, hosted-page routes excluded),
    /// in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Konbini, bank transfer or Pay-easy paid (or a manual card capture, as KOMOJU's
    /// dashboard would): `authorized` → `captured`, with `captured_at` set and the amount
    /// skewed by [`Sandbox::set_capture_amount_delta`]. Works on any secret key's payment.
    pub fn capture(&self, payment_id: &str) -> Result<(), SandboxError> {
        self.transition(|state, now| state.capture_payment(payment_id, now))
    }

    /// The payment deadline passed: `authorized` or `pending` → `expired`.
    pub fn expire(&self, payment_id: &str) -> Result<(), SandboxError> {
        self.transition(|state, now| state.expire_payment(payment_id, now))
    }

    /// Makes KOMOJU record `amount + delta` (minor units) on every payment captured on the
    /// hosted page (cards, PayPay) and on every capture from now on
    /// ([`Sandbox::capture`], `POST /payments/{id}/capture`), to provoke amount
    /// mismatches; `0` resets. The session's own amount is never skewed.
    pub fn set_capture_amount_delta(&self, delta: i64) {
        self.lock().capture_amount_delta = delta;
    }

    /// With `true`, card payments made on the hosted page stay `authorized` whatever the
    /// session's `payment_data.capture` (a KOMOJU account on manual capture);
    /// `POST /payments/{id}/capture` or [`Sandbox::capture`] captures them.
    pub fn set_card_manual_capture(&self, manual: bool) {
        self.lock().card_manual_capture = manual;
    }

    /// Sets the rate KOMOJU converts `from` into `to` at: `rate` units of `to` (major
    /// units) for one of `from`, e.g. `set_exchange_rate("USD", "JPY", 150.0)` (the
    /// default for that pair; the others into JPY are in `money.rs`). Sessions created
    /// from then on use it.
    pub fn set_exchange_rate(&self, from: &str, to: &str, rate: f64) {
        self.lock().rates.set(from, to, rate);
    }

    /// Sets KOMOJU's `payment_method_fee` for payments of `payment_type` made from now on,
    /// in minor units of the currency the payment is charged in (e.g. `("konbini", 190)`:
    /// the konbini fee of the WooCommerce plugin's example `payment_methods` entry,
    /// `class-wc-settings-page-komoju.php`); `0` removes it. It is added on top: the
    /// payment's `amount` stays what the session asked and `total` is `amount + tax +
    /// payment_method_fee` (docs.komoju.com "Show a payment"; the plugin checks
    /// `total - payment_method_fee` against the order). `GET /payment_methods` shows it.
    /// Refunds give back at most `amount + tax`.
    pub fn set_payment_method_fee(&self, payment_type: &str, fee: i64) {
        let mut state = self.lock();
        if fee == 0 {
            state.fees.remove(payment_type);
        } else {
            state.fees.insert(payment_type.to_string(), fee);
        }
    }

    /// KOMOJU paid the refunds of a konbini, bank transfer or Pay-easy payment: each of
    /// its refund requests still `pending` becomes `completed`; a refund whose buyer has
    /// not given an account yet first gets a test account (as if given on its
    /// `redirect_url` page). A `payment.updated` event announces it. `NotFound` for an
    /// unknown payment, `InvalidState` when no refund of it waits.
    pub fn complete_refund_request(&self, payment_id: &str) -> Result<(), SandboxError> {
        self.transition(|state, now| state.complete_refund_request(payment_id, now))
    }

    /// The session as `GET /api/v1/sessions/{id}` would return it to its owner (without
    /// any fault applied), or `None` if there is no such session.
    pub fn session_json(&self, id: &str) -> Option<serde_json::Value> {
        let now = clock::now();
        let state = self.lock();
        let session = state.sessions.get(id)?;
        serde_json::to_value(views::session_view(
            &state,
            session,
            &self.inner.public_base,
            now,
            0,
        ))
        .ok()
    }

    /// The payment as `GET /api/v1/payments/{id}` would return it to its owner (without any
    /// fault applied), or `None` if there is no such payment.
    pub fn payment_json(&self, id: &str) -> Option<serde_json::Value> {
        let state = self.lock();
        let payment = state.payments.get(id)?;
        serde_json::to_value(views::payment_view(payment, &self.inner.public_base, 0)).ok()
    }

    /// Test hook for stale and out-of-order events: sends a `payment.<kind>` event
    /// (`event_type` is `"authorized"` or `"payment.authorized"` alike) whose data is the
    /// payment as it is now but with `status` replaced by `status_override` when given.
    /// Sent at once even while paused, and retried like any event. Returns the status of
    /// the first attempt; 0 on connection error, or when there is no such payment or its
    /// secret key has no webhook.
    pub async fn send_event(
        &self,
        payment_id: &str,
        event_type: &str,
        status_override: Option<&str>,
    ) -> u16 {
        let event_type = if event_type.starts_with("payment.") {
            Cow::Borrowed(event_type)
        } else {
            Cow::Owned(format!("payment.{event_type}"))
        };
        let now = clock::now();
        let outgoing = {
            let mut guard = self.lock();
            let state = &mut *guard;
            state.payments.get(payment_id).and_then(|payment| {
                let mut data = views::payment_view(payment, self.public_base(), 0);
                if let Some(status) = status_override {
                    data.override_status(status);
                }
                state
                    .webhooks
                    .create(&payment.owner, &event_type, &data, now)
            })
        };
        match outgoing {
            Some(outgoing) => self.send_now(outgoing, true).await,
            None => 0,
        }
    }

    fn public_base(&self) -> &str {
        &self.inner.public_base
    }

    /// Locks the state; a poisoned lock is recovered, since every transition leaves the
    /// state consistent before it can panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one state transition under the lock, then announces what changed.
    /// The transition's webhook events are rendered in the same critical section, so their
    /// `data` is the payment exactly as the change left it.
    fn transition<T, E>(
        &self,
        f: impl FnOnce(&mut State, clock::Time) -> Result<(T, Vec<Transition>), E>,
    ) -> Result<T, E> {
        let now = clock::now();
        let (value, transitions, events) = {
            let mut state = self.lock();
            let (value, transitions) = f(&mut state, now)?;
            let events = events_for(&mut state, &transitions, self.public_base(), now);
            (value, transitions, events)
        };
        self.announce(&transitions, events);
        Ok(value)
    }

    /// The one place every state change passes after the lock is released: logs it and
    /// starts one delivery task per webhook event (none while paused: they were queued).
    fn announce(&self, transitions: &[Transition], events: Vec<webhooks::Outgoing>) {
        for transition in transitions {
            log::debug!("komoju sandbox: {transition:?}");
        }
        self.dispatch(events);
    }
}

/// The event a transition announces, with the payment it is about: every payment change
/// (doc.komoju.com/docs/webhooks lists `payment.authorized`, `.captured`, `.updated`,
/// `.expired`, `.cancelled`, `.refund.created`, `.refunded`, `.failed`); session changes
/// have none.
fn event_of(transition: &Transition) -> Option<(&str, &'static str)> {
    match transition {
        Transition::PaymentAuthorized { payment } => Some((payment, "payment.authorized")),
        Transition::PaymentCaptured { payment } => Some((payment, "payment.captured")),
        Transition::PaymentFailed { payment } => Some((payment, "payment.failed")),
        Transition::PaymentCancelled { payment } => Some((payment, "payment.cancelled")),
        Transition::PaymentExpired { payment } => Some((payment, "payment.expired")),
        Transition::PaymentRefundCreated { payment, .. } => {
            Some((payment, "payment.refund.created"))
        }
        Transition::PaymentRefunded { payment } => Some((payment, "payment.refunded")),
        Transition::PaymentUpdated { payment } => Some((payment, "payment.updated")),
        Transition::SessionCompleted { .. } | Transition::SessionCancelled { .. } => None,
    }
}

/// Under the state lock, right after `transitions` happened: renders their events (in
/// order) for owners with an endpoint. While paused they are queued and nothing is
/// returned; otherwise the caller hands the result to [`Sandbox::dispatch`] once the lock
/// is released.
fn events_for(
    state: &mut State,
    transitions: &[Transition],
    public_base: &str,
    now: clock::Time,
) -> Vec<webhooks::Outgoing> {
    let mut outgoing = Vec::new();
    for transition in transitions {
        let Some((payment_id, event_type)) = event_of(transition) else {
            continue;
        };
        let Some(payment) = state.payments.get(payment_id) else {
            continue;
        };
        if !state.webhooks.has_endpoint(&payment.owner) {
            continue;
        }
        let data = views::payment_view(payment, public_base, 0);
        let Some(event) = state
            .webhooks
            .create(&payment.owner, event_type, &data, now)
        else {
            continue;
        };
        outgoing.extend(state.webhooks.release(event));
    }
    outgoing
}
