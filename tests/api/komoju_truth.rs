//! The service against KOMOJU as KOMOJU really behaves (issue 17; PROTOCOL.md §5–§8):
//! a declined card keeps the buyer on the hosted page, money on any session of an order
//! is applied, a second capture is a duplicate payment refunded in full, a converted
//! currency is checked through its session, konbini refunds go to a bank account, and
//! the wire details (`mode`, payment types per currency, a key in flight waited out).

use std::time::Duration;

use cafe24_komoju_sandbox::{Fault, DECLINED_CARD_NUMBER};
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

const ORDER: &str = "20261206-0000017";
const KEY: &str = "sk_test_demomall_0123456789";
const WAIT: Duration = Duration::from_secs(5);

both_backends!(
    a_declined_card_keeps_the_session_and_tells_cafe24_nothing,
    a_session_ending_after_a_decline_fails_the_order_once,
    an_open_session_is_cancelled_before_a_new_attempt,
    money_on_an_earlier_session_pays_the_order,
    a_second_capture_is_a_duplicate_refunded_in_full_once,
    a_duplicate_is_kept_when_the_merchant_turned_refunds_off,
    a_konbini_refund_is_accepted_with_a_bank_account_link,
    a_converted_payment_pays_the_order_in_its_own_currency,
    a_usd_session_offers_only_what_komoju_takes_in_usd,
    a_key_in_flight_is_waited_out_with_the_same_key,
);

/// Pays the hosted page with KOMOJU's declining test card; the status and the page.
async fn decline(app: &TestApp, payment_url: &str) -> (u16, String) {
    let resp = app
        .client
        .post(format!("{payment_url}/pay"))
        .form(&[
            ("method", "credit_card"),
            ("card_number", DECLINED_CARD_NUMBER),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("pay: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn session_of(payment_url: &str) -> String {
    payment_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn state(app: &TestApp) -> String {
    app.order(ORDER)
        .await
        .map(|o| o.state.to_string())
        .unwrap_or_default()
}

/// `(request_type, payed_tf, result_code, amount)` of everything Cafe24 received.
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

fn notice(kind: &str, payed: &str, code: &str, amount: &str) -> (String, String, String, String) {
    (kind.into(), payed.into(), code.into(), amount.into())
}

/// A session of the order made at KOMOJU as an earlier attempt would have made it (an
/// instance that crashed after its call): the merchant's key, the order's metadata.
async fn earlier_session(app: &TestApp, amount: i64, currency: &str) -> String {
    earlier_session_of(app, amount, currency, &["credit_card"]).await
}

/// As [`earlier_session`], offering `types` (an earlier build offered a USD shop types that
/// take only JPY, which KOMOJU then charges in JPY).
async fn earlier_session_of(app: &TestApp, amount: i64, currency: &str, types: &[&str]) -> String {
    let body = json!({
        "mode": "payment",
        "amount": amount,
        "currency": currency,
        "return_url": format!("{}/api/asynchronous-checkout/checkout/callback", app.address),
        "payment_types": types,
        "payment_data": {"external_order_num": format!("{ORDER}-0-0a0b0c")},
        "metadata": {"mall_id": MALL, "order_id": ORDER, "flow": "async"},
    });
    let resp = app
        .client
        .post(format!("{}/sessions", app.state.komoju.base()))
        .basic_auth(KEY, Some(""))
        .header("X-KOMOJU-IDEMPOTENCY", uuid::Uuid::new_v4().to_string())
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create session: {e}"));
    assert_eq!(resp.status(), 200, "the sandbox refused the session");
    let session: serde_json::Value = resp.json().await.unwrap_or_default();
    session["session_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// An async JPY order paid by card, its notification delivered; returns the payment id.
async fn paid_by_card(app: &TestApp, cafe24: &Receiver) -> String {
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3400", "JPY", cafe24))
        .await;
    let callback = app.press(&url, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    assert_eq!(
        notices(cafe24),
        vec![notice("payment", "T", "0000", "3400")]
    );
    app.order(ORDER)
        .await
        .and_then(|o| o.komoju_payment_id)
        .unwrap_or_else(|| panic!("no payment"))
}

async fn a_declined_card_keeps_the_session_and_tells_cafe24_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.route_sandbox_webhooks();
    let cafe24 = Receiver::spawn(app.clock.clone());
    let fields = async_fields(ORDER, "3400", "JPY", &cafe24);
    let url = app.async_checkout_ok(&fields).await;
    let (status, _page) = decline(&app, &url).await;
    assert_eq!(status, 200, "a decline keeps the buyer on KOMOJU's page");
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    let kinds: Vec<String> = app
        .sandbox
        .deliveries()
        .iter()
        .map(|d| d.event_type.clone())
        .collect();
    assert!(kinds.contains(&"payment.failed".to_owned()), "{kinds:?}");
    app.drain_outbox().await;
    assert!(cafe24.received().is_empty(), "Cafe24 heard of a decline");
    assert_eq!(state(&app).await, "pending");
    // Cafe24 repeats the checkout: the same page, no second session.
    assert_eq!(app.async_checkout_ok(&fields).await, url);
    assert_eq!(app.sandbox.sessions_created(), 1);
    // The buyer pays with another card on the same page: paid, told once.
    let callback = app.press(&url, "credit_card").await;
    let back = app.get(&callback).await;
    assert_eq!(query_of(&location(&back))["result_code"], "0000");
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    assert_eq!(state(&app).await, "paid");
    assert_eq!(
        notices(&cafe24),
        vec![notice("payment", "T", "0000", "3400")]
    );
}

async fn a_session_ending_after_a_decline_fails_the_order_once(backend: Backend) {
    let app = spawn_app(backend).await;
    app.route_sandbox_webhooks();
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3400", "JPY", &cafe24))
        .await;
    assert_eq!(decline(&app, &url).await.0, 200);
    // The buyer gives up: "return to merchant".
    let callback = app.press(&url, "return").await;
    let back = app.get(&callback).await;
    assert_ne!(query_of(&location(&back))["result_code"], "0000");
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    assert_eq!(state(&app).await, "failed");
    assert_eq!(notices(&cafe24), vec![notice("payment", "F", "9999", "0")]);
}

async fn an_open_session_is_cancelled_before_a_new_attempt(backend: Backend) {
    let app = spawn_app(backend).await;
    app.route_sandbox_webhooks();
    let cafe24 = Receiver::spawn(app.clock.clone());
    let fields = async_fields(ORDER, "3400", "JPY", &cafe24);
    let first = app.async_checkout_ok(&fields).await;
    // An order an earlier build left `failed` after a decline, its session still open at
    // KOMOJU (the real KOMOJU keeps it open).
    let pk = app.order(ORDER).await.map(|o| o.id).unwrap_or_default();
    app.state
        .db
        .run(move |c| {
            use diesel::prelude::*;
            diesel::sql_query("UPDATE orders SET state = 'failed' WHERE id = $1")
                .bind::<diesel::sql_types::Text, _>(pk)
                .execute(c)
                .map_err(Into::into)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = app.async_checkout_ok(&fields).await;
    assert_ne!(second, first, "a new attempt has a new session");
    let old = session_of(&first);
    let cancel = format!("/api/v1/sessions/{old}/cancel");
    assert!(
        app.sandbox
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == cancel && r.status == 200),
        "the open session was not cancelled at KOMOJU"
    );
    let session = app.sandbox.session_json(&old).unwrap_or_default();
    assert_eq!(session["status"], "cancelled");
    // The buyer can no longer pay the old page; the new one pays the order once.
    let callback = app.press(&second, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    assert_eq!(state(&app).await, "paid");
    assert_eq!(notices(&cafe24).iter().filter(|n| n.1 == "T").count(), 1);
}

async fn money_on_an_earlier_session_pays_the_order(backend: Backend) {
    let app = spawn_app(backend).await;
    app.route_sandbox_webhooks();
    let cafe24 = Receiver::spawn(app.clock.clone());
    let current = app
        .async_checkout_ok(&async_fields(ORDER, "3400", "JPY", &cafe24))
        .await;
    let earlier = earlier_session(&app, 3400, "JPY").await;
    app.press(&earlier, "credit_card").await;
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(
        order.state.to_string(),
        "paid",
        "money on an earlier session was ignored"
    );
    assert_eq!(order.komoju_session_id, Some(session_of(&current)));
    assert_eq!(
        notices(&cafe24),
        vec![notice("payment", "T", "0000", "3400")]
    );
    assert!(
        log_lines()
            .iter()
            .any(|l| l.contains(ORDER) && l.contains("an earlier session of the order")),
        "the anomaly was not logged"
    );
}

async fn a_second_capture_is_a_duplicate_refunded_in_full_once(backend: Backend) {
    let app = spawn_app(backend).await;
    app.route_sandbox_webhooks();
    let cafe24 = Receiver::spawn(app.clock.clone());
    let first = paid_by_card(&app, &cafe24).await;
    // The buyer pays again, on a session an earlier attempt had made.
    let earlier = earlier_session(&app, 3400, "JPY").await;
    app.press(&earlier, "credit_card").await;
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.to_string(), "paid");
    assert_eq!(order.komoju_payment_id.as_deref(), Some(first.as_str()));
    let second = app
        .sandbox
        .session_json(&session_of(&earlier))
        .map(|s| s["payment"]["id"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    assert!(!second.is_empty() && second != first);
    // Recorded, counted and shown.
    let shown = app.cli(&["orders", "show", MALL, ORDER]).await;
    assert!(shown.contains(&second), "{shown}");
    let metrics = app
        .get(&format!("{}/metrics", app.address))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains("cafe24_komoju_duplicate_payments_total 1"),
        "{metrics}"
    );
    // The refund pass (the service's reconciliation task runs it too) refunds it in
    // full, once, whatever runs it again.
    settle_duplicates(&app).await;
    assert_eq!(refund_due(&app).await, 0);
    let refunds: Vec<_> = app
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/api/v1/payments/{second}/refund"))
        .collect();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(
        refunds[0].idempotency_key.as_deref(),
        Some(format!("duplicate-refund-{second}").as_str())
    );
    let komoju = app.sandbox.payment_json(&second).unwrap_or_default();
    assert_eq!(komoju["amount_refunded"], 3400);
    assert!(
        app.komoju_refunds(&first).is_empty(),
        "the order's own payment was refunded"
    );
    // The duplicate's refund webhooks change nothing of the order and tell Cafe24 nothing.
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.to_string(), "paid");
    assert_eq!(order.refunded_amount, 0);
    assert_eq!(notices(&cafe24).len(), 1, "{:?}", notices(&cafe24));
    let shown = app.cli(&["orders", "show", MALL, ORDER]).await;
    assert!(shown.contains("refunded"), "{shown}");
}

/// Runs the duplicate-refund pass until no duplicate of the order is due any more (the
/// service's own reconciliation task may run it at the same time).
async fn settle_duplicates(app: &TestApp) {
    let pk = app.order(ORDER).await.map(|o| o.id).unwrap_or_default();
    for _ in 0..100 {
        refund_due(app).await;
        let pk = pk.clone();
        let due = app
            .state
            .db
            .run(move |c| cafe24_komoju::db::duplicates::for_order(c, &pk))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .any(|d| d.state == cafe24_komoju::db::duplicates::DuplicateState::RefundDue);
        if !due {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a duplicate payment stayed due");
}

async fn refund_due(app: &TestApp) -> usize {
    cafe24_komoju::duplicates::refund_due(&app.state)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn a_duplicate_is_kept_when_the_merchant_turned_refunds_off(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_merchant(
        &MerchantAdd::demo()
            .flag("--payment-types", "credit_card,konbini")
            .flag("--refund-duplicates", "off"),
    )
    .await;
    app.route_sandbox_webhooks();
    let cafe24 = Receiver::spawn(app.clock.clone());
    paid_by_card(&app, &cafe24).await;
    let earlier = earlier_session(&app, 3400, "JPY").await;
    app.press(&earlier, "credit_card").await;
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    settle_duplicates(&app).await;
    assert_eq!(refund_due(&app).await, 0);
    assert!(
        !app.sandbox
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/refund")),
        "a kept duplicate was refunded"
    );
    let shown = app.cli(&["orders", "show", MALL, ORDER]).await;
    assert!(shown.contains(" kept "), "{shown}");
}

async fn a_konbini_refund_is_accepted_with_a_bank_account_link(backend: Backend) {
    let app = spawn_app(backend).await;
    app.route_sandbox_webhooks();
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3400", "JPY", &cafe24))
        .await;
    app.press(&url, "konbini").await;
    let payment = app
        .sandbox
        .session_json(&session_of(&url))
        .map(|s| s["payment"].clone())
        .unwrap_or_default();
    let tid = payment["id"].as_str().unwrap_or_default().to_owned();
    // The code's expiry is the payment's top-level `payment_deadline`.
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.to_string(), "awaiting_payment");
    let deadline = payment["payment_deadline"].as_str().unwrap_or_default();
    let expected = chrono::DateTime::parse_from_rfc3339(deadline)
        .map(|t| t.naive_utc())
        .ok();
    assert!(expected.is_some(), "no payment_deadline: {payment}");
    assert_eq!(order.payment_expires_at, expected);
    // Paid at the store, then refunded in part.
    app.sandbox
        .capture(&tid)
        .unwrap_or_else(|e| panic!("capture: {e}"));
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    assert_eq!(state(&app).await, "paid");
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "1000", "JPY"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result_code"], "0000");
    assert!(
        body["result_message"]
            .as_str()
            .is_some_and(|m| m.contains("bank account")),
        "{body}"
    );
    let refunds = app.komoju_refunds(&tid);
    let link = refunds
        .last()
        .and_then(|r| r["redirect_url"].as_str())
        .unwrap_or_else(|| panic!("KOMOJU gave no redirect_url: {refunds:?}"))
        .to_owned();
    // Where the operator looks: the CLI and the operator API.
    let shown = app.cli(&["orders", "show", MALL, ORDER]).await;
    assert!(shown.contains(&link), "{shown}");
    let token = app.cli(&["operator", "token", "--ttl", "1h"]).await;
    let view: serde_json::Value = app
        .client
        .get(format!(
            "{}/operator/api/v1/orders/{MALL}/{ORDER}",
            app.address
        ))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(view["refunds"][0]["bank_account_url"], link.as_str());
    // Never in a log line, nor in anything sent to Cafe24.
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    assert!(
        !log_lines().iter().any(|l| l.contains(&link)),
        "the bank-account link reached a log line"
    );
    for r in cafe24.received() {
        assert!(!format!("{:?}", r.fields).contains(&link));
    }
}

async fn a_converted_payment_pays_the_order_in_its_own_currency(backend: Backend) {
    let app = spawn_app(backend).await;
    app.route_sandbox_webhooks();
    app.sandbox.set_exchange_rate("USD", "JPY", 150.0);
    let cafe24 = Receiver::spawn(app.clock.clone());
    app.async_checkout_ok(&async_fields(ORDER, "30.00", "USD", &cafe24))
        .await;
    // A session of an earlier build offered PayPay (JPY only) to this USD shop: KOMOJU
    // charges the buyer 4 500 JPY for the 30.00 USD session.
    let earlier = earlier_session_of(&app, 3000, "USD", &["paypay"]).await;
    app.press(&earlier, "paypay").await;
    let payment = app
        .sandbox
        .session_json(&session_of(&earlier))
        .map(|s| s["payment"].clone())
        .unwrap_or_default();
    assert_eq!(
        (payment["currency"].as_str(), payment["amount"].as_i64()),
        (Some("JPY"), Some(4500))
    );
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(
        order.state.to_string(),
        "paid",
        "a converted payment was not paid"
    );
    assert_eq!(
        (order.charged_amount, order.charged_currency.as_deref()),
        (Some(4500), Some("JPY"))
    );
    // Cafe24 hears the order's own amount and currency, signed (H3).
    let got = cafe24.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let f = &got[0].fields;
    assert_eq!(
        (
            f["amount"].as_str(),
            f["currency"].as_str(),
            f["payed_tf"].as_str()
        ),
        ("30.00", "USD", "T")
    );
    let tid = payment["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(f["tid"], tid);
    assert_eq!(
        f["hash_data"],
        cafe24_hash(&["30.00", "USD", ORDER, &f["partner_id"], &tid])
    );
    // A partial refund in dollars is a refund in yen in proportion.
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "10.00", "USD"))
        .await;
    assert_eq!(status, 200, "{body}");
    let refunds = app.komoju_refunds(&tid);
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["amount"], 1500);
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.to_string(), "partially_refunded");
    assert_eq!(order.refunded_amount, 1000);
}

async fn a_usd_session_offers_only_what_komoju_takes_in_usd(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    // The demo merchant offers credit_card and konbini; KOMOJU takes konbini in JPY only.
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "30.00", "USD", &cafe24))
        .await;
    let session = app
        .sandbox
        .session_json(&session_of(&url))
        .unwrap_or_default();
    let offered: Vec<String> = session["payment_methods"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m["type"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(offered, vec!["credit_card".to_owned()], "{session}");
    assert_eq!(session["mode"], "payment");
}

async fn a_key_in_flight_is_waited_out_with_the_same_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let fields = async_fields(ORDER, "3400", "JPY", &cafe24);
    // KOMOJU takes 7 s over the first call (the client gives up after 2 s): the repeat
    // meets 409 (the key in flight) for about 5 s, longer than earlier builds waited.
    app.prime_payment_methods().await;
    app.sandbox
        .fail_next(1, Fault::SlowProcessing(Duration::from_secs(7)));
    let first = app.async_checkout(&fields).await;
    assert_eq!(first.status(), 502);
    let again = app.async_checkout_ok(&fields).await;
    assert!(again.contains("/sessions/"), "{again}");
    assert_eq!(app.sandbox.sessions_created(), 1);
    let posts: Vec<_> = app
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/sessions")
        .collect();
    assert!(
        posts.iter().any(|r| r.status == 409),
        "the key was never in flight: {posts:?}"
    );
    let keys: std::collections::BTreeSet<_> =
        posts.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 1, "{posts:?}");
}
