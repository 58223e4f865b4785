//! Applying a KOMOJU fact to an order, and enqueuing what Cafe24 must hear about it, in
//! one database transaction (PROTOCOL.md §5 "every change Cafe24 must hear about writes
//! its notification row in the same database transaction as the change", §6.2, §9).
//!
//! Whoever sees the fact first (the buyer's callback, a webhook, a status read, a
//! reconciliation) calls [`apply`]: it locks the order, asks the pure
//! [`crate::order_state::apply`], writes the new facts, an audit row, the notices as
//! outbox rows (each under a de-duplication key, so a transition is enqueued once), and
//! the webhook event id when there is one. It never sends anything: the outbox worker
//! ([`crate::outbox`]) does, after the commit.

use chrono::NaiveDateTime;

use crate::cafe24::hash_data;
use crate::db::notifications::{self, NewNotification};
use crate::db::orders::{self, OrderRow};
use crate::db::webhook_events::{self, WebhookEventRow};
use crate::db::{self, DbConnection, DbError};
use crate::merchant::Merchant;
use crate::order_state::{self, Event, NoticeAmount, Outcome, PaymentNotice};

/// What [`apply`] needs besides the order: the merchant (for `paymethod`) and the Cafe24
/// service key (for `hash_data`).
pub struct Context<'a> {
    pub merchant: &'a Merchant,
    pub service_key: &'a [u8],
}

/// The result of [`apply`].
#[derive(Debug)]
pub struct Applied {
    /// The order after the change.
    pub order: OrderRow,
    pub outcome: Outcome,
    /// Outbox rows written (0 when nothing is to be told, or it was told already).
    pub enqueued: usize,
}

/// Applies `event` to order `order_pk` in one transaction. With `webhook`, the event id
/// is recorded in the same transaction (its `outcome` filled in here); a repeat of it
/// fails with a unique violation and rolls everything back.
pub fn apply(
    conn: &mut DbConnection,
    ctx: &Context<'_>,
    order_pk: &str,
    event: &Event,
    source: &str,
    webhook: Option<WebhookEventRow>,
    now: NaiveDateTime,
) -> Result<Applied, DbError> {
    db::transaction(conn, |c| {
        let row = orders::lock_order(c, order_pk)?
            .ok_or_else(|| DbError::Corrupt(format!("order {order_pk} vanished")))?;
        let before = row.facts()?;
        let outcome = order_state::apply(&before, event);
        if outcome.changed {
            orders::save_facts(c, order_pk, &outcome.facts, now)?;
        }
        orders::insert_event(
            c,
            &orders::NewOrderEvent {
                order_pk: order_pk.to_owned(),
                source: source.to_owned(),
                event: event.name().to_owned(),
                from_state: before.state.as_str().to_owned(),
                to_state: outcome.facts.state.as_str().to_owned(),
                applied: outcome.changed,
                detail: outcome.note.clone().unwrap_or_default(),
                created_at: now,
            },
        )?;
        let after = orders::find(c, order_pk)?
            .ok_or_else(|| DbError::Corrupt(format!("order {order_pk} vanished")))?;
        let mut enqueued = 0;
        if outcome.changed {
            for notice in &outcome.notices {
                if let Some(n) = payment_notification(ctx, &after, notice, now) {
                    if notifications::enqueue(c, &n)? {
                        enqueued += 1;
                    }
                }
            }
        }
        if let Some(mut w) = webhook {
            w.order_pk = Some(order_pk.to_owned());
            w.outcome = if outcome.changed {
                "applied"
            } else {
                "ignored"
            }
            .to_owned();
            webhook_events::insert(c, &w)?;
        }
        let level = if outcome.anomaly {
            log::Level::Warn
        } else {
            log::Level::Info
        };
        log::log!(
            level,
            "order {} of {}: {} via {source}: {} -> {}{}{}",
            row.order_id,
            row.mall_id,
            event.name(),
            before.state,
            outcome.facts.state,
            outcome
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            if enqueued > 0 {
                format!("; {enqueued} notification(s) enqueued")
            } else {
                String::new()
            }
        );
        Ok(Applied {
            order: after,
            outcome,
            enqueued,
        })
    })
}

/// The §6.2 `return_noty_url` notification for a notice, or `None` when the order's flow
/// has no notification target (synchronous checkout: Cafe24 reads `status`).
pub fn payment_notification(
    ctx: &Context<'_>,
    order: &OrderRow,
    notice: &PaymentNotice,
    now: NaiveDateTime,
) -> Option<NewNotification> {
    if order.flow == "sync" {
        return None;
    }
    let target = order.return_noty_url.clone()?;
    let amount = match notice.amount {
        NoticeAmount::Paid => crate::routes::synchronous_checkout::paid_amount_text(order),
        NoticeAmount::Order => order.amount_text.clone(),
        NoticeAmount::Zero => "0".to_owned(),
    };
    let tid = order.komoju_payment_id.clone().unwrap_or_default();
    let hash = hash_data::PaymentResult {
        amount: &amount,
        currency: &order.currency,
        order_id: &order.order_id,
        partner_id: &order.partner_id,
        tid: &tid,
    }
    .sign(ctx.service_key);
    let fields: Vec<(&str, String)> = vec![
        ("request_type", notice.request_type.to_owned()),
        ("partner_id", order.partner_id.clone()),
        (
            "paymethod",
            ctx.merchant.paymethod(order.payment_type.as_deref()),
        ),
        ("tid", tid.clone()),
        ("amount", amount),
        ("order_id", order.order_id.clone()),
        ("currency", order.currency.clone()),
        ("all_cancel_tf", "T".to_owned()),
        ("part_cancel_tf", "T".to_owned()),
        ("escrow_tf", "F".to_owned()),
        ("payed_tf", notice.payed_tf.to_owned()),
        ("easypay", "F".to_owned()),
        ("hash_data", hash),
        ("extra_data", order.extra_data.clone().unwrap_or_default()),
        ("result_code", notice.result_code.to_owned()),
        ("result_message", notice.result_message.to_owned()),
    ];
    let kind = if order.flow == "external" {
        "return_notification"
    } else {
        "return_noty"
    };
    Some(NewNotification {
        order_pk: order.id.clone(),
        kind: kind.to_owned(),
        dedup_key: format!(
            "{}:{}:a{}:{}:{}:{}",
            order.id, kind, order.attempt, notice.request_type, notice.payed_tf, notice.result_code
        ),
        target_url: target,
        encoding: ctx.merchant.notify_encoding.clone(),
        fields: serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into()),
        state: notifications::PENDING.to_owned(),
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
        updated_at: now,
    })
}
