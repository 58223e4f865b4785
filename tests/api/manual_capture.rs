//! Manual capture (issue 20, item 2): a merchant on `capture: manual` authorizes at
//! checkout and captures at shipment. Cafe24 hears success at the authorization and
//! nothing more at the capture; the Capture button makes one KOMOJU call however many
//! clicks; a refusal leaves the order authorized with KOMOJU's reason; the service
//! captures by itself after `auto_capture_after_days`; a Cafe24 cancellation before the
//! capture cancels the authorization.

use std::time::Duration;

use cafe24_komoju::capture::{self, Capturer};
use cafe24_komoju_sandbox::Fault;

use crate::both_backends;
use crate::helpers::*;
use crate::install::{checkout, installed, merchant_row, Browser};

both_backends!(
    the_authorization_is_the_success_cafe24_hears_and_the_capture_adds_nothing,
    two_clicks_on_capture_make_one_komoju_capture,
    a_refused_capture_leaves_the_order_authorized_with_the_reason,
    an_authorization_nobody_captured_is_captured_after_its_days,
    a_cafe24_cancellation_before_the_capture_cancels_the_authorization,
    the_settings_form_refuses_days_outside_komojus_window
);

const ORDER: &str = "20261206-0000101";

/// The demo merchant on manual capture, through `merchant add` (its other settings as
/// [`spawn_app`] made them).
async fn manual(app: &TestApp, days: &str) {
    app.add_merchant(
        &MerchantAdd::demo()
            .flag("--payment-types", "credit_card,konbini")
            .flag("--capture", "manual")
            .flag("--auto-capture-after-days", days),
    )
    .await;
}

/// An asynchronous checkout of the demo merchant paid by card and returned through the
/// callback; returns the payment id.
async fn authorized_async(app: &TestApp, cafe24: &Receiver) -> String {
    let url = app
        .async_checkout_ok(&async_fields(ORDER, "3400", "JPY", cafe24))
        .await;
    let callback = app.press(&url, "credit_card").await;
    let resp = app.get(&callback).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(state(app, ORDER).await, "authorized");
    app.order(ORDER)
        .await
        .and_then(|o| o.komoju_payment_id)
        .unwrap_or_else(|| panic!("no payment"))
}

async fn state(app: &TestApp, order_id: &str) -> String {
    app.order(order_id)
        .await
        .map(|o| o.state.to_string())
        .unwrap_or_default()
}

fn captures_at_komoju(app: &TestApp, tid: &str) -> usize {
    app.komoju_posts()
        .iter()
        .filter(|r| r.path == format!("/api/v1/payments/{tid}/capture"))
        .count()
}

async fn the_authorization_is_the_success_cafe24_hears_and_the_capture_adds_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    manual(&app, "7").await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let tid = authorized_async(&app, &cafe24).await;
    let session = app.sandbox.payment_json(&tid).unwrap_or_default();
    assert_eq!(session["status"], "authorized", "KOMOJU holds the money");
    app.drain_outbox().await;
    let heard = cafe24.received();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(heard[0].fields["request_type"], "payment");
    assert_eq!(heard[0].fields["payed_tf"], "T");
    assert_eq!(heard[0].fields["result_code"], "0000");
    assert_eq!(heard[0].fields["amount"], "3400");

    let merchant = app.state.merchants.load("demomall", None).await;
    let merchant = merchant.unwrap_or_else(|e| panic!("{e}"));
    let pk = app.order(ORDER).await.map(|o| o.id).unwrap_or_default();
    let done = capture::capture(&app.state, &merchant, &pk, Capturer::Merchant).await;
    assert_eq!(done.ok(), Some(capture::Captured::Done));
    assert_eq!(state(&app, ORDER).await, "paid");
    assert_eq!(
        app.sandbox.payment_json(&tid).unwrap_or_default()["status"],
        "captured"
    );
    app.drain_outbox().await;
    assert_eq!(
        cafe24.received().len(),
        1,
        "Cafe24 heard of success once, at the authorization"
    );

    // The synchronous flow says the same: a held authorization is a success.
    let other = "20261206-0000102";
    let url = app
        .sync_checkout_ok(&checkout_fields(other, "1200", "JPY"))
        .await;
    let callback = app.press(&url, "credit_card").await;
    let back = location(&app.get(&callback).await);
    assert_eq!(query_of(&back)["result_code"], "0000", "{back}");
    assert_eq!(state(&app, other).await, "authorized");
}

/// The payments page of the installed NEW_MALL, with its Capture form's CSRF token.
async fn payments_page(browser: &Browser<'_>) -> String {
    let (status, page) = browser.get("/payments").await;
    assert_eq!(status, 200);
    page
}

/// NEW_MALL installed by clicks, switched to manual capture on its settings form, and
/// one of its orders authorized by card. Returns the browser, the order id and the
/// payment id.
async fn authorized_on_the_site(app: &TestApp) -> (Browser<'_>, String, String) {
    let mut browser = installed(app).await;
    let (status, _) = browser
        .post(
            "/komoju",
            &[
                ("payment_types_shown", "1"),
                ("payment_types", "credit_card"),
                ("cancel_mode", "sync"),
                ("locale", "en"),
                ("capture", "manual"),
                ("auto_capture_after_days", "5"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let merchant = merchant_row(app, "newmall").unwrap_or_else(|| panic!("no merchant"));
    assert_eq!(merchant.capture.as_str(), "manual");
    assert_eq!(merchant.auto_capture_after_days, 5);
    let partner = format!("newmall:1:{}", merchant.public_ref);
    let order_id = "NEW-0001".to_owned();
    let url = app.sync_checkout_ok(&checkout(&partner, &order_id)).await;
    let callback = app.press(&url, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);
    let order = app
        .state
        .db
        .run({
            let id = order_id.clone();
            move |c| cafe24_komoju::db::orders::find_by_order_id(c, "newmall", &id)
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.as_str(), "authorized");
    let tid = order.komoju_payment_id.unwrap_or_default();
    (browser, order_id, tid)
}

/// The order's page as the installed NEW_MALL's session sees it, at `path_and_query`
/// under `/settings/newmall/payments/`.
async fn order_page(browser: &Browser<'_>, path_and_query: &str) -> String {
    let (status, page) = browser.get(&format!("/payments/{path_and_query}")).await;
    assert_eq!(status, 200);
    page
}

fn capture_csrf(page: &str) -> String {
    let form = page
        .split(r#"class="inline capture""#)
        .nth(1)
        .unwrap_or_else(|| panic!("no Capture button on the page: {page}"));
    form.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

async fn click_capture(browser: &Browser<'_>, order_id: &str, csrf: &str) -> (u16, String) {
    let resp = browser
        .app
        .client
        .post(format!(
            "{}/settings/{}/payments/{order_id}/capture",
            browser.app.address, browser.mall
        ))
        .header(
            "Cookie",
            format!("cafe24_komoju_session={}", browser.session),
        )
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("capture: {e}"));
    let status = resp.status().as_u16();
    let to = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, to)
}

async fn two_clicks_on_capture_make_one_komoju_capture(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, order_id, tid) = authorized_on_the_site(&app).await;
    let page = payments_page(&browser).await;
    let csrf = capture_csrf(&page);
    // A slow KOMOJU keeps the first capture in flight while the second click arrives.
    app.sandbox
        .fail_next(1, Fault::DelayAfterProcessing(Duration::from_millis(300)));
    let (first, second) = tokio::join!(
        click_capture(&browser, &order_id, &csrf),
        click_capture(&browser, &order_id, &csrf)
    );
    assert_eq!((first.0, second.0), (303, 303));
    let outcomes = [first.1.clone(), second.1.clone()];
    assert!(
        outcomes.iter().any(|l| l.ends_with("?done=captured"))
            && outcomes
                .iter()
                .any(|l| l.ends_with("?done=capture-not-now")),
        "{outcomes:?}"
    );
    assert!(first
        .1
        .starts_with(&format!("/settings/newmall/payments/{order_id}?")));
    assert_eq!(captures_at_komoju(&app, &tid), 1, "one KOMOJU capture");
    let order = app
        .state
        .db
        .run(move |c| cafe24_komoju::db::orders::find_by_order_id(c, "newmall", "NEW-0001"))
        .await
        .ok()
        .flatten();
    assert_eq!(order.map(|o| o.state.to_string()), Some("paid".into()));
    // Paid now: neither page has a Capture button left, and the order's timeline says
    // who captured it.
    assert!(!payments_page(&browser).await.contains("inline capture"));
    let page = order_page(&browser, &format!("{order_id}?done=captured")).await;
    assert!(
        page.contains("Captured: the payment is received."),
        "{page}"
    );
    assert!(!page.contains("inline capture"));
    // A third click finds nothing to capture and calls KOMOJU no more.
    let third = click_capture(&browser, &order_id, &csrf).await;
    assert!(third.1.ends_with("?done=capture-not-now"), "{third:?}");
    assert_eq!(captures_at_komoju(&app, &tid), 1);
    // Another mall's order id, or none, is the same 404; a form without the CSRF token
    // is refused and captures nothing.
    assert_eq!(
        click_capture(&browser, "20261206-0000999", &csrf).await.0,
        404
    );
    assert_eq!(click_capture(&browser, &order_id, "forged").await.0, 403);
}

async fn a_refused_capture_leaves_the_order_authorized_with_the_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, order_id, tid) = authorized_on_the_site(&app).await;
    let csrf = capture_csrf(&payments_page(&browser).await);
    app.sandbox
        .fail_next(1, Fault::Unprocessable("not_capturable"));
    let (status, to) = click_capture(&browser, &order_id, &csrf).await;
    assert_eq!(status, 303);
    assert!(to.ends_with("?done=capture-refused"), "{to}");
    let pk = app
        .state
        .db
        .run(move |c| cafe24_komoju::db::orders::find_by_order_id(c, "newmall", "NEW-0001"))
        .await
        .ok()
        .flatten()
        .map(|o| {
            assert_eq!(o.state.as_str(), "authorized", "a refusal changes nothing");
            o.id
        })
        .unwrap_or_default();
    let row = app
        .state
        .db
        .run(move |c| cafe24_komoju::db::captures::find(c, &pk))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no capture row"));
    assert!(
        row.error
            .as_deref()
            .unwrap_or_default()
            .contains("not_capturable"),
        "{row:?}"
    );
    assert_eq!(row.claimed_until, None, "the button works again");
    // The order's page says so, with KOMOJU's reason and the button still there.
    let page = order_page(&browser, to.rsplit("/payments/").next().unwrap_or_default()).await;
    assert!(page.contains("KOMOJU refused the capture"), "{page}");
    assert!(page.contains("not_capturable"), "{page}");
    assert_eq!(capture_csrf(&page), csrf);
    // Clicked again, KOMOJU captures it.
    let (_, to) = click_capture(&browser, &order_id, &csrf).await;
    assert!(to.ends_with("?done=captured"), "{to}");
    assert_eq!(
        app.sandbox.payment_json(&tid).unwrap_or_default()["status"],
        "captured"
    );
}

/// One reconciliation pass, which must run (no other holds the pass lock).
async fn pass(app: &TestApp, backoff: &mut cafe24_komoju::reconciliation::Backoff) {
    let ran =
        cafe24_komoju::reconciliation::pass(&app.state, &app.settings.reconcile, backoff).await;
    assert!(matches!(ran, Ok(Some(_))), "{ran:?}");
}

async fn an_authorization_nobody_captured_is_captured_after_its_days(backend: Backend) {
    let app = spawn_quiet(backend).await;
    manual(&app, "3").await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let tid = authorized_async(&app, &cafe24).await;
    let mut backoff = cafe24_komoju::reconciliation::Backoff::default();
    // Two days on: not due, KOMOJU is not asked.
    app.clock.advance(Duration::from_secs(2 * 86_400));
    pass(&app, &mut backoff).await;
    assert_eq!(captures_at_komoju(&app, &tid), 0);
    assert_eq!(state(&app, ORDER).await, "authorized");
    // Past the third day: captured by the service, once.
    app.clock.advance(Duration::from_secs(86_400 + 60));
    pass(&app, &mut backoff).await;
    assert_eq!(captures_at_komoju(&app, &tid), 1);
    assert_eq!(state(&app, ORDER).await, "paid");
    pass(&app, &mut backoff).await;
    assert_eq!(captures_at_komoju(&app, &tid), 1, "captured once");
    let pk = app.order(ORDER).await.map(|o| o.id).unwrap_or_default();
    let events = app
        .state
        .db
        .run(move |c| cafe24_komoju::db::orders::events(c, &pk))
        .await
        .unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e.source == "auto_capture" && e.to_state == "paid"),
        "{events:?}"
    );
    app.drain_outbox().await;
    assert_eq!(cafe24.received().len(), 1, "nothing more for Cafe24");
}

async fn a_cafe24_cancellation_before_the_capture_cancels_the_authorization(backend: Backend) {
    let app = spawn_quiet(backend).await;
    manual(&app, "7").await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let tid = authorized_async(&app, &cafe24).await;
    let (status, body) = app
        .sync_cancel(&cancel_fields(ORDER, &tid, "3400", "JPY"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result_code"], "0000");
    assert_eq!(
        app.sandbox.payment_json(&tid).unwrap_or_default()["status"],
        "cancelled"
    );
    assert_eq!(state(&app, ORDER).await, "cancelled");
    assert_eq!(captures_at_komoju(&app, &tid), 0);
    app.drain_outbox().await;
    let heard = cafe24.received();
    assert_eq!(
        heard.len(),
        1,
        "the authorization's success only: Cafe24's own cancel was answered by its reply: {heard:?}"
    );
    // Nothing is left to capture automatically.
    app.clock.advance(Duration::from_secs(8 * 86_400));
    pass(&app, &mut cafe24_komoju::reconciliation::Backoff::default()).await;
    assert_eq!(captures_at_komoju(&app, &tid), 0);
}

async fn the_settings_form_refuses_days_outside_komojus_window(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = installed(&app).await;
    for days in ["0", "30", "seven"] {
        let (status, page) = browser
            .post(
                "/komoju",
                &[
                    ("payment_types_shown", "1"),
                    ("payment_types", "credit_card"),
                    ("cancel_mode", "sync"),
                    ("locale", "en"),
                    ("capture", "manual"),
                    ("auto_capture_after_days", days),
                ],
            )
            .await;
        assert_eq!(status, 422, "{days}");
        assert!(page.contains("from 1 to 29"), "{page}");
    }
    let merchant = merchant_row(&app, "newmall").unwrap_or_else(|| panic!("no merchant"));
    assert_eq!(merchant.capture.as_str(), "auto", "nothing saved");
    assert_eq!(merchant.auto_capture_after_days, 7);
}
