//! The sandbox's own tests, against an in-process actix service (`actix_web::test`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use serde_json::{json, Value};

use super::page::return_url_with_session;
use super::state::IdempotencyBegin;
use super::{Fault, Sandbox, SandboxError, WebhookDelivery};

const BASE: &str = "http://127.0.0.1:9999/sandbox/komoju";
const KEY: &str = "sk_test_alpha";
const OTHER_KEY: &str = "sk_test_beta";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    fn location(&self) -> String {
        self.headers
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    }
}

async fn send<S, R, B>(app: &S, req: R) -> Answer
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let resp = test::call_service(app, req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = test::read_body(resp).await;
    Answer {
        status,
        headers,
        body,
    }
}

fn basic(key: &str) -> (&'static str, String) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    ("Authorization", format!("Basic {encoded}"))
}

fn post_json(path: &str, key: &str, body: &Value) -> TestRequest {
    TestRequest::post()
        .uri(path)
        .insert_header(basic(key))
        .insert_header(("Content-Type", "application/json"))
        .set_payload(serde_json::to_vec(body).unwrap())
}

fn get(path: &str, key: &str) -> TestRequest {
    TestRequest::get().uri(path).insert_header(basic(key))
}

fn session_body(order: &str) -> Value {
    json!({
        "amount": 1000,
        "currency": "JPY",
        "return_url": "https://shop.example/callback?key=a%20b",
        "default_locale": "en",
        "email": "buyer@example.com",
        "payment_types": ["credit_card", "konbini"],
        "payment_data": {"external_order_num": order},
        "metadata": {"mall_id": "mall1", "order_id": "o1"}
    })
}

fn sandbox() -> Sandbox {
    Sandbox::new(BASE)
}

macro_rules! app {
    ($sandbox:expr) => {
        test::init_service(App::new().configure($sandbox.configure(""))).await
    };
}

/// Creates a session for `KEY` and returns its id.
macro_rules! create {
    ($app:expr, $order:expr) => {{
        let answer = send(
            $app,
            post_json("/api/v1/sessions", KEY, &session_body($order)).to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()["id"].as_str().unwrap().to_string()
    }};
}

/// Presses a button on the hosted page.
macro_rules! pay {
    ($app:expr, $session:expr, $method:expr) => {{
        let req = TestRequest::post()
            .uri(&format!("/sessions/{}/pay", $session))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .set_payload(format!("method={}", $method))
            .to_request();
        send($app, req).await
    }};
}

/// Posts the hosted page's form with the given (already encoded) fields.
macro_rules! submit {
    ($app:expr, $session:expr, $form:expr) => {{
        let req = TestRequest::post()
            .uri(&format!("/sessions/{}/pay", $session))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .set_payload($form.to_string())
            .to_request();
        send($app, req).await
    }};
}

mod fixtures;
mod hosted;
mod shapes;
mod truth;

fn error_of(answer: &Answer) -> (String, Value) {
    let body = answer.json();
    (
        body["error"]["code"].as_str().unwrap().to_string(),
        body["error"]["param"].clone(),
    )
}

fn payment_id_of(sb: &Sandbox, session: &str) -> String {
    sb.session_json(session).unwrap()["payment"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[actix_web::test]
async fn create_session_has_komoju_shape() {
    let sb = sandbox();
    let app = app!(sb);
    let answer = send(
        &app,
        post_json("/api/v1/sessions", KEY, &session_body("order-1")).to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = answer.text();
    let keys = [
        "id",
        "resource",
        "mode",
        "amount",
        "currency",
        "payment",
        "session_url",
        "return_url",
        "default_locale",
        "payment_methods",
        "created_at",
        "cancelled_at",
        "completed_at",
        "status",
        "expired",
        "merchant",
        "metadata",
        "payment_data",
        "email",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");

    let s = answer.json();
    assert_eq!(s.as_object().unwrap().len(), keys.len());
    let id = s["id"].as_str().unwrap();
    assert_eq!(id.len(), 25);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(s["resource"], "session");
    assert_eq!(s["mode"], "payment");
    assert_eq!(s["amount"], 1000);
    assert_eq!(s["currency"], "JPY");
    assert_eq!(s["payment"], Value::Null);
    assert_eq!(s["session_url"], format!("{BASE}/sessions/{id}"));
    assert_eq!(s["return_url"], "https://shop.example/callback?key=a%20b");
    assert_eq!(s["default_locale"], "en");
    assert_eq!(
        s["payment_methods"],
        json!([
            {"type": "credit_card"},
            {"type": "konbini", "brands": {
                "seven-eleven": "/images/konbini/seven-eleven.svg",
                "lawson": "/images/konbini/lawson.svg",
                "family-mart": "/images/konbini/family-mart.svg",
                "ministop": "/images/konbini/ministop.svg",
                "daily-yamazaki": "/images/konbini/daily-yamazaki.svg",
                "seicomart": "/images/konbini/seicomart.svg"
            }}
        ])
    );
    assert!(
        text.contains(r#""brands":{"seven-eleven":"/images/konbini/seven-eleven.svg","lawson""#)
    );
    let created = s["created_at"].as_str().unwrap();
    assert_eq!(created.len(), "2018-11-13T06:20:21Z".len());
    assert!(created.ends_with('Z'), "{created}");
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok());
    assert_eq!(s["cancelled_at"], Value::Null);
    assert_eq!(s["completed_at"], Value::Null);
    assert_eq!(s["status"], "pending");
    assert_eq!(s["expired"], false);
    assert_eq!(s["metadata"], json!({"mall_id": "mall1", "order_id": "o1"}));
    assert_eq!(
        s["payment_data"],
        json!({"capture": "auto", "external_order_num": "order-1"})
    );
    assert_eq!(s["merchant"], json!({"name": "KOMOJU sandbox merchant"}));
    assert_eq!(s["email"], "buyer@example.com");
    assert_eq!(sb.sessions_created(), 1);
    assert_eq!(sb.session_json(id).unwrap(), s);

    let fetched = send(
        &app,
        get(&format!("/api/v1/sessions/{id}"), KEY).to_request(),
    )
    .await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.json(), s);
}

#[actix_web::test]
async fn defaults_and_form_encoded_bodies() {
    let sb = sandbox();
    let app = app!(sb);
    let req = TestRequest::post()
        .uri("/api/v1/sessions")
        .insert_header(basic(KEY))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload(
            "return_url=https%3A%2F%2Fexample.com&amount=8888&currency=JPY\
             &payment_data[external_order_num]=my_custom_order&metadata[test]=value\
             &payment_types[]=konbini",
        )
        .to_request();
    let answer = send(&app, req).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let s = answer.json();
    assert_eq!(s["amount"], 8888);
    assert_eq!(s["default_locale"], "ja");
    assert_eq!(s["email"], Value::Null);
    assert_eq!(s["metadata"], json!({"test": "value"}));
    assert_eq!(s["payment_data"]["external_order_num"], "my_custom_order");
    assert_eq!(s["payment_methods"][0]["type"], "konbini");
    assert_eq!(s["payment_methods"].as_array().unwrap().len(), 1);

    let minimal =
        json!({"amount": "500", "currency": "USD", "return_url": "http://localhost:8080/cb"});
    let answer = send(
        &app,
        post_json("/api/v1/sessions", KEY, &minimal).to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let s = answer.json();
    assert_eq!(s["amount"], 500);
    // Cards take USD; konbini takes only JPY, so KOMOJU converts ($5.00 at 150).
    assert_eq!(
        s["payment_methods"],
        json!([
            {"type": "credit_card"},
            {"type": "konbini", "amount": 750, "currency": "JPY", "exchange_rate": 150.0,
             "brands": s["payment_methods"][1]["brands"].clone()}
        ])
    );
    assert_eq!(s["payment_data"], json!({"capture": "auto"}));
    assert_eq!(s["metadata"], json!({}));
    assert!(s.get("email").is_none(), "email only when given: {s}");
}

#[actix_web::test]
async fn create_session_validates_fields() {
    let sb = sandbox();
    let app = app!(sb);
    let cases = [
        ("amount", json!(0), "invalid_parameter"),
        ("amount", json!(-5), "invalid_parameter"),
        ("amount", json!(10.5), "invalid_parameter"),
        ("amount", Value::Null, "missing_parameter"),
        ("currency", json!("jpy"), "invalid_parameter"),
        ("currency", json!("JPYX"), "invalid_parameter"),
        ("return_url", json!("/relative"), "invalid_parameter"),
        (
            "return_url",
            json!("ftp://example.com/"),
            "invalid_parameter",
        ),
        ("default_locale", json!("fr"), "invalid_parameter"),
        ("payment_types", json!([]), "invalid_parameter"),
        ("metadata", json!({"n": 1}), "invalid_parameter"),
        ("expires_in_seconds", json!(86401), "invalid_parameter"),
    ];
    for (field, value, code) in cases {
        let mut body = session_body("x");
        body[field] = value.clone();
        let answer = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value}"
        );
        assert_eq!(
            error_of(&answer),
            (code.to_string(), json!(field)),
            "{field}={value}"
        );
    }
    let bad_json = TestRequest::post()
        .uri("/api/v1/sessions")
        .insert_header(basic(KEY))
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{not json")
        .to_request();
    assert_eq!(send(&app, bad_json).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(sb.sessions_created(), 0);
}

#[actix_web::test]
async fn idempotent_replay_returns_identical_body_and_creates_once() {
    let sb = sandbox();
    let app = app!(sb);
    let body = session_body("order-1");
    let first = send(
        &app,
        post_json("/api/v1/sessions", KEY, &body)
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "key-1"))
            .to_request(),
    )
    .await;
    let second = send(
        &app,
        post_json("/api/v1/sessions", KEY, &body)
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "key-1"))
            .to_request(),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.body, second.body);
    assert_eq!(sb.sessions_created(), 1);

    // The key is scoped per secret key: another merchant's same key is a fresh request.
    let other = send(
        &app,
        post_json("/api/v1/sessions", OTHER_KEY, &body)
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "key-1"))
            .to_request(),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_ne!(other.json()["id"], first.json()["id"]);
    assert_eq!(sb.sessions_created(), 2);

    let requests = sb.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/api/v1/sessions");
    assert_eq!(requests[0].idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(requests[1].status, 200);
}

#[actix_web::test]
async fn idempotency_key_reused_with_other_body_or_invalid_is_rejected() {
    let sb = sandbox();
    let app = app!(sb);
    let first = send(
        &app,
        post_json("/api/v1/sessions", KEY, &session_body("order-1"))
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "key-1"))
            .to_request(),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let mismatch = send(
        &app,
        post_json("/api/v1/sessions", KEY, &session_body("order-2"))
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "key-1"))
            .to_request(),
    )
    .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_of(&mismatch),
        (
            "invalid_parameter".to_string(),
            json!("X-KOMOJU-IDEMPOTENCY")
        )
    );
    let too_long = send(
        &app,
        post_json("/api/v1/sessions", KEY, &session_body("order-3"))
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "k".repeat(101)))
            .to_request(),
    )
    .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(sb.sessions_created(), 1);
}

#[actix_web::test]
async fn idempotency_key_in_flight_is_409() {
    let sb = sandbox();
    let app = app!(sb);
    // Processing is synchronous, so mark the key in flight the way the handler does.
    assert!(matches!(
        sb.lock().begin_idempotent(KEY, "busy", [0; 32]),
        IdempotencyBegin::Fresh
    ));
    let answer = send(
        &app,
        post_json("/api/v1/sessions", KEY, &session_body("order-1"))
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "busy"))
            .to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(error_of(&answer).0, "bad_request");
    assert_eq!(
        answer.json()["error"]["message"],
        "A request with this idempotency key is in progress"
    );
    assert_eq!(sb.sessions_created(), 0);
}

#[actix_web::test]
async fn reused_external_order_num_is_422() {
    let sb = sandbox();
    let app = app!(sb);
    create!(&app, "order-1");
    let again = send(
        &app,
        post_json("/api/v1/sessions", KEY, &session_body("order-1")).to_request(),
    )
    .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_of(&again),
        (
            "invalid_parameter".to_string(),
            json!("payment_data.external_order_num")
        )
    );
    assert_eq!(
        again.json()["error"]["message"],
        "external_order_num has already been used"
    );
    // Another merchant has its own namespace.
    let other = send(
        &app,
        post_json("/api/v1/sessions", OTHER_KEY, &session_body("order-1")).to_request(),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(sb.sessions_created(), 2);
}

#[actix_web::test]
async fn missing_or_invalid_auth_is_401() {
    let sb = sandbox();
    let app = app!(sb);
    let no_auth = TestRequest::post()
        .uri("/api/v1/sessions")
        .set_json(session_body("order-1"))
        .to_request();
    let answer = send(&app, no_auth).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&answer), ("unauthorized".to_string(), Value::Null));

    for bad in ["pk_test_public", "sk_", "sk_test:password"] {
        let answer = send(
            &app,
            post_json("/api/v1/sessions", bad, &session_body("order-1")).to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    let bearer = TestRequest::get()
        .uri("/api/v1/sessions/x")
        .insert_header(("Authorization", "Bearer sk_test_alpha"))
        .to_request();
    assert_eq!(send(&app, bearer).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(sb.sessions_created(), 0);
}

#[actix_web::test]
async fn other_key_cannot_read_or_change_objects() {
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "order-1");
    let answer = send(
        &app,
        get(&format!("/api/v1/sessions/{session}"), OTHER_KEY).to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&answer).0, "not_found");

    pay!(&app, &session, "konbini");
    let payment = payment_id_of(&sb, &session);
    let read = send(
        &app,
        get(&format!("/api/v1/payments/{payment}"), OTHER_KEY).to_request(),
    )
    .await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);
    let cancel = send(
        &app,
        post_json(
            &format!("/api/v1/payments/{payment}/cancel"),
            OTHER_KEY,
            &json!({}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    assert_eq!(sb.payment_json(&payment).unwrap()["status"], "authorized");
}

#[actix_web::test]
async fn unknown_routes_are_404_json() {
    let sb = sandbox();
    let app = app!(sb);
    for req in [
        get("/api/v1/customers", KEY).to_request(),
        get("/api/v1/sessions/nope", KEY).to_request(),
        get("/api/v1/payments/nope", KEY).to_request(),
        TestRequest::get().uri("/elsewhere").to_request(),
    ] {
        let answer = send(&app, req).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(error_of(&answer).0, "not_found");
    }
    assert_eq!(sb.requests().len(), 3);
    assert_eq!(sb.requests()[0].path, "/api/v1/customers");
}

#[actix_web::test]
async fn pay_by_card_redirects_and_captures() {
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "order-1");

    let page = send(
        &app,
        TestRequest::get()
            .uri(&format!("/sessions/{session}"))
            .to_request(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("KOMOJU sandbox — not a real payment"));
    assert!(html.contains("1000 JPY"));
    assert!(html.contains("shop.example"));
    assert!(html.contains(&format!(
        "method=\"post\" action=\"{BASE}/sessions/{session}/pay\""
    )));
    for id in ["pay-card", "pay-konbini", "return-to-merchant"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }

    let answer = pay!(&app, &session, "credit_card");
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(
        answer.location(),
        format!("https://shop.example/callback?key=a%20b&session_id={session}")
    );
    let fetched = send(
        &app,
        get(&format!("/api/v1/sessions/{session}"), KEY).to_request(),
    )
    .await;
    let s = fetched.json();
    assert_eq!(s["status"], "completed");
    assert!(s["completed_at"].is_string());
    let p = &s["payment"];
    assert_eq!(p["status"], "captured");
    assert!(p["captured_at"].is_string());
    assert_eq!(p["amount"], 1000);
    assert_eq!(p["total"], 1000);
    assert_eq!(p["currency"], "JPY");
    assert_eq!(p["session"], session.as_str());
    assert_eq!(p["external_order_num"], "order-1");
    assert_eq!(p["metadata"], json!({"mall_id": "mall1", "order_id": "o1"}));
    assert_eq!(p["locale"], "en");
    // As the WooCommerce plugin's card fixture: two days, 23:59:59 JST.
    assert!(p["payment_deadline"]
        .as_str()
        .unwrap()
        .ends_with("T14:59:59Z"));
    assert_eq!(p["payment_details"]["type"], "credit_card");
    assert_eq!(p["payment_details"]["last_four_digits"], "1111");
    assert_eq!(p["payment_details"]["brand"], "visa");
    assert_eq!(p["payment_details"]["email"], "buyer@example.com");
    assert_eq!(p["refunds"], json!([]));
    assert_eq!(p["refund_requests"], json!([]));
    assert_eq!(p.as_object().unwrap().len(), 25);

    let direct = send(
        &app,
        get(
            &format!("/api/v1/payments/{}", p["id"].as_str().unwrap()),
            KEY,
        )
        .to_request(),
    )
    .await;
    assert_eq!(direct.json(), *p);

    // A completed session cannot be paid again; its page links back to the merchant.
    assert_eq!(
        pay!(&app, &session, "credit_card").status,
        StatusCode::CONFLICT
    );
    let page = send(
        &app,
        TestRequest::get()
            .uri(&format!("/sessions/{session}"))
            .to_request(),
    )
    .await;
    let html = page.text();
    assert!(html.contains("completed"));
    assert!(html.contains(&format!("callback?key=a%20b&amp;session_id={session}")));
    assert!(!html.contains("id=\"pay-card\""));
}

#[actix_web::test]
async fn konbini_is_authorized_then_captured() {
    let sb = sandbox();
    let app = app!(sb);
    // A session that offered only cards: the sandbox still accepts konbini (misbehaving KOMOJU).
    let mut body = session_body("order-1");
    body["payment_types"] = json!(["credit_card"]);
    let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    let session = created.json()["id"].as_str().unwrap().to_string();
    let page = send(
        &app,
        TestRequest::get()
            .uri(&format!("/sessions/{session}"))
            .to_request(),
    )
    .await;
    assert!(!page.text().contains("pay-konbini"));

    let answer = pay!(&app, &session, "konbini");
    assert_eq!(answer.status, StatusCode::OK);
    let payment = payment_id_of(&sb, &session);
    let p = sb.payment_json(&payment).unwrap();
    assert_eq!(p["status"], "authorized");
    assert_eq!(p["captured_at"], Value::Null);
    let details = &p["payment_details"];
    assert_eq!(details["type"], "konbini");
    assert_eq!(details["store"], "seven-eleven");
    let code = details["confirmation_code"].as_str().unwrap();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    let receipt = details["receipt"].as_str().unwrap();
    assert!(receipt.len() == 11 && receipt.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        details["instructions_url"],
        format!("{BASE}/instructions/{payment}")
    );
    assert!(p["payment_deadline"]
        .as_str()
        .unwrap()
        .ends_with("T14:59:59Z"));
    assert_eq!(sb.session_json(&session).unwrap()["status"], "completed");

    let instructions = send(
        &app,
        TestRequest::get()
            .uri(&format!("/instructions/{payment}"))
            .to_request(),
    )
    .await;
    assert_eq!(instructions.status, StatusCode::OK);
    assert!(instructions.text().contains(receipt));
    assert!(instructions
        .text()
        .contains("Simulate payment at the store"));

    sb.capture(&payment).unwrap();
    let p = sb.payment_json(&payment).unwrap();
    assert_eq!(p["status"], "captured");
    assert!(p["captured_at"].is_string());
    assert!(matches!(
        sb.capture(&payment),
        Err(SandboxError::InvalidState(_))
    ));
    assert_eq!(sb.capture("nope"), Err(SandboxError::NotFound));
}

#[actix_web::test]
async fn simulate_routes_capture_and_expire() {
    let sb = sandbox();
    let app = app!(sb);
    let first = create!(&app, "order-1");
    let second = create!(&app, "order-2");
    pay!(&app, &first, "konbini");
    pay!(&app, &second, "konbini");
    let (p1, p2) = (payment_id_of(&sb, &first), payment_id_of(&sb, &second));

    let captured = send(
        &app,
        TestRequest::post()
            .uri(&format!("/payments/{p1}/simulate-capture"))
            .to_request(),
    )
    .await;
    assert_eq!(captured.status, StatusCode::OK);
    assert_eq!(sb.payment_json(&p1).unwrap()["status"], "captured");
    let again = send(
        &app,
        TestRequest::post()
            .uri(&format!("/payments/{p1}/simulate-expire"))
            .to_request(),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let expired = send(
        &app,
        TestRequest::post()
            .uri(&format!("/payments/{p2}/simulate-expire"))
            .to_request(),
    )
    .await;
    assert_eq!(expired.status, StatusCode::OK);
    assert_eq!(sb.payment_json(&p2).unwrap()["status"], "expired");
    assert!(sb.expire(&p2).is_err());
    // Browser controls are not API requests.
    assert_eq!(sb.requests().len(), 2);
}

#[actix_web::test]
async fn return_to_merchant_cancels_session() {
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "order-1");
    let answer = pay!(&app, &session, "return");
    assert_eq!(answer.status, StatusCode::FOUND);
    assert!(answer
        .location()
        .ends_with(&format!("&session_id={session}")));
    let s = sb.session_json(&session).unwrap();
    assert_eq!(s["status"], "cancelled");
    assert!(s["cancelled_at"].is_string());
    assert_eq!(s["payment"], Value::Null);
    assert_eq!(pay!(&app, &session, "konbini").status, StatusCode::CONFLICT);
    assert_eq!(pay!(&app, "nope", "konbini").status, StatusCode::NOT_FOUND);
    assert_eq!(pay!(&app, &session, "cash").status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn refunds_partial_then_full() {
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "credit_card");
    let payment = payment_id_of(&sb, &session);
    let refund_path = format!("/api/v1/payments/{payment}/refund");

    let partial = send(
        &app,
        post_json(
            &refund_path,
            KEY,
            &json!({"amount": 300, "description": "one item"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(partial.status, StatusCode::OK, "{}", partial.text());
    let p = partial.json();
    assert_eq!(p["status"], "captured");
    assert_eq!(p["amount_refunded"], 300);
    let refund = &p["refunds"][0];
    assert_eq!(refund["resource"], "refund");
    assert_eq!(refund["amount"], 300);
    assert_eq!(refund["currency"], "JPY");
    assert_eq!(refund["payment"], payment.as_str());
    assert_eq!(refund["description"], "one item");
    assert_eq!(refund["chargeback"], false);
    assert_eq!(refund["id"].as_str().unwrap().len(), 25);

    let too_much = send(
        &app,
        post_json(&refund_path, KEY, &json!({"amount": 701})).to_request(),
    )
    .await;
    assert_eq!(too_much.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_of(&too_much),
        ("invalid_parameter".to_string(), json!("amount"))
    );

    let rest = send(&app, post_json(&refund_path, KEY, &json!({})).to_request()).await;
    let p = rest.json();
    assert_eq!(p["status"], "refunded");
    assert_eq!(p["amount_refunded"], 1000);
    assert_eq!(p["refunds"][1]["amount"], 700);
    assert_eq!(p["refunds"][1]["description"], Value::Null);

    let after = send(&app, post_json(&refund_path, KEY, &json!({})).to_request()).await;
    assert_eq!(after.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_of(&after).0, "not_refundable");
}

#[actix_web::test]
async fn cancel_authorized_payment() {
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "konbini");
    let payment = payment_id_of(&sb, &session);
    let path = format!("/api/v1/payments/{payment}/cancel");
    let answer = send(
        &app,
        TestRequest::post()
            .uri(&path)
            .insert_header(basic(KEY))
            .to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["status"], "cancelled");
    let again = send(
        &app,
        TestRequest::post()
            .uri(&path)
            .insert_header(basic(KEY))
            .to_request(),
    )
    .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_of(&again).0, "not_cancellable");
    assert!(sb.capture(&payment).is_err());

    let card = create!(&app, "order-2");
    pay!(&app, &card, "credit_card");
    let card_payment = payment_id_of(&sb, &card);
    let answer = send(
        &app,
        post_json(
            &format!("/api/v1/payments/{card_payment}/cancel"),
            KEY,
            &json!({}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(error_of(&answer).0, "not_cancellable");
}

#[actix_web::test]
async fn internal_error_fault_answers_500_once_without_processing() {
    let sb = sandbox();
    let app = app!(sb);
    sb.fail_next(1, Fault::InternalError);
    let request = || {
        post_json("/api/v1/sessions", KEY, &session_body("order-1"))
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "key-1"))
            .to_request()
    };
    let failed = send(&app, request()).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        failed.json(),
        json!({"error": {"code": "internal_server_error", "message": failed.json()["error"]["message"].clone(), "param": null, "details": {}}})
    );
    assert_eq!(sb.sessions_created(), 0);
    let retried = send(&app, request()).await;
    assert_eq!(retried.status, StatusCode::OK);
    assert_eq!(sb.sessions_created(), 1);
    let statuses: Vec<u16> = sb.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200]);
}

#[actix_web::test]
async fn wrong_amount_fault_changes_only_the_wire_reply() {
    let sb = sandbox();
    let app = app!(sb);
    let request = || {
        post_json("/api/v1/sessions", KEY, &session_body("order-1"))
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "key-1"))
            .to_request()
    };
    sb.fail_next(1, Fault::WrongAmountInReply);
    let skewed = send(&app, request()).await;
    assert_eq!(skewed.json()["amount"], 1001);
    let session = skewed.json()["id"].as_str().unwrap().to_string();
    assert_eq!(sb.session_json(&session).unwrap()["amount"], 1000);
    let replay = send(&app, request()).await;
    assert_eq!(replay.json()["amount"], 1000);
    assert_eq!(sb.sessions_created(), 1);

    pay!(&app, &session, "credit_card");
    sb.fail_next(1, Fault::WrongAmountInReply);
    let s = send(
        &app,
        get(&format!("/api/v1/sessions/{session}"), KEY).to_request(),
    )
    .await
    .json();
    assert_eq!(s["amount"], 1001);
    assert_eq!(s["payment"]["amount"], 1001);
    let payment = s["payment"]["id"].as_str().unwrap().to_string();
    assert_eq!(sb.payment_json(&payment).unwrap()["amount"], 1000);
    let s = send(
        &app,
        get(&format!("/api/v1/sessions/{session}"), KEY).to_request(),
    )
    .await
    .json();
    assert_eq!(s["payment"]["amount"], 1000);
}

#[actix_web::test]
async fn delay_fault_processes_then_waits() {
    let sb = sandbox();
    let app = app!(sb);
    sb.fail_next(1, Fault::DelayAfterProcessing(Duration::from_millis(200)));
    let started = Instant::now();
    let answer = send(
        &app,
        post_json("/api/v1/sessions", KEY, &session_body("order-1"))
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "key-1"))
            .to_request(),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(answer.status, StatusCode::OK);
    let replay = send(
        &app,
        post_json("/api/v1/sessions", KEY, &session_body("order-1"))
            .insert_header(("X-KOMOJU-IDEMPOTENCY", "key-1"))
            .to_request(),
    )
    .await;
    assert_eq!(replay.body, answer.body);
    assert_eq!(sb.sessions_created(), 1);
}

#[actix_web::test]
async fn capture_amount_delta_skews_recorded_amounts_until_reset() {
    let sb = sandbox();
    let app = app!(sb);
    sb.set_capture_amount_delta(5);
    let card = create!(&app, "order-1");
    pay!(&app, &card, "credit_card");
    let p = sb.payment_json(&payment_id_of(&sb, &card)).unwrap();
    assert_eq!(
        (p["amount"].clone(), p["total"].clone()),
        (json!(1005), json!(1005))
    );
    assert_eq!(sb.session_json(&card).unwrap()["amount"], 1000);

    let konbini = create!(&app, "order-2");
    pay!(&app, &konbini, "konbini");
    let payment = payment_id_of(&sb, &konbini);
    assert_eq!(sb.payment_json(&payment).unwrap()["amount"], 1000);
    sb.capture(&payment).unwrap();
    assert_eq!(sb.payment_json(&payment).unwrap()["amount"], 1005);

    sb.set_capture_amount_delta(0);
    let card = create!(&app, "order-3");
    pay!(&app, &card, "credit_card");
    assert_eq!(
        sb.payment_json(&payment_id_of(&sb, &card)).unwrap()["amount"],
        1000
    );
}

#[actix_web::test]
async fn mounted_under_a_prefix() {
    let sb = Sandbox::new("http://127.0.0.1:8080/sandbox/komoju/");
    let app = test::init_service(App::new().configure(sb.configure("/sandbox/komoju"))).await;
    let answer = send(
        &app,
        post_json(
            "/sandbox/komoju/api/v1/sessions",
            KEY,
            &session_body("order-1"),
        )
        .to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let id = answer.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        answer.json()["session_url"],
        format!("http://127.0.0.1:8080/sandbox/komoju/sessions/{id}")
    );
    assert_eq!(sb.requests()[0].path, "/api/v1/sessions");
    let page = send(
        &app,
        TestRequest::get()
            .uri(&format!("/sandbox/komoju/sessions/{id}"))
            .to_request(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let outside = send(&app, get("/api/v1/sessions", KEY).to_request()).await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn hosted_page_escapes_and_formats() {
    let sb = sandbox();
    let app = app!(sb);
    let body = json!({
        "amount": 123456,
        "currency": "USD",
        "return_url": "https://shop.example/cb?a=1&b=<x>",
        "payment_types": ["credit_card"]
    });
    let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();
    pay!(&app, &id, "return");
    let html = send(
        &app,
        TestRequest::get()
            .uri(&format!("/sessions/{id}"))
            .to_request(),
    )
    .await
    .text();
    assert!(html.contains("1234.56 USD"));
    assert!(!html.contains("<x>"));
    assert!(html.contains("b=&lt;x&gt;&amp;session_id="));
    assert!(html.contains("cancelled"));
}

#[test]
fn return_url_gets_session_id_in_the_right_place() {
    let cases = [
        ("https://example.com", "https://example.com?session_id=s1"),
        (
            "https://example.com/cb",
            "https://example.com/cb?session_id=s1",
        ),
        (
            "https://example.com/cb?k=v",
            "https://example.com/cb?k=v&session_id=s1",
        ),
        (
            "https://example.com/cb?",
            "https://example.com/cb?session_id=s1",
        ),
        (
            "https://example.com/cb?k=v&",
            "https://example.com/cb?k=v&session_id=s1",
        ),
        (
            "https://example.com/cb#top",
            "https://example.com/cb?session_id=s1#top",
        ),
        (
            "https://example.com/cb?k=a%20b#x?y",
            "https://example.com/cb?k=a%20b&session_id=s1#x?y",
        ),
    ];
    for (given, expected) in cases {
        assert_eq!(return_url_with_session(given, "s1"), expected, "{given}");
    }
}

#[test]
fn faults_queue_and_clear_themselves() {
    let sb = sandbox();
    sb.fail_next(2, Fault::InternalError);
    sb.fail_next(0, Fault::WrongAmountInReply);
    sb.fail_next(1, Fault::WrongAmountInReply);
    let mut state = sb.lock();
    assert_eq!(state.take_fault(), Some(Fault::InternalError));
    assert_eq!(state.take_fault(), Some(Fault::InternalError));
    assert_eq!(state.take_fault(), Some(Fault::WrongAmountInReply));
    assert_eq!(state.take_fault(), None);
}

// ---- webhooks ----

const WEBHOOK_SECRET: &str = "whsec_test_secret";
const IDLE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

struct ReceiverState {
    received: Mutex<Vec<Received>>,
    failures_left: AtomicU32,
}

/// Records every request; answers 500 while failures are left, else 200. `/redirect`
/// answers 302 to `/hook`.
async fn receive(req: HttpRequest, body: Bytes, shared: web::Data<ReceiverState>) -> HttpResponse {
    shared.received.lock().unwrap().push(Received {
        headers: req.headers().clone(),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    if req.path() == "/redirect" {
        return HttpResponse::Found()
            .insert_header(("Location", "/hook"))
            .finish();
    }
    let fail = shared
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        HttpResponse::InternalServerError().body("not now")
    } else {
        HttpResponse::Ok().body("ok")
    }
}

/// A webhook receiver on its own loopback port (one actix worker thread).
struct Receiver {
    url: String,
    base: String,
    shared: web::Data<ReceiverState>,
    handle: ServerHandle,
}

impl Receiver {
    /// Answers 500 to the first `failures` requests.
    fn start(failures: u32) -> Receiver {
        let shared = web::Data::new(ReceiverState {
            received: Mutex::new(Vec::new()),
            failures_left: AtomicU32::new(failures),
        });
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Receiver {
            url: format!("{base}/hook"),
            base,
            shared,
            handle,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    fn types(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.header("x-komoju-event"))
            .collect()
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn webhook_sandbox(receiver: &Receiver) -> Sandbox {
    let sb = sandbox();
    sb.set_webhook(KEY, &receiver.url, WEBHOOK_SECRET);
    sb
}

fn statuses(deliveries: &[WebhookDelivery]) -> Vec<(u16, u32)> {
    deliveries.iter().map(|d| (d.status, d.attempt)).collect()
}

#[test]
fn signature_is_lowercase_hex_hmac_sha256() {
    assert_eq!(
        super::webhooks::sign("key", b"The quick brown fox jumps over the lazy dog"),
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[test]
fn webhook_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    let sb = sandbox();
    assert_send(sb.flush_webhooks());
    assert_send(sb.redeliver("ev_x"));
    assert_send(sb.webhooks_idle(Duration::ZERO));
    assert_send(sb.send_event("p", "captured", None));
}

#[actix_web::test]
async fn webhook_is_signed_and_carries_the_payment_as_get_returns_it() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "credit_card");
    assert!(sb.webhooks_idle(IDLE).await);
    let payment = payment_id_of(&sb, &session);

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("user-agent"), "Komoju-Webhook");
    assert_eq!(r.header("x-komoju-event"), "payment.captured");
    let signature = r.header("x-komoju-signature");
    assert_eq!(signature, hmac_hex(WEBHOOK_SECRET, r.body.as_bytes()));
    assert_ne!(signature, hmac_hex("another secret", r.body.as_bytes()));

    let event = r.json();
    let id = event["id"].as_str().unwrap();
    assert_eq!(r.header("x-komoju-id"), id);
    assert_eq!(id.len(), 25);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(event["type"], "payment.captured");
    assert_eq!(event["resource"], "event");
    assert_eq!(event["reason"], Value::Null);
    let created_at = event["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z'));
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok());
    // `data` is byte for byte what GET /payments/{id} answers; compact JSON, KOMOJU's order.
    let fetched = send(
        &app,
        get(&format!("/api/v1/payments/{payment}"), KEY).to_request(),
    )
    .await;
    let expected = format!(
        "{{\"id\":\"{id}\",\"type\":\"payment.captured\",\"resource\":\"event\",\"data\":{},\"created_at\":\"{created_at}\",\"reason\":null}}",
        fetched.text()
    );
    assert_eq!(r.body, expected);

    let deliveries = sb.deliveries();
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(d.event_id, id);
    assert_eq!(d.event_type, "payment.captured");
    assert_eq!(d.url, receiver.url);
    assert_eq!(d.body, r.body);
    assert_eq!(d.signature, signature);
    assert_eq!((d.status, d.attempt), (200, 1));
    receiver.stop().await;
}

#[actix_web::test]
async fn every_payment_change_sends_its_event_in_order() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);

    // Konbini: authorized on the hosted page, then paid at the store.
    let first = create!(&app, "order-1");
    pay!(&app, &first, "konbini");
    let p1 = payment_id_of(&sb, &first);
    assert!(sb.webhooks_idle(IDLE).await);
    sb.capture(&p1).unwrap();
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(receiver.types(), ["payment.authorized", "payment.captured"]);
    let got = receiver.received();
    let (authorized, captured) = (got[0].json(), got[1].json());
    assert_ne!(authorized["id"], captured["id"]);
    assert_eq!(authorized["data"]["id"], p1.as_str());
    assert_eq!(authorized["data"]["status"], "authorized");
    assert_eq!(authorized["data"]["captured_at"], Value::Null);
    assert_eq!(authorized["data"]["payment_details"]["type"], "konbini");
    assert_eq!(captured["data"]["status"], "captured");
    assert!(captured["data"]["captured_at"].is_string());

    // Cancelled through the API, expired by the deadline, and "return to merchant".
    let second = create!(&app, "order-2");
    let third = create!(&app, "order-3");
    let fourth = create!(&app, "order-4");
    pay!(&app, &second, "konbini");
    pay!(&app, &third, "konbini");
    let (p2, p3) = (payment_id_of(&sb, &second), payment_id_of(&sb, &third));
    assert!(sb.webhooks_idle(IDLE).await);
    let cancelled = send(
        &app,
        post_json(&format!("/api/v1/payments/{p2}/cancel"), KEY, &json!({})).to_request(),
    )
    .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert!(sb.webhooks_idle(IDLE).await);
    sb.expire(&p3).unwrap();
    assert!(sb.webhooks_idle(IDLE).await);
    pay!(&app, &fourth, "return");
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(
        receiver.types()[2..],
        [
            "payment.authorized",
            "payment.authorized",
            "payment.cancelled",
            "payment.expired"
        ]
    );
    let got = receiver.received();
    assert_eq!(got[4].json()["data"]["id"], p2.as_str());
    assert_eq!(got[4].json()["data"]["status"], "cancelled");
    assert_eq!(got[5].json()["data"]["id"], p3.as_str());
    assert_eq!(got[5].json()["data"]["status"], "expired");
    // Failed transitions send nothing.
    assert!(sb.capture(&p3).is_err());
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(receiver.received().len(), 6);
    receiver.stop().await;
}

#[actix_web::test]
async fn a_full_refund_sends_both_refund_events() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "credit_card");
    let payment = payment_id_of(&sb, &session);
    let refund_path = format!("/api/v1/payments/{payment}/refund");

    let partial = send(
        &app,
        post_json(&refund_path, KEY, &json!({"amount": 300})).to_request(),
    )
    .await;
    assert_eq!(partial.status, StatusCode::OK);
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(
        receiver.types(),
        ["payment.captured", "payment.refund.created"]
    );
    let data = receiver.received()[1].json()["data"].clone();
    assert_eq!(data["status"], "captured");
    assert_eq!(data["amount_refunded"], 300);

    let rest = send(&app, post_json(&refund_path, KEY, &json!({})).to_request()).await;
    assert_eq!(rest.status, StatusCode::OK);
    assert!(sb.webhooks_idle(IDLE).await);
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    // Sent concurrently: either may arrive first.
    let mut last_two: Vec<String> = got[2..]
        .iter()
        .map(|r| r.header("x-komoju-event"))
        .collect();
    last_two.sort();
    assert_eq!(last_two, ["payment.refund.created", "payment.refunded"]);
    for r in &got[2..] {
        let event = r.json();
        assert_eq!(event["type"], r.header("x-komoju-event").as_str());
        assert_eq!(event["data"]["status"], "refunded");
        assert_eq!(event["data"]["amount_refunded"], 1000);
        assert_eq!(event["data"]["refunds"].as_array().unwrap().len(), 2);
    }
    assert_ne!(got[2].json()["id"], got[3].json()["id"]);
    assert!(sb.deliveries().iter().all(|d| d.status == 200));
    receiver.stop().await;
}

#[actix_web::test]
async fn a_failing_receiver_gets_the_same_event_on_the_third_attempt() {
    let receiver = Receiver::start(2);
    let sb = webhook_sandbox(&receiver);
    sb.set_webhook_retry_delays(vec![Duration::from_millis(50); 3]);
    let app = app!(sb);
    let session = create!(&app, "order-1");
    let started = Instant::now();
    pay!(&app, &session, "credit_card");
    assert!(sb.webhooks_idle(IDLE).await);
    assert!(started.elapsed() >= Duration::from_millis(100));

    let got = receiver.received();
    assert_eq!(got.len(), 3);
    for r in &got[1..] {
        assert_eq!(r.body, got[0].body);
        for name in ["x-komoju-id", "x-komoju-event", "x-komoju-signature"] {
            assert_eq!(r.header(name), got[0].header(name), "{name}");
        }
    }
    let deliveries = sb.deliveries();
    assert_eq!(statuses(&deliveries), [(500, 1), (500, 2), (200, 3)]);
    assert!(deliveries
        .iter()
        .all(|d| d.event_id == got[0].header("x-komoju-id") && d.body == got[0].body));
    receiver.stop().await;
}

#[actix_web::test]
async fn gives_up_after_the_last_delay_and_never_follows_redirects() {
    let receiver = Receiver::start(0);
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sb = sandbox();
    sb.set_webhook(
        KEY,
        &format!("http://127.0.0.1:{closed_port}/hook"),
        WEBHOOK_SECRET,
    );
    sb.set_webhook_retry_delays(vec![Duration::from_millis(10); 2]);
    let app = app!(sb);
    let first = create!(&app, "order-1");
    pay!(&app, &first, "credit_card");
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(statuses(&sb.deliveries()), [(0, 1), (0, 2), (0, 3)]);

    sb.set_webhook(KEY, &format!("{}/redirect", receiver.base), WEBHOOK_SECRET);
    sb.set_webhook_retry_delays(Vec::new());
    let second = create!(&app, "order-2");
    pay!(&app, &second, "credit_card");
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(statuses(&sb.deliveries()[3..]), [(302, 1)]);
    assert_eq!(receiver.received().len(), 1);
    receiver.stop().await;
}

#[actix_web::test]
async fn paused_events_wait_for_a_flush_or_unpause() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    sb.set_webhooks_paused(true);
    let first = create!(&app, "order-1");
    let second = create!(&app, "order-2");
    pay!(&app, &first, "credit_card");
    pay!(&app, &second, "konbini");
    assert!(!sb.webhooks_idle(Duration::from_millis(100)).await);
    assert!(receiver.received().is_empty());
    assert!(sb.deliveries().is_empty());

    assert_eq!(sb.flush_webhooks().await, [200, 200]);
    assert_eq!(receiver.types(), ["payment.captured", "payment.authorized"]);
    assert!(sb.webhooks_idle(IDLE).await);
    assert!(sb.flush_webhooks().await.is_empty());

    // Still paused; unpausing releases the queue. The event carries the payment as it
    // was when it changed, not as it is when sent.
    let p2 = payment_id_of(&sb, &second);
    sb.capture(&p2).unwrap();
    sb.expire(&p2).unwrap_err();
    assert!(!sb.webhooks_idle(Duration::from_millis(50)).await);
    assert_eq!(receiver.received().len(), 2);
    sb.set_webhooks_paused(false);
    assert!(sb.webhooks_idle(IDLE).await);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].json()["type"], "payment.captured");
    assert_eq!(got[2].json()["data"]["status"], "captured");
    receiver.stop().await;
}

#[actix_web::test]
async fn redeliver_sends_identical_bytes() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "credit_card");
    assert!(sb.webhooks_idle(IDLE).await);
    let event_id = sb.deliveries()[0].event_id.clone();

    assert_eq!(sb.redeliver(&event_id).await, 200);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body, got[0].body);
    for name in [
        "x-komoju-id",
        "x-komoju-event",
        "x-komoju-signature",
        "content-type",
        "user-agent",
    ] {
        assert_eq!(got[1].header(name), got[0].header(name), "{name}");
    }
    assert_eq!(statuses(&sb.deliveries()), [(200, 1), (200, 2)]);
    assert_eq!(sb.redeliver("ev_nosuchevent").await, 0);
    receiver.stop().await;
}

#[actix_web::test]
async fn only_keys_with_a_webhook_get_events_and_registering_again_replaces() {
    let receiver = Receiver::start(0);
    let sb = sandbox();
    sb.set_webhook(OTHER_KEY, &receiver.url, WEBHOOK_SECRET);
    let app = app!(sb);
    let first = create!(&app, "order-1");
    pay!(&app, &first, "credit_card");
    assert!(sb.webhooks_idle(Duration::ZERO).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(receiver.received().is_empty());
    assert!(sb.deliveries().is_empty());
    assert_eq!(
        sb.send_event(&payment_id_of(&sb, &first), "captured", None)
            .await,
        0
    );

    sb.set_webhook(KEY, "http://127.0.0.1:9/unused", "old secret");
    sb.set_webhook(KEY, &receiver.url, "new secret");
    let second = create!(&app, "order-2");
    pay!(&app, &second, "credit_card");
    assert!(sb.webhooks_idle(IDLE).await);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("x-komoju-signature"),
        hmac_hex("new secret", got[0].body.as_bytes())
    );
    receiver.stop().await;
}

#[actix_web::test]
async fn webhook_endpoints_registers_over_http_per_key_and_is_idempotent() {
    let receiver = Receiver::start(0);
    let sb = sandbox();
    let app = app!(sb);
    let endpoint = json!({"url": receiver.url, "secret": WEBHOOK_SECRET});

    let unauthenticated = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/webhook_endpoints")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(serde_json::to_vec(&endpoint).unwrap())
            .to_request(),
    )
    .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    for (body, param) in [
        (json!({"secret": "s"}), "url"),
        (json!({"url": "not a url", "secret": "s"}), "url"),
        (json!({"url": receiver.url}), "secret"),
        (json!({"url": receiver.url, "secret": ""}), "secret"),
    ] {
        let answer = send(
            &app,
            post_json("/api/v1/webhook_endpoints", KEY, &body).to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_of(&answer).1, param);
    }
    let listed = send(&app, get("/api/v1/webhook_endpoints", KEY).to_request()).await;
    assert_eq!(listed.status, StatusCode::NOT_FOUND);

    for _ in 0..2 {
        let answer = send(
            &app,
            post_json("/api/v1/webhook_endpoints", KEY, &endpoint).to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(
            answer.json(),
            json!({"url": receiver.url, "registered": true})
        );
    }
    let session = create!(&app, "order-1");
    pay!(&app, &session, "credit_card");
    assert!(sb.webhooks_idle(IDLE).await);
    let got = receiver.received();
    assert_eq!(got.len(), 1, "one endpoint, however often registered");
    assert_eq!(
        got[0].header("x-komoju-signature"),
        hmac_hex(WEBHOOK_SECRET, got[0].body.as_bytes())
    );
    let registrations: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/webhook_endpoints" && r.status == 200)
        .collect();
    assert_eq!(registrations.len(), 2);

    // Another key's payments do not go to this endpoint.
    let other = send(
        &app,
        post_json("/api/v1/sessions", OTHER_KEY, &session_body("order-2")).to_request(),
    )
    .await;
    let other = other.json()["id"].as_str().unwrap().to_string();
    pay!(&app, &other, "credit_card");
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(receiver.received().len(), 1);
    receiver.stop().await;
}

#[actix_web::test]
async fn send_event_injects_a_stale_status() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "konbini");
    let payment = payment_id_of(&sb, &session);
    sb.capture(&payment).unwrap();
    assert!(sb.webhooks_idle(IDLE).await);

    assert_eq!(
        sb.send_event(&payment, "authorized", Some("authorized"))
            .await,
        200
    );
    assert_eq!(sb.send_event(&payment, "payment.captured", None).await, 200);
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    let stale = got[2].json();
    assert_eq!(stale["type"], "payment.authorized");
    assert_eq!(got[2].header("x-komoju-event"), "payment.authorized");
    assert_eq!(stale["data"]["status"], "authorized");
    assert!(stale["data"]["captured_at"].is_string());
    assert_eq!(got[3].json()["data"]["status"], "captured");
    assert_eq!(sb.payment_json(&payment).unwrap()["status"], "captured");
    assert_eq!(sb.send_event("nope", "captured", None).await, 0);
    receiver.stop().await;
}

#[actix_web::test]
async fn delivers_to_the_server_it_is_mounted_in() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sb = Sandbox::new(&format!("{base}/sandbox/komoju"));
    sb.set_webhook(KEY, &format!("{base}/webhook"), WEBHOOK_SECRET);
    let shared = web::Data::new(ReceiverState {
        received: Mutex::new(Vec::new()),
        failures_left: AtomicU32::new(0),
    });
    let (served, data) = (sb.clone(), shared.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(served.configure("/sandbox/komoju"))
            .route("/webhook", web::post().to(receive))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let created: Value = client
        .post(format!("{base}/sandbox/komoju/api/v1/sessions"))
        .basic_auth(KEY, None::<&str>)
        .json(&session_body("order-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = created["id"].as_str().unwrap();
    let paid = client
        .post(format!("{base}/sandbox/komoju/sessions/{session}/pay"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("method=credit_card")
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status().as_u16(), 302);
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(statuses(&sb.deliveries()), [(200, 1)]);
    let got = shared.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-komoju-event"), "payment.captured");
    handle.stop(false).await;
}

/// Reads one HTTP/1.1 request from `stream` (headers and a Content-Length body).
fn read_request(stream: &mut std::net::TcpStream) -> String {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        data.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length || n == 0 {
                return text;
            }
        } else if n == 0 {
            return text;
        }
    }
}

#[test]
fn a_change_made_outside_any_runtime_is_still_delivered() {
    let sb = sandbox();
    let payment = actix_web::rt::System::new().block_on(async {
        let app = app!(sb);
        let session = create!(&app, "order-1");
        pay!(&app, &session, "konbini");
        payment_id_of(&sb, &session)
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let responder = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let request = read_request(&mut stream);
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .unwrap();
        request
    });
    sb.set_webhook(KEY, &url, WEBHOOK_SECRET);
    sb.capture(&payment).unwrap();
    let request = responder.join().unwrap().to_ascii_lowercase();
    assert!(request.starts_with("post /hook http/1.1\r\n"));
    assert!(request.contains("x-komoju-event: payment.captured\r\n"));
    let deadline = Instant::now() + IDLE;
    while sb.deliveries().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(statuses(&sb.deliveries()), [(204, 1)]);
}

// ---- payment methods, refused keys, ping ----

#[actix_web::test]
async fn payment_methods_lists_every_type_in_each_currency_unless_restricted_per_key() {
    let sb = sandbox();
    let app = app!(sb);
    let all = send(&app, get("/api/v1/payment_methods", KEY).to_request()).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    let text = all.text();
    assert!(
        text.starts_with(
            r#"[{"name_en":"Credit Card","name_ja":"クレジットカード","name_ko":"신용카드","type_slug":"credit_card","currency":"JPY","payment_method_fee":0},"#
        ),
        "{text}"
    );
    let pairs = |answer: &Answer| -> Vec<(String, String)> {
        answer
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["type_slug"].as_str().unwrap().to_string(),
                    m["currency"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let listed = pairs(&all);
    let of = |slug: &str| -> Vec<String> {
        listed
            .iter()
            .filter(|(s, _)| s == slug)
            .map(|(_, c)| c.clone())
            .collect()
    };
    // Cards in every currency of KOMOJU's enum; the Japanese methods only in JPY, so a USD
    // shop is never offered them as USD methods.
    assert_eq!(of("credit_card").len(), 20);
    assert!(of("credit_card").contains(&"USD".to_string()));
    for slug in ["konbini", "paypay", "bank_transfer", "pay_easy"] {
        assert_eq!(of(slug), ["JPY"], "{slug}");
    }
    assert_eq!(listed.len(), 24);
    for method in all.json().as_array().unwrap() {
        assert_eq!(method.as_object().unwrap().len(), 6, "{method}");
    }

    sb.set_payment_methods(KEY, &["konbini", "credit_card", "konbini"]);
    let restricted = send(&app, get("/api/v1/payment_methods", KEY).to_request()).await;
    let restricted_pairs = pairs(&restricted);
    assert_eq!(
        restricted_pairs[0],
        ("konbini".to_string(), "JPY".to_string())
    );
    assert!(restricted_pairs[1..]
        .iter()
        .all(|(s, _)| s == "credit_card"));
    assert_eq!(restricted_pairs.len(), 21);
    assert_eq!(restricted.json()[0]["name_ja"], "コンビニ");
    let other = send(&app, get("/api/v1/payment_methods", OTHER_KEY).to_request()).await;
    assert_eq!(pairs(&other).len(), 24);

    let anonymous = send(
        &app,
        TestRequest::get()
            .uri("/api/v1/payment_methods")
            .to_request(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let posted = send(
        &app,
        post_json("/api/v1/payment_methods", KEY, &json!({})).to_request(),
    )
    .await;
    assert_eq!(posted.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_refused_key_is_answered_401_everywhere() {
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "order-1");
    sb.refuse_key(KEY);
    for req in [
        get(&format!("/api/v1/sessions/{session}"), KEY).to_request(),
        get("/api/v1/payment_methods", KEY).to_request(),
        post_json("/api/v1/sessions", KEY, &session_body("order-2")).to_request(),
        post_json("/api/v1/webhook_endpoints/ping", KEY, &json!({})).to_request(),
    ] {
        let answer = send(&app, req).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
        assert_eq!(error_of(&answer).0, "unauthorized");
    }
    let other = send(&app, get("/api/v1/payment_methods", OTHER_KEY).to_request()).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(sb.sessions_created(), 1);
}

#[actix_web::test]
async fn ping_sends_a_signed_event_to_the_registered_endpoint() {
    let receiver = Receiver::start(0);
    let sb = sandbox();
    let app = app!(sb);
    let ping = |body: &'static str| {
        TestRequest::post()
            .uri("/api/v1/webhook_endpoints/ping")
            .insert_header(basic(KEY))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body)
            .to_request()
    };

    let unregistered = send(&app, ping("")).await;
    assert_eq!(unregistered.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&unregistered).0, "not_found");
    assert!(!sb.send_ping(KEY));

    sb.set_webhook(KEY, &receiver.url, WEBHOOK_SECRET);
    for body in ["", "{}"] {
        let answer = send(&app, ping(body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.json(), json!({"sent": true}));
    }
    assert!(sb.send_ping(KEY));
    assert!(!sb.send_ping(OTHER_KEY));
    assert!(sb.webhooks_idle(IDLE).await);

    let got = receiver.received();
    assert_eq!(got.len(), 3);
    for event in &got {
        let body = event.json();
        assert_eq!(body.as_object().unwrap().len(), 5, "{}", event.body);
        assert_eq!(body["id"].as_str().unwrap().len(), 25);
        assert_eq!(body["type"], "ping");
        assert_eq!(body["resource"], "event");
        assert_eq!(body["data"], json!({}));
        assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(event.header("x-komoju-event"), "ping");
        assert_eq!(event.header("x-komoju-id"), body["id"].as_str().unwrap());
        assert_eq!(
            event.header("x-komoju-signature"),
            hmac_hex(WEBHOOK_SECRET, event.body.as_bytes())
        );
    }
    let deliveries = sb.deliveries();
    assert_eq!(statuses(&deliveries), [(200, 1), (200, 1), (200, 1)]);
    assert!(deliveries.iter().all(|d| d.event_type == "ping"));

    // Paused: queued like a payment event, sent by the flush.
    sb.set_webhooks_paused(true);
    assert!(sb.send_ping(KEY));
    let answer = send(&app, ping("{}")).await;
    assert_eq!(answer.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(receiver.received().len(), 3);
    assert_eq!(sb.flush_webhooks().await, [200, 200]);
    assert_eq!(receiver.types(), ["ping", "ping", "ping", "ping", "ping"]);
    receiver.stop().await;
}

#[actix_web::test]
async fn a_failing_ping_is_retried_with_the_same_event() {
    let receiver = Receiver::start(1);
    let sb = sandbox();
    sb.set_webhook_retry_delays(vec![Duration::from_millis(10)]);
    sb.set_webhook(KEY, &receiver.url, WEBHOOK_SECRET);
    assert!(sb.send_ping(KEY));
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(statuses(&sb.deliveries()), [(500, 1), (200, 2)]);
    let got = receiver.received();
    assert_eq!(got[0].body, got[1].body);
    receiver.stop().await;
}
