//! The hosted page pays every type a merchant can choose (issue 17 item 10), and a
//! deferred payment keeps the buyer on KOMOJU's page with what they need to pay.

use super::*;

fn all_types_body(order: &str) -> Value {
    let mut body = session_body(order);
    body["payment_types"] = json!([
        "credit_card",
        "konbini",
        "paypay",
        "bank_transfer",
        "pay_easy"
    ]);
    body
}

macro_rules! create_all {
    ($app:expr, $order:expr) => {{
        let answer = send(
            $app,
            post_json("/api/v1/sessions", KEY, &all_types_body($order)).to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()["id"].as_str().unwrap().to_string()
    }};
}

#[actix_web::test]
async fn every_type_the_merchant_can_choose_is_payable_on_the_hosted_page() {
    let sb = sandbox();
    let app = app!(sb);
    let session = create_all!(&app, "order-0");
    let html = send(
        &app,
        TestRequest::get()
            .uri(&format!("/sessions/{session}"))
            .to_request(),
    )
    .await
    .text();
    for button in [
        "pay-card",
        "pay-konbini",
        "pay-paypay",
        "pay-bank-transfer",
        "pay-pay-easy",
        "return-to-merchant",
    ] {
        assert!(
            html.contains(&format!("id=\"{button}\"")),
            "{button}: {html}"
        );
    }
    let cases = [
        ("credit_card", StatusCode::FOUND, "captured"),
        ("paypay", StatusCode::FOUND, "captured"),
        ("konbini", StatusCode::OK, "authorized"),
        ("bank_transfer", StatusCode::OK, "authorized"),
        ("pay_easy", StatusCode::OK, "authorized"),
    ];
    for (i, (method, status, payment_status)) in cases.iter().enumerate() {
        let session = create_all!(&app, &format!("order-{}", i + 1));
        let answer = pay!(&app, &session, method);
        assert_eq!(answer.status, *status, "{method}: {}", answer.text());
        let s = sb.session_json(&session).unwrap();
        assert_eq!(s["status"], "completed", "{method}");
        assert_eq!(s["payment"]["status"], *payment_status, "{method}");
        assert_eq!(s["payment"]["payment_details"]["type"], *method, "{method}");
        if *status == StatusCode::FOUND {
            assert!(answer
                .location()
                .ends_with(&format!("session_id={session}")));
        } else {
            let html = answer.text();
            assert!(html.contains("id=\"simulate-capture\""), "{method}");
            assert!(
                html.contains(&format!("callback?key=a%20b&amp;session_id={session}")),
                "{method}"
            );
        }
    }
}

#[actix_web::test]
async fn a_konbini_payment_shows_its_receipt_code_deadline_and_instructions_with_pay_at_the_store()
{
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let session = create!(&app, "order-1");
    let answer = submit!(&app, &session, "method=konbini&store=lawson");
    // The buyer stays on KOMOJU's page: no redirect.
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers.get("location").is_none());
    let payment = payment_id_of(&sb, &session);
    let p = sb.payment_json(&payment).unwrap();
    let details = &p["payment_details"];
    assert_eq!(details["store"], "lawson");
    let html = answer.text();
    for shown in [
        details["receipt"].as_str().unwrap(),
        details["confirmation_code"].as_str().unwrap(),
        p["payment_deadline"].as_str().unwrap(),
        details["instructions_url"].as_str().unwrap(),
        "lawson",
    ] {
        assert!(html.contains(shown), "{shown}: {html}");
    }
    let capture_action = format!("action=\"{BASE}/payments/{payment}/simulate-capture\"");
    assert!(html.contains(&capture_action), "{html}");
    assert!(html.contains(&format!("callback?key=a%20b&amp;session_id={session}")));
    // Reloading the session page shows the same instructions.
    let reload = send(
        &app,
        TestRequest::get()
            .uri(&format!("/sessions/{session}"))
            .to_request(),
    )
    .await;
    assert!(reload.text().contains(&capture_action));

    // "Pay at the store" from that page.
    let paid = send(
        &app,
        TestRequest::post()
            .uri(&format!("/payments/{payment}/simulate-capture"))
            .to_request(),
    )
    .await;
    assert_eq!(paid.status, StatusCode::OK);
    assert_eq!(sb.payment_json(&payment).unwrap()["status"], "captured");
    let after = send(
        &app,
        TestRequest::get()
            .uri(&format!("/sessions/{session}"))
            .to_request(),
    )
    .await
    .text();
    assert!(!after.contains("simulate-capture"), "{after}");
    assert!(after.contains("captured"));
    assert!(sb.webhooks_idle(IDLE).await);
    assert_eq!(receiver.types(), ["payment.authorized", "payment.captured"]);
    receiver.stop().await;
}

#[actix_web::test]
async fn bank_transfer_and_pay_easy_have_instructions_pages() {
    let sb = sandbox();
    let app = app!(sb);
    for (i, (method, shown)) in [
        ("bank_transfer", "account_number"),
        ("pay_easy", "confirmation_id"),
    ]
    .iter()
    .enumerate()
    {
        let session = create_all!(&app, &format!("order-{i}"));
        pay!(&app, &session, method);
        let payment = payment_id_of(&sb, &session);
        let p = sb.payment_json(&payment).unwrap();
        let url = p["payment_details"]["instructions_url"].as_str().unwrap();
        assert_eq!(url, format!("{BASE}/instructions/{payment}"));
        let page = send(
            &app,
            TestRequest::get()
                .uri(url.strip_prefix(BASE).unwrap())
                .to_request(),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{method}");
        let html = page.text();
        assert!(
            html.contains(p["payment_details"][shown].as_str().unwrap()),
            "{method}: {html}"
        );
        assert!(
            html.contains(p["payment_deadline"].as_str().unwrap()),
            "{method}"
        );
        assert!(html.contains("id=\"simulate-capture\""), "{method}");
        assert!(html.contains("id=\"return-to-merchant\""), "{method}");
    }
    let card = create!(&app, "order-card");
    pay!(&app, &card, "credit_card");
    let payment = payment_id_of(&sb, &card);
    let none = send(
        &app,
        TestRequest::get()
            .uri(&format!("/instructions/{payment}"))
            .to_request(),
    )
    .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_page_says_what_a_converted_type_charges() {
    let sb = sandbox();
    let app = app!(sb);
    let body = json!({
        "amount": 1234, "currency": "USD", "return_url": "https://shop.example/cb",
        "payment_types": ["credit_card", "paypay"]
    });
    let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    let session = created.json()["id"].as_str().unwrap().to_string();
    let html = send(
        &app,
        TestRequest::get()
            .uri(&format!("/sessions/{session}"))
            .to_request(),
    )
    .await
    .text();
    assert!(html.contains("12.34 USD"));
    assert!(html.contains("(1851 JPY at 150)"), "{html}");
}
