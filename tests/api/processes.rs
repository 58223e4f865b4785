//! The real binary in its own processes: killed mid-delivery, stopped gracefully, two
//! instances on one PostgreSQL database, and a database outage during a webhook.

use std::collections::HashMap;
use std::time::Duration;

use cafe24_komoju::app::cli::{self, Cli};
use cafe24_komoju::clock::Clock;
use cafe24_komoju::db::{self, Database};
use clap::Parser;

use crate::both_backends;
use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Harness {
    pub(crate) db: TestDb,
    pub(crate) sandbox: cafe24_komoju_sandbox::Sandbox,
    pub(crate) komoju_api: String,
    pub(crate) cafe24: Receiver,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) client: reqwest::Client,
}

impl Harness {
    pub(crate) async fn new(backend: &Backend) -> Harness {
        let _ = env_logger::builder().is_test(true).try_init();
        let db = TestDb::new(backend);
        let (sandbox, komoju_api) = spawn_sandbox();
        let cafe24 = Receiver::spawn(Clock::system());
        let h = Harness {
            db,
            sandbox,
            komoju_api,
            cafe24,
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        };
        let settings = test_settings(&h.db.url, free_port(), Some(&h.komoju_api), &[]);
        let mut out = Vec::new();
        cli::run(
            Cli::parse_from(MerchantAdd::demo().argv()),
            settings,
            &mut out,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        h
    }

    pub(crate) fn env(&self, db_url: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
        test_env(db_url, free_port(), Some(&self.komoju_api), extra)
    }

    pub(crate) async fn start(&self, name: &str, extra: &[(&str, &str)]) -> ServiceProcess {
        ServiceProcess::start(
            self.env(&self.db.url, extra),
            self.dir.path().join(format!("{name}.log")),
        )
        .await
    }

    /// Async checkout through `service`, paid by card on the sandbox; returns the signed
    /// `payment.captured` webhook body.
    pub(crate) async fn paid_order(&self, service: &str, order_id: &str) -> Vec<u8> {
        let resp = self
            .client
            .post(format!("{service}/api/asynchronous-checkout/checkout"))
            .form(&async_fields(order_id, "100", "JPY", &self.cafe24))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status(), 200, "checkout {order_id}");
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let url = body["payment_url"].as_str().unwrap_or_default().to_owned();
        let pay = self
            .client
            .post(format!("{url}/pay"))
            .form(&[("method", "credit_card")])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pay.status(), 302);
        let session_id = url.rsplit('/').next().unwrap_or_default();
        let payment = self.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
        event_body(&format!("ev_{order_id}"), "payment.captured", &payment)
    }

    pub(crate) async fn webhook(&self, service: &str, body: &[u8]) -> u16 {
        self.client
            .post(format!(
                "{service}/api/asynchronous-checkout/checkout/webhook?mall_id={MALL}"
            ))
            .header("Content-Type", "application/json")
            .header("X-Komoju-Signature", komoju_signature(WEBHOOK_SECRET, body))
            .body(body.to_vec())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// Waits until every notification is delivered and unleased: a delivered row is never
    /// sent again, so what the fake Cafe24 holds then is final, with no sleep.
    pub(crate) async fn all_delivered(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let rows = self.notifications().await;
            if rows.iter().all(|n| {
                n.state == db::notifications::NotificationState::Delivered
                    && n.lease_owner.is_none()
            }) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not all delivered: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn notifications(&self) -> Vec<db::notifications::NotificationRow> {
        let db = Database::connect(&self.db.url).unwrap_or_else(|e| panic!("{e}"));
        db.run(|c| db::notifications::list(c, None, 10_000))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

both_backends!(
    killed_after_komoju_refunded_before_the_commit_refunds_once,
    killed_after_cafe24_got_it_before_marking_it_is_delivered_again,
    sigterm_finishes_the_notification_in_flight,
    database_outage_during_a_webhook_is_5xx_then_redelivery_applies_once,
);

async fn killed_after_komoju_refunded_before_the_commit_refunds_once(backend: Backend) {
    let h = Harness::new(&backend).await;
    let mut service = h
        .start("refund-crash", &[("KOMOJU_TIMEOUT_SECS", "20")])
        .await;
    let order_id = "20220519-0000029";
    // A paid synchronous order.
    let resp = h
        .client
        .post(format!(
            "{}/api/synchronous-checkout/checkout",
            service.address
        ))
        .form(&checkout_fields(order_id, "3000", "JPY"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = resp.json::<serde_json::Value>().await.unwrap_or_default()["payment_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pay = h
        .client
        .post(format!("{url}/pay"))
        .form(&[("method", "credit_card")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let callback = pay
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        h.client
            .get(&callback)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        302
    );
    let session_id = url.rsplit('/').next().unwrap_or_default();
    let tid = h.sandbox.session_json(session_id).unwrap_or_default()["payment"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // KOMOJU refunds, but its answer is slow; the service dies before it commits.
    h.sandbox.fail_next(
        1,
        cafe24_komoju_sandbox::Fault::DelayAfterProcessing(Duration::from_secs(15)),
    );
    let fields = cancel_fields(order_id, &tid, "3000", "JPY");
    let cancel_url = format!("{}/api/synchronous-cancellation/cancel", service.address);
    let first = tokio::spawn({
        let (client, url, fields) = (h.client.clone(), cancel_url.clone(), fields.clone());
        async move {
            client
                .post(url)
                .form(&fields)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let refunds = |h: &Harness| {
        h.sandbox.payment_json(&tid).unwrap_or_default()["refunds"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + WAIT;
    while refunds(&h) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "KOMOJU never refunded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service.kill();
    assert_eq!(
        first.await.unwrap_or(0),
        0,
        "the first request died with the service"
    );
    service.restart().await;
    // Cafe24 repeats the request: the stored idempotency key is replayed.
    let resp = h
        .client
        .post(&cancel_url)
        .form(&fields)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(refunds(&h), 1, "refunded twice");
    let db = Database::connect(&h.db.url).unwrap_or_else(|e| panic!("{e}"));
    let order = db
        .run(move |c| db::orders::find_by_order_id(c, MALL, order_id))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.as_str(), "refunded");
}

async fn killed_after_cafe24_got_it_before_marking_it_is_delivered_again(backend: Backend) {
    let h = Harness::new(&backend).await;
    let mut service = h
        .start(
            "crash",
            &[("OUTBOX_LEASE_SECS", "3"), ("NOTIFY_TIMEOUT_SECS", "2")],
        )
        .await;
    let body = h.paid_order(&service.address, "20220519-0000029").await;
    // Cafe24 receives the notification but its answer never comes back in time…
    h.cafe24.hang(Some(Duration::from_secs(30)));
    assert_eq!(h.webhook(&service.address, &body).await, 200);
    assert_eq!(h.cafe24.wait_for(1, WAIT).await.len(), 1);
    // …and the service dies before it could mark the row.
    service.kill();
    let rows = h.notifications().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state.as_str(), "pending", "the row was not marked");
    // What an operator reads of it says when it is tried again: at the dead worker's
    // lease end, which is also what takes it out of every other claim's way.
    assert!(rows[0].lease_expires_at.is_some(), "{rows:?}");
    assert_eq!(
        Some(rows[0].next_attempt_at),
        rows[0].lease_expires_at,
        "next attempt is not the lease's end"
    );
    h.cafe24.hang(None);
    service.restart().await;
    // After the dead worker's lease expires, the new process delivers it again.
    let got = h.cafe24.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2, "not redelivered after restart");
    assert_eq!(
        got[0].fields, got[1].fields,
        "the same notification, byte for byte"
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let rows = h.notifications().await;
        if rows[0].state.as_str() == "delivered" {
            assert_eq!(rows[0].attempts, 2);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never marked delivered: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sigterm_finishes_the_notification_in_flight(backend: Backend) {
    let h = Harness::new(&backend).await;
    let mut service = h.start("term", &[("NOTIFY_TIMEOUT_SECS", "5")]).await;
    let body = h.paid_order(&service.address, "20220519-0000029").await;
    h.cafe24.hang(Some(Duration::from_millis(1500)));
    assert_eq!(h.webhook(&service.address, &body).await, 200);
    assert_eq!(h.cafe24.wait_for(1, WAIT).await.len(), 1);
    let status = service.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful exit: {status:?}"
    );
    let rows = h.notifications().await;
    assert_eq!(rows[0].state.as_str(), "delivered", "{rows:?}");
    assert!(rows[0].lease_owner.is_none());
}

async fn database_outage_during_a_webhook_is_5xx_then_redelivery_applies_once(backend: Backend) {
    let h = Harness::new(&backend).await;
    match &backend {
        Backend::Postgres(_) => {
            // The service reaches PostgreSQL through a proxy the test can cut.
            let proxy = TcpProxy::start(5432).await;
            let mut url = url::Url::parse(&h.db.url).unwrap_or_else(|e| panic!("{e}"));
            let _ = url.set_port(Some(proxy.port));
            let env = h.env(url.as_str(), &[]);
            let service = ServiceProcess::start(env, h.dir.path().join("outage.log")).await;
            let body = h.paid_order(&service.address, "20220519-0000029").await;
            proxy.cut(true);
            // Let the proxy drop the pooled connections before the webhook arrives.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let status = h.webhook(&service.address, &body).await;
            assert!(
                (500..600).contains(&status),
                "webhook during outage answered {status}"
            );
            // Not ready while the database is cut, yet alive.
            let ready = reqwest::get(format!("{}/health/ready", service.address))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ready.status(), 503);
            let body_ready: serde_json::Value = ready.json().await.unwrap_or_default();
            assert_eq!(body_ready["checks"]["database"], "down", "{body_ready}");
            // Nobody can tell whether migrations are pending (issue 18, item 5).
            assert_eq!(
                body_ready["checks"]["migrations"], "unknown",
                "{body_ready}"
            );
            let live = reqwest::get(format!("{}/health", service.address))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(live.status(), 200);
            proxy.cut(false);
            assert_outage_recovered(&h, &service.address, &body).await;
        }
        Backend::Sqlite => {
            let service = h.start("outage", &[]).await;
            let body = h.paid_order(&service.address, "20220519-0000029").await;
            // Another writer holds the database past the service's busy timeout.
            let path = h.db.url.trim_start_matches("sqlite://").to_owned();
            let (locked_tx, locked_rx) = std::sync::mpsc::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let holder = std::thread::spawn(move || {
                use diesel::connection::SimpleConnection;
                use diesel::Connection;
                let mut c =
                    diesel::SqliteConnection::establish(&path).unwrap_or_else(|e| panic!("{e}"));
                c.batch_execute("BEGIN EXCLUSIVE")
                    .unwrap_or_else(|e| panic!("{e}"));
                let _ = locked_tx.send(());
                let _ = release_rx.recv();
                c.batch_execute("ROLLBACK")
                    .unwrap_or_else(|e| panic!("{e}"));
            });
            let _ = locked_rx.recv();
            let status = h.webhook(&service.address, &body).await;
            assert_eq!(status, 503, "webhook during outage");
            let _ = release_tx.send(());
            let _ = holder.join();
            assert_outage_recovered(&h, &service.address, &body).await;
        }
    }
}

/// After the outage, KOMOJU's redelivery is applied once and Cafe24 hears once.
async fn assert_outage_recovered(h: &Harness, service: &str, body: &[u8]) {
    assert!(
        h.notifications().await.is_empty(),
        "nothing was committed during the outage"
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = h.webhook(service, body).await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered (last {status})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        h.webhook(service, body).await,
        200,
        "a second redelivery is a duplicate"
    );
    assert_eq!(h.cafe24.wait_for(1, WAIT).await.len(), 1);
    h.all_delivered().await;
    assert_eq!(h.cafe24.received().len(), 1);
    assert_eq!(h.notifications().await.len(), 1);
}

/// Two service processes on one PostgreSQL database; 200 orders whose webhooks go to
/// both: every `return_noty_url` gets exactly one notification.
#[actix_web::test]
#[cfg_attr(
    not(test_postgres),
    ignore = "PostgreSQL only: set TEST_POSTGRES_URL (then cargo rebuilds the tests)"
)]
async fn two_processes_on_one_postgres_notify_each_order_exactly_once() {
    let backend = Backend::postgres();
    let h = Harness::new(&backend).await;
    // Twenty webhooks at once to each: all admitted (the limit's refusals are
    // tests/api/overload.rs's).
    let fast = [
        ("OUTBOX_POLL_MS", "20"),
        ("OUTBOX_BATCH", "5"),
        ("MAX_IN_FLIGHT_WEBHOOKS", "100"),
    ];
    let a = h.start("a", &fast).await;
    let b = h.start("b", &fast).await;
    let mut bodies = Vec::new();
    let h = &h;
    for chunk in (0..200).collect::<Vec<_>>().chunks(20) {
        let made = futures_util::future::join_all(chunk.iter().map(|i| {
            let service = if i % 2 == 0 {
                a.address.clone()
            } else {
                b.address.clone()
            };
            let order_id = format!("20220519-{i:07}");
            async move { h.paid_order(&service, &order_id).await }
        }))
        .await;
        bodies.extend(made);
    }
    // Every webhook goes to both processes at once.
    for chunk in bodies.chunks(20) {
        let statuses = futures_util::future::join_all(
            chunk
                .iter()
                .flat_map(|body| [h.webhook(&a.address, body), h.webhook(&b.address, body)]),
        )
        .await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    let got = h.cafe24.wait_for(200, Duration::from_secs(60)).await;
    h.all_delivered().await;
    let got_all = h.cafe24.received();
    assert_eq!(got.len(), 200);
    assert_eq!(got_all.len(), 200, "some order was notified twice");
    let mut per_order: HashMap<String, usize> = HashMap::new();
    for r in &got_all {
        *per_order.entry(r.fields["order_id"].clone()).or_default() += 1;
    }
    assert_eq!(per_order.len(), 200);
    assert!(per_order.values().all(|n| *n == 1));
    let rows = h.notifications().await;
    assert_eq!(rows.len(), 200);
    assert!(
        rows.iter()
            .all(|r| r.state.as_str() == "delivered" && r.attempts == 1),
        "a row was sent twice"
    );
}

/// A TCP proxy to a local port that the test can cut (drop every connection, refuse new
/// ones) and restore.
pub(crate) struct TcpProxy {
    pub(crate) port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl TcpProxy {
    pub(crate) async fn start(target_port: u16) -> TcpProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let generation = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let (c2, g2) = (c.clone(), g.clone());
                let born = g.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        return;
                    };
                    let pipe = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let watch = async {
                        while !c2.load(Ordering::SeqCst) && g2.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = pipe => {}, _ = watch => {} }
                });
            }
        });
        TcpProxy {
            port,
            cut,
            generation,
        }
    }

    pub(crate) fn cut(&self, on: bool) {
        use std::sync::atomic::Ordering;
        self.cut.store(on, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}
