//! The payment result as Cafe24 reads it, in one place (PROTOCOL.md §6.1 `status` reply,
//! §6.2 `return_noty_url` notice, external checkout's `return_notification_url`): the
//! shared field set, signed with H3 over the strings that are sent.

use super::hash_data;
use crate::orders::state::{AttemptEnd, OrderState, PaymentNotice};

/// The redirect of a buyer back from a KOMOJU session that is not the order's current
/// one (§6.1, §6.2): `9999` and why.
pub const NOT_CURRENT_SESSION: (&str, &str) =
    ("9999", "This payment session does not belong to the order");

/// The §6.2 redirect (`return_url`) of an asynchronous order in `state`: `0000` when the
/// session completed (payment authorized or captured, or a konbini payment requested),
/// `0001` when the payment failed, `9999` otherwise; with its `result_message`.
pub fn async_redirect_result(state: OrderState) -> (&'static str, &'static str) {
    match state {
        OrderState::Paid | OrderState::PartiallyRefunded | OrderState::Refunded => {
            ("0000", "Payment completed")
        }
        OrderState::AwaitingPayment => ("0000", "Payment requested, awaiting the buyer's payment"),
        OrderState::Authorized => ("0000", "Payment authorized"),
        OrderState::Failed => ("0001", "Payment failed"),
        OrderState::Cancelled => ("9999", "Payment cancelled"),
        OrderState::Expired => ("9999", "Payment expired"),
        OrderState::AmountMismatch => ("9999", "Payment could not be confirmed"),
        OrderState::Pending => ("9999", "Payment not completed"),
    }
}

/// The §6.1 redirect (`return_url`) of a synchronous order in `state`: `0000` only when
/// paid (synchronous checkout cannot wait for a konbini payment) or when `held` (a card
/// authorization of a manual-capture session, [`crate::orders::state::authorization_held`]),
/// `9999` otherwise; with its `result_message`.
pub fn sync_redirect_result(state: OrderState, held: bool) -> (&'static str, String) {
    match state {
        OrderState::Paid => ("0000", "Payment completed".to_owned()),
        OrderState::Authorized if held => ("0000", AUTHORIZED.to_owned()),
        OrderState::AwaitingPayment => (
            "9999",
            "Payment is awaited: the buyer has not paid yet, and synchronous checkout cannot wait for it".to_owned(),
        ),
        OrderState::Cancelled => ("9999", "Payment cancelled".to_owned()),
        OrderState::Pending => ("9999", "Payment not completed".to_owned()),
        s => ("9999", format!("Payment not completed ({s})")),
    }
}

/// What Cafe24 reads of a held card authorization (manual capture).
const AUTHORIZED: &str = "Payment authorized; the merchant captures it at shipment";

/// The §6.1 `status` reply's `result_code` and `result_message` for an order in `state`:
/// `0000` once paid (also after refunds) or `held` (see [`sync_redirect_result`]),
/// `1400` while not.
pub fn status_result(state: OrderState, held: bool) -> (&'static str, String) {
    match state {
        OrderState::Paid => ("0000", "Payment completed".to_owned()),
        OrderState::Authorized if held => ("0000", AUTHORIZED.to_owned()),
        OrderState::PartiallyRefunded => {
            ("0000", "Payment completed, partially refunded".to_owned())
        }
        OrderState::Refunded => ("0000", "Payment completed, refunded".to_owned()),
        OrderState::AwaitingPayment => ("1400", "Payment is awaited".to_owned()),
        s => ("1400", format!("Payment not completed ({s})")),
    }
}

/// A §6.2 notice as Cafe24 reads it: the columns of the table for one
/// [`PaymentNotice`] (whose amount the caller fills in from the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeWire {
    /// `payment`, or `notification` after a pending notice.
    pub request_type: &'static str,
    /// `payed_tf`: `T` when the money is in.
    pub payed: bool,
    /// `0000` or `9999`.
    pub result_code: &'static str,
    /// Which amount the notice carries.
    pub amount: NoticeAmount,
    pub result_message: &'static str,
}

/// The `amount` of a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeAmount {
    /// The amount paid (Cafe24's own string when it is the order's amount).
    Paid,
    /// The order amount (the pending notice).
    Order,
    /// `0`.
    Zero,
}

impl NoticeWire {
    /// The wire of `notice`, as PROTOCOL.md §6.2's table gives it.
    pub fn of(notice: PaymentNotice) -> NoticeWire {
        let request_type = |after_pending: bool| {
            if after_pending {
                "notification"
            } else {
                "payment"
            }
        };
        match notice {
            PaymentNotice::Paid { after_pending } => NoticeWire {
                request_type: request_type(after_pending),
                payed: true,
                result_code: "0000",
                amount: NoticeAmount::Paid,
                result_message: "Payment completed",
            },
            PaymentNotice::Authorized => NoticeWire {
                request_type: "payment",
                payed: true,
                result_code: "0000",
                amount: NoticeAmount::Order,
                result_message: "Payment authorized",
            },
            PaymentNotice::Awaiting => NoticeWire {
                request_type: "payment",
                payed: false,
                result_code: "0000",
                amount: NoticeAmount::Order,
                result_message: "Payment requested, awaiting the buyer's payment",
            },
            PaymentNotice::Ended { after_pending, end } => NoticeWire {
                request_type: request_type(after_pending),
                payed: false,
                result_code: "9999",
                amount: NoticeAmount::Zero,
                result_message: match end {
                    AttemptEnd::Cancelled => "Payment cancelled",
                    AttemptEnd::Expired => "Payment expired",
                    AttemptEnd::Failed => "Payment failed",
                },
            },
        }
    }

    /// The notice's part of its outbox de-duplication key: `request_type:payed_tf:
    /// result_code` (one notification per transition and attempt).
    pub fn dedup_part(&self) -> String {
        format!(
            "{}:{}:{}",
            self.request_type,
            if self.payed { "T" } else { "F" },
            self.result_code
        )
    }
}

/// One order's payment result, as strings in Cafe24's formats.
#[derive(Debug, Clone)]
pub struct PaymentResult<'a> {
    pub partner_id: &'a str,
    /// `card`, `etc` or the merchant's override.
    pub paymethod: String,
    /// KOMOJU's payment id; empty before a payment exists.
    pub tid: &'a str,
    /// Cafe24's decimal string: the paid amount, the order amount (pending notice) or `0`.
    pub amount: &'a str,
    pub order_id: &'a str,
    pub currency: &'a str,
    /// `payed_tf`: `T` when the money is in.
    pub payed: bool,
    pub extra_data: &'a str,
    /// `0000`, `1400`, `9999`…
    pub result_code: &'a str,
    pub result_message: &'a str,
}

impl PaymentResult<'_> {
    /// H3 = `amount · currency · order_id · partner_id · tid`, keyed with the service key.
    fn hash(&self, service_key: &[u8]) -> String {
        hash_data::PaymentResult {
            amount: self.amount,
            currency: self.currency,
            order_id: self.order_id,
            partner_id: self.partner_id,
            tid: self.tid,
        }
        .sign(service_key)
    }

    /// The fields both messages carry, with `easy` the name of the easy-pay flag (the
    /// status reply says `easy_pay`, the notice `easypay`, as §6.1 and §6.2 list them).
    fn fields(&self, service_key: &[u8], easy: &'static str) -> Vec<(&'static str, String)> {
        vec![
            ("partner_id", self.partner_id.to_owned()),
            ("paymethod", self.paymethod.clone()),
            ("tid", self.tid.to_owned()),
            ("amount", self.amount.to_owned()),
            ("order_id", self.order_id.to_owned()),
            ("currency", self.currency.to_owned()),
            ("all_cancel_tf", "T".to_owned()),
            ("part_cancel_tf", "T".to_owned()),
            ("escrow_tf", "F".to_owned()),
            ("payed_tf", if self.payed { "T" } else { "F" }.to_owned()),
            (easy, "F".to_owned()),
            ("hash_data", self.hash(service_key)),
            ("extra_data", self.extra_data.to_owned()),
            ("result_code", self.result_code.to_owned()),
            ("result_message", self.result_message.to_owned()),
        ]
    }

    /// §6.1's `status` reply, with the merchant's `cancel_mode` (`sync` or `async`).
    pub fn status_reply(&self, service_key: &[u8], cancel_mode: &str) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, value) in self.fields(service_key, "easy_pay") {
            map.insert(name.to_owned(), serde_json::Value::String(value));
            if name == "currency" {
                map.insert("cancel_mode".to_owned(), cancel_mode.into());
            }
        }
        serde_json::Value::Object(map)
    }

    /// §6.2's notice, led by its `request_type` (`payment` or `notification`).
    pub fn notice(&self, service_key: &[u8], request_type: &str) -> Vec<(&'static str, String)> {
        let mut fields = vec![("request_type", request_type.to_owned())];
        fields.extend(self.fields(service_key, "easypay"));
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> PaymentResult<'static> {
        PaymentResult {
            partner_id: "demomall:1:demo-public",
            paymethod: "card".into(),
            tid: "pay1",
            amount: "3065.00",
            order_id: "20220519-0000029",
            currency: "PHP",
            payed: true,
            extra_data: "",
            result_code: "0000",
            result_message: "ok",
        }
    }

    #[test]
    fn status_and_notice_carry_the_same_signed_fields() {
        let key = b"test-service-key";
        let status = result().status_reply(key, "sync");
        let notice = result().notice(key, "payment");
        let h3 = hash_data::sign(
            key,
            &[
                "3065.00",
                "PHP",
                "20220519-0000029",
                "demomall:1:demo-public",
                "pay1",
            ],
        );
        assert_eq!(status["hash_data"], h3.as_str());
        assert_eq!(status["easy_pay"], "F");
        assert_eq!(status["cancel_mode"], "sync");
        assert!(notice.contains(&("hash_data", h3)));
        assert!(notice.contains(&("easypay", "F".to_owned())));
        assert_eq!(notice[0], ("request_type", "payment".to_owned()));
        assert_eq!(notice.len(), 16);
    }
}
