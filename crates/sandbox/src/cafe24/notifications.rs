//! Cafe24's receiving end of the service's notifications: `return_noty_url` (asynchronous
//! payment results), `cancel_noty_url` (asynchronous cancellation results) and external
//! checkout's `return_notification_url`, so that a developer sees what Cafe24 would have
//! been told. It records each POST, answers as Cafe24 does, and lists them on a page with
//! their fields and whether `hash_data` verifies under the app's service key. It never
//! calls anyone and changes nothing else of the stand-in.
//!
//! ```text
//! POST {prefix}/notifications/{kind}   form-encoded or JSON object; 200 {"result":"OK"}
//! GET  {prefix}/notifications          the page, newest first
//! ```
//!
//! Facts: Cafe24's PG sample app expects the reply `{"result":"OK"}` from both notice
//! URLs (shared/reference/cafe24-pg-sample-app.md §3.2, §3.3), and PROTOCOL.md §9 counts a
//! 2xx with `result` `OK` as delivered. `hash_data` is the standard Base64 of
//! HMAC-SHA256 under the service key of the values concatenated as sent: H3
//! `amount·currency·order_id·partner_id·tid` for payment notices (`request_type`
//! `payment` or `notification`, and external checkout's), H4
//! `cancel_amount·currency·order_id·partner_id·tid` for `request_type` `cancelnoty`
//! (PROTOCOL.md §2). Guesses: `{kind}` is any label the service puts in the URL (1–40 of
//! `a-z 0-9 _ -`), and a body that is neither is answered 400 `{"result":"FAIL"}` and not
//! recorded (Cafe24 documents no such reply).

use std::sync::Mutex;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use maud::html;
use serde_json::Value;
use sha2::Sha256;

use super::page::page;
use super::Cafe24Sandbox;

/// One notification as the stand-in received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cafe24Notification {
    /// The URL's last segment, e.g. `"return_noty"`, `"cancel_noty"`,
    /// `"return_notification"`.
    pub kind: String,
    /// The request's `Content-Type` as sent (`""` when none).
    pub content_type: String,
    /// The fields, in the order sent (a JSON number or boolean as its JSON text).
    pub fields: Vec<(String, String)>,
    /// Whether `hash_data` verifies.
    pub hash: HashCheck,
    /// When it arrived, UTC, `2026-12-06T01:02:03Z`.
    pub received_at: String,
}

impl Cafe24Notification {
    /// The value of the field `name`, if sent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The verdict on a notification's `hash_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashCheck {
    /// It is the H3 (payment notices) or H4 (`cancelnoty`) of the fields sent.
    Valid,
    /// It is something else.
    Invalid,
    /// No `hash_data` field.
    Missing,
    /// The stand-in has no service key ([`Cafe24Sandbox::set_service_key`]).
    NotChecked,
}

impl HashCheck {
    fn as_str(self) -> &'static str {
        match self {
            HashCheck::Valid => "valid",
            HashCheck::Invalid => "INVALID",
            HashCheck::Missing => "missing",
            HashCheck::NotChecked => "not checked (no service key)",
        }
    }
}

/// What the notification receiver keeps: the service key and what arrived.
#[derive(Default)]
pub(super) struct Inbox {
    inner: Mutex<InboxState>,
}

#[derive(Default)]
struct InboxState {
    service_key: Option<String>,
    received: Vec<Cafe24Notification>,
}

impl Cafe24Sandbox {
    /// The app's service key (the Developer Center's, the service's
    /// `CAFE24_SERVICE_KEY`), with which the notification receiver checks `hash_data`;
    /// until it is set, every notification is listed as not checked.
    pub fn set_service_key(&self, service_key: &str) {
        self.inbox().service_key = Some(service_key.to_string());
    }

    /// Where the notification receiver takes notifications of `kind`:
    /// `{public_base}/notifications/{kind}`, e.g. for a checkout's `return_noty_url`.
    pub fn notification_url(&self, kind: &str) -> String {
        format!("{}/notifications/{kind}", self.public_base())
    }

    /// Every notification received, oldest first.
    pub fn notifications(&self) -> Vec<Cafe24Notification> {
        self.inbox().received.clone()
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.inner
            .notifications
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// `POST {prefix}/notifications/{kind}`.
pub(super) async fn receive(
    req: HttpRequest,
    kind: web::Path<String>,
    body: Bytes,
    sandbox: web::Data<Cafe24Sandbox>,
) -> HttpResponse {
    let valid_kind = (1..=40).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid_kind {
        return HttpResponse::NotFound().json(serde_json::json!({"result": "FAIL"}));
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(fields) = fields_of(&content_type, &body) else {
        return HttpResponse::BadRequest().json(serde_json::json!({"result": "FAIL"}));
    };
    let mut inbox = sandbox.inbox();
    let hash = check_hash(inbox.service_key.as_deref(), &fields);
    log::info!(
        "cafe24 sandbox: {kind} notification received, hash_data {}",
        hash.as_str()
    );
    inbox.received.push(Cafe24Notification {
        kind: kind.into_inner(),
        content_type,
        fields,
        hash,
        received_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    HttpResponse::Ok().json(serde_json::json!({"result": "OK"}))
}

/// A JSON object's members (strings as they are, other values as JSON text), or a
/// form-encoded body's pairs; `None` for anything else.
fn fields_of(content_type: &str, body: &[u8]) -> Option<Vec<(String, String)>> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("application/json") {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };
        return Some(
            map.into_iter()
                .map(|(key, value)| match value {
                    Value::String(s) => (key, s),
                    other => (key, other.to_string()),
                })
                .collect(),
        );
    }
    if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Some(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        );
    }
    None
}

/// H4 for `request_type` `cancelnoty`, H3 otherwise, over the values as sent (a missing
/// field counts as empty), compared in constant time.
fn check_hash(service_key: Option<&str>, fields: &[(String, String)]) -> HashCheck {
    let value = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(given) = value("hash_data") else {
        return HashCheck::Missing;
    };
    let Some(key) = service_key else {
        return HashCheck::NotChecked;
    };
    let first = if value("request_type") == Some("cancelnoty") {
        "cancel_amount"
    } else {
        "amount"
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return HashCheck::Invalid;
    };
    for name in [first, "currency", "order_id", "partner_id", "tid"] {
        mac.update(value(name).unwrap_or_default().as_bytes());
    }
    match base64::engine::general_purpose::STANDARD.decode(given) {
        Ok(bytes) if mac.verify_slice(&bytes).is_ok() => HashCheck::Valid,
        _ => HashCheck::Invalid,
    }
}

/// `GET {prefix}/notifications`: every notification, newest first, with its fields and
/// the verdict on its `hash_data`.
pub(super) async fn list(sandbox: web::Data<Cafe24Sandbox>) -> HttpResponse {
    let received = sandbox.notifications();
    let body = html! {
        p { "What the service told Cafe24 at " code { (sandbox.notification_url("{kind}")) } "." }
        @if received.is_empty() {
            p id="empty" { "No notification yet." }
        }
        @for (i, n) in received.iter().enumerate().rev() {
            section class="notification" id=(format!("notification-{i}")) {
                h3 { (n.kind) " · " (n.received_at) }
                p { "hash_data: " strong class="hash" { (n.hash.as_str()) } " · " (n.content_type) }
                table {
                    @for (key, value) in &n.fields {
                        tr { th { (key) } td { (value) } }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, "Notifications received", body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use actix_web::test::{self, TestRequest};
    use actix_web::App;

    use super::super::Cafe24App;
    use super::*;

    const BASE: &str = "http://127.0.0.1:9998/sandbox/cafe24";
    /// PROTOCOL.md §2's test vector (computed with Python's `hmac`): key
    /// `test-service-key`, amount `3065.00`, currency `PHP`, order_id
    /// `20220519-0000029`, partner_id `demomall:1:demo-public`. With an empty `tid`, H3
    /// and H4 sign the same bytes as H1.
    const KEY: &str = "test-service-key";
    const VECTOR: &str = "pVyNk4tIav+unOFEb8EC2XxVPJ47ngJbfKZ1RGgeW6w=";

    fn sandbox() -> Cafe24Sandbox {
        Cafe24Sandbox::new(
            BASE,
            Cafe24App {
                client_id: "client".into(),
                client_secret: "secret".into(),
                app_name: "app".into(),
                app_url: "http://127.0.0.1:8080/cafe24/launch".into(),
            },
        )
    }

    fn form(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    const PAYMENT: [(&str, &str); 7] = [
        ("request_type", "payment"),
        ("partner_id", "demomall:1:demo-public"),
        ("tid", ""),
        ("amount", "3065.00"),
        ("order_id", "20220519-0000029"),
        ("currency", "PHP"),
        ("hash_data", VECTOR),
    ];

    #[actix_web::test]
    async fn receives_form_and_json_answers_ok_and_checks_hash_data() {
        let sb = sandbox();
        sb.set_service_key(KEY);
        let app = test::init_service(App::new().configure(sb.configure("/sandbox/cafe24"))).await;
        let post = |kind: &str, content_type: &str, body: String| {
            TestRequest::post()
                .uri(&format!("/sandbox/cafe24/notifications/{kind}"))
                .insert_header(("Content-Type", content_type))
                .set_payload(body)
                .to_request()
        };
        let form_type = "application/x-www-form-urlencoded";
        let mut cancel = PAYMENT.to_vec();
        cancel[0] = ("request_type", "cancelnoty");
        cancel[3] = ("cancel_amount", "3065.00");
        let mut wrong = PAYMENT.to_vec();
        wrong[3] = ("amount", "3066.00");
        let mut missing = PAYMENT.to_vec();
        missing.pop();
        let json: serde_json::Map<String, Value> = PAYMENT
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let requests = [
            post("return_noty", form_type, form(&PAYMENT)),
            post("cancel_noty", form_type, form(&cancel)),
            post("return_noty", form_type, form(&wrong)),
            post("return_noty", form_type, form(&missing)),
            post(
                "return_notification",
                "application/json; charset=utf-8",
                Value::Object(json).to_string(),
            ),
        ];
        for req in requests {
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::OK);
            let body: Value = test::read_body_json(resp).await;
            assert_eq!(body, serde_json::json!({"result": "OK"}));
        }
        let got = sb.notifications();
        let verdicts: Vec<(&str, HashCheck)> =
            got.iter().map(|n| (n.kind.as_str(), n.hash)).collect();
        assert_eq!(
            verdicts,
            [
                ("return_noty", HashCheck::Valid),
                ("cancel_noty", HashCheck::Valid),
                ("return_noty", HashCheck::Invalid),
                ("return_noty", HashCheck::Missing),
                ("return_notification", HashCheck::Valid),
            ]
        );
        assert_eq!(got[0].field("amount"), Some("3065.00"));
        assert_eq!(got[0].fields.len(), 7);
        assert_eq!(got[0].content_type, form_type);
        assert!(got[0].received_at.ends_with('Z'));

        // Anything else is refused and not recorded.
        for req in [
            post("return_noty", "text/plain", "amount=1".into()),
            post("return_noty", "application/json", "[1]".into()),
            post("Bad%20Kind", form_type, form(&PAYMENT)),
        ] {
            let resp = test::call_service(&app, req).await;
            assert!(resp.status().is_client_error());
        }
        assert_eq!(sb.notifications().len(), 5);
    }

    #[actix_web::test]
    async fn without_a_service_key_nothing_is_checked_and_the_page_lists_every_field_escaped() {
        let sb = sandbox();
        let app = test::init_service(App::new().configure(sb.configure(""))).await;
        let mut fields = PAYMENT.to_vec();
        fields.push(("extra_data", "<script>x</script>"));
        let req = TestRequest::post()
            .uri("/notifications/return_noty")
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .set_payload(form(&fields))
            .to_request();
        assert_eq!(test::call_service(&app, req).await.status(), StatusCode::OK);
        assert_eq!(sb.notifications()[0].hash, HashCheck::NotChecked);
        let page =
            test::call_service(&app, TestRequest::get().uri("/notifications").to_request()).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = String::from_utf8(test::read_body(page).await.to_vec()).unwrap();
        assert!(html.contains("not checked (no service key)"));
        assert!(html.contains("20220519-0000029") && html.contains(VECTOR));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>x"));
        assert_eq!(
            sb.notification_url("return_noty"),
            format!("{BASE}/notifications/return_noty")
        );
    }
}
