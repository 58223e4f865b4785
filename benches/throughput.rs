//! Throughput of the two paths money facts take (docs/benchmarks.md):
//! 1. KOMOJU webhooks acknowledged per second (signature, de-duplication, state change and
//!    outbox row committed before the 200), with the outbox worker off;
//! 2. notifications delivered per second by one worker to a local Cafe24 stand-in that
//!    answers `{"result":"OK"}` at once.
//!
//! Run: `cargo bench --bench throughput` (SQLite), with `BENCH_POSTGRES_URL=postgres://…`
//! (a database it may create schemas in) for PostgreSQL too. `BENCH_ORDERS` (default
//! 1000) and `BENCH_CONCURRENCY` (default 16) tune it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::Engine;
use cafe24_komoju::app::cli::{self, Cli};
use cafe24_komoju::app::settings::Settings;
use cafe24_komoju::app::startup::Application;
use cafe24_komoju::clock::Clock;
use cafe24_komoju_sandbox::Sandbox;

#[path = "../tests/common/merchant.rs"]
mod merchant_fixture;
use clap::Parser;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use merchant_fixture::MerchantAdd;

const SERVICE_KEY: &str = "bench-service-key";
const WEBHOOK_SECRET: &str = "whsec_bench_0123456789";

fn hmac_b64(values: &[&str]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SERVICE_KEY.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(values.concat().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let p = l.local_addr().map(|a| a.port()).unwrap_or_default();
    (l, p)
}

struct Figures {
    backend: &'static str,
    orders: usize,
    webhooks_per_sec: f64,
    notifications_per_sec: f64,
}

async fn run(backend: &'static str, db_url: String, orders: usize, concurrency: usize) -> Figures {
    // KOMOJU stand-in.
    let (l, sport) = port();
    let sandbox = Sandbox::new(&format!("http://127.0.0.1:{sport}"));
    let sb = sandbox.clone();
    tokio::spawn(
        HttpServer::new(move || App::new().configure(sb.configure("")))
            .workers(1)
            .listen(l)
            .unwrap_or_else(|e| panic!("{e}"))
            .run(),
    );
    // Cafe24 stand-in: answers OK at once, counts.
    let delivered = Arc::new(AtomicUsize::new(0));
    let d = delivered.clone();
    let (l, rport) = port();
    tokio::spawn(
        HttpServer::new(move || {
            let d = d.clone();
            App::new().default_service(web::to(move || {
                d.fetch_add(1, Ordering::SeqCst);
                async { HttpResponse::Ok().json(serde_json::json!({"result": "OK"})) }
            }))
        })
        .workers(1)
        .listen(l)
        .unwrap_or_else(|e| panic!("{e}"))
        .run(),
    );
    // The service, worker off for the webhook phase.
    let (l, aport) = port();
    let env: HashMap<&str, String> = [
        ("DATABASE_URL", db_url),
        ("PUBLIC_BASE_URL", format!("http://127.0.0.1:{aport}")),
        (
            "KOMOJU_API_BASE",
            format!("http://127.0.0.1:{sport}/api/v1"),
        ),
        ("CAFE24_SERVICE_KEY", SERVICE_KEY.to_owned()),
        (
            "APP_SECRET",
            "bench-app-secret-0123456789abcdef-0123456789".to_owned(),
        ),
        ("OUTBOX_WORKER", "off".to_owned()),
        ("OUTBOX_BATCH", "50".to_owned()),
        ("OUTBOX_POLL_MS", "20".to_owned()),
    ]
    .into_iter()
    .collect();
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"));
    let app = Application::build_with_listener(settings.clone(), l, Clock::system())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let state = app.state();
    let outbox_settings = settings.outbox.clone();
    tokio::spawn(app.run_until_stopped());
    let mut out = Vec::new();
    cli::run(
        Cli::parse_from(
            MerchantAdd::mall("benchmall")
                .public_ref("b")
                .secret_key("sk_test_bench_0123456789")
                .webhook_secret(WEBHOOK_SECRET)
                .argv(),
        ),
        settings,
        &mut out,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));

    // Set-up (not timed): orders checked out and paid by card on the sandbox.
    let mut bodies = Vec::with_capacity(orders);
    for chunk in (0..orders).collect::<Vec<_>>().chunks(concurrency) {
        let made = futures_util::future::join_all(chunk.iter().map(|i| {
            let client = client.clone();
            let sandbox = sandbox.clone();
            async move {
                let order_id = format!("B-{i:07}");
                let partner = "benchmall:1:b";
                let fields = [
                    ("partner_id", partner.to_owned()),
                    ("order_id", order_id.clone()),
                    ("amount", "1000".to_owned()),
                    ("currency", "JPY".to_owned()),
                    ("return_url", "https://benchmall.cafe24shop.com/r".to_owned()),
                    ("return_noty_url", format!("http://127.0.0.1:{rport}/noty")),
                    ("hash_data", hmac_b64(&["1000", "JPY", &order_id, partner])),
                ];
                let r: serde_json::Value = client
                    .post(format!("http://127.0.0.1:{aport}/api/asynchronous-checkout/checkout"))
                    .form(&fields)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .json()
                    .await
                    .unwrap_or_default();
                let url = r["payment_url"].as_str().unwrap_or_else(|| panic!("checkout failed: {r}")).to_owned();
                client.post(format!("{url}/pay")).form(&[("method", "credit_card")]).send().await.unwrap_or_else(|e| panic!("{e}"));
                let sid = url.rsplit('/').next().unwrap_or_default();
                let payment = sandbox.session_json(sid).unwrap_or_default()["payment"].clone();
                serde_json::to_vec(&serde_json::json!({"id": format!("ev_{order_id}"), "type": "payment.captured",
                    "resource": "event", "data": payment, "created_at": "2026-11-21T12:00:00+09:00", "reason": null}))
                .unwrap_or_default()
            }
        }))
        .await;
        bodies.extend(made);
    }

    // 1. Webhooks acknowledged per second.
    let started = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let queue = queue.clone();
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some(body) = next else { break };
                    let status = client
                        .post(format!("http://127.0.0.1:{aport}/api/asynchronous-checkout/checkout/webhook?mall_id=benchmall"))
                        .header("Content-Type", "application/json")
                        .header("X-Komoju-Signature", hmac_hex(&body))
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    assert_eq!(status, 200, "webhook not acknowledged");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let webhook_secs = started.elapsed().as_secs_f64();

    // 2. Notifications delivered per second by one worker.
    let worker = cafe24_komoju::notifications::Worker::new(
        state.clone(),
        outbox_settings,
        state.outbox_wake.clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let handle = tokio::spawn(worker.run(stop_rx));
    while delivered.load(Ordering::SeqCst) < orders {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let notify_secs = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = handle.await;
    Figures {
        backend,
        orders,
        webhooks_per_sec: orders as f64 / webhook_secs,
        notifications_per_sec: orders as f64 / notify_secs,
    }
}

fn main() {
    let orders: usize = std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut results = Vec::new();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.sqlite3").display());
    results.push(actix_web::rt::System::new().block_on(run("sqlite", sqlite, orders, concurrency)));
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let schema = format!("bench_{}", std::process::id());
        cafe24_komoju::db::init_tls();
        let mut conn = diesel::PgConnection::establish(&admin).unwrap_or_else(|e| panic!("{e}"));
        diesel::sql_query(format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
        results.push(actix_web::rt::System::new().block_on(run(
            "postgresql",
            url,
            orders,
            concurrency,
        )));
        let _ = diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE")).execute(&mut conn);
    }
    println!("\nthroughput ({cores} cores, {orders} orders, {concurrency} concurrent webhook senders, release build)");
    println!("| backend | webhooks acknowledged/s | notifications delivered/s |");
    println!("|---|---|---|");
    for f in results {
        println!(
            "| {} | {:.0} | {:.0} |",
            f.backend, f.webhooks_per_sec, f.notifications_per_sec
        );
        let _ = f.orders;
    }
}
