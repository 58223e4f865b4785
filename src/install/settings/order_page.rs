//! An order's own page on the merchant's settings site (issue 20, item 1): the order
//! with its timeline told as who did what (the buyer, KOMOJU, Cafe24, the merchant, the
//! reconciler), its notifications to Cafe24 (a dead one can be sent again), its refunds
//! (with a bank-account refund's link for the buyer) and its duplicate payments.
//!
//! An order is looked up only within the session's mall: another mall's order and a
//! missing one are the same [`SiteError::UnknownOrder`]. What an order's records hold
//! is read by [`crate::db::order_record`], the same reading as the operator's view.
//! Never renders (`routes::settings_order_page` does).

use secrecy::ExposeSecret;

use super::SiteError;
use crate::clock::shop_time;
use crate::db::duplicates::{self, DuplicateRow, DuplicateState};
use crate::db::notifications::{NotificationKind, NotificationRow, NotificationState};
use crate::db::order_record::{self, OrderRecord};
use crate::db::orders::OrderEventRow;
use crate::db::refunds::{self, Operation, RefundRow, RefundState};
use crate::keys::session::Session;
use crate::money::{Currency, Money};
use crate::orders::state::OrderState;
use crate::services::Services;

/// Who did something to an order, as the merchant names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The buyer (back from KOMOJU's page, or starting a new attempt).
    Buyer,
    /// KOMOJU (its webhook).
    Komoju,
    /// Cafe24 (asking for the payment's status).
    Cafe24,
    /// The merchant (a cancellation or refund asked in Cafe24's admin).
    Merchant,
    /// This service's reconciliation pass (it asked KOMOJU).
    Reconciler,
    /// The service's operator.
    Operator,
    /// A source this page does not know by name.
    Service,
}

impl Actor {
    /// The catalogue's message of the name: `order-actor-<code>`.
    pub fn code(self) -> &'static str {
        match self {
            Actor::Buyer => "buyer",
            Actor::Komoju => "komoju",
            Actor::Cafe24 => "cafe24",
            Actor::Merchant => "merchant",
            Actor::Reconciler => "reconciler",
            Actor::Operator => "operator",
            Actor::Service => "service",
        }
    }
}

/// What happened, in the merchant's words: the catalogue's `order-event-<event>` with
/// `.` and `_` as `-` (`order-event-payment-refunded`), or `order-event-other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Happening(&'static str);

impl Happening {
    /// The catalogue's message id.
    pub fn message_id(self) -> String {
        format!("order-event-{}", self.0)
    }
}

/// Every event name an order's audit trail records ([`crate::orders::state::Event::name`]).
pub const EVENTS: [&str; 10] = [
    "payment.pending",
    "payment.authorized",
    "payment.captured",
    "payment.refunded",
    "payment.cancelled",
    "payment.expired",
    "payment.failed",
    "session.cancelled",
    "session.expired",
    "session.failed",
];

/// Every `order_events.source` the service writes (`order_updates::apply*` callers).
pub const SOURCES: [&str; 8] = [
    "webhook",
    "callback",
    "status",
    "checkout",
    "cancel",
    "reconcile",
    "merchant",
    "auto_capture",
];

/// Who did what, for an audit row's `source`, `event` and the state it led to: the one
/// table of the page. KOMOJU reports a partial refund as the payment still captured, so
/// a capture that leaves the order (partially) refunded is a refund.
pub fn describe(source: &str, event: &str, to_state: &str) -> (Actor, Happening) {
    let actor = match source {
        "webhook" => Actor::Komoju,
        "callback" | "checkout" => Actor::Buyer,
        "status" => Actor::Cafe24,
        "cancel" | "merchant" => Actor::Merchant,
        "reconcile" => Actor::Reconciler,
        "operator" => Actor::Operator,
        _ => Actor::Service,
    };
    let refunded = matches!(to_state, "partially_refunded" | "refunded");
    let happening = match event {
        "payment.captured" if refunded => "payment-refunded",
        "payment.pending" => "payment-pending",
        "payment.authorized" => "payment-authorized",
        "payment.captured" => "payment-captured",
        "payment.refunded" => "payment-refunded",
        "payment.cancelled" => "payment-cancelled",
        "payment.expired" => "payment-expired",
        "payment.failed" => "payment-failed",
        "session.cancelled" => "session-cancelled",
        "session.expired" => "session-expired",
        "session.failed" => "session-failed",
        _ => "other",
    };
    (actor, Happening(happening))
}

/// One line of the timeline.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    /// [`crate::clock::shop_time`], in the shop's zone.
    pub at: String,
    pub actor: Actor,
    pub happening: Happening,
    /// The order's state afterwards, when the line changed it; `None` when nothing
    /// changed (a repeat, or a fact the order had already).
    pub new_state: Option<OrderState>,
}

/// Where a notification to Cafe24 stands, as the page says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeState {
    /// Cafe24 answered OK, at (shown time).
    Delivered(String),
    /// Not delivered yet; the next attempt at (shown time).
    Retrying(String),
    /// Every attempt failed: it can be sent again.
    Dead,
}

/// One notification to Cafe24.
#[derive(Debug, Clone)]
pub struct NoticeView {
    pub id: i64,
    pub kind: NotificationKind,
    pub state: NoticeState,
    pub attempts: i32,
    /// Cafe24's last HTTP status, when an attempt got an answer.
    pub last_status: Option<i32>,
}

/// One cancellation or refund asked by Cafe24.
#[derive(Debug, Clone)]
pub struct RefundView {
    pub operation: Operation,
    /// As the shop shows money.
    pub amount: String,
    pub state: RefundState,
    pub at: String,
    /// The bank-account page for the buyer (konbini, bank transfer, Pay-easy): `Ok` the
    /// link, `Err(())` when it is stored but cannot be opened (APP_SECRET changed).
    pub bank_link: Option<Result<String, ()>>,
}

/// One duplicate payment of the order.
#[derive(Debug, Clone)]
pub struct DuplicateView {
    pub payment_id: String,
    pub payment_type: Option<String>,
    pub amount: String,
    pub state: DuplicateState,
    pub at: String,
    pub bank_link: Option<Result<String, ()>>,
}

/// What the order's page shows.
#[derive(Debug, Clone)]
pub struct OrderPageView {
    pub mall_id: String,
    pub lang: String,
    /// The session's CSRF token, when it may post forms (the representative operator).
    pub csrf: Option<String>,
    pub order_id: String,
    pub shop_no: i32,
    pub amount: String,
    pub state: OrderState,
    pub payment_type: Option<String>,
    pub komoju_url: Option<String>,
    pub created_at: String,
    pub timeline: Vec<TimelineEntry>,
    pub notices: Vec<NoticeView>,
    pub refunds: Vec<RefundView>,
    pub duplicates: Vec<DuplicateView>,
    /// A held card authorization (manual capture) waiting for its capture: the page has
    /// a Capture button.
    pub capturable: bool,
    /// When the service captures it by itself ([`crate::clock::shop_time`], in the shop's zone).
    pub capture_due: Option<String>,
    /// KOMOJU's reason for refusing the last capture.
    pub capture_error: Option<String>,
}

/// `/settings/{mall_id}/payments/{order_id}`, each segment percent-encoded.
pub fn page_path(mall_id: &str, order_id: &str) -> String {
    crate::urls::path(&["settings", mall_id, "payments", order_id])
}

fn money(amount: i64, currency: &str) -> String {
    Currency::parse(currency)
        .map(|c| Money::from_minor(amount, c).to_display_string())
        .unwrap_or_else(|_| format!("{amount} {currency}"))
}

/// The timeline: every recorded event in words, except one that changed nothing and
/// repeats what the same actor already said (KOMOJU's webhooks repeating a refund the
/// cancellation applied): it tells a merchant nothing new.
fn timeline(events: &[OrderEventRow], zone: &str) -> Vec<TimelineEntry> {
    let mut said: Vec<(Actor, Happening)> = Vec::new();
    let mut entries = Vec::new();
    for e in events {
        let entry = timeline_entry(e, zone);
        let what = (entry.actor, entry.happening);
        if entry.new_state.is_none() && said.contains(&what) {
            continue;
        }
        said.push(what);
        entries.push(entry);
    }
    entries
}

fn timeline_entry(e: &OrderEventRow, zone: &str) -> TimelineEntry {
    let (actor, happening) = describe(&e.source, &e.event, &e.to_state);
    TimelineEntry {
        at: shop_time(e.created_at, zone),
        actor,
        happening,
        new_state: e.applied.then(|| OrderState::parse(&e.to_state)).flatten(),
    }
}

fn notice_view(n: &NotificationRow, zone: &str) -> NoticeView {
    let state = match n.state {
        NotificationState::Delivered => NoticeState::Delivered(
            n.delivered_at
                .map(|t| shop_time(t, zone))
                .unwrap_or_default(),
        ),
        NotificationState::Pending => NoticeState::Retrying(shop_time(n.next_attempt_at, zone)),
        NotificationState::Dead => NoticeState::Dead,
    };
    NoticeView {
        id: n.id,
        kind: n.kind,
        state,
        attempts: n.attempts,
        last_status: n.last_status,
    }
}

/// A sealed bank-account link opened for the merchant's own page: shown there and
/// nowhere else, never logged.
fn opened(
    app: &Services,
    mall: &str,
    column: &str,
    sealed: &Option<String>,
) -> Option<Result<String, ()>> {
    sealed.as_deref().map(|s| {
        app.secrets
            .open(mall, column, s)
            .map(|url| url.expose_secret().to_owned())
            .map_err(|_| ())
    })
}

fn view_of(app: &Services, session: &Session, r: OrderRecord, zone: &str) -> OrderPageView {
    let o = &r.order;
    let refund = |x: &RefundRow| RefundView {
        operation: x.operation,
        amount: money(x.cancel_amount, &o.currency),
        state: x.state,
        at: shop_time(x.created_at, zone),
        bank_link: opened(
            app,
            &o.mall_id,
            refunds::BANK_ACCOUNT_URL,
            &x.bank_account_url,
        ),
    };
    let duplicate = |d: &DuplicateRow| DuplicateView {
        payment_id: d.payment_id.clone(),
        payment_type: d.payment_type.clone(),
        amount: money(d.amount, &d.currency),
        state: d.state,
        at: shop_time(d.created_at, zone),
        bank_link: opened(
            app,
            &o.mall_id,
            duplicates::BANK_ACCOUNT_URL,
            &d.bank_account_url,
        ),
    };
    // The held authorization waiting for its capture, if the order has one.
    let held = r.capture.as_ref().filter(|_| o.authorization_held());
    OrderPageView {
        mall_id: session.mall_id.clone(),
        lang: session.lang.clone(),
        csrf: session.may_change().then(|| app.session_keys.csrf(session)),
        order_id: o.order_id.clone(),
        shop_no: o.shop_no,
        amount: money(o.amount, &o.currency),
        state: o.state,
        payment_type: o.payment_type.clone(),
        komoju_url: o
            .komoju_payment_id
            .as_deref()
            .map(super::payments::komoju_url),
        created_at: shop_time(o.created_at, zone),
        timeline: timeline(&r.events, zone),
        notices: r
            .notifications
            .iter()
            .map(|n| notice_view(n, zone))
            .collect(),
        refunds: r.refunds.iter().map(refund).collect(),
        duplicates: r.duplicates.iter().map(duplicate).collect(),
        capturable: held.is_some(),
        capture_due: held.map(|c| shop_time(c.due_at, zone)),
        capture_error: held.and_then(|c| c.error.clone()),
    }
}

async fn record(
    app: &Services,
    session: &Session,
    order_id: &str,
) -> Result<OrderRecord, SiteError> {
    let (mall, id) = (session.mall_id.clone(), order_id.to_owned());
    app.db
        .run(move |c| order_record::find(c, &mall, &id))
        .await
        .map_err(|e| super::db_error("reading an order", e))?
        .ok_or(SiteError::UnknownOrder)
}

/// The session's mall's order `order_id` as its page shows it. Errors: no such order
/// in this mall ([`SiteError::UnknownOrder`], whether it is missing or another mall's),
/// the database.
pub async fn order_page(
    app: &Services,
    session: &Session,
    order_id: &str,
) -> Result<OrderPageView, SiteError> {
    let found = record(app, session, order_id).await?;
    let (mall, shop_no) = (session.mall_id.clone(), found.order.shop_no);
    let zone = app
        .db
        .run(move |c| crate::db::merchants::find_shop(c, &mall, shop_no))
        .await
        .map_err(|e| super::db_error("reading the order's shop", e))?
        .map(|shop| shop.timezone)
        .unwrap_or_default();
    Ok(view_of(app, session, found, &zone))
}

/// Sends notification `id` of the session's mall's order `order_id` again: a dead one is
/// made due now with a fresh schedule (as the operator's `notifications retry`) and the
/// outbox woken. True when it was queued again; false when it was not dead (delivered
/// or still being tried: nothing changed). Errors: no such notification of that order
/// of this mall ([`SiteError::UnknownOrder`]), the database.
pub async fn send_again(
    app: &Services,
    session: &Session,
    order_id: &str,
    id: i64,
) -> Result<bool, SiteError> {
    let found = record(app, session, order_id).await?;
    let notice = found
        .notifications
        .iter()
        .find(|n| n.id == id)
        .ok_or(SiteError::UnknownOrder)?;
    if notice.state != NotificationState::Dead {
        return Ok(false);
    }
    let now = app.clock.now_naive();
    let queued = app
        .db
        .run(move |c| crate::db::notifications::retry(c, id, now))
        .await
        .map_err(|e| super::db_error("sending a notification again", e))?;
    if queued {
        log::info!(
            "notification {id} of order {order_id} of {} sent again from the order page",
            session.mall_id
        );
        app.outbox_wake.notify_one();
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorded_source_has_its_actor() {
        let actors: Vec<Actor> = SOURCES
            .iter()
            .map(|s| describe(s, "payment.captured", "paid").0)
            .collect();
        assert_eq!(
            actors,
            [
                Actor::Komoju,
                Actor::Buyer,
                Actor::Cafe24,
                Actor::Buyer,
                Actor::Merchant,
                Actor::Reconciler,
                Actor::Merchant,
                Actor::Service,
            ]
        );
        assert_eq!(
            describe("operator", "payment.refunded", "refunded").0,
            Actor::Operator
        );
        assert_eq!(
            describe("something", "payment.refunded", "refunded").0,
            Actor::Service
        );
    }

    #[test]
    fn every_recorded_event_has_its_words_and_a_refund_is_a_refund() {
        for event in EVENTS {
            let (_, h) = describe("webhook", event, "paid");
            assert_ne!(h.message_id(), "order-event-other", "{event}");
            assert_eq!(
                h.message_id(),
                format!("order-event-{}", event.replace('.', "-"))
            );
        }
        assert_eq!(
            describe("webhook", "payment.refunded", "refunded")
                .1
                .message_id(),
            "order-event-payment-refunded"
        );
        // A partial refund: KOMOJU's payment is still captured.
        for to in ["partially_refunded", "refunded"] {
            assert_eq!(
                describe("cancel", "payment.captured", to).1.message_id(),
                "order-event-payment-refunded"
            );
        }
        assert_eq!(
            describe("webhook", "payment.captured", "paid")
                .1
                .message_id(),
            "order-event-payment-captured"
        );
        assert_eq!(
            describe("webhook", "x", "paid").1.message_id(),
            "order-event-other"
        );
    }

    #[test]
    fn every_actor_and_event_speaks_every_language() {
        let catalogue = crate::i18n::catalogue();
        let actors = SOURCES
            .iter()
            .chain(["operator", "?"].iter())
            .map(|s| format!("order-actor-{}", describe(s, "", "").0.code()));
        let events = EVENTS
            .iter()
            .chain(["?"].iter())
            .map(|e| describe("", e, "").1.message_id());
        for id in actors.chain(events) {
            for lang in crate::i18n::Lang::ALL {
                assert!(
                    catalogue.get(lang, &id).is_some(),
                    "{id} in {}",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn an_order_id_is_one_encoded_path_segment() {
        assert_eq!(
            page_path("m", "20261206-0000001"),
            "/settings/m/payments/20261206-0000001"
        );
        assert_eq!(page_path("m", "a/b c"), "/settings/m/payments/a%2Fb%20c");
    }
}
