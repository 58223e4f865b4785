//! Delivering notifications to Cafe24, at least once (PROTOCOL.md §9).
//!
//! Rows are written by [`crate::order_updates`] in the transaction that changed the
//! order. A [`Worker`] (started by `serve`, one per process) claims due rows with a lease
//! (`db::notifications::claim`), sends each outside any transaction with a timeout
//! shorter than the lease, and records the result only if it still holds the lease. A
//! failed attempt is retried on [`SCHEDULE`] with ±10 % jitter; after the last one the row
//! is `dead`, listed by `notifications list --state dead` and replayed by `notifications
//! retry ID`. Redirects are never followed, and the target host is checked against the
//! allow-list again before every send.
//!
//! Rows share their host's back-off: an attempt that gets no answer or a 5xx holds every
//! row of that host back for [`host_delay`] (1 s doubling to [`HOST_BACKOFF_MAX`]), and
//! then only the oldest is tried; once a delivery to it succeeds again, every row of the
//! host waiting for a later attempt is due at once, oldest first, a batch at a time. So
//! a Cafe24 outage is not hammered, and its backlog drains within seconds of its end.
//!
//! Sending one notification (the POST, and what counts as success) is
//! [`crate::cafe24::notify`]'s; this worker owns when and how often. KOMOJU reconciliation
//! is not here: it is [`crate::reconciliation`]'s own task.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use chrono::NaiveDateTime;
use tokio::sync::{watch, Notify};

use crate::cafe24::notify::{Attempt, Sender};
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

/// The longest back-off of a failing host: however long it has failed, one attempt to it
/// is made at least this often, so its recovery is seen within this long.
pub const HOST_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How long no attempt goes to a host after `failures` consecutive failed attempts: 1 s,
/// 2 s, 4 s, 8 s, then [`HOST_BACKOFF_MAX`].
pub fn host_delay(failures: i32) -> Duration {
    let exponent = u32::try_from(failures.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    Duration::from_secs(1u64 << exponent).min(HOST_BACKOFF_MAX)
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

/// What an attempt changes of its host's back-off.
#[derive(Debug, Clone)]
enum HostChange {
    None,
    /// No attempt to the host before `retry_at`.
    Failed {
        host: String,
        retry_at: chrono::NaiveDateTime,
    },
    /// Delivered after failures: the back-off ends, the host's waiting rows are due.
    Recovered(String),
}

/// How one attempt went, for the host's back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// No HTTP answer (refused, timed out) or a 5xx: the host is failing.
    HostFailed,
    /// An answer that is this row's problem (4xx, a 2xx without `OK`), or not sendable.
    RowFailed,
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
    /// until woken) when there is nothing to do. Once told to stop it claims nothing
    /// more; the batch in flight may finish within `grace`, then whatever this worker
    /// still holds is given back ([`notifications::release_all`]), so another instance
    /// sends those rows at once instead of after the lease.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        log::info!("outbox worker {} started", self.owner);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let mut stop = shutdown.clone();
            let sent = tokio::select! {
                sent = self.run_once() => sent,
                _ = async {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                    tokio::time::sleep(grace).await;
                } => {
                    log::warn!("outbox worker {}: the batch in flight did not finish within {grace:?}; giving its rows back", self.owner);
                    break;
                }
            };
            let sent = match sent {
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
        self.give_back().await;
        log::info!("outbox worker {} stopped", self.owner);
    }

    /// Releases every row this worker still holds.
    async fn give_back(&self) {
        let (owner, now) = (self.owner.clone(), self.app.clock.now_naive());
        match self
            .app
            .db
            .run(move |c| notifications::release_all(c, &owner, now))
            .await
        {
            Ok(0) => {}
            Ok(n) => log::info!("outbox worker {}: gave back {n} notification(s)", self.owner),
            Err(e) => log::error!(
                "outbox worker {}: could not give its notifications back (their leases expire by themselves): {e}",
                self.owner
            ),
        }
    }

    /// Claims one batch of due rows, with the allowed hosts of their merchants and the
    /// failures of their hosts (one unit of database work), and sends them, each host's
    /// rows oldest first: all at once to a healthy host; to a failing one, the oldest
    /// alone first, the others only if it is delivered (else they are given back).
    /// Returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize, DbError> {
        let now = self.app.clock.now_naive();
        let lease_until = now + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let (owner, batch) = (self.owner.clone(), self.settings.batch);
        let (mut rows, hosts, failing) = self
            .app
            .db
            .run(move |c| {
                // One transaction: a failed read of the hosts gives the claim back.
                db::transaction(c, |c| {
                    let rows = notifications::claim(c, &owner, now, lease_until, batch)?;
                    let pks: Vec<String> = rows.iter().map(|r| r.order_pk.clone()).collect();
                    let hosts = db::merchants::allowed_hosts_of_orders(c, &pks)?;
                    let targets: Vec<String> =
                        rows.iter().filter_map(|r| r.target_host.clone()).collect();
                    let failing = notifications::host_failures(c, &targets)?;
                    Ok((rows, hosts, failing))
                })
            })
            .await?;
        let n = rows.len();
        // Oldest enqueued first (the claim gave every row the same next attempt).
        rows.sort_by_key(|r| r.id);
        let mut groups: Vec<(Option<String>, Vec<NotificationRow>)> = Vec::new();
        for row in rows {
            match groups
                .iter_mut()
                .find(|(h, _)| *h == row.target_host && h.is_some())
            {
                Some((_, group)) => group.push(row),
                None => groups.push((row.target_host.clone(), vec![row])),
            }
        }
        futures_util::future::join_all(groups.into_iter().map(|(host, group)| {
            let failures = host
                .as_ref()
                .and_then(|h| failing.get(h))
                .copied()
                .unwrap_or(0);
            self.send_group(failures, group, &hosts)
        }))
        .await;
        Ok(n)
    }

    /// Sends the claimed rows of one host (see [`Worker::run_once`]); `failures` is the
    /// host's count of consecutive failures when they were claimed.
    async fn send_group(
        &self,
        failures: i32,
        mut rows: Vec<NotificationRow>,
        allowed: &std::collections::HashMap<String, String>,
    ) {
        let allowed_of = |row: &NotificationRow| allowed.get(&row.order_pk).cloned();
        let mut failures = failures;
        if failures > 0 && rows.len() > 1 {
            let rest = rows.split_off(1);
            let probe = rows.remove(0);
            let hosts = allowed_of(&probe);
            if self.deliver(probe, hosts.as_deref(), failures).await != Outcome::Delivered {
                let ids: Vec<i64> = rest.iter().map(|r| r.id).collect();
                let (owner, now) = (self.owner.clone(), self.app.clock.now_naive());
                if let Err(e) = self
                    .app
                    .db
                    .run(move |c| notifications::release(c, &ids, &owner, now))
                    .await
                {
                    log::error!("outbox: could not give back the rows of a failing host: {e}");
                }
                return;
            }
            // The probe cleared the host's back-off.
            failures = 0;
            rows = rest;
        }
        futures_util::future::join_all(rows.into_iter().map(|row| {
            let hosts = allowed_of(&row);
            async move { self.deliver(row, hosts.as_deref(), failures).await }
        }))
        .await;
    }

    /// Sends `row` and records how the attempt ended, with its host's back-off, in one
    /// transaction (so a row seen unleased has its host's state recorded too);
    /// `allowed_hosts` are its merchant's and `host_failures` its host's failures (read
    /// when the row was claimed).
    async fn deliver(
        &self,
        row: NotificationRow,
        allowed_hosts: Option<&str>,
        host_failures: i32,
    ) -> Outcome {
        let attempt = self.attempt(&row, allowed_hosts).await;
        let now = self.app.clock.now_naive();
        let outcome = match &attempt {
            Attempt::Delivered(_) => Outcome::Delivered,
            Attempt::Failed { status, .. } if status.map_or(true, |s| s >= 500) => {
                Outcome::HostFailed
            }
            _ => Outcome::RowFailed,
        };
        let (finish, summary) = finish_of(&row, &attempt, now);
        let label = match &finish {
            Finish::Delivered { .. } => "delivered",
            Finish::Retry { .. } => "retried",
            Finish::Dead { .. } => "dead",
        };
        let host = host_change(outcome, &row, host_failures, now);
        let recorded = self.record(row.id, finish, host, now).await;
        match recorded {
            Ok(Some(due)) => {
                self.app.metrics.notifications.with_label_values(&[label]).inc();
                let level = if outcome == Outcome::Delivered { log::Level::Info } else { log::Level::Warn };
                log::log!(level, "notification {} ({}) attempt {}: {summary}", row.id, row.kind, row.attempts);
                if outcome == Outcome::Delivered && host_failures > 0 {
                    log::info!("notifications to {} are delivered again; {due} waiting notification(s) due now", row.target_host.as_deref().unwrap_or("?"));
                    self.wake.notify_one();
                }
            }
            Ok(None) => log::warn!(
                "notification {} attempt {}: {summary}, but the lease was lost; another worker owns it now",
                row.id, row.attempts
            ),
            Err(e) => log::error!("notification {}: could not record attempt {} ({summary}): {e}", row.id, row.attempts),
        }
        outcome
    }

    /// The attempt's end and its host's change, in one transaction (without a change of
    /// the host, the usual case, the one `UPDATE` is that transaction: no `BEGIN` and
    /// `COMMIT` of its own); `None` when the lease was lost (another worker owns the row
    /// now), else how many of the host's waiting rows became due.
    async fn record(
        &self,
        id: i64,
        finish: Finish,
        host: HostChange,
        now: NaiveDateTime,
    ) -> Result<Option<usize>, DbError> {
        let owner = self.owner.clone();
        self.app
            .db
            .run(move |c| {
                // One statement is its own transaction; two need one around them.
                let alone = matches!(host, HostChange::None);
                let write = move |c: &mut db::DbConnection| {
                    if !notifications::finish(c, id, &owner, finish, now)? {
                        return Ok(None);
                    }
                    Ok(Some(match &host {
                        HostChange::Failed { host, retry_at } => {
                            notifications::host_failed(c, host, now, *retry_at)?;
                            0
                        }
                        HostChange::Recovered(host) => notifications::host_recovered(c, host, now)?,
                        HostChange::None => 0,
                    }))
                };
                if alone {
                    write(c)
                } else {
                    db::transaction(c, write)
                }
            })
            .await
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
        self.sender
            .send(&row.target_url, row.encoding, &pairs)
            .await
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

/// How an attempt ends the row: delivered, retried at the next step of the schedule, or
/// dead (refused, or the schedule is over); with the summary logged.
fn finish_of(row: &NotificationRow, attempt: &Attempt, now: NaiveDateTime) -> (Finish, String) {
    match attempt {
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
    }
}

/// The change an attempt makes to its host's back-off: a 5xx or no answer holds the host
/// back (shared by its rows), a delivery after failures releases it.
fn host_change(
    outcome: Outcome,
    row: &NotificationRow,
    host_failures: i32,
    now: NaiveDateTime,
) -> HostChange {
    match (outcome, row.target_host.clone()) {
        (Outcome::HostFailed, Some(host)) => {
            let delay = host_delay(host_failures.saturating_add(1));
            let retry_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            HostChange::Failed { host, retry_at }
        }
        (Outcome::Delivered, Some(host)) if host_failures > 0 => HostChange::Recovered(host),
        _ => HostChange::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_back_off_doubles_to_its_ceiling() {
        let secs: Vec<u64> = (0..8).map(|f| host_delay(f).as_secs()).collect();
        assert_eq!(secs, vec![1, 1, 2, 4, 8, 10, 10, 10]);
        assert_eq!(host_delay(i32::MAX), HOST_BACKOFF_MAX);
    }

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
