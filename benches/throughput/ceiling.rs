//! The ceilings: what the database allows for the same work, measured in the same run.
//!
//! - Webhooks: the statements one webhook issues, called through the service's own
//!   `db::` functions (so they are the same statements by construction) with values
//!   computed before the clock starts, on connections of their own, by as many threads as
//!   the service has concurrent senders (SQLite: one thread, as the service has one
//!   connection). No HTTP, no signature, no JSON, no state machine.
//! - Notifications: claim a batch, POST each (concurrently, with the service's own
//!   `Sender` and its reading of the reply), record the batch's end: the least code that
//!   does the outbox's job, against the same receiver.
//! - SQLite: both run with the service's WAL checkpointer ([`db::Checkpointer`]).
//! - pgbench (PostgreSQL, when installed): the same transaction as a plain SQL script.

use std::time::{Duration, Instant};

use cafe24_komoju::cafe24::notify::{Attempt, Encoding, Sender};
use cafe24_komoju::db::notifications::{self, Finish, NewNotification, NotificationState};
use cafe24_komoju::db::orders::{self, NewOrderEvent};
use cafe24_komoju::db::webhook_events::{self, WebhookEventRow};
use cafe24_komoju::db::{self, DbConnection, DbError};
use cafe24_komoju::orders::state::{OrderFacts, OrderState};

/// What one webhook writes, computed before the clock starts.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub mall_id: String,
    pub session_id: String,
    pub event_id: String,
    pub facts: OrderFacts,
    pub notification: NewNotification,
}

/// The statements of one webhook, in the service's order: one transaction that locks
/// the order by its session, records the event, writes the new facts, the audit row and
/// the notification (the merchant comes from the service's cache: no statement).
fn webhook(c: &mut DbConnection, w: &Webhook) -> Result<(), DbError> {
    let now = chrono::Utc::now().naive_utc();
    db::transaction(c, |c| {
        let mut order = orders::lock_by_session(c, &w.mall_id, &w.session_id)?
            .ok_or_else(|| DbError::Corrupt(format!("no order for session {}", w.session_id)))?;
        let fresh = webhook_events::insert_new(
            c,
            &WebhookEventRow {
                mall_id: w.mall_id.clone(),
                event_id: w.event_id.clone(),
                event_type: "payment.captured".into(),
                order_pk: Some(order.id.clone()),
                outcome: webhook_events::WebhookOutcome::Applied,
                received_at: now,
            },
        )?;
        assert!(fresh, "event {} was recorded already", w.event_id);
        order.set_facts(&w.facts, now);
        orders::save_facts(c, &order)?;
        orders::insert_event(
            c,
            &NewOrderEvent {
                order_pk: order.id.clone(),
                source: "webhook".into(),
                event: "payment.captured".into(),
                from_state: OrderState::Pending.as_str().into(),
                to_state: w.facts.state.as_str().into(),
                applied: true,
                detail: String::new(),
                created_at: now,
            },
        )?;
        notifications::enqueue(c, &w.notification)?;
        Ok(())
    })
}

/// Runs `work` on `threads` threads, each with a connection of its own; returns the
/// wall time from the first transaction to the last commit.
pub fn webhooks(db_url: &str, work: Vec<Webhook>, threads: usize) -> Duration {
    // SQLite: the service's checkpointer runs beside its writer; so does the ceiling's.
    let _checkpointer = db::Checkpointer::start(db_url).unwrap_or_else(|e| panic!("{e}"));
    let work = std::sync::Arc::new(work);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (work, next, barrier) = (work.clone(), next.clone(), barrier.clone());
            let mut conn = db::establish(db_url).unwrap_or_else(|e| panic!("{e}"));
            std::thread::spawn(move || {
                barrier.wait();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(w) = work.get(i) else { break };
                    webhook(&mut conn, w).unwrap_or_else(|e| panic!("ceiling webhook {i}: {e}"));
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for h in handles {
        h.join()
            .unwrap_or_else(|_| panic!("a ceiling thread panicked"));
    }
    started.elapsed()
}

/// Delivers every pending notification with the least code: claim `batch`, send them
/// all at once, record each end; until `expected` were delivered. Returns the time from
/// the first claim to the last record.
pub async fn notifications(db_url: &str, batch: i64, expected: usize) -> Duration {
    let _checkpointer = db::Checkpointer::start(db_url).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = db::establish(db_url).unwrap_or_else(|e| panic!("{e}"));
    let sender = Sender::new(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let owner = "ceiling";
    let mut delivered = 0;
    let started = Instant::now();
    while delivered < expected {
        let now = chrono::Utc::now().naive_utc();
        let rows = notifications::claim(
            &mut conn,
            owner,
            now,
            now + chrono::Duration::seconds(60),
            batch,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !rows.is_empty(),
            "the ceiling ran out of pending notifications at {delivered}"
        );
        let sends = rows.iter().map(|row| {
            let pairs = row.field_pairs().unwrap_or_default();
            let sender = &sender;
            async move { sender.send(&row.target_url, Encoding::Form, &pairs).await }
        });
        let attempts = futures_util::future::join_all(sends).await;
        let now = chrono::Utc::now().naive_utc();
        for (row, attempt) in rows.iter().zip(attempts) {
            let Attempt::Delivered(status) = attempt else {
                panic!("the receiver refused a notification: {attempt:?}")
            };
            notifications::finish(
                &mut conn,
                row.id,
                owner,
                Finish::Delivered {
                    status: i32::from(status),
                },
                now,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            delivered += 1;
        }
    }
    started.elapsed()
}

/// Makes every notification pending again, as if just enqueued (between the ceiling's
/// deliveries and the service's).
pub fn reset_notifications(db_url: &str) {
    use cafe24_komoju::db::schema::notifications as n;
    use diesel::prelude::*;
    let mut conn = db::establish(db_url).unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::Utc::now().naive_utc();
    diesel::update(n::table)
        .set((
            n::state.eq(NotificationState::Pending),
            n::attempts.eq(0),
            n::next_attempt_at.eq(now),
            n::lease_owner.eq(None::<String>),
            n::lease_expires_at.eq(None::<chrono::NaiveDateTime>),
            n::last_status.eq(None::<i32>),
            n::delivered_at.eq(None::<chrono::NaiveDateTime>),
            n::updated_at.eq(now),
        ))
        .execute(&mut conn)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The webhook transaction as a pgbench script, statement for statement; `:n` picks one
/// of the stand-in's sessions (`bs1` … `bsN`), `:e` a fresh event id.
const PGBENCH_SCRIPT: &str = r#"\set n random(1, :sessions)
\set e random(1, 1000000000000)
BEGIN;
SELECT *, id AS pk FROM orders WHERE komoju_session_id = 'bs' || :n AND mall_id = 'benchmall' FOR UPDATE \gset
INSERT INTO webhook_events (mall_id, event_id, event_type, order_pk, outcome, received_at) VALUES ('benchmall', 'pgb' || :e, 'payment.captured', :pk, 'applied', now()) ON CONFLICT DO NOTHING;
UPDATE orders SET state = 'paid', komoju_payment_id = 'paybs' || :n, payment_type = 'credit_card', captured_amount = 1000, charged_amount = NULL, charged_currency = NULL, refunded_amount = 0, pending_notice_sent = false, payment_expires_at = NULL, updated_at = now() WHERE id = :pk;
INSERT INTO order_events (order_pk, source, event, from_state, to_state, applied, detail, created_at) VALUES (:pk, 'webhook', 'payment.captured', 'pending', 'paid', true, '', now());
INSERT INTO notifications (order_pk, kind, dedup_key, target_url, encoding, fields, state, attempts, next_attempt_at, created_at, updated_at) VALUES (:pk, 'return_noty', 'pgb' || :e, :target, 'form', :fields, 'pending', 0, now(), now(), now()) ON CONFLICT DO NOTHING;
COMMIT;
"#;

/// Runs [`PGBENCH_SCRIPT`] for 10 seconds with `clients` clients (prepared statements)
/// against the database of `db_url`; returns its transactions per second, or `None`
/// when pgbench is not installed.
pub fn pgbench(db_url: &str, clients: usize, sessions: usize, target: &str) -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("webhook.sql");
    std::fs::write(&script, PGBENCH_SCRIPT).ok()?;
    let fields = r#"[["request_type","payment"],["partner_id","benchmall:1:b"],["paymethod","card"],["tid","paybs1"],["amount","1000"],["order_id","B-0000001"],["currency","JPY"],["payed_tf","T"],["hash_data","3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w0="],["extra_data",""],["result_code","0000"],["result_message","Payment completed"]]"#;
    // libpq reads the search_path from the URL's options, as the service does.
    let output = std::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-T", "10", "-j", "2"])
        .arg(format!("--client={clients}"))
        .arg(format!("--define=sessions={sessions}"))
        .arg(format!("--define=target={target}"))
        .arg(format!("--define=fields={fields}"))
        .arg(format!("--file={}", script.display()))
        .arg(db_url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok());
    if tps.is_none() {
        eprintln!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    tps
}
