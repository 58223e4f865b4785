//! KOMOJU's shapes (issue 17 item 10): times in UTC with `Z`, ids of 25 lowercase
//! alphanumerics, `total = amount + tax + payment_method_fee`, only documented error codes
//! with their documented HTTP statuses.

use super::*;

/// `2018-11-13T06:20:21Z`.
fn is_utc_z(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b[19] == b'Z'
        && b[10] == b'T'
        && chrono::DateTime::parse_from_rfc3339(text)
            .is_ok_and(|t| t.offset().local_minus_utc() == 0)
}

fn is_komoju_id(text: &str) -> bool {
    text.len() == 25
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Every time (`*_at`, `payment_deadline`) and every id (`id`, and the `payment` and
/// `session` references) anywhere in `value`, with the path where it was found.
fn walk(
    value: &Value,
    path: &str,
    times: &mut Vec<(String, String)>,
    ids: &mut Vec<(String, String)>,
) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let here = format!("{path}.{key}");
                match (key.as_str(), v) {
                    (k, Value::String(s)) if k.ends_with("_at") || k == "payment_deadline" => {
                        times.push((here, s.clone()))
                    }
                    ("id" | "payment" | "session", Value::String(s)) => ids.push((here, s.clone())),
                    _ => walk(v, &here, times, ids),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), times, ids);
            }
        }
        _ => {}
    }
}

#[actix_web::test]
async fn times_are_utc_with_z_and_ids_are_25_lowercase_alphanumerics_everywhere() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "konbini");
    let payment = payment_id_of(&sb, &session);
    sb.capture(&payment).unwrap();
    send(
        &app,
        post_json(
            &format!("/api/v1/payments/{payment}/refund"),
            KEY,
            &json!({"amount": 100}),
        )
        .to_request(),
    )
    .await;
    sb.complete_refund_request(&payment).unwrap();
    let cancelled = create!(&app, "order-2");
    pay!(&app, &cancelled, "return");
    assert!(sb.webhooks_idle(IDLE).await);

    let mut documents: Vec<Value> = vec![
        sb.session_json(&session).unwrap(),
        sb.session_json(&cancelled).unwrap(),
    ];
    documents.extend(receiver.received().iter().map(Received::json));
    let (mut times, mut ids) = (Vec::new(), Vec::new());
    for document in &documents {
        walk(document, "", &mut times, &mut ids);
    }
    // Sessions, payment, refund, refund request, events.
    assert!(times.len() >= 12, "{times:?}");
    assert!(ids.len() >= 15, "{ids:?}");
    for (path, time) in &times {
        assert!(is_utc_z(time), "{path} = {time}");
    }
    for (path, id) in &ids {
        assert!(is_komoju_id(id), "{path} = {id}");
    }
    for delivery in receiver.received() {
        assert!(is_komoju_id(&delivery.header("x-komoju-id")));
    }
    receiver.stop().await;
}

#[actix_web::test]
async fn a_fee_for_a_type_makes_the_total_differ_from_the_amount() {
    let sb = sandbox();
    let app = app!(sb);
    sb.set_payment_method_fee("konbini", 190);
    let methods = send(&app, get("/api/v1/payment_methods", KEY).to_request())
        .await
        .json();
    let fee_of = |slug: &str| {
        methods
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["type_slug"] == slug)
            .unwrap()["payment_method_fee"]
            .clone()
    };
    assert_eq!(
        (fee_of("konbini"), fee_of("credit_card")),
        (json!(190), json!(0))
    );

    let konbini = create!(&app, "order-1");
    pay!(&app, &konbini, "konbini");
    let payment = payment_id_of(&sb, &konbini);
    let p = sb.payment_json(&payment).unwrap();
    let figures = |p: &Value| {
        ["amount", "tax", "payment_method_fee", "total"].map(|k| p[k].as_i64().unwrap())
    };
    assert_eq!(figures(&p), [1000, 0, 190, 1190]);
    // The fee is not refunded: what is left is amount + tax.
    sb.capture(&payment).unwrap();
    let refunded = send(
        &app,
        post_json(
            &format!("/api/v1/payments/{payment}/refund"),
            KEY,
            &json!({}),
        )
        .to_request(),
    )
    .await
    .json();
    assert_eq!(
        (
            refunded["status"].clone(),
            refunded["amount_refunded"].clone()
        ),
        (json!("refunded"), json!(1000))
    );

    let card = create!(&app, "order-2");
    pay!(&app, &card, "credit_card");
    assert_eq!(
        figures(&sb.payment_json(&payment_id_of(&sb, &card)).unwrap()),
        [1000, 0, 0, 1000]
    );
    sb.set_payment_method_fee("konbini", 0);
    let again = create!(&app, "order-3");
    pay!(&app, &again, "konbini");
    assert_eq!(
        figures(&sb.payment_json(&payment_id_of(&sb, &again)).unwrap()),
        [1000, 0, 0, 1000]
    );
}

/// doc.komoju.com/docs/errors: each code with its HTTP status; the payment-specific
/// codes and `invalid_parameter`/`missing_parameter` are 422 (the EC-CUBE plugin's
/// translation keys put them under `unprocessable_entity`). 409 for an idempotency key in
/// flight (ja.doc.komoju.com/docs/idempotent-requests).
fn documented_status(code: &str) -> Option<u16> {
    Some(match code {
        "bad_request" => 400,
        "unauthorized" => 401,
        "request_failed" => 402,
        "forbidden" => 403,
        "not_found" => 404,
        "unprocessable_entity"
        | "invalid_parameter"
        | "missing_parameter"
        | "not_refundable"
        | "not_capturable"
        | "not_cancellable" => 422,
        "internal_server_error" => 500,
        "bad_gateway" => 502,
        "service_unavailable" => 503,
        "gateway_timeout" => 504,
        _ => return None,
    })
}

#[actix_web::test]
async fn errors_use_only_komoju_codes_with_their_documented_statuses() {
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "konbini");
    let payment = payment_id_of(&sb, &session);
    let mut answers = vec![
        send(
            &app,
            TestRequest::get().uri("/api/v1/sessions/x").to_request(),
        )
        .await,
        send(&app, get("/api/v1/sessions/nope", KEY).to_request()).await,
        send(
            &app,
            post_json("/api/v1/sessions", KEY, &json!({"currency": "JPY"})).to_request(),
        )
        .await,
        send(
            &app,
            post_json("/api/v1/sessions", KEY, &json!({"amount": -1})).to_request(),
        )
        .await,
        send(
            &app,
            post_json(
                &format!("/api/v1/payments/{payment}/refund"),
                KEY,
                &json!({}),
            )
            .to_request(),
        )
        .await,
        send(
            &app,
            post_json(
                &format!("/api/v1/payments/{payment}/capture"),
                KEY,
                &json!({}),
            )
            .to_request(),
        )
        .await,
        send(
            &app,
            post_json(
                &format!("/api/v1/sessions/{session}/cancel"),
                KEY,
                &json!({}),
            )
            .to_request(),
        )
        .await,
    ];
    sb.capture(&payment).unwrap();
    answers.push(
        send(
            &app,
            post_json(
                &format!("/api/v1/payments/{payment}/cancel"),
                KEY,
                &json!({}),
            )
            .to_request(),
        )
        .await,
    );
    answers.push(
        send(
            &app,
            TestRequest::post()
                .uri("/api/v1/sessions")
                .insert_header(basic(KEY))
                .insert_header(("Content-Type", "application/json"))
                .set_payload("[1]")
                .to_request(),
        )
        .await,
    );
    assert!(matches!(
        sb.lock().begin_idempotent(KEY, "busy", [0; 32]),
        IdempotencyBegin::Fresh
    ));
    answers.push(
        send(
            &app,
            post_json("/api/v1/sessions", KEY, &session_body("order-9"))
                .insert_header(("X-KOMOJU-IDEMPOTENCY", "busy"))
                .to_request(),
        )
        .await,
    );
    sb.fail_next(1, Fault::InternalError);
    answers.push(send(&app, get("/api/v1/sessions/x", KEY).to_request()).await);

    let mut seen = Vec::new();
    for answer in &answers {
        let body = answer.json();
        let error = body["error"].as_object().unwrap();
        assert_eq!(error.len(), 4, "{body}");
        assert_eq!(body["error"]["details"], json!({}), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        let code = body["error"]["code"].as_str().unwrap().to_string();
        let status = answer.status.as_u16();
        if status == 409 {
            assert_eq!(code, "bad_request");
        } else {
            assert_eq!(documented_status(&code), Some(status), "{code}: {body}");
        }
        seen.push(code);
    }
    assert_eq!(
        seen,
        [
            "unauthorized",
            "not_found",
            "missing_parameter",
            "invalid_parameter",
            "not_refundable",
            "not_capturable",
            "unprocessable_entity",
            "not_cancellable",
            "bad_request",
            "bad_request",
            "internal_server_error"
        ]
    );
}
