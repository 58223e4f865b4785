//! Reading from KOMOJU what no webhook said (PROTOCOL.md §6.5, §8): its own background
//! task, apart from the outbox worker. A pass runs every `RECONCILE_INTERVAL_MS`; what it
//! reads goes through the one state machine ([`crate::orders::updates`]), so Cafe24
//! hears each change once, whichever of webhook, callback, status read or
//! reconciliation sees it first.
//!
//! Today's pass: asynchronous cancellations KOMOJU accepted more than
//! `RECONCILE_AFTER_SECS` ago and no webhook confirmed are confirmed by reading the
//! payment. A KOMOJU error leaves the row as it was for the next pass.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::db::{orders, refunds, DbError};
use crate::services::Services;

/// Most rows read in one pass.
const BATCH: i64 = 20;

/// Tuning of the task.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// How often a pass runs (`RECONCILE_INTERVAL_MS`, default 30 s).
    pub interval: Duration,
    /// How long an accepted asynchronous cancellation waits for KOMOJU's webhook before a
    /// pass reads the payment instead (`RECONCILE_AFTER_SECS`, default 300 s).
    pub cancellations_after: Duration,
}

/// Runs [`cancellations`] every `settings.interval` until `shutdown` turns true.
pub async fn run(
    services: Arc<Services>,
    settings: ReconcileSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = cancellations(&services, settings.cancellations_after).await {
            log::error!("reconciliation pass: {e}");
        }
    }
}

/// The reconciliation pass: asynchronous cancellations KOMOJU accepted more than `after`
/// ago and no webhook confirmed are confirmed by reading the payment. Returns how many
/// payments were read.
pub async fn cancellations(app: &Services, after: Duration) -> Result<usize, DbError> {
    let before = app.clock.now_naive() - chrono::Duration::from_std(after).unwrap_or_default();
    let rows = app
        .db
        .run(move |c| refunds::awaiting_confirmation(c, before, BATCH))
        .await?;
    let mut read = 0;
    for row in rows {
        let pk = row.order_pk.clone();
        let Some(order) = app.db.run(move |c| orders::find(c, &pk)).await? else {
            continue;
        };
        let merchant = match crate::merchant::load(app, &order.mall_id, None).await {
            Ok(m) => m,
            Err(e) => {
                log::warn!("reconcile {}: merchant {}: {e}", row.id, order.mall_id);
                continue;
            }
        };
        match app
            .komoju
            .get_payment(&merchant.komoju_secret_key, &row.tid)
            .await
        {
            Ok(payment) => {
                read += 1;
                if let Some(fact) = payment.to_fact() {
                    crate::orders::updates::apply_fact(
                        app,
                        &merchant,
                        &order.id,
                        fact,
                        "reconcile",
                        None,
                    )
                    .await?;
                    app.outbox_wake.notify_one();
                }
            }
            Err(e) => log::warn!(
                "reconcile {}: reading payment {} failed: {e}",
                row.id,
                row.tid
            ),
        }
    }
    Ok(read)
}
