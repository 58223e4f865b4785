//! Retention (issue 21, item 2): what served its purpose is purged once it is older than
//! `RETENTION_DAYS` (default 400), so a year of traffic costs the same to serve as a
//! month. Purged: delivered notifications (Cafe24 heard them), webhook events (their
//! ids only de-duplicate KOMOJU's retries, which stop after days) and order events (the
//! audit trail). Never purged: orders, refunds, duplicate payments, captures, and
//! notifications not delivered (pending or dead: an operator may still need them).
//!
//! Run by the reconciliation pass, under its lock (one instance at a time on
//! PostgreSQL). Each batch deletes at most [`BATCH`] rows ([`SQLITE_BATCH`] on SQLite) in
//! its own statement, oldest first through an index; batches are paced ([`PAUSE`], or as
//! long as the batch took) so the webhooks served meanwhile keep their latency, and a
//! pass does at most [`BATCHES_PER_PASS`] per table (a backlog drains over the next
//! passes).

use std::time::Duration;

use crate::db::retention::{self, Purged};
use crate::db::DbError;
use crate::services::Services;

/// Most rows one delete removes (PostgreSQL: a delete holds only its rows' locks).
pub const BATCH: i64 = 1_000;
/// Most rows one delete removes on SQLite: the delete holds the one database thread that
/// serves every request, so a webhook queued behind it waits for the whole batch. 250
/// rows take 5–10 ms at a million orders (docs/benchmarks.md, "Retention").
pub const SQLITE_BATCH: i64 = 100;
/// Most batches per table in one pass.
pub const BATCHES_PER_PASS: usize = 20;
/// The least pause between two batches; a batch that took longer is followed by a pause
/// as long as itself, so that a purge never takes more than half the database's time.
pub const PAUSE: Duration = Duration::from_millis(20);

/// Purges what is older than `keep` before the service's now. Returns how many rows were
/// removed. Errors: the database (the rest waits for the next pass).
pub async fn purge(app: &Services, keep: Duration) -> Result<usize, DbError> {
    let now = app.clock.now_naive();
    let Some(cutoff) = chrono::Duration::from_std(keep)
        .ok()
        .and_then(|k| now.checked_sub_signed(k))
    else {
        return Ok(0);
    };
    let limit = if app.db.backend_name() == "sqlite" {
        SQLITE_BATCH
    } else {
        BATCH
    };
    let mut total = 0;
    for table in Purged::ALL {
        let (mut purged, mut pause) = (0, PAUSE);
        for batch in 0..BATCHES_PER_PASS {
            if batch > 0 {
                tokio::time::sleep(pause).await;
            }
            let started = std::time::Instant::now();
            let n = app
                .db
                .run(move |c| retention::purge_batch(c, table, cutoff, limit))
                .await?;
            pause = PAUSE.max(started.elapsed());
            purged += n;
            if (n as i64) < limit {
                break;
            }
        }
        if purged > 0 {
            app.metrics
                .retention_purged
                .with_label_values(&[table.as_str()])
                .inc_by(purged as u64);
            log::info!(
                "retention: {purged} {} older than {cutoff} purged",
                table.as_str()
            );
        }
        total += purged;
    }
    Ok(total)
}
