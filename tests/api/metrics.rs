//! `GET /metrics` (PROTOCOL.md §13) after a scripted run: a paid checkout whose webhook is
//! applied, repeated and forged; a notification that fails twice then succeeds; one that
//! goes dead; an amount mismatch; a refused checkout; a path no route serves. The counts
//! are exactly those, and no label value carries an order id or a query string.

use std::collections::HashMap;
use std::time::Duration;

use cafe24_komoju::db::notifications::NotificationState;

use crate::helpers::{
    async_fields, event_body, komoju_signature, set, spawn_app, spawn_app_with, Backend, Receiver,
    TestApp, MALL, WEBHOOK_SECRET,
};

/// Every sample of the exposition: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

async fn scrape(app: &TestApp, base: &str) -> (String, HashMap<String, f64>) {
    let resp = app.get(&format!("{base}/metrics")).await;
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap_or_default();
    let parsed = samples(&text);
    (text, parsed)
}

/// An asynchronous order paid by card on the hosted page; returns its payment as KOMOJU
/// holds it (the buyer never comes back: only webhooks move it).
async fn paid_on_komoju(app: &TestApp, order_id: &str, receiver: &Receiver) -> serde_json::Value {
    let url = app
        .async_checkout_ok(&async_fields(order_id, "3065", "JPY", receiver))
        .await;
    app.press(&url, "credit_card").await;
    let session_id = url.rsplit('/').next().unwrap_or_default();
    app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone()
}

async fn webhook(app: &TestApp, event_id: &str, payment: &serde_json::Value) -> u16 {
    let body = event_body(event_id, "payment.captured", payment);
    let signature = komoju_signature(WEBHOOK_SECRET, &body);
    app.send_webhook(MALL, &body, Some(&signature)).await
}

/// Moves the clock and drains the outbox until no notification is pending.
async fn until_settled(app: &TestApp) {
    for _ in 0..12 {
        app.drain_outbox().await;
        let pending = app
            .notifications()
            .await
            .iter()
            .any(|n| n.state == NotificationState::Pending);
        if !pending {
            return;
        }
        app.clock.advance(Duration::from_secs(25 * 3600));
    }
    panic!("notifications still pending after the whole schedule");
}

async fn metrics_count_what_happened(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::spawn(app.clock.clone());

    // A paid order: webhook applied, then repeated, then forged.
    let paid = paid_on_komoju(&app, "MET-0001", &receiver).await;
    // Its notification will fail twice, then succeed.
    receiver.fail_next(2);
    assert_eq!(webhook(&app, "evt_met_1", &paid).await, 200);
    assert_eq!(webhook(&app, "evt_met_1", &paid).await, 200);
    let forged = event_body("evt_met_2", "payment.captured", &paid);
    assert_eq!(app.send_webhook(MALL, &forged, Some("00ff")).await, 401);
    until_settled(&app).await;

    // Another paid order whose notification never gets through: dead.
    let second = paid_on_komoju(&app, "MET-0002", &receiver).await;
    receiver.fail_always(true);
    assert_eq!(webhook(&app, "evt_met_3", &second).await, 200);
    until_settled(&app).await;
    receiver.fail_always(false);

    // KOMOJU captures another amount: amount_mismatch.
    app.sandbox.set_capture_amount_delta(1);
    let skewed = paid_on_komoju(&app, "MET-0003", &receiver).await;
    assert_eq!(webhook(&app, "evt_met_4", &skewed).await, 200);
    app.sandbox.set_capture_amount_delta(0);
    until_settled(&app).await;

    // A refused checkout and a path no route serves (with an order id in its query).
    let mut bad = async_fields("MET-0004", "3065", "JPY", &receiver);
    set(&mut bad, "hash_data", "forged");
    assert_eq!(app.async_checkout(&bad).await.status(), 401);
    let unmatched = app
        .get(&format!(
            "{}/no/such/MET-0005?order_id=MET-0005",
            app.address
        ))
        .await;
    assert_eq!(unmatched.status(), 404);

    let (text, m) = scrape(&app, &app.address).await;
    if let Ok(path) = std::env::var("METRICS_SAMPLE") {
        // For docs/operations.md: the exposition after this run.
        let _ = std::fs::write(path, &text);
    }
    // Webhooks by outcome.
    assert_eq!(
        value(&m, "cafe24_komoju_webhooks_total{outcome=\"applied\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(&m, "cafe24_komoju_webhooks_total{outcome=\"duplicate\"}"),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "cafe24_komoju_webhooks_total{outcome=\"bad_signature\"}"
        ),
        1.0
    );
    // Notifications by outcome, as the outbox recorded them.
    let rows = app.notifications().await;
    let delivered = rows
        .iter()
        .filter(|n| n.state == NotificationState::Delivered)
        .count();
    let dead = rows
        .iter()
        .filter(|n| n.state == NotificationState::Dead)
        .count();
    let attempts: i32 = rows.iter().map(|n| n.attempts).sum();
    assert_eq!(dead, 1, "one notification went dead");
    let first = rows
        .iter()
        .filter(|n| n.state == NotificationState::Delivered)
        .map(|n| n.attempts)
        .max();
    assert_eq!(first, Some(3), "failed twice, then delivered");
    assert_eq!(
        value(
            &m,
            "cafe24_komoju_notifications_total{outcome=\"delivered\"}"
        ),
        delivered as f64
    );
    assert_eq!(
        value(&m, "cafe24_komoju_notifications_total{outcome=\"dead\"}"),
        1.0
    );
    assert_eq!(
        value(&m, "cafe24_komoju_notifications_total{outcome=\"retried\"}"),
        f64::from(attempts) - delivered as f64 - 1.0
    );
    assert_eq!(value(&m, "cafe24_komoju_notifications_pending"), 0.0);
    assert_eq!(
        value(&m, "cafe24_komoju_notifications_oldest_pending_age_seconds"),
        0.0
    );
    // Amount mismatches, checkouts, KOMOJU calls.
    assert_eq!(value(&m, "cafe24_komoju_amount_mismatch_total"), 1.0);
    assert_eq!(
        value(
            &m,
            "cafe24_komoju_checkouts_total{flow=\"async\",result=\"created\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "cafe24_komoju_checkouts_total{flow=\"async\",result=\"invalid_hash\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "cafe24_komoju_komoju_requests_total{operation=\"sessions.create\",status=\"2xx\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "cafe24_komoju_komoju_request_duration_seconds_count{operation=\"sessions.create\"}"
        ),
        3.0
    );
    // HTTP requests by route pattern; the unmatched path shares one label.
    let hook = "endpoint=\"/api/asynchronous-checkout/checkout/webhook\",method=\"POST\"";
    assert_eq!(
        value(
            &m,
            &format!("cafe24_komoju_http_requests_total{{{hook},status=\"200\"}}")
        ),
        4.0
    );
    assert_eq!(
        value(
            &m,
            &format!("cafe24_komoju_http_requests_total{{{hook},status=\"401\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(&m, "cafe24_komoju_http_requests_total{endpoint=\"unmatched\",method=\"GET\",status=\"404\"}"),
        1.0
    );
    // No label value carries an order id, a mall id or a query string.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains("MET-"), "an order id in a label: {line}");
        assert!(!line.contains('?'), "a query string in a label: {line}");
        assert!(!line.contains(MALL), "a mall id in a label: {line}");
    }
}

async fn metrics_can_be_served_apart(backend: Backend) {
    let port = crate::helpers::free_port();
    let bind = format!("127.0.0.1:{port}");
    let app = spawn_app_with(backend, &[("METRICS_BIND_ADDR", bind.as_str())]).await;
    let main = app.get(&format!("{}/metrics", app.address)).await;
    assert_eq!(main.status(), 404, "not on the public address");
    let (text, _) = scrape(&app, &format!("http://{bind}")).await;
    assert!(
        text.contains("cafe24_komoju_notifications_pending"),
        "{text}"
    );
    let other = app.get(&format!("http://{bind}/health")).await;
    assert_eq!(
        other.status(),
        404,
        "the metrics address serves nothing else"
    );
}

crate::both_backends!(metrics_count_what_happened, metrics_can_be_served_apart);
