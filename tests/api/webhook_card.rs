//! The settings page's webhook card (issue 20): KOMOJU deliveries whose signature fails
//! (the webhook secret does not match KOMOJU's) are counted per mall and shown, until a
//! correctly signed delivery arrives.

use crate::both_backends;
use crate::helpers::*;
use crate::install::{installed, WEBHOOK_SECRET as NEWMALL_SECRET};

both_backends!(failed_signatures_show_on_the_webhook_card_until_a_signed_delivery);

fn ping() -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"id": "ev_ping_card", "type": "ping", "resource": "event", "data": {}}),
    )
    .unwrap_or_default()
}

fn failures_of(app: &TestApp, mall: &str) -> Option<i64> {
    let mut c = app.state.db.get().unwrap_or_else(|e| panic!("{e}"));
    cafe24_komoju::db::webhook_events::bad_signatures(&mut c, mall)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|f| f.failures)
}

async fn failed_signatures_show_on_the_webhook_card_until_a_signed_delivery(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = installed(&app).await;
    let (_, page) = browser.page().await;
    assert!(!page.contains("signature-failures"), "none yet");

    let body = ping();
    let wrong = komoju_signature("whsec_not_the_merchants", &body);
    assert_eq!(app.send_webhook("newmall", &body, Some(&wrong)).await, 401);
    assert_eq!(app.send_webhook("newmall", &body, None).await, 401);
    // A mall that does not exist is refused before anything is written.
    assert_ne!(app.send_webhook("nomall", &body, Some(&wrong)).await, 200);
    assert_eq!(
        failures_of(&app, "nomall"),
        None,
        "no row for an unknown mall"
    );
    assert_eq!(failures_of(&app, "newmall"), Some(2), "one row, counted");

    let (_, page) = browser.page().await;
    let card = page
        .split(r#"id="signature-failures""#)
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no failures on the card: {page}"));
    assert!(
        card.contains("Deliveries from KOMOJU that failed their signature since "),
        "{card}"
    );
    assert!(
        card.contains(" JST: 2."),
        "in the shop's zone, counted: {card}"
    );
    assert!(card.contains("does not match KOMOJU's"), "{card}");

    // A correctly signed delivery clears it.
    let good = komoju_signature(NEWMALL_SECRET, &body);
    assert_eq!(app.send_webhook("newmall", &body, Some(&good)).await, 200);
    let (_, page) = browser.page().await;
    assert!(!page.contains("signature-failures"), "{page}");
    assert_eq!(failures_of(&app, "newmall"), None);
}
