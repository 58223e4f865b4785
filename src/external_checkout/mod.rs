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
use serde::Deserialize;

use crate::cafe24::external_checkout::reservation_valid;
use crate::cafe24::ids::OrderId;
use crate::cafe24::partner_id::PartnerId;
use crate::checkout::{self, ValidCheckout};
use crate::db::orders::OrderRow;
use crate::error::ApiError;
use crate::keys::order::OrderRef;
use crate::money::{Currency, Money};
use crate::orders::Flow;
use crate::services::Services;

mod confirm;
mod review;
mod scripts;

pub use confirm::response_time_seconds;
use confirm::{check_fresh, confirm_amount};
pub use review::{csrf_token, csrf_valid, pay, review, stored_lines, Review};
pub use scripts::{
    app_script, button_lang, button_texts, integrity, loader_script, signed_request, ButtonTexts,
};

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
}
