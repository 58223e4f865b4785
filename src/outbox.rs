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
//! Success is HTTP 2xx with a body that reads `OK`, or JSON whose `result` is `OK`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use tokio::sync::{watch, Notify};

use crate::db::notifications::{self, Finish, NotificationRow};
use crate::db::{self, DbError};
use crate::startup::AppState;

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

/// Largest response body read from Cafe24.
const MAX_REPLY_BYTES: usize = 16 * 1024;

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
    /// How often the reconciliation pass looks for unconfirmed asynchronous cancellations.
    pub reconcile_interval: Duration,
    /// How long an accepted asynchronous cancellation waits for KOMOJU's webhook before the
    /// pass reads the payment instead.
    pub reconcile_after: Duration,
}

/// How one attempt went.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered(u16),
    Failed {
        status: Option<u16>,
        error: String,
    },
    /// Not sendable at all (the target is no longer allowed): dead at once.
    Refused(String),
}

/// Claims and sends notifications.
pub struct Worker {
    app: web::Data<AppState>,
    owner: String,
    http: reqwest::Client,
    settings: OutboxSettings,
    wake: Arc<Notify>,
}

impl Worker {
    /// A worker with a fresh lease owner id (`host-pid-random`).
    pub fn new(
        app: web::Data<AppState>,
        settings: OutboxSettings,
        wake: Arc<Notify>,
    ) -> Result<Worker, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.send_timeout)
            .connect_timeout(settings.send_timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cafe24-komoju/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let owner = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(Worker {
            app,
            owner,
            http,
            settings,
            wake,
        })
    }

    /// Runs until `shutdown` turns true: claims due rows, sends them, sleeps `poll` (or
    /// until woken) when there is nothing to do. A batch in flight is finished before it
    /// stops, so no row is left leased by a stopped worker.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        log::info!("outbox worker {} started", self.owner);
        let mut last_reconcile = std::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_reconcile.elapsed() >= self.settings.reconcile_interval {
                last_reconcile = std::time::Instant::now();
                if let Err(e) =
                    crate::cancellation::reconcile(&self.app, self.settings.reconcile_after).await
                {
                    log::error!("reconciliation pass: {e}");
                }
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
                    _ = tokio::time::sleep(self.settings.poll.min(self.settings.reconcile_interval)) => {}
                    _ = self.wake.notified() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        log::info!("outbox worker {} stopped", self.owner);
    }

    /// Claims one batch of due rows and sends them concurrently; returns how many were
    /// claimed.
    pub async fn run_once(&self) -> Result<usize, DbError> {
        let now = self.app.clock.now_naive();
        let lease_until = now + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let (owner, batch) = (self.owner.clone(), self.settings.batch);
        let rows = self
            .app
            .db
            .run(move |c| notifications::claim(c, &owner, now, lease_until, batch))
            .await?;
        let n = rows.len();
        futures_util::future::join_all(rows.into_iter().map(|row| self.deliver(row))).await;
        Ok(n)
    }

    async fn deliver(&self, row: NotificationRow) {
        let attempt = self.attempt(&row).await;
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
        let (id, owner) = (row.id, self.owner.clone());
        match self.app.db.run(move |c| notifications::finish(c, id, &owner, finish, now)).await {
            Ok(true) => {
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

    /// One POST to Cafe24.
    async fn attempt(&self, row: &NotificationRow) -> Attempt {
        if let Err(reason) = self.target_allowed(row).await {
            return Attempt::Refused(reason);
        }
        let pairs = match row.field_pairs() {
            Ok(p) => p,
            Err(e) => return Attempt::Refused(e.to_string()),
        };
        let request = self.http.post(&row.target_url);
        let request = if row.encoding == "json" {
            let map: serde_json::Map<String, serde_json::Value> = pairs
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            request.json(&map)
        } else {
            request.form(&pairs)
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Failed {
                    status: None,
                    error: "timeout".into(),
                }
            }
            Err(e) => {
                return Attempt::Failed {
                    status: None,
                    error: format!("connection failed: {}", e.without_url()),
                }
            }
        };
        let status = response.status().as_u16();
        let body = read_limited(response).await;
        if !(200..300).contains(&status) {
            return Attempt::Failed {
                status: Some(status),
                error: format!("HTTP {status}"),
            };
        }
        if reads_ok(&body) {
            Attempt::Delivered(status)
        } else {
            Attempt::Failed {
                status: Some(status),
                error: "reply did not say OK".into(),
            }
        }
    }

    /// §9: the host is checked against the allow-list again at send time.
    async fn target_allowed(&self, row: &NotificationRow) -> Result<(), String> {
        let pk = row.order_pk.clone();
        let hosts = self
            .app
            .db
            .run(move |c| {
                let order = db::orders::find(c, &pk)?;
                let merchant = match order {
                    Some(o) => db::merchants::find(c, &o.mall_id)?,
                    None => None,
                };
                Ok(merchant.map(|m| m.allowed_hosts))
            })
            .await
            .map_err(|e| format!("could not read the merchant: {e}"))?;
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

async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_REPLY_BYTES {
            break;
        }
    }
    body
}

/// True for a body `OK` (any case, surrounding white space) or JSON `{"result":"OK"}`.
pub fn reads_ok(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.eq_ignore_ascii_case("ok") {
        return true;
    }
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("result")
                .and_then(|r| r.as_str())
                .map(|r| r.eq_ignore_ascii_case("ok"))
        })
        .unwrap_or(false)
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

    #[test]
    fn only_ok_replies_count() {
        assert!(reads_ok(b"OK"));
        assert!(reads_ok(b" ok\n"));
        assert!(reads_ok(br#"{"result":"OK"}"#));
        assert!(!reads_ok(br#"{"result":"FAIL"}"#));
        assert!(!reads_ok(b""));
        assert!(!reads_ok(b"NOT OK"));
    }
}
