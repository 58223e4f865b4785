//! A burst larger than the service (issue 21, item 3): with `MAX_IN_FLIGHT_WEBHOOKS`
//! webhooks in flight, one more is answered at once with 503 `unavailable`, `Retry-After`
//! and the §3 envelope, and nothing of it is applied; every webhook answered 2xx is
//! applied exactly once; KOMOJU's retries of the refused ones are applied once each;
//! `/health`, `/health/ready` and `/metrics` answer while the limit is full, and so does
//! a checkout (other requests are counted apart, against `MAX_IN_FLIGHT`).
//!
//! The limit is filled deterministically: two webhooks whose bodies the test holds back
//! (their last byte unsent), admitted and waiting for it, seen through the service's
//! `requests_in_flight` gauge.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both_backends;
use crate::helpers::*;

/// The limit under test.
const LIMIT: usize = 2;
/// Webhooks sent at once while the limit is full.
const BURST: usize = 50;
const WAIT: Duration = Duration::from_secs(10);

both_backends!(
    a_burst_over_the_limit_is_refused_at_once_and_every_retry_applied_once,
    a_free_burst_applies_every_2xx_once_and_refuses_the_rest_with_retry_after,
);

fn order_id(i: usize) -> String {
    format!("20261206-02{i:05}")
}

/// `n` asynchronous orders paid by card on KOMOJU (no webhook sent yet); each order's
/// signed `payment.captured` webhook body and signature.
async fn paid_orders(app: &TestApp, n: usize) -> Vec<(Vec<u8>, String)> {
    let cafe24 = Receiver::spawn(app.clock.clone());
    let mut webhooks = Vec::with_capacity(n);
    for i in 0..n {
        let url = app
            .async_checkout_ok(&async_fields(&order_id(i), "3065", "JPY", &cafe24))
            .await;
        app.press(&url, "credit_card").await;
        let session_id = url.rsplit('/').next().unwrap_or_default();
        let payment = app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
        assert_eq!(payment["status"], "captured", "order {i}");
        let body = event_body(&format!("ev_burst_{i}"), "payment.captured", &payment);
        let signature = komoju_signature(WEBHOOK_SECRET, &body);
        webhooks.push((body, signature));
    }
    webhooks
}

/// A webhook sent on a connection of its own with its last byte held back: admitted,
/// its route waiting for the rest of the body.
struct Held {
    stream: TcpStream,
    last: u8,
}

impl Held {
    async fn send(app: &TestApp, body: &[u8], signature: &str) -> Held {
        let (mut stream, head) = webhook_connection(app, body, signature).await;
        let (first, last) = body.split_at(body.len() - 1);
        for part in [head.as_bytes(), first] {
            stream
                .write_all(part)
                .await
                .unwrap_or_else(|e| panic!("write: {e}"));
        }
        Held {
            stream,
            last: last[0],
        }
    }

    /// Sends the last byte; the reply's status line.
    async fn finish(mut self) -> String {
        self.stream
            .write_all(&[self.last])
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        read_reply(&mut self.stream).await
    }
}

/// A connection to the service and the head of a signed webhook carrying `body`.
async fn webhook_connection(app: &TestApp, body: &[u8], signature: &str) -> (TcpStream, String) {
    let addr = app.address.trim_start_matches("http://");
    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let head = format!(
        "POST /api/asynchronous-checkout/checkout/webhook?mall_id={MALL} HTTP/1.1\r\n\
         Host: {addr}\r\nContent-Type: application/json\r\nX-Komoju-Event: payment\r\n\
         X-Komoju-Signature: {signature}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (stream, head)
}

/// One reply read off `stream`: its status line (head and `Content-Length` body read).
async fn read_reply(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text.lines().next().unwrap_or_default().to_owned();
            }
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no reply: {text}"))
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert!(n > 0, "connection closed after: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A webhook, then `GET /health`, on one keep-alive connection: both status lines.
async fn same_connection_twice(app: &TestApp, body: &[u8], signature: &str) -> (String, String) {
    let (mut stream, head) = webhook_connection(app, body, signature).await;
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let addr = app.address.trim_start_matches("http://");
    let health = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut lines = Vec::new();
    for request in [request, health.into_bytes()] {
        stream
            .write_all(&request)
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        lines.push(read_reply(&mut stream).await);
    }
    (lines[0].clone(), lines[1].clone())
}

/// Waits until the service reports `n` requests in flight.
async fn in_flight_reaches(app: &TestApp, n: i64) {
    let deadline = Instant::now() + WAIT;
    while app.state.metrics.requests_in_flight.get() != n {
        assert!(
            Instant::now() < deadline,
            "in flight: {} (waited for {n})",
            app.state.metrics.requests_in_flight.get()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One webhook's reply: its status, and for a 503 that it came with `Retry-After` in
/// seconds and the §3 envelope with code `unavailable`.
async fn deliver(app: &TestApp, body: &[u8], signature: &str) -> u16 {
    let resp = app
        .client
        .post(format!(
            "{}/api/asynchronous-checkout/checkout/webhook?mall_id={MALL}",
            app.address
        ))
        .header("Content-Type", "application/json")
        .header("X-Komoju-Event", "payment")
        .header("X-Komoju-Signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    let status = resp.status().as_u16();
    if status == 503 {
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok());
        assert!(retry_after.is_some_and(|s| s > 0), "{:?}", resp.headers());
        let envelope: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(envelope["error"], "unavailable", "{envelope}");
        assert_eq!(envelope["result_code"], "9999", "{envelope}");
        assert!(envelope["result_message"].is_string(), "{envelope}");
    }
    status
}

/// Sends every webhook in `pending` at once; returns those refused (503), having
/// checked every other reply is 200.
async fn burst(app: &TestApp, webhooks: &[(Vec<u8>, String)], pending: Vec<usize>) -> Vec<usize> {
    let replies = futures_util::future::join_all(
        pending
            .iter()
            .map(|&i| deliver(app, &webhooks[i].0, &webhooks[i].1)),
    )
    .await;
    let mut refused = Vec::new();
    for (&i, status) in pending.iter().zip(replies) {
        match status {
            200 => {}
            503 => refused.push(i),
            other => panic!("webhook {i}: {other}"),
        }
    }
    refused
}

/// Every order of `orders` paid, each with exactly one applied event, and the stored
/// webhook events exactly `orders.len()`.
async fn applied_exactly_once(app: &TestApp, orders: &[usize]) {
    assert_eq!(app.webhook_event_count().await, orders.len() as i64);
    for &i in orders {
        let order = app
            .order(&order_id(i))
            .await
            .unwrap_or_else(|| panic!("no order {i}"));
        assert_eq!(order.state.as_str(), "paid", "order {i}");
        let id = order.id.clone();
        let events = app
            .state
            .db
            .run(move |c| cafe24_komoju::db::orders::events(c, &id))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(events.iter().filter(|e| e.applied).count(), 1, "order {i}");
    }
}

/// Resends (as KOMOJU retries) the refused ones until every one is 200, applying each
/// 2xx exactly once on the way.
async fn retried_until_applied(
    app: &TestApp,
    webhooks: &[(Vec<u8>, String)],
    mut refused: Vec<usize>,
) {
    for _ in 0..100 {
        if refused.is_empty() {
            break;
        }
        refused = burst(app, webhooks, refused).await;
        let done: Vec<usize> = (0..webhooks.len())
            .filter(|i| !refused.contains(i))
            .collect();
        applied_exactly_once(app, &done).await;
    }
    assert!(
        refused.is_empty(),
        "still refused after 100 rounds: {refused:?}"
    );
}

async fn get_status(app: &TestApp, path: &str) -> u16 {
    app.get(&format!("{}{path}", app.address))
        .await
        .status()
        .as_u16()
}

async fn a_burst_over_the_limit_is_refused_at_once_and_every_retry_applied_once(backend: Backend) {
    let limit = LIMIT.to_string();
    let app = spawn_app_with(backend, &[("MAX_IN_FLIGHT_WEBHOOKS", &limit)]).await;
    let webhooks = paid_orders(&app, BURST + LIMIT).await;
    // The limit filled by two webhooks held mid-body.
    let mut held = Vec::new();
    for (body, signature) in &webhooks[BURST..] {
        held.push(Held::send(&app, body, signature).await);
    }
    in_flight_reaches(&app, LIMIT as i64).await;
    // Operators still see the service.
    for path in ["/health", "/health/ready", "/metrics"] {
        assert_eq!(get_status(&app, path).await, 200, "{path}");
    }
    // The burst: every one refused at once, nothing of it applied.
    let started = Instant::now();
    let refused = burst(&app, &webhooks, (0..BURST).collect()).await;
    assert_eq!(refused.len(), BURST);
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
    assert_eq!(app.webhook_event_count().await, 0);
    assert_eq!(app.state.metrics.requests_shed.get(), BURST as u64);
    let metrics = app
        .get(&format!("{}/metrics", app.address))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains(&format!("cafe24_komoju_requests_shed_total {BURST}")),
        "{metrics}"
    );
    // A refused webhook's connection stays open: KOMOJU's retry needs no new one.
    let (body, signature) = &webhooks[0];
    assert_eq!(
        same_connection_twice(&app, body, signature).await,
        (
            "HTTP/1.1 503 Service Unavailable".to_owned(),
            "HTTP/1.1 200 OK".to_owned()
        )
    );
    // A buyer's checkout is not refused for KOMOJU's webhooks.
    app.sync_checkout_ok(&checkout_fields("20261206-0299999", "1200", "JPY"))
        .await;
    // The held ones complete and are applied.
    for h in held {
        let status_line = h.finish().await;
        assert!(status_line.starts_with("HTTP/1.1 200"), "{status_line}");
    }
    in_flight_reaches(&app, 0).await;
    applied_exactly_once(&app, &[BURST, BURST + 1]).await;
    // KOMOJU retries the refused ones: each applied once.
    retried_until_applied(&app, &webhooks, refused).await;
    applied_exactly_once(&app, &(0..BURST + LIMIT).collect::<Vec<_>>()).await;
}

async fn a_free_burst_applies_every_2xx_once_and_refuses_the_rest_with_retry_after(
    backend: Backend,
) {
    let limit = LIMIT.to_string();
    let app = spawn_app_with(backend, &[("MAX_IN_FLIGHT_WEBHOOKS", &limit)]).await;
    let webhooks = paid_orders(&app, BURST).await;
    let refused = burst(&app, &webhooks, (0..BURST).collect()).await;
    let admitted: Vec<usize> = (0..BURST).filter(|i| !refused.contains(i)).collect();
    assert!(!admitted.is_empty());
    applied_exactly_once(&app, &admitted).await;
    assert_eq!(app.state.metrics.requests_shed.get(), refused.len() as u64);
    retried_until_applied(&app, &webhooks, refused).await;
    applied_exactly_once(&app, &(0..BURST).collect::<Vec<_>>()).await;
    in_flight_reaches(&app, 0).await;
}
