//! The statements of the hot paths are prepared once per connection (issue 21, item 4;
//! `db::cached`): a KOMOJU webhook's unit of work, the outbox's claim and record, a
//! reconciliation read's mark and a checkout's insert and session update, run twice on
//! one connection for two orders the service stored. The first round prepares each
//! statement into the connection's cache; the second prepares nothing and runs only
//! statements the first cached. On PostgreSQL the server's own list of the session's
//! prepared statements holds every write.

use std::sync::{Arc, Mutex};

use cafe24_komoju::db::notifications::{self, Finish, NewNotification, NotificationState};
use cafe24_komoju::db::orders::{self, NewOrderEvent, OrderRow};
use cafe24_komoju::db::webhook_events::{self, WebhookEventRow, WebhookOutcome};
use cafe24_komoju::db::{self, DbConnection, DbError};
use cafe24_komoju::merchant::kinds::NotifyEncoding;
use cafe24_komoju::orders::state::OrderState;
use diesel::connection::{Connection, InstrumentationEvent};
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::both_backends;
use crate::helpers::*;

both_backends!(hot_statements_are_prepared_once_per_connection);

/// What the connection's instrumentation saw: statements started and statements put
/// into its cache, as SQL text without binds.
#[derive(Default)]
struct Seen {
    started: Vec<String>,
    cached: Vec<String>,
}

/// The SQL of a started statement (diesel shows it as `SQL -- binds: [...]`).
fn sql_of(shown: &str) -> String {
    shown.split(" -- binds:").next().unwrap_or(shown).to_owned()
}

/// `sql` with SQLite's quoted identifiers (`` `x` ``) quoted as PostgreSQL's (`"x"`).
fn quoted_as_postgres(sql: &str) -> String {
    sql.replace('`', "\"")
}

/// Statements that are not prepared, by design: transaction control (sent as simple
/// queries) and the outbox's claim (raw SQL, one per batch of notifications).
fn unprepared_by_design(sql: &str) -> bool {
    let s = sql.trim_start().to_ascii_uppercase();
    [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "UPDATE NOTIFICATIONS SET LEASE_OWNER",
    ]
    .iter()
    .any(|k| s.starts_with(k))
}

/// One round of the hot paths' writes for `order` (a stored order with a session);
/// `n` makes its ids unique.
fn round(c: &mut DbConnection, order: &OrderRow, n: usize) -> Result<(), DbError> {
    let now = chrono::Utc::now().naive_utc();
    let session = order.komoju_session_id.clone().unwrap_or_default();
    // A KOMOJU webhook: lock, record, apply, audit, enqueue (webhooks::apply_payment).
    let locked = db::transaction(c, |c| {
        let mut locked = orders::lock_by_session(c, MALL, &session)?
            .ok_or_else(|| DbError::Corrupt(format!("no order for session {session}")))?;
        let event = WebhookEventRow {
            mall_id: MALL.to_owned(),
            event_id: format!("evt_prepared_{n}"),
            event_type: "payment.captured".to_owned(),
            order_pk: Some(locked.id.clone()),
            outcome: WebhookOutcome::Applied,
            received_at: now,
        };
        assert!(webhook_events::insert_new(c, &event)?);
        let facts = locked.facts()?;
        locked.set_facts(&facts, now);
        orders::save_facts(c, &locked)?;
        orders::insert_event(
            c,
            &NewOrderEvent {
                order_pk: locked.id.clone(),
                source: "webhook".to_owned(),
                event: "payment.captured".to_owned(),
                from_state: OrderState::Pending.as_str().to_owned(),
                to_state: OrderState::Pending.as_str().to_owned(),
                applied: false,
                detail: String::new(),
                created_at: now,
            },
        )?;
        notifications::enqueue(
            c,
            &NewNotification {
                order_pk: locked.id.clone(),
                kind: notifications::NotificationKind::ReturnNoty,
                dedup_key: format!("prepared-{n}"),
                target_url: "http://127.0.0.1:9/noty".to_owned(),
                encoding: NotifyEncoding::Form,
                fields: "{}".to_owned(),
                state: NotificationState::Pending,
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
                updated_at: now,
            },
        )?;
        Ok(locked)
    })?;
    // The outbox: claim, then record the delivery.
    let lease = now + chrono::Duration::seconds(60);
    let claimed = notifications::claim(c, "prepared", now, lease, 10)?;
    assert!(
        !claimed.is_empty(),
        "round {n}: its notification was not claimed"
    );
    for row in claimed {
        notifications::finish(
            c,
            row.id,
            "prepared",
            Finish::Delivered { status: 200 },
            now,
        )?;
    }
    // A reconciliation read.
    orders::set_reconciled(c, &locked.id, now)?;
    // A checkout: a new order, then its session.
    let mut fresh = locked.clone();
    fresh.id = format!("ord_prepared_{n}");
    fresh.order_id = format!("20261207-00009{n:02}");
    fresh.external_order_num = format!("{}-prepared", fresh.external_order_num);
    fresh.komoju_idempotency_key = format!("{}-prepared", fresh.komoju_idempotency_key);
    fresh.komoju_session_id = None;
    fresh.komoju_session_url = None;
    assert!(orders::insert_new(c, &fresh)?);
    let session_id = format!("sess_prepared_{n}");
    let changed = orders::set_session(c, &fresh.id, fresh.attempt, &session_id, "http://x/", now)?;
    assert_eq!(changed, 1);
    Ok(())
}

#[derive(QueryableByName)]
struct Prepared {
    #[diesel(sql_type = Text)]
    statement: String,
}

/// Runs [`round`] for each of `ids` (stored orders) on one new connection to `url`,
/// recording what each round started and cached; with the session's prepared
/// statements as PostgreSQL lists them (empty on SQLite).
fn rounds_on_one_connection(url: &str, ids: &[&str]) -> (Vec<Seen>, Vec<String>) {
    let mut c = db::establish(url).unwrap_or_else(|e| panic!("{e}"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    c.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                s.started.push(sql_of(&query.to_string()))
            }
            InstrumentationEvent::CacheQuery { sql, .. } => s.cached.push(sql.to_owned()),
            _ => {}
        }
    });
    let mut rounds = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let order = orders::find_by_order_id(&mut c, MALL, id)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("order {id} not stored"));
        round(&mut c, &order, n).unwrap_or_else(|e| panic!("round {n}: {e}"));
        rounds.push(std::mem::take(
            &mut *seen.lock().unwrap_or_else(|e| e.into_inner()),
        ));
    }
    let server = match &mut c {
        DbConnection::Postgres(pg) => {
            diesel::sql_query("SELECT statement FROM pg_prepared_statements")
                .load::<Prepared>(pg)
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|p| p.statement)
                .collect()
        }
        DbConnection::Sqlite(_) => Vec::new(),
    };
    (rounds, server)
}

async fn hot_statements_are_prepared_once_per_connection(backend: Backend) {
    let postgres = matches!(backend, Backend::Postgres(_));
    // Nothing of the service's own competes for the rows: no reconciliation pass, no
    // outbox worker (it would claim the round's notification first).
    let app = spawn_app_with(
        backend,
        &[
            ("RECONCILE_INTERVAL_MS", "3600000"),
            ("OUTBOX_WORKER", "off"),
        ],
    )
    .await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let ids = ["20261207-0000801", "20261207-0000802"];
    for id in ids {
        app.async_checkout_ok(&async_fields(id, "3400", "JPY", &cafe24))
            .await;
    }
    let url = app._db.url.clone();
    let (mut rounds, server) =
        tokio::task::spawn_blocking(move || rounds_on_one_connection(&url, &ids))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let second = rounds.pop().unwrap_or_default();
    let first = rounds.pop().unwrap_or_default();

    // The second round prepared nothing and ran only what the first cached.
    assert!(
        second.cached.is_empty(),
        "prepared again in the second round: {:#?}",
        second.cached
    );
    let not_cached: Vec<&String> = second
        .started
        .iter()
        .filter(|sql| !unprepared_by_design(sql))
        .filter(|sql| !first.cached.contains(sql))
        .collect();
    assert!(
        not_cached.is_empty(),
        "statements run without a prepared statement: {not_cached:#?}"
    );
    // Every write of the round is among them (the list is not vacuous).
    for write in [
        "INSERT INTO \"webhook_events\"",
        "UPDATE \"orders\" SET \"state\"",
        "INSERT INTO \"order_events\"",
        "INSERT INTO \"notifications\"",
        "UPDATE \"notifications\" SET \"state\"",
        "UPDATE \"orders\" SET \"reconciled_at\"",
        "INSERT INTO \"orders\"",
        "UPDATE \"orders\" SET \"komoju_session_id\"",
    ] {
        assert!(
            first
                .cached
                .iter()
                .any(|sql| quoted_as_postgres(sql).starts_with(write)),
            "{write}… was not prepared into the cache: {:#?}",
            first.cached
        );
        if postgres {
            assert!(
                server.iter().any(|sql| sql.starts_with(write)),
                "{write}… is not among the session's prepared statements: {server:#?}"
            );
        }
    }
}
