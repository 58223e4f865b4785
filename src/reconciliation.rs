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
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio::sync::watch;

use crate::db::{self, orders, refunds, Database, DbError};
use crate::error::ApiError;
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
    fn waiting(&self, mall_id: &str, now: NaiveDateTime) -> bool {
        self.merchants
            .get(mall_id)
            .is_some_and(|(_, until)| *until > now)
    }

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
/// pass has read for `settings.budget` (at least one order is read). Returns how many
/// sessions were read. A KOMOJU error leaves the order untouched (read again next time)
/// and backs its merchant off, whose orders the pass then leaves; a merchant's reads are
/// [`PACE`]d.
pub async fn order_passes(
    app: &Services,
    settings: &ReconcileSettings,
    backoff: &mut Backoff,
) -> Result<usize, DbError> {
    use orders::Sweep::{Again, First};
    let now = app.clock.now_naive();
    let [pending, awaiting, authorized] = due(settings, now);
    let mut reader = Reader {
        app,
        now,
        backoff,
        pacer: Pacer::default(),
        deadline: tokio::time::Instant::now() + settings.budget,
        tried: 0,
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
                "reconcile: the pass read for its budget ({:?}, {} orders tried); the rest \
                 waits for the next pass",
                settings.budget,
                reader.tried
            );
            break;
        }
    }
    Ok(reader.read)
}

/// One pass's order reads: where it stands against its budget.
struct Reader<'a> {
    app: &'a Services,
    now: NaiveDateTime,
    backoff: &'a mut Backoff,
    pacer: Pacer,
    deadline: tokio::time::Instant,
    /// Orders the pass tried to read.
    tried: usize,
    /// Sessions KOMOJU answered for.
    read: usize,
}

impl Reader<'_> {
    /// Reads the orders of one sweep, batch after batch; `false` when the budget ran out
    /// first. Every order of a batch leaves the sweep's rows (read, recorded as read, or
    /// its merchant backed off and left out of the next query), so the next batch holds
    /// other orders.
    async fn sweep(&mut self, due: orders::Due, sweep: orders::Sweep) -> Result<bool, DbError> {
        loop {
            let except = self.backoff.waiting_malls(self.now);
            let rows = self
                .app
                .db
                .run(move |c| orders::due_for_reading(c, due, sweep, &except, BATCH))
                .await?;
            let last_batch = i64::try_from(rows.len()).unwrap_or(i64::MAX) < BATCH;
            for order in rows {
                if self.backoff.waiting(&order.mall_id, self.now) {
                    log::debug!(
                        "reconcile: order {} of {} left for a later pass (merchant backed off)",
                        order.order_id,
                        order.mall_id
                    );
                    continue;
                }
                if self.tried > 0 && tokio::time::Instant::now() >= self.deadline {
                    return Ok(false);
                }
                self.tried += 1;
                self.pacer.wait(&order.mall_id).await;
                self.read += read_order(self.app, order, self.now, self.backoff).await?;
            }
            if last_batch {
                return Ok(true);
            }
        }
    }
}

/// The last KOMOJU read of each merchant in this pass, to keep [`PACE`] between two.
#[derive(Default)]
struct Pacer {
    last: HashMap<String, tokio::time::Instant>,
}

impl Pacer {
    async fn wait(&mut self, mall_id: &str) {
        if let Some(last) = self.last.get(mall_id) {
            tokio::time::sleep_until(*last + PACE).await;
        }
        self.last
            .insert(mall_id.to_owned(), tokio::time::Instant::now());
    }
}

/// Reads one order's session from KOMOJU and applies it; records the read. Returns 1
/// when KOMOJU answered, 0 when not: the merchant unloadable (the read recorded all the
/// same, so the order waits its interval), or a KOMOJU error (backed off).
async fn read_order(
    app: &Services,
    order: orders::OrderRow,
    now: NaiveDateTime,
    backoff: &mut Backoff,
) -> Result<usize, DbError> {
    let mall_id = order.mall_id.clone();
    let merchant = match app.merchants.load(&mall_id, None).await {
        Ok(m) => m,
        Err(ApiError::Unavailable) => {
            return Err(DbError::Unavailable(
                "loading a merchant to reconcile".into(),
            ))
        }
        Err(e) => {
            log::warn!(
                "reconcile order {} of {mall_id}: the merchant cannot be loaded ({e}); \
                 read again after its interval",
                order.order_id
            );
            // Recorded as read, so that it waits its interval like any other order: left
            // due, it would come first in every batch (oldest first) and keep the
            // other merchants' orders out for as long as the merchant stays unloadable.
            let pk = order.id.clone();
            app.db
                .run(move |c| orders::set_reconciled(c, &pk, now))
                .await?;
            return Ok(0);
        }
    };
    let (pk, order_id, before) = (order.id.clone(), order.order_id.clone(), order.state);
    match crate::checkout::refresh_from_session(app, &merchant, order, "reconcile").await {
        Ok(after) => {
            backoff.succeeded(&mall_id);
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
            Ok(1)
        }
        Err(ApiError::Unavailable) => {
            Err(DbError::Unavailable("applying a reconciled session".into()))
        }
        Err(e) => {
            let until = backoff.failed(&mall_id, now);
            log::warn!(
                "reconcile order {order_id} of {mall_id} ({before}): {e}; left as it was, \
                 merchant backed off until {} UTC",
                until.format("%Y-%m-%d %H:%M:%S")
            );
            Ok(0)
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
