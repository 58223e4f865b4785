//! The order state machine of PROTOCOL.md §5 and the notification table of §6.2, as
//! pure functions: `(current order, event) → (new order facts, notices to emit)`.
//!
//! It owns every decision about how a KOMOJU fact moves an order; it never does I/O,
//! never reads a clock and never knows how a notice is delivered. Callers (the
//! callback, the webhook, a reconciliation read) turn what KOMOJU said into an
//! [`Event`], call [`apply`], and persist the returned [`Outcome`] together with its
//! notices in one transaction.
//!
//! Rules it holds:
//! - a transition never moves backwards; an event that would is reported as ignored;
//! - events of a session that is not the order's current one are ignored;
//! - a capture whose amount or currency differs from the order's is `amount_mismatch`,
//!   never `paid`, and emits no success;
//! - a capture after `cancelled`/`expired` still moves the order to `paid` (money facts
//!   win), flagged as an anomaly;
//! - `0 ≤ refunded ≤ captured ≤ amount` (refund totals only grow, capped by the capture);
//! - applying the same event twice is the same as applying it once.

use std::fmt;

/// The states of §5. Stored as their snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum OrderState {
    /// Session created, buyer not done.
    Pending,
    /// Konbini / bank transfer / Pay-easy code issued, money not in.
    AwaitingPayment,
    /// Card authorized, capture pending.
    Authorized,
    /// Money captured, amount and currency equal the order's.
    Paid,
    /// KOMOJU captured a different amount or currency: never reported as paid.
    AmountMismatch,
    /// Some of the capture refunded.
    PartiallyRefunded,
    /// All of the capture refunded (absorbing).
    Refunded,
    /// Buyer or merchant cancelled before payment.
    Cancelled,
    /// Konbini deadline or session passed.
    Expired,
    /// The payment attempt failed; the buyer may retry.
    Failed,
}

impl OrderState {
    /// Every state, for exhaustive tests.
    pub const ALL: [OrderState; 10] = [
        OrderState::Pending,
        OrderState::AwaitingPayment,
        OrderState::Authorized,
        OrderState::Paid,
        OrderState::AmountMismatch,
        OrderState::PartiallyRefunded,
        OrderState::Refunded,
        OrderState::Cancelled,
        OrderState::Expired,
        OrderState::Failed,
    ];

    /// The stored name, e.g. `"awaiting_payment"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::AwaitingPayment => "awaiting_payment",
            OrderState::Authorized => "authorized",
            OrderState::Paid => "paid",
            OrderState::AmountMismatch => "amount_mismatch",
            OrderState::PartiallyRefunded => "partially_refunded",
            OrderState::Refunded => "refunded",
            OrderState::Cancelled => "cancelled",
            OrderState::Expired => "expired",
            OrderState::Failed => "failed",
        }
    }

    /// Parses a stored name; `None` for anything else.
    pub fn parse(s: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True when money has been captured for the order's amount (paid, or refunded since).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            OrderState::Paid | OrderState::PartiallyRefunded | OrderState::Refunded
        )
    }

    /// True when no money moved and none is on its way: a new checkout attempt may
    /// start a fresh KOMOJU session for the order.
    pub fn allows_new_attempt(self) -> bool {
        matches!(
            self,
            OrderState::Cancelled | OrderState::Expired | OrderState::Failed
        )
    }

    /// Progress rank: a transition to a lower rank is refused. `cancelled` and
    /// `expired` share the rank of `paid` so that only money facts move past them.
    fn rank(self) -> u8 {
        match self {
            OrderState::Pending => 0,
            OrderState::Failed => 1,
            OrderState::AwaitingPayment | OrderState::Authorized => 2,
            OrderState::Paid
            | OrderState::AmountMismatch
            | OrderState::Cancelled
            | OrderState::Expired => 3,
            OrderState::PartiallyRefunded => 4,
            OrderState::Refunded => 5,
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a KOMOJU payment type settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentKind {
    /// `credit_card`: `authorized` means a card authorization.
    Card,
    /// `konbini`, `bank_transfer`, `pay_easy`: `authorized` means a code was issued and
    /// the money is not in yet.
    Deferred,
    /// Everything else (PayPay and other wallets): settles at once.
    Instant,
}

impl PaymentKind {
    /// Classifies a KOMOJU `payment_details.type`.
    pub fn of(payment_type: &str) -> PaymentKind {
        match payment_type {
            "credit_card" => PaymentKind::Card,
            "konbini" | "bank_transfer" | "pay_easy" => PaymentKind::Deferred,
            _ => PaymentKind::Instant,
        }
    }
}

/// What KOMOJU says about a payment, read from a session, a payment or a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentStatus {
    Pending,
    Authorized,
    Captured,
    Refunded,
    Cancelled,
    Expired,
    Failed,
}

/// One fact about the order's KOMOJU payment or session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A snapshot of a payment: its status, amounts (minor units) and refund total.
    Payment {
        /// The session the payment belongs to (`payment.session`), when KOMOJU says.
        session_id: Option<String>,
        payment_id: String,
        payment_type: String,
        status: PaymentStatus,
        /// `payment.amount`, minor units.
        amount: i64,
        /// `payment.currency`.
        currency: String,
        /// `payment.amount_refunded`, minor units.
        amount_refunded: i64,
    },
    /// The session ended without a payment (buyer chose "return to merchant").
    SessionCancelled { session_id: String },
    /// The session expired without a payment.
    SessionExpired { session_id: String },
}

impl Event {
    /// A short name for logs and the audit trail, e.g. `payment.captured`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Payment { status, .. } => match status {
                PaymentStatus::Pending => "payment.pending",
                PaymentStatus::Authorized => "payment.authorized",
                PaymentStatus::Captured => "payment.captured",
                PaymentStatus::Refunded => "payment.refunded",
                PaymentStatus::Cancelled => "payment.cancelled",
                PaymentStatus::Expired => "payment.expired",
                PaymentStatus::Failed => "payment.failed",
            },
            Event::SessionCancelled { .. } => "session.cancelled",
            Event::SessionExpired { .. } => "session.expired",
        }
    }

    fn session_id(&self) -> Option<&str> {
        match self {
            Event::Payment { session_id, .. } => session_id.as_deref(),
            Event::SessionCancelled { session_id } | Event::SessionExpired { session_id } => {
                Some(session_id)
            }
        }
    }
}

/// The order facts the machine reads and writes. Amounts in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFacts {
    pub state: OrderState,
    /// The order amount Cafe24 asked for.
    pub amount: i64,
    /// The order currency code.
    pub currency: String,
    /// The order's current KOMOJU session.
    pub session_id: Option<String>,
    pub payment_id: Option<String>,
    pub payment_type: Option<String>,
    /// What KOMOJU captured (may differ from `amount` only in `amount_mismatch`).
    pub captured_amount: Option<i64>,
    pub refunded_amount: i64,
    /// A "payment awaited" notice was already emitted (konbini two-step, §6.2).
    pub pending_notice_sent: bool,
}

/// A message Cafe24 must receive about the payment (§6.2 table). Whether and where it
/// is delivered depends on the order's flow; the machine only says what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentNotice {
    /// `payment` or `notification`.
    pub request_type: &'static str,
    /// `T` or `F`.
    pub payed_tf: &'static str,
    /// `0000` or `9999`.
    pub result_code: &'static str,
    /// Which amount the notice carries.
    pub amount: NoticeAmount,
    /// Human text for `result_message`.
    pub result_message: &'static str,
}

/// The `amount` field of a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeAmount {
    /// The amount paid (Cafe24's original string when it equals the order amount).
    Paid,
    /// The order amount (pending notice).
    Order,
    /// `0`.
    Zero,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The facts after the event (equal to the input when nothing changed).
    pub facts: OrderFacts,
    /// True when `facts` differ from the input.
    pub changed: bool,
    /// Notices to enqueue in the same transaction as the change.
    pub notices: Vec<PaymentNotice>,
    /// Why the event changed nothing, or what was odd about it; for the audit trail.
    pub note: Option<String>,
    /// True for facts an operator should look at (capture after cancel, amount mismatch).
    pub anomaly: bool,
}

impl Outcome {
    fn unchanged(facts: &OrderFacts, note: impl Into<String>) -> Outcome {
        Outcome {
            facts: facts.clone(),
            changed: false,
            notices: Vec::new(),
            note: Some(note.into()),
            anomaly: false,
        }
    }
}

const SUCCESS: PaymentNotice = PaymentNotice {
    request_type: "payment",
    payed_tf: "T",
    result_code: "0000",
    amount: NoticeAmount::Paid,
    result_message: "Payment completed",
};

/// Applies one event to an order. Pure and total: every input gives an outcome.
pub fn apply(order: &OrderFacts, event: &Event) -> Outcome {
    if let (Some(current), Some(of_event)) = (order.session_id.as_deref(), event.session_id()) {
        if current != of_event {
            return Outcome::unchanged(
                order,
                "event of a session that is not the order's current one",
            );
        }
    }
    match event {
        Event::SessionCancelled { .. } => move_to(order, OrderState::Cancelled, |f| f),
        Event::SessionExpired { .. } => move_to(order, OrderState::Expired, |f| f),
        Event::Payment {
            payment_id,
            payment_type,
            status,
            amount,
            currency,
            amount_refunded,
            ..
        } => {
            if let Some(known) = order.payment_id.as_deref() {
                if known != payment_id && order.state.is_paid() {
                    return Outcome::unchanged(order, "event of another payment after capture");
                }
            }
            let with_payment = |mut f: OrderFacts| {
                f.payment_id = Some(payment_id.clone());
                f.payment_type = Some(payment_type.clone());
                f
            };
            match status {
                PaymentStatus::Pending => {
                    // A payment attempt exists but nothing is decided: remember it only.
                    if order.state == OrderState::Pending && order.payment_id.is_none() {
                        let facts = with_payment(order.clone());
                        Outcome {
                            changed: facts != *order,
                            facts,
                            notices: Vec::new(),
                            note: None,
                            anomaly: false,
                        }
                    } else {
                        Outcome::unchanged(order, "pending payment changes nothing")
                    }
                }
                PaymentStatus::Authorized => {
                    let to = match PaymentKind::of(payment_type) {
                        PaymentKind::Card => OrderState::Authorized,
                        PaymentKind::Deferred => OrderState::AwaitingPayment,
                        // An instant method reported as authorized waits for its capture.
                        PaymentKind::Instant => OrderState::Authorized,
                    };
                    move_to(order, to, with_payment)
                }
                PaymentStatus::Captured | PaymentStatus::Refunded => capture_and_refunds(
                    order,
                    event,
                    *amount,
                    currency,
                    *amount_refunded,
                    with_payment,
                ),
                PaymentStatus::Cancelled => move_to(order, OrderState::Cancelled, with_payment),
                PaymentStatus::Expired => move_to(order, OrderState::Expired, with_payment),
                PaymentStatus::Failed => move_to(order, OrderState::Failed, with_payment),
            }
        }
    }
}

/// A captured (or since refunded) payment: record the capture, then the refund total.
fn capture_and_refunds(
    order: &OrderFacts,
    event: &Event,
    amount: i64,
    currency: &str,
    amount_refunded: i64,
    with_payment: impl Fn(OrderFacts) -> OrderFacts,
) -> Outcome {
    let matches_order = amount == order.amount && currency == order.currency;
    let mut out = if order.captured_amount.is_some() || order.state == OrderState::AmountMismatch {
        // Capture already recorded: only refunds can move the order now.
        Outcome {
            facts: order.clone(),
            changed: false,
            notices: Vec::new(),
            note: None,
            anomaly: false,
        }
    } else if !matches_order {
        let mut out = move_to(order, OrderState::AmountMismatch, &with_payment);
        if out.changed {
            out.facts.captured_amount = Some(amount);
            out.note = Some(format!(
                "KOMOJU captured {amount} {currency}, the order is {} {}",
                order.amount, order.currency
            ));
            out.anomaly = true;
        }
        return out;
    } else {
        let money_after_end = matches!(order.state, OrderState::Cancelled | OrderState::Expired);
        let mut facts = with_payment(order.clone());
        facts.state = OrderState::Paid;
        facts.captured_amount = Some(amount);
        let notice = if order.pending_notice_sent {
            PaymentNotice {
                request_type: "notification",
                ..SUCCESS
            }
        } else {
            SUCCESS
        };
        Outcome {
            facts,
            changed: true,
            notices: vec![notice],
            note: money_after_end.then(|| format!("captured after the order was {}", order.state)),
            anomaly: money_after_end,
        }
    };
    // Refunds: the total only grows and never passes the capture.
    let captured = out.facts.captured_amount.unwrap_or(0);
    if out.facts.state.is_paid() && amount_refunded > out.facts.refunded_amount {
        let refunded = amount_refunded.min(captured);
        out.facts.refunded_amount = refunded;
        out.facts.state = if refunded >= captured {
            OrderState::Refunded
        } else {
            OrderState::PartiallyRefunded
        };
        out.changed = true;
    }
    if !out.changed && out.note.is_none() {
        out.note = Some(format!(
            "{} changes nothing in state {}",
            event.name(),
            order.state
        ));
    }
    out
}

/// Moves to `to` when that is forward progress; emits the §6.2 failure or pending notice.
fn move_to(
    order: &OrderFacts,
    to: OrderState,
    update: impl Fn(OrderFacts) -> OrderFacts,
) -> Outcome {
    let from = order.state;
    if from == to {
        return Outcome::unchanged(order, format!("already {to}"));
    }
    if to.rank() <= from.rank() {
        return Outcome::unchanged(order, format!("{from} does not move back to {to}"));
    }
    if from.rank() >= 3 {
        // paid, amount_mismatch, cancelled, expired, refunds: only captures move these.
        return Outcome::unchanged(order, format!("{from} does not move to {to}"));
    }
    let mut facts = update(order.clone());
    facts.state = to;
    let mut notices = Vec::new();
    match to {
        OrderState::AwaitingPayment if !order.pending_notice_sent => {
            facts.pending_notice_sent = true;
            notices.push(PaymentNotice {
                request_type: "payment",
                payed_tf: "F",
                result_code: "0000",
                amount: NoticeAmount::Order,
                result_message: "Payment requested, awaiting the buyer's payment",
            });
        }
        OrderState::Cancelled | OrderState::Expired | OrderState::Failed => {
            notices.push(PaymentNotice {
                request_type: if order.pending_notice_sent {
                    "notification"
                } else {
                    "payment"
                },
                payed_tf: "F",
                result_code: "9999",
                amount: NoticeAmount::Zero,
                result_message: match to {
                    OrderState::Cancelled => "Payment cancelled",
                    OrderState::Expired => "Payment expired",
                    _ => "Payment failed",
                },
            });
        }
        _ => {}
    }
    let anomaly = to == OrderState::AmountMismatch;
    Outcome {
        changed: facts != *order,
        facts,
        notices,
        note: None,
        anomaly,
    }
}

/// One thing KOMOJU said: the state-machine event and, for a payment, its refunds.
#[derive(Debug, Clone)]
pub struct Fact {
    pub event: Event,
    /// `payment.refunds` (empty for session events).
    pub refunds: Vec<RefundFact>,
    /// When the payment's konbini / bank-transfer / Pay-easy code expires (UTC), when
    /// KOMOJU says; stored on the order while it is `awaiting_payment`.
    pub payment_expires_at: Option<chrono::NaiveDateTime>,
}

impl From<Event> for Fact {
    fn from(event: Event) -> Fact {
        Fact {
            event,
            refunds: Vec::new(),
            payment_expires_at: None,
        }
    }
}

/// A refund KOMOJU lists on a payment (chargebacks included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundFact {
    /// KOMOJU's refund id.
    pub id: String,
    /// Minor units.
    pub amount: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> OrderFacts {
        OrderFacts {
            state: OrderState::Pending,
            amount: 306500,
            currency: "PHP".into(),
            session_id: Some("s1".into()),
            payment_id: None,
            payment_type: None,
            captured_amount: None,
            refunded_amount: 0,
            pending_notice_sent: false,
        }
    }

    fn pay(status: PaymentStatus, ty: &str, amount: i64, refunded: i64) -> Event {
        Event::Payment {
            session_id: Some("s1".into()),
            payment_id: "p1".into(),
            payment_type: ty.into(),
            status,
            amount,
            currency: "PHP".into(),
            amount_refunded: refunded,
        }
    }

    #[test]
    fn state_names_round_trip() {
        for st in OrderState::ALL {
            assert_eq!(OrderState::parse(st.as_str()), Some(st));
        }
        assert_eq!(OrderState::parse("PAID"), None);
    }

    #[test]
    fn card_capture_pays_and_notifies_success_once() {
        let out = apply(
            &order(),
            &pay(PaymentStatus::Captured, "credit_card", 306500, 0),
        );
        assert_eq!(out.facts.state, OrderState::Paid);
        assert_eq!(out.facts.captured_amount, Some(306500));
        assert_eq!(out.notices, vec![SUCCESS]);
        let again = apply(
            &out.facts,
            &pay(PaymentStatus::Captured, "credit_card", 306500, 0),
        );
        assert!(!again.changed);
        assert!(again.notices.is_empty());
    }

    #[test]
    fn konbini_two_step_notices() {
        let o = apply(
            &order(),
            &pay(PaymentStatus::Authorized, "konbini", 306500, 0),
        );
        assert_eq!(o.facts.state, OrderState::AwaitingPayment);
        assert_eq!(o.notices[0].request_type, "payment");
        assert_eq!(o.notices[0].payed_tf, "F");
        assert_eq!(o.notices[0].result_code, "0000");
        let c = apply(
            &o.facts,
            &pay(PaymentStatus::Captured, "konbini", 306500, 0),
        );
        assert_eq!(c.facts.state, OrderState::Paid);
        assert_eq!(c.notices[0].request_type, "notification");
        assert_eq!(c.notices[0].payed_tf, "T");
        let e = apply(&o.facts, &pay(PaymentStatus::Expired, "konbini", 306500, 0));
        assert_eq!(e.facts.state, OrderState::Expired);
        assert_eq!(e.notices[0].request_type, "notification");
        assert_eq!(e.notices[0].result_code, "9999");
        assert_eq!(e.notices[0].amount, NoticeAmount::Zero);
    }

    #[test]
    fn stale_authorized_after_capture_changes_nothing() {
        let paid = apply(
            &order(),
            &pay(PaymentStatus::Captured, "konbini", 306500, 0),
        )
        .facts;
        let out = apply(&paid, &pay(PaymentStatus::Authorized, "konbini", 306500, 0));
        assert!(!out.changed);
        assert_eq!(out.facts.state, OrderState::Paid);
    }

    #[test]
    fn mismatched_capture_is_never_paid() {
        let out = apply(
            &order(),
            &pay(PaymentStatus::Captured, "credit_card", 306501, 0),
        );
        assert_eq!(out.facts.state, OrderState::AmountMismatch);
        assert!(out.anomaly);
        assert!(out.notices.iter().all(|n| n.payed_tf != "T"));
        let again = apply(
            &out.facts,
            &pay(PaymentStatus::Captured, "credit_card", 306500, 0),
        );
        assert_eq!(again.facts.state, OrderState::AmountMismatch);
    }

    #[test]
    fn capture_after_cancel_wins_and_is_an_anomaly() {
        let cancelled = apply(
            &order(),
            &Event::SessionCancelled {
                session_id: "s1".into(),
            },
        )
        .facts;
        assert_eq!(cancelled.state, OrderState::Cancelled);
        let out = apply(
            &cancelled,
            &pay(PaymentStatus::Captured, "credit_card", 306500, 0),
        );
        assert_eq!(out.facts.state, OrderState::Paid);
        assert!(out.anomaly);
    }

    #[test]
    fn other_session_is_ignored() {
        let ev = Event::Payment {
            session_id: Some("old".into()),
            payment_id: "p0".into(),
            payment_type: "credit_card".into(),
            status: PaymentStatus::Captured,
            amount: 306500,
            currency: "PHP".into(),
            amount_refunded: 0,
        };
        let out = apply(&order(), &ev);
        assert!(!out.changed);
        assert_eq!(out.facts.state, OrderState::Pending);
    }

    #[test]
    fn refunds_grow_to_refunded_and_never_pass_the_capture() {
        let paid = apply(
            &order(),
            &pay(PaymentStatus::Captured, "credit_card", 306500, 0),
        )
        .facts;
        let part = apply(
            &paid,
            &pay(PaymentStatus::Captured, "credit_card", 306500, 100000),
        );
        assert_eq!(part.facts.state, OrderState::PartiallyRefunded);
        assert_eq!(part.facts.refunded_amount, 100000);
        let stale = apply(
            &part.facts,
            &pay(PaymentStatus::Captured, "credit_card", 306500, 50000),
        );
        assert!(!stale.changed);
        let full = apply(
            &part.facts,
            &pay(PaymentStatus::Refunded, "credit_card", 306500, 999999),
        );
        assert_eq!(full.facts.state, OrderState::Refunded);
        assert_eq!(full.facts.refunded_amount, 306500);
    }

    #[test]
    fn failed_then_captured_pays() {
        let failed = apply(
            &order(),
            &pay(PaymentStatus::Failed, "credit_card", 306500, 0),
        );
        assert_eq!(failed.facts.state, OrderState::Failed);
        assert_eq!(failed.notices[0].result_code, "9999");
        let paid = apply(
            &failed.facts,
            &pay(PaymentStatus::Captured, "credit_card", 306500, 0),
        );
        assert_eq!(paid.facts.state, OrderState::Paid);
    }
}
