//! Reading from KOMOJU what no webhook said (PROTOCOL.md §5, §6.5, §8): its own
//! background task, apart from the outbox worker. A pass runs every
//! `RECONCILE_INTERVAL_MS`; what it reads goes through the one state machine
//! ([`crate::orders::updates`]), so Cafe24 hears each change once, whichever of webhook,
//! callback, status read or reconciliation sees it first.
//!
//! A pass, under a lock so that several instances on one PostgreSQL never run one at
//! the same time (a session advisory lock; SQLite's single writer needs none):
//! - asynchronous cancellations KOMOJU accepted more than `RECONCILE_AFTER_SECS` ago and
//!   no webhook confirmed are confirmed by reading the payment ([`cancellations`]);
//! - orders still `pending` with a session, unchanged for `RECONCILE_PENDING_AFTER_SECS`
//!   (and not read by a pass for as long), are read from KOMOJU ([`pending`]): a buyer
//!   who paid and closed the browser, a webhook that never came.
//!
//! Batches are bounded; a merchant's KOMOJU reads are paced; a KOMOJU error leaves the
//! order as it was and backs that merchant off for later passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio::sync::watch;

use crate::db::{self, orders, refunds, Database, DbError};
use crate::error::ApiError;
use crate::orders::state::OrderState;
use crate::services::Services;

/// Most rows read in one pass, per kind.
const BATCH: i64 = 20;
/// The pause between two KOMOJU reads for the same merchant.
const PACE: Duration = Duration::from_millis(100);
/// The first back-off after a KOMOJU error, doubled per further error, and its ceiling.
const BACKOFF_FIRST: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// Tuning of the task.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// How often a pass runs (`RECONCILE_INTERVAL_MS`, default 30 s).
    pub interval: Duration,
    /// How long an accepted asynchronous cancellation waits for KOMOJU's webhook before a
    /// pass reads the payment instead (`RECONCILE_AFTER_SECS`, default 300 s).
    pub cancellations_after: Duration,
    /// How long a pending order with a session waits for a webhook before a pass reads
    /// the session (`RECONCILE_PENDING_AFTER_SECS`, default 900 s); also the least time
    /// between two reads of one order.
    pub pending_after: Duration,
}

/// Merchants whose KOMOJU calls failed, and when to try them again (service clock).
#[derive(Debug, Default)]
pub struct Backoff {
    merchants: HashMap<String, (u32, NaiveDateTime)>,
}

impl Backoff {
    fn waiting(&self, mall_id: &str, now: NaiveDateTime) -> bool {
        self.merchants
            .get(mall_id)
            .is_some_and(|(_, until)| *until > now)
    }

    fn failed(&mut self, mall_id: &str, now: NaiveDateTime) {
        let failures = self.merchants.get(mall_id).map_or(0, |(n, _)| *n) + 1;
        let delay = BACKOFF_FIRST
            .saturating_mul(2u32.saturating_pow(failures - 1))
            .min(BACKOFF_MAX);
        let until = now + chrono::Duration::from_std(delay).unwrap_or_default();
        self.merchants.insert(mall_id.to_owned(), (failures, until));
    }

    fn succeeded(&mut self, mall_id: &str) {
        self.merchants.remove(mall_id);
    }
}

/// Runs a [`pass`] every `settings.interval` until `shutdown` turns true.
pub async fn run(
    services: Arc<Services>,
    settings: ReconcileSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = pass(&services, &settings, &mut backoff).await {
            log::error!("reconciliation pass: {e}");
        }
    }
}

/// One pass, under the pass lock: [`cancellations`], then [`pending`]. Returns how many
/// KOMOJU objects were read, or `None` when another instance is running a pass.
pub async fn pass(
    app: &Services,
    settings: &ReconcileSettings,
    backoff: &mut Backoff,
) -> Result<Option<usize>, DbError> {
    let Some(lock) = PassLock::take(&app.db).await? else {
        log::debug!("reconciliation: another instance is running a pass");
        return Ok(None);
    };
    let result = async {
        let read = cancellations(app, settings.cancellations_after).await?;
        Ok(read + pending(app, settings.pending_after, backoff).await?)
    }
    .await;
    lock.release().await;
    result.map(Some)
}

/// The pass lock: a pooled PostgreSQL connection holding the advisory lock for the
/// length of the pass (SQLite: nothing to hold).
struct PassLock {
    conn: Option<r2d2::PooledConnection<db::ConnectionManager>>,
}

impl PassLock {
    async fn take(database: &Database) -> Result<Option<PassLock>, DbError> {
        if database.backend_name() == "sqlite" {
            return Ok(Some(PassLock { conn: None }));
        }
        let database = database.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = database.get()?;
            Ok(db::try_reconcile_lock(&mut conn)?.then_some(PassLock { conn: Some(conn) }))
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("reconciliation lock task: {e}")))?
    }

    async fn release(self) {
        if let Some(mut conn) = self.conn {
            let released =
                tokio::task::spawn_blocking(move || db::release_reconcile_lock(&mut conn)).await;
            if !matches!(released, Ok(Ok(()))) {
                // The connection goes back to the pool still holding the lock only if the
                // unlock failed; its session ends with the connection, releasing it.
                log::warn!("reconciliation: releasing the pass lock failed");
            }
        }
    }
}

/// Orders still `pending` with a session that no webhook moved for `after` (and no pass
/// read for as long) are read from KOMOJU and applied. Returns how many sessions were
/// read. A KOMOJU error leaves the order untouched (read again next time) and backs its
/// merchant off.
pub async fn pending(
    app: &Services,
    after: Duration,
    backoff: &mut Backoff,
) -> Result<usize, DbError> {
    let now = app.clock.now_naive();
    let before = now - chrono::Duration::from_std(after).unwrap_or_default();
    let rows = app
        .db
        .run(move |c| orders::pending_unreconciled(c, before, BATCH))
        .await?;
    let mut read = 0;
    let mut last_mall: Option<String> = None;
    for order in rows {
        let mall_id = order.mall_id.clone();
        if backoff.waiting(&mall_id, now) {
            continue;
        }
        if last_mall.as_deref() == Some(mall_id.as_str()) {
            tokio::time::sleep(PACE).await;
        }
        last_mall = Some(mall_id.clone());
        let merchant = match crate::merchant::load(app, &mall_id, None).await {
            Ok(m) => m,
            Err(e) => {
                log::warn!(
                    "reconcile order {}: merchant {mall_id}: {e}",
                    order.order_id
                );
                continue;
            }
        };
        let (pk, order_id) = (order.id.clone(), order.order_id.clone());
        match crate::checkout::refresh_from_session(app, &merchant, order, "reconcile").await {
            Ok(after) => {
                read += 1;
                backoff.succeeded(&mall_id);
                if after.state != OrderState::Pending {
                    log::info!(
                        "reconcile: order {order_id} of {mall_id} is {} (no webhook had said so)",
                        after.state
                    );
                    app.outbox_wake.notify_one();
                }
                app.db
                    .run(move |c| orders::set_reconciled(c, &pk, now))
                    .await?;
            }
            Err(ApiError::Unavailable) => {
                return Err(DbError::Unavailable("applying a reconciled session".into()))
            }
            Err(e) => {
                backoff.failed(&mall_id, now);
                log::warn!("reconcile order {order_id} of {mall_id}: {e}; left as it was");
            }
        }
    }
    Ok(read)
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
