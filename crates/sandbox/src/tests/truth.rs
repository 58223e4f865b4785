//! The stand-in behaves as the real KOMOJU does (issue 17 item 10): declined cards,
//! session cancel, manual capture, converted currencies, refunds to a bank account,
//! `payment_deadline`, `mode`.

use super::*;
use crate::DECLINED_CARD_NUMBER;

fn refund_path(payment: &str) -> String {
    format!("/api/v1/payments/{payment}/refund")
}

#[actix_web::test]
async fn a_declined_card_fails_the_payment_keeps_the_session_open_and_may_be_paid_again() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let session = create!(&app, "order-1");

    let declined = submit!(
        &app,
        &session,
        format!("method=credit_card&card_number={DECLINED_CARD_NUMBER}")
    );
    // The buyer stays on KOMOJU's page: 200, the page again, the reason, no redirect.
    assert_eq!(declined.status, StatusCode::OK, "{}", declined.text());
    assert!(declined.headers.get("location").is_none());
    let html = declined.text();
    assert!(html.contains("Card declined"), "{html}");
    assert!(html.contains("id=\"pay-card\""));
    let s = sb.session_json(&session).unwrap();
    assert_eq!(s["status"], "pending");
    assert_eq!(s["completed_at"], Value::Null);
    let failed = s["payment"]["id"].as_str().unwrap().to_string();
    assert_eq!(s["payment"]["status"], "failed");
    assert_eq!(s["payment"]["captured_at"], Value::Null);
    assert_eq!(s["payment"]["payment_details"]["last_four_digits"], "1059");

    // Another card: a new payment, which becomes the session's.
    let paid = submit!(
        &app,
        &session,
        "method=credit_card&card_number=5555555555554444"
    );
    assert_eq!(paid.status, StatusCode::FOUND);
    let s = sb.session_json(&session).unwrap();
    assert_eq!(s["status"], "completed");
    let captured = s["payment"]["id"].as_str().unwrap();
    assert_ne!(captured, failed);
    assert_eq!(s["payment"]["status"], "captured");
    assert_eq!(s["payment"]["payment_details"]["brand"], "master");
    assert_eq!(sb.payment_json(&failed).unwrap()["status"], "failed");

    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(receiver.types(), ["payment.failed", "payment.captured"]);
    let failed_event = receiver.received()[0].json();
    assert_eq!(failed_event["data"]["id"], failed.as_str());
    assert_eq!(failed_event["data"]["status"], "failed");
    receiver.stop().await;
}

#[actix_web::test]
async fn every_failing_test_card_is_declined_and_a_malformed_number_changes_nothing() {
    let sb = sandbox();
    let app = app!(sb);
    for (i, number) in [
        "4123111111111000",
        "4123111111111018",
        "4123111111111034",
        "4123111111111042",
        "4123111111111059",
        "4123111111111067",
        "4123111111111075",
    ]
    .iter()
    .enumerate()
    {
        let session = create!(&app, &format!("order-{i}"));
        let answer = submit!(
            &app,
            &session,
            format!("method=credit_card&card_number={number}")
        );
        assert_eq!(answer.status, StatusCode::OK, "{number}");
        let s = sb.session_json(&session).unwrap();
        assert_eq!(
            (s["status"].clone(), s["payment"]["status"].clone()),
            (json!("pending"), json!("failed")),
            "{number}"
        );
    }
    let session = create!(&app, "order-x");
    let malformed = submit!(&app, &session, "method=credit_card&card_number=4111-abc");
    assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(malformed.text().contains("14 to 19 digits"));
    assert_eq!(sb.session_json(&session).unwrap()["payment"], Value::Null);
}

#[actix_web::test]
async fn cancel_session_cancels_a_pending_session_and_refuses_a_completed_one() {
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "order-1");
    let path = format!("/api/v1/sessions/{session}/cancel");
    let cancel = || TestRequest::post().uri(&path).insert_header(basic(KEY));

    let answer = send(&app, cancel().to_request()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let s = answer.json();
    assert_eq!(s["id"], session.as_str());
    assert_eq!(s["status"], "cancelled");
    assert!(s["cancelled_at"].is_string());
    assert_eq!(sb.session_json(&session).unwrap(), s);
    // Cancelled already: answered as it is.
    let again = send(&app, cancel().to_request()).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), s);
    assert_eq!(
        pay!(&app, &session, "credit_card").status,
        StatusCode::CONFLICT
    );

    let other = send(
        &app,
        TestRequest::post()
            .uri(&path)
            .insert_header(basic(OTHER_KEY))
            .to_request(),
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);

    let completed = create!(&app, "order-2");
    pay!(&app, &completed, "credit_card");
    let refused = send(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/sessions/{completed}/cancel"))
            .insert_header(basic(KEY))
            .to_request(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_of(&refused).0, "unprocessable_entity");
    assert_eq!(sb.session_json(&completed).unwrap()["status"], "completed");

    let recorded: Vec<(String, u16)> = sb
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/cancel"))
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        recorded,
        [
            ("POST".to_string(), 200),
            ("POST".to_string(), 200),
            ("POST".to_string(), 404),
            ("POST".to_string(), 422)
        ]
    );
}

#[actix_web::test]
async fn a_manual_capture_session_keeps_the_card_authorized_until_captured() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let mut body = session_body("order-1");
    body["payment_data"]["capture"] = json!("manual");
    let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    assert_eq!(created.json()["payment_data"]["capture"], "manual");
    let session = created.json()["id"].as_str().unwrap().to_string();
    pay!(&app, &session, "credit_card");
    let payment = payment_id_of(&sb, &session);
    assert_eq!(sb.payment_json(&payment).unwrap()["status"], "authorized");
    let capture_path = format!("/api/v1/payments/{payment}/capture");

    let too_much = send(
        &app,
        post_json(&capture_path, KEY, &json!({"amount": 1001})).to_request(),
    )
    .await;
    assert_eq!(
        error_of(&too_much),
        ("invalid_parameter".to_string(), json!("amount"))
    );
    let captured = send(
        &app,
        post_json(&capture_path, KEY, &json!({"amount": 900})).to_request(),
    )
    .await;
    assert_eq!(captured.status, StatusCode::OK, "{}", captured.text());
    let p = captured.json();
    assert_eq!(
        (p["status"].clone(), p["amount"].clone()),
        (json!("captured"), json!(900))
    );
    assert!(p["captured_at"].is_string());
    let twice = send(&app, post_json(&capture_path, KEY, &json!({})).to_request()).await;
    assert_eq!(twice.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_of(&twice).0, "not_capturable");
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(receiver.types(), ["payment.authorized", "payment.captured"]);
    receiver.stop().await;
}

#[actix_web::test]
async fn only_an_authorized_manual_card_payment_is_capturable() {
    let sb = sandbox();
    let app = app!(sb);
    let konbini = create!(&app, "order-1");
    pay!(&app, &konbini, "konbini");
    let auto = create!(&app, "order-2");
    pay!(&app, &auto, "credit_card");
    for session in [&konbini, &auto] {
        let payment = payment_id_of(&sb, session);
        let answer = send(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/payments/{payment}/capture"))
                .insert_header(basic(KEY))
                .to_request(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.text()
        );
        assert_eq!(error_of(&answer).0, "not_capturable");
    }
    // The account-wide control still works, and the API then captures in full.
    sb.set_card_manual_capture(true);
    let manual = create!(&app, "order-3");
    pay!(&app, &manual, "credit_card");
    let payment = payment_id_of(&sb, &manual);
    let answer = send(
        &app,
        post_json(
            &format!("/api/v1/payments/{payment}/capture"),
            KEY,
            &json!({}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(answer.json()["status"], "captured");
    assert_eq!(answer.json()["amount"], 1000);
    let stranger = send(
        &app,
        post_json(
            &format!("/api/v1/payments/{payment}/capture"),
            OTHER_KEY,
            &json!({}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
}

fn usd_session(types: Value) -> Value {
    json!({
        "amount": 1234,
        "currency": "USD",
        "return_url": "https://shop.example/cb",
        "payment_types": types,
    })
}

#[actix_web::test]
async fn a_jpy_only_type_on_a_usd_session_is_charged_in_jpy() {
    let sb = sandbox();
    let app = app!(sb);
    let body = usd_session(json!(["credit_card", "konbini", "paypay"]));
    let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    let s = created.json();
    // $12.34 at the default 150: ¥1851.
    assert_eq!(s["payment_methods"][0], json!({"type": "credit_card"}));
    assert_eq!(s["payment_methods"][1]["amount"], 1851);
    assert_eq!(s["payment_methods"][1]["currency"], "JPY");
    assert_eq!(s["payment_methods"][1]["exchange_rate"], 150.0);
    assert_eq!(
        s["payment_methods"][2],
        json!({"type": "paypay", "amount": 1851, "currency": "JPY", "exchange_rate": 150.0})
    );
    let session = s["id"].as_str().unwrap().to_string();
    pay!(&app, &session, "konbini");
    let s = sb.session_json(&session).unwrap();
    assert_eq!(
        (s["amount"].clone(), s["currency"].clone()),
        (json!(1234), json!("USD"))
    );
    let p = &s["payment"];
    assert_eq!(
        (p["amount"].clone(), p["currency"].clone()),
        (json!(1851), json!("JPY"))
    );
    assert_eq!(p["total"], 1851);

    // A rate set later applies to sessions created later; a card stays in USD.
    sb.set_exchange_rate("USD", "JPY", 100.0);
    let body = usd_session(json!(["paypay", "credit_card"]));
    let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    let later = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!(created.json()["payment_methods"][0]["amount"], 1234);
    submit!(&app, &later, "method=paypay");
    let p = &sb.session_json(&later).unwrap()["payment"];
    assert_eq!(
        (
            p["amount"].clone(),
            p["currency"].clone(),
            p["status"].clone()
        ),
        (json!(1234), json!("JPY"), json!("captured"))
    );
    let card = send(
        &app,
        post_json(
            "/api/v1/sessions",
            KEY,
            &usd_session(json!(["credit_card"])),
        )
        .to_request(),
    )
    .await;
    let card = card.json()["id"].as_str().unwrap().to_string();
    pay!(&app, &card, "credit_card");
    let p = &sb.session_json(&card).unwrap()["payment"];
    assert_eq!(
        (p["amount"].clone(), p["currency"].clone()),
        (json!(1234), json!("USD"))
    );
}

#[actix_web::test]
async fn without_a_rate_a_type_the_currency_cannot_be_converted_for_is_not_offered() {
    let sb = sandbox();
    let app = app!(sb);
    let mut body = usd_session(json!(["credit_card", "konbini"]));
    body["currency"] = json!("NZD");
    let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    assert_eq!(
        created.json()["payment_methods"],
        json!([{"type": "credit_card"}])
    );
    let session = created.json()["id"].as_str().unwrap().to_string();
    let refused = pay!(&app, &session, "konbini");
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(sb.session_json(&session).unwrap()["payment"], Value::Null);
}

#[actix_web::test]
async fn a_konbini_refund_is_accepted_with_a_redirect_url_where_the_buyer_gives_an_account() {
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "konbini");
    let payment = payment_id_of(&sb, &session);
    sb.capture(&payment).unwrap();

    let answer = send(
        &app,
        post_json(&refund_path(&payment), KEY, &json!({"amount": 400})).to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let p = answer.json();
    assert_eq!(
        (p["status"].clone(), p["amount_refunded"].clone()),
        (json!("captured"), json!(400))
    );
    assert_eq!(p["refund_requests"], json!([]));
    let redirect = p["refunds"][0]["redirect_url"]
        .as_str()
        .unwrap()
        .to_string();
    let path = redirect.strip_prefix(BASE).unwrap().to_string();
    assert!(path.starts_with("/refund_requests/"), "{redirect}");

    let form = send(&app, TestRequest::get().uri(&path).to_request()).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text().contains("name=\"account_number\""));
    assert!(form.text().contains("400 JPY"));
    let account = "customer_name=%EF%BE%80%EF%BE%9B%EF%BD%B3&bank_name=Mizuho&branch_name=Ginza\
                   &branch_number=123&account_type=normal&account_number=7654321";
    let post = |body: String| {
        TestRequest::post()
            .uri(&path)
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .set_payload(body)
            .to_request()
    };
    let bad = send(&app, post(account.replace("7654321", "12"))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        sb.payment_json(&payment).unwrap()["refund_requests"],
        json!([])
    );
    let given = send(&app, post(account.to_string())).await;
    assert_eq!(given.status, StatusCode::SEE_OTHER);
    let requests = sb.payment_json(&payment).unwrap()["refund_requests"].clone();
    assert_eq!(requests.as_array().unwrap().len(), 1);
    let request = &requests[0];
    assert_eq!(request["status"], "pending");
    assert_eq!(request["payment"], payment.as_str());
    assert_eq!(request["bank_name"], "Mizuho");
    assert_eq!(request["branch_number"], "123");
    assert_eq!(request["account_number"], "7654321");
    assert_eq!(request["id"].as_str().unwrap().len(), 25);
    assert_eq!(
        send(&app, post(account.to_string())).await.status,
        StatusCode::CONFLICT
    );

    sb.complete_refund_request(&payment).unwrap();
    let p = sb.payment_json(&payment).unwrap();
    assert_eq!(p["refund_requests"][0]["status"], "completed");
    assert!(matches!(
        sb.complete_refund_request(&payment),
        Err(SandboxError::InvalidState(_))
    ));
    assert_eq!(
        sb.complete_refund_request("nope"),
        Err(SandboxError::NotFound)
    );
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(
        receiver.types(),
        [
            "payment.authorized",
            "payment.captured",
            "payment.refund.created",
            "payment.updated",
            "payment.updated"
        ]
    );
    receiver.stop().await;
}

#[actix_web::test]
async fn a_full_bank_refund_completes_through_the_control_alone_and_a_card_refund_has_no_redirect_url(
) {
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "order-1");
    pay!(&app, &session, "konbini");
    let payment = payment_id_of(&sb, &session);
    let early = send(
        &app,
        post_json(&refund_path(&payment), KEY, &json!({})).to_request(),
    )
    .await;
    assert_eq!(error_of(&early).0, "not_refundable");
    sb.capture(&payment).unwrap();
    let full = send(
        &app,
        post_json(&refund_path(&payment), KEY, &json!({})).to_request(),
    )
    .await;
    let p = full.json();
    assert_eq!(
        (p["status"].clone(), p["amount_refunded"].clone()),
        (json!("refunded"), json!(1000))
    );
    assert!(p["refunds"][0]["redirect_url"].is_string());
    sb.complete_refund_request(&payment).unwrap();
    let request = &sb.payment_json(&payment).unwrap()["refund_requests"][0];
    assert_eq!(request["status"], "completed");
    assert_eq!(request["account_number"], "1234567");

    let card = create!(&app, "order-2");
    pay!(&app, &card, "credit_card");
    let card_payment = payment_id_of(&sb, &card);
    let refunded = send(
        &app,
        post_json(&refund_path(&card_payment), KEY, &json!({})).to_request(),
    )
    .await;
    let refund = refunded.json()["refunds"][0].clone();
    assert!(refund.get("redirect_url").is_none(), "{refund}");
    assert!(matches!(
        sb.complete_refund_request(&card_payment),
        Err(SandboxError::InvalidState(_))
    ));
}

#[actix_web::test]
async fn payments_carry_a_top_level_payment_deadline_in_utc_and_sessions_take_mode_payment() {
    let sb = sandbox();
    let app = app!(sb);
    let mut body = session_body("order-1");
    body["mode"] = json!("payment");
    let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let session = created.json()["id"].as_str().unwrap().to_string();
    pay!(&app, &session, "konbini");
    let p = sb.payment_json(&payment_id_of(&sb, &session)).unwrap();
    let deadline = p["payment_deadline"].as_str().unwrap();
    assert!(deadline.ends_with("T14:59:59Z"), "{deadline}");
    let created_at =
        chrono::DateTime::parse_from_rfc3339(p["created_at"].as_str().unwrap()).unwrap();
    let deadline = chrono::DateTime::parse_from_rfc3339(deadline).unwrap();
    let days = (deadline - created_at).num_hours();
    assert!((48..=96).contains(&days), "{days} hours");
    assert!(p["payment_details"].get("expires_at").is_none());

    body["mode"] = json!("customer");
    body["payment_data"]["external_order_num"] = json!("order-2");
    let refused = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    assert_eq!(
        error_of(&refused),
        ("invalid_parameter".to_string(), json!("mode"))
    );
    body["mode"] = json!("payment");
    body["payment_data"]["capture"] = json!("later");
    let refused = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    assert_eq!(
        error_of(&refused),
        (
            "invalid_parameter".to_string(),
            json!("payment_data.capture")
        )
    );
}
