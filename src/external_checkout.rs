//! External checkout (PROTOCOL.md §6.3; seed `cafe24-pg-app-process-flows.txt` §C and
//! `cafe24-pg-app-routes.txt` "External Checkout"; the Cafe24 sample app's
//! `ExternalCheckout` controller): a KOMOJU button on the mall's own pages.
//!
//! The mall front's script asks for the precreateOrder request HMAC, reserves the order
//! with Cafe24's front SDK, and posts the reservation here; this module checks
//! Cafe24's reservation HMAC, totals the lines exactly, and starts the KOMOJU session
//! through the same checkout code as the other families. The result reaches Cafe24 at
//! the reservation's `return_notification_url` through the outbox.
//!
//! It never signs for anyone: the request HMAC is only made for a registered, enabled
//! mall, with this app's client id, for a `request_time` near now, and rate-limited.
//!
//! It never trusts a reservation's amount alone (issue 18, item 9): the reservation HMAC
//! is keyed by `client_id · order_id`, and `client_id` is public, so anyone can sign one.
//! A reservation must be fresh (`response_time` within [`RESERVATION_MAX_AGE_SECS`], not
//! ahead of now), and its total is confirmed against Cafe24's own order (`GET
//! /admin/orders/{order_id}`, scope `mall.read_order`) before the KOMOJU session is
//! made; a mismatch is refused. When Cafe24 cannot confirm it (the mall never authorized
//! the app or lacks the scope, or Cafe24 does not show the reserved order), the shop's
//! ceiling (`merchant limit`) applies; `docs/decisions.md` says why.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha384};

use crate::cafe24::external_checkout::{request_hmac, reservation_valid};
use crate::cafe24::ids::OrderId;
use crate::cafe24::partner_id::PartnerId;
use crate::cafe24::Fields;
use crate::checkout::{self, ValidCheckout};
use crate::db::orders::OrderRow;
use crate::error::ApiError;
use crate::keys::order::OrderRef;
use crate::money::{Currency, Money};
use crate::orders::state::OrderState;
use crate::orders::Flow;
use crate::services::Services;

/// The loader installed by Cafe24's Scripttag API; its bytes (for one version and one
/// `PUBLIC_BASE_URL`) are what the registered `integrity` value covers.
const LOADER: &str = include_str!("../static/external-checkout/loader.js");
/// The button script the loader loads.
const APP: &str = include_str!("../static/external-checkout/app.js");
const BASE_PLACEHOLDER: &str = "__CAFE24_KOMOJU_BASE__";
const VERSION_PLACEHOLDER: &str = "__CAFE24_KOMOJU_VERSION__";

/// How far `request_time` may be from now, in seconds.
pub const REQUEST_TIME_TOLERANCE_SECS: i64 = 5 * 60;
/// How old a reservation's `response_time` may be, in seconds.
pub const RESERVATION_MAX_AGE_SECS: i64 = 10 * 60;
/// How far ahead of this service's clock a `response_time` may be (clock skew), in
/// seconds.
pub const RESERVATION_SKEW_SECS: i64 = 60;
/// Most lines and units accepted in one reservation.
const MAX_LINES: usize = 200;
const MAX_QUANTITY: i64 = 10_000;

/// The loader script for this deployment: byte-for-byte stable for one version and one
/// `public_base` (no trailing slash).
pub fn loader_script(public_base: &str) -> String {
    LOADER
        .replace(BASE_PLACEHOLDER, public_base)
        .replace(VERSION_PLACEHOLDER, env!("CARGO_PKG_VERSION"))
}

/// The button script, pointed at `public_base`.
pub fn app_script(public_base: &str) -> String {
    APP.replace(BASE_PLACEHOLDER, public_base)
        .replace(VERSION_PLACEHOLDER, env!("CARGO_PKG_VERSION"))
}

/// The Subresource Integrity value of a script: `sha384-` + base64(SHA-384(bytes)).
pub fn integrity(script: &str) -> String {
    format!(
        "sha384-{}",
        STANDARD.encode(Sha384::digest(script.as_bytes()))
    )
}

/// A number sent as a JSON string or number, kept as its text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Str(String),
    Num(serde_json::Number),
}

impl Text {
    fn as_text(&self) -> String {
        match self {
            Text::Str(s) => s.clone(),
            Text::Num(n) => n.to_string(),
        }
    }
}

/// One Cafe24 cart line of the reservation (fields this service reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Line {
    pub product_no: Option<Text>,
    pub product_name: Option<String>,
    pub variant_code: Option<String>,
    pub quantity: Text,
    pub product_price: Text,
    pub option_price: Option<Text>,
}

/// `POST /api/external-checkout/payload`: the reserved order as the button posts it.
#[derive(Debug, Clone, Deserialize)]
pub struct Payload {
    pub mall_id: String,
    pub shop_no: Text,
    #[serde(default)]
    pub member_id: Option<String>,
    #[serde(default)]
    pub is_guest: Option<bool>,
    pub currency: String,
    pub order_id: String,
    pub return_notification_url: String,
    pub return_url_base: String,
    pub response_time: Text,
    pub hmac: String,
    pub order: Vec<Line>,
    /// The total the front computed, when sent: it must equal the lines'.
    #[serde(default)]
    pub total: Option<Text>,
}

/// What the button needs after `/payload`.
#[derive(Debug, Clone)]
pub struct Started {
    pub session_url: String,
    /// Set when the merchant shows a review page first.
    pub review_url: Option<String>,
}

/// Σ (product_price + option_price) × quantity, exactly, in minor units.
pub fn lines_total(lines: &[Line], currency: Currency) -> Result<Money, ApiError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(ApiError::invalid(format!(
            "order must have 1 to {MAX_LINES} lines"
        )));
    }
    let mut total = Money::from_minor(0, currency);
    for (i, line) in lines.iter().enumerate() {
        let quantity: i64 = line
            .quantity
            .as_text()
            .parse()
            .ok()
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| {
                ApiError::invalid(format!("order[{i}].quantity must be 1 to {MAX_QUANTITY}"))
            })?;
        let price =
            Money::parse_non_negative(&line.product_price.as_text(), currency).map_err(|_| {
                ApiError::InvalidAmount(format!(
                    "order[{i}].product_price is not an amount in {currency}"
                ))
            })?;
        let option = match &line.option_price {
            Some(p) => Money::parse_non_negative(&p.as_text(), currency).map_err(|_| {
                ApiError::InvalidAmount(format!(
                    "order[{i}].option_price is not an amount in {currency}"
                ))
            })?,
            None => Money::from_minor(0, currency),
        };
        let line_total = price
            .checked_add(option)
            .and_then(|unit| unit.minor().checked_mul(quantity))
            .map(|m| Money::from_minor(m, currency))
            .ok_or_else(|| ApiError::InvalidAmount("order total overflows".into()))?;
        total = total
            .checked_add(line_total)
            .ok_or_else(|| ApiError::InvalidAmount("order total overflows".into()))?;
    }
    if total.minor() <= 0 {
        return Err(ApiError::InvalidAmount(
            "order total must be positive".into(),
        ));
    }
    Ok(total.within_maximum()?)
}

/// Handles a reservation: checks it, creates the order and its KOMOJU session (counted
/// in `checkouts_total` with flow `external`).
pub async fn start(app: &Services, payload: &Payload) -> Result<Started, ApiError> {
    let started = start_reservation(app, payload).await;
    crate::checkout::count(app, Flow::External, started.as_ref().map(|_| ()));
    started
}

async fn start_reservation(app: &Services, payload: &Payload) -> Result<Started, ApiError> {
    let shop_no: i32 = payload
        .shop_no
        .as_text()
        .parse()
        .map_err(|_| ApiError::invalid("shop_no must be a number"))?;
    let order_id =
        OrderId::parse(&payload.order_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let merchant = app.merchants.load(&payload.mall_id, Some(shop_no)).await?;
    let shop = load_shop(app, &payload.mall_id, shop_no).await?;
    let total = reserved_total(payload, &shop.currency)?;
    check_signed(app, payload, total)?;
    let hosts = &merchant.allowed_hosts;
    let return_notification_url = app.allowed_hosts.check_field(
        "return_notification_url",
        &payload.return_notification_url,
        hosts,
    )?;
    let return_url_base =
        app.allowed_hosts
            .check_field("return_url_base", &payload.return_url_base, hosts)?;
    let partner_id = PartnerId::new(&payload.mall_id, shop_no, &merchant.public_ref)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let valid = ValidCheckout {
        partner_id,
        order_id,
        amount: total,
        amount_text: total.to_decimal_string(),
        return_url: return_url_base.trim_end_matches('/').to_owned(),
        return_noty_url: Some(return_notification_url),
        extra_data: None,
        request_fields: request_fields(payload, total.currency()),
        buyer_email: None,
        lang: None,
        merchant,
    };
    confirm_amount(app, &payload.mall_id, shop_no, &payload.order_id, total).await?;
    let (order, session_url) = checkout::start_valid(app, Flow::External, &valid).await?;
    let review_url = valid
        .merchant
        .external_review
        .then(|| review_url(app, &order))
        .transpose()?;
    Ok(Started {
        session_url,
        review_url,
    })
}

/// The reservation's total: in the shop's currency, the sum of its lines, and equal to
/// its `total` when it sends one (`invalid_request`, `invalid_amount` otherwise).
fn reserved_total(payload: &Payload, shop_currency: &str) -> Result<Money, ApiError> {
    let currency = Currency::parse(&payload.currency)?;
    if currency.code() != shop_currency {
        return Err(ApiError::invalid(format!(
            "currency must be the shop's ({shop_currency})"
        )));
    }
    let total = lines_total(&payload.order, currency)?;
    if let Some(sent) = &payload.total {
        let sent = Money::parse_non_negative(&sent.as_text(), currency)
            .map_err(|_| ApiError::InvalidAmount("total is not an amount".into()))?;
        if sent != total {
            return Err(ApiError::invalid("total does not match the order lines"));
        }
    }
    Ok(total)
}

/// The reservation's `hmac` (key `client_id·order_id`, §6.3) holds for its total in major
/// units, and its `response_time` is fresh.
fn check_signed(app: &Services, payload: &Payload, total: Money) -> Result<(), ApiError> {
    let response_time = payload.response_time.as_text();
    let total_major = total.minor() / 10i64.pow(total.currency().exponent());
    let received = STANDARD.decode(payload.hmac.trim()).unwrap_or_default();
    if !reservation_valid(
        &app.cafe24_client_id,
        &payload.order_id,
        total_major,
        &response_time,
        &payload.return_notification_url,
        &received,
    ) {
        return Err(ApiError::InvalidReservationHmac);
    }
    check_fresh(app, &response_time)
}

/// What the order keeps of the reservation (JSON): the buyer, the `response_time`, and
/// each line with its total (shown on the review page).
fn request_fields(payload: &Payload, currency: Currency) -> String {
    let lines: Vec<serde_json::Value> = payload
        .order
        .iter()
        .map(|l| {
            let line_total = lines_total(std::slice::from_ref(l), currency)
                .map(|m| m.to_decimal_string())
                .unwrap_or_default();
            serde_json::json!({
                "line_total": line_total,
                "product_no": l.product_no.as_ref().map(Text::as_text),
                "product_name": l.product_name,
                "variant_code": l.variant_code,
                "quantity": l.quantity.as_text(),
                "product_price": l.product_price.as_text(),
                "option_price": l.option_price.as_ref().map(Text::as_text),
            })
        })
        .collect();
    serde_json::json!({
        "member_id": payload.member_id,
        "is_guest": payload.is_guest,
        "response_time": payload.response_time.as_text(),
        "lines": lines,
    })
    .to_string()
}

/// The review page's URL for `order`, with its order key.
fn review_url(app: &Services, order: &OrderRow) -> Result<String, ApiError> {
    let key = crate::checkout::key::issue(
        app,
        &OrderRef {
            mall_id: order.mall_id.clone(),
            order_id: order.order_id.clone(),
            flow: Flow::External,
            attempt: order.attempt,
        },
    )?;
    Ok(app.public_url("/api/external-checkout/order/review", &[("key", &key)]))
}

/// Unix seconds of a reservation's `response_time`: Unix seconds (10 digits, as the
/// browser test's stand-in of Cafe24's SDK writes it) or milliseconds (13), Cafe24's
/// zoneless `YYYY-MM-DD HH:MM:SS` (Korean time, +09:00, as Cafe24's other zoneless times:
/// PROTOCOL.md §12), or RFC 3339 with an offset. `None` for anything else (`"yesterday"`,
/// `"1e30"`).
pub fn response_time_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().ok()?;
        return match text.len() {
            9 | 10 => Some(n),
            13 => Some(n / 1000),
            _ => None,
        };
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    let kst = chrono::FixedOffset::east_opt(9 * 3600)?;
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
        .and_then(|t| t.and_local_timezone(kst).single())
        .map(|t| t.timestamp())
}

/// A reservation's `response_time` is a time at most [`RESERVATION_MAX_AGE_SECS`] old
/// and not ahead of now (beyond [`RESERVATION_SKEW_SECS`]). Errors: `invalid_request`.
fn check_fresh(app: &Services, response_time: &str) -> Result<(), ApiError> {
    let now = app.clock.unix_seconds();
    match response_time_seconds(response_time) {
        Some(t) if t <= now + RESERVATION_SKEW_SECS && now - t <= RESERVATION_MAX_AGE_SECS => {
            Ok(())
        }
        Some(_) => Err(ApiError::invalid(
            "response_time is not within the last 10 minutes; reserve the order again",
        )),
        None => Err(ApiError::invalid("response_time is not a time")),
    }
}

/// Confirms a reservation's `total` for `order_id` of the shop: against Cafe24's own
/// order when Cafe24 shows it (a different amount or currency is `invalid_amount`);
/// otherwise against the shop's ceiling for unconfirmed reservations, when one is set.
/// Errors: `invalid_amount`; `upstream_error` when Cafe24 fails; `merchant_disabled`
/// when Cafe24 says the app is gone; `unavailable`.
async fn confirm_amount(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    order_id: &str,
    total: Money,
) -> Result<(), ApiError> {
    let why = match cafe24_due(app, mall_id, shop_no, order_id).await? {
        Ok(due) => {
            let currency = total.currency();
            let same_currency = due
                .currency
                .as_deref()
                .map_or(true, |c| c == currency.code());
            let amount = Money::parse_non_negative(&due.amount, currency).ok();
            if same_currency && amount == Some(total) {
                return Ok(());
            }
            log::warn!(
                "external checkout: mall {mall_id} order {order_id}: the reservation says {} {currency}, Cafe24's order {} {}; refused",
                total.to_decimal_string(),
                due.amount,
                due.currency.as_deref().unwrap_or("?")
            );
            return Err(ApiError::InvalidAmount(
                "the amount is not the amount of Cafe24's order".into(),
            ));
        }
        Err(why) => why,
    };
    let mall = mall_id.to_owned();
    let max = app
        .db
        .run(move |c| crate::db::limits::external_max(c, &mall, shop_no))
        .await
        .map_err(|e| ApiError::from_db("reading the shop's ceiling", e))?;
    match max {
        Some(max) if total.minor() > max => {
            log::warn!("external checkout: mall {mall_id} order {order_id}: not confirmed by Cafe24 ({why}) and above the shop's ceiling; refused");
            Err(ApiError::InvalidAmount(format!(
                "the amount is above what this shop accepts without Cafe24's confirmation ({} {})",
                Money::from_minor(max, total.currency()).to_decimal_string(),
                total.currency()
            )))
        }
        _ => {
            log::warn!("external checkout: mall {mall_id} order {order_id}: amount not confirmed by Cafe24 ({why}); accepted");
            Ok(())
        }
    }
}

/// Whether the mall's tokens hold the `mall.read_order` scope (`Err` says why not).
async fn may_read_orders(app: &Services, mall_id: &str) -> Result<Result<(), String>, ApiError> {
    use crate::cafe24::orders::READ_ORDER_SCOPE;
    let mall = mall_id.to_owned();
    let token = app
        .db
        .run(move |c| crate::db::cafe24::find_token(c, &mall))
        .await
        .map_err(|e| ApiError::from_db("reading the mall's Cafe24 tokens", e))?;
    let Some(token) = token else {
        return Ok(Err("the mall has not authorized the app".into()));
    };
    if !token
        .scopes
        .split(',')
        .any(|s| s.trim() == READ_ORDER_SCOPE)
    {
        return Ok(Err(format!("the app was not granted {READ_ORDER_SCOPE}")));
    }
    Ok(Ok(()))
}

/// What Cafe24's order says is due, or why Cafe24 could not say (`Ok(Err(reason))`).
async fn cafe24_due(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    order_id: &str,
) -> Result<Result<crate::cafe24::orders::DueAmount, String>, ApiError> {
    use crate::cafe24::admin::Cafe24Error;
    use crate::cafe24::orders;
    use crate::install::tokens::AdminError;
    if let Err(why) = may_read_orders(app, mall_id).await? {
        return Ok(Err(why));
    }
    /// What the order call found; a 403 is not the app's removal here (another scope
    /// may be missing), so it never disconnects the mall.
    enum Lookup {
        Found(serde_json::Value),
        Missing,
        Refused,
    }
    let found = crate::install::tokens::with_access(app, mall_id, |access| async move {
        match orders::find(&app.cafe24, mall_id, &access, order_id, shop_no).await {
            Ok(Some(reply)) => Ok(Lookup::Found(reply)),
            Ok(None) => Ok(Lookup::Missing),
            Err(Cafe24Error::Forbidden { .. }) => Ok(Lookup::Refused),
            Err(e) => Err(e),
        }
    })
    .await;
    match found {
        Ok(Lookup::Found(reply)) => {
            Ok(orders::due_amount(&reply)
                .ok_or_else(|| "Cafe24's order carries no amount".to_owned()))
        }
        Ok(Lookup::Missing) => Ok(Err("Cafe24 does not show the order".into())),
        Ok(Lookup::Refused) => Ok(Err("Cafe24 refused to show the order (403)".into())),
        Err(AdminError::NotConnected) => Ok(Err("the mall has not authorized the app".into())),
        Err(AdminError::Refused { .. }) => Ok(Err("Cafe24 refused to show the order (403)".into())),
        Err(AdminError::Sealed) => Ok(Err("the mall's Cafe24 tokens do not open".into())),
        Err(AdminError::Disconnected) => Err(ApiError::MerchantDisabled),
        Err(AdminError::Db(e)) => Err(ApiError::from_db("reading the mall's Cafe24 tokens", e)),
        Err(AdminError::Cafe24(e)) => {
            log::warn!("external checkout: mall {mall_id} order {order_id}: Cafe24 could not be asked: {e}");
            Err(ApiError::Upstream(
                "Cafe24 could not confirm the order; try again".into(),
            ))
        }
    }
}

/// The shop row (registered and enabled: checked by `load_merchant`).
pub async fn load_shop(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
) -> Result<crate::db::merchants::ShopRow, ApiError> {
    let mall = mall_id.to_owned();
    app.db
        .run(move |c| crate::db::merchants::find_shop(c, &mall, shop_no))
        .await
        .map_err(|e| ApiError::from_db("reading shop", e))?
        .ok_or(ApiError::UnknownMerchant)
}

/// `GET /script/hmac`'s answer: the precreateOrder request HMAC for `q`'s `mall_id`,
/// `request_time` and `member_id`, asked from `peer` (the client address). Not an
/// oracle: at most [`crate::services::Services::hmac_limiter`]'s rate per (address,
/// mall) (`rate_limited`), the mall registered (`unknown_merchant`) and enabled
/// (`merchant_disabled`), `request_time` Unix seconds within
/// [`REQUEST_TIME_TOLERANCE_SECS`] of now, `member_id` at most 100 printable
/// characters, and `client_id` always this app's (a `client_key` that differs is
/// `invalid_request`).
pub async fn signed_request(app: &Services, peer: &str, q: &Fields) -> Result<String, ApiError> {
    let mall_id = crate::cafe24::mall_id_field(q)?;
    if app
        .hmac_limiter
        .check_key(&(peer.to_owned(), mall_id.to_owned()))
        .is_err()
    {
        log::warn!("script/hmac: rate limit hit by {peer} for mall {mall_id}");
        return Err(ApiError::RateLimited);
    }
    let request_time = q.required("request_time")?;
    let seconds: i64 = request_time
        .parse()
        .ok()
        .filter(|_| request_time.len() <= 12 && request_time.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ApiError::invalid("request_time must be Unix seconds"))?;
    if (seconds - app.clock.unix_seconds()).abs() > REQUEST_TIME_TOLERANCE_SECS {
        return Err(ApiError::invalid(
            "request_time is not within 5 minutes of now",
        ));
    }
    let member_id = q.get("member_id").unwrap_or("");
    if member_id.len() > 100 || member_id.chars().any(char::is_control) {
        return Err(ApiError::invalid("member_id is malformed"));
    }
    if q.optional("client_key")
        .is_some_and(|k| k != app.cafe24_client_id)
    {
        return Err(ApiError::invalid("client_key is not this app's client id"));
    }
    let merchant = app.merchants.load(mall_id, None).await?;
    if !merchant.enabled {
        return Err(ApiError::MerchantDisabled);
    }
    Ok(request_hmac(
        app.cafe24_service_key.expose_secret().as_bytes(),
        mall_id,
        request_time,
        &app.cafe24_client_id,
        member_id,
    ))
}

/// What the review page shows: the order as stored, and the form that pays it.
#[derive(Debug, Clone)]
pub struct Review {
    /// The shop's name, or the mall id when the shop has none.
    pub shop_name: String,
    pub order_id: String,
    /// `(name, quantity, line total)` per line, as [`stored_lines`].
    pub lines: Vec<(String, String, String)>,
    /// Cafe24's decimal format.
    pub total: String,
    pub currency: String,
    /// Where the form posts: `{PUBLIC_BASE_URL}/api/external-checkout/order/pay`.
    pub pay_url: String,
    /// The order key, posted back with the form.
    pub key: String,
    /// The form token ([`csrf_token`]).
    pub csrf: String,
}

/// `GET /order/review?key`: the page's content for a pending external order. Errors:
/// the key's (`invalid_request`), `order_not_found`, `order_conflict` when the order is
/// no longer pending.
pub async fn review(app: &Services, key: &str) -> Result<Review, ApiError> {
    let order = pending_order(app, key).await?;
    let shop = load_shop(app, &order.mall_id, order.shop_no).await?;
    Ok(Review {
        shop_name: if shop.shop_name.is_empty() {
            order.mall_id.clone()
        } else {
            shop.shop_name
        },
        lines: stored_lines(&order),
        total: order.paid_amount_text(),
        pay_url: app.public_url("/api/external-checkout/order/pay", &[]),
        csrf: csrf_token(app, key),
        key: key.to_owned(),
        order_id: order.order_id,
        currency: order.currency,
    })
}

/// `POST /order/pay`: the KOMOJU `session_url` to send the buyer to, once the form token
/// is the review page's for this key. Errors as [`review`], and `invalid_request` for a
/// token that is not this page's.
pub async fn pay(app: &Services, key: &str, csrf: &str) -> Result<String, ApiError> {
    if !csrf_valid(app, key, csrf) {
        return Err(ApiError::invalid(
            "the form token is not this page's; reload the review page",
        ));
    }
    let order = pending_order(app, key).await?;
    order.komoju_session_url.ok_or(ApiError::Internal)
}

/// Verifies an external order key and loads its order, still pending with a session.
async fn pending_order(app: &Services, key: &str) -> Result<OrderRow, ApiError> {
    let fields = Fields::from_pairs(vec![("key".into(), key.to_owned())])?;
    let order_ref = crate::checkout::key::verify(app, &fields)?;
    if order_ref.flow != Flow::External {
        return Err(ApiError::invalid("key belongs to another checkout flow"));
    }
    let order = crate::checkout::key::order_of(app, &order_ref).await?;
    if order.attempt != order_ref.attempt
        || order.state != OrderState::Pending
        || order.komoju_session_url.is_none()
    {
        return Err(ApiError::OrderConflict(format!("order is {}", order.state)));
    }
    Ok(order)
}

/// The form token of the review page: HMAC of the order key with a key derived from
/// `APP_SECRET`, so only a page this service rendered for that key can post it.
pub fn csrf_token(app: &Services, key: &str) -> String {
    hex::encode(csrf_mac(app, key).finalize().into_bytes())
}

/// Checks a posted form token (hex) in constant time.
pub fn csrf_valid(app: &Services, key: &str, token: &str) -> bool {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(token, &mut bytes).is_ok()
        && csrf_mac(app, key).verify_slice(&bytes).is_ok()
}

fn csrf_mac(app: &Services, key: &str) -> Hmac<Sha256> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(&app.form_token_key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(b"cafe24-komoju/review-csrf/v1\x1f");
    mac.update(key.as_bytes());
    mac
}

/// The lines stored with an external order, for the review page: `(name, quantity,
/// line total text)`, the line total being (product price + option price) × quantity.
pub fn stored_lines(order: &OrderRow) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(&order.request_fields).unwrap_or_default();
    v["lines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    (
                        l["product_name"].as_str().unwrap_or("").to_owned(),
                        l["quantity"].as_str().unwrap_or("").to_owned(),
                        l["line_total"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(price: &str, option: Option<&str>, qty: &str) -> Line {
        Line {
            product_no: None,
            product_name: None,
            variant_code: None,
            quantity: Text::Str(qty.into()),
            product_price: Text::Str(price.into()),
            option_price: option.map(|o| Text::Str(o.into())),
        }
    }

    #[test]
    fn totals_are_exact_in_minor_units() {
        let lines = [line("1200.50", Some("99.99"), "2"), line("0.01", None, "3")];
        assert_eq!(
            lines_total(&lines, Currency::PHP).map(|m| m.minor()).ok(),
            Some(2 * (120050 + 9999) + 3)
        );
        assert_eq!(
            lines_total(&[line("3065", Some("0"), "1")], Currency::JPY)
                .map(|m| m.minor())
                .ok(),
            Some(3065)
        );
        assert!(lines_total(&[line("3065.5", None, "1")], Currency::JPY).is_err());
        assert!(lines_total(&[line("10", None, "0")], Currency::JPY).is_err());
        assert!(lines_total(&[line("10", None, "-1")], Currency::JPY).is_err());
        assert!(lines_total(&[], Currency::JPY).is_err());
        assert!(lines_total(&[line("9223372036854775807", None, "2")], Currency::JPY).is_err());
    }

    #[test]
    fn response_times_are_read_in_cafe24s_shapes_only() {
        assert_eq!(response_time_seconds("1780000000"), Some(1_780_000_000));
        assert_eq!(response_time_seconds("1780000000123"), Some(1_780_000_000));
        assert_eq!(
            response_time_seconds("2026-11-21 21:00:00"),
            Some(1_795_262_400)
        );
        assert_eq!(
            response_time_seconds("2026-11-21T12:00:00Z"),
            Some(1_795_262_400)
        );
        for bad in [
            "yesterday",
            "1e30",
            "",
            "-1",
            "17800000001234567",
            "2026-11-21",
        ] {
            assert_eq!(response_time_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn loader_is_stable_and_points_at_the_base() {
        let a = loader_script("https://pg.example.com");
        assert_eq!(a, loader_script("https://pg.example.com"));
        assert!(a.contains("https://pg.example.com/api/external-checkout/script/app.js?v="));
        assert!(!a.contains(BASE_PLACEHOLDER) && !a.contains(VERSION_PLACEHOLDER));
        assert!(integrity(&a).starts_with("sha384-"));
        assert_eq!(
            integrity(&a),
            integrity(&loader_script("https://pg.example.com"))
        );
        assert_ne!(
            integrity(&a),
            integrity(&loader_script("https://other.example.com"))
        );
    }
}
