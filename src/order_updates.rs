//! Applying a KOMOJU fact to an order, and enqueuing what Cafe24 must hear about it, in
//! one database transaction (PROTOCOL.md §5 "every change Cafe24 must hear about writes
//! its notification row in the same database transaction as the change", §6.2, §9).
//!
//! Whoever sees the fact first (the buyer's callback, a webhook, a status read, a
//! reconciliation) calls [`apply`]: it locks the order, asks the pure
//! [`crate::orders::state::apply`], writes the new facts, an audit row and the notices as
//! outbox rows (each under a de-duplication key, so a transition is enqueued once). A
//! webhook calls [`apply_locked`] inside the transaction that found and locked its order,
//! which records the event id first, so a repeat writes nothing. It never sends
//! anything: the outbox worker ([`crate::notifications`]) does, after the commit.

use chrono::NaiveDateTime;

use crate::cafe24::payment_result::PaymentResult;
use crate::cafe24::payment_result::{NoticeAmount, NoticeWire};
use crate::db::captures;
use crate::db::notifications::{self, NewNotification, NotificationKind};
use crate::db::orders::{self, OrderRow};
use crate::db::refunds::{self, RefundRow};
use crate::db::webhook_events::{self, WebhookEventRow};
use crate::db::{self, DbConnection, DbError};
use crate::merchant::Merchant;
use crate::orders::state::{self as order_state, Event, Fact, Outcome, PaymentNotice};
use crate::services::Services;
use secrecy::ExposeSecret;

/// What [`apply`] needs besides the order: the merchant (for `paymethod`) and the Cafe24
/// service key (for `hash_data`).
pub struct Context<'a> {
    pub merchant: &'a Merchant,
    pub service_key: &'a [u8],
}

/// Sources that confirm an asynchronous cancellation (§6.5): KOMOJU's webhook, or the
/// reconciliation pass's read of the payment.
const CONFIRMING_SOURCES: [&str; 2] = ["webhook", "reconcile"];

/// The result of [`apply`].
#[derive(Debug)]
pub struct Applied {
    /// The order after the change.
    pub order: OrderRow,
    /// Its state before.
    pub from: order_state::OrderState,
    /// The KOMOJU event applied (`payment.captured`, …).
    pub event: &'static str,
    /// Who saw it: `webhook`, `callback`, `reconcile`, …
    pub source: String,
    pub outcome: Outcome,
    /// Outbox rows written (0 when nothing is to be told, or it was told already).
    pub enqueued: usize,
    /// True when this call recorded a new duplicate payment (§5).
    pub duplicate_recorded: bool,
}

impl Applied {
    /// True when the fact changed the order or recorded a duplicate payment.
    pub fn took_effect(&self) -> bool {
        self.outcome.changed || self.duplicate_recorded
    }
}

/// Applies `fact` to order `order_pk` in one transaction: locks the order, then
/// [`apply_locked`].
pub fn apply(
    conn: &mut DbConnection,
    ctx: &Context<'_>,
    order_pk: &str,
    fact: &Fact,
    source: &str,
    now: NaiveDateTime,
) -> Result<Applied, DbError> {
    db::transaction(conn, |c| {
        let row = orders::lock_order(c, order_pk)?
            .ok_or_else(|| DbError::Corrupt(format!("order {order_pk} vanished")))?;
        apply_locked(c, ctx, row, fact, source, None, now)?
            .ok_or_else(|| DbError::Corrupt("a fact without a webhook was a repeat".into()))
    })
}

/// Applies `fact` to `order`, which the caller read locked inside its transaction
/// ([`orders::lock_order`] and its siblings): asks the state machine, records the
/// webhook event when there is one, writes the new facts, an audit row and the
/// notifications, all in that transaction. With `webhook`, the event id is recorded
/// first (its `outcome` filled in here); when it was recorded already, nothing is
/// written and the answer is `None` (a repeat of the event).
pub fn apply_locked(
    c: &mut DbConnection,
    ctx: &Context<'_>,
    order: OrderRow,
    fact: &Fact,
    source: &str,
    webhook: Option<WebhookEventRow>,
    now: NaiveDateTime,
) -> Result<Option<Applied>, DbError> {
    let event = &fact.event;
    let before = order.facts()?;
    let outcome = order_state::apply(&before, event);
    if let Some(mut w) = webhook {
        w.order_pk = Some(order.id.clone());
        w.outcome = if outcome.changed || outcome.duplicate.is_some() {
            webhook_events::WebhookOutcome::Applied
        } else {
            webhook_events::WebhookOutcome::Ignored
        };
        if !webhook_events::insert_new(c, &w)? {
            return Ok(None);
        }
    }
    let after = write_facts(c, ctx, &order, fact, &outcome, source, now)?;
    let mut enqueued = enqueue_notices(c, ctx, &after, &outcome, now)?;
    let duplicate_recorded = match &outcome.duplicate {
        Some(d) => record_duplicate(c, ctx, &after, d, now)?,
        None => false,
    };
    let own_payment = matches!(event, Event::Payment { payment_id, .. }
        if after.komoju_payment_id.as_deref() == Some(payment_id.as_str()));
    if CONFIRMING_SOURCES.contains(&source) && own_payment {
        enqueued += confirm_cancellations(c, ctx, &after, fact, now)?;
    }
    Ok(Some(Applied {
        order: after,
        from: before.state,
        event: event.name(),
        source: source.to_owned(),
        outcome,
        enqueued,
        duplicate_recorded,
    }))
}

/// Writes what the state machine decided of `order` (its facts when they changed, a
/// code's expiry) and the audit row; returns the order as it is now.
fn write_facts(
    c: &mut DbConnection,
    ctx: &Context<'_>,
    order: &OrderRow,
    fact: &Fact,
    outcome: &Outcome,
    source: &str,
    now: NaiveDateTime,
) -> Result<OrderRow, DbError> {
    let mut after = order.clone();
    // A code's expiry is kept while the order waits for the money (§5), so that a
    // reconciliation pass reads the payment then (crate::reconciliation).
    if outcome.facts.state == order_state::OrderState::AwaitingPayment
        && fact.payment_expires_at.is_some()
    {
        after.payment_expires_at = fact.payment_expires_at;
    }
    if outcome.changed {
        after.set_facts(&outcome.facts, now);
        orders::save_facts(c, &after)?;
        hold_or_finish_capture(c, ctx, order, &after, now)?;
    } else if after.payment_expires_at != order.payment_expires_at {
        orders::set_payment_expires_at(c, &order.id, after.payment_expires_at)?;
    }
    orders::insert_event(
        c,
        &orders::NewOrderEvent {
            order_pk: order.id.clone(),
            source: source.to_owned(),
            event: fact.event.name().to_owned(),
            from_state: order.state.as_str().to_owned(),
            to_state: outcome.facts.state.as_str().to_owned(),
            applied: outcome.changed,
            detail: outcome.note.clone().unwrap_or_default(),
            created_at: now,
        },
    )?;
    Ok(after)
}

/// A held card authorization (manual capture) gets its capture row, with the date of its
/// automatic capture fixed now (the merchant's `auto_capture_after_days`); an order
/// leaving `authorized` finishes it.
fn hold_or_finish_capture(
    c: &mut DbConnection,
    ctx: &Context<'_>,
    before: &OrderRow,
    after: &OrderRow,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    match (before.authorization_held(), after.authorization_held()) {
        (false, true) => {
            let days = i64::from(ctx.merchant.auto_capture_after_days);
            let payment_id = after.komoju_payment_id.as_deref().unwrap_or_default();
            captures::hold(
                c,
                &after.id,
                payment_id,
                now + chrono::Duration::days(days),
                now,
            )
        }
        (true, false) => captures::finish(c, &after.id, now),
        _ => Ok(()),
    }
}

/// The outbox rows of a change's notices (none when nothing changed, or the order's
/// flow has no notification target); returns how many were new.
fn enqueue_notices(
    c: &mut DbConnection,
    ctx: &Context<'_>,
    after: &OrderRow,
    outcome: &Outcome,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    let mut enqueued = 0;
    if outcome.changed {
        for notice in &outcome.notices {
            if let Some(n) = payment_notification(ctx, after, *notice, now) {
                if notifications::enqueue(c, &n)? {
                    enqueued += 1;
                }
            }
        }
    }
    Ok(enqueued)
}

/// Records a duplicate payment the state machine found (§5): to be refunded in full by
/// [`crate::duplicates`] unless the merchant turned that off, or already refunded when
/// KOMOJU says so. A duplicate seen again changes nothing, except that KOMOJU's report
/// of its full refund marks it refunded. True when this call recorded it.
fn record_duplicate(
    c: &mut DbConnection,
    ctx: &Context<'_>,
    order: &OrderRow,
    d: &order_state::DuplicatePayment,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    use crate::db::duplicates::{self, DuplicateRow, DuplicateState};
    let state = match (d.refunded, ctx.merchant.refund_duplicates) {
        (true, _) => DuplicateState::Refunded,
        (false, true) => DuplicateState::RefundDue,
        (false, false) => DuplicateState::Kept,
    };
    let row = DuplicateRow {
        payment_id: d.payment_id.clone(),
        order_pk: order.id.clone(),
        session_id: d.session_id.clone(),
        payment_type: Some(d.payment_type.clone()),
        amount: d.amount,
        currency: d.currency.clone(),
        state,
        refund_idempotency_key: duplicates::refund_key(&d.payment_id),
        komoju_refund_id: None,
        bank_account_url: None,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    if duplicates::insert_new(c, &row)? {
        return Ok(true);
    }
    if d.refunded {
        duplicates::mark_refunded(c, &d.payment_id, now)?;
    }
    Ok(false)
}

/// The §6.2 `return_noty_url` notification for a notice, or `None` when the order's flow
/// has no notification target (synchronous checkout: Cafe24 reads `status`).
pub fn payment_notification(
    ctx: &Context<'_>,
    order: &OrderRow,
    notice: PaymentNotice,
    now: NaiveDateTime,
) -> Option<NewNotification> {
    let wire = NoticeWire::of(notice);
    if order.flow == crate::orders::Flow::Sync {
        return None;
    }
    let target = order.return_noty_url.clone()?;
    let amount = match wire.amount {
        NoticeAmount::Paid => order.paid_amount_text(),
        NoticeAmount::Order => order.amount_text.clone(),
        NoticeAmount::Zero => "0".to_owned(),
    };
    let tid = order.komoju_payment_id.clone().unwrap_or_default();
    let fields = PaymentResult {
        partner_id: &order.partner_id,
        paymethod: ctx.merchant.paymethod(order.payment_type.as_deref()),
        tid: &tid,
        amount: &amount,
        order_id: &order.order_id,
        currency: &order.currency,
        payed: wire.payed,
        extra_data: order.extra_data.as_deref().unwrap_or_default(),
        result_code: wire.result_code,
        result_message: wire.result_message,
    }
    .notice(ctx.service_key, wire.request_type);
    let kind = if order.flow == crate::orders::Flow::External {
        NotificationKind::ReturnNotification
    } else {
        NotificationKind::ReturnNoty
    };
    Some(NewNotification {
        order_pk: order.id.clone(),
        kind,
        dedup_key: format!(
            "{}:{}:a{}:{}",
            order.id,
            kind,
            order.attempt,
            wire.dedup_part()
        ),
        target_url: target,
        encoding: ctx.merchant.notify_encoding,
        fields: serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into()),
        state: crate::db::notifications::NotificationState::Pending.to_owned(),
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
        updated_at: now,
    })
}

/// §6.5: a confirmation from KOMOJU (webhook or reconciliation read) completes the
/// asynchronous cancellations it covers and reports each to `cancel_noty_url`; refunds
/// made elsewhere (KOMOJU dashboard) are reported to the order's `cancel_noty_url` when
/// Cafe24 gave one. One notification per KOMOJU refund id (or per cancellation), however
/// many events repeat it (`payment.refund.created` and `payment.refunded` arrive together
/// for one full refund).
fn confirm_cancellations(
    c: &mut DbConnection,
    ctx: &Context<'_>,
    order: &OrderRow,
    fact: &Fact,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    let cancelled = matches!(
        &fact.event,
        Event::Payment { status: order_state::PaymentStatus::Cancelled, payment_id, .. }
            if order.komoju_payment_id.as_deref() == Some(payment_id.as_str())
    );
    // Only refunds or a cancel can confirm anything: a plain capture (the common webhook)
    // skips the query.
    if fact.refunds.is_empty() && !cancelled {
        return Ok(0);
    }
    let rows = refunds::for_order(c, &order.id)?;
    Ok(confirm_ours(c, ctx, order, fact, cancelled, &rows, now)?
        + report_made_elsewhere(c, ctx, order, fact, &rows, now)?)
}

/// The service's own accepted cancellations that `fact` confirms: each completed and
/// reported to its `cancel_noty_url` once.
fn confirm_ours(
    c: &mut DbConnection,
    ctx: &Context<'_>,
    order: &OrderRow,
    fact: &Fact,
    cancelled: bool,
    rows: &[RefundRow],
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    let mut enqueued = 0;
    for row in rows
        .iter()
        .filter(|r| r.state == crate::db::refunds::RefundState::Accepted)
    {
        let confirmed = match row.operation {
            crate::db::refunds::Operation::Cancel => cancelled,
            crate::db::refunds::Operation::Refund => row
                .komoju_refund_id
                .as_deref()
                .is_some_and(|id| fact.refunds.iter().any(|r| r.id == id)),
        };
        if confirmed && refunds::confirm(c, &row.id, now)? {
            let key = row
                .komoju_refund_id
                .clone()
                .unwrap_or_else(|| format!("cancel-{}", row.id));
            if let Some(n) = cancel_notification(
                ctx,
                order,
                &row.cancel_noty_url,
                &row.cancel_amount_text,
                &row.tid,
                &key,
                now,
            ) {
                if notifications::enqueue(c, &n)? {
                    enqueued += 1;
                }
            }
            log::info!(
                "order {} of {}: {} {} confirmed by KOMOJU",
                order.order_id,
                order.mall_id,
                row.operation,
                row.id
            );
        }
    }
    Ok(enqueued)
}

/// Refunds in `fact` the service did not make (KOMOJU's dashboard): reported to the
/// order's `cancel_noty_url` when Cafe24 gave one, once per KOMOJU refund id.
fn report_made_elsewhere(
    c: &mut DbConnection,
    ctx: &Context<'_>,
    order: &OrderRow,
    fact: &Fact,
    rows: &[RefundRow],
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    let mut enqueued = 0;
    for refund in &fact.refunds {
        if rows
            .iter()
            .any(|r: &RefundRow| r.komoju_refund_id.as_deref() == Some(refund.id.as_str()))
        {
            continue;
        }
        let minor = order.in_order_currency(refund.amount);
        let amount = crate::money::Currency::parse(&order.currency)
            .map(|cur| crate::money::Money::from_minor(minor, cur).to_decimal_string())
            .unwrap_or_else(|_| minor.to_string());
        let tid = order.komoju_payment_id.clone().unwrap_or_default();
        match cancel_notification(ctx, order, &order.cancel_noty_url, &amount, &tid, &refund.id, now) {
            Some(n) if notifications::enqueue(c, &n)? => {
                enqueued += 1;
                log::info!("order {} of {}: refund {} made outside Cafe24, reported", order.order_id, order.mall_id, refund.id);
            }
            Some(_) => {}
            None if ctx.merchant.cancel_mode == crate::merchant::CancelMode::Async => log::warn!(
                "order {} of {}: refund {} made outside Cafe24, but no cancel_noty_url is known to report it",
                order.order_id, order.mall_id, refund.id
            ),
            None => {}
        }
    }
    Ok(enqueued)
}

/// The §6.5 `cancel_noty_url` notification (status `P`, refunded), signed with H4.
fn cancel_notification(
    ctx: &Context<'_>,
    order: &OrderRow,
    target: &Option<String>,
    cancel_amount: &str,
    tid: &str,
    refund_key: &str,
    now: NaiveDateTime,
) -> Option<NewNotification> {
    let target = target.clone()?;
    let fields = crate::cafe24::cancel_result::CancelResult {
        partner_id: &order.partner_id,
        tid,
        order_id: &order.order_id,
        paymethod: ctx.merchant.paymethod(order.payment_type.as_deref()),
        currency: &order.currency,
        cancel_amount,
        extra_data: order.extra_data.as_deref().unwrap_or_default(),
    }
    .refunded(ctx.service_key);
    Some(NewNotification {
        order_pk: order.id.clone(),
        kind: NotificationKind::CancelNoty,
        dedup_key: format!("{}:cancel_noty:{refund_key}", order.id),
        target_url: target,
        encoding: ctx.merchant.notify_encoding,
        fields: serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into()),
        state: crate::db::notifications::NotificationState::Pending.to_owned(),
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
        updated_at: now,
    })
}
/// Applies a KOMOJU fact through [`apply`] on the blocking pool, at the service clock,
/// and counts an order entering `amount_mismatch`.
pub async fn apply_fact(
    app: &Services,
    merchant: &Merchant,
    order_pk: &str,
    fact: Fact,
    source: &'static str,
) -> Result<Applied, crate::db::DbError> {
    let now = app.clock.now_naive();
    let pk = order_pk.to_owned();
    let merchant = merchant.clone();
    let key = app.cafe24_service_key.expose_secret().as_bytes().to_vec();
    let applied = app
        .db
        .run(move |c| {
            let ctx = Context {
                merchant: &merchant,
                service_key: &key,
            };
            apply(c, &ctx, &pk, &fact, source, now)
        })
        .await?;
    committed(app, &applied);
    Ok(applied)
}

/// What follows the commit of an [`Applied`], off the database's thread: the log line
/// of the transition (a warning when the state machine saw an anomaly), and
/// `amount_mismatch_total` when the order moved into `amount_mismatch`.
pub fn committed(app: &Services, applied: &Applied) {
    let outcome = &applied.outcome;
    let level = if outcome.anomaly {
        log::Level::Warn
    } else {
        log::Level::Info
    };
    log::log!(
        level,
        "order {} of {}: {} via {}: {} -> {}{}{}",
        applied.order.order_id,
        applied.order.mall_id,
        applied.event,
        applied.source,
        applied.from,
        outcome.facts.state,
        outcome
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        if applied.enqueued > 0 {
            format!("; {} notification(s) enqueued", applied.enqueued)
        } else {
            String::new()
        }
    );
    if applied.outcome.changed
        && applied.outcome.facts.state == crate::orders::state::OrderState::AmountMismatch
    {
        app.metrics.amount_mismatch.inc();
    }
    if applied.duplicate_recorded {
        app.metrics.duplicate_payments.inc();
    }
}
