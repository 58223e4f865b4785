//! An order's own page on the settings site (issue 20, item 1): its story in words (who
//! did what), its notifications to Cafe24 with "send again" for a dead one, its refunds
//! with a bank-account refund's link for the buyer; only the session's mall's orders.

use std::time::Duration;

use crate::both_backends;
use crate::helpers::*;
use crate::install::{
    checkout, installed, merchant_row, set_cookie, Browser, NEW_MALL, SECRET_KEY, WEBHOOK_SECRET,
};

both_backends!(
    a_partly_refunded_order_tells_its_story_in_words,
    another_malls_order_is_the_same_404_as_a_missing_one,
    a_dead_notification_is_sent_again_from_the_page,
    a_konbini_refunds_bank_link_is_on_the_page_and_in_no_log
);

const WAIT: Duration = Duration::from_secs(5);

fn partner_id(app: &TestApp) -> String {
    let public_ref = merchant_row(app, NEW_MALL)
        .map(|m| m.public_ref)
        .unwrap_or_default();
    format!("{NEW_MALL}:1:{public_ref}")
}

/// An asynchronous checkout of the installed mall (¥1,200) notifying `cafe24`.
async fn checkout_notifying(app: &TestApp, order_id: &str, cafe24: &Receiver) -> String {
    let mut fields = checkout(&partner_id(app), order_id);
    fields.push(("return_noty_url".into(), cafe24.url("/noty")));
    app.async_checkout_ok(&fields).await
}

/// The buyer pays by card and comes back: the order is paid.
async fn paid_by_card(app: &TestApp, url: &str) {
    let callback = app.press(url, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302, "back from KOMOJU");
}

/// The installed mall's order `order_id`.
async fn order_of(app: &TestApp, order_id: &str) -> cafe24_komoju::db::orders::OrderRow {
    let id = order_id.to_owned();
    app.state
        .db
        .run(move |c| cafe24_komoju::db::orders::find_by_order_id(c, NEW_MALL, &id))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no order {order_id}"))
}

/// Cafe24's synchronous cancellation of `amount` yen of the installed mall's order.
async fn refund(app: &TestApp, order_id: &str, amount: &str) -> serde_json::Value {
    let tid = order_of(app, order_id)
        .await
        .komoju_payment_id
        .unwrap_or_default();
    let partner = partner_id(app);
    let hash = cafe24_hash(&[amount, "JPY", order_id, &partner, &tid]);
    let fields: Vec<(String, String)> = vec![
        ("partner_id".into(), partner),
        ("order_id".into(), order_id.into()),
        ("tid".into(), tid),
        ("cancel_amount".into(), amount.into()),
        ("currency".into(), "JPY".into()),
        ("hash_data".into(), hash),
    ];
    let (status, body) = app.sync_cancel(&fields).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result_code"], "0000", "{body}");
    body
}

/// The order's page as `browser`'s session sees it, with `query`.
async fn order_page(browser: &Browser<'_>, order_id: &str, query: &str) -> (u16, String) {
    browser.get(&format!("/payments/{order_id}{query}")).await
}

async fn a_partly_refunded_order_tells_its_story_in_words(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = installed(&app).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = checkout_notifying(&app, "ORD-0001", &cafe24).await;
    paid_by_card(&app, &url).await;
    refund(&app, "ORD-0001", "500").await;
    app.drain_outbox().await;

    let (status, page) = order_page(&browser, "ORD-0001", "?lang=en").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("¥1,200"),
        "the amount as the shop shows it: {page}"
    );
    assert!(page.contains("Partially refunded"), "{page}");
    assert!(page.contains("The buyer"), "the buyer came back: {page}");
    assert!(page.contains("The payment was received"), "{page}");
    assert!(
        page.contains("You (in Cafe24&#39;s admin)") || page.contains("You (in Cafe24's admin)"),
        "the refund is the merchant's: {page}"
    );
    assert!(page.contains("The payment was refunded"), "{page}");
    assert!(page.contains("¥500"), "the refund's amount: {page}");
    assert!(!page.contains("payment.captured") && !page.contains("payment.refunded"));
    assert!(
        page.contains("Payment result") && page.contains("Delivered"),
        "{page}"
    );
    assert!(
        !page.contains("send-again-"),
        "nothing to send again: {page}"
    );

    let (status, page) = order_page(&browser, "ORD-0001", "?lang=ja").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<html lang="ja">"#));
    assert!(
        page.contains("返金されました") && page.contains("一部返金"),
        "{page}"
    );
    assert!(
        page.contains("入金されました") && page.contains("購入者"),
        "{page}"
    );

    // The payments list links each order to its page.
    let list = browser
        .app
        .client
        .get(format!("{}/settings/{NEW_MALL}/payments", app.address))
        .header(
            "Cookie",
            format!("cafe24_komoju_session={}", browser.session),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(
        list.contains(r#"href="/settings/newmall/payments/ORD-0001""#),
        "{list}"
    );
}

async fn another_malls_order_is_the_same_404_as_a_missing_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = installed(&app).await;
    // The demo merchant's order: another mall's.
    app.sync_checkout_ok(&checkout_fields("20261206-0000999", "5000", "JPY"))
        .await;
    let (status, foreign) = order_page(&browser, "20261206-0000999", "").await;
    assert_eq!(status, 404);
    let (status, missing) = order_page(&browser, "20261206-0000998", "").await;
    assert_eq!(status, 404);
    assert_eq!(foreign, missing, "the same page, whoever's the order is");
    assert!(!foreign.contains("¥5,000"));
}

async fn a_dead_notification_is_sent_again_from_the_page(backend: Backend) {
    let app = spawn_app(backend).await;
    installed(&app).await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    cafe24.fail_always(true);
    let url = checkout_notifying(&app, "ORD-DEAD", &cafe24).await;
    paid_by_card(&app, &url).await;
    assert_eq!(cafe24.wait_for(1, WAIT).await.len(), 1);
    for step in cafe24_komoju::notifications::SCHEDULE.iter() {
        app.outbox_settled().await;
        app.clock.advance(*step + *step / 9);
        app.drain_outbox().await;
    }
    let dead = app.notifications().await;
    assert_eq!(dead[0].state.as_str(), "dead");
    let id = dead[0].id;
    // Days went by: the merchant opens the app again from Cafe24's admin.
    let launch = app.get(&Browser::launch_url(&app, NEW_MALL, "en_US")).await;
    let session = set_cookie(&launch, "cafe24_komoju_session")
        .unwrap_or_else(|| panic!("no session from the launch"));
    let mut browser = Browser {
        app: &app,
        mall: NEW_MALL.into(),
        session,
        pages: Vec::new(),
    };
    let (_, page) = order_page(&browser, "ORD-DEAD", "?lang=en").await;
    assert!(page.contains("Failed: no more attempts"), "{page}");
    assert!(page.contains(&format!("send-again-{id}")), "{page}");

    // Without the session's CSRF token: refused, nothing queued.
    let retry = format!("/settings/{NEW_MALL}/payments/ORD-DEAD/notifications/{id}/retry");
    let session = browser.session.clone();
    let (status, _) = browser
        .post_raw(&retry, &session, &[("csrf", "forged")])
        .await;
    assert_eq!(status, 403);
    let (status, _) = browser.post_raw(&retry, &session, &[]).await;
    assert_eq!(status, 403);
    assert_eq!(app.notifications().await[0].state.as_str(), "dead");
    // Another order's id with this notification: no such notification of that order.
    let other = checkout_notifying(&app, "ORD-OTHER", &cafe24).await;
    assert!(!other.is_empty());
    let (status, _) = browser
        .post(
            &format!("/payments/ORD-OTHER/notifications/{id}/retry"),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.notifications().await[0].state.as_str(), "dead");

    // Cafe24 works again; the merchant presses "send again".
    cafe24.fail_always(false);
    let (status, _) = browser
        .post(&format!("/payments/ORD-DEAD/notifications/{id}/retry"), &[])
        .await;
    assert_eq!(status, 303);
    let (_, page) = order_page(&browser, "ORD-DEAD", "?lang=en&done=retried").await;
    assert!(page.contains("Queued again"), "{page}");
    app.drain_outbox().await;
    let delivered = app.notifications().await;
    let row = delivered
        .iter()
        .find(|n| n.id == id)
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(row.state.as_str(), "delivered");
    let (_, page) = order_page(&browser, "ORD-DEAD", "?lang=en").await;
    assert!(
        page.contains("Delivered") && !page.contains("send-again-"),
        "{page}"
    );
}

async fn a_konbini_refunds_bank_link_is_on_the_page_and_in_no_log(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = installed(&app).await;
    app.sandbox.set_webhook(
        SECRET_KEY,
        &format!(
            "{}/api/asynchronous-checkout/checkout/webhook?mall_id={NEW_MALL}",
            app.address
        ),
        WEBHOOK_SECRET,
    );
    app.sandbox
        .set_webhook_retry_delays(vec![Duration::from_millis(200); 5]);
    let cafe24 = Receiver::spawn(app.clock.clone());
    let url = checkout_notifying(&app, "ORD-KONBINI", &cafe24).await;
    app.press(&url, "konbini").await;
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    let tid = order_of(&app, "ORD-KONBINI")
        .await
        .komoju_payment_id
        .unwrap_or_default();
    app.sandbox
        .capture(&tid)
        .unwrap_or_else(|e| panic!("capture: {e}"));
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    assert_eq!(order_of(&app, "ORD-KONBINI").await.state.as_str(), "paid");
    refund(&app, "ORD-KONBINI", "1000").await;
    let link = app
        .komoju_refunds(&tid)
        .last()
        .and_then(|r| r["redirect_url"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("KOMOJU gave no redirect_url"));

    let (status, page) = order_page(&browser, "ORD-KONBINI", "?lang=en").await;
    assert_eq!(status, 200);
    let shown = link.replace('&', "&amp;");
    assert!(
        page.contains(&format!(r#"readonly value="{shown}""#)),
        "the link in a read-only field: {page}"
    );
    assert!(
        page.contains(r#"data-copy="refund-link-0""#),
        "a copy button: {page}"
    );
    assert!(page.contains("/settings/assets/copy.js"));
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    // The money is not back until the buyer gives an account: the page says so, and
    // KOMOJU's webhooks repeating the refund the cancellation applied say it once.
    let (_, page) = order_page(&browser, "ORD-KONBINI", "?lang=en").await;
    assert!(
        page.contains("paid out once the buyer gives a bank account"),
        "{page}"
    );
    assert!(
        page.matches("The payment was refunded").count() <= 2,
        "the merchant's refund, and KOMOJU's confirmation once: {page}"
    );
    assert!(
        !log_lines().iter().any(|l| l.contains(&link)),
        "the bank-account link reached a log line"
    );
}
