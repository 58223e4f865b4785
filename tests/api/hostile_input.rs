//! What testing from outside found (issue 8): signed KOMOJU deliveries that are not
//! ordinary events, control characters and non-canonical callback URLs, NUL bytes, slow
//! request bodies, replies outside the envelope, `partner_id`s with another
//! `public_ref`, and the SQLite file's mode. Every request goes through the real server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::helpers::*;

const ORDER: &str = "20261121-0000077";
const WAIT: Duration = Duration::from_secs(5);

both_backends!(
    signed_webhooks_are_never_refused,
    control_characters_in_callback_urls_are_refused,
    callback_urls_are_stored_and_used_as_parsed,
    nul_bytes_are_invalid_request_before_any_query,
    a_stalled_body_is_answered_408_and_the_connection_closed,
    every_reply_is_the_envelope,
    a_partner_id_with_another_public_ref_is_unknown,
);

impl TestApp {
    /// POSTs a KOMOJU delivery signed with the merchant's webhook secret, with an
    /// optional `X-Komoju-ID`; returns the status and the body.
    async fn signed_delivery(&self, body: &[u8], komoju_id: Option<&str>) -> (u16, String) {
        let mut req = self
            .client
            .post(format!(
                "{}/api/asynchronous-checkout/checkout/webhook?mall_id={MALL}",
                self.address
            ))
            .header("Content-Type", "application/json")
            .header("X-Komoju-Signature", komoju_signature(WEBHOOK_SECRET, body))
            .body(body.to_vec());
        if let Some(id) = komoju_id {
            req = req.header("X-Komoju-ID", id);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    async fn event_recorded(&self, event_id: &str) -> bool {
        let id = event_id.to_owned();
        self.state
            .db
            .run(move |c| cafe24_komoju::db::webhook_events::exists(c, MALL, &id))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn send(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.address))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

/// The §3 envelope of a reply: its status, `error` and `result_message`.
async fn envelope(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status}: not the JSON envelope: {text:?}"));
    assert_eq!(body["result_code"], "9999", "{text}");
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
        body["result_message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// §2: a correctly signed delivery is answered 2xx whatever it holds; without a
/// top-level `id` the event id is `X-Komoju-ID`.
async fn signed_webhooks_are_never_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3065", "JPY", &cafe24))
        .await;
    app.press(&url, "credit_card").await;
    let session_id = url.rsplit('/').next().unwrap_or_default();
    let payment = app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
    assert_eq!(payment["status"], "captured");

    // No `id` in the body: the header names the event, and it is applied once.
    let no_id = serde_json::to_vec(&serde_json::json!({
        "type": "payment.captured", "resource": "event", "data": payment,
        "created_at": "2026-11-21T12:00:00.000+09:00",
    }))
    .unwrap_or_default();
    let (status, body) = app.signed_delivery(&no_id, Some("hdr_evt_1")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("applied"), "{body}");
    assert!(app.event_recorded("hdr_evt_1").await);
    assert_eq!(
        app.order(ORDER)
            .await
            .map(|o| o.state.to_string())
            .as_deref(),
        Some("paid")
    );
    let (status, body) = app.signed_delivery(&no_id, Some("hdr_evt_1")).await;
    assert_eq!((status, body.contains("duplicate")), (200, true), "{body}");
    assert_eq!(cafe24.wait_for(1, WAIT).await.len(), 1);

    // What cannot be applied is recorded and acknowledged, never 4xx or 5xx.
    let before = app.webhook_event_count().await;
    let mut with_nul = payment.clone();
    with_nul["session"] = serde_json::json!("session\u{0}x");
    for (body, header) in [
        (b"this is not JSON".to_vec(), None),
        (b"[1,2,3]".to_vec(), Some("hdr_evt_2")),
        (
            br#"{"id":"ev_unreadable","type":"payment.captured","data":{"oops":1}}"#.to_vec(),
            None,
        ),
        (event_body("ev_nul", "payment.captured", &with_nul), None),
        (
            event_body("ev_id_\u{0}", "payment.refunded", &payment),
            Some("hdr_evt_3"),
        ),
    ] {
        let (status, reply) = app.signed_delivery(&body, header).await;
        assert_eq!(
            status,
            200,
            "{reply} for {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(app.webhook_event_count().await, before + 5);
    assert!(app.event_recorded("hdr_evt_2").await);
    assert!(app.event_recorded("hdr_evt_3").await);
    assert!(app.event_recorded("ev_unreadable").await);
    // The order is as the one applied event left it, and Cafe24 heard once.
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!((order.state.as_str(), order.refunded_amount), ("paid", 0));
    app.outbox_settled().await;
    assert_eq!(cafe24.received().len(), 1);
    // A wrong signature is still 401.
    let resp = app
        .client
        .post(format!(
            "{}/api/asynchronous-checkout/checkout/webhook?mall_id={MALL}",
            app.address
        ))
        .header(
            "X-Komoju-Signature",
            komoju_signature("another-secret", &no_id),
        )
        .body(no_id.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 401);
}

/// §3: `\r`, `\n`, `\x00`, `\x01`, `\x7f` and `\t` in `return_url`, `return_noty_url` or
/// external checkout's `return_url_base` are refused at checkout, and nothing is created.
async fn control_characters_in_callback_urls_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    for (i, c) in ["\r", "\n", "\u{0}", "\u{1}", "\u{7f}", "\t"]
        .iter()
        .enumerate()
    {
        let bad = format!("https://demomall.cafe24shop.com/Pay{c}Recv");
        // NUL is refused by the field reader, the others by the URL check.
        let expected = if *c == "\u{0}" {
            "invalid_request"
        } else {
            "url_not_allowed"
        };
        let order_id = format!("{ORDER}-{i}");
        let mut sync = checkout_fields(&order_id, "3065", "JPY");
        set(&mut sync, "return_url", &bad);
        let (status, error, _) = envelope(app.sync_checkout(&sync).await).await;
        assert_eq!(
            (status, error.as_str()),
            (400, expected),
            "return_url {c:?}"
        );
        let mut noty = async_fields(&order_id, "3065", "JPY", &cafe24);
        set(
            &mut noty,
            "return_noty_url",
            &format!("{}/noty{c}x", cafe24.base),
        );
        let (status, error, _) = envelope(app.async_checkout(&noty).await).await;
        assert_eq!(
            (status, error.as_str()),
            (400, expected),
            "return_noty_url {c:?}"
        );
    }
    assert_eq!(app.order_count().await, 0);
    assert!(app.komoju_posts().is_empty());
}

/// §4: what a parser would repair is refused; what it normalises (full-width or raw
/// UTF-8) is stored and sent back as the parser serialised it.
async fn callback_urls_are_stored_and_used_as_parsed(backend: Backend) {
    let app = spawn_app(backend).await;
    for (i, bad) in [
        "https://demomall.cafe24.com\\@evil.test/",
        "https:demomall.cafe24.com/",
        "https:///demomall.cafe24.com/",
        " https://demomall.cafe24.com/",
        "https://demomall.cafe24.com/ ",
        // 702 bytes that the parser serialises to 2050 (found by fuzzing).
        &format!("https://demomall.cafe24.com/{}", "é".repeat(337)),
    ]
    .iter()
    .enumerate()
    {
        let mut fields = checkout_fields(&format!("{ORDER}-{i}"), "3065", "JPY");
        set(&mut fields, "return_url", bad);
        let (status, error, _) = envelope(app.sync_checkout(&fields).await).await;
        assert_eq!(
            (status, error.as_str()),
            (400, "url_not_allowed"),
            "{bad:?}"
        );
    }
    assert_eq!(app.order_count().await, 0);

    let raw = "https://ｄｅｍｏｍａｌｌ.cafe24shop.com/결제/recv?shop=デモ";
    let parsed = "https://demomall.cafe24shop.com/%EA%B2%B0%EC%A0%9C/recv?shop=%E3%83%87%E3%83%A2";
    let mut fields = checkout_fields(ORDER, "3065", "JPY");
    set(&mut fields, "return_url", raw);
    let url = app.sync_checkout_ok(&fields).await;
    let stored = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(stored.return_url, parsed);
    let callback = app.press(&url, "credit_card").await;
    let resp = app.get(&callback).await;
    assert_eq!(resp.status(), 302);
    let location = location(&resp);
    assert!(
        location.starts_with(&format!("{parsed}&result_code=0000&")),
        "{location}"
    );
    assert!(location.is_ascii() && !location.contains(' '), "{location}");
}

/// §5: a NUL in any field Cafe24, KOMOJU or a mall front sends is 400
/// `invalid_request` on both backends (PostgreSQL cannot store one).
async fn nul_bytes_are_invalid_request_before_any_query(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = app.clock.unix_seconds();
    for path in [
        "/api/external-checkout/script/data?mall_id=%00&shop_no=1".to_owned(),
        format!("/api/external-checkout/script/hmac?mall_id=%00&request_time={now}"),
        format!(
            "/api/external-checkout/script/hmac?mall_id=demomall&request_time={now}&member_id=a%00"
        ),
        "/api/external-checkout/order/review?key=%00".to_owned(),
        "/api/synchronous-checkout/checkout/callback?key=a%00&session_id=x".to_owned(),
    ] {
        let (status, error, _) = envelope(app.send(reqwest::Method::GET, &path).await).await;
        assert_eq!((status, error.as_str()), (400, "invalid_request"), "{path}");
    }
    let webhook = app
        .client
        .post(format!(
            "{}/api/asynchronous-checkout/checkout/webhook?mall_id=%00",
            app.address
        ))
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(envelope(webhook).await.1, "invalid_request");
    let payload = app
        .client
        .post(format!("{}/api/external-checkout/payload", app.address))
        .header("Content-Type", "application/json")
        .body(r#"{"mall_id":"\u0000","shop_no":1}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, error, _) = envelope(payload).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));

    // Signed Cafe24 requests: the hash holds over the NUL, the field reader refuses it.
    let order_id = "2026\u{0}1121";
    let checkout = checkout_fields(order_id, "3065", "JPY");
    let (status, error, _) = envelope(app.sync_checkout(&checkout).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    let json = app
        .client
        .post(format!("{}/api/synchronous-checkout/checkout", app.address))
        .json(
            &checkout
                .iter()
                .cloned()
                .collect::<std::collections::HashMap<String, String>>(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(envelope(json).await.1, "invalid_request");
    let cancel = cancel_fields(ORDER, "tid\u{0}", "3065", "JPY");
    let (status, body) = app.sync_cancel(&cancel).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(app.order_count().await, 0);
}

/// §6: headers, then part of the body, then silence: 408 in the envelope once
/// `BODY_TIMEOUT_SECS` has passed, and the connection is closed.
async fn a_stalled_body_is_answered_408_and_the_connection_closed(backend: Backend) {
    let app = spawn_app_with(backend, &[("BODY_TIMEOUT_SECS", "1")]).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    for path in [
        "/api/synchronous-checkout/checkout",
        "/api/asynchronous-checkout/checkout/webhook?mall_id=demomall",
        "/api/external-checkout/payload",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\npartner_"
        );
        stream
            .write_all(head.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Read until the server closes; a server that never answers fails the timeout.
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut reply))
            .await
            .unwrap_or_else(|_| panic!("{path}: no reply and no close within 8 s"));
        assert!(read.is_ok(), "{path}: {read:?}");
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 408"), "{path}: {reply}");
        assert!(
            reply.contains("\"error\":\"invalid_request\""),
            "{path}: {reply}"
        );
        assert!(reply.contains("did not arrive within"), "{path}: {reply}");
    }
    // The service still answers whole requests.
    app.sync_checkout_ok(&checkout_fields(ORDER, "3065", "JPY"))
        .await;
}

/// §7: every reply on the Cafe24, KOMOJU and mall-front routes is the §3 envelope, with
/// a message that says what was wrong.
async fn every_reply_is_the_envelope(backend: Backend) {
    let app = spawn_app(backend).await;
    let get = reqwest::Method::GET;
    let (status, error, message) = envelope(
        app.send(
            get.clone(),
            "/api/external-checkout/script/data?mall_id=a&mall_id=b&shop_no=1",
        )
        .await,
    )
    .await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    assert!(
        message.contains("mall_id is given more than once"),
        "{message}"
    );
    let webhook = app
        .client
        .post(format!(
            "{}/api/asynchronous-checkout/checkout/webhook?mall_id=DEMOMALL",
            app.address
        ))
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, _, message) = envelope(webhook).await;
    assert_eq!(status, 400);
    assert!(message.contains("lowercase"), "{message}");
    for (method, path, allow) in [
        (get.clone(), "/api/synchronous-checkout/checkout", "POST"),
        (get.clone(), "/api/asynchronous-checkout/checkout", "POST"),
        (
            get.clone(),
            "/api/asynchronous-checkout/checkout/webhook?mall_id=demomall",
            "POST",
        ),
        (get.clone(), "/api/synchronous-cancellation/cancel", "POST"),
        (get.clone(), "/api/asynchronous-refund/cancel", "POST"),
        (
            reqwest::Method::DELETE,
            "/api/synchronous-checkout/checkout/status",
            "GET, POST",
        ),
        (
            reqwest::Method::PUT,
            "/api/external-checkout/order/callback",
            "GET, POST",
        ),
        (
            reqwest::Method::POST,
            "/api/external-checkout/script",
            "GET",
        ),
        (reqwest::Method::POST, "/health", "GET"),
    ] {
        let resp = app.send(method.clone(), path).await;
        let allowed = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (status, error, message) = envelope(resp).await;
        assert_eq!(
            (status, error.as_str(), allowed.as_str()),
            (405, "invalid_request", allow),
            "{method} {path}"
        );
        assert!(message.contains(method.as_str()), "{message}");
    }
    for path in ["/api/nowhere", "/api/synchronous-checkout/checkout/nope"] {
        let (status, error, _) = envelope(app.send(get.clone(), path).await).await;
        assert_eq!((status, error.as_str()), (404, "invalid_request"), "{path}");
    }
}

/// §8: a `partner_id` whose `public_ref` is not the merchant's names no merchant, for a
/// checkout and for a cancellation.
async fn a_partner_id_with_another_public_ref_is_unknown(backend: Backend) {
    let app = spawn_app(backend).await;
    let partner_id = format!("{MALL}:1:wrong-ref");
    let mut fields = checkout_fields(ORDER, "3065", "JPY");
    set(&mut fields, "partner_id", &partner_id);
    set(
        &mut fields,
        "hash_data",
        &cafe24_hash(&["3065", "JPY", ORDER, &partner_id]),
    );
    let (status, error, _) = envelope(app.sync_checkout(&fields).await).await;
    assert_eq!((status, error.as_str()), (404, "unknown_merchant"));
    assert_eq!(app.order_count().await, 0);

    let tid = app.paid_order(ORDER, "3065", "JPY", "credit_card").await;
    let mut cancel = cancel_fields(ORDER, &tid, "3065", "JPY");
    set(&mut cancel, "partner_id", &partner_id);
    set(
        &mut cancel,
        "hash_data",
        &cafe24_hash(&["3065", "JPY", ORDER, &partner_id, &tid]),
    );
    let (status, body) = app.sync_cancel(&cancel).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_merchant"))
    );
    assert!(app.komoju_refunds(&tid).is_empty());
}

/// §8: the SQLite file holds orders and sealed secrets: readable by its owner only, when
/// created and when found readable by others.
#[cfg(unix)]
#[actix_web::test]
async fn the_sqlite_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app(Backend::Sqlite).await;
    let path = app
        .settings
        .database_url
        .trim_start_matches("sqlite://")
        .to_owned();
    let mode = |p: &str| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&format!("{path}-wal")), 0o600);
    drop(app);

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let loose = dir.path().join("loose.sqlite3");
    std::fs::write(&loose, b"").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}", loose.display());
    cafe24_komoju::db::Database::connect(&url).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode(&loose.display().to_string()), 0o600);
}
