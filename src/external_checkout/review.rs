//! The review page of an external order (§6.3, when the merchant turned it on): the
//! order as stored, and the form (with its CSRF token) that sends the buyer to KOMOJU.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::load_shop;
use crate::cafe24::Fields;
use crate::db::orders::OrderRow;
use crate::error::ApiError;
use crate::orders::state::OrderState;
use crate::orders::Flow;
use crate::services::Services;

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
