//! Capturing a held card authorization (issue 20, "manual capture"; PROTOCOL.md §7
//! `POST /payments/{id}/capture`): from the merchant's Capture button, or by the
//! reconciliation task once the authorization's `auto_capture_after_days` have passed
//! (always inside KOMOJU's capture window: "Authorizations typically expire after 30
//! days", doc.komoju.com/docs/two-step-capture).
//!
//! One KOMOJU call however many clicks or instances ask: the order's capture row is
//! claimed first ([`crate::db::captures::claim`]), and the call's idempotency key is
//! derived from the payment id, so a retry after a lost answer is the same capture.
//! KOMOJU's answer goes through the one state machine ([`crate::order_updates`]): the
//! order becomes `paid` and Cafe24 hears nothing more (it heard of success at the
//! authorization). A refusal leaves the order `authorized`, with KOMOJU's reason kept
//! for the merchant's pages; KOMOJU not answering leaves it to try again.

use std::time::Duration;

use crate::db::{captures, DbError};
use crate::merchant::Merchant;
use crate::services::Services;

/// How long a claimed capture is left to its caller before another may try (a caller
/// that died mid-call; the retry reuses the same idempotency key).
const CLAIM: Duration = Duration::from_secs(60);
/// Most automatic captures in one reconciliation pass.
const BATCH: i64 = 20;

/// Who asked for the capture, recorded as the audit row's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capturer {
    /// The merchant's Capture button (`merchant`).
    Merchant,
    /// The reconciliation task, `auto_capture_after_days` after the authorization
    /// (`auto_capture`).
    Automatic,
}

impl Capturer {
    fn source(self) -> &'static str {
        match self {
            Capturer::Merchant => "merchant",
            Capturer::Automatic => "auto_capture",
        }
    }
}

/// What a capture request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// KOMOJU captured it; the order is `paid`.
    Done,
    /// Another click or instance is capturing it now, or it is no longer an authorized
    /// manual-capture order (captured, cancelled, expired).
    NotNow,
    /// KOMOJU refused (its message); the order stays `authorized`.
    Refused(String),
    /// KOMOJU did not answer; the order stays `authorized` and may be captured again.
    Unanswered,
}

/// The idempotency key of a payment's capture: derived from the payment id, so every
/// click, retry and instance asks KOMOJU for the same one capture (≤ 100 ASCII chars).
pub fn idempotency_key(payment_id: &str) -> String {
    format!("capture-{payment_id}")
}

/// Captures order `order_pk` of `merchant` in full. Errors: the database only.
pub async fn capture(
    app: &Services,
    merchant: &Merchant,
    order_pk: &str,
    by: Capturer,
) -> Result<Captured, DbError> {
    let now = app.clock.now_naive();
    let until = now + chrono::Duration::from_std(CLAIM).unwrap_or_default();
    let pk = order_pk.to_owned();
    let claimed = app
        .db
        .run(move |c| {
            let claimed = captures::claim(c, &pk, now, until)?;
            Ok(if claimed {
                captures::find(c, &pk)?
            } else {
                None
            })
        })
        .await?;
    let Some(row) = claimed else {
        return Ok(Captured::NotNow);
    };
    let called = app
        .komoju
        .capture_payment(
            &merchant.komoju_secret_key,
            &idempotency_key(&row.payment_id),
            &row.payment_id,
        )
        .await;
    let (result, error) = match called {
        Ok(payment) => match payment.to_fact() {
            Some(fact) => {
                crate::order_updates::apply_fact(app, merchant, order_pk, fact, by.source())
                    .await?;
                (Captured::Done, None)
            }
            None => (
                Captured::Unanswered,
                Some("KOMOJU's answer had no status we know".to_owned()),
            ),
        },
        Err(e) if e.is_refusal() => {
            let reason = e.to_string();
            (Captured::Refused(reason.clone()), Some(reason))
        }
        Err(e) => (Captured::Unanswered, Some(e.to_string())),
    };
    report(merchant, order_pk, &row.payment_id, by, &result);
    let pk = order_pk.to_owned();
    app.db
        .run(move |c| captures::release(c, &pk, error.as_deref()))
        .await?;
    Ok(result)
}

/// One log line per capture: info when done, warn otherwise.
fn report(merchant: &Merchant, order_pk: &str, payment_id: &str, by: Capturer, result: &Captured) {
    let level = if *result == Captured::Done {
        log::Level::Info
    } else {
        log::Level::Warn
    };
    log::log!(
        level,
        "capture of payment {payment_id} (order {order_pk} of {}) by {}: {result:?}",
        merchant.mall_id,
        by.source()
    );
}

/// The reconciliation task's part: captures the authorizations whose automatic capture
/// is due. Returns how many KOMOJU answered. A merchant that cannot be loaded now
/// (disabled, keys that do not open) waits. Errors: the database only.
pub async fn capture_due(app: &Services) -> Result<usize, DbError> {
    let now = app.clock.now_naive();
    let due = app.db.run(move |c| captures::due(c, now, BATCH)).await?;
    let mut answered = 0;
    for row in due {
        let Some((_, merchant)) = app
            .order_with_merchant(&row.order_pk, "automatic capture")
            .await?
        else {
            continue;
        };
        let result = capture(app, &merchant, &row.order_pk, Capturer::Automatic).await?;
        answered += usize::from(matches!(result, Captured::Done | Captured::Refused(_)));
    }
    Ok(answered)
}
