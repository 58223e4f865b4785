//! The service under test on a loopback port, with its database, clock and stand-ins.

use super::*;

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

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// A service whose own reconciliation timer waits an hour, for a test that runs the
/// passes itself: a timed pass holding the pass lock at that moment would make the
/// test's pass skip (`Ok(None)`; CI saw it once).
pub async fn spawn_quiet(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[("RECONCILE_INTERVAL_MS", "3600000")]).await
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
}
