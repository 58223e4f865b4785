//! The operator's commands (PROTOCOL.md §11), run in-process against a real database.

use std::collections::HashMap;

use cafe24_komoju::app::cli::{self, Cli};
use cafe24_komoju::app::settings::Settings;
use clap::Parser;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    merchant_secrets_are_sealed_and_masked,
    orders_show_and_list_tell_an_order_without_sql
);

/// Issue 11: `orders show` gives an order's facts, timeline, notifications and refunds;
/// `orders list` filters by mall, state and time.
async fn orders_show_and_list_tell_an_order_without_sql(backend: Backend) {
    let app = spawn_app(backend).await;
    let order_id = "20261201-0000900";
    let tid = app.paid_order(order_id, "3065", "JPY", "credit_card").await;
    let (status, body) = app
        .sync_cancel(&cancel_fields(order_id, &tid, "1000", "JPY"))
        .await;
    assert_eq!(status, 200, "{body}");
    let shown = app.cli(&["orders", "show", MALL, order_id]).await;
    for expected in [
        &format!("order {order_id} of demomall (shop 1), sync checkout, attempt 1"),
        "state partially_refunded; amount 3065 JPY",
        &format!("payment {tid} (credit_card)"),
        "callback payment.captured pending -> paid applied",
        "cancel payment.captured paid -> partially_refunded applied",
        "refunds:",
        "refund 1000 succeeded (sync mode)",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
    }
    assert!(
        !shown.contains("buyer@example.com") && !shown.contains("sk_test"),
        "{shown}"
    );
    let listed = app
        .cli(&[
            "orders",
            "list",
            "--state",
            "partially_refunded",
            "--since",
            "2026-01-01",
        ])
        .await;
    assert!(
        listed.starts_with(&format!(
            "demomall {order_id} sync partially_refunded 3065 JPY {tid}"
        )),
        "{listed}"
    );
    assert_eq!(
        app.cli(&["orders", "list", "--mall", "othermall"])
            .await
            .trim(),
        "no orders"
    );
    assert_eq!(
        app.cli(&["orders", "list", "--state", "paid"]).await.trim(),
        "no orders"
    );
    assert_eq!(
        app.cli(&["orders", "list", "--since", "2999-01-01"])
            .await
            .trim(),
        "no orders"
    );
    let unknown = Cli::try_parse_from(["cafe24-komoju", "orders", "list", "--state", "shipped"]);
    assert!(unknown.is_err());
}

async fn merchant_secrets_are_sealed_and_masked(backend: Backend) {
    let app = spawn_app(backend).await;
    let listed = app.cli(&["merchant", "list"]).await;
    assert!(listed.contains("demomall [enabled]"), "{listed}");
    assert!(listed.contains("shop 1 [enabled]"), "{listed}");
    assert!(
        !listed.contains("sk_test_demomall_0123456789"),
        "secret key shown: {listed}"
    );
    assert!(
        !listed.contains("whsec_demomall_0123456789"),
        "webhook secret shown: {listed}"
    );
    assert!(listed.contains("sk_test_…6789"), "{listed}");

    // At rest: sealed, not plaintext.
    let rows = app
        .state
        .db
        .run(cafe24_komoju::db::merchants::list)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (row, _) = &rows[0];
    assert!(row.komoju_secret_key.starts_with("v1:"));
    assert!(!row.komoju_secret_key.contains("sk_test"));
    assert!(!row.komoju_webhook_secret.contains("whsec"));

    // Bad input to `merchant add` names the flag and stores nothing.
    let mut out = Vec::new();
    let err = cli::run(
        Cli::parse_from(
            MerchantAdd::mall("Bad Mall")
                .secret_key("sk_test_x_0123456789")
                .webhook_secret("whsec_0123456789")
                .argv(),
        ),
        app.settings.clone(),
        &mut out,
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("--mall-id"), "{err}");
    let mut out = Vec::new();
    let err = cli::run(
        Cli::parse_from(
            MerchantAdd::mall("mall2")
                .secret_key("pk_test_not_a_secret_key")
                .webhook_secret("whsec_0123456789")
                .argv(),
        ),
        app.settings.clone(),
        &mut out,
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("--komoju-secret-key") && !err.contains("pk_test_not_a_secret_key"),
        "{err}"
    );
    assert_eq!(
        app.cli(&["merchant", "list"])
            .await
            .matches("[enabled]")
            .count(),
        2
    );
}

#[actix_web::test]
async fn sign_prints_the_protocol_test_vector() {
    let env: HashMap<&str, &str> = [("CAFE24_SERVICE_KEY", "test-service-key")]
        .into_iter()
        .collect();
    let settings = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    cli::run(
        Cli::parse_from([
            "cafe24-komoju",
            "sign",
            "3065.00",
            "PHP",
            "20220519-0000029",
            "demomall:1:demo-public",
        ]),
        settings,
        &mut out,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        String::from_utf8(out).unwrap_or_default().trim(),
        "pVyNk4tIav+unOFEb8EC2XxVPJ47ngJbfKZ1RGgeW6w="
    );
}

/// With the `sandbox` feature (the default): development without `KOMOJU_API_BASE` mounts
/// the sandbox, the service registers the merchant's webhook endpoint with it over HTTP
/// (`POST /api/v1/webhook_endpoints`, as it would talk to KOMOJU) and gets its webhooks;
/// production never mounts it.
#[cfg(feature = "sandbox")]
#[actix_web::test]
async fn development_mounts_the_sandbox_and_production_never_does() {
    let db = TestDb::new(&Backend::Sqlite);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let settings = test_settings(&db.url, port, None, &[]);
    let app = cafe24_komoju::app::startup::Application::build_with_listener(
        settings.clone(),
        listener,
        cafe24_komoju::clock::Clock::system(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let sandbox = app
        .sandbox()
        .unwrap_or_else(|| panic!("development without KOMOJU_API_BASE mounts the sandbox"));
    assert!(app.state().webhook_registrar.is_some());
    tokio::spawn(app.run_until_stopped());
    let mut out = Vec::new();
    cli::run(
        Cli::parse_from(MerchantAdd::demo().argv()),
        settings,
        &mut out,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = client
        .post(format!(
            "http://127.0.0.1:{port}/api/synchronous-checkout/checkout"
        ))
        .form(&checkout_fields("20220519-0000029", "3065.00", "PHP"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let url = body["payment_url"].as_str().unwrap_or_default().to_owned();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/sandbox/komoju/sessions/")),
        "{url}"
    );
    let page = client
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap_or_default();
    assert!(html.contains("pay-card") && html.contains("return-to-merchant"));

    // The service read the merchant's payment methods, then registered its webhook
    // endpoint over HTTP, authenticated with the merchant's secret key, before creating
    // the session.
    let calls: Vec<(String, String, u16)> = sandbox
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.status))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("GET".into(), "/api/v1/payment_methods".into(), 200),
            ("POST".into(), "/api/v1/webhook_endpoints".into(), 200),
            ("POST".into(), "/api/v1/sessions".into(), 200),
        ],
    );
    // Paying on the hosted page sends the payment's webhook to the service, signed with
    // the merchant's webhook secret, and the service accepts it.
    let pay = client
        .post(format!("{url}/pay"))
        .form(&[("method", "credit_card")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pay.status(), 302);
    assert!(
        sandbox
            .webhooks_idle(std::time::Duration::from_secs(10))
            .await
    );
    let deliveries = sandbox.deliveries();
    assert!(!deliveries.is_empty());
    for d in &deliveries {
        assert_eq!(
            d.url,
            format!(
                "http://127.0.0.1:{port}/api/asynchronous-checkout/checkout/webhook?mall_id={MALL}"
            )
        );
        assert_eq!(d.status, 200, "{d:?}");
    }

    // Production: no sandbox route exists, and KOMOJU is the real API.
    let db2 = TestDb::new(&Backend::Sqlite);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port2 = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let prod = test_settings(&db2.url, port2, None, &[("APP_ENV", "production")]);
    let app2 = cafe24_komoju::app::startup::Application::build_with_listener(
        prod,
        listener,
        cafe24_komoju::clock::Clock::system(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(app2.sandbox().is_none());
    assert!(app2.state().webhook_registrar.is_none());
    assert_eq!(app2.state().komoju.base(), "https://komoju.com/api/v1");
    tokio::spawn(app2.run_until_stopped());
    let resp = client
        .get(format!(
            "http://127.0.0.1:{port2}/sandbox/komoju/api/v1/sessions/x"
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 404);
}

/// Without the `sandbox` feature (`cargo test --no-default-features`): development without
/// `KOMOJU_API_BASE` refuses to start, before touching the database, and says why.
#[cfg(not(feature = "sandbox"))]
#[actix_web::test]
async fn a_build_without_the_sandbox_refuses_to_start_without_komoju_api_base() {
    let db = TestDb::new(&Backend::Sqlite);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let settings = test_settings(&db.url, port, None, &[]);
    let err = cafe24_komoju::app::startup::Application::build_with_listener(
        settings,
        listener,
        cafe24_komoju::clock::Clock::system(),
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("a build without the sandbox started without KOMOJU_API_BASE"));
    assert!(matches!(
        err,
        cafe24_komoju::app::startup::StartupError::NoSandbox
    ));
    let message = err.to_string();
    assert!(
        message.contains("no KOMOJU sandbox") && message.contains("KOMOJU_API_BASE"),
        "{message}"
    );
}
