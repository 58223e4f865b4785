//! The Cafe24 stand-in's order resource: `GET /api/v2/admin/orders/{order_id}?shop_no=N`,
//! as the service reads it to confirm an external-checkout reservation. Source: Cafe24's
//! Admin API reference, "Orders" → "Retrieve an order" (scope `mall.read_order`, call
//! limit 40; transcribed in `noston/cafe24-api-spec` `cafe24_chapters/orders.md`): the
//! reply is `{"order": {…}}` with `shop_no`, `currency`, `order_id`, `paid` (`T`, `F`,
//! `M`), `canceled`, `order_date` (`+09:00`), `payment_amount` and
//! `initial_order_amount` / `actual_order_amount` (`order_price_amount`, `shipping_fee`,
//! …, `total_amount_due`, `payment_amount`, `tax`), amounts as decimal strings; an order
//! Cafe24 does not have is 404 in the Admin API's error shape.
//!
//! Guesses, said as such: whether Cafe24 shows an order that precreateOrder reserved and
//! nobody paid yet is not documented (`docs/decisions.md` of the service); the stand-in
//! shows exactly the orders a test put there with [`Cafe24Sandbox::set_order`], unpaid,
//! with `total_amount_due` the amount to pay. A token without `mall.read_order` is
//! refused 403 by the Admin API's scope check (`admin.rs`), as Cafe24 does.

use actix_web::http::StatusCode;
use chrono::Utc;
use serde_json::json;

use super::reply::Reply;
use super::state::format_admin_time;
use super::Cafe24Sandbox;

/// An order the stand-in shows, as a test sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OrderSpec {
    pub(super) order_id: String,
    pub(super) shop_no: i64,
    /// ISO code, e.g. `"JPY"`.
    pub(super) currency: String,
    /// The amount to pay, in Cafe24's decimal format (`"5000.00"`).
    pub(super) amount_due: String,
}

/// `GET /admin/orders/{order_id}?shop_no=N` (`shop_no` default 1).
pub(super) fn retrieve(
    sandbox: &Cafe24Sandbox,
    mall_id: &str,
    order_id: &str,
    query: &str,
) -> Reply {
    let shop_no = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "shop_no")
        .map(|(_, v)| v.parse::<i64>().unwrap_or(0))
        .unwrap_or(1);
    if shop_no < 1 {
        return Reply::error(StatusCode::UNPROCESSABLE_ENTITY, "shop_no is invalid");
    }
    let Some(order) = sandbox
        .order(mall_id, order_id)
        .filter(|o| o.shop_no == shop_no)
    else {
        return Reply::not_found();
    };
    let amounts = json!({
        "order_price_amount": order.amount_due,
        "shipping_fee": "0.00",
        "points_spent_amount": "0.00",
        "credits_spent_amount": "0.00",
        "coupon_discount_price": "0.00",
        "coupon_shipping_fee_amount": "0.00",
        "membership_discount_amount": "0.00",
        "shipping_fee_discount_amount": "0.00",
        "set_product_discount_amount": "0.00",
        "app_discount_amount": "0.00",
        "point_incentive_amount": "0.00",
        "total_amount_due": order.amount_due,
        "payment_amount": "0.00",
        "market_other_discount_amount": "0.00",
        "tax": "0.00",
    });
    Reply::json(
        StatusCode::OK,
        &json!({"order": {
            "shop_no": order.shop_no,
            "currency": order.currency,
            "order_id": order.order_id,
            "market_id": "self",
            "paid": "F",
            "canceled": "F",
            "order_date": format_admin_time(&Utc::now()),
            "payment_date": null,
            "payment_amount": "0.00",
            "initial_order_amount": amounts,
            "actual_order_amount": amounts,
        }}),
    )
}
