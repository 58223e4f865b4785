//! Refunding duplicate payments (PROTOCOL.md §5): a buyer who paid an order twice gets
//! the second payment back in full, without anyone having to notice. The state machine
//! decides what a duplicate is and [`crate::order_updates`] records it (`refund_due`,
//! or `kept` when the merchant turned automatic refunds off); this pass, run by the
//! reconciliation task, refunds what is due.
//!
//! Never twice: each refund's idempotency key is derived from the payment id
//! ([`crate::db::duplicates::refund_key`]) and its body from the order, so every retry
//! and every instance asks KOMOJU for the same one refund; a row is claimed before the
//! call so two instances do not both call. KOMOJU failing (5xx, timeout) leaves the row
//! due, tried again later with a growing pause; KOMOJU refusing (4xx) ends in
//! `refund_failed`, counted and logged for an operator. A konbini, bank-transfer or
//! Pay-easy refund ends in `refund_requested`: the buyer must give a bank account on
//! KOMOJU's page, whose link is kept sealed for the merchant and the operator.

use std::time::Duration;

use chrono::NaiveDateTime;

use crate::db::duplicates::{self, DuplicateRow, DuplicateState, RefundResult};
use crate::db::{orders, DbError};
use crate::komoju::KomojuError;
use crate::services::Services;

/// Most duplicates refunded in one pass.
const BATCH: i64 = 20;
/// How long a claimed refund is left alone before another try, and the longest pause
/// after failures (doubling from the first).
const CLAIM: Duration = Duration::from_secs(60);
const PAUSE_MAX: Duration = Duration::from_secs(6 * 60 * 60);

/// Refunds the duplicate payments due now. Returns how many KOMOJU answered (refunded,
/// requested or refused). Errors: the database only.
pub async fn refund_due(app: &Services) -> Result<usize, DbError> {
    let now = app.clock.now_naive();
    let rows = app.db.run(move |c| duplicates::due(c, now, BATCH)).await?;
    let mut answered = 0;
    for row in rows {
        let until = now + chrono::Duration::from_std(CLAIM).unwrap_or_default();
        let id = row.payment_id.clone();
        if !app
            .db
            .run(move |c| duplicates::claim(c, &id, now, until))
            .await?
        {
            continue;
        }
        answered += usize::from(refund_one(app, &row, now).await?);
    }
    Ok(answered)
}

/// One claimed refund: the call, then its result recorded. True when KOMOJU answered.
async fn refund_one(
    app: &Services,
    row: &DuplicateRow,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let what = format!("refund of duplicate payment {}", row.payment_id);
    let Some((order, merchant)) = app.order_with_merchant(&row.order_pk, &what).await? else {
        return Ok(false);
    };
    let body = serde_json::json!({
        "description": format!("Duplicate payment of Cafe24 order {}", order.order_id)
    })
    .to_string();
    let called = app
        .komoju
        .refund_payment(
            &merchant.komoju_secret_key,
            &row.refund_idempotency_key,
            &row.payment_id,
            &body,
        )
        .await;
    let (result, label) = match called {
        Ok(payment) => refunded(app, &order.mall_id, &payment, now)?,
        Err(e) if e.is_refusal() => (
            Owned {
                state: DuplicateState::RefundFailed,
                refund_id: None,
                link: None,
                error: Some(refusal(&e)),
                next: now,
            },
            "refused",
        ),
        Err(e) => (
            Owned {
                state: DuplicateState::RefundDue,
                refund_id: None,
                link: None,
                error: Some(e.to_string()),
                next: now + pause(row.attempts),
            },
            "retried",
        ),
    };
    report(app, row, &order, &result, label);
    let id = row.payment_id.clone();
    app.db
        .run(move |c| duplicates::record(c, &id, &result.as_result(), now))
        .await?;
    Ok(label != "retried")
}

/// KOMOJU refunded the duplicate: `refunded`, or `refund_requested` when the buyer must
/// give a bank account at the refund's `redirect_url` (kept sealed, never logged).
fn refunded(
    app: &Services,
    mall_id: &str,
    payment: &crate::komoju::Payment,
    now: NaiveDateTime,
) -> Result<(Owned, &'static str), DbError> {
    let refund = payment.refunds.last();
    let link = refund.and_then(|r| r.redirect_url.clone());
    let sealed = link
        .map(|url| {
            app.secrets
                .seal(mall_id, duplicates::BANK_ACCOUNT_URL, &url.into())
        })
        .transpose()
        .map_err(|_| DbError::Corrupt("sealing a bank-account link failed".into()))?;
    let state = if sealed.is_some() {
        DuplicateState::RefundRequested
    } else {
        DuplicateState::Refunded
    };
    let result = Owned {
        state,
        refund_id: refund.map(|r| r.id.clone()),
        link: sealed,
        error: None,
        next: now,
    };
    Ok((result, state.as_str()))
}

/// One log line (info when refunded, warn otherwise) and the metric, per attempt.
fn report(
    app: &Services,
    row: &DuplicateRow,
    order: &orders::OrderRow,
    result: &Owned,
    label: &str,
) {
    log::log!(
        if label == "refunded" || label == "refund_requested" {
            log::Level::Info
        } else {
            log::Level::Warn
        },
        "duplicate payment {} of order {} of {} ({} {}): refund {label}{}",
        row.payment_id,
        order.order_id,
        order.mall_id,
        row.amount,
        row.currency,
        result
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    app.metrics
        .duplicate_refunds
        .with_label_values(&[label])
        .inc();
}

/// A [`RefundResult`] that owns its strings, to cross to the database thread.
#[derive(Clone)]
struct Owned {
    state: DuplicateState,
    refund_id: Option<String>,
    link: Option<String>,
    error: Option<String>,
    next: NaiveDateTime,
}

impl Owned {
    fn as_result(&self) -> RefundResult<'_> {
        RefundResult {
            state: self.state,
            komoju_refund_id: self.refund_id.as_deref(),
            bank_account_url: self.link.as_deref(),
            last_error: self.error.as_deref(),
            next_attempt_at: self.next,
        }
    }
}

/// KOMOJU's refusal, for the operator (status and code; never a body).
fn refusal(e: &KomojuError) -> String {
    match e {
        KomojuError::Api { status, code, .. } => {
            format!("KOMOJU refused the refund ({status} {code})")
        }
        other => other.to_string(),
    }
}

/// The pause before the next try after `attempts` unknown outcomes: one minute,
/// doubling, at most six hours.
fn pause(attempts: i32) -> chrono::Duration {
    let factor = 1u32 << attempts.clamp(0, 16);
    let pause = CLAIM.saturating_mul(factor).min(PAUSE_MAX);
    chrono::Duration::from_std(pause).unwrap_or_default()
}
