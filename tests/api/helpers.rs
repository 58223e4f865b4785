//! Test harness: spawns the service on port 0 against a fresh database and a KOMOJU
//! sandbox on its own port, with a controllable clock and helpers per endpoint.

use std::collections::HashMap;
use std::net::TcpListener;

use actix_web::{web, App, HttpServer};
use base64::Engine;
use cafe24_komoju::app::cli::{self, Cli};
use cafe24_komoju::app::settings::Settings;
use cafe24_komoju::app::startup::Application;
use cafe24_komoju::clock::Clock;
use cafe24_komoju::db::{self, orders::OrderRow};
use cafe24_komoju::services::Services;
use cafe24_komoju_sandbox::{Cafe24App, Cafe24Sandbox, Sandbox};
use clap::Parser;
use diesel::prelude::*;
use hmac::{Hmac, Mac};

pub use crate::merchant_fixture::MerchantAdd;

pub const SERVICE_KEY: &str = "test-service-key";
pub const CLIENT_ID: &str = "test-client-id";
pub const CLIENT_SECRET: &str = "test-cafe24-client-secret";
pub const APP_SECRET: &str = "test-app-secret-0123456789abcdef-0123456789";
/// The webhook credential Cafe24 sends in `x-api-key` (`CAFE24_WEBHOOK_API_KEY`).
pub const WEBHOOK_API_KEY: &str = "test-cafe24-webhook-api-key";
pub const MALL: &str = "demomall";
pub const RETURN_URL: &str =
    "https://demomall.cafe24shop.com/Pay/Recv/openpg/PayReceiveRtnPage.php";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `TEST_POSTGRES_URL` is set. Under CI (`CI` set) a missing URL is a
    /// failure, never a silent skip.
    pub fn postgres() -> Option<Backend> {
        cafe24_komoju::db::init_tls();
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ if std::env::var("CI").is_ok() => {
                panic!("CI is set but TEST_POSTGRES_URL is not: the PostgreSQL suite must run")
            }
            _ => {
                eprintln!("TEST_POSTGRES_URL not set: PostgreSQL variant skipped");
                None
            }
        }
    }
}

/// Generates `NAME::sqlite` and `NAME::postgres` tests from `async fn NAME(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[actix_web::test]
            async fn postgres() {
                if let Some(b) = $crate::helpers::Backend::postgres() {
                    super::$name(b).await
                }
            }
        }
    )*};
}

/// A database that lives as long as the test: a temporary SQLite file, or a fresh
/// PostgreSQL schema (dropped at the end).
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl TestDb {
    pub fn new(backend: &Backend) -> TestDb {
        cafe24_komoju::db::init_tls();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
                let url = format!("sqlite://{}", dir.path().join("test.sqlite3").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg_schema: None,
                }
            }
            Backend::Postgres(admin) => {
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(admin)
                    .unwrap_or_else(|e| panic!("cannot reach TEST_POSTGRES_URL: {e}"));
                diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("create schema: {e}"));
                let sep = if admin.contains('?') { '&' } else { '?' };
                // The schema also names the connections (`application_name`), so a test
                // can find and cut its service's own connections.
                let url = format!(
                    "{admin}{sep}options=-c%20search_path%3D{schema}&application_name={schema}"
                );
                TestDb {
                    url,
                    _dir: None,
                    pg_schema: Some((admin.clone(), schema)),
                }
            }
        }
    }
}

impl TestDb {
    /// The PostgreSQL schema (also the connections' `application_name`), if PostgreSQL.
    pub fn pg_schema(&self) -> Option<&str> {
        self.pg_schema.as_ref().map(|(_, schema)| schema.as_str())
    }

    /// The admin URL (`TEST_POSTGRES_URL`), if PostgreSQL.
    pub fn pg_admin(&self) -> Option<&str> {
        self.pg_schema.as_ref().map(|(admin, _)| admin.as_str())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, schema)) = &self.pg_schema {
            if let Ok(mut conn) = diesel::PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn);
            }
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub sandbox: Sandbox,
    /// The Cafe24 stand-in (OAuth, Admin API), on its own loopback port.
    pub cafe24: Cafe24Sandbox,
    pub clock: Clock,
    pub state: web::Data<Services>,
    pub settings: Settings,
    pub client: reqwest::Client,
    pub _db: TestDb,
}

/// Settings for a test app; `extra` overrides.
pub fn test_settings(
    db_url: &str,
    port: u16,
    komoju: Option<&str>,
    extra: &[(&str, &str)],
) -> Settings {
    let env = test_env(db_url, port, komoju, extra);
    Settings::from_lookup(|k| env.get(k).cloned()).unwrap_or_else(|e| panic!("settings: {e}"))
}

/// The environment of a test service (in-process settings or a child process).
pub fn test_env(
    db_url: &str,
    port: u16,
    komoju: Option<&str>,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DATABASE_URL".into(), db_url.into());
    env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
    env.insert("PUBLIC_BASE_URL".into(), format!("http://127.0.0.1:{port}"));
    env.insert("CAFE24_SERVICE_KEY".into(), SERVICE_KEY.into());
    env.insert("CAFE24_CLIENT_ID".into(), CLIENT_ID.into());
    env.insert("CAFE24_CLIENT_SECRET".into(), CLIENT_SECRET.into());
    env.insert("APP_SECRET".into(), APP_SECRET.into());
    env.insert("CAFE24_WEBHOOK_API_KEY".into(), WEBHOOK_API_KEY.into());
    env.insert("KOMOJU_TIMEOUT_SECS".into(), "2".into());
    env.insert("OUTBOX_POLL_MS".into(), "50".into());
    env.insert("NOTIFY_TIMEOUT_SECS".into(), "2".into());
    env.insert("OUTBOX_LEASE_SECS".into(), "10".into());
    env.insert("RECONCILE_INTERVAL_MS".into(), "100".into());
    if let Some(k) = komoju {
        env.insert("KOMOJU_API_BASE".into(), k.into());
    }
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    env
}

/// Serves a fresh sandbox alone on a loopback port; returns it and its API base.
pub fn spawn_sandbox() -> (Sandbox, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let sandbox = Sandbox::new(&format!("http://127.0.0.1:{port}"));
    let served = sandbox.clone();
    let server = HttpServer::new(move || App::new().configure(served.configure("")))
        .workers(2)
        .listen(listener)
        .unwrap_or_else(|e| panic!("listen: {e}"))
        .run();
    tokio::spawn(server);
    (sandbox, format!("http://127.0.0.1:{port}/api/v1"))
}

/// Serves a fresh Cafe24 stand-in alone on a loopback port, for the app whose App URL
/// is `app_url`.
pub fn spawn_cafe24(app_url: &str) -> Cafe24Sandbox {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let cafe24 = Cafe24Sandbox::new(
        &format!("http://127.0.0.1:{port}"),
        Cafe24App {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            app_name: "cafe24-komoju (tests)".into(),
            app_url: app_url.into(),
        },
    );
    let served = cafe24.clone();
    let server = HttpServer::new(move || App::new().configure(served.configure("")))
        .workers(2)
        .listen(listener)
        .unwrap_or_else(|e| panic!("listen: {e}"))
        .run();
    tokio::spawn(server);
    cafe24
}

/// Every log record of this test binary, for tests that check what never reaches a log.
static LOG_LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

struct CapturingLogger(env_logger::Logger);

impl log::Log for CapturingLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        if let Ok(mut lines) = LOG_LINES.lock() {
            if lines.len() < 500_000 {
                lines.push(line);
            }
        }
        if self.0.matches(record) {
            self.0.log(record);
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger once (records at debug and above are kept; what is printed
/// follows `RUST_LOG`).
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let inner = env_logger::builder().is_test(true).build();
        if log::set_boxed_logger(Box::new(CapturingLogger(inner))).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
}

/// Every log line recorded so far by this test binary.
pub fn log_lines() -> Vec<String> {
    LOG_LINES.lock().map(|l| l.clone()).unwrap_or_default()
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    init_logging();
    let db = TestDb::new(&backend);
    let (sandbox, komoju_api) = spawn_sandbox();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let cafe24 = spawn_cafe24(&format!("http://127.0.0.1:{port}/cafe24/launch"));
    let cafe24_base = cafe24.api_base_template();
    let mut env: Vec<(&str, &str)> = vec![("CAFE24_API_BASE", cafe24_base.as_str())];
    env.extend_from_slice(extra);
    let settings = test_settings(&db.url, port, Some(&komoju_api), &env);
    let clock = Clock::system();
    let app = Application::build_with_listener(settings.clone(), listener, clock.clone())
        .await
        .unwrap_or_else(|e| panic!("build: {e}"));
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let test = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        sandbox,
        cafe24,
        clock,
        state,
        settings,
        client,
        _db: db,
    };
    test.add_merchant(&MerchantAdd::demo().flag("--payment-types", "credit_card,konbini"))
        .await;
    test
}

/// Cafe24's hash_data, computed here independently of the service's code.
pub fn cafe24_hash(values: &[&str]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SERVICE_KEY.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(values.concat().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A signed checkout request with the Cafe24 sample app's values.
pub fn checkout_fields(order_id: &str, amount: &str, currency: &str) -> Vec<(String, String)> {
    let partner_id = format!("{MALL}:1:demo-public");
    let hash = cafe24_hash(&[amount, currency, order_id, &partner_id]);
    vec![
        ("partner_id".into(), partner_id),
        ("order_id".into(), order_id.into()),
        ("amount".into(), amount.into()),
        ("currency".into(), currency.into()),
        ("return_url".into(), RETURN_URL.into()),
        ("buyer_id".into(), "buyer01".into()),
        ("shop_no".into(), "1".into()),
        ("buyer_email".into(), "buyer@example.com".into()),
        ("hash_data".into(), hash),
    ]
}

pub fn set(fields: &mut Vec<(String, String)>, name: &str, value: &str) {
    fields.retain(|(k, _)| k != name);
    fields.push((name.into(), value.into()));
}

pub fn remove(fields: &mut Vec<(String, String)>, name: &str) {
    fields.retain(|(k, _)| k != name);
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location header (status {})", resp.status()))
        .to_owned()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl TestApp {
    /// Registers a merchant with `merchant add`; returns what the command printed.
    pub async fn add_merchant(&self, merchant: &MerchantAdd) -> String {
        let args = merchant.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(&args).await
    }

    pub async fn cli(&self, args: &[&str]) -> String {
        let mut argv = vec!["cafe24-komoju"];
        argv.extend_from_slice(args);
        let mut out = Vec::new();
        cli::run(Cli::parse_from(argv), self.settings.clone(), &mut out)
            .await
            .unwrap_or_else(|e| panic!("cli {args:?}: {e}"));
        String::from_utf8(out).unwrap_or_default()
    }

    pub async fn post_form(&self, path: &str, fields: &[(String, String)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn sync_checkout(&self, fields: &[(String, String)]) -> reqwest::Response {
        self.post_form("/api/synchronous-checkout/checkout", fields)
            .await
    }

    /// Checkout that must succeed; returns the payment_url.
    pub async fn sync_checkout_ok(&self, fields: &[(String, String)]) -> String {
        let resp = self.sync_checkout(fields).await;
        assert_eq!(resp.status(), 200, "checkout failed");
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(body["result_code"], "0000");
        body["payment_url"].as_str().unwrap_or_default().to_owned()
    }

    /// On the sandbox's hosted page, presses the button `method` (`credit_card`,
    /// `konbini`, `paypay`, `bank_transfer`, `pay_easy` or `return`); returns where KOMOJU
    /// sends the browser (our callback). A konbini, bank transfer or Pay-easy payment keeps
    /// the buyer on KOMOJU's page with the instructions: the buyer then follows its
    /// "Return to merchant" link.
    pub async fn press(&self, payment_url: &str, method: &str) -> String {
        let resp = self
            .client
            .post(format!("{payment_url}/pay"))
            .form(&[("method", method)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("pay: {e}"));
        if resp.status() == 302 {
            return location(&resp);
        }
        assert_eq!(
            resp.status(),
            200,
            "hosted page neither redirected nor stayed"
        );
        let html = resp.text().await.unwrap_or_default();
        let link = html
            .split("id=\"return-to-merchant\" href=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no return-to-merchant link on the hosted page: {html}"));
        link.replace("&amp;", "&")
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    pub async fn status(&self, key: &str) -> (u16, serde_json::Value) {
        let resp = self
            .post_form(
                "/api/synchronous-checkout/checkout/status",
                &[("key".into(), key.into())],
            )
            .await;
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or_default())
    }

    pub async fn order(&self, order_id: &str) -> Option<OrderRow> {
        let id = order_id.to_owned();
        self.state
            .db
            .run(move |c| db::orders::find_by_order_id(c, MALL, &id))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn order_count(&self) -> i64 {
        self.state
            .db
            .run(db::orders::count)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// KOMOJU API calls that created something (POSTs), as the sandbox saw them.
    pub fn komoju_posts(&self) -> Vec<cafe24_komoju_sandbox::RecordedRequest> {
        self.sandbox
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }
}

/// One request the fake Cafe24 received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub fields: HashMap<String, String>,
    /// The service clock when it arrived.
    pub at: chrono::DateTime<chrono::Utc>,
    pub answered: u16,
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    fail_next: u32,
    fail_always: bool,
    hang: Option<std::time::Duration>,
}

/// A fake Cafe24 on loopback: records every POST (form or JSON) and answers
/// `{"result":"OK"}`, or 500 while told to fail.
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    state: std::sync::Arc<std::sync::Mutex<ReceiverState>>,
}

impl Receiver {
    pub fn spawn(clock: Clock) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let state = std::sync::Arc::new(std::sync::Mutex::new(ReceiverState::default()));
        let shared = state.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            let clock = clock.clone();
            App::new().default_service(web::to(
                move |req: actix_web::HttpRequest, body: web::Bytes| {
                    let shared = shared.clone();
                    let clock = clock.clone();
                    async move {
                        let ct = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let fields: HashMap<String, String> = if ct.starts_with("application/json")
                        {
                            serde_json::from_slice::<HashMap<String, String>>(&body)
                                .unwrap_or_default()
                        } else {
                            serde_urlencoded::from_bytes(&body).unwrap_or_default()
                        };
                        let (status, hang) = {
                            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                            let fail = s.fail_always || s.fail_next > 0;
                            if s.fail_next > 0 {
                                s.fail_next -= 1;
                            }
                            let status = if fail { 500 } else { 200 };
                            s.received.push(Received {
                                path: req.path().to_owned(),
                                fields,
                                at: clock.now(),
                                answered: status,
                            });
                            (status, s.hang)
                        };
                        if let Some(h) = hang {
                            tokio::time::sleep(h).await;
                        }
                        if status == 200 {
                            actix_web::HttpResponse::Ok().json(serde_json::json!({"result": "OK"}))
                        } else {
                            actix_web::HttpResponse::InternalServerError().body("down")
                        }
                    }
                },
            ))
        })
        .workers(2)
        .listen(listener)
        .unwrap_or_else(|e| panic!("listen: {e}"))
        .run();
        tokio::spawn(server);
        Receiver {
            base: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .received
            .clone()
    }

    pub fn fail_next(&self, n: u32) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_next = n;
    }

    pub fn fail_always(&self, on: bool) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_always = on;
    }

    pub fn hang(&self, d: Option<std::time::Duration>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).hang = d;
    }

    /// Waits until at least `n` requests arrived (or `timeout`); returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: std::time::Duration) -> Vec<Received> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Lowercase hex HMAC-SHA256, as KOMOJU signs webhooks; computed independently here.
pub fn komoju_signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub const WEBHOOK_SECRET: &str = "whsec_demomall_0123456789";

/// A KOMOJU event envelope around a payment, as bytes.
pub fn event_body(event_id: &str, event_type: &str, payment: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": event_id,
        "type": event_type,
        "resource": "event",
        "data": payment,
        "created_at": "2026-11-21T12:00:00.000+09:00",
        "reason": null,
    }))
    .unwrap_or_default()
}

impl TestApp {
    /// Sends a signed webhook for `mall` to the service; returns the HTTP status.
    pub async fn send_webhook(&self, mall: &str, body: &[u8], signature: Option<&str>) -> u16 {
        let mut req = self
            .client
            .post(format!(
                "{}/api/asynchronous-checkout/checkout/webhook?mall_id={mall}",
                self.address
            ))
            .header("Content-Type", "application/json")
            .header("X-Komoju-Event", "payment")
            .body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("X-Komoju-Signature", s);
        }
        req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    }

    pub async fn async_checkout(&self, fields: &[(String, String)]) -> reqwest::Response {
        self.post_form("/api/asynchronous-checkout/checkout", fields)
            .await
    }

    pub async fn async_checkout_ok(&self, fields: &[(String, String)]) -> String {
        let resp = self.async_checkout(fields).await;
        assert_eq!(resp.status(), 200, "async checkout failed");
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        body["payment_url"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn notifications(&self) -> Vec<cafe24_komoju::db::notifications::NotificationRow> {
        self.state
            .db
            .run(|c| cafe24_komoju::db::notifications::list(c, None, 10_000))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Lets the sandbox send this merchant's KOMOJU webhooks to the service, as KOMOJU
    /// does once the merchant registered the webhook URL.
    pub fn route_sandbox_webhooks(&self) {
        self.sandbox.set_webhook(
            "sk_test_demomall_0123456789",
            &format!(
                "{}/api/asynchronous-checkout/checkout/webhook?mall_id={MALL}",
                self.address
            ),
            WEBHOOK_SECRET,
        );
        self.sandbox
            .set_webhook_retry_delays(vec![std::time::Duration::from_millis(200); 5]);
    }

    /// Drives the outbox to idle, deterministically: once the service's own worker holds
    /// no lease, a worker of the test's claims and sends every row that is due at the
    /// service clock, until none is left. Whatever Cafe24 has not received by then would
    /// not be sent at this clock time at all, so an absence asserted after it holds
    /// however fast or slow the machine is.
    ///
    /// A row the service's worker is claiming at that moment (locked, not yet committed)
    /// is skipped by the test's claim and shows no lease yet, and one it claimed since is
    /// leased, so not claimable, while its attempt is under way; so the drain ends only
    /// when no row is claimable (due, unleased, and not of a host backing off) and no row
    /// is leased.
    pub async fn drain_outbox(&self) {
        let worker = cafe24_komoju::notifications::Worker::new(
            self.state.clone(),
            self.settings.outbox.clone(),
            std::sync::Arc::new(tokio::sync::Notify::new()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            self.outbox_settled().await;
            while worker.run_once().await.unwrap_or_else(|e| panic!("{e}")) > 0 {}
            self.outbox_settled().await;
            let now = self.clock.now_naive();
            let due = self
                .state
                .db
                .run(move |c| cafe24_komoju::db::notifications::claimable(c, now))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            // A row the service's own worker claimed after the settle above is leased, so
            // not claimable: done only when nothing is due and no attempt is under way.
            let sending = self
                .notifications()
                .await
                .iter()
                .any(|n| n.lease_owner.is_some());
            if due == 0 && !sending {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "outbox never drained");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits until no notification is leased (every attempt under way has been recorded),
    /// so that moving the clock cannot race a worker's bookkeeping.
    pub async fn outbox_settled(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self
            .notifications()
            .await
            .iter()
            .any(|n| n.lease_owner.is_some())
        {
            assert!(std::time::Instant::now() < deadline, "outbox never settled");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn webhook_event_count(&self) -> i64 {
        self.state
            .db
            .run(cafe24_komoju::db::webhook_events::count)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// An async checkout request whose `return_noty_url` is the receiver.
pub fn async_fields(
    order_id: &str,
    amount: &str,
    currency: &str,
    receiver: &Receiver,
) -> Vec<(String, String)> {
    let mut f = checkout_fields(order_id, amount, currency);
    f.push(("return_noty_url".into(), receiver.url("/noty")));
    f
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The real `cafe24-komoju serve` binary in its own process.
pub struct ServiceProcess {
    pub address: String,
    child: std::process::Child,
    env: HashMap<String, String>,
    log: std::path::PathBuf,
}

impl ServiceProcess {
    /// Starts `serve` with `env` and waits until `/health` answers.
    pub async fn start(env: HashMap<String, String>, log: std::path::PathBuf) -> ServiceProcess {
        let address = format!("http://{}", env["BIND_ADDR"]);
        let child = Self::spawn(&env, &log);
        let mut p = ServiceProcess {
            address,
            child,
            env,
            log,
        };
        p.wait_healthy().await;
        p
    }

    fn spawn(env: &HashMap<String, String>, log: &std::path::Path) -> std::process::Child {
        crate::serve_fixture::spawn(env, log)
    }

    async fn wait_healthy(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/health", self.address)).await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "service exited ({status}); log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "service never became healthy"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it still runs.
    pub async fn wait_exit(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().ok()
    }

    pub async fn restart(&mut self) {
        self.child = Self::spawn(&self.env, &self.log);
        self.wait_healthy().await;
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A signed cancellation request (H2 computed here independently).
pub fn cancel_fields(
    order_id: &str,
    tid: &str,
    cancel_amount: &str,
    currency: &str,
) -> Vec<(String, String)> {
    let partner_id = format!("{MALL}:1:demo-public");
    let hash = cafe24_hash(&[cancel_amount, currency, order_id, &partner_id, tid]);
    vec![
        ("partner_id".into(), partner_id),
        ("order_id".into(), order_id.into()),
        ("tid".into(), tid.into()),
        ("cancel_amount".into(), cancel_amount.into()),
        ("currency".into(), currency.into()),
        ("hash_data".into(), hash),
    ]
}

impl TestApp {
    pub async fn sync_cancel(&self, fields: &[(String, String)]) -> (u16, serde_json::Value) {
        let r = self
            .post_form("/api/synchronous-cancellation/cancel", fields)
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    pub async fn async_cancel(&self, fields: &[(String, String)]) -> (u16, serde_json::Value) {
        let r = self
            .post_form("/api/asynchronous-cancellation/cancel", fields)
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    /// A synchronous checkout paid on the sandbox with `method` and returned through the
    /// callback; returns the KOMOJU payment id (`tid`).
    pub async fn paid_order(
        &self,
        order_id: &str,
        amount: &str,
        currency: &str,
        method: &str,
    ) -> String {
        let url = self
            .sync_checkout_ok(&checkout_fields(order_id, amount, currency))
            .await;
        let callback = self.press(&url, method).await;
        let resp = self.get(&callback).await;
        assert_eq!(resp.status(), 302);
        self.order(order_id)
            .await
            .and_then(|o| o.komoju_payment_id)
            .unwrap_or_else(|| panic!("order {order_id} has no payment"))
    }

    /// Has the service read the demo merchant's payment methods already (it lists them
    /// before its first session and keeps them a while), so that a fault injected next
    /// meets the call the test is about.
    pub async fn prime_payment_methods(&self) {
        let key = secrecy::SecretString::from("sk_test_demomall_0123456789".to_owned());
        self.state
            .komoju
            .payment_methods_cached(&key)
            .await
            .unwrap_or_else(|e| panic!("payment methods: {e}"));
    }

    /// KOMOJU's refunds of a payment, as the sandbox holds them.
    pub fn komoju_refunds(&self, tid: &str) -> Vec<serde_json::Value> {
        self.sandbox.payment_json(tid).unwrap_or_default()["refunds"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
