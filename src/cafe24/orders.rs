//! Cafe24's order resource, read to confirm what an external-checkout reservation says
//! (issue 18, item 9): `GET /api/v2/admin/orders/{order_id}?shop_no=N`, scope
//! `mall.read_order` (Cafe24 Admin API reference, "Orders" → "Retrieve an order",
//! transcribed in `noston/cafe24-api-spec` `cafe24_chapters/orders.md`). The reply is
//! `{"order": {"shop_no", "currency", "order_id", "paid": "T"|"F"|"M", "payment_amount",
//! "initial_order_amount": {…}, "actual_order_amount": {"order_price_amount",
//! "shipping_fee", …, "total_amount_due", "payment_amount", "tax"}, …}}`, amounts as
//! decimal strings (`"30000.00"`). Pure reading; what to do with a mismatch is the use
//! case's ([`crate::external_checkout`]).

use reqwest::Method;
use secrecy::SecretString;
use serde_json::Value;

use super::admin::{Cafe24Client, Cafe24Error};

/// The scope the order resource needs.
pub const READ_ORDER_SCOPE: &str = "mall.read_order";

/// What a Cafe24 order asks to be paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAmount {
    /// The order's `currency`, when the reply has one.
    pub currency: Option<String>,
    /// The amount as Cafe24 wrote it (`"30000.00"`).
    pub amount: String,
}

/// The amount the order `reply` (`{"order": …}`) asks to be paid: its
/// `actual_order_amount.total_amount_due` ("결제예정 금액", the amount still to be paid)
/// when above zero, else `actual_order_amount.payment_amount` ("최종 결제 금액"), else the
/// top-level `payment_amount`. `None` when the reply has none of them.
pub fn due_amount(reply: &Value) -> Option<DueAmount> {
    let order = reply.get("order")?;
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let actual = order.get("actual_order_amount");
    let positive = |s: &String| s.bytes().any(|b| (b'1'..=b'9').contains(&b));
    let amount = text(actual.and_then(|a| a.get("total_amount_due")))
        .filter(positive)
        .or_else(|| text(actual.and_then(|a| a.get("payment_amount"))))
        .or_else(|| text(order.get("payment_amount")))?;
    Some(DueAmount {
        currency: text(order.get("currency")),
        amount,
    })
}

/// `GET /admin/orders/{order_id}?shop_no=N`: the order's reply, or `None` when Cafe24
/// has no such order (404). Errors: the call's ([`Cafe24Error`]).
pub async fn find(
    client: &Cafe24Client,
    mall_id: &str,
    access_token: &SecretString,
    order_id: &str,
    shop_no: i32,
) -> Result<Option<Value>, Cafe24Error> {
    let shop = shop_no.to_string();
    match client
        .call(
            mall_id,
            access_token,
            Method::GET,
            &["orders", order_id],
            &[("shop_no", shop.as_str())],
            None,
        )
        .await
    {
        Ok(reply) => Ok(Some(reply)),
        Err(Cafe24Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_due_amount_is_the_amount_still_to_pay() {
        // Shaped as Cafe24's "Retrieve an order" example (cafe24_chapters/orders.md).
        let unpaid = serde_json::json!({"order": {"currency": "KRW", "paid": "F",
            "payment_amount": "0.00",
            "actual_order_amount": {"order_price_amount": "5000.00", "shipping_fee": "2500.00",
                "total_amount_due": "7500.00", "payment_amount": "0.00"}}});
        assert_eq!(
            due_amount(&unpaid),
            Some(DueAmount {
                currency: Some("KRW".into()),
                amount: "7500.00".into()
            })
        );
        let paid = serde_json::json!({"order": {"currency": "KRW", "paid": "T",
            "payment_amount": "30000.00",
            "actual_order_amount": {"total_amount_due": "0.00", "payment_amount": "16000.00"}}});
        assert_eq!(due_amount(&paid).map(|d| d.amount), Some("16000.00".into()));
        let bare = serde_json::json!({"order": {"payment_amount": "3065"}});
        assert_eq!(due_amount(&bare).map(|d| d.amount), Some("3065".into()));
        assert_eq!(due_amount(&serde_json::json!({"order": {}})), None);
        assert_eq!(due_amount(&serde_json::json!({})), None);
    }
}
