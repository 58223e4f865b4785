//! Reconciliation (issue 11; PROTOCOL.md §5, §8): a session KOMOJU completed while no
//! webhook came, a konbini code that expired without its webhook, a card authorization
//! past its capture window are read by a pass and applied through the one state
//! machine, so Cafe24 hears each change exactly once, whoever sees it first. Passes are
//! driven here one at a time, with the service clock moved (the background task is set
//! to a one-hour interval so that it never runs during a test). The sandbox keeps real
//! time; only the service's clock moves, and the sandbox changes a payment only when a
//! test says so (`Sandbox::expire`, `Sandbox::capture`).

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
    a_konbini_code_expiring_without_webhook_is_read_at_its_expiry_and_told_once,
    komoju_failing_while_reading_an_expired_code_leaves_it_for_the_next_pass,
    an_unpaid_code_is_read_once_a_day_and_nothing_changes,
    an_authorized_card_past_the_capture_window_is_read_and_applied,
    orders_of_an_unloadable_merchant_do_not_keep_the_others_waiting,
    a_pass_reads_every_due_order_not_one_batch,
    an_order_never_read_comes_before_orders_read_before,
);

/// An asynchronous order paid by card on the hosted page, whose buyer never came back
/// and whose webhook never came: its payment, as a webhook would carry it.
async fn paid_silently(app: &TestApp, cafe24: &Receiver) -> serde_json::Value {
    let (_, payment) = pay_on_page(app, cafe24, "credit_card").await;
    assert_eq!(payment["status"], "captured");
    payment
}

/// An asynchronous checkout of [`ORDER`] whose buyer presses `method` on the hosted page:
/// where KOMOJU sends the browser back (our callback), and the session's payment.
async fn pay_on_page(
    app: &TestApp,
    cafe24: &Receiver,
    method: &str,
) -> (String, serde_json::Value) {
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065", "JPY", cafe24))
        .await;
    let callback = app.press(&url, method).await;
    let session_id = url.rsplit('/').next().unwrap_or_default();
    let payment = app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
    (callback, payment)
}

/// KOMOJU's webhook `event_type` about `payment`, signed, as the service answers it.
async fn webhook(app: &TestApp, event_id: &str, event_type: &str, payment: &serde_json::Value) {
    let body = event_body(event_id, event_type, payment);
    let signature = komoju_signature(WEBHOOK_SECRET, &body);
    assert_eq!(app.send_webhook(MALL, &body, Some(&signature)).await, 200);
}

/// An asynchronous order paid at a konbini on the hosted page: the code is issued (the
/// payment `authorized`), KOMOJU's `payment.authorized` webhook came, the pending notice
/// reached Cafe24. Returns the payment id.
async fn konbini_code_issued(app: &TestApp, cafe24: &Receiver) -> String {
    let (_, payment) = pay_on_page(app, cafe24, "konbini").await;
    assert_eq!(payment["status"], "authorized");
    webhook(app, "ev_code_issued", "payment.authorized", &payment).await;
    assert_eq!(state(app).await, "awaiting_payment");
    app.drain_outbox().await;
    assert_eq!(notices(cafe24), owned(&[PENDING]));
    payment["id"].as_str().unwrap_or_default().to_owned()
}

/// A manual-capture card payment on the hosted page, whose buyer came back: the order is
/// `authorized` (no notice: Cafe24 hears the capture or the end). Returns the payment id.
async fn card_authorized(app: &TestApp, cafe24: &Receiver) -> String {
    app.sandbox.set_card_manual_capture(true);
    let (callback, _) = pay_on_page(app, cafe24, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);
    assert_eq!(state(app).await, "authorized");
    app.order(ORDER)
        .await
        .and_then(|o| o.komoju_payment_id)
        .unwrap_or_default()
}

/// `(request_type, payed_tf, result_code, amount)` of every notification Cafe24 received,
/// in order.
fn notices(cafe24: &Receiver) -> Vec<(String, String, String, String)> {
    cafe24
        .received()
        .iter()
        .map(|r| {
            let f = |k: &str| r.fields.get(k).cloned().unwrap_or_default();
            (
                f("request_type"),
                f("payed_tf"),
                f("result_code"),
                f("amount"),
            )
        })
        .collect()
}

type Notice = (&'static str, &'static str, &'static str, &'static str);
/// The pending notice of a konbini code (§6.2).
const PENDING: Notice = ("payment", "F", "0000", "3065");
/// The failure notice after it.
const EXPIRED_AFTER_PENDING: Notice = ("notification", "F", "9999", "0");

fn owned(list: &[Notice]) -> Vec<(String, String, String, String)> {
    list.iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect()
}

/// Moves the service clock to `at` (UTC), which must be ahead of it.
fn move_clock_to(app: &TestApp, at: chrono::NaiveDateTime) {
    let by = (at - app.clock.now_naive())
        .to_std()
        .unwrap_or_else(|e| panic!("moving the clock back to {at}: {e}"));
    app.clock.advance(by);
}

/// A pass that finds nothing due: it reads nothing and leaves KOMOJU alone.
async fn nothing_due(app: &TestApp, backoff: &mut Backoff) {
    let reads = app.sandbox.requests().len();
    assert_eq!(pass(app, backoff).await, 0);
    assert_eq!(app.sandbox.requests().len(), reads, "a pass called KOMOJU");
}

async fn pass(app: &TestApp, backoff: &mut Backoff) -> usize {
    pass_for(app, backoff, app.settings.reconcile.budget).await
}

/// A pass whose order reads stop at `budget` (after at least one).
async fn pass_for(app: &TestApp, backoff: &mut Backoff, budget: Duration) -> usize {
    let mut settings = app.settings.reconcile.clone();
    settings.budget = budget;
    reconciliation::pass(&app.state, &settings, backoff)
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
    let app = spawn_quiet(backend).await;
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
    webhook(&app, "ev_late_capture", "payment.captured", &payment).await;
    // And a later pass has nothing left to read.
    app.clock.advance(Duration::from_secs(901));
    assert_eq!(pass(&app, &mut backoff).await, 0);
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 1);
    assert_eq!(app.notifications().await.len(), 1);
}

async fn komoju_failing_during_a_pass_leaves_the_order_for_the_next_pass(backend: Backend) {
    let app = spawn_quiet(backend).await;
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

async fn a_konbini_code_expiring_without_webhook_is_read_at_its_expiry_and_told_once(
    backend: Backend,
) {
    let app = spawn_quiet(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let pid = konbini_code_issued(&app, &cafe24).await;
    // The webhook's payment carried the code's deadline: the order keeps it.
    let deadline = app.sandbox.payment_json(&pid).unwrap_or_default()["payment_deadline"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.naive_utc());
    let expires = app.order(ORDER).await.and_then(|o| o.payment_expires_at);
    assert!(expires.is_some(), "no payment_expires_at stored");
    assert_eq!(expires, deadline);
    let expires = expires.unwrap_or_default();
    let mut backoff = Backoff::default();
    assert_eq!(
        pass(&app, &mut backoff).await,
        0,
        "a fresh code is not read"
    );
    // An hour before the deadline the daily read finds the code still unpaid.
    move_clock_to(&app, expires - chrono::Duration::hours(1));
    assert_eq!(pass(&app, &mut backoff).await, 1);
    assert_eq!(state(&app).await, "awaiting_payment");
    // The deadline passes: KOMOJU expires the payment, its webhook never comes.
    app.sandbox.expire(&pid).unwrap_or_else(|e| panic!("{e}"));
    // Within RECONCILE_EXPIRY_GRACE_SECS (300 s) of the expiry, and read an hour ago:
    // nothing is due yet.
    move_clock_to(&app, expires + chrono::Duration::seconds(299));
    nothing_due(&app, &mut backoff).await;
    assert_eq!(state(&app).await, "awaiting_payment");
    // Past the grace: the pass reads the payment at its expiry, not a day later.
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(pass(&app, &mut backoff).await, 1);
    assert_eq!(state(&app).await, "expired");
    app.drain_outbox().await;
    assert_eq!(notices(&cafe24), owned(&[PENDING, EXPIRED_AFTER_PENDING]));
    // KOMOJU's webhook arriving after the reconciliation changes nothing more.
    let expired = app.sandbox.payment_json(&pid).unwrap_or_default();
    assert_eq!(expired["status"], "expired");
    webhook(&app, "ev_late_expiry", "payment.expired", &expired).await;
    assert_eq!(state(&app).await, "expired");
    app.clock.advance(Duration::from_secs(2 * 24 * 3600));
    nothing_due(&app, &mut backoff).await;
    app.drain_outbox().await;
    assert_eq!(notices(&cafe24), owned(&[PENDING, EXPIRED_AFTER_PENDING]));
    assert_eq!(app.notifications().await.len(), 2);
}

async fn komoju_failing_while_reading_an_expired_code_leaves_it_for_the_next_pass(
    backend: Backend,
) {
    let app = spawn_quiet(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let pid = konbini_code_issued(&app, &cafe24).await;
    let expires = app
        .order(ORDER)
        .await
        .and_then(|o| o.payment_expires_at)
        .unwrap_or_else(|| panic!("no payment_expires_at stored"));
    app.sandbox.expire(&pid).unwrap_or_else(|e| panic!("{e}"));
    move_clock_to(&app, expires + chrono::Duration::seconds(301));
    let mut backoff = Backoff::default();
    app.sandbox.fail_next(1, Fault::InternalError);
    assert_eq!(pass(&app, &mut backoff).await, 0);
    let order = app.order(ORDER).await;
    assert_eq!(state(&app).await, "awaiting_payment");
    assert_eq!(
        order.and_then(|o| o.reconciled_at),
        None,
        "a failed read is no read"
    );
    app.drain_outbox().await;
    assert_eq!(notices(&cafe24), owned(&[PENDING]));
    // Backed off for 30 s: a pass right away leaves KOMOJU alone…
    nothing_due(&app, &mut backoff).await;
    // …and the next pass after it reads the expiry and tells Cafe24 once.
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(pass(&app, &mut backoff).await, 1);
    assert_eq!(state(&app).await, "expired");
    app.drain_outbox().await;
    assert_eq!(notices(&cafe24), owned(&[PENDING, EXPIRED_AFTER_PENDING]));
}

async fn an_unpaid_code_is_read_once_a_day_and_nothing_changes(backend: Backend) {
    let app = spawn_quiet(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    konbini_code_issued(&app, &cafe24).await;
    let mut backoff = Backoff::default();
    // Not a day old yet: not read.
    app.clock.advance(Duration::from_secs(24 * 3600 - 60));
    nothing_due(&app, &mut backoff).await;
    // A day old: read once; KOMOJU still waits for the cash, so nothing changes.
    app.clock.advance(Duration::from_secs(61));
    let before = app.order(ORDER).await;
    assert_eq!(pass(&app, &mut backoff).await, 1);
    let after = app.order(ORDER).await;
    assert_eq!(state(&app).await, "awaiting_payment");
    assert_eq!(
        after.as_ref().map(|o| o.updated_at),
        before.as_ref().map(|o| o.updated_at)
    );
    assert!(after.as_ref().and_then(|o| o.reconciled_at).is_some());
    app.drain_outbox().await;
    assert_eq!(notices(&cafe24), owned(&[PENDING]));
    assert_eq!(app.notifications().await.len(), 1);
    // Not read again the same day…
    nothing_due(&app, &mut backoff).await;
    app.clock.advance(Duration::from_secs(23 * 3600));
    nothing_due(&app, &mut backoff).await;
    // …but the next day.
    app.clock.advance(Duration::from_secs(3600 + 1));
    assert_eq!(pass(&app, &mut backoff).await, 1);
    assert_eq!(state(&app).await, "awaiting_payment");
    app.drain_outbox().await;
    assert_eq!(notices(&cafe24), owned(&[PENDING]));
}

async fn an_authorized_card_past_the_capture_window_is_read_and_applied(backend: Backend) {
    let app = spawn_quiet(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let pid = card_authorized(&app, &cafe24).await;
    let mut backoff = Backoff::default();
    // Within RECONCILE_CAPTURE_WINDOW_SECS (30 days) the merchant may still capture: not
    // read, however many days pass.
    app.clock.advance(Duration::from_secs(30 * 24 * 3600 - 60));
    nothing_due(&app, &mut backoff).await;
    // Past the window: read. KOMOJU has not ended the authorization yet: nothing changes,
    // and the next read is a day later.
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(pass(&app, &mut backoff).await, 1);
    assert_eq!(state(&app).await, "authorized");
    nothing_due(&app, &mut backoff).await;
    // KOMOJU expires the uncaptured authorization; no webhook comes.
    app.sandbox.expire(&pid).unwrap_or_else(|e| panic!("{e}"));
    app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(pass(&app, &mut backoff).await, 1);
    assert_eq!(state(&app).await, "expired");
    app.drain_outbox().await;
    assert_eq!(notices(&cafe24), owned(&[("payment", "F", "9999", "0")]));
    // Its end is final: nothing more is read or told.
    app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    nothing_due(&app, &mut backoff).await;
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 1);
}

/// Two instances on one PostgreSQL never run a pass at once: while another session holds
/// the pass lock, a pass does nothing.
#[actix_web::test]
#[cfg_attr(
    not(test_postgres),
    ignore = "PostgreSQL only: set TEST_POSTGRES_URL (then cargo rebuilds the tests)"
)]
async fn a_pass_waits_for_no_one_while_another_instance_holds_the_lock() {
    let backend = Backend::postgres();
    let app = spawn_quiet(backend).await;
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

/// A merchant whose KOMOJU secret can no longer be opened (a rotated `APP_SECRET`, a
/// damaged row) cannot be read for: its orders are recorded as read all the same, so
/// that more of them than a batch, older than everything else, do not keep another
/// merchant's silently paid order from its pass (they came first in every batch before).
async fn orders_of_an_unloadable_merchant_do_not_keep_the_others_waiting(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("RECONCILE_INTERVAL_MS", "3600000"),
            ("MERCHANT_CACHE_SECS", "0"),
        ],
    )
    .await;
    app.add_merchant(&MerchantAdd::mall("brokenmall")).await;
    for n in 0..21 {
        let order_id = format!("20261201-09{n:05}");
        let hash = cafe24_hash(&["1200", "JPY", &order_id, "brokenmall:1:p"]);
        let fields: Vec<(String, String)> = [
            ("partner_id", "brokenmall:1:p"),
            ("order_id", &order_id),
            ("amount", "1200"),
            ("currency", "JPY"),
            ("return_url", &RETURN_URL.replace("demomall", "brokenmall")),
            ("shop_no", "1"),
            ("hash_data", &hash),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        app.sync_checkout_ok(&fields).await;
    }
    app.clock.advance(Duration::from_secs(1));
    let cafe24 = Receiver::spawn(app.clock.clone());
    paid_silently(&app, &cafe24).await;
    app.state
        .db
        .run(|c| {
            use diesel::RunQueryDsl;
            let sql = "UPDATE merchants SET komoju_secret_key = 'not a sealed secret' \
                       WHERE mall_id = 'brokenmall'";
            let updated = match c {
                cafe24_komoju::db::DbConnection::Postgres(c) => diesel::sql_query(sql).execute(c),
                cafe24_komoju::db::DbConnection::Sqlite(c) => diesel::sql_query(sql).execute(c),
            };
            Ok(updated?)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut backoff = Backoff::default();
    app.clock.advance(Duration::from_secs(901));
    // The broken merchant's 21 orders are the oldest: none can be read, each is recorded
    // as read, and the pass goes on to the paid order.
    assert_eq!(pass(&app, &mut backoff).await, 1);
    assert_eq!(state(&app).await, "paid");
    // Recorded as read, they wait their interval: the next pass reads nothing.
    nothing_due(&app, &mut backoff).await;
}

/// `n` synchronous checkouts of the demo mall whose buyers never pay: `pending` orders
/// with a KOMOJU session that stays open.
async fn abandoned(app: &TestApp, n: usize) {
    for k in 0..n {
        app.sync_checkout_ok(&checkout_fields(
            &format!("20261201-08{k:05}"),
            "1500",
            "JPY",
        ))
        .await;
    }
}

/// More orders due than one query returns (20): a pass reads on, batch after batch,
/// within its budget, and reaches the silently paid order behind them (a pass read
/// the 20 oldest and stopped before, three times fewer than the modelled demand).
async fn a_pass_reads_every_due_order_not_one_batch(backend: Backend) {
    let app = spawn_quiet(backend).await;
    abandoned(&app, 25).await;
    app.clock.advance(Duration::from_secs(1));
    let cafe24 = Receiver::spawn(app.clock.clone());
    paid_silently(&app, &cafe24).await;
    app.clock.advance(Duration::from_secs(901));
    let mut backoff = Backoff::default();
    assert_eq!(pass(&app, &mut backoff).await, 26);
    assert_eq!(state(&app).await, "paid");
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 1, "Cafe24 hears the payment once");
    nothing_due(&app, &mut backoff).await;
}

/// Abandoned checkouts are read again every 15 minutes until KOMOJU ends their session;
/// an order no pass has read yet (a buyer who paid and closed the browser) is read
/// before any of them, whatever their age: with a budget for one read, that read is the
/// paid order's.
async fn an_order_never_read_comes_before_orders_read_before(backend: Backend) {
    let app = spawn_quiet(backend).await;
    abandoned(&app, 3).await;
    app.clock.advance(Duration::from_secs(901));
    let mut backoff = Backoff::default();
    assert_eq!(pass(&app, &mut backoff).await, 3, "read once, still open");
    let cafe24 = Receiver::spawn(app.clock.clone());
    paid_silently(&app, &cafe24).await;
    app.clock.advance(Duration::from_secs(901));
    // All four are due; the three were read before, the paid order never was.
    assert_eq!(pass_for(&app, &mut backoff, Duration::ZERO).await, 1);
    assert_eq!(state(&app).await, "paid");
    // The next passes read the others again, one each, oldest read first.
    for _ in 0..3 {
        assert_eq!(pass_for(&app, &mut backoff, Duration::ZERO).await, 1);
    }
    nothing_due(&app, &mut backoff).await;
}
