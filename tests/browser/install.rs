//! The install from Cafe24 by clicks (PROTOCOL.md §12), in headless Chromium, against the
//! service exactly as `cargo run -- serve` starts it in development: the KOMOJU sandbox
//! and the Cafe24 stand-in mounted, nothing else. The merchant makes a launch link on the
//! stand-in's page, allows the app, saves a KOMOJU test key, turns the shop and its
//! external checkout on, sends a test ping; the stand-in then holds one payment gateway
//! and one script tag. Screenshots of the settings page in Japanese, English and Korean
//! (through the language switch).

use super::*;

pub(crate) const INSTALL_MALL: &str = "browsermall";
pub(crate) const INSTALL_KEY: &str = "sk_test_browsermall_51c0ffee";
pub(crate) const INSTALL_WEBHOOK_SECRET: &str = "whsec_browsermall_7a7a";

/// The service as a newcomer runs it: development defaults, both sandboxes mounted.
async fn serve_like_a_newcomer() -> (String, Application, tempfile::TempDir) {
    serve_in_development(Clock::system(), &[]).await
}

/// The service in development on `clock`, with `extra` settings on top of the defaults.
pub(crate) async fn serve_in_development(
    clock: Clock,
    extra: &[(&'static str, &str)],
) -> (String, Application, tempfile::TempDir) {
    let _ = env_logger::builder().is_test(true).try_init();
    let db = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (listener, port) = bind();
    let service = format!("http://127.0.0.1:{port}");
    let mut env: HashMap<&str, String> = HashMap::from([
        (
            "DATABASE_URL",
            format!("sqlite://{}", db.path().join("dev.sqlite3").display()),
        ),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
    ]);
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let settings =
        Settings::from_lookup(|k| env.get(k).cloned()).unwrap_or_else(|e| panic!("settings: {e}"));
    let app = Application::build_with_listener(settings, listener, clock)
        .await
        .unwrap_or_else(|e| panic!("build: {e}"));
    (service, app, db)
}

pub(crate) async fn fill(client: &Client, css: &str, text: &str) {
    let field = match client.find(Locator::Css(css)).await {
        Ok(f) => f,
        Err(e) => panic!("{css}: {e}\n{}", diagnostics(client).await),
    };
    field
        .clear()
        .await
        .unwrap_or_else(|e| panic!("clear {css}: {e}"));
    field
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

pub(crate) async fn text_of(client: &Client, css: &str) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            return element.text().await.unwrap_or_default();
        }
        if Instant::now() > deadline {
            panic!("no {css}\n{}", diagnostics(client).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// On the Cafe24 stand-in's page, makes a launch link for the mall in `lang` and follows
/// it, as an operator opening the app in the Cafe24 admin.
pub(crate) async fn launch(client: &Client, service: &str, lang: &str) {
    client
        .goto(&format!("{service}/sandbox/cafe24/"))
        .await
        .unwrap_or_else(|e| panic!("goto: {e}"));
    fill(client, "#mall_id", INSTALL_MALL).await;
    client
        .find(Locator::Css(&format!("#lang option[value='{lang}']")))
        .await
        .unwrap_or_else(|e| panic!("lang: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("lang: {e}"));
    click(client, "#make-link").await;
    click(client, "#launch").await;
}

/// Makes the window as tall as the page, so a screenshot shows all of it.
pub(crate) async fn full_page(client: &Client) {
    let height = client
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(900);
    let _ = client
        .set_window_size(1200, (height as u32 + 140).min(4000))
        .await;
}

/// Waits until the text of `css` satisfies `ok` (a click's navigation may still be on its
/// way: the old page answers until the new one is there); returns it.
pub(crate) async fn wait_text(client: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            let text = element.text().await.unwrap_or_default();
            if ok(&text) {
                return text;
            }
        }
        if Instant::now() > deadline {
            panic!(
                "{css} never showed what was expected\n{}",
                diagnostics(client).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Cafe24's hash_data of `values` with the development service key.
pub(crate) fn dev_hash(values: &[&str]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let key = cafe24_komoju::app::settings::DEV_SERVICE_KEY;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(values.concat().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A checkout of ¥3,400 signed as Cafe24 signs it, paid by card on KOMOJU's hosted page;
/// then the order's page in Japanese: the payment in the timeline, a screenshot
/// (`order-ja.png`), no WCAG 2.1 A/AA violation.
async fn an_order_page(client: &Client, service: &str, partner_id: &str) {
    let (amount, currency, order_id) = ("3400", "JPY", "20261206-0000042");
    let hash = dev_hash(&[amount, currency, order_id, partner_id]);
    let return_url =
        format!("https://{INSTALL_MALL}.cafe24shop.com/Pay/Recv/openpg/PayReceiveRtnPage.php");
    let fields = [
        ("partner_id", partner_id),
        ("order_id", order_id),
        ("amount", amount),
        ("currency", currency),
        ("return_url", return_url.as_str()),
        ("shop_no", "1"),
        ("hash_data", hash.as_str()),
    ];
    let reply: serde_json::Value = reqwest::Client::new()
        .post(format!("{service}/api/synchronous-checkout/checkout"))
        .form(&fields)
        .send()
        .await
        .unwrap_or_else(|e| panic!("checkout: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("checkout reply: {e}"));
    let payment_url = reply["payment_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no payment_url: {reply}"));
    client
        .goto(payment_url)
        .await
        .unwrap_or_else(|e| panic!("hosted page: {e}"));
    click(client, "#pay-card").await;
    // The buyer is sent back towards the mall (not reachable here); the callback on the
    // way recorded the payment. Wait until the browser got there: going elsewhere while
    // the redirects are still in flight races them, and the mall's error page could
    // land after the order page.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .current_url()
        .await
        .is_ok_and(|u| u.as_str().contains("cafe24shop.com"))
    {
        assert!(
            Instant::now() < deadline,
            "the buyer never left KOMOJU's page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = format!("{service}/settings/{INSTALL_MALL}/payments/{order_id}?lang=ja");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client
            .goto(&page)
            .await
            .unwrap_or_else(|e| panic!("order page: {e}"));
        if text_of(client, "#state").await.contains("決済済み") {
            break;
        }
        assert!(Instant::now() < deadline, "the order never showed paid");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_text(client, "#timeline", |t| t.contains("入金されました")).await;
    full_page(client).await;
    screenshot(client, "order-ja.png").await;
    crate::axe::no_violations(client, "the order page in Japanese").await;
}

#[actix_web::test]
async fn a_merchant_installs_the_app_by_clicks() {
    if !browser_installed() {
        return;
    }
    let _turn = BROWSER_TURN.lock().await;
    let (service, app, _db) = serve_like_a_newcomer().await;
    let cafe24 = app
        .cafe24_sandbox()
        .unwrap_or_else(|| panic!("development mounts the Cafe24 stand-in"));
    tokio::spawn(app.run_until_stopped());
    let browser = Browser::start().await;
    let client = browser.client.clone();
    browser
        .run(async {
            // The stand-in's launch page: a signed launch link for any mall.
            launch(&client, &service, "ja").await;

            // Cafe24's consent page: Allow.
            wait_for_url(&client, "the consent page", |u| {
                u.path().ends_with("/oauth/authorize")
            })
            .await;
            click(&client, "#allow").await;

            // The settings site, in Japanese, not set up yet.
            let settings = format!("/settings/{INSTALL_MALL}");
            wait_for_url(&client, "the settings page", |u| u.path() == settings).await;
            wait_text(&client, "#mode", |t| {
                t.contains("KOMOJU がまだ設定されていません")
            })
            .await;

            // KOMOJU keys: saved, shown back masked, test mode.
            fill(&client, "#secret_key", INSTALL_KEY).await;
            fill(&client, "#webhook_secret", INSTALL_WEBHOOK_SECRET).await;
            click(&client, "#save-komoju").await;
            wait_text(&client, "#notice", |t| t == "保存しました。").await;
            wait_text(&client, "#mode", |t| t.contains("テストモード")).await;
            let hint = text_of(&client, "#secret-key-hint").await;
            assert!(hint.contains("sk_test_…ffee"), "{hint}");
            assert!(!client
                .source()
                .await
                .unwrap_or_default()
                .contains(INSTALL_KEY));

            // The shop on, then its external checkout.
            click(&client, "#gateway-1").await;
            wait_text(&client, "#shop-1 td:nth-child(4) .state", |t| t == "有効").await;
            click(&client, "#script-1").await;
            wait_text(&client, "#shop-1 td:nth-child(5) .state", |t| t == "有効").await;

            // The webhook test: the sandbox's signed ping arrives.
            wait_text(&client, "#last-ping", |t| t.contains("まだありません")).await;
            click(&client, "#webhook-test").await;
            // A time, in the shop's zone.
            wait_text(&client, "#last-ping", |t| t.chars().any(|c| c.is_ascii_digit())).await;
            full_page(&client).await;
            screenshot(&client, "settings-ja.png").await;
            crate::axe::no_violations(&client, "the settings page in Japanese").await;

            // Cafe24 holds one registration and one script tag.
            let gateways = cafe24.payment_gateways(INSTALL_MALL);
            assert_eq!(gateways.len(), 1, "{gateways:?}");
            assert!(gateways[0]
                .partner_id
                .starts_with(&format!("{INSTALL_MALL}:1:")));
            let tags = cafe24.script_tags(INSTALL_MALL);
            assert_eq!(tags.len(), 1, "{tags:?}");
            assert!(tags[0]
                .integrity
                .as_deref()
                .is_some_and(|i| i.starts_with("sha384-")));

            // Launched again in English: straight to the settings (a live token).
            launch(&client, &service, "en").await;
            wait_for_url(&client, "the settings page", |u| u.path() == settings).await;
            wait_text(&client, "#mode", |t| t.contains("Test mode")).await;
            wait_text(&client, "#shop-1 td:nth-child(4) .state", |t| t == "On").await;
            full_page(&client).await;
            screenshot(&client, "settings-en.png").await;
            crate::axe::no_violations(&client, "the settings page in English").await;

            // The language switch: Korean, and kept on the next page.
            click(&client, "nav.languages a[lang=ko]").await;
            wait_text(&client, "#mode", |t| t.contains("테스트 모드")).await;
            wait_text(&client, "#shop-1 td:nth-child(4) .state", |t| t == "켜짐").await;
            client
                .goto(&format!("{service}{settings}"))
                .await
                .unwrap_or_else(|e| panic!("settings again: {e}"));
            wait_text(&client, "#mode", |t| t.contains("테스트 모드")).await;
            full_page(&client).await;
            screenshot(&client, "settings-ko.png").await;
            crate::axe::no_violations(&client, "the settings page in Korean").await;

            // The payments page, from the header's link (no payment yet).
            click(&client, "#payments-link").await;
            wait_text(&client, "#no-payments", |t| t.contains("해당하는 결제가 없습니다")).await;
            full_page(&client).await;
            screenshot(&client, "payments-ko.png").await;
            crate::axe::no_violations(&client, "the payments page").await;

            // A buyer pays an order; its page, in Japanese.
            an_order_page(&client, &service, &gateways[0].partner_id).await;
            // The order page's switch to Japanese is kept: back to Korean on the list.
            client
                .goto(&format!("{service}/settings/{INSTALL_MALL}/payments?lang=ko"))
                .await
                .unwrap_or_else(|e| panic!("payments again: {e}"));
            click(&client, "#settings-link").await;
            wait_text(&client, "#mode", |t| t.contains("테스트 모드")).await;

            // At 360 px wide nothing is wider than the window (the shops table scrolls in
            // its own box).
            let _ = client.set_window_size(360, 900).await;
            let overflow = client
                .execute(
                    "return document.documentElement.scrollWidth > document.documentElement.clientWidth;",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool());
            assert_eq!(overflow, Some(false), "the page scrolls sideways at 360 px");
            screenshot(&client, "settings-ko-360.png").await;
            let _ = client.set_window_size(1200, 900).await;

            // Disconnect asks first: the browser keeps the form until the box is ticked.
            click(&client, "#disconnect").await;
            let invalid = client
                .execute("return document.querySelector('#disconnect-confirm').matches(':invalid');", vec![])
                .await
                .ok()
                .and_then(|v| v.as_bool());
            assert_eq!(invalid, Some(true));
            wait_text(&client, "#mode", |t| t.contains("테스트 모드")).await;
            assert_eq!(cafe24.payment_gateways(INSTALL_MALL).len(), 1, "nothing removed yet");
            click(&client, "#disconnect-confirm").await;
            click(&client, "#disconnect").await;
            wait_text(&client, "#disconnected", |t| t.contains("연결이 해제되었습니다")).await;
            crate::axe::no_violations(&client, "the disconnected page").await;

            // The settings of a disconnected mall: the error page.
            client
                .goto(&format!("{service}{settings}"))
                .await
                .unwrap_or_else(|e| panic!("settings again: {e}"));
            wait_text(&client, "#error", |t| !t.is_empty()).await;
            crate::axe::no_violations(&client, "an error page").await;
            assert!(cafe24.payment_gateways(INSTALL_MALL).is_empty());
        })
        .await;
}
