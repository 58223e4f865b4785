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
//! - a failed payment changes nothing while its session is open (KOMOJU's
//!   `payment.failed`: "payment may be re-attempted"); the order is `failed` only when the
//!   session ends (cancelled or expired) after a failed attempt;
//! - events of a session that is not the order's current one are ignored, except money:
//!   a capture on any session the order has had moves an unpaid order to `paid` (an
//!   anomaly), and a capture of another payment for an order already paid is a
//!   [`DuplicatePayment`];
//! - a capture is checked against the session that was paid: in the session's currency
//!   it must carry the order's amount; in another currency (KOMOJU converted it) the
//!   session, read from KOMOJU, must be the order's amount and currency
//!   ([`SessionTotal`]); otherwise `amount_mismatch`, never `paid`, with no success;
//! - a capture after `cancelled`/`expired`/`failed` still moves the order to `paid`
//!   (money facts win), flagged as an anomaly;
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

/// What a session asked for, as KOMOJU answered `GET /sessions/{id}` for the session a
/// payment completed (its `status` `completed` and its `payment` that payment): the
/// amount (minor units) and currency. It vouches for a payment KOMOJU charged in another
/// currency (PROTOCOL.md §8 "Amounts").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTotal {
    pub amount: i64,
    pub currency: String,
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
        /// `payment.amount`, minor units of `currency`.
        amount: i64,
        /// `payment.currency`: the session's, or JPY when KOMOJU converted it.
        currency: String,
        /// `payment.amount_refunded`, minor units of `currency`.
        amount_refunded: i64,
        /// The session this payment completed, read from KOMOJU, when the caller read it
        /// (needed to accept a payment in another currency than the order's).
        session_total: Option<SessionTotal>,
    },
    /// The session ended without a payment (buyer chose "return to merchant", or the
    /// merchant cancelled it).
    SessionCancelled { session_id: String },
    /// The session expired without a payment.
    SessionExpired { session_id: String },
    /// The session ended (cancelled or expired) after a failed payment attempt and
    /// without money: the order is `failed` (§5).
    SessionFailed { session_id: String },
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
            Event::SessionFailed { .. } => "session.failed",
        }
    }

    fn session_id(&self) -> Option<&str> {
        match self {
            Event::Payment { session_id, .. } => session_id.as_deref(),
            Event::SessionCancelled { session_id }
            | Event::SessionExpired { session_id }
            | Event::SessionFailed { session_id } => Some(session_id),
        }
    }
}

/// What KOMOJU charged when it converted the order's currency: the payment's own amount
/// (minor units) and currency, e.g. 4 500 JPY for a 30.00 USD order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charged {
    pub amount: i64,
    pub currency: String,
}

/// A capture of another payment for an order already paid (§5): the buyer paid twice.
/// Recorded on the order and, unless the merchant turned it off, refunded in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicatePayment {
    pub payment_id: String,
    pub session_id: Option<String>,
    pub payment_type: String,
    /// Minor units of `currency`, as KOMOJU charged it.
    pub amount: i64,
    pub currency: String,
    /// True when KOMOJU already refunded all of it (nothing left to refund).
    pub refunded: bool,
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
    /// What KOMOJU captured, in the order's currency (may differ from `amount` only in
    /// `amount_mismatch`).
    pub captured_amount: Option<i64>,
    /// What KOMOJU charged when it converted the currency; `None` when it charged the
    /// order's currency.
    pub charged: Option<Charged>,
    /// Refunded so far, in the order's currency (a converted payment's refunds are
    /// counted in proportion to what was charged).
    pub refunded_amount: i64,
    /// A "payment awaited" notice was already emitted (konbini two-step, §6.2).
    pub pending_notice_sent: bool,
    /// The session was created with `payment_data.capture: manual` (§7): a card
    /// authorization is the success Cafe24 hears, and the capture comes later.
    pub manual_capture: bool,
}

impl OrderFacts {
    /// True when Cafe24 was told of success at the card's authorization: see
    /// [`authorization_held`].
    pub fn authorization_held(&self) -> bool {
        authorization_held(
            self.state,
            self.manual_capture,
            self.payment_type.as_deref(),
        )
    }
}

/// True for an `authorized` card payment of a manual-capture session: the authorization
/// holds the money until the merchant captures it, so Cafe24 heard (and the status
/// reply says) that the payment succeeded (issue 20, "manual capture").
pub fn authorization_held(
    state: OrderState,
    manual_capture: bool,
    payment_type: Option<&str>,
) -> bool {
    state == OrderState::Authorized
        && manual_capture
        && payment_type.map(PaymentKind::of) == Some(PaymentKind::Card)
}

/// What Cafe24 must hear about the payment (the rows of §6.2's table). Whether and
/// where it is delivered depends on the order's flow, and its wire fields
/// (`request_type`, `payed_tf`, `result_code`, `amount`) are
/// [`crate::cafe24::payment_result`]'s to render; the machine only says what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentNotice {
    /// The money is in. `after_pending`: a [`PaymentNotice::Awaiting`] was told first.
    Paid { after_pending: bool },
    /// A konbini, bank-transfer or Pay-easy code was issued: the money is awaited.
    Awaiting,
    /// A card was authorized for a manual-capture session: the authorization holds the
    /// money, so Cafe24 hears success now and nothing more at the capture.
    Authorized,
    /// The attempt ended without money, and why.
    Ended {
        after_pending: bool,
        end: AttemptEnd,
    },
}

/// How an attempt ended without money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    Cancelled,
    Expired,
    Failed,
}

impl PaymentNotice {
    /// True when the notice says the money is in.
    pub fn is_paid(self) -> bool {
        matches!(self, PaymentNotice::Paid { .. } | PaymentNotice::Authorized)
    }
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
    /// True for facts an operator should look at (capture after cancel, amount mismatch,
    /// a capture on an earlier session, a duplicate payment).
    pub anomaly: bool,
    /// A second payment captured for an order already paid: to record (and refund).
    pub duplicate: Option<DuplicatePayment>,
}

impl Outcome {
    fn unchanged(facts: &OrderFacts, note: impl Into<String>) -> Outcome {
        Outcome {
            facts: facts.clone(),
            changed: false,
            notices: Vec::new(),
            note: Some(note.into()),
            anomaly: false,
            duplicate: None,
        }
    }
}

#[cfg(test)]
const SUCCESS: PaymentNotice = PaymentNotice::Paid {
    after_pending: false,
};

/// Applies one event to an order. Pure and total: every input gives an outcome.
pub fn apply(order: &OrderFacts, event: &Event) -> Outcome {
    match event {
        Event::Payment {
            session_id,
            payment_id,
            payment_type,
            status,
            amount,
            currency,
            amount_refunded,
            session_total,
        } => payment(
            order,
            &Snapshot {
                session_id: session_id.as_deref(),
                payment_id,
                payment_type,
                status,
                amount: *amount,
                currency,
                amount_refunded: *amount_refunded,
                session_total: session_total.as_ref(),
            },
            event,
        ),
        _ if !of_current_session(order, event) => Outcome::unchanged(
            order,
            "event of a session that is not the order's current one",
        ),
        Event::SessionCancelled { .. } => move_to(order, OrderState::Cancelled, |f| f),
        Event::SessionExpired { .. } => move_to(order, OrderState::Expired, |f| f),
        Event::SessionFailed { .. } => move_to(order, OrderState::Failed, |f| f),
    }
}

/// The session to read from KOMOJU before `event` can be applied to `order`: a capture
/// that would be recorded now, in another currency than the order's (KOMOJU converted
/// it), without the [`SessionTotal`] that vouches for it (§8 "Amounts"); `None` when
/// nothing needs reading (or the payment names no session to read).
pub fn needs_session_total(order: &OrderFacts, event: &Event) -> Option<String> {
    let Event::Payment {
        session_id: Some(session_id),
        status: PaymentStatus::Captured | PaymentStatus::Refunded,
        currency,
        session_total: None,
        payment_id,
        ..
    } = event
    else {
        return None;
    };
    let capture_recorded =
        order.captured_amount.is_some() || order.state == OrderState::AmountMismatch;
    let duplicate = order.state.is_paid() && order.payment_id.as_deref() != Some(payment_id);
    (currency != &order.currency && !capture_recorded && !duplicate).then(|| session_id.clone())
}

/// True unless both the order and the event name a session and they differ.
fn of_current_session(order: &OrderFacts, event: &Event) -> bool {
    match (order.session_id.as_deref(), event.session_id()) {
        (Some(current), Some(of_event)) => current == of_event,
        _ => true,
    }
}

/// The fields of an [`Event::Payment`], borrowed.
struct Snapshot<'a> {
    session_id: Option<&'a str>,
    payment_id: &'a str,
    payment_type: &'a str,
    status: &'a PaymentStatus,
    amount: i64,
    currency: &'a str,
    amount_refunded: i64,
    session_total: Option<&'a SessionTotal>,
}

impl Snapshot<'_> {
    /// Captured, or refunded since: money moved.
    fn holds_money(&self) -> bool {
        matches!(
            self.status,
            PaymentStatus::Captured | PaymentStatus::Refunded
        )
    }
}

/// A payment snapshot. The order's own payment (or, before it has one, a payment of its
/// current session) moves it as the §5 table says; money on another payment is never
/// ignored: it pays an unpaid order, and is a duplicate payment of a paid one.
fn payment(order: &OrderFacts, p: &Snapshot<'_>, event: &Event) -> Outcome {
    let own = order.payment_id.as_deref() == Some(p.payment_id);
    if !own && order.state.is_paid() {
        return another_payment_of_a_paid_order(order, p);
    }
    let current = of_current_session(order, event);
    if !own && !current && !p.holds_money() {
        return Outcome::unchanged(
            order,
            "event of a session that is not the order's current one",
        );
    }
    let with_payment = |mut f: OrderFacts| {
        f.payment_id = Some(p.payment_id.to_owned());
        f.payment_type = Some(p.payment_type.to_owned());
        f
    };
    match p.status {
        PaymentStatus::Pending => pending_payment(order, with_payment),
        PaymentStatus::Authorized => {
            let to = match PaymentKind::of(p.payment_type) {
                PaymentKind::Card => OrderState::Authorized,
                PaymentKind::Deferred => OrderState::AwaitingPayment,
                // An instant method reported as authorized waits for its capture.
                PaymentKind::Instant => OrderState::Authorized,
            };
            let mut out = move_to(order, to, with_payment);
            if out.changed && out.facts.authorization_held() {
                out.notices.push(PaymentNotice::Authorized);
            }
            out
        }
        PaymentStatus::Captured | PaymentStatus::Refunded => {
            let mut out = capture_and_refunds(order, p, event, with_payment);
            if out.changed && !current && !own {
                out.anomaly = true;
                let note = format!(
                    "captured on session {}, an earlier session of the order",
                    p.session_id.unwrap_or("?")
                );
                out.note = Some(match out.note.take() {
                    Some(n) => format!("{note}; {n}"),
                    None => note,
                });
            }
            out
        }
        PaymentStatus::Cancelled => move_to(order, OrderState::Cancelled, with_payment),
        PaymentStatus::Expired => move_to(order, OrderState::Expired, with_payment),
        // KOMOJU: "a payment attempt has failed (payment may be re-attempted)"; the buyer
        // stays on the hosted page. The session's end decides (`SessionFailed`).
        PaymentStatus::Failed => Outcome::unchanged(
            order,
            "a payment attempt failed; the session stays open and the buyer may pay again",
        ),
    }
}

/// Another payment than the one that paid the order: money there is a duplicate payment
/// (§5); anything else of it changes nothing.
fn another_payment_of_a_paid_order(order: &OrderFacts, p: &Snapshot<'_>) -> Outcome {
    if !p.holds_money() {
        return Outcome::unchanged(order, "event of another payment after capture");
    }
    let mut out = Outcome::unchanged(
        order,
        format!(
            "payment {} captured {} {} for an order already paid by {}: a duplicate payment",
            p.payment_id,
            p.amount,
            p.currency,
            order.payment_id.as_deref().unwrap_or("?")
        ),
    );
    out.anomaly = true;
    out.duplicate = Some(DuplicatePayment {
        payment_id: p.payment_id.to_owned(),
        session_id: p.session_id.map(str::to_owned),
        payment_type: p.payment_type.to_owned(),
        amount: p.amount,
        currency: p.currency.to_owned(),
        refunded: p.amount_refunded >= p.amount,
    });
    out
}

/// A payment attempt exists but nothing is decided: an order without a payment yet
/// remembers it; nothing else changes.
fn pending_payment(order: &OrderFacts, with_payment: impl Fn(OrderFacts) -> OrderFacts) -> Outcome {
    if order.state == OrderState::Pending && order.payment_id.is_none() {
        let facts = with_payment(order.clone());
        Outcome {
            changed: facts != *order,
            facts,
            notices: Vec::new(),
            note: None,
            anomaly: false,
            duplicate: None,
        }
    } else {
        Outcome::unchanged(order, "pending payment changes nothing")
    }
}

/// Whether a capture pays the order: in the order's currency it must carry the order's
/// amount; in another currency (KOMOJU converted it) the session it completed must be
/// the order's amount and currency. Returns what KOMOJU charged when it converted.
fn capture_matches(order: &OrderFacts, p: &Snapshot<'_>) -> (bool, Option<Charged>) {
    if p.currency == order.currency {
        return (p.amount == order.amount, None);
    }
    let charged = Charged {
        amount: p.amount,
        currency: p.currency.to_owned(),
    };
    let vouched = p
        .session_total
        .is_some_and(|s| s.amount == order.amount && s.currency == order.currency);
    (vouched && p.amount > 0, Some(charged))
}

/// The refund total in the order's currency: KOMOJU's `amount_refunded` is in the
/// payment's currency; a converted payment's refunds count in proportion to what was
/// charged (rounded down; all of the charge is all of the capture).
fn refunded_in_order_currency(facts: &OrderFacts, amount_refunded: i64) -> i64 {
    let captured = facts.captured_amount.unwrap_or(0);
    match &facts.charged {
        Some(c) if c.amount > 0 => {
            if amount_refunded >= c.amount {
                captured
            } else {
                let share =
                    i128::from(amount_refunded) * i128::from(captured) / i128::from(c.amount);
                i64::try_from(share).unwrap_or(captured)
            }
        }
        _ => amount_refunded,
    }
}

/// A captured (or since refunded) payment: record the capture, then the refund total.
fn capture_and_refunds(
    order: &OrderFacts,
    p: &Snapshot<'_>,
    event: &Event,
    with_payment: impl Fn(OrderFacts) -> OrderFacts,
) -> Outcome {
    let (matches_order, charged) = capture_matches(order, p);
    let mut out = if order.captured_amount.is_some() || order.state == OrderState::AmountMismatch {
        // Capture already recorded: only refunds can move the order now.
        Outcome {
            facts: order.clone(),
            changed: false,
            notices: Vec::new(),
            note: None,
            anomaly: false,
            duplicate: None,
        }
    } else if !matches_order {
        return mismatched_capture(order, p, charged, with_payment);
    } else {
        paid(order, charged, with_payment)
    };
    // Refunds: the total only grows and never passes the capture.
    let captured = out.facts.captured_amount.unwrap_or(0);
    let refunded = refunded_in_order_currency(&out.facts, p.amount_refunded).min(captured);
    if out.facts.state.is_paid() && refunded > out.facts.refunded_amount {
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

/// A capture that does not pay the order (another amount, or a conversion its session
/// does not vouch for): `amount_mismatch`, an anomaly, never a success.
fn mismatched_capture(
    order: &OrderFacts,
    p: &Snapshot<'_>,
    charged: Option<Charged>,
    with_payment: impl Fn(OrderFacts) -> OrderFacts,
) -> Outcome {
    let mut out = move_to(order, OrderState::AmountMismatch, &with_payment);
    if out.changed {
        out.facts.captured_amount = charged.is_none().then_some(p.amount);
        out.note = Some(match (&charged, p.session_total) {
            (Some(_), None) => format!(
                "KOMOJU captured {} {} for an order of {} {}, and the session it paid was not read",
                p.amount, p.currency, order.amount, order.currency
            ),
            (Some(_), Some(s)) => format!(
                "KOMOJU captured {} {} for a session of {} {}; the order is {} {}",
                p.amount, p.currency, s.amount, s.currency, order.amount, order.currency
            ),
            (None, _) => format!(
                "KOMOJU captured {} {}, the order is {} {}",
                p.amount, p.currency, order.amount, order.currency
            ),
        });
        out.facts.charged = charged;
        out.anomaly = true;
    }
    out
}

/// A capture that pays the order: `paid`, with the success notice (a `notification`
/// after a pending notice); after the order ended unpaid, an anomaly (money facts win).
fn paid(
    order: &OrderFacts,
    charged: Option<Charged>,
    with_payment: impl Fn(OrderFacts) -> OrderFacts,
) -> Outcome {
    let money_after_end = matches!(
        order.state,
        OrderState::Cancelled | OrderState::Expired | OrderState::Failed
    );
    let mut notes = Vec::new();
    if money_after_end {
        notes.push(format!("captured after the order was {}", order.state));
    }
    if let Some(c) = &charged {
        notes.push(format!(
            "KOMOJU charged {} {} (converted from {} {})",
            c.amount, c.currency, order.amount, order.currency
        ));
    }
    let mut facts = with_payment(order.clone());
    facts.state = OrderState::Paid;
    facts.captured_amount = Some(order.amount);
    facts.charged = charged;
    // Cafe24 heard of success at the authorization: the capture tells it nothing new.
    let notices = if order.authorization_held() {
        Vec::new()
    } else {
        vec![PaymentNotice::Paid {
            after_pending: order.pending_notice_sent,
        }]
    };
    Outcome {
        facts,
        changed: true,
        notices,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        anomaly: money_after_end,
        duplicate: None,
    }
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
    if order.authorization_held() {
        // Cafe24 heard of success at the authorization; its end (Cafe24's own cancel,
        // answered by the cancellation routes, or KOMOJU expiring it) has no §6.2 row.
        return Outcome {
            changed: true,
            facts,
            notices,
            note: Some(format!(
                "a card authorization Cafe24 was told of ended uncaptured ({to})"
            )),
            anomaly: to == OrderState::Expired,
            duplicate: None,
        };
    }
    match to {
        OrderState::AwaitingPayment if !order.pending_notice_sent => {
            facts.pending_notice_sent = true;
            notices.push(PaymentNotice::Awaiting);
        }
        OrderState::Cancelled | OrderState::Expired | OrderState::Failed => {
            notices.push(PaymentNotice::Ended {
                after_pending: order.pending_notice_sent,
                end: match to {
                    OrderState::Cancelled => AttemptEnd::Cancelled,
                    OrderState::Expired => AttemptEnd::Expired,
                    _ => AttemptEnd::Failed,
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
        duplicate: None,
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
            charged: None,
            refunded_amount: 0,
            pending_notice_sent: false,
            manual_capture: false,
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
            session_total: None,
        }
    }

    fn on_session(event: Event, session: &str, payment: &str) -> Event {
        match event {
            Event::Payment {
                payment_type,
                status,
                amount,
                currency,
                amount_refunded,
                session_total,
                ..
            } => Event::Payment {
                session_id: Some(session.into()),
                payment_id: payment.into(),
                payment_type,
                status,
                amount,
                currency,
                amount_refunded,
                session_total,
            },
            other => other,
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
        assert_eq!(o.notices, vec![PaymentNotice::Awaiting]);
        let c = apply(
            &o.facts,
            &pay(PaymentStatus::Captured, "konbini", 306500, 0),
        );
        assert_eq!(c.facts.state, OrderState::Paid);
        assert_eq!(
            c.notices,
            vec![PaymentNotice::Paid {
                after_pending: true
            }]
        );
        let e = apply(&o.facts, &pay(PaymentStatus::Expired, "konbini", 306500, 0));
        assert_eq!(e.facts.state, OrderState::Expired);
        assert_eq!(
            e.notices,
            vec![PaymentNotice::Ended {
                after_pending: true,
                end: AttemptEnd::Expired
            }]
        );
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
        assert!(out.notices.iter().all(|n| !n.is_paid()));
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
    fn other_session_is_ignored_unless_it_holds_money() {
        for status in [
            PaymentStatus::Authorized,
            PaymentStatus::Cancelled,
            PaymentStatus::Expired,
            PaymentStatus::Failed,
            PaymentStatus::Pending,
        ] {
            let ev = on_session(pay(status, "credit_card", 306500, 0), "old", "p0");
            let out = apply(&order(), &ev);
            assert!(!out.changed, "{ev:?}");
            assert_eq!(out.facts.state, OrderState::Pending);
        }
        let ended = apply(
            &order(),
            &Event::SessionExpired {
                session_id: "old".into(),
            },
        );
        assert!(!ended.changed);
    }

    #[test]
    fn a_capture_on_an_earlier_session_pays_and_is_an_anomaly() {
        for from in [
            OrderState::Pending,
            OrderState::Cancelled,
            OrderState::Failed,
        ] {
            let mut o = order();
            o.state = from;
            let ev = on_session(
                pay(PaymentStatus::Captured, "credit_card", 306500, 0),
                "old",
                "p0",
            );
            let out = apply(&o, &ev);
            assert_eq!(out.facts.state, OrderState::Paid, "from {from}");
            assert_eq!(out.facts.payment_id.as_deref(), Some("p0"));
            assert_eq!(out.notices, vec![SUCCESS]);
            assert!(out.anomaly);
            assert!(out.duplicate.is_none());
        }
    }

    #[test]
    fn a_second_capture_of_a_paid_order_is_a_duplicate_payment() {
        let paid = apply(
            &order(),
            &pay(PaymentStatus::Captured, "credit_card", 306500, 0),
        )
        .facts;
        for session in ["s1", "old"] {
            let ev = on_session(
                pay(PaymentStatus::Captured, "paypay", 306500, 0),
                session,
                "p2",
            );
            let out = apply(&paid, &ev);
            assert!(!out.changed);
            assert!(out.notices.is_empty());
            assert!(out.anomaly);
            let dup = out
                .duplicate
                .unwrap_or_else(|| panic!("no duplicate recorded"));
            assert_eq!(dup.payment_id, "p2");
            assert_eq!(dup.amount, 306500);
            assert!(!dup.refunded);
        }
        // Its refund later changes nothing of the order, and says it is refunded.
        let refunded = apply(
            &paid,
            &on_session(
                pay(PaymentStatus::Refunded, "paypay", 306500, 306500),
                "s1",
                "p2",
            ),
        );
        assert_eq!(refunded.facts, paid);
        assert!(refunded.duplicate.is_some_and(|d| d.refunded));
        // Other events of the other payment are ignored.
        let auth = apply(
            &paid,
            &on_session(
                pay(PaymentStatus::Authorized, "credit_card", 306500, 0),
                "s1",
                "p2",
            ),
        );
        assert!(auth.duplicate.is_none() && !auth.changed);
    }

    #[test]
    fn a_converted_capture_pays_only_through_its_session() {
        let refunded =
            |status: PaymentStatus, amount_refunded: i64, session_total: Option<SessionTotal>| {
                Event::Payment {
                    session_id: Some("s1".into()),
                    payment_id: "p1".into(),
                    payment_type: "paypay".into(),
                    status,
                    amount: 4_500,
                    currency: "JPY".into(),
                    amount_refunded,
                    session_total,
                }
            };
        let converted = |session_total| refunded(PaymentStatus::Captured, 0, session_total);
        let mut usd = order();
        usd.amount = 3000;
        usd.currency = "USD".into();
        let unread = apply(&usd, &converted(None));
        assert_eq!(unread.facts.state, OrderState::AmountMismatch);
        let other = apply(
            &usd,
            &converted(Some(SessionTotal {
                amount: 3001,
                currency: "USD".into(),
            })),
        );
        assert_eq!(other.facts.state, OrderState::AmountMismatch);
        let vouched = apply(
            &usd,
            &converted(Some(SessionTotal {
                amount: 3000,
                currency: "USD".into(),
            })),
        );
        assert_eq!(vouched.facts.state, OrderState::Paid);
        assert_eq!(vouched.facts.captured_amount, Some(3000));
        assert_eq!(
            vouched.facts.charged,
            Some(Charged {
                amount: 4_500,
                currency: "JPY".into()
            })
        );
        assert_eq!(vouched.notices, vec![SUCCESS]);
        // Refunds in yen count in dollars in proportion; all of it is all of it.
        let part = apply(
            &vouched.facts,
            &refunded(PaymentStatus::Captured, 1_500, None),
        );
        assert_eq!(part.facts.state, OrderState::PartiallyRefunded);
        assert_eq!(part.facts.refunded_amount, 1000);
        let all = apply(&part.facts, &refunded(PaymentStatus::Refunded, 4_500, None));
        assert_eq!(all.facts.state, OrderState::Refunded);
        assert_eq!(all.facts.refunded_amount, 3000);
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
    fn a_failed_attempt_changes_nothing_while_the_session_is_open() {
        let failed = apply(
            &order(),
            &pay(PaymentStatus::Failed, "credit_card", 306500, 0),
        );
        assert!(!failed.changed);
        assert!(failed.notices.is_empty());
        assert_eq!(failed.facts.state, OrderState::Pending);
        // The buyer pays with another card on the same session.
        let paid = apply(
            &failed.facts,
            &on_session(
                pay(PaymentStatus::Captured, "credit_card", 306500, 0),
                "s1",
                "p2",
            ),
        );
        assert_eq!(paid.facts.state, OrderState::Paid);
        assert_eq!(paid.notices, vec![SUCCESS]);
    }

    #[test]
    fn a_session_ending_after_a_failed_attempt_fails_the_order_once() {
        let out = apply(
            &order(),
            &Event::SessionFailed {
                session_id: "s1".into(),
            },
        );
        assert_eq!(out.facts.state, OrderState::Failed);
        assert_eq!(
            out.notices,
            vec![PaymentNotice::Ended {
                after_pending: false,
                end: AttemptEnd::Failed
            }]
        );
        let paid = apply(
            &out.facts,
            &pay(PaymentStatus::Captured, "credit_card", 306500, 0),
        );
        assert_eq!(paid.facts.state, OrderState::Paid);
        assert!(paid.anomaly);
    }
}
