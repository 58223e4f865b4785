//! Delivering notifications to Cafe24, at least once (PROTOCOL.md §9).
//!
//! Rows are written by [`crate::orders::updates`] in the transaction that changed the
//! order. A [`Worker`] (started by `serve`, one per process) claims due rows with a lease
//! (`db::notifications::claim`), sends each outside any transaction with a timeout
//! shorter than the lease, and records the result only if it still holds the lease. A
//! failed attempt is retried on [`SCHEDULE`] with ±10 % jitter; after the last one the row
//! is `dead`, listed by `notifications list --state dead` and replayed by `notifications
//! retry ID`. Redirects are never followed, and the target host is checked against the
//! allow-list again before every send.
//!
//! Sending one notification (the POST, and what counts as success) is
//! [`crate::cafe24::notify`]'s; this worker owns when and how often. KOMOJU reconciliation
//! is not here: it is [`crate::reconciliation`]'s own task.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use tokio::sync::{watch, Notify};

use crate::cafe24::notify::{Attempt, Encoding, Sender};
use crate::db::notifications::{self, Finish, NotificationRow};
use crate::db::{self, DbError};
use crate::services::Services;

/// Delays after the 1st, 2nd, … failed attempt. After a failure of attempt
/// `SCHEDULE.len() + 1` (the 9th) the row is dead.
pub const SCHEDULE: [Duration; 8] = [
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(12 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The delay before the next attempt after `attempts` attempts have failed, with the
/// jitter factor `jitter` in `[-1, 1]` scaled to ±10 %; `None` when the schedule is over.
pub fn next_delay(attempts: i32, jitter: f64) -> Option<Duration> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let base = SCHEDULE.get(index)?;
    let factor = 1.0 + 0.1 * jitter.clamp(-1.0, 1.0);
    Some(Duration::from_millis(
        (base.as_millis() as f64 * factor) as u64,
    ))
}

/// Tuning of the worker.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// How often to look for due rows when idle.
    pub poll: Duration,
    /// How long a claim lasts; longer than `send_timeout`.
    pub lease: Duration,
    /// Timeout of one POST to Cafe24.
    pub send_timeout: Duration,
    /// Rows claimed at once.
    pub batch: i64,
}

/// Claims and sends notifications.
pub struct Worker {
    app: web::Data<Services>,
    owner: String,
    sender: Sender,
    settings: OutboxSettings,
    wake: Arc<Notify>,
}

impl Worker {
    /// A worker with a fresh lease owner id (`host-pid-random`).
    pub fn new(
        app: web::Data<Services>,
        settings: OutboxSettings,
        wake: Arc<Notify>,
    ) -> Result<Worker, reqwest::Error> {
        let sender = Sender::new(settings.send_timeout)?;
        let owner = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(Worker {
            app,
            owner,
            sender,
            settings,
            wake,
        })
    }

    /// Runs until `shutdown` turns true: claims due rows, sends them, sleeps `poll` (or
    /// until woken) when there is nothing to do. A batch in flight is finished before it
    /// stops, so no row is left leased by a stopped worker.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        log::info!("outbox worker {} started", self.owner);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let sent = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    log::error!("outbox worker: {e}");
                    0
                }
            };
            if sent == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.poll) => {}
                    _ = self.wake.notified() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        log::info!("outbox worker {} stopped", self.owner);
    }

    /// Claims one batch of due rows, with the allowed hosts of their merchants (one
    /// unit of database work), and sends them concurrently; returns how many were
    /// claimed.
    pub async fn run_once(&self) -> Result<usize, DbError> {
        let now = self.app.clock.now_naive();
        let lease_until = now + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let (owner, batch) = (self.owner.clone(), self.settings.batch);
        let (rows, hosts) = self
            .app
            .db
            .run(move |c| {
                // One transaction: a failed read of the hosts gives the claim back.
                db::transaction(c, |c| {
                    let rows = notifications::claim(c, &owner, now, lease_until, batch)?;
                    let pks: Vec<String> = rows.iter().map(|r| r.order_pk.clone()).collect();
                    let hosts = db::merchants::allowed_hosts_of_orders(c, &pks)?;
                    Ok((rows, hosts))
                })
            })
            .await?;
        let n = rows.len();
        futures_util::future::join_all(rows.into_iter().map(|row| {
            let allowed = hosts.get(&row.order_pk).map(String::as_str);
            self.deliver(row, allowed)
        }))
        .await;
        Ok(n)
    }

    /// Sends `row` and records how the attempt ended; `allowed_hosts` are its merchant's
    /// (read when the row was claimed).
    async fn deliver(&self, row: NotificationRow, allowed_hosts: Option<&str>) {
        let attempt = self.attempt(&row, allowed_hosts).await;
        let now = self.app.clock.now_naive();
        let delivered = matches!(attempt, Attempt::Delivered(_));
        let (finish, summary) = match &attempt {
            Attempt::Delivered(status) => (
                Finish::Delivered {
                    status: i32::from(*status),
                },
                format!("delivered (HTTP {status})"),
            ),
            Attempt::Refused(error) => (
                Finish::Dead {
                    status: None,
                    error: error.clone(),
                },
                format!("dead: {error}"),
            ),
            Attempt::Failed { status, error } => {
                let status = status.map(i32::from);
                match next_delay(row.attempts, rand::random::<f64>() * 2.0 - 1.0) {
                    Some(delay) => {
                        let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
                        (
                            Finish::Retry {
                                status,
                                error: error.clone(),
                                next_attempt_at: at,
                            },
                            format!("failed ({error}); next attempt at {at} UTC"),
                        )
                    }
                    None => (
                        Finish::Dead {
                            status,
                            error: error.clone(),
                        },
                        format!("dead after {} attempts ({error})", row.attempts),
                    ),
                }
            }
        };
        let outcome = match &finish {
            Finish::Delivered { .. } => "delivered",
            Finish::Retry { .. } => "retried",
            Finish::Dead { .. } => "dead",
        };
        let (id, owner) = (row.id, self.owner.clone());
        match self.app.db.run(move |c| notifications::finish(c, id, &owner, finish, now)).await {
            Ok(true) => {
                self.app.metrics.notifications.with_label_values(&[outcome]).inc();
                let level = if delivered { log::Level::Info } else { log::Level::Warn };
                log::log!(level, "notification {} ({}) attempt {}: {summary}", row.id, row.kind, row.attempts);
            }
            Ok(false) => log::warn!(
                "notification {} attempt {}: {summary}, but the lease was lost; another worker owns it now",
                row.id, row.attempts
            ),
            Err(e) => log::error!("notification {}: could not record attempt {} ({summary}): {e}", row.id, row.attempts),
        }
    }

    /// One POST to Cafe24, once the target is still allowed.
    async fn attempt(&self, row: &NotificationRow, allowed_hosts: Option<&str>) -> Attempt {
        if let Err(reason) = self.target_allowed(row, allowed_hosts) {
            return Attempt::Refused(reason);
        }
        let pairs = match row.field_pairs() {
            Ok(p) => p,
            Err(e) => return Attempt::Refused(e.to_string()),
        };
        let encoding = if row.encoding == "json" {
            Encoding::Json
        } else {
            Encoding::Form
        };
        self.sender.send(&row.target_url, encoding, &pairs).await
    }

    /// §9: the host is checked against the allow-list again before every attempt: the
    /// service's own list and the merchant's `allowed_hosts` as the claim read them.
    fn target_allowed(&self, row: &NotificationRow, hosts: Option<&str>) -> Result<(), String> {
        let extra: Vec<String> = hosts
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        self.app
            .allowed_hosts
            .check(&row.target_url, &extra)
            .map(|_| ())
            .map_err(|e| format!("target URL no longer allowed: {e}"))
    }
}

/// Sets the outbox gauges (`notifications_pending`, `…_oldest_pending_age_seconds`)
/// from the database, at the service clock; called at each scrape. Errors: the database.
pub async fn observe_outbox(app: &Services) -> Result<(), DbError> {
    let (pending, oldest) = app.db.run(notifications::pending_summary).await?;
    let age = oldest
        .map(|t| (app.clock.now_naive() - t).num_seconds().max(0))
        .unwrap_or(0);
    app.metrics.notifications_pending.set(pending);
    app.metrics.oldest_pending_age.set(age);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_the_protocols_with_bounded_jitter() {
        assert_eq!(next_delay(1, 0.0), Some(Duration::from_secs(10)));
        assert_eq!(next_delay(2, 0.0), Some(Duration::from_secs(60)));
        assert_eq!(next_delay(8, 0.0), Some(Duration::from_secs(86400)));
        assert_eq!(next_delay(9, 0.0), None);
        assert_eq!(next_delay(0, 0.0), None);
        assert_eq!(next_delay(1, 1.0), Some(Duration::from_secs(11)));
        assert_eq!(next_delay(1, -1.0), Some(Duration::from_secs(9)));
        assert_eq!(next_delay(1, 5.0), Some(Duration::from_secs(11)));
    }
}
