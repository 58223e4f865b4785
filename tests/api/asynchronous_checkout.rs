//! Asynchronous checkout, KOMOJU webhooks and notifications to Cafe24 (PROTOCOL.md §5,
//! §6.2, §8, §9).

use std::time::Duration;

use crate::both_backends;
use crate::helpers::*;

const ORDER: &str = "20220519-0000029";
const WAIT: Duration = Duration::from_secs(5);

both_backends!(
    card_capture_sends_exactly_one_payment_notification,
    konbini_pending_then_paid_then_another_expired,
    one_webhook_delivered_fifty_times_concurrently_changes_once,
    stale_authorized_after_capture_changes_nothing,
    bad_signatures_are_refused_and_store_nothing,
    ping_and_unknown_payments_are_acknowledged,
    cafe24_down_twice_is_delivered_on_the_third_attempt_on_schedule,
    cafe24_down_forever_goes_dead_then_retry_delivers,
    async_callback_redirects_without_notifying_twice,
);

/// Presses `method` on the sandbox's hosted page (without following the redirect to our
/// callback) and returns the payment JSON.
async fn pay(app: &TestApp, payment_url: &str, method: &str) -> serde_json::Value {
    pay_and_return(app, payment_url, method).await.1
}

/// As [`pay`], also returning the callback URL KOMOJU sends the browser to.
async fn pay_and_return(
    app: &TestApp,
    payment_url: &str,
    method: &str,
) -> (String, serde_json::Value) {
    let callback = app.press(payment_url, method).await;
    let session_id = payment_url.rsplit('/').next().unwrap_or_default();
    let session = app.sandbox.session_json(session_id).unwrap_or_default();
    (callback, session["payment"].clone())
}

fn check_h3(fields: &std::collections::HashMap<String, String>) {
    let expected = cafe24_hash(&[
        &fields["amount"],
        &fields["currency"],
        &fields["order_id"],
        &fields["partner_id"],
        &fields["tid"],
    ]);
    assert_eq!(fields["hash_data"], expected, "H3 of {fields:?}");
}

async fn card_capture_sends_exactly_one_payment_notification(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let mut fields = async_fields(ORDER, "3065.00", "PHP", &cafe24);
    fields.push(("extra_data".into(), r#"{"pgName":"komoju"}"#.into()));
    let url = app.async_checkout_ok(&fields).await;
    let (callback, payment) = pay_and_return(&app, &url, "credit_card").await;
    assert_eq!(payment["status"], "captured");
    let body = event_body("ev_card_1", "payment.captured", &payment);
    let sig = komoju_signature(WEBHOOK_SECRET, &body);
    assert_eq!(app.send_webhook(MALL, &body, Some(&sig)).await, 200);
    let got = cafe24.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let f = &got[0].fields;
    assert_eq!(got[0].path, "/noty");
    assert_eq!(f["request_type"], "payment");
    assert_eq!(f["payed_tf"], "T");
    assert_eq!(f["result_code"], "0000");
    assert_eq!(f["amount"], "3065.00");
    assert_eq!(f["currency"], "PHP");
    assert_eq!(f["order_id"], ORDER);
    assert_eq!(f["partner_id"], "demomall:1:demo-public");
    assert_eq!(f["paymethod"], "card");
    assert_eq!(f["tid"], payment["id"].as_str().unwrap_or_default());
    assert_eq!(f["easypay"], "F");
    assert_eq!(f["escrow_tf"], "F");
    assert_eq!(f["all_cancel_tf"], "T");
    assert_eq!(f["part_cancel_tf"], "T");
    assert_eq!(f["extra_data"], r#"{"pgName":"komoju"}"#);
    check_h3(f);
    // The buyer's return afterwards changes nothing and sends nothing more.
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.as_str(), "paid");
    let resp = app.get(&callback).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(query_of(&location(&resp))["result_code"], "0000");
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 1);
    let rows = app.notifications().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state.as_str(), "delivered");
    assert_eq!(rows[0].attempts, 1);
}

async fn konbini_pending_then_paid_then_another_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065", "JPY", &cafe24))
        .await;
    let session_id = url.rsplit('/').next().unwrap_or_default().to_owned();
    let offered =
        app.sandbox.session_json(&session_id).unwrap_or_default()["payment_methods"].to_string();
    assert!(
        offered.contains("konbini"),
        "async checkout offers konbini: {offered}"
    );
    let authorized = pay(&app, &url, "konbini").await;
    assert_eq!(authorized["status"], "authorized");
    let body = event_body("ev_k_auth", "payment.authorized", &authorized);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    let got = cafe24.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].fields["request_type"], "payment");
    assert_eq!(got[0].fields["payed_tf"], "F");
    assert_eq!(got[0].fields["result_code"], "0000");
    assert_eq!(got[0].fields["amount"], "3065");
    assert_eq!(got[0].fields["paymethod"], "etc");
    check_h3(&got[0].fields);
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("awaiting_payment".into())
    );

    // The buyer pays at the store.
    let pid = authorized["id"].as_str().unwrap_or_default().to_owned();
    app.sandbox.capture(&pid).unwrap_or_else(|e| panic!("{e}"));
    let captured = app.sandbox.payment_json(&pid).unwrap_or_default();
    let body = event_body("ev_k_cap", "payment.captured", &captured);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    let got = cafe24.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].fields["request_type"], "notification");
    assert_eq!(got[1].fields["payed_tf"], "T");
    assert_eq!(got[1].fields["result_code"], "0000");
    assert_eq!(got[1].fields["amount"], "3065");
    check_h3(&got[1].fields);

    // Another order: authorized, then the deadline passes.
    let other = "20220519-0000099";
    let url2 = app
        .async_checkout_ok(&async_fields(other, "500", "JPY", &cafe24))
        .await;
    let auth2 = pay(&app, &url2, "konbini").await;
    let body = event_body("ev_k2_auth", "payment.authorized", &auth2);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    let pid2 = auth2["id"].as_str().unwrap_or_default().to_owned();
    app.sandbox.expire(&pid2).unwrap_or_else(|e| panic!("{e}"));
    let expired = app.sandbox.payment_json(&pid2).unwrap_or_default();
    let body = event_body("ev_k2_exp", "payment.expired", &expired);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    let got = cafe24.wait_for(4, WAIT).await;
    let for_other: Vec<_> = got
        .iter()
        .filter(|r| r.fields["order_id"] == other)
        .collect();
    assert_eq!(for_other.len(), 2);
    assert_eq!(for_other[0].fields["request_type"], "payment");
    assert_eq!(for_other[0].fields["payed_tf"], "F");
    assert_eq!(for_other[1].fields["request_type"], "notification");
    assert_eq!(for_other[1].fields["payed_tf"], "F");
    assert_eq!(for_other[1].fields["result_code"], "9999");
    assert_eq!(for_other[1].fields["amount"], "0");
    check_h3(&for_other[1].fields);
    assert_eq!(
        app.order(other).await.map(|o| o.state.to_string()),
        Some("expired".into())
    );
}

async fn one_webhook_delivered_fifty_times_concurrently_changes_once(backend: Backend) {
    // All fifty admitted at once (MAX_IN_FLIGHT_WEBHOOKS's refusals are
    // tests/api/overload.rs's).
    let app = spawn_app_with(backend, &[("MAX_IN_FLIGHT_WEBHOOKS", "100")]).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065.00", "PHP", &cafe24))
        .await;
    let payment = pay(&app, &url, "credit_card").await;
    let body = event_body("ev_replay", "payment.captured", &payment);
    let sig = komoju_signature(WEBHOOK_SECRET, &body);
    let statuses =
        futures_util::future::join_all((0..50).map(|_| app.send_webhook(MALL, &body, Some(&sig))))
            .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    cafe24.wait_for(1, WAIT).await;
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 1);
    assert_eq!(app.notifications().await.len(), 1);
    assert_eq!(app.webhook_event_count().await, 1);
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    let events = app
        .state
        .db
        .run(move |c| cafe24_komoju::db::orders::events(c, &order.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.iter().filter(|e| e.applied).count(), 1, "{events:?}");
}

async fn stale_authorized_after_capture_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065", "JPY", &cafe24))
        .await;
    let authorized = pay(&app, &url, "konbini").await;
    let pid = authorized["id"].as_str().unwrap_or_default().to_owned();
    app.sandbox.capture(&pid).unwrap_or_else(|e| panic!("{e}"));
    let captured = app.sandbox.payment_json(&pid).unwrap_or_default();
    // Captured arrives first, the stale authorized after it.
    let body = event_body("ev_cap", "payment.captured", &captured);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    let body = event_body("ev_auth_late", "payment.authorized", &authorized);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    cafe24.wait_for(1, WAIT).await;
    app.drain_outbox().await;
    let got = cafe24.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].fields["request_type"], "payment");
    assert_eq!(got[0].fields["payed_tf"], "T");
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("paid".into())
    );
}

async fn bad_signatures_are_refused_and_store_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065.00", "PHP", &cafe24))
        .await;
    let payment = pay(&app, &url, "credit_card").await;
    let body = event_body("ev_sig", "payment.captured", &payment);
    let good = komoju_signature(WEBHOOK_SECRET, &body);
    let mut flipped = body.clone();
    let i = flipped.len() / 2;
    flipped[i] ^= 0x01;
    assert_eq!(
        app.send_webhook(MALL, &flipped, Some(&good)).await,
        401,
        "flipped byte"
    );
    assert_eq!(
        app.send_webhook(MALL, &body, None).await,
        401,
        "missing header"
    );
    let wrong = komoju_signature("whsec_someone_else_0000", &body);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&wrong)).await,
        401,
        "wrong secret"
    );
    let reserialised = serde_json::to_vec_pretty(
        &serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(
        app.send_webhook(MALL, &reserialised, Some(&good)).await,
        401,
        "re-serialised JSON"
    );
    assert_eq!(
        app.send_webhook("nomall", &body, Some(&good)).await,
        404,
        "unknown mall"
    );
    assert_eq!(app.webhook_event_count().await, 0);
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("pending".into())
    );
    app.drain_outbox().await;
    assert!(cafe24.received().is_empty());
    assert!(app.notifications().await.is_empty());
    // The genuine one still works afterwards.
    assert_eq!(app.send_webhook(MALL, &body, Some(&good)).await, 200);
    assert_eq!(cafe24.wait_for(1, WAIT).await.len(), 1);
}

async fn ping_and_unknown_payments_are_acknowledged(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = serde_json::to_vec(
        &serde_json::json!({"id": "ev_ping", "type": "ping", "resource": "event", "data": {}}),
    )
    .unwrap_or_default();
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    let stranger = serde_json::json!({"id": "paymentnotours00000000000", "resource": "payment", "status": "captured",
        "amount": 100, "currency": "JPY", "session": "sessionnotours0000000000", "payment_details": {"type": "credit_card"},
        "external_order_num": "nope", "metadata": {}, "amount_refunded": 0});
    let body = event_body("ev_stranger", "payment.captured", &stranger);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    assert_eq!(app.order_count().await, 0);
    assert!(app.notifications().await.is_empty());
}

async fn cafe24_down_twice_is_delivered_on_the_third_attempt_on_schedule(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    cafe24.fail_next(2);
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065.00", "PHP", &cafe24))
        .await;
    let payment = pay(&app, &url, "credit_card").await;
    let body = event_body("ev_down", "payment.captured", &payment);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    assert_eq!(cafe24.wait_for(1, WAIT).await.len(), 1);
    app.outbox_settled().await;
    // Not before its time: 10 s ± 10 % after the first attempt.
    app.clock.advance(Duration::from_secs(8));
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 1, "retried before 9 s");
    app.clock.advance(Duration::from_secs(3));
    assert_eq!(cafe24.wait_for(2, WAIT).await.len(), 2);
    app.outbox_settled().await;
    // Then 60 s ± 10 %.
    app.clock.advance(Duration::from_secs(50));
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 2, "retried before 54 s");
    app.clock.advance(Duration::from_secs(17));
    let got = cafe24.wait_for(3, WAIT).await;
    assert_eq!(got.len(), 3);
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        vec![500, 500, 200]
    );
    let gap1 = (got[1].at - got[0].at).num_milliseconds();
    let gap2 = (got[2].at - got[1].at).num_milliseconds();
    assert!(
        (9_000..=11_500).contains(&gap1),
        "first retry after {gap1} ms"
    );
    assert!(
        (54_000..=67_500).contains(&gap2),
        "second retry after {gap2} ms"
    );
    app.drain_outbox().await;
    let rows = app.notifications().await;
    assert_eq!(rows[0].state.as_str(), "delivered");
    assert_eq!(rows[0].attempts, 3);
    assert_eq!(
        got.iter()
            .map(|r| r.fields["hash_data"].clone())
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1
    );
}

async fn cafe24_down_forever_goes_dead_then_retry_delivers(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    cafe24.fail_always(true);
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065.00", "PHP", &cafe24))
        .await;
    let payment = pay(&app, &url, "credit_card").await;
    let body = event_body("ev_dead", "payment.captured", &payment);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    assert_eq!(cafe24.wait_for(1, WAIT).await.len(), 1);
    for (i, step) in cafe24_komoju::notifications::SCHEDULE.iter().enumerate() {
        app.outbox_settled().await;
        app.clock.advance(*step + *step / 9);
        assert_eq!(
            cafe24.wait_for(i + 2, WAIT).await.len(),
            i + 2,
            "attempt {}",
            i + 2
        );
    }
    app.outbox_settled().await;
    app.drain_outbox().await;
    let rows = app.notifications().await;
    assert_eq!(rows[0].state.as_str(), "dead");
    assert_eq!(rows[0].attempts, 9);
    assert_eq!(rows[0].last_status, Some(500));
    // Nothing more is tried, however long we wait.
    app.clock.advance(Duration::from_secs(7 * 24 * 3600));
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 9);
    let dead = app.cli(&["notifications", "list", "--state", "dead"]).await;
    assert!(
        dead.contains(&format!("{} dead return_noty", rows[0].id)),
        "{dead}"
    );
    // The operator fixes Cafe24 and replays it.
    cafe24.fail_always(false);
    let out = app
        .cli(&["notifications", "retry", &rows[0].id.to_string()])
        .await;
    assert!(out.contains("due now"), "{out}");
    assert_eq!(cafe24.wait_for(10, WAIT).await.len(), 10);
    app.drain_outbox().await;
    assert_eq!(app.notifications().await[0].state.as_str(), "delivered");
}

async fn async_callback_redirects_without_notifying_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065.00", "PHP", &cafe24))
        .await;
    // The buyer comes back first: the callback's session read records the capture and
    // enqueues the one notification.
    let callback = app.press(&url, "credit_card").await;
    let resp = app.get(&callback).await;
    assert_eq!(resp.status(), 302);
    let q = query_of(&location(&resp));
    assert_eq!(q["result_code"], "0000");
    assert!(!q.contains_key("key"));
    assert_eq!(cafe24.wait_for(1, WAIT).await.len(), 1);
    // The webhook that follows changes nothing and sends nothing.
    let session_id = url.rsplit('/').next().unwrap_or_default();
    let payment = app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
    let body = event_body("ev_after_callback", "payment.captured", &payment);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 1);
    // A cancelled session: 9999 and one failure notice.
    let other = "20220519-0000050";
    let url2 = app
        .async_checkout_ok(&async_fields(other, "10.00", "PHP", &cafe24))
        .await;
    let callback2 = app.press(&url2, "return").await;
    let resp = app.get(&callback2).await;
    assert_eq!(query_of(&location(&resp))["result_code"], "9999");
    let got = cafe24.wait_for(2, WAIT).await;
    assert_eq!(got[1].fields["order_id"], other);
    assert_eq!(got[1].fields["payed_tf"], "F");
    assert_eq!(got[1].fields["result_code"], "9999");
    // Async checkout without return_noty_url is refused.
    let resp = app
        .async_checkout(&checkout_fields("20220519-0000051", "10.00", "PHP"))
        .await;
    assert_eq!(resp.status(), 400);
}

both_backends!(sandbox_webhooks_drive_konbini_and_card_end_to_end);

/// The KOMOJU sandbox sends its own signed webhooks: no test-made event at all.
async fn sandbox_webhooks_drive_konbini_and_card_end_to_end(backend: Backend) {
    let app = spawn_app(backend).await;
    app.route_sandbox_webhooks();
    let cafe24 = Receiver::spawn(app.clock.clone());
    // Konbini: the buyer takes a payment slip and never comes back to the mall.
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065", "JPY", &cafe24))
        .await;
    let authorized = pay(&app, &url, "konbini").await;
    let got = cafe24.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (
            got[0].fields["request_type"].as_str(),
            got[0].fields["payed_tf"].as_str()
        ),
        ("payment", "F")
    );
    app.sandbox
        .capture(authorized["id"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let got = cafe24.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        (
            got[1].fields["request_type"].as_str(),
            got[1].fields["payed_tf"].as_str()
        ),
        ("notification", "T")
    );
    check_h3(&got[1].fields);
    // Card: the webhook and the buyer's return race; Cafe24 hears once.
    let other = "20220519-0000077";
    let url2 = app
        .async_checkout_ok(&async_fields(other, "1200.50", "PHP", &cafe24))
        .await;
    let callback = app.press(&url2, "credit_card").await;
    let resp = app.get(&callback).await;
    assert_eq!(query_of(&location(&resp))["result_code"], "0000");
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    let for_other: Vec<_> = cafe24
        .received()
        .into_iter()
        .filter(|r| r.fields["order_id"] == other)
        .collect();
    assert_eq!(for_other.len(), 1, "{for_other:?}");
    assert_eq!(for_other[0].fields["amount"], "1200.50");
    assert_eq!(
        app.sandbox
            .deliveries()
            .iter()
            .filter(|d| d.status != 200)
            .count(),
        0
    );
}
