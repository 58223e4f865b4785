//! Retention (issue 21, item 2): past `RETENTION_DAYS`, delivered notifications, webhook
//! events and order events are purged by the reconciliation pass, a bounded batch at a
//! time; orders, refunds and notifications not delivered are never purged.

use std::time::Duration;

use cafe24_komoju::db::retention::{purge_batch, Purged};
use cafe24_komoju::db::schema::{notifications, order_events, orders, refunds, webhook_events};
use diesel::prelude::*;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    what_is_older_than_the_retention_goes_and_money_records_stay,
    a_batch_removes_at_most_its_limit_oldest_first
);

const OLD: &str = "20261206-0000301";
const UNDELIVERED: &str = "20261206-0000302";
const NEW: &str = "20261206-0000303";

/// Rows of each table: (orders, refunds, order_events, webhook_events, delivered
/// notifications, other notifications).
async fn counts(app: &TestApp) -> [i64; 6] {
    app.state
        .db
        .run(|c| {
            let orders = orders::table.count().get_result::<i64>(c)?;
            let refunds = refunds::table.count().get_result::<i64>(c)?;
            let events = order_events::table.count().get_result::<i64>(c)?;
            let webhooks = webhook_events::table.count().get_result::<i64>(c)?;
            let delivered = notifications::table
                .filter(notifications::state.eq("delivered"))
                .count()
                .get_result::<i64>(c)?;
            let others = notifications::table
                .filter(notifications::state.ne("delivered"))
                .count()
                .get_result::<i64>(c)?;
            Ok([orders, refunds, events, webhooks, delivered, others])
        })
        .await
        .unwrap_or_else(|e| panic!("counting: {e}"))
}

/// An asynchronous order paid by card, its capture also sent as KOMOJU's webhook, its
/// notice delivered (or not, when `cafe24` refuses); returns the payment id.
async fn paid(app: &TestApp, order_id: &str, cafe24: &Receiver, event_id: &str) -> String {
    let url = app
        .async_checkout_ok(&async_fields(order_id, "3400", "JPY", cafe24))
        .await;
    let callback = app.press(&url, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);
    let session_id = url.rsplit('/').next().unwrap_or_default();
    let payment = app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
    let body = event_body(event_id, "payment.captured", &payment);
    let signature = komoju_signature(WEBHOOK_SECRET, &body);
    assert_eq!(app.send_webhook(MALL, &body, Some(&signature)).await, 200);
    app.drain_outbox().await;
    payment["id"].as_str().unwrap_or_default().to_owned()
}

async fn pass(app: &TestApp) {
    let mut backoff = cafe24_komoju::reconciliation::Backoff::default();
    let ran =
        cafe24_komoju::reconciliation::pass(&app.state, &app.settings.reconcile, &mut backoff)
            .await;
    assert!(matches!(ran, Ok(Some(_))), "{ran:?}");
}

async fn what_is_older_than_the_retention_goes_and_money_records_stay(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("RECONCILE_INTERVAL_MS", "3600000"),
            ("RETENTION_DAYS", "30"),
        ],
    )
    .await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let tid = paid(&app, OLD, &cafe24, "ev_old").await;
    let (status, body) = app
        .sync_cancel(&cancel_fields(OLD, &tid, "1000", "JPY"))
        .await;
    assert_eq!(status, 200, "{body}");
    // A notice Cafe24 has not taken yet: never purged, however old.
    let refusing = Receiver::spawn(app.clock.clone());
    refusing.fail_always(true);
    paid(&app, UNDELIVERED, &refusing, "ev_undelivered").await;
    let before = counts(&app).await;
    assert!(before[4] >= 1 && before[5] >= 1, "{before:?}");

    // 31 days on, a new order; then a pass.
    app.clock.advance(Duration::from_secs(31 * 86_400));
    paid(&app, NEW, &cafe24, "ev_new").await;
    let with_new = counts(&app).await;
    pass(&app).await;
    let after = counts(&app).await;

    assert_eq!(after[0], 3, "orders are never purged");
    assert_eq!(after[1], before[1], "refunds are never purged");
    assert!(after[5] >= before[5], "undelivered notices stay: {after:?}");
    // Only the new order's records are left.
    let new_pk = app.order(NEW).await.map(|o| o.id).unwrap_or_default();
    let (events, webhooks, delivered) = app
        .state
        .db
        .run(move |c| {
            let events = order_events::table
                .select(order_events::order_pk)
                .load::<String>(c)?;
            let webhooks = webhook_events::table
                .select(webhook_events::event_id)
                .load::<String>(c)?;
            let delivered = notifications::table
                .filter(notifications::state.eq("delivered"))
                .select(notifications::order_pk)
                .load::<String>(c)?;
            Ok((events, webhooks, delivered))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !events.is_empty() && events.iter().all(|pk| *pk == new_pk),
        "{events:?}"
    );
    assert_eq!(webhooks, ["ev_new"]);
    assert!(!delivered.is_empty() && delivered.iter().all(|pk| *pk == new_pk));
    assert!(after[2] < with_new[2] && after[3] < with_new[3] && after[4] < with_new[4]);
    // A repeat of the purge finds nothing more.
    pass(&app).await;
    assert_eq!(counts(&app).await, after);
}

async fn a_batch_removes_at_most_its_limit_oldest_first(backend: Backend) {
    let app = spawn_quiet(backend).await;
    let url = app
        .sync_checkout_ok(&checkout_fields(OLD, "3400", "JPY"))
        .await;
    assert!(!url.is_empty());
    let pk = app.order(OLD).await.map(|o| o.id).unwrap_or_default();
    // Whole seconds: PostgreSQL keeps microseconds, SQLite what it is given.
    let start = chrono::DateTime::from_timestamp(app.clock.unix_seconds() - 500 * 86_400, 0)
        .map(|t| t.naive_utc())
        .unwrap_or_default();
    // 2 500 audit rows, a minute apart, 500 days old and older.
    app.state
        .db
        .run(move |c| {
            cafe24_komoju::db::transaction(c, |c| {
                for i in 0..2_500 {
                    cafe24_komoju::db::orders::insert_event(
                        c,
                        &cafe24_komoju::db::orders::NewOrderEvent {
                            order_pk: pk.clone(),
                            source: "webhook".into(),
                            event: "payment.pending".into(),
                            from_state: "pending".into(),
                            to_state: "pending".into(),
                            applied: false,
                            detail: String::new(),
                            created_at: start - chrono::Duration::minutes(i),
                        },
                    )?;
                }
                Ok(())
            })?;
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("seeding: {e}"));
    let cutoff = start - chrono::Duration::minutes(1_000);
    let mut deleted = Vec::new();
    for _ in 0..3 {
        deleted.push(
            app.state
                .db
                .run(move |c| purge_batch(c, Purged::OrderEvents, cutoff, 1_000))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    // 1 499 rows are older than the cutoff: a full batch, the rest, then nothing.
    assert_eq!(deleted, [1_000, 499, 0]);
    let oldest_left = app
        .state
        .db
        .run(|c| {
            order_events::table
                .select(diesel::dsl::min(order_events::created_at))
                .first::<Option<chrono::NaiveDateTime>>(c)
                .map_err(Into::into)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(oldest_left, Some(cutoff), "the oldest went first");
}
