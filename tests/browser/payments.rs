//! The merchant's walk through payments (issue 20), in headless Chromium, against the
//! service as `cargo run -- serve` starts it in development, on a clock the test moves:
//! a mall installed by clicks switches to manual capture; a card order held on KOMOJU is
//! opened from the payments list and captured on its page; a konbini order paid at the
//! store is refunded by Cafe24 (a bank-account link to copy), and its notifications to a
//! dead Cafe24 address fail until dead, then are sent again from the page; the CSV export
//! is downloaded and parsed. The order page and the payments list in English, Korean and
//! Japanese (the pages' language switch), screenshots (`order-en.png`, `order-ko.png`, `payments-ja.png`) and no
//! WCAG 2.1 A/AA violation on each page visited.

use super::install::{
    dev_hash, fill, full_page, launch, serve_in_development, text_of, wait_text, INSTALL_KEY,
    INSTALL_MALL, INSTALL_WEBHOOK_SECRET,
};
use super::*;
use cafe24_komoju::db::notifications::{self, NotificationRow, NotificationState};
use cafe24_komoju_sandbox::{Cafe24Sandbox, Launch};

const CARD_ORDER: &str = "20261206-0000051";
const KONBINI_ORDER: &str = "20261206-0000052";

/// Clicks `css`, which submits a form, and waits until the browser shows the page the
/// form led to (the old document is gone).
async fn submit(client: &Client, css: &str) {
    let _ = client
        .execute("window.__before_submit = true;", vec![])
        .await;
    click(client, css).await;
    let deadline = Instant::now() + STEP;
    loop {
        let old = client
            .execute("return window.__before_submit === true;", vec![])
            .await
            .ok()
            .and_then(|v| v.as_bool());
        if old == Some(false) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{css} never led to a new page\n{}",
                diagnostics(client).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A screenshot `name` of the whole page at the usual width.
async fn page_screenshot(client: &Client, name: &str) {
    let _ = client.set_window_size(1200, 900).await;
    full_page(client).await;
    screenshot(client, name).await;
}

/// Ticks the checkbox `css` unless it is ticked.
async fn tick(client: &Client, css: &str) {
    let checked = client
        .execute(
            &format!("return document.querySelector(\"{css}\").checked;"),
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_bool());
    if checked != Some(true) {
        click(client, css).await;
    }
}

/// Install by clicks (launch in Japanese, Allow), a KOMOJU test key, card and konbini,
/// manual capture saved, the shop on. Returns the shop's partner id.
async fn install_with_manual_capture(
    client: &Client,
    service: &str,
    cafe24: &Cafe24Sandbox,
) -> String {
    launch(client, service, "ja").await;
    wait_for_url(client, "the consent page", |u| {
        u.path().ends_with("/oauth/authorize")
    })
    .await;
    click(client, "#allow").await;
    let settings = format!("/settings/{INSTALL_MALL}");
    wait_for_url(client, "the settings page", |u| u.path() == settings).await;
    fill(client, "#secret_key", INSTALL_KEY).await;
    fill(client, "#webhook_secret", INSTALL_WEBHOOK_SECRET).await;
    submit(client, "#save-komoju").await;
    wait_text(client, "#notice", |t| t == "保存しました。").await;

    // Card and konbini offered; the merchant captures card payments by hand.
    tick(client, "#pt-credit_card").await;
    tick(client, "#pt-konbini").await;
    click(client, "#capture-manual").await;
    submit(client, "#save-komoju").await;
    wait_text(client, "#notice", |t| t == "保存しました。").await;
    let manual = client
        .execute(
            "return document.getElementById('capture-manual').checked;",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_bool());
    assert_eq!(manual, Some(true), "manual capture was not kept");

    click(client, "#gateway-1").await;
    wait_text(client, "#shop-1 td:nth-child(4) .state", |t| t == "有効").await;
    let gateways = cafe24.payment_gateways(INSTALL_MALL);
    assert_eq!(gateways.len(), 1, "{gateways:?}");
    gateways[0].partner_id.clone()
}

/// POSTs Cafe24's signed form `fields` to `path`; the JSON reply.
async fn cafe24_post(service: &str, path: &str, fields: &[(&str, &str)]) -> serde_json::Value {
    let reply = reqwest::Client::new()
        .post(format!("{service}{path}"))
        .form(fields)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = reply.status();
    let body: serde_json::Value = reply
        .json()
        .await
        .unwrap_or_else(|e| panic!("{path} reply: {e}"));
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Opens the order's page (`lang`) until its state reads `state`.
async fn order_page_until(client: &Client, service: &str, order_id: &str, lang: &str, state: &str) {
    let page = format!("{service}/settings/{INSTALL_MALL}/payments/{order_id}?lang={lang}");
    let deadline = Instant::now() + STEP;
    loop {
        client
            .goto(&page)
            .await
            .unwrap_or_else(|e| panic!("order page: {e}"));
        if text_of(client, "#state").await.contains(state) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{order_id} never showed {state:?}\n{}",
                diagnostics(client).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Step 1: a card order held on KOMOJU, opened from the payments list, captured on its
/// page (screenshot `order-en.png` before the capture).
async fn card_order_captured(client: &Client, service: &str, partner_id: &str) {
    let (amount, currency) = ("3400", "JPY");
    let hash = dev_hash(&[amount, currency, CARD_ORDER, partner_id]);
    let return_url =
        format!("https://{INSTALL_MALL}.cafe24shop.com/Pay/Recv/openpg/PayReceiveRtnPage.php");
    let reply = cafe24_post(
        service,
        "/api/synchronous-checkout/checkout",
        &[
            ("partner_id", partner_id),
            ("order_id", CARD_ORDER),
            ("amount", amount),
            ("currency", currency),
            ("return_url", &return_url),
            ("shop_no", "1"),
            ("hash_data", &hash),
        ],
    )
    .await;
    let payment_url = reply["payment_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no payment_url: {reply}"));
    client
        .goto(payment_url)
        .await
        .unwrap_or_else(|e| panic!("hosted page: {e}"));
    click(client, "#pay-card").await;
    wait_for_url(client, "the way back to the mall", |u| {
        !u.path().contains("/sessions/")
    })
    .await;

    // English from now on (the switch on the settings page is remembered); the
    // payments list: the order's row links to its page.
    client
        .goto(&format!("{service}/settings/{INSTALL_MALL}?lang=en"))
        .await
        .unwrap_or_else(|e| panic!("settings: {e}"));
    wait_text(client, "#mode", |t| t.contains("Test mode")).await;
    let list = format!("{service}/settings/{INSTALL_MALL}/payments");
    let link = format!("a.order-link[href$='/{CARD_ORDER}']");
    let deadline = Instant::now() + STEP;
    loop {
        client
            .goto(&list)
            .await
            .unwrap_or_else(|e| panic!("payments: {e}"));
        if client.find(Locator::Css(&link)).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "{CARD_ORDER} never listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    submit(client, &link).await;
    wait_text(client, "#state", |t| t == "Authorized").await;
    wait_text(client, "#capture h2", |t| t == "Capture").await;
    page_screenshot(client, "order-en.png").await;
    crate::axe::no_violations(client, "the order page of an authorized order (en)").await;

    submit(client, "#capture form.capture button").await;
    wait_text(client, "#notice", |t| {
        t == "Captured: the payment is received."
    })
    .await;
    wait_text(client, "#state", |t| t == "Paid").await;
    assert!(
        client.find(Locator::Css("#capture")).await.is_err(),
        "the Capture section stayed after the capture"
    );
    crate::axe::no_violations(client, "the order page after a capture (en)").await;
}

/// Step 2a: a konbini order by asynchronous checkout whose notifications go to
/// `dead_noty_url`, paid at the store (the sandbox page's simulation), refunded by a
/// Cafe24 synchronous cancellation. Returns the bank-account link the order page shows.
async fn konbini_order_refunded(
    client: &Client,
    service: &str,
    komoju: &cafe24_komoju_sandbox::Sandbox,
    partner_id: &str,
    dead_noty_url: &str,
) -> String {
    let (amount, currency) = ("3065", "JPY");
    let hash = dev_hash(&[amount, currency, KONBINI_ORDER, partner_id]);
    let return_url =
        format!("https://{INSTALL_MALL}.cafe24shop.com/Pay/Recv/openpg/PayReceiveRtnPage.php");
    let reply = cafe24_post(
        service,
        "/api/asynchronous-checkout/checkout",
        &[
            ("partner_id", partner_id),
            ("order_id", KONBINI_ORDER),
            ("amount", amount),
            ("currency", currency),
            ("return_url", &return_url),
            ("return_noty_url", dead_noty_url),
            ("shop_no", "1"),
            ("hash_data", &hash),
        ],
    )
    .await;
    let payment_url = reply["payment_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no payment_url: {reply}"));
    client
        .goto(payment_url)
        .await
        .unwrap_or_else(|e| panic!("hosted page: {e}"));
    click(client, "#pay-konbini").await;
    // The simulation is a form post: wait for its page, or the order page opened next
    // can be replaced by the post's late answer.
    submit(client, "#simulate-capture").await;
    wait_for_url(client, "the capture simulation's page", |u| {
        u.path().ends_with("/simulate-capture")
    })
    .await;
    order_page_until(client, service, KONBINI_ORDER, "en", "Paid").await;

    // Cafe24 cancels the whole order (H2 with the service key); KOMOJU refunds a
    // konbini payment to a bank account the buyer gives on a page of its own.
    let session_id = payment_url.rsplit('/').next().unwrap_or_default();
    let session = komoju
        .session_json(session_id)
        .unwrap_or_else(|| panic!("no session {session_id}"));
    let tid = session["payment"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no payment: {session}"))
        .to_owned();
    let h2 = dev_hash(&[amount, currency, KONBINI_ORDER, partner_id, &tid]);
    let reply = cafe24_post(
        service,
        "/api/synchronous-cancellation/cancel",
        &[
            ("partner_id", partner_id),
            ("order_id", KONBINI_ORDER),
            ("tid", &tid),
            ("cancel_amount", amount),
            ("currency", currency),
            ("hash_data", &h2),
        ],
    )
    .await;
    order_page_until(client, service, KONBINI_ORDER, "en", "Refunded").await;
    let link: String = client
        .execute(
            "var f = document.getElementById('refund-link-0'); return f ? f.value : '';",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    assert!(
        link.contains("/refund_requests/"),
        "no bank-account link on the page (cancel reply {reply})\n{}",
        diagnostics(client).await
    );
    link
}

/// Step 2b: the Copy button selects the whole link in its field (what a person sees) and
/// puts it on the clipboard (read back with the clipboard permissions granted through
/// chromedriver's `POST /session/{id}/permissions`, the W3C Permissions extension).
async fn copy_the_link(client: &Client, driver: &str, link: &str) {
    let session = client
        .session_id()
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no WebDriver session id"));
    for name in ["clipboard-read", "clipboard-write"] {
        let granted = reqwest::Client::new()
            .post(format!("{driver}/session/{session}/permissions"))
            .json(&json!({"descriptor": {"name": name}, "state": "granted"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("grant {name}: {e}"));
        assert!(granted.status().is_success(), "grant {name}: {granted:?}");
    }
    click(client, "button[data-copy='refund-link-0']").await;
    let selected = client
        .execute(
            "var f = document.getElementById('refund-link-0');\
             return {focused: document.activeElement === f,\
                     selected: f.value.substring(f.selectionStart, f.selectionEnd)};",
            vec![],
        )
        .await
        .unwrap_or_default();
    assert_eq!(
        selected,
        json!({"focused": true, "selected": link}),
        "the Copy button did not select the link"
    );
    let deadline = Instant::now() + STEP;
    loop {
        let clipboard = client
            .execute_async(
                "var done = arguments[arguments.length - 1];\
                 navigator.clipboard.readText().then(done, function (e) { done('failed: ' + e); });",
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("clipboard: {e}"));
        if clipboard.as_str() == Some(link) {
            return;
        }
        if Instant::now() > deadline {
            panic!("the clipboard holds {clipboard}, not the link {link}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The notifications of the konbini order (those sent to `dead_noty_url`), from the
/// service's database.
async fn dead_port_rows(
    app: &web::Data<cafe24_komoju::services::Services>,
    url: &str,
) -> Vec<NotificationRow> {
    app.db
        .run(|conn| notifications::list(conn, None, 100))
        .await
        .unwrap_or_else(|e| panic!("notifications: {e}"))
        .into_iter()
        .filter(|n| n.target_url == url)
        .collect()
}

/// Step 2c: moves the service's clock past each retry of the schedule (and the failing
/// host's back-off), each time waiting for one more failed attempt, until every
/// notification of the konbini order is dead.
async fn until_dead(app: &web::Data<cafe24_komoju::services::Services>, clock: &Clock, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let attempts = |rows: &[NotificationRow]| rows.iter().map(|n| n.attempts).sum::<i32>();
    let mut rows = dead_port_rows(app, url).await;
    while rows.is_empty() || attempts(&rows) == 0 {
        assert!(Instant::now() < deadline, "no attempt to {url}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = dead_port_rows(app, url).await;
    }
    while rows.iter().any(|n| n.state != NotificationState::Dead) {
        let fewest = rows
            .iter()
            .filter(|n| n.state != NotificationState::Dead)
            .map(|n| n.attempts)
            .min()
            .unwrap_or(1);
        let step = cafe24_komoju::notifications::SCHEDULE
            .get(usize::try_from(fewest - 1).unwrap_or(0))
            .copied()
            .unwrap_or_default();
        clock.advance(step.mul_f64(1.1) + cafe24_komoju::notifications::HOST_BACKOFF_MAX);
        let before = attempts(&rows);
        loop {
            rows = dead_port_rows(app, url).await;
            if attempts(&rows) > before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no further attempt after the clock moved: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let expected = cafe24_komoju::notifications::SCHEDULE.len() as i32 + 1;
    assert!(
        rows.iter().all(|n| n.attempts == expected),
        "dead after other than {expected} attempts: {rows:?}"
    );
}

/// Cafe24 opens the app again now (the service's clock moved on: the session of the
/// morning has expired), in `lang`.
async fn launch_again(client: &Client, cafe24: &Cafe24Sandbox, clock: &Clock, lang: &str) {
    let url = cafe24.launch_url_for(&Launch {
        mall_id: INSTALL_MALL,
        shop_no: 1,
        lang,
        user_id: "admin",
        user_name: "",
        user_type: "P",
        timestamp: clock.unix_seconds(),
    });
    client
        .goto(&url)
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"));
    let settings = format!("/settings/{INSTALL_MALL}");
    wait_for_url(client, "the settings page", |u| u.path() == settings).await;
}

/// Step 3: the CSV export the payments page links to, downloaded with the browser's
/// cookies (the page's own policy forbids scripts to fetch) and parsed: `(order_id,
/// state)` of each row.
async fn csv_rows(client: &Client) -> Vec<(String, String)> {
    let href = client
        .find(Locator::Css("#csv-link"))
        .await
        .unwrap_or_else(|e| panic!("#csv-link: {e}"))
        .prop("href")
        .await
        .unwrap_or_else(|e| panic!("#csv-link href: {e}"))
        .unwrap_or_else(|| panic!("#csv-link has no href"));
    let cookies = client
        .get_all_cookies()
        .await
        .unwrap_or_else(|e| panic!("cookies: {e}"));
    let cookie: Vec<String> = cookies
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect();
    let reply = reqwest::Client::new()
        .get(&href)
        .header("cookie", cookie.join("; "))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CSV: {e}"));
    assert_eq!(reply.status(), 200, "CSV {href}");
    let text = reply.text().await.unwrap_or_else(|e| panic!("CSV: {e}"));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .unwrap_or_else(|e| panic!("CSV header: {e}\n{text}"))
        .clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column: {header:?}"))
    };
    let (order, state) = (column("order_id"), column("state"));
    let mut rows: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("CSV row: {e}\n{text}"));
            (r[order].to_owned(), r[state].to_owned())
        })
        .collect();
    rows.sort();
    rows
}

#[actix_web::test]
async fn a_merchant_captures_refunds_resends_and_exports() {
    if !browser_installed() {
        return;
    }
    let _turn = BROWSER_TURN.lock().await;
    let clock = Clock::system();
    let (service, app, _db) =
        serve_in_development(clock.clone(), &[("OUTBOX_POLL_MS", "50")]).await;
    let cafe24 = app
        .cafe24_sandbox()
        .unwrap_or_else(|| panic!("development mounts the Cafe24 stand-in"));
    let komoju = app
        .sandbox()
        .unwrap_or_else(|| panic!("development mounts the KOMOJU sandbox"));
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    // Cafe24's notification address: a port nothing listens on.
    let dead_noty_url = format!("http://127.0.0.1:{}/noty", free_port());
    let browser = Browser::start().await;
    let client = browser.client.clone();
    let driver = browser._driver.url.clone();
    browser
        .run(async {
            let partner_id = install_with_manual_capture(&client, &service, &cafe24).await;
            card_order_captured(&client, &service, &partner_id).await;

            let link =
                konbini_order_refunded(&client, &service, &komoju, &partner_id, &dead_noty_url)
                    .await;
            copy_the_link(&client, &driver, &link).await;
            crate::axe::no_violations(&client, "the order page of a refunded order (en)").await;

            until_dead(&state, &clock, &dead_noty_url).await;
            launch_again(&client, &cafe24, &clock, "en").await;
            order_page_until(&client, &service, KONBINI_ORDER, "en", "Refunded").await;
            wait_text(&client, "#notifications", |t| {
                t.contains("Failed: no more attempts")
            })
            .await;
            crate::axe::no_violations(&client, "the order page with a dead notification (en)")
                .await;
            submit(&client, "button[id^='send-again-']").await;
            wait_text(&client, "#notice", |t| {
                t == "Queued again: it is sent in a moment."
            })
            .await;
            let rows = dead_port_rows(&state, &dead_noty_url).await;
            assert!(
                rows.iter().any(|n| n.state != NotificationState::Dead),
                "nothing queued again: {rows:?}"
            );

            // The same page in Korean, through the language switch.
            click(&client, "nav.languages a[lang=ko]").await;
            wait_text(&client, "#state", |t| t == "환불 완료").await;
            page_screenshot(&client, "order-ko.png").await;
            crate::axe::no_violations(&client, "the order page (ko)").await;
            click(&client, "nav.languages a[lang=ja]").await;
            wait_text(&client, "#state", |t| t == "返金済み").await;
            wait_text(&client, "#refunds", |t| {
                t.contains("購入者が返金先口座を入力するリンク")
            })
            .await;
            crate::axe::no_violations(&client, "the order page (ja)").await;

            // The payments list in English and Korean, then in Japanese: both orders,
            // and the CSV export. (The switch is kept across pages: English asked for.)
            client
                .goto(&format!(
                    "{service}/settings/{INSTALL_MALL}/payments?lang=en"
                ))
                .await
                .unwrap_or_else(|e| panic!("payments: {e}"));
            wait_text(&client, "#payment-rows", |t| {
                t.contains(KONBINI_ORDER) && t.contains("Paid") && t.contains("Refunded")
            })
            .await;
            crate::axe::no_violations(&client, "the payments page (en)").await;
            click(&client, "nav.languages a[lang=ko]").await;
            wait_text(&client, "#payment-rows", |t| {
                t.contains(KONBINI_ORDER) && t.contains("결제 완료") && t.contains("환불 완료")
            })
            .await;
            crate::axe::no_violations(&client, "the payments page (ko)").await;
            click(&client, "nav.languages a[lang=ja]").await;
            wait_text(&client, "#payment-rows", |t| {
                t.contains(CARD_ORDER) && t.contains("決済済み") && t.contains("返金済み")
            })
            .await;
            page_screenshot(&client, "payments-ja.png").await;
            crate::axe::no_violations(&client, "the payments page (ja)").await;

            let rows = csv_rows(&client).await;
            assert_eq!(
                rows,
                vec![
                    (CARD_ORDER.to_owned(), "paid".to_owned()),
                    (KONBINI_ORDER.to_owned(), "refunded".to_owned()),
                ]
            );
        })
        .await;
}
