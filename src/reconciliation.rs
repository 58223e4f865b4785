//! Reading from KOMOJU what no webhook said (PROTOCOL.md §5, §6.5, §8): its own
//! background task, apart from the outbox worker. A pass runs every
//! `RECONCILE_INTERVAL_MS`; what it reads goes through the one state machine
//! ([`crate::order_updates`]), so Cafe24 hears each change once, whichever of webhook,
//! callback, status read or reconciliation sees it first.
//!
//! A pass, under a lock so that several instances on one PostgreSQL never run one at
//! the same time (a session advisory lock; SQLite's single writer needs none):
//! - asynchronous cancellations KOMOJU accepted more than `RECONCILE_AFTER_SECS` ago and
//!   no webhook confirmed are confirmed by reading the payment ([`cancellations`]);
//! - then the orders a webhook should have moved ([`order_passes`]), each read through its
//!   KOMOJU session (which carries the payment):
//!   - `pending` with a session, unchanged for `RECONCILE_PENDING_AFTER_SECS` (and not
//!     read by a pass for as long): a buyer who paid and closed the browser;
//!   - `awaiting_payment` (a konbini, bank-transfer or Pay-easy code was issued): once a
//!     day, and once `RECONCILE_EXPIRY_GRACE_SECS` after the code's expiry
//!     (`orders.payment_expires_at`), so that an expired code reaches Cafe24 as the
//!     failure notice even when KOMOJU's `payment.expired` webhook never comes;
//!   - `authorized` (a card authorization waiting for its capture): once unchanged for
//!     `RECONCILE_CAPTURE_WINDOW_SECS` (KOMOJU's capture window), then once a day, until
//!     KOMOJU reports its end (captured, cancelled or expired).
//!
//! Orders no pass has read yet come before orders read before, whatever their age, and a
//! pass reads batch after batch for at most one interval ([`order_passes`]); a
//! merchant's KOMOJU reads are paced; a KOMOJU error leaves the order as it was and
//! backs that merchant off for later passes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio::sync::watch;

use crate::db::{self, orders, refunds, Database, DbError};
use crate::error::ApiError;
use crate::merchant::Merchant;
use crate::orders::state::OrderState;
use crate::services::Services;

/// Most rows one query of a pass returns (a pass's order sweeps query again while their
/// budget lasts; the other kinds read one batch a pass).
const BATCH: i64 = 20;
/// The least time between two KOMOJU reads for the same merchant.
const PACE: Duration = Duration::from_millis(100);
/// How often an `awaiting_payment` order, or an `authorized` one past its capture
/// window, is read while KOMOJU says nothing new.
const DAILY: Duration = Duration::from_secs(24 * 60 * 60);
/// The first back-off after a KOMOJU error, doubled per further error, and its ceiling.
const BACKOFF_FIRST: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// Tuning of the task.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// How often a pass runs (`RECONCILE_INTERVAL_MS`, default 30 s).
    pub interval: Duration,
    /// How long a pass's order reads go on while orders are due: one `interval`, so
    /// that the task reads at most half the time (a pass reads at least one order).
    pub budget: Duration,
    /// How long an accepted asynchronous cancellation waits for KOMOJU's webhook before a
    /// pass reads the payment instead (`RECONCILE_AFTER_SECS`, default 300 s).
    pub cancellations_after: Duration,
    /// How long a pending order with a session waits for a webhook before a pass reads
    /// the session (`RECONCILE_PENDING_AFTER_SECS`, default 900 s); also the least time
    /// between two reads of one order.
    pub pending_after: Duration,
    /// How long after the expiry of an `awaiting_payment` order's code a pass reads the
    /// payment, leaving KOMOJU the time to expire it and send its webhook
    /// (`RECONCILE_EXPIRY_GRACE_SECS`, default 300 s).
    pub expiry_grace: Duration,
    /// How long a card authorization stays `authorized` before a pass reads it: KOMOJU's
    /// capture window, after which an uncaptured authorization expires
    /// (`RECONCILE_CAPTURE_WINDOW_SECS`, default 30 days, KOMOJU's "usually 30 days").
    pub capture_window: Duration,
    /// How long delivered notifications, webhook events and order events are kept
    /// (`RETENTION_DAYS`, default 400): [`crate::retention`].
    pub retention: Duration,
}

/// Merchants whose KOMOJU calls failed, and when to try them again (service clock).
#[derive(Debug, Default)]
pub struct Backoff {
    merchants: HashMap<String, (u32, NaiveDateTime)>,
}

impl Backoff {
    /// Records a failure; returns until when the merchant is left alone.
    fn failed(&mut self, mall_id: &str, now: NaiveDateTime) -> NaiveDateTime {
        let failures = self.merchants.get(mall_id).map_or(0, |(n, _)| *n) + 1;
        let delay = BACKOFF_FIRST
            .saturating_mul(2u32.saturating_pow(failures - 1))
            .min(BACKOFF_MAX);
        let until = now + chrono::Duration::from_std(delay).unwrap_or_default();
        self.merchants.insert(mall_id.to_owned(), (failures, until));
        until
    }

    /// The merchants left alone at `now`.
    fn waiting_malls(&self, now: NaiveDateTime) -> Vec<String> {
        self.merchants
            .iter()
            .filter(|(_, (_, until))| *until > now)
            .map(|(mall_id, _)| mall_id.clone())
            .collect()
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

/// One pass, under the pass lock: duplicate payments refunded
/// ([`crate::duplicates::refund_due`]), held authorizations captured when due
/// ([`crate::capture::capture_due`]), [`cancellations`], [`order_passes`], then what
/// is older than the retention purged ([`crate::retention::purge`]). Returns how many
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
        let refunded = crate::duplicates::refund_due(app).await?;
        let captured = crate::capture::capture_due(app).await?;
        let read = refunded + captured + cancellations(app, settings.cancellations_after).await?;
        let read = read + order_passes(app, settings, backoff).await?;
        crate::retention::purge(app, settings.retention).await?;
        Ok(read)
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

/// What the order passes read at `now`, in this order: `pending`, `awaiting_payment`,
/// `authorized` orders (see the module documentation).
fn due(settings: &ReconcileSettings, now: NaiveDateTime) -> [orders::Due; 3] {
    // A setting too large for the calendar reaches back to 1970: nothing is older.
    let ago = |d: Duration| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::UNIX_EPOCH.naive_utc())
    };
    [
        orders::Due {
            state: OrderState::Pending,
            changed_before: ago(settings.pending_after),
            read_before: ago(settings.pending_after),
            expired_before: None,
        },
        orders::Due {
            state: OrderState::AwaitingPayment,
            changed_before: ago(DAILY),
            read_before: ago(DAILY),
            expired_before: Some(ago(settings.expiry_grace)),
        },
        orders::Due {
            state: OrderState::Authorized,
            changed_before: ago(settings.capture_window),
            read_before: ago(DAILY),
            expired_before: None,
        },
    ]
}

/// The order passes: the due orders of every kind ([`due`]) are read from KOMOJU through
/// their session and applied, first every order no pass has read yet
/// ([`orders::Sweep::First`]: `pending`, then `awaiting_payment`, then `authorized`),
/// then the ones read before, least recently read first ([`orders::Sweep::Again`]:
/// `awaiting_payment` and `authorized`, read once a day, before `pending`, where
/// abandoned checkouts are read every `RECONCILE_PENDING_AFTER_SECS` until KOMOJU ends
/// their session). Each sweep queries batches of [`BATCH`] until none is left or the
/// pass has read for `settings.budget` (at least one order is read); a batch's merchants
/// are read [`MERCHANTS_AT_ONCE`] at a time, each merchant's orders one after another,
/// [`PACE`]d. Returns how many sessions were read. A KOMOJU error leaves the order
/// untouched (read again next time) and backs its merchant off, whose orders the pass
/// then leaves.
pub async fn order_passes(
    app: &Services,
    settings: &ReconcileSettings,
    backoff: &mut Backoff,
) -> Result<usize, DbError> {
    use orders::Sweep::{Again, First};
    let now = app.clock.now_naive();
    let [pending, awaiting, authorized] = due(settings, now);
    let mut reader = Reader {
        reading: Reading {
            app,
            now,
            deadline: tokio::time::Instant::now() + settings.budget,
            started: AtomicBool::new(false),
            last_read: Mutex::new(HashMap::new()),
        },
        backoff,
        read: 0,
    };
    let sweeps = [
        (pending, First),
        (awaiting, First),
        (authorized, First),
        (awaiting, Again),
        (authorized, Again),
        (pending, Again),
    ];
    for (due, sweep) in sweeps {
        if !reader.sweep(due, sweep).await? {
            log::info!(
                "reconcile: the pass read for its budget ({:?}, {} sessions read); the rest \
                 waits for the next pass",
                settings.budget,
                reader.read
            );
            break;
        }
    }
    Ok(reader.read)
}

/// Merchants whose orders of one batch are read at once (each merchant's one after
/// another, [`PACE`] apart): KOMOJU's answer takes most of a read, so one merchant
/// waiting for it need not hold the others.
const MERCHANTS_AT_ONCE: usize = 4;

/// One pass's order reads: the merchants' back-off (applied between batches) and the
/// sessions read.
struct Reader<'a> {
    reading: Reading<'a>,
    backoff: &'a mut Backoff,
    read: usize,
}

impl Reader<'_> {
    /// Reads the orders of one sweep, batch after batch; `false` when the budget ran out
    /// first. Every order of a batch leaves the sweep's rows (read, recorded as read, or
    /// its merchant backed off and left out of the next query), so the next batch holds
    /// other orders.
    async fn sweep(&mut self, due: orders::Due, sweep: orders::Sweep) -> Result<bool, DbError> {
        use futures_util::StreamExt;
        let now = self.reading.now;
        loop {
            let except = self.backoff.waiting_malls(now);
            let rows = self
                .reading
                .app
                .db
                .run(move |c| orders::due_for_reading(c, due, sweep, &except, BATCH))
                .await?;
            let last_batch = i64::try_from(rows.len()).unwrap_or(i64::MAX) < BATCH;
            let reading = &self.reading;
            let mut merchants = futures_util::stream::iter(by_merchant(rows, |o| &o.mall_id))
                .map(|orders| reading.merchant(orders))
                .buffer_unordered(MERCHANTS_AT_ONCE);
            let mut in_time = true;
            while let Some(done) = merchants.next().await {
                let done = done?;
                self.read += done.read;
                in_time &= done.in_time;
                if done.failed {
                    let until = self.backoff.failed(&done.mall_id, now);
                    log::warn!(
                        "reconcile: merchant {} backed off until {} UTC",
                        done.mall_id,
                        until.format("%Y-%m-%d %H:%M:%S")
                    );
                } else if done.read > 0 {
                    self.backoff.succeeded(&done.mall_id);
                }
            }
            if !in_time {
                return Ok(false);
            }
            if last_batch {
                return Ok(true);
            }
        }
    }
}

/// `rows` by merchant (`mall_id_of`), each merchant's in their order, merchants in the
/// order of their first row.
fn by_merchant<T>(rows: Vec<T>, mall_id_of: impl Fn(&T) -> &str) -> Vec<Vec<T>> {
    let mut merchants: Vec<Vec<T>> = Vec::new();
    for row in rows {
        match merchants
            .iter_mut()
            .find(|m| mall_id_of(&m[0]) == mall_id_of(&row))
        {
            Some(orders) => orders.push(row),
            None => merchants.push(vec![row]),
        }
    }
    merchants
}

/// What the merchants of a pass share: the clock, the budget, the pacing.
struct Reading<'a> {
    app: &'a Services,
    now: NaiveDateTime,
    deadline: tokio::time::Instant,
    /// Whether the pass has read anything: its first read is made whatever the budget.
    started: AtomicBool,
    /// Each merchant's last KOMOJU read in this pass, to keep [`PACE`] between two.
    last_read: Mutex<HashMap<String, tokio::time::Instant>>,
}

/// What reading one merchant's orders of a batch came to.
struct MerchantReads {
    mall_id: String,
    /// Sessions KOMOJU answered for.
    read: usize,
    /// KOMOJU failed: the rest of the merchant's orders were left.
    failed: bool,
    /// False when the budget ran out before every order was read.
    in_time: bool,
}

impl Reading<'_> {
    /// Reads one merchant's `orders` one after another until KOMOJU fails (the rest are
    /// left for a later pass) or the budget runs out. The merchant is loaded once; one
    /// that cannot be loaded has its orders recorded as read at once ([`Self::unloadable`]).
    async fn merchant(&self, orders: Vec<orders::OrderRow>) -> Result<MerchantReads, DbError> {
        let mall_id = orders
            .first()
            .map(|o| o.mall_id.clone())
            .unwrap_or_default();
        let mut done = MerchantReads {
            mall_id: mall_id.clone(),
            read: 0,
            failed: false,
            in_time: true,
        };
        let merchant = match self.app.merchants.load(&mall_id, None).await {
            Ok(m) => m,
            Err(ApiError::Unavailable) => {
                return Err(DbError::Unavailable(
                    "loading a merchant to reconcile".into(),
                ))
            }
            Err(e) => {
                self.unloadable(&mall_id, orders, &e).await?;
                return Ok(done);
            }
        };
        for order in orders {
            let first = !self.started.swap(true, Ordering::SeqCst);
            if !first && tokio::time::Instant::now() >= self.deadline {
                done.in_time = false;
                break;
            }
            self.pace(&mall_id).await;
            if read_order(self.app, &merchant, order, self.now).await? {
                done.read += 1;
            } else {
                done.failed = true;
                break;
            }
        }
        Ok(done)
    }

    /// The merchant of `orders` cannot be loaded (gone, or keys that do not open): its
    /// orders are recorded as read all the same, in one statement, so that they wait
    /// their interval. Left due, they would come first in every batch (oldest first) and
    /// keep the other merchants' orders out for as long as the merchant stays unloadable.
    async fn unloadable(
        &self,
        mall_id: &str,
        orders: Vec<orders::OrderRow>,
        why: &ApiError,
    ) -> Result<(), DbError> {
        log::warn!(
            "reconcile: {} order(s) of {mall_id} not read, the merchant cannot be loaded \
             ({why}); read again after their interval",
            orders.len()
        );
        let now = self.now;
        let pks: Vec<String> = orders.into_iter().map(|o| o.id).collect();
        self.app
            .db
            .run(move |c| orders::set_reconciled_unread(c, &pks, now))
            .await?;
        Ok(())
    }

    /// Waits until [`PACE`] has passed since the merchant's last read in this pass.
    async fn pace(&self, mall_id: &str) {
        // The lock is let go before the wait.
        let last = (self.last_read.lock().ok()).and_then(|reads| reads.get(mall_id).copied());
        if let Some(last) = last {
            tokio::time::sleep_until(last + PACE).await;
        }
        if let Ok(mut reads) = self.last_read.lock() {
            reads.insert(mall_id.to_owned(), tokio::time::Instant::now());
        }
    }
}

/// Reads one order's session from KOMOJU and applies it, then records the read: `true`.
/// KOMOJU failed: `false`, the order left as it was (the caller backs the merchant off).
async fn read_order(
    app: &Services,
    merchant: &Merchant,
    order: orders::OrderRow,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let mall_id = order.mall_id.clone();
    let (pk, order_id, before) = (order.id.clone(), order.order_id.clone(), order.state);
    match crate::checkout::refresh_from_session(app, merchant, order, "reconcile").await {
        Ok(after) => {
            if after.state != before {
                log::info!(
                    "reconcile: order {order_id} of {mall_id} is {} (was {before}; no webhook had said so)",
                    after.state
                );
                app.outbox_wake.notify_one();
            }
            app.db
                .run(move |c| orders::set_reconciled(c, &pk, now))
                .await?;
            Ok(true)
        }
        Err(ApiError::Unavailable) => {
            Err(DbError::Unavailable("applying a reconciled session".into()))
        }
        Err(e) => {
            log::warn!("reconcile order {order_id} of {mall_id} ({before}): {e}; left as it was");
            Ok(false)
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
        let what = format!("reconciling cancellation {}", row.id);
        let Some((order, merchant)) = app.order_with_merchant(&row.order_pk, &what).await? else {
            continue;
        };
        match app
            .komoju
            .get_payment(&merchant.komoju_secret_key, &row.tid)
            .await
        {
            Ok(payment) => {
                read += 1;
                if let Some(fact) = payment.to_fact() {
                    crate::order_updates::apply_fact(app, &merchant, &order.id, fact, "reconcile")
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

#[cfg(test)]
mod tests {
    use super::by_merchant;

    #[test]
    fn a_batch_is_split_by_merchant_keeping_each_ones_order() {
        let rows = vec![("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)];
        assert_eq!(
            by_merchant(rows, |r| r.0),
            vec![
                vec![("b", 1), ("b", 3)],
                vec![("a", 2), ("a", 5)],
                vec![("c", 4)]
            ]
        );
    }
}
