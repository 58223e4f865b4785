//! KOMOJU's wire types (PROTOCOL.md §7, KOMOJU's OpenAPI as its SDKs give it:
//! `komoju/komoju-node-sdk` `models/`): the session create body the service sends, and
//! the sessions, payments, refunds and payment methods it reads, each converted to the
//! state machine's [`Event`]s and [`Fact`]s beside it.

use serde::{Deserialize, Serialize};

use crate::orders::state::{Event, Fact, PaymentStatus, RefundFact, SessionTotal};

/// `POST /sessions` body (§7; KOMOJU's `CreateSessionRequestWithPaymentMode`).
/// Serialized once per attempt and stored; retries send the stored bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CreateSession {
    /// Always `payment`: the session creates a Payment when it completes.
    pub mode: String,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    /// Our callback URL, with the order `key`.
    pub return_url: String,
    pub default_locale: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub payment_types: Vec<String>,
    pub payment_data: SessionPaymentData,
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// `payment_data` of a session request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionPaymentData {
    /// Unique per attempt: KOMOJU rejects a reused one.
    pub external_order_num: String,
    /// `auto` (KOMOJU captures at authorization) or `manual` (the merchant captures with
    /// `POST /payments/{id}/capture`; cards only, KOMOJU's "two-step capture",
    /// doc.komoju.com/docs/two-step-capture). Requests stored before it was sent read
    /// as `auto`.
    #[serde(default = "auto")]
    pub capture: String,
}

fn auto() -> String {
    "auto".to_owned()
}

/// A Session as KOMOJU returns it (fields this service reads).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Session {
    pub id: String,
    /// `pending`, `completed` or `cancelled`.
    pub status: String,
    pub session_url: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    #[serde(default)]
    pub expired: bool,
    pub payment: Option<Payment>,
    /// The session's `metadata` (this service sets `mall_id`, `order_id`, `flow`).
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A Payment as KOMOJU returns it (fields this service reads).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Payment {
    pub id: String,
    pub status: String,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    pub payment_details: Option<PaymentDetails>,
    /// When a konbini, bank-transfer or Pay-easy payment's code stops being payable, at
    /// the top level of the Payment, in UTC (`"2018-11-16T14:59:59Z"`); `null` for cards.
    /// KOMOJU has no `payment_details.expires_at`.
    #[serde(default)]
    pub payment_deadline: Option<String>,
    /// The session the payment belongs to.
    pub session: Option<String>,
    #[serde(default)]
    pub amount_refunded: i64,
    pub external_order_num: Option<String>,
    /// Refunds so far (chargebacks included), oldest first.
    #[serde(default)]
    pub refunds: Vec<Refund>,
}

/// One entry of `GET /payment_methods` (fields this service reads).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PaymentMethod {
    /// The payment type, e.g. `credit_card`, `konbini`.
    pub type_slug: String,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub name_en: Option<String>,
    #[serde(default)]
    pub name_ja: Option<String>,
    #[serde(default)]
    pub name_ko: Option<String>,
}

/// A refund inside a Payment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Refund {
    pub id: String,
    /// Minor units of the payment's currency.
    pub amount: i64,
    /// For konbini, bank transfer and Pay-easy: KOMOJU's page where the buyer gives the
    /// bank account the money goes back to (KOMOJU's EC-CUBE plugin e-mails it to the
    /// buyer, `Controller/Admin/OrderController.php`). A capability link: never logged,
    /// counted or sent to Cafe24.
    #[serde(default)]
    pub redirect_url: Option<String>,
}

/// `payment_details` (only its type is read here).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PaymentDetails {
    #[serde(rename = "type")]
    pub kind: String,
}

impl Payment {
    /// `payment_details.type`, or `unknown`.
    pub fn payment_type(&self) -> &str {
        self.payment_details
            .as_ref()
            .map(|d| d.kind.as_str())
            .unwrap_or("unknown")
    }

    /// The state-machine event this payment snapshot stands for; `None` for a status
    /// this build does not know (logged by the caller, changes nothing).
    pub fn to_event(&self) -> Option<Event> {
        let status = match self.status.as_str() {
            "pending" => PaymentStatus::Pending,
            "authorized" => PaymentStatus::Authorized,
            "captured" => PaymentStatus::Captured,
            "refunded" => PaymentStatus::Refunded,
            "cancelled" => PaymentStatus::Cancelled,
            "expired" => PaymentStatus::Expired,
            "failed" => PaymentStatus::Failed,
            _ => return None,
        };
        Some(Event::Payment {
            session_id: self.session.clone(),
            payment_id: self.id.clone(),
            payment_type: self.payment_type().to_owned(),
            status,
            amount: self.amount,
            currency: self.currency.clone(),
            amount_refunded: self.amount_refunded,
            session_total: None,
        })
    }
}

impl Payment {
    /// The fact this payment snapshot stands for, with its refunds and its code's expiry.
    pub fn to_fact(&self) -> Option<Fact> {
        Some(Fact {
            event: self.to_event()?,
            refunds: self.refund_facts(),
            payment_expires_at: self.expires_at(),
        })
    }

    /// When the payment's code expires (UTC): `payment_deadline`; `None` when KOMOJU
    /// gave none or no readable time.
    pub fn expires_at(&self) -> Option<chrono::NaiveDateTime> {
        let text = self.payment_deadline.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.naive_utc())
    }

    fn refund_facts(&self) -> Vec<RefundFact> {
        self.refunds
            .iter()
            .map(|r| RefundFact {
                id: r.id.clone(),
                amount: r.amount,
            })
            .collect()
    }
}

impl Session {
    /// As [`Session::to_event`], with the payment's refunds and code expiry.
    pub fn to_fact(&self) -> Option<Fact> {
        let event = self.to_event()?;
        let payment = self.payment.as_ref();
        Some(Fact {
            event,
            refunds: payment.map(Payment::refund_facts).unwrap_or_default(),
            payment_expires_at: payment.and_then(Payment::expires_at),
        })
    }

    /// The string `metadata[key]`, when the session has it.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key)?.as_str()
    }

    /// True when the buyer can no longer pay the session: cancelled, or expired.
    pub fn ended(&self) -> bool {
        self.status == "cancelled" || (self.expired && self.status != "completed")
    }

    /// What the session says about the order: its payment's event when the payment
    /// holds or awaits money; a session that ended without money ends the attempt
    /// (`failed` when its last payment attempt failed: KOMOJU keeps the buyer on the page
    /// after a decline, §6.2); an open session says nothing yet (or, with a failed
    /// attempt, that the attempt failed, which changes nothing).
    ///
    /// A payment KOMOJU charged in another currency than the session's carries the
    /// session's amount and currency ([`SessionTotal`]) when the session is `completed`
    /// by that very payment (§8 "Amounts").
    pub fn to_event(&self) -> Option<Event> {
        let payment = self.payment.as_ref();
        let no_money = payment.map_or(true, |p| matches!(p.status.as_str(), "pending" | "failed"));
        if self.ended() && no_money {
            let session_id = self.id.clone();
            return Some(match payment.map(|p| p.status.as_str()) {
                Some("failed") => Event::SessionFailed { session_id },
                _ if self.status == "cancelled" => Event::SessionCancelled { session_id },
                _ => Event::SessionExpired { session_id },
            });
        }
        let payment = payment?;
        let mut event = payment.to_event()?;
        if let Event::Payment {
            session_id,
            session_total,
            currency,
            ..
        } = &mut event
        {
            session_id.get_or_insert_with(|| self.id.clone());
            let completed_by_it = self.status == "completed"
                && payment.session.as_deref().map_or(true, |s| s == self.id);
            if let (true, Some(amount), Some(session_currency)) =
                (completed_by_it, self.amount, self.currency.as_ref())
            {
                if session_currency != currency {
                    *session_total = Some(SessionTotal {
                        amount,
                        currency: session_currency.clone(),
                    });
                }
            }
        }
        Some(event)
    }
}
