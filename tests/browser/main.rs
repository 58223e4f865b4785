//! Browser tests of the external checkout (Cafe24 "External Checkout", PROTOCOL §6.3):
//! a real headless Chromium, driven through chromedriver, opens a stub Cafe24 mall page
//! that loads the service's button script, presses the button, pays on the KOMOJU
//! sandbox's hosted page and comes back to the mall; the fake Cafe24 back end then has
//! the payment notification.
//!
//! Needs Debian's `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`apt-get install chromium chromium-driver`). Without them the tests print a notice and
//! pass, except under CI (`CI` set), where they fail: a browser test is never skipped
//! silently there. The tests take turns (one browser at a time on a 2-core machine).
//!
//! Everything runs on loopback: the service in-process, the sandbox, the stub mall and
//! the fake Cafe24 notification receiver each on a port of their own.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use cafe24_komoju::app::cli::{self, Cli};
use cafe24_komoju::app::settings::Settings;
use cafe24_komoju::app::startup::Application;
use cafe24_komoju::clock::Clock;
use cafe24_komoju_sandbox::Sandbox;

mod axe;
#[cfg(feature = "sandbox")]
mod install;
#[path = "../common/merchant.rs"]
mod merchant_fixture;
#[cfg(feature = "sandbox")]
mod payments;
use clap::Parser;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use merchant_fixture::MerchantAdd;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const SERVICE_KEY: &str = "browser-test-service-key";
const CLIENT_ID: &str = "browser-test-client-id";
const APP_SECRET: &str = "browser-test-app-secret-0123456789abcdef-0123";
const MALL: &str = "demomall";
const GUEST_ID: &str = "guest-7d1f0c2a";
/// The path prefix of a multi-shop mall's mobile pages (`return_url_base` keeps it).
const MOBILE_SHOP: &str = "/shop1/m";
/// How long one step of a scenario may take in the browser.
const STEP: Duration = Duration::from_secs(20);

/// One browser at a time.
static BROWSER_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------

/// True when Chromium and chromedriver are installed; panics under CI when they are not.
fn browser_installed() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {missing:?} is missing: apt-get install chromium chromium-driver");
    }
    // Straight to stderr: the test harness hides eprintln! output of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "browser test skipped: {missing:?} not installed (apt-get install chromium chromium-driver)"
    );
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// chromedriver as a child process, killed when dropped, plus Chromium's fresh profile.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session on headless Chromium.
struct Browser {
    client: Client,
    _driver: Driver,
}

impl Browser {
    async fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {CHROMEDRIVER}: {e}"));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = reqwest::get(format!("{}/status", driver.url))
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                    format!("--user-data-dir={}", driver._profile.path().display()),
                ],
            }),
        );
        // An alert stays open, so the test can see it (XSS check) instead of it being
        // dismissed behind its back.
        caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("WebDriver session: {e}"));
        Browser {
            client,
            _driver: driver,
        }
    }

    /// Runs `scenario`, then ends the session (Chromium quits) even when it panicked.
    async fn run<F: std::future::Future<Output = ()>>(self, scenario: F) {
        let outcome = std::panic::AssertUnwindSafe(scenario).catch_unwind().await;
        let _ = self.client.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The service, the KOMOJU sandbox, the stub mall and the fake Cafe24 receiver
// ---------------------------------------------------------------------------------------

/// One POST the fake Cafe24 back end received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    fields: HashMap<String, String>,
}

/// The cart the stub mall's `precreateOrder` reserves.
#[derive(Clone)]
struct Cart {
    order_id: &'static str,
    product_name: &'static str,
    /// Σ (product_price + option_price) × quantity, as KOMOJU should see it.
    total: i64,
    items: serde_json::Value,
}

fn cart(order_id: &'static str, product_name: &'static str) -> Cart {
    Cart {
        order_id,
        product_name,
        total: 2 * (1500 + 200),
        items: json!([{
            "shop_no": 1,
            "product_no": 11,
            "product_name": product_name,
            "variant_code": "P00000LB000A",
            "quantity": 2,
            "product_price": "1500.00",
            "option_price": "200.00",
            "shipping_type": "A",
            "product_bundle": "F",
            "prefaid_shipping_fee": "P",
        }]),
    }
}

struct World {
    service: String,
    mall: String,
    sandbox: Sandbox,
    settings: Settings,
    received: Arc<Mutex<Vec<Received>>>,
    _db: tempfile::TempDir,
}

fn bind() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    (listener, port)
}

impl World {
    /// Starts everything and registers the merchant (`review_page` on or off).
    async fn spawn(review_page: bool, cart: Cart) -> World {
        let _ = env_logger::builder().is_test(true).try_init();
        let db = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));

        // KOMOJU sandbox, alone on its port.
        let (listener, port) = bind();
        let sandbox = Sandbox::new(&format!("http://127.0.0.1:{port}"));
        let served = sandbox.clone();
        let server = HttpServer::new(move || App::new().configure(served.configure("")))
            .workers(1)
            .listen(listener)
            .unwrap_or_else(|e| panic!("listen: {e}"))
            .run();
        tokio::spawn(server);
        let komoju_api = format!("http://127.0.0.1:{port}/api/v1");

        // The service.
        let (listener, port) = bind();
        let service = format!("http://127.0.0.1:{port}");
        let env: HashMap<&str, String> = HashMap::from([
            ("APP_ENV", "development".to_owned()),
            (
                "DATABASE_URL",
                format!("sqlite://{}", db.path().join("test.sqlite3").display()),
            ),
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("PUBLIC_BASE_URL", service.clone()),
            ("CAFE24_SERVICE_KEY", SERVICE_KEY.to_owned()),
            ("CAFE24_CLIENT_ID", CLIENT_ID.to_owned()),
            ("APP_SECRET", APP_SECRET.to_owned()),
            ("KOMOJU_API_BASE", komoju_api),
            ("KOMOJU_TIMEOUT_SECS", "5".to_owned()),
            ("OUTBOX_POLL_MS", "50".to_owned()),
            ("NOTIFY_TIMEOUT_SECS", "5".to_owned()),
        ]);
        let settings = Settings::from_lookup(|k| env.get(k).cloned())
            .unwrap_or_else(|e| panic!("settings: {e}"));
        let app = Application::build_with_listener(settings.clone(), listener, Clock::system())
            .await
            .unwrap_or_else(|e| panic!("build: {e}"));
        tokio::spawn(app.run_until_stopped());

        let merchant = MerchantAdd::demo()
            .flag("--payment-types", "credit_card,konbini")
            .flag("--shop-name", "Demo Mall")
            .flag("--currency", "JPY")
            .flag("--review-page", if review_page { "on" } else { "off" });
        let argv = merchant.args();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        cli(&settings, &argv).await;

        // The fake Cafe24 back end: the return_notification_url receiver.
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let (listener, port) = bind();
        let noty_url = format!("http://127.0.0.1:{port}/noty");
        let shared = received.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let shared = shared.clone();
                async move {
                    let json = req
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|ct| ct.starts_with("application/json"));
                    let fields: HashMap<String, String> = if json {
                        serde_json::from_slice::<HashMap<String, serde_json::Value>>(&body)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| match v {
                                serde_json::Value::String(s) => (k, s),
                                other => (k, other.to_string()),
                            })
                            .collect()
                    } else {
                        serde_urlencoded::from_bytes(&body).unwrap_or_default()
                    };
                    shared
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Received {
                            path: req.path().to_owned(),
                            fields,
                        });
                    HttpResponse::Ok().json(json!({"result": "OK"}))
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap_or_else(|e| panic!("listen: {e}"))
        .run();
        tokio::spawn(server);

        // The stub mall front.
        let (listener, port) = bind();
        let page = product_page(&service, &noty_url, &cart);
        let server = HttpServer::new(move || {
            // The default shop's PC pages, and those of a multi-shop mall's mobile skin.
            let mut app = App::new();
            for prefix in ["", MOBILE_SHOP] {
                let page = page.clone();
                app = app
                    .route(
                        &format!("{prefix}/product/1"),
                        web::get().to(move || {
                            let page = page.clone();
                            async move { html(page) }
                        }),
                    )
                    .route(
                        &format!("{prefix}/api/shop/pgsuccess"),
                        web::get()
                            .to(|req: HttpRequest| async move { result_page("success", &req) }),
                    )
                    .route(
                        &format!("{prefix}/api/shop/pg_fail"),
                        web::get().to(|req: HttpRequest| async move { result_page("fail", &req) }),
                    );
            }
            app
        })
        .workers(1)
        .listen(listener)
        .unwrap_or_else(|e| panic!("listen: {e}"))
        .run();
        tokio::spawn(server);

        World {
            service,
            mall: format!("http://127.0.0.1:{port}"),
            sandbox,
            settings,
            received,
            _db: db,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits (10 s at most) for the paid notification of `order_id`.
    async fn paid_notification(&self, order_id: &str) -> Received {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received();
            let paid = got.iter().find(|r| {
                r.fields.get("order_id").map(String::as_str) == Some(order_id)
                    && r.fields.get("payed_tf").map(String::as_str) == Some("T")
            });
            if let Some(r) = paid {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no payed_tf=T notification for {order_id} within 10 s; received: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs `cafe24-komoju ARGS…` in-process, as the operator would.
async fn cli(settings: &Settings, args: &[&str]) {
    let mut argv = vec!["cafe24-komoju"];
    argv.extend_from_slice(args);
    let mut out = Vec::new();
    cli::run(Cli::parse_from(argv), settings.clone(), &mut out)
        .await
        .unwrap_or_else(|e| panic!("cli {args:?}: {e}"));
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

fn result_page(word: &str, req: &HttpRequest) -> HttpResponse {
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let order_id = query.get("order_id").cloned().unwrap_or_default();
    html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{word}</title></head>\
         <body><h1 id=\"result\">{word}</h1><p id=\"order\">{}</p></body></html>",
        html_escape::encode_text(&order_id)
    ))
}

/// A JSON value safe inside an inline `<script>`.
fn script_json(value: &serde_json::Value) -> String {
    value.to_string().replace("</", "<\\/")
}

/// The stub Cafe24 product page: the skin's container, a fake `CAFE24API` that answers
/// as Cafe24 does (guest customer after 100 ms; `precreateOrder` checks the request
/// `hmac` and signs its answer with `client_id + order_id`), and the script tag.
fn product_page(service: &str, noty_url: &str, cart: &Cart) -> String {
    let config = json!({
        "mall_id": MALL,
        "client_id": CLIENT_ID,
        "service_key": SERVICE_KEY,
        "guest_id": GUEST_ID,
        "order_id": cart.order_id,
        "noty_url": noty_url,
        "items": cart.items,
    });
    let title = html_escape::encode_text(cart.product_name);
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="path_role" content="PRODUCT_DETAIL">
<title>{title} | Demo Mall</title>
<style>
body {{ font-family: sans-serif; margin: 0; color: #222; }}
header {{ background: #f5f5f5; border-bottom: 1px solid #ddd; padding: 14px 40px; font-weight: bold; }}
main {{ display: flex; gap: 40px; max-width: 960px; margin: 40px auto; }}
.photo {{ width: 360px; height: 360px; background: #e9edf2; border-radius: 8px; display: flex;
  align-items: center; justify-content: center; color: #8a94a6; }}
.info {{ flex: 1; }} .price {{ font-size: 24px; font-weight: bold; margin: 12px 0 24px; }}
</style>
<script>
window.__stub = {{ log: [], calls: [] }};
["log", "info", "warn", "error"].forEach(function (level) {{
  var original = console[level].bind(console);
  console[level] = function () {{
    window.__stub.log.push(level + ": " + Array.prototype.map.call(arguments, String).join(" "));
    original.apply(null, arguments);
  }};
}});
window.addEventListener("error", function (e) {{ window.__stub.log.push("uncaught: " + e.message); }});
(function () {{
  var cfg = {config};
  var enc = new TextEncoder();
  async function sign(key, message) {{
    var k = await crypto.subtle.importKey("raw", enc.encode(key), {{ name: "HMAC", hash: "SHA-256" }}, false, ["sign"]);
    var mac = new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(message)));
    return btoa(String.fromCharCode.apply(null, mac));
  }}
  function later(fn) {{ setTimeout(fn, 100); }}
  // The reservation is signed over PHP's json_encode of a string with
  // JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES (Cafe24 is PHP; the sample app's
  // createPayload verifies it that way): quoted, "/" and non-ASCII left as they are,
  // which is what the browser's own JSON.stringify does for these strings.
  function phpJsonEncode(s) {{
    return JSON.stringify(s);
  }}
  var sdk = {{
    MALL_ID: cfg.mall_id,
    SHOP_NO: 1,
    init: function (options) {{ window.__stub.init = options; return sdk; }},
    getCustomerIDInfo: function (cb) {{
      later(function () {{ cb(null, {{ id: {{ member_id: "", guest_id: cfg.guest_id }} }}); }});
    }},
    precreateOrder: async function (mallId, requestTime, clientId, memberId, hmac, cb) {{
      var call = {{ mallId: mallId, requestTime: requestTime, clientId: clientId, memberId: memberId, hmac: hmac }};
      window.__stub.calls.push(call);
      // Cafe24 checks the request hmac: base64(HMAC-SHA256(service_key, mall_id·request_time·client_id·member_id)).
      call.expectedHmac = await sign(cfg.service_key, mallId + requestTime + clientId + memberId);
      if (mallId !== cfg.mall_id || clientId !== cfg.client_id || memberId !== cfg.guest_id
          || hmac !== call.expectedHmac) {{
        later(function () {{ cb({{ code: 400, message: "invalid hmac" }}, null); }});
        return;
      }}
      var total = cfg.items.reduce(function (t, l) {{
        return t + (parseFloat(l.product_price) + parseFloat(l.option_price)) * l.quantity;
      }}, 0);
      var responseTime = String(Math.floor(Date.now() / 1000));
      var message = phpJsonEncode(String(Math.trunc(total)) + cfg.order_id + responseTime + cfg.noty_url);
      var mac = await sign(cfg.client_id + cfg.order_id, message);
      later(function () {{
        cb(null, {{ order: {{ order_id: cfg.order_id, return_notification_url: cfg.noty_url,
          response_time: responseTime, hmac: mac, items: cfg.items }} }});
      }});
    }}
  }};
  // The SDK arrives a little after the page's scripts start, as on a real mall.
  setTimeout(function () {{ window.CAFE24API = sdk; }}, 300);
}})();
</script>
</head><body>
<header>Demo Mall</header>
<main>
  <div class="photo">photo</div>
  <div class="info">
    <h1 id="product-name">{title}</h1>
    <p class="price">&yen;1,700 &times; 2</p>
    <div id="appPaymentButtonBox"></div>
  </div>
</main>
<script src="{service}/api/external-checkout/script"></script>
</body></html>
"#,
        config = script_json(&config),
    )
}

// ---------------------------------------------------------------------------------------
// Scenario helpers
// ---------------------------------------------------------------------------------------

/// What the page shows and logged, for failure messages.
async fn diagnostics(client: &Client) -> String {
    if let Ok(text) = client.get_alert_text().await {
        return format!("an alert is open: {text:?}");
    }
    let url = client
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default();
    let stub = client
        .execute(
            "var s = document.getElementById('cafe24-komoju-status');\
             return JSON.stringify({status: s && s.textContent, stub: window.__stub || null});",
            vec![],
        )
        .await
        .map(|v| v.to_string())
        .unwrap_or_default();
    let source = client.source().await.unwrap_or_default();
    let source: String = source.chars().take(3000).collect();
    format!("url: {url}\npage state: {stub}\nsource: {source}")
}

/// Waits until the browser's URL satisfies `ok`; fails on timeout or an open alert.
async fn wait_for_url(client: &Client, what: &str, ok: impl Fn(&url::Url) -> bool) -> url::Url {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(text) = client.get_alert_text().await {
            panic!("waiting for {what}: an alert fired: {text:?}");
        }
        if let Ok(url) = client.current_url().await {
            if ok(&url) {
                return url;
            }
        }
        if Instant::now() > deadline {
            panic!("never reached {what}\n{}", diagnostics(client).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the element `css`, then clicks it.
async fn click(client: &Client, css: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            if element.is_enabled().await.unwrap_or(false) {
                element
                    .click()
                    .await
                    .unwrap_or_else(|e| panic!("click {css}: {e}"));
                return;
            }
        }
        if Instant::now() > deadline {
            panic!("no clickable {css}\n{}", diagnostics(client).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Takes a screenshot. It replaces the one in `docs/img` only with
/// `UPDATE_SCREENSHOTS=1` (so a test run leaves the tree clean); otherwise it goes to the
/// system's temporary directory.
async fn screenshot(client: &Client, name: &str) {
    let png = client
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot: {e}"));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let dir = if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img")
    } else {
        std::env::temp_dir().join("cafe24-komoju-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Opens the product page (under `prefix`, "" or [`MOBILE_SHOP`]) and waits for the
/// button; returns its label.
async fn open_product_page(client: &Client, world: &World, prefix: &str) -> String {
    client
        .goto(&format!("{}{prefix}/product/1", world.mall))
        .await
        .unwrap_or_else(|e| panic!("open product page: {e}"));
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(button) = client.find(Locator::Css("#cafe24-komoju-button")).await {
            return button.text().await.unwrap_or_default();
        }
        if Instant::now() > deadline {
            panic!(
                "the payment button never appeared\n{}",
                diagnostics(client).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// On the sandbox's hosted page: checks the session, pays by card, and follows the
/// browser back to the mall's success page under `prefix` (the button's
/// `return_url_base`).
async fn pay_on_hosted_page(client: &Client, world: &World, cart: &Cart, prefix: &str) {
    let hosted = wait_for_url(client, "the KOMOJU hosted page", |u| {
        u.path().contains("/sessions/")
    })
    .await;
    let session_id = hosted
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
        .to_owned();
    let session = world
        .sandbox
        .session_json(&session_id)
        .unwrap_or_else(|| panic!("the sandbox has no session {session_id}"));
    assert_eq!(session["amount"], json!(cart.total), "session: {session}");
    assert_eq!(session["currency"], "JPY", "session: {session}");

    click(client, "#pay-card").await;
    let done = wait_for_url(client, "the mall's pgsuccess page", |u| {
        u.path().ends_with("/api/shop/pgsuccess") || u.path().ends_with("/api/shop/pg_fail")
    })
    .await;
    assert!(
        done.as_str().starts_with(&world.mall),
        "left the mall origin: {done}"
    );
    assert_eq!(
        done.path(),
        format!("{prefix}/api/shop/pgsuccess"),
        "payment failed: {done}\n{}",
        diagnostics(client).await
    );
    let order_id = done
        .query_pairs()
        .find(|(k, _)| k == "order_id")
        .map(|(_, v)| v.into_owned());
    assert_eq!(order_id.as_deref(), Some(cart.order_id), "{done}");
}

/// The fake Cafe24 got the paid notification for the cart's order.
async fn assert_paid_notification(world: &World, cart: &Cart) {
    let noty = world.paid_notification(cart.order_id).await;
    assert_eq!(noty.path, "/noty");
    assert_eq!(
        noty.fields.get("result_code").map(String::as_str),
        Some("0000"),
        "{noty:?}"
    );
    let amount: Option<f64> = noty.fields.get("amount").and_then(|a| a.parse().ok());
    assert_eq!(amount, Some(cart.total as f64), "{noty:?}");
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[actix_web::test]
async fn a_guest_pays_by_card_from_the_product_page() {
    if !browser_installed() {
        return;
    }
    let _turn = BROWSER_TURN.lock().await;
    let cart = cart("20261121-0000101", "KOMOJU T-shirt");
    let world = World::spawn(false, cart.clone()).await;
    let browser = Browser::start().await;
    let client = browser.client.clone();
    browser
        .run(async {
            let label = open_product_page(&client, &world, "").await;
            assert_eq!(label, "Pay with KOMOJU");
            screenshot(&client, "external-checkout-button.png").await;

            click(&client, "#cafe24-komoju-button").await;
            pay_on_hosted_page(&client, &world, &cart, "").await;
            assert_paid_notification(&world, &cart).await;
        })
        .await;
}

#[actix_web::test]
async fn with_the_review_page_the_buyer_confirms_then_pays() {
    if !browser_installed() {
        return;
    }
    let _turn = BROWSER_TURN.lock().await;
    let name = "<script>alert(1)</script> T-shirt";
    let cart = cart("20261121-0000102", name);
    let world = World::spawn(true, cart.clone()).await;
    let browser = Browser::start().await;
    let client = browser.client.clone();
    browser
        .run(async {
            // A multi-shop mall's mobile page: the buyer comes back under /shop1/m.
            // The mall page itself shows the name as text (the stub escapes it).
            open_product_page(&client, &world, MOBILE_SHOP).await;
            let title = client
                .find(Locator::Css("#product-name"))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .text()
                .await
                .unwrap_or_default();
            assert_eq!(title, name);

            click(&client, "#cafe24-komoju-button").await;
            let review = wait_for_url(&client, "the review page", |u| {
                u.path().contains("/order/review")
            })
            .await;
            assert!(review.as_str().starts_with(&world.service), "{review}");
            screenshot(&client, "external-checkout-review.png").await;
            axe::no_violations(&client, "the review page").await;

            let text = client
                .find(Locator::Css("body"))
                .await
                .unwrap_or_else(|e| panic!("review page body: {e}"))
                .text()
                .await
                .unwrap_or_default();
            assert!(
                text.contains(name),
                "the review page does not show the product name literally:\n{text}"
            );
            assert!(
                client.get_alert_text().await.is_err(),
                "an alert fired on the review page"
            );
            let injected: serde_json::Value = client
                .execute(
                    "return Array.prototype.some.call(document.scripts, \
                     function (s) { return s.textContent.indexOf('alert(1)') !== -1; });",
                    vec![],
                )
                .await
                .unwrap_or_default();
            assert_eq!(injected, json!(false), "the product name became a script");

            click(&client, "#review-pay").await;
            pay_on_hosted_page(&client, &world, &cart, MOBILE_SHOP).await;
            assert_paid_notification(&world, &cart).await;
        })
        .await;
}

#[actix_web::test]
async fn a_failed_start_leaves_the_button_usable_with_a_message() {
    if !browser_installed() {
        return;
    }
    let _turn = BROWSER_TURN.lock().await;
    let cart = cart("20261121-0000103", "KOMOJU T-shirt");
    let world = World::spawn(false, cart.clone()).await;
    let browser = Browser::start().await;
    let client = browser.client.clone();
    browser
        .run(async {
            open_product_page(&client, &world, "").await;
            // The merchant is switched off after the button was shown: /script/hmac refuses.
            cli(&world.settings, &["merchant", "disable", "--mall-id", MALL]).await;
            click(&client, "#cafe24-komoju-button").await;

            let deadline = Instant::now() + STEP;
            let state = loop {
                let state = client
                    .execute(
                        "var b = document.getElementById('cafe24-komoju-button');\
                         var s = document.getElementById('cafe24-komoju-status');\
                         return {disabled: b.disabled, status: s.textContent};",
                        vec![],
                    )
                    .await
                    .unwrap_or_default();
                if state["status"].as_str().is_some_and(|s| !s.is_empty()) {
                    break state;
                }
                if Instant::now() > deadline {
                    panic!("no error message shown\n{}", diagnostics(&client).await);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert_eq!(
                state,
                json!({
                    "disabled": false,
                    "status": "The payment could not be started. Please try again."
                })
            );
            let url = client.current_url().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                url.path(),
                "/product/1",
                "the buyer stays on the product page"
            );
            assert_eq!(world.sandbox.sessions_created(), 0);
        })
        .await;
}
