//! Reconciliation of pending orders (issue 11; PROTOCOL.md §5, §8): a session KOMOJU
//! completed while no webhook came is read by a pass and applied through the one state
//! machine, so Cafe24 hears it exactly once, whoever sees it first. Passes are driven
//! here one at a time, with the service clock moved (the background task is set to a
//! one-hour interval so that it never runs during a test).

use std::time::Duration;

use cafe24_komoju::reconciliation::{self, Backoff};
use cafe24_komoju_sandbox::Fault;

use crate::both_backends;
use crate::helpers::*;

const ORDER: &str = "20261201-0000501";
const WAIT: Duration = Duration::from_secs(5);

both_backends!(
    a_paid_session_without_webhook_is_reconciled_and_told_once,
    komoju_failing_during_a_pass_leaves_the_order_for_the_next_pass,
);

async fn spawn(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[("RECONCILE_INTERVAL_MS", "3600000")]).await
}

/// An asynchronous order paid by card on the hosted page, whose buyer never came back
/// and whose webhook never came: its payment, as a webhook would carry it.
async fn paid_silently(app: &TestApp, cafe24: &Receiver) -> serde_json::Value {
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065", "JPY", cafe24))
        .await;
    app.press(&url, "credit_card").await;
    let session_id = url.rsplit('/').next().unwrap_or_default();
    let payment = app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
    assert_eq!(payment["status"], "captured");
    payment
}

async fn pass(app: &TestApp, backoff: &mut Backoff) -> usize {
    reconciliation::pass(&app.state, &app.settings.reconcile, backoff)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the pass lock was taken"))
}

async fn state(app: &TestApp) -> String {
    app.order(ORDER)
        .await
        .map(|o| o.state.to_string())
        .unwrap_or_default()
}

async fn a_paid_session_without_webhook_is_reconciled_and_told_once(backend: Backend) {
    let app = spawn(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let payment = paid_silently(&app, &cafe24).await;
    let mut backoff = Backoff::default();
    // Too young: a webhook may still come.
    assert_eq!(pass(&app, &mut backoff).await, 0);
    assert_eq!(state(&app).await, "pending");
    app.drain_outbox().await;
    assert!(cafe24.received().is_empty());
    // Past RECONCILE_PENDING_AFTER_SECS (900 s): the pass reads the session.
    app.clock.advance(Duration::from_secs(901));
    assert_eq!(pass(&app, &mut backoff).await, 1);
    assert_eq!(state(&app).await, "paid");
    app.drain_outbox().await;
    let got = cafe24.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (
            got[0].fields["request_type"].as_str(),
            got[0].fields["payed_tf"].as_str(),
            got[0].fields["result_code"].as_str()
        ),
        ("payment", "T", "0000")
    );
    // The webhook arriving afterwards changes nothing more.
    let body = event_body("ev_late_capture", "payment.captured", &payment);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    // And a later pass has nothing left to read.
    app.clock.advance(Duration::from_secs(901));
    assert_eq!(pass(&app, &mut backoff).await, 0);
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 1);
    assert_eq!(app.notifications().await.len(), 1);
}

async fn komoju_failing_during_a_pass_leaves_the_order_for_the_next_pass(backend: Backend) {
    let app = spawn(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    paid_silently(&app, &cafe24).await;
    let mut backoff = Backoff::default();
    app.clock.advance(Duration::from_secs(901));
    app.sandbox.fail_next(1, Fault::InternalError);
    assert_eq!(pass(&app, &mut backoff).await, 0);
    assert_eq!(state(&app).await, "pending");
    app.drain_outbox().await;
    assert!(cafe24.received().is_empty());
    // The merchant is backed off for 30 s: a pass right away leaves KOMOJU alone…
    let reads_before = app.sandbox.requests().len();
    assert_eq!(pass(&app, &mut backoff).await, 0);
    assert_eq!(app.sandbox.requests().len(), reads_before);
    // …and the next pass after it succeeds.
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(pass(&app, &mut backoff).await, 1);
    assert_eq!(state(&app).await, "paid");
    cafe24.wait_for(1, WAIT).await;
    app.drain_outbox().await;
    let got = cafe24.received();
    assert_eq!(got.len(), 1, "{got:?}");
}

/// Two instances on one PostgreSQL never run a pass at once: while another session holds
/// the pass lock, a pass does nothing.
#[actix_web::test]
async fn a_pass_waits_for_no_one_while_another_instance_holds_the_lock() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = spawn(backend).await;
    let db = cafe24_komoju::db::Database::connect(&app.settings.database_url)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut other = db.get().unwrap_or_else(|e| panic!("{e}"));
    assert!(cafe24_komoju::db::try_reconcile_lock(&mut other).unwrap_or_else(|e| panic!("{e}")));
    let mut backoff = Backoff::default();
    let skipped = reconciliation::pass(&app.state, &app.settings.reconcile, &mut backoff)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        skipped, None,
        "a pass ran while another instance held the lock"
    );
    cafe24_komoju::db::release_reconcile_lock(&mut other).unwrap_or_else(|e| panic!("{e}"));
    let ran = reconciliation::pass(&app.state, &app.settings.reconcile, &mut backoff)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ran, Some(0));
}
