//! Synchronous and asynchronous cancellations (PROTOCOL.md §6.4, §6.5): refunds, partial
//! refunds, cancels before capture, konbini, never twice.

use std::collections::HashMap;
use std::time::Duration;

use cafe24_komoju_sandbox::Fault;

use crate::both_backends;
use crate::helpers::*;

const ORDER: &str = "20220519-0000029";
const WAIT: Duration = Duration::from_secs(5);

both_backends!(
    full_refund_of_a_card_order,
    partial_refunds_add_up_then_more_is_refused,
    cancel_before_capture_cancels_at_komoju,
    a_refund_komoju_refuses_is_not_refundable_and_nothing_is_recorded,
    requests_that_do_not_fit_call_nobody,
    twenty_identical_cancels_refund_once_and_a_late_repeat_refunds_again,
    komoju_failure_then_retry_refunds_once,
    async_refund_is_confirmed_by_webhook_once,
    async_refund_without_webhook_is_confirmed_by_reconciliation,
    refund_made_in_the_komoju_dashboard_follows_and_is_reported,
    aliases_serve_the_same_routes,
);

fn check_h4(f: &HashMap<String, String>) {
    let expected = cafe24_hash(&[
        &f["cancel_amount"],
        &f["currency"],
        &f["order_id"],
        &f["partner_id"],
        &f["tid"],
    ]);
    assert_eq!(f["hash_data"], expected, "H4 of {f:?}");
}

async fn full_refund_of_a_card_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let tid = app.paid_order(ORDER, "3065.00", "PHP", "credit_card").await;
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "3065.00", "PHP"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result_code"], "0000");
    let refunds = app.komoju_refunds(&tid);
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["amount"], 306500);
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.as_str(), "refunded");
    assert_eq!(order.refunded_amount, 306500);
}

async fn partial_refunds_add_up_then_more_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let tid = app.paid_order(ORDER, "3065.00", "PHP", "credit_card").await;
    let (status, _) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "1000.00", "PHP"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.order(ORDER)
            .await
            .map(|o| (o.state.to_string(), o.refunded_amount)),
        Some(("partially_refunded".into(), 100000))
    );
    let (status, _) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "2065.00", "PHP"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.order(ORDER)
            .await
            .map(|o| (o.state.to_string(), o.refunded_amount)),
        Some(("refunded".into(), 306500))
    );
    let posts_before = app.komoju_posts().len();
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "0.01", "PHP"))
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"], "order_conflict",
        "a refunded order has nothing left: {body}"
    );
    assert_eq!(app.komoju_posts().len(), posts_before);
    assert_eq!(app.komoju_refunds(&tid).len(), 2);

    // On another order: more than what is left after a partial refund.
    let other = "20220519-0000030";
    let tid2 = app.paid_order(other, "100", "JPY", "credit_card").await;
    assert_eq!(
        app.sync_cancel(&cancel_fields(other, &tid2, "60", "JPY"))
            .await
            .0,
        200
    );
    let (status, body) = app
        .sync_cancel(&cancel_fields(other, &tid2, "41", "JPY"))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "amount_exceeds_refundable");
    assert!(
        body["result_message"]
            .as_str()
            .unwrap_or_default()
            .contains("40"),
        "{body}"
    );
    assert_eq!(app.komoju_refunds(&tid2).len(), 1);
    assert_eq!(
        app.order(other).await.map(|o| o.state.to_string()),
        Some("partially_refunded".into())
    );
}

async fn cancel_before_capture_cancels_at_komoju(backend: Backend) {
    let app = spawn_app(backend).await;
    // A card authorized, not captured (merchant on manual capture).
    app.sandbox.set_card_manual_capture(true);
    let tid = app.paid_order(ORDER, "3065.00", "PHP", "credit_card").await;
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("authorized".into())
    );
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "1000.00", "PHP"))
        .await;
    assert_eq!(status, 409, "partial cancel of an authorization: {body}");
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "3065.00", "PHP"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.sandbox.payment_json(&tid).unwrap_or_default()["status"],
        "cancelled"
    );
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("cancelled".into())
    );
    assert!(app.komoju_refunds(&tid).is_empty());

    // A konbini code not paid yet (asynchronous checkout).
    let cafe24 = Receiver::spawn(app.clock.clone());
    let other = "20220519-0000031";
    let url = app
        .async_checkout_ok(&async_fields(other, "5000", "JPY", &cafe24))
        .await;
    app.press(&url, "konbini").await;
    let session_id = url.rsplit('/').next().unwrap_or_default();
    let payment = app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
    let tid2 = payment["id"].as_str().unwrap_or_default().to_owned();
    let body = event_body("ev_k", "payment.authorized", &payment);
    assert_eq!(
        app.send_webhook(MALL, &body, Some(&komoju_signature(WEBHOOK_SECRET, &body)))
            .await,
        200
    );
    assert_eq!(
        app.order(other).await.map(|o| o.state.to_string()),
        Some("awaiting_payment".into())
    );
    let (status, body) = app
        .sync_cancel(&cancel_fields(other, &tid2, "5000", "JPY"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.sandbox.payment_json(&tid2).unwrap_or_default()["status"],
        "cancelled"
    );
    assert_eq!(
        app.order(other).await.map(|o| o.state.to_string()),
        Some("cancelled".into())
    );
}

/// §3 `not_refundable`: KOMOJU itself refuses the refund (here: the payment was refunded
/// in full in KOMOJU's dashboard, and its webhook has not arrived). The refusal is passed
/// on, nothing is recorded as refunded, and a repeat gets the same answer.
async fn a_refund_komoju_refuses_is_not_refundable_and_nothing_is_recorded(backend: Backend) {
    let app = spawn_app(backend).await;
    let tid = app.paid_order(ORDER, "3065.00", "PHP", "credit_card").await;
    let dashboard = app
        .client
        .post(format!("{}/payments/{tid}/refund", app.state.komoju.base()))
        .basic_auth("sk_test_demomall_0123456789", Some(""))
        .header("X-KOMOJU-IDEMPOTENCY", "dashboard-refund")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dashboard.status(), 200);
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "3065.00", "PHP"))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "not_refundable");
    assert!(
        body["result_message"]
            .as_str()
            .unwrap_or_default()
            .contains("not_refundable"),
        "{body}"
    );
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.as_str(), "paid");
    assert_eq!(order.refunded_amount, 0);
    assert_eq!(
        app.komoju_refunds(&tid).len(),
        1,
        "only the dashboard's refund"
    );
    // Asked again: the same answer, KOMOJU not asked twice.
    let refund_calls = |app: &TestApp| {
        app.sandbox
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/refund"))
            .count()
    };
    let before = refund_calls(&app);
    let (status, _) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "3065.00", "PHP"))
        .await;
    assert_eq!(status, 422);
    assert_eq!(refund_calls(&app), before);
}

async fn requests_that_do_not_fit_call_nobody(backend: Backend) {
    let app = spawn_app(backend).await;
    let tid = app.paid_order(ORDER, "3065.00", "PHP", "credit_card").await;
    let pending = "20220519-0000040";
    app.sync_checkout_ok(&checkout_fields(pending, "100.00", "PHP"))
        .await;
    app.add_merchant(
        &MerchantAdd::mall("othermall")
            .public_ref("demo-public")
            .secret_key("sk_test_othermall_0123456")
            .webhook_secret("whsec_othermall_01234"),
    )
    .await;
    let posts_before = app.komoju_posts().len();

    let (status, body) = app
        .sync_cancel(&cancel_fields(
            ORDER,
            "someoneelsespayment000000",
            "3065.00",
            "PHP",
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("tid_mismatch"))
    );
    let mut bad = cancel_fields(ORDER, &tid, "3065.00", "PHP");
    set(
        &mut bad,
        "hash_data",
        &cafe24_hash(&["3065.00", "PHP", ORDER, "demomall:1:demo-public", "x"]),
    );
    let (status, body) = app.sync_cancel(&bad).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_hash"))
    );
    let mut tampered = cancel_fields(ORDER, &tid, "3065.00", "PHP");
    set(&mut tampered, "cancel_amount", "1.00");
    assert_eq!(app.sync_cancel(&tampered).await.0, 401);
    // Another mall's partner_id, correctly signed: the order is not theirs.
    let partner = "othermall:1:demo-public";
    let mut other = cancel_fields(ORDER, &tid, "3065.00", "PHP");
    set(&mut other, "partner_id", partner);
    set(
        &mut other,
        "hash_data",
        &cafe24_hash(&["3065.00", "PHP", ORDER, partner, &tid]),
    );
    let (status, body) = app.sync_cancel(&other).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("order_not_found"))
    );
    // Not paid yet.
    let (status, body) = app
        .sync_cancel(&cancel_fields(pending, "", "100.00", "PHP"))
        .await;
    assert_eq!(status, 400, "tid is required: {body}");
    let (status, body) = app
        .sync_cancel(&cancel_fields(
            pending,
            "nopaymentyet0000000000000",
            "100.00",
            "PHP",
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("tid_mismatch"))
    );
    // Money that does not parse, another currency, async without cancel_noty_url.
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "0", "PHP"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_amount"))
    );
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "3065.00", "USD"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("order_conflict"))
    );
    let (status, _) = app
        .async_cancel(&cancel_fields(ORDER, &tid, "3065.00", "PHP"))
        .await;
    assert_eq!(status, 400);
    let mut evil = cancel_fields(ORDER, &tid, "3065.00", "PHP");
    evil.push((
        "cancel_noty_url".into(),
        "https://x.cafe24.com.evil.example/n".into(),
    ));
    let (status, body) = app.async_cancel(&evil).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("url_not_allowed"))
    );

    assert_eq!(
        app.komoju_posts().len(),
        posts_before,
        "a refused request called KOMOJU"
    );
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("paid".into())
    );
    assert!(app.komoju_refunds(&tid).is_empty());
}

async fn twenty_identical_cancels_refund_once_and_a_late_repeat_refunds_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let tid = app.paid_order(ORDER, "3000", "JPY", "credit_card").await;
    let fields = cancel_fields(ORDER, &tid, "1000", "JPY");
    let replies = futures_util::future::join_all((0..20).map(|_| app.sync_cancel(&fields))).await;
    assert!(replies.iter().all(|r| r == &replies[0]), "{replies:?}");
    assert_eq!(replies[0].0, 200);
    assert_eq!(
        app.komoju_refunds(&tid).len(),
        1,
        "KOMOJU refunded more than once"
    );
    // Within 10 minutes: the first reply, nothing more.
    app.clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(app.sync_cancel(&fields).await, replies[0]);
    assert_eq!(app.komoju_refunds(&tid).len(), 1);
    // 11 minutes after the first: a new refund, since money is left.
    app.clock.advance(Duration::from_secs(2 * 60));
    let (status, _) = app.sync_cancel(&fields).await;
    assert_eq!(status, 200);
    assert_eq!(app.komoju_refunds(&tid).len(), 2);
    assert_eq!(
        app.order(ORDER).await.map(|o| o.refunded_amount),
        Some(2000)
    );
}

async fn komoju_failure_then_retry_refunds_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let tid = app.paid_order(ORDER, "3000", "JPY", "credit_card").await;
    let fields = cancel_fields(ORDER, &tid, "3000", "JPY");
    // 500 before KOMOJU processed anything.
    app.sandbox.fail_next(1, Fault::InternalError);
    let (status, body) = app.sync_cancel(&fields).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("upstream_error"))
    );
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("paid".into())
    );
    // KOMOJU refunds but its answer comes after our timeout.
    app.sandbox
        .fail_next(1, Fault::DelayAfterProcessing(Duration::from_secs(4)));
    let (status, body) = app.sync_cancel(&fields).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("upstream_error"))
    );
    assert_eq!(app.komoju_refunds(&tid).len(), 1, "KOMOJU did refund");
    // Cafe24 retries: the same idempotency key, no second refund, success.
    let (status, body) = app.sync_cancel(&fields).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.komoju_refunds(&tid).len(), 1);
    let keys: std::collections::HashSet<_> = app
        .komoju_posts()
        .into_iter()
        .filter(|r| r.path.ends_with("/refund"))
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys.len(), 1, "every try used the request's one key");
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("refunded".into())
    );
}

/// A paid async-flow order whose payment the sandbox sends webhooks for.
async fn paid_async_order(
    app: &TestApp,
    cafe24: &Receiver,
    order_id: &str,
    amount: &str,
) -> String {
    let url = app
        .async_checkout_ok(&async_fields(order_id, amount, "JPY", cafe24))
        .await;
    let callback = app.press(&url, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);
    app.order(order_id)
        .await
        .and_then(|o| o.komoju_payment_id)
        .unwrap_or_default()
}

async fn async_refund_is_confirmed_by_webhook_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let tid = paid_async_order(&app, &cafe24, ORDER, "3000").await;
    assert_eq!(
        cafe24.wait_for(1, WAIT).await.len(),
        1,
        "the payment notification"
    );
    app.route_sandbox_webhooks();
    let mut fields = cancel_fields(ORDER, &tid, "3000", "JPY");
    fields.push(("cancel_noty_url".into(), cafe24.url("/cancel-noty")));
    let (status, body) = app.async_cancel(&fields).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result_code"], "0000");
    // KOMOJU sends payment.refund.created and payment.refunded at once for a full refund.
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    let kinds: Vec<String> = app
        .sandbox
        .deliveries()
        .iter()
        .map(|d| d.event_type.clone())
        .collect();
    assert!(
        kinds.contains(&"payment.refund.created".to_owned())
            && kinds.contains(&"payment.refunded".to_owned()),
        "{kinds:?}"
    );
    let got = cafe24.wait_for(2, WAIT).await;
    app.drain_outbox().await;
    let cancels: Vec<_> = cafe24
        .received()
        .into_iter()
        .filter(|r| r.path == "/cancel-noty")
        .collect();
    assert_eq!(cancels.len(), 1, "{got:?}");
    let f = &cancels[0].fields;
    assert_eq!(f["request_type"], "cancelnoty");
    assert_eq!(f["status"], "P");
    assert_eq!(f["result_code"], "0000");
    assert_eq!(f["cancel_amount"], "3000");
    assert_eq!(f["tid"], tid);
    assert_eq!(f["order_id"], ORDER);
    check_h4(f);
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("refunded".into())
    );
}

async fn async_refund_without_webhook_is_confirmed_by_reconciliation(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let tid = paid_async_order(&app, &cafe24, ORDER, "3000").await;
    let mut fields = cancel_fields(ORDER, &tid, "1200", "JPY");
    fields.push(("cancel_noty_url".into(), cafe24.url("/cancel-noty")));
    let (status, body) = app.async_cancel(&fields).await;
    assert_eq!(status, 200, "{body}");
    // No webhook comes. Before the delay a pass reads nothing and nothing is said…
    let read = cafe24_komoju::reconciliation::cancellations(&app.state, Duration::from_secs(300))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, 0, "a pass read the payment before the delay");
    app.drain_outbox().await;
    assert!(cafe24.received().iter().all(|r| r.path != "/cancel-noty"));
    // …after it, the reconciliation pass reads the payment and confirms.
    app.clock.advance(Duration::from_secs(301));
    let deadline = std::time::Instant::now() + WAIT;
    let cancels = loop {
        let c: Vec<_> = cafe24
            .received()
            .into_iter()
            .filter(|r| r.path == "/cancel-noty")
            .collect();
        if !c.is_empty() || std::time::Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].fields["cancel_amount"], "1200");
    check_h4(&cancels[0].fields);
    assert!(
        app.sandbox
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == format!("/api/v1/payments/{tid}")),
        "the pass read the payment"
    );
    app.drain_outbox().await;
    assert_eq!(
        cafe24
            .received()
            .iter()
            .filter(|r| r.path == "/cancel-noty")
            .count(),
        1
    );
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("partially_refunded".into())
    );
}

async fn refund_made_in_the_komoju_dashboard_follows_and_is_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let tid = paid_async_order(&app, &cafe24, ORDER, "3000").await;
    // An earlier async cancellation told us where Cafe24 hears of refunds.
    let mut fields = cancel_fields(ORDER, &tid, "500", "JPY");
    fields.push(("cancel_noty_url".into(), cafe24.url("/cancel-noty")));
    assert_eq!(app.async_cancel(&fields).await.0, 200);
    app.route_sandbox_webhooks();
    // The merchant refunds 700 more in the KOMOJU dashboard.
    let resp = app
        .client
        .post(format!("{}/payments/{tid}/refund", app.state.komoju.base()))
        .basic_auth("sk_test_demomall_0123456789", Some(""))
        .header("X-KOMOJU-IDEMPOTENCY", "dashboard-refund-1")
        .json(&serde_json::json!({"amount": 700}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let amounts: Vec<String> = cafe24
            .received()
            .into_iter()
            .filter(|r| r.path == "/cancel-noty")
            .map(|r| r.fields["cancel_amount"].clone())
            .collect();
        if amounts.len() >= 2 || std::time::Instant::now() > deadline {
            let mut sorted = amounts.clone();
            sorted.sort();
            assert_eq!(
                sorted,
                vec!["500".to_owned(), "700".to_owned()],
                "{amounts:?}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.refunded_amount, 1200);
    assert_eq!(order.state.as_str(), "partially_refunded");
}

async fn aliases_serve_the_same_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let tid = app.paid_order(ORDER, "3000", "JPY", "credit_card").await;
    let r = app
        .post_form(
            "/api/synchronous-refund/cancel",
            &cancel_fields(ORDER, &tid, "1000", "JPY"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let cafe24 = Receiver::spawn(app.clock.clone());
    let mut fields = cancel_fields(ORDER, &tid, "500", "JPY");
    fields.push(("cancel_noty_url".into(), cafe24.url("/c")));
    let r = app
        .post_form("/api/asynchronous-refund/cancel", &fields)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.komoju_refunds(&tid).len(), 2);
}
