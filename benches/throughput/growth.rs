//! Cost as the data grows (issue 21, items 1, 2 and 4):
//! `cargo bench --bench throughput -- growth`.
//!
//! Per backend, one database grown in steps by `db::seed` (a realistic year over many
//! malls: docs/benchmarks.md "Seeding"): SQLite at 0 / 100 000 / 1 000 000 orders,
//! PostgreSQL at 0 / 1 000 000 / 5 000 000 (`BENCH_GROWTH_SQLITE`,
//! `BENCH_GROWTH_POSTGRES`: comma-separated sizes). At each size, against one release
//! `serve` process (outbox worker off, nothing shed) and the KOMOJU sandbox
//! (`crates/sandbox`) on loopback, the same work is measured (the requests in three
//! rounds, each figure the median of its rounds': one p99 of a few hundred requests on
//! this shared machine moves 2 × from a single stall):
//!
//! - checkouts: `BENCH_GROWTH_N` (2 000) asynchronous checkouts at 64 concurrent against
//!   the sandbox held 50 ms per session: overhead p50 / p99 beyond those 50 ms;
//! - webhooks: `BENCH_GROWTH_N` signed `payment.captured` at 16 concurrent: per second
//!   and p99;
//! - `BENCH_GROWTH_FLOWS` (300) synchronous orders paid on the sandbox's hosted page:
//!   the callback (the service reads the session from KOMOJU), the status read and the
//!   synchronous cancellation (a KOMOJU refund), each p99 at 16 concurrent;
//! - the operator API's order list and order view, p99 at 16 concurrent;
//! - one reconciliation pass (`reconciliation::pass`, in this process on the same
//!   database) over the bench mall's due pending orders (1 000 more at each size; it
//!   reads them all): the time its database statements took (diesel's
//!   instrumentation), per 1 000 orders read, beside its wall time, which KOMOJU's
//!   reads and their pacing (100 ms per merchant) dominate whatever the size;
//! - the outbox claim (`db::notifications::claim`, batches of 50, twenty-five rounds of
//!   twenty): p50 / p99;
//! - CPU: the service process's per checkout and per webhook (`/proc/<pid>/stat`), the
//!   database's (PostgreSQL: every `postgres` process; SQLite: the service's `sqlite`
//!   thread) per webhook, and the service's peak RSS;
//! - the machine, whatever the data (each round): the service's CPU per `GET /health`,
//!   the database's time for a count that reads no table, and the CPU time the
//!   hypervisor gave to others (`steal`). A figure that moves with these moved with the
//!   machine's speed, which a shared host changes by the hour; the service's CPU per
//!   webhook is also printed in `GET /health`s.
//!
//! At the largest size, the retention run: webhooks p99 without a purge, then the same
//! number while `retention::purge` removes what is older than 30 days in its paced
//! batches, three rounds of the two, each side the median of its rounds, with the rows
//! the purge removed per second.
//!
//! Figures are printed as a table and written as JSON to `BENCH_GROWTH_JSON` (default
//! `target/growth.json`), which `docs/plot_growth.py` draws.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cafe24_komoju::app::settings::Settings;
use cafe24_komoju::app::startup::Application;
use cafe24_komoju::clock::Clock;
use cafe24_komoju::db;
use cafe24_komoju_sandbox::{Fault, Sandbox};
use diesel::connection::{Instrumentation, InstrumentationEvent};
use futures_util::StreamExt;

use super::loadgen;
use super::service::{cpu_of, read_syscalls_of, Service};
use super::standins;
use super::wire::{
    add_merchant, captured_event, checkout_requests, cli, count_on, db_cpu, env_num, hmac_b64,
    latencies_ms, load, metrics_text, orders_by_id, percentile, settle, steal_jiffies, steal_since,
    verdict, webhook_request, write_json, PgSchema, AMOUNT, KOMOJU_DELAY, MALL, PARTNER,
    SERVICE_KEY,
};

/// Rounds of the retention run (each: webhooks without a purge, then during one).
const RETENTION_ROUNDS: usize = 3;

/// Checkouts sent first at each size to warm connections and caches, left out.
const WARM_UP: usize = 64;
/// Pending orders left due for the reconciliation pass at each size.
const DUE: usize = 1_000;
/// Webhook senders, as in the throughput benchmark.
const CONCURRENCY: usize = 16;
/// Concurrent checkouts, as in the throughput benchmark.
const CHECKOUT_CONCURRENCY: usize = 64;
/// Orders per seeding transaction.
const SEED_CHUNK: u64 = 250_000;
/// Outbox claims timed in one round at each size.
const CLAIMS: usize = 20;
/// Rounds of [`CLAIMS`] claims at each size, each round's rows given back after it, so
/// that the p99 is not the largest of twenty (nor, at 5 rounds, the largest of a
/// hundred: one slow claim moved it 3 × while the p50 halved).
const CLAIM_ROUNDS: usize = 25;

/// `GET /health` requests of the reference load in each round: the service's CPU is read
/// in 10 ms ticks, and 50 000 at about 10 µs each take 50 of them.
const REFERENCE_REQUESTS: usize = 50_000;
/// The database's reference load, the same statement on both backends: CPU work in the
/// server that reads no table, so that its time moves with the machine, not the data.
const REFERENCE_SQL: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
     WHERE x < 1000000) SELECT COUNT(*) AS n FROM c";

/// Rounds of the requests measured at each size (checkouts, webhooks, the synchronous
/// flows, the operator API); each figure of a size is the median of its rounds'.
const ROUNDS: usize = 3;

/// What one size measured. The request figures (checkouts to the operator API, and the
/// CPU per checkout and per webhook) are the medians of [`AtSize::rounds`].
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct AtSize {
    /// Seeded orders in the database (the bench's own few thousand not counted).
    pub orders: u64,
    pub checkout_overhead_ms_p50: f64,
    pub checkout_overhead_ms_p99: f64,
    pub webhooks_per_sec: f64,
    pub webhook_ms_p99: f64,
    pub callback_ms_p99: f64,
    pub status_ms_p99: f64,
    pub cancel_ms_p99: f64,
    pub operator_list_ms_p99: f64,
    pub operator_view_ms_p99: f64,
    /// Time spent in database statements during one reconciliation pass.
    pub pass_db_ms: f64,
    pub pass_statements: u64,
    /// KOMOJU sessions the pass read.
    pub pass_reads: usize,
    /// `pass_db_ms` per 1 000 orders read: the pass reads every due order of the bench
    /// mall, and each size's checkouts leave more of them, so the pass's total grows with
    /// the steps of the run, not with the size of the tables.
    pub pass_db_ms_per_1000_reads: f64,
    pub pass_wall_ms: f64,
    pub claim_ms_p50: f64,
    pub claim_ms_p99: f64,
    pub service_cpu_us_per_checkout: f64,
    pub service_cpu_us_per_webhook: f64,
    pub db_cpu_us_per_webhook: f64,
    /// The service's file reads per webhook (SQLite: pages its cache missed).
    pub read_syscalls_per_webhook: f64,
    /// The machine's speed as the service sees it, whatever the data: the service's CPU
    /// per `GET /health` ([`REFERENCE_REQUESTS`] at 16 concurrent; no database work), µs.
    pub reference_health_cpu_us: f64,
    /// The database server's speed, whatever the data: the wall time of
    /// [`REFERENCE_SQL`] (a count to 1 000 000 touching no table), the median of five, ms.
    pub reference_db_ms: f64,
    /// The share of the machine's CPU time its hypervisor gave to others over the round
    /// (`steal` of `/proc/stat`), per cent.
    pub steal_pct: f64,
    pub seeding_secs: f64,
    /// Each round's request figures, in the order run (empty inside a round).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<AtSize>,
}

/// The request figures of `rounds`, each the median of the rounds' (the rest zero).
fn medians(rounds: &[AtSize]) -> AtSize {
    let m = |get: fn(&AtSize) -> f64| median(&rounds.iter().map(get).collect::<Vec<f64>>());
    AtSize {
        checkout_overhead_ms_p50: m(|f| f.checkout_overhead_ms_p50),
        checkout_overhead_ms_p99: m(|f| f.checkout_overhead_ms_p99),
        webhooks_per_sec: m(|f| f.webhooks_per_sec),
        webhook_ms_p99: m(|f| f.webhook_ms_p99),
        callback_ms_p99: m(|f| f.callback_ms_p99),
        status_ms_p99: m(|f| f.status_ms_p99),
        cancel_ms_p99: m(|f| f.cancel_ms_p99),
        operator_list_ms_p99: m(|f| f.operator_list_ms_p99),
        operator_view_ms_p99: m(|f| f.operator_view_ms_p99),
        service_cpu_us_per_checkout: m(|f| f.service_cpu_us_per_checkout),
        service_cpu_us_per_webhook: m(|f| f.service_cpu_us_per_webhook),
        db_cpu_us_per_webhook: m(|f| f.db_cpu_us_per_webhook),
        read_syscalls_per_webhook: m(|f| f.read_syscalls_per_webhook),
        reference_health_cpu_us: m(|f| f.reference_health_cpu_us),
        reference_db_ms: m(|f| f.reference_db_ms),
        steal_pct: m(|f| f.steal_pct),
        ..AtSize::default()
    }
}

/// The retention run at the largest size.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RetentionRun {
    pub orders: u64,
    /// The median of [`RetentionRun::rounds_p99_without`], ms.
    pub webhook_ms_p99_without: f64,
    /// The median of [`RetentionRun::rounds_p99_during`], ms.
    pub webhook_ms_p99_during: f64,
    /// Each round's webhook p99 without a purge, ms, in the order run.
    pub rounds_p99_without: Vec<f64>,
    /// Each round's webhook p99 during a purge, ms, in the order run.
    pub rounds_p99_during: Vec<f64>,
    pub rows_purged: u64,
    pub rows_purged_per_sec: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct Growth {
    pub backend: &'static str,
    pub sizes: Vec<AtSize>,
    pub retention: RetentionRun,
    pub peak_rss_bytes: u64,
}

/// Statement timing of this process's diesel connections while [`TIMING`] is on.
static TIMING: AtomicBool = AtomicBool::new(false);
static STATEMENT_NANOS: AtomicU64 = AtomicU64::new(0);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
/// While [`TIMING`]: each statement's text (its first 120 characters) → nanoseconds.
static BY_STATEMENT: std::sync::Mutex<Vec<(String, u64)>> = std::sync::Mutex::new(Vec::new());

/// Times each statement from its start to its finish on the connection's thread. The
/// statements of the bench process's SQLite checkpointer (its `sqlite-checkpoint`
/// thread, a `PRAGMA wal_checkpoint(PASSIVE)` every 100 ms all through the pass) are
/// not the pass's and are left out: until they were, they made most of SQLite's figure.
#[derive(Default)]
struct StatementClock {
    started: Option<Instant>,
}

impl Instrumentation for StatementClock {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { query, .. } => {
                if let Some(t) = self.started.take() {
                    if TIMING.load(Ordering::SeqCst)
                        && std::thread::current().name() != Some("sqlite-checkpoint")
                    {
                        let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        STATEMENT_NANOS.fetch_add(nanos, Ordering::SeqCst);
                        STATEMENTS.fetch_add(1, Ordering::SeqCst);
                        let text: String = query.to_string().chars().take(120).collect();
                        if let Ok(mut seen) = BY_STATEMENT.lock() {
                            seen.push((text, nanos));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Everything a size's measurement talks to.
struct Bench {
    backend: &'static str,
    db_url: String,
    service: Service,
    sandbox: Sandbox,
    receiver: String,
    token: String,
    app: Application,
    n: usize,
    flows: usize,
    /// The next bench order number (`B-{next}`).
    next: usize,
    /// The synchronous orders of the last size, for the operator's order view.
    flow_ids: Vec<String>,
    komoju_api: String,
    dir: std::path::PathBuf,
    /// The largest peak RSS of the service processes stopped so far.
    peak_rss: u64,
}

/// Serves a fresh KOMOJU sandbox on loopback; returns it and its API base.
fn sandbox() -> (Sandbox, String) {
    let (l, addr) = standins::listener();
    let sandbox = Sandbox::new(&format!("http://{addr}"));
    let served = sandbox.clone();
    tokio::spawn(
        actix_web::HttpServer::new(move || actix_web::App::new().configure(served.configure("")))
            .workers(1)
            .listen(l)
            .unwrap_or_else(|e| panic!("{e}"))
            .run(),
    );
    (sandbox, format!("http://{addr}/api/v1"))
}

fn sizes(var: &str, default: &str) -> Vec<u64> {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect()
}

/// Sorted latencies in milliseconds of every reply of `run`, after checking its status.
fn millis(run: &loadgen::Run, status: u16, what: &str) -> Vec<f64> {
    run.expect_status(status, what);
    latencies_ms(&run.replies, Duration::ZERO)
}

/// Runs `sql`, one statement both backends read alike, on a connection of its own to
/// `db_url`; returns how many rows it changed. Panics on any error (the bench stops).
fn execute(db_url: &str, sql: &str) -> usize {
    use diesel::RunQueryDsl;
    let mut c = db::establish(db_url).unwrap_or_else(|e| panic!("{e}"));
    let changed = match &mut c {
        db::DbConnection::Postgres(c) => diesel::sql_query(sql).execute(c),
        db::DbConnection::Sqlite(c) => diesel::sql_query(sql).execute(c),
    };
    changed.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The service's environment for `db_url` and the sandbox at `komoju_api`.
fn service_env(db_url: &str, komoju_api: &str) -> HashMap<String, String> {
    [
        ("DATABASE_URL", db_url),
        ("KOMOJU_API_BASE", komoju_api),
        ("CAFE24_SERVICE_KEY", SERVICE_KEY),
        ("APP_SECRET", "bench-app-secret-0123456789abcdef-0123456789"),
        ("OUTBOX_WORKER", "off"),
        ("DATABASE_POOL_SIZE", "16"),
        ("MAX_IN_FLIGHT", "10000"),
        ("MAX_IN_FLIGHT_WEBHOOKS", "10000"),
        ("RECONCILE_INTERVAL_MS", "3600000"),
        ("RECONCILE_PENDING_AFTER_SECS", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl Bench {
    async fn start(backend: &'static str, db_url: String, dir: &Path) -> Bench {
        let (sandbox, komoju_api) = sandbox();
        let receiver = standins::Receiver::spawn().url;
        let env = service_env(&db_url, &komoju_api);
        let service = Service::start(&env, &dir.join(format!("{backend}-growth.log"))).await;
        add_merchant(&env);
        let token = cli(
            &env,
            &["operator", "token", "--ttl", "24h"].map(str::to_owned),
        );
        let settings =
            Settings::from_lookup(|k| env.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"));
        let (listener, _) = standins::listener();
        let app = Application::build_with_listener(settings, listener, Clock::system())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Bench {
            backend,
            db_url,
            service,
            sandbox,
            receiver,
            token,
            app,
            n: env_num("BENCH_GROWTH_N", 2000),
            flows: env_num("BENCH_GROWTH_FLOWS", 300),
            next: 0,
            flow_ids: Vec::new(),
            komoju_api,
            dir: dir.to_owned(),
            peak_rss: 0,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.service.addr
    }

    /// Seeds `orders` more orders in chunks; returns the seconds it took.
    fn seed(&self, orders: u64, chunk_seed: &mut u64) -> f64 {
        let started = Instant::now();
        let mut c = db::establish(&self.db_url).unwrap_or_else(|e| panic!("{e}"));
        let mut left = orders;
        while left > 0 {
            let chunk = left.min(SEED_CHUNK);
            *chunk_seed += 1;
            let plan = db::seed::SeedPlan {
                orders: chunk,
                malls: 10,
                days: 365,
                now: chrono::Utc::now().naive_utc(),
                seed: *chunk_seed,
                retry_schedule: &cafe24_komoju::notifications::SCHEDULE,
            };
            db::seed::seed(&mut c, &plan).unwrap_or_else(|e| panic!("seeding: {e}"));
            left -= chunk;
            println!("  seeded {} of {orders}", orders - left);
        }
        started.elapsed().as_secs_f64()
    }

    /// `n` asynchronous checkouts (plus a warm-up) with the sandbox holding each
    /// session 50 ms when `delayed`; returns their order ids and the run.
    fn checkouts(&mut self, n: usize, delayed: bool) -> (Vec<String>, loadgen::Run) {
        if delayed {
            self.sandbox.fail_next(
                u32::try_from(WARM_UP + n).unwrap_or(u32::MAX),
                Fault::DelayAfterProcessing(KOMOJU_DELAY),
            );
        }
        let receiver = Some(self.receiver.as_str());
        let warm = checkout_requests(&self.addr(), receiver, self.next, WARM_UP);
        let (ids, requests): (Vec<String>, Vec<Vec<u8>>) =
            checkout_requests(&self.addr(), receiver, self.next + WARM_UP, n)
                .into_iter()
                .unzip();
        self.next += WARM_UP + n;
        let warm = warm.into_iter().map(|(_, r)| r).collect();
        load(vec![self.addr()], CHECKOUT_CONCURRENCY, warm, false)
            .expect_status(200, "warm-up checkout");
        let run = load(vec![self.addr()], CHECKOUT_CONCURRENCY, requests, false);
        run.expect_status(200, "checkout");
        (ids, run)
    }

    /// `payment.captured` for each of `ids`, at 16 concurrent.
    fn webhooks(&self, ids: &[String]) -> loadgen::Run {
        let by_id = orders_by_id(&self.db_url);
        let requests = ids
            .iter()
            .map(|id| webhook_request(&self.addr(), &captured_event(&by_id[id])))
            .collect();
        load(vec![self.addr()], CONCURRENCY, requests, false)
    }

    async fn at_size(&mut self, orders: u64, seeding_secs: f64) -> AtSize {
        settle(&self.db_url);
        let mut rounds = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            // The first round leaves the DUE pending orders the reconciliation reads.
            rounds.push(self.requests_round(if round == 0 { DUE } else { 0 }).await);
        }
        let mut f = medians(&rounds);
        f.orders = orders;
        f.seeding_secs = seeding_secs;
        f.rounds = rounds;
        self.reconciliation_pass(&mut f).await;
        self.outbox_claims(&mut f);
        self.deliver_own_notifications();
        f
    }

    /// One round of the requests measured at a size: checkouts (`due` more left
    /// pending), webhooks, the synchronous flows, the operator API.
    async fn requests_round(&mut self, due: usize) -> AtSize {
        let mut f = AtSize::default();
        let pid = self.service.pid();
        let steal = steal_jiffies();
        self.reference(&mut f);
        let cpu = cpu_of(pid);
        let (ids, run) = self.checkouts(self.n + due, true);
        f.service_cpu_us_per_checkout =
            (cpu_of(pid) - cpu).as_secs_f64() * 1e6 / (WARM_UP + self.n + due) as f64;
        run.expect_status(200, "checkout");
        let overhead = latencies_ms(&run.replies, KOMOJU_DELAY);
        f.checkout_overhead_ms_p50 = percentile(&overhead, 50.0);
        f.checkout_overhead_ms_p99 = percentile(&overhead, 99.0);

        let (cpu, dbcpu) = (cpu_of(pid), db_cpu(self.backend, pid));
        let reads = read_syscalls_of(pid);
        let run = self.webhooks(&ids[..self.n]);
        f.read_syscalls_per_webhook =
            (read_syscalls_of(pid).saturating_sub(reads)) as f64 / self.n as f64;
        f.service_cpu_us_per_webhook = (cpu_of(pid) - cpu).as_secs_f64() * 1e6 / self.n as f64;
        f.db_cpu_us_per_webhook =
            (db_cpu(self.backend, pid) - dbcpu).as_secs_f64() * 1e6 / self.n as f64;
        f.webhooks_per_sec = run.rate();
        f.webhook_ms_p99 = percentile(&millis(&run, 200, "webhook"), 99.0);

        self.synchronous_flows(&mut f).await;
        self.operator(&mut f);
        f.steal_pct = steal_since(steal) * 100.0;
        f
    }

    /// The reference loads, which do the same work at every size: the service's CPU per
    /// `GET /health` and the database's time for [`REFERENCE_SQL`]. A figure that grows
    /// with them grew with the machine's speed (a shared host's hour), not the data.
    fn reference(&self, f: &mut AtSize) {
        let requests = (0..REFERENCE_REQUESTS)
            .map(|_| loadgen::get(&self.addr(), "/health", &[]))
            .collect();
        let (run, cpu) = self
            .service
            .cpu_over(|| load(vec![self.addr()], CONCURRENCY, requests, false));
        run.expect_status(200, "/health");
        f.reference_health_cpu_us = cpu.as_secs_f64() * 1e6 / REFERENCE_REQUESTS as f64;
        let mut c = db::establish(&self.db_url).unwrap_or_else(|e| panic!("{e}"));
        let ms: Vec<f64> = (0..5)
            .map(|_| {
                let started = Instant::now();
                count_on(&mut c, REFERENCE_SQL);
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        f.reference_db_ms = median(&ms);
    }

    /// Marks the bench mall's pending notifications delivered, as the outbox worker (off
    /// in this run) would have within seconds: otherwise they stay pending through the
    /// seeding of the next size, and that size's claims, oldest due first, take rows on
    /// heap pages written before millions of others, which no running service has.
    fn deliver_own_notifications(&self) {
        let now = chrono::Utc::now().naive_utc().format("%Y-%m-%d %H:%M:%S");
        let delivered = execute(
            &self.db_url,
            &format!(
                "UPDATE notifications SET state = 'delivered', delivered_at = '{now}', \
                 updated_at = '{now}', last_status = 200, lease_owner = NULL, \
                 lease_expires_at = NULL \
                 WHERE state = 'pending' \
                 AND order_pk IN (SELECT id FROM orders WHERE mall_id = '{MALL}')"
            ),
        );
        println!("  {delivered} pending notifications of {MALL} marked delivered");
    }

    /// Synchronous orders paid on the hosted page: callback, status, cancellation.
    async fn synchronous_flows(&mut self, f: &mut AtSize) {
        let (ids, requests): (Vec<String>, Vec<Vec<u8>>) =
            checkout_requests(&self.addr(), None, self.next, self.flows)
                .into_iter()
                .unzip();
        self.next += self.flows;
        let run = load(vec![self.addr()], CONCURRENCY, requests, true);
        run.expect_status(200, "synchronous checkout");
        let payment_urls: Vec<String> = run
            .replies
            .iter()
            .map(|r| {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                body["payment_url"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        let callbacks = pay_by_card(payment_urls).await;

        let requests = callbacks
            .iter()
            .map(|path| loadgen::get(&self.addr(), path, &[]))
            .collect();
        let run = load(vec![self.addr()], CONCURRENCY, requests, true);
        f.callback_ms_p99 = percentile(&millis(&run, 302, "callback"), 99.0);
        let requests = run
            .replies
            .iter()
            .map(|r| self.status_request(r.location.as_deref().unwrap_or_default()))
            .collect();
        let run = load(vec![self.addr()], CONCURRENCY, requests, false);
        f.status_ms_p99 = percentile(&millis(&run, 200, "status"), 99.0);

        let requests = self.cancellation_requests(&ids);
        let run = load(vec![self.addr()], CONCURRENCY, requests, false);
        f.cancel_ms_p99 = percentile(&millis(&run, 200, "cancellation"), 99.0);
        self.flow_ids = ids;
    }

    /// The status request for the callback's redirect to `location` (its `key`).
    fn status_request(&self, location: &str) -> Vec<u8> {
        let key = url::Url::parse(location)
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "key")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_else(|| panic!("callback without a key: {location}"));
        form(
            &self.addr(),
            "/api/synchronous-checkout/checkout/status",
            &[("key", &key)],
        )
    }

    /// A full synchronous cancellation for each of the paid orders `ids`.
    fn cancellation_requests(&self, ids: &[String]) -> Vec<Vec<u8>> {
        let mut c = db::establish(&self.db_url).unwrap_or_else(|e| panic!("{e}"));
        ids.iter()
            .map(|id| {
                let tid = db::orders::find_by_order_id(&mut c, MALL, id)
                    .ok()
                    .flatten()
                    .and_then(|o| o.komoju_payment_id)
                    .unwrap_or_else(|| panic!("order {id} has no payment"));
                let hash = hmac_b64(&[AMOUNT, "JPY", id, PARTNER, &tid]);
                form(
                    &self.addr(),
                    "/api/synchronous-cancellation/cancel",
                    &[
                        ("partner_id", PARTNER),
                        ("order_id", id),
                        ("tid", &tid),
                        ("cancel_amount", AMOUNT),
                        ("currency", "JPY"),
                        ("hash_data", &hash),
                    ],
                )
            })
            .collect()
    }
}

/// Pays each of the sandbox's hosted pages at `payment_urls` by card (8 at a time) and
/// returns the paths the pages redirect to: the service's callbacks.
async fn pay_by_card(payment_urls: Vec<String>) -> Vec<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    futures_util::stream::iter(payment_urls)
        .map(|url| {
            let client = client.clone();
            async move {
                let resp = client
                    .post(format!("{url}/pay"))
                    .form(&[("method", "credit_card")])
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("pay: {e}"));
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_else(|| panic!("the hosted page did not redirect"));
                path_of(location)
            }
        })
        .buffered(8)
        .collect()
        .await
}

impl Bench {
    /// The operator API's order list and order view, `flows` of each.
    fn operator(&self, f: &mut AtSize) {
        let auth = format!("Bearer {}", self.token);
        let headers = [("Authorization", auth.as_str())];
        let list = (0..self.flows)
            .map(|_| loadgen::get(&self.addr(), "/operator/api/v1/orders", &headers))
            .collect();
        let run = load(vec![self.addr()], CONCURRENCY, list, false);
        f.operator_list_ms_p99 = percentile(&millis(&run, 200, "operator list"), 99.0);
        let views = self
            .flow_ids
            .iter()
            .map(|id| {
                let path = format!("/operator/api/v1/orders/{MALL}/{id}");
                loadgen::get(&self.addr(), &path, &headers)
            })
            .collect();
        let run = load(vec![self.addr()], CONCURRENCY, views, false);
        f.operator_view_ms_p99 = percentile(&millis(&run, 200, "operator view"), 99.0);
    }

    /// One reconciliation pass in this process: its statements' time and its wall time.
    /// The bench mall's pending orders are first made the oldest due (their `updated_at`
    /// moved back a year), so that at every size the pass reads the same kind of order:
    /// otherwise the seeded malls' recent open orders come first, whose merchants have
    /// no KOMOJU key (read and recorded without a KOMOJU call), and the pass does less at
    /// a larger size.
    async fn reconciliation_pass(&self, f: &mut AtSize) {
        let moved = execute(
            &self.db_url,
            &format!(
                "UPDATE orders SET updated_at = '2000-01-01 00:00:00' \
                 WHERE mall_id = '{MALL}' AND state = 'pending'"
            ),
        );
        assert!(moved >= DUE);
        let state = self.app.state();
        let settings = Settings::from_lookup(|k| {
            service_env(&self.db_url, "http://unused.invalid/api/v1")
                .get(k)
                .cloned()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let mut backoff = cafe24_komoju::reconciliation::Backoff::default();
        STATEMENT_NANOS.store(0, Ordering::SeqCst);
        STATEMENTS.store(0, Ordering::SeqCst);
        TIMING.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let ran =
            cafe24_komoju::reconciliation::pass(&state, &settings.reconcile, &mut backoff).await;
        f.pass_wall_ms = started.elapsed().as_secs_f64() * 1000.0;
        TIMING.store(false, Ordering::SeqCst);
        f.pass_reads = match ran {
            Ok(Some(read)) => read,
            other => panic!("reconciliation pass: {other:?}"),
        };
        f.pass_db_ms = STATEMENT_NANOS.load(Ordering::SeqCst) as f64 / 1e6;
        f.pass_db_ms_per_1000_reads = f.pass_db_ms * 1000.0 / f.pass_reads.max(1) as f64;
        let mut seen = std::mem::take(&mut *BY_STATEMENT.lock().unwrap_or_else(|e| e.into_inner()));
        seen.sort_by_key(|s| std::cmp::Reverse(s.1));
        for (text, nanos) in seen.iter().take(3) {
            println!("  pass statement {:.2} ms: {text}", *nanos as f64 / 1e6);
        }
        f.pass_statements = STATEMENTS.load(Ordering::SeqCst);
    }

    /// [`CLAIM_ROUNDS`] rounds of up to [`CLAIMS`] outbox claims of 50 on a connection
    /// of this process (the webhooks of this size enqueued `BENCH_GROWTH_N`
    /// notifications), each round's rows given back (due again) after it.
    fn outbox_claims(&self, f: &mut AtSize) {
        let mut c = db::establish(&self.db_url).unwrap_or_else(|e| panic!("{e}"));
        let mut ms = Vec::with_capacity(CLAIMS * CLAIM_ROUNDS);
        for _ in 0..CLAIM_ROUNDS {
            for _ in 0..CLAIMS {
                let now = chrono::Utc::now().naive_utc();
                let lease = now + chrono::Duration::seconds(60);
                let started = Instant::now();
                let rows = db::notifications::claim(&mut c, "growth-bench", now, lease, 50)
                    .unwrap_or_else(|e| panic!("claim: {e}"));
                if rows.is_empty() {
                    break;
                }
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            let now = chrono::Utc::now().naive_utc();
            db::notifications::release_all(&mut c, "growth-bench", now)
                .unwrap_or_else(|e| panic!("release: {e}"));
        }
        assert!(!ms.is_empty(), "nothing to claim");
        ms.sort_by(|a, b| a.total_cmp(b));
        f.claim_ms_p50 = percentile(&ms, 50.0);
        f.claim_ms_p99 = percentile(&ms, 99.0);
    }

    /// Webhooks p99 without a purge, then during one (everything older than 30 days):
    /// each with the service's own background tasks on (the outbox delivering, a
    /// reconciliation pass every 100 ms, which purges in the service's process as in
    /// production), differing only in `RETENTION_DAYS` (400: nothing is that old; 30).
    ///
    /// [`RETENTION_ROUNDS`] rounds, each without then during, and the median of each
    /// side's p99s: one p99 of a few thousand webhooks on this shared machine moved 2 ×
    /// between runs without any purge (13.6 to 30.8 ms at 1 000 000 orders on SQLite),
    /// more than the effect measured.
    async fn retention_run(&mut self, orders: u64) -> RetentionRun {
        let mut r = RetentionRun {
            orders,
            ..RetentionRun::default()
        };
        let mut secs = 0.0;
        for _ in 0..RETENTION_ROUNDS {
            let (without, _, _) = self.webhooks_beside_passes("400").await;
            let (during, rows, took) = self.webhooks_beside_passes("30").await;
            r.rounds_p99_without
                .push(percentile(&millis(&without, 200, "webhook"), 99.0));
            r.rounds_p99_during
                .push(percentile(&millis(&during, 200, "webhook (purge)"), 99.0));
            r.rows_purged += rows;
            secs += took;
        }
        r.webhook_ms_p99_without = median(&r.rounds_p99_without);
        r.webhook_ms_p99_during = median(&r.rounds_p99_during);
        r.rows_purged_per_sec = r.rows_purged as f64 / secs;
        r
    }

    /// Restarts the service with its background tasks and `RETENTION_DAYS=days`, waits
    /// for its first purge when there is one to wait for, and sends `2 × BENCH_GROWTH_N`
    /// webhooks; returns them, the rows purged meanwhile and the seconds they took.
    async fn webhooks_beside_passes(&mut self, days: &str) -> (loadgen::Run, u64, f64) {
        let mut env = service_env(&self.db_url, &self.komoju_api);
        env.insert("OUTBOX_WORKER".into(), "on".into());
        env.insert("RECONCILE_INTERVAL_MS".into(), "100".into());
        env.insert("RECONCILE_PENDING_AFTER_SECS".into(), "900".into());
        env.insert("RETENTION_DAYS".into(), days.into());
        let log = self
            .dir
            .join(format!("{}-retention-{days}.log", self.backend));
        let next = Service::start(&env, &log).await;
        let old = std::mem::replace(&mut self.service, next);
        self.peak_rss = self.peak_rss.max(old.peak_rss());
        old.stop();
        let (ids, _) = self.checkouts(2 * self.n, false);
        let purging = days != "400";
        let deadline = Instant::now() + Duration::from_secs(60);
        while purging && self.purged().await == 0 {
            assert!(Instant::now() < deadline, "no purge within a minute");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = self.purged().await;
        let started = Instant::now();
        let run = self.webhooks(&ids);
        let secs = started.elapsed().as_secs_f64();
        (run, self.purged().await - before, secs)
    }

    /// `cafe24_komoju_retention_purged_total`, every table, from the service's metrics.
    async fn purged(&self) -> u64 {
        metrics_text(self.addr())
            .await
            .lines()
            .filter(|l| l.starts_with("cafe24_komoju_retention_purged_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

/// One backend: the sizes in turn, then the retention run at the largest.
async fn run(backend: &'static str, db_url: String, sizes: &[u64], dir: &Path) -> Growth {
    println!("\n== {backend}: growth over {sizes:?} orders");
    let mut bench = Bench::start(backend, db_url, dir).await;
    let (mut seeded, mut chunk_seed, mut figures) = (0u64, 0u64, Vec::new());
    for &size in sizes {
        let secs = bench.seed(size.saturating_sub(seeded), &mut chunk_seed);
        seeded = seeded.max(size);
        let f = bench.at_size(seeded, secs).await;
        println!("{f:?}");
        figures.push(f);
    }
    let retention = if seeded > 0 {
        bench.retention_run(seeded).await
    } else {
        RetentionRun::default()
    };
    println!("{retention:?}");
    let peak_rss_bytes = bench.peak_rss.max(bench.service.peak_rss());
    bench.service.stop();
    Growth {
        backend,
        sizes: figures,
        retention,
        peak_rss_bytes,
    }
}

/// The growth benchmark's entry: SQLite, then PostgreSQL with `BENCH_POSTGRES_URL`.
pub fn main(dir: &Path) {
    diesel::connection::set_default_instrumentation(|| {
        Some(Box::new(StatementClock::default()) as Box<dyn Instrumentation>)
    })
    .unwrap_or_else(|e| panic!("instrumentation: {e}"));
    let started = Instant::now();
    let mut results = Vec::new();
    let sqlite = format!("sqlite://{}", dir.join("growth.sqlite3").display());
    let sqlite_sizes = sizes("BENCH_GROWTH_SQLITE", "0,100000,1000000");
    if !sqlite_sizes.is_empty() {
        results.push(actix_web::rt::System::new().block_on(run(
            "sqlite",
            sqlite,
            &sqlite_sizes,
            dir,
        )));
    }
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let pg_sizes = sizes("BENCH_GROWTH_POSTGRES", "0,1000000,5000000");
        let schema = PgSchema::create(&admin, "growth");
        results.push(actix_web::rt::System::new().block_on(run(
            "postgresql",
            schema.url.clone(),
            &pg_sizes,
            dir,
        )));
    }
    print_table(&results);
    println!("growth: {:.0} s", started.elapsed().as_secs_f64());
    write_json("BENCH_GROWTH_JSON", "growth.json", &results);
}

/// Each figure per size, and the largest size's over the empty database's (target ≤ 1.25).
fn print_table(results: &[Growth]) {
    type Pick = fn(&AtSize) -> f64;
    // (name, figure, Some(higher is better) for a target, None for the machine's own)
    let rows: [(&str, Pick, Option<bool>); 17] = [
        ("webhooks/s", |f| f.webhooks_per_sec, Some(true)),
        ("webhook p99 ms", |f| f.webhook_ms_p99, Some(false)),
        (
            "checkout overhead p50 ms",
            |f| f.checkout_overhead_ms_p50,
            Some(false),
        ),
        (
            "checkout overhead p99 ms",
            |f| f.checkout_overhead_ms_p99,
            Some(false),
        ),
        ("callback p99 ms", |f| f.callback_ms_p99, Some(false)),
        ("status p99 ms", |f| f.status_ms_p99, Some(false)),
        ("cancellation p99 ms", |f| f.cancel_ms_p99, Some(false)),
        (
            "operator list p99 ms",
            |f| f.operator_list_ms_p99,
            Some(false),
        ),
        (
            "operator view p99 ms",
            |f| f.operator_view_ms_p99,
            Some(false),
        ),
        (
            "reconciliation pass, statements ms per 1 000 orders read",
            |f| f.pass_db_ms_per_1000_reads,
            Some(false),
        ),
        ("outbox claim p99 ms", |f| f.claim_ms_p99, Some(false)),
        (
            "service CPU µs per webhook",
            |f| f.service_cpu_us_per_webhook,
            Some(false),
        ),
        (
            "database CPU µs per webhook",
            |f| f.db_cpu_us_per_webhook,
            Some(false),
        ),
        (
            "reference: service CPU µs per GET /health",
            |f| f.reference_health_cpu_us,
            None,
        ),
        (
            "reference: database ms for a count to 1 000 000",
            |f| f.reference_db_ms,
            None,
        ),
        (
            "service CPU per webhook, in GET /health",
            |f| f.service_cpu_us_per_webhook / f.reference_health_cpu_us,
            None,
        ),
        ("steal %", |f| f.steal_pct, None),
    ];
    for g in results {
        let head: Vec<String> = g.sizes.iter().map(|s| s.orders.to_string()).collect();
        println!("\n{}: orders {}", g.backend, head.join(" / "));
        println!(
            "| measure | {} | largest / empty | ≤ 1.25 × |",
            head.join(" | ")
        );
        println!("|---|{}---|---|", "---|".repeat(head.len()));
        for (name, pick, target) in rows {
            let values: Vec<f64> = g.sizes.iter().map(pick).collect();
            let (first, last) = (values[0], values[values.len() - 1]);
            let ratio = if target == Some(true) {
                first / last
            } else {
                last / first
            };
            let cells: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
            let verdict = target.map_or("the machine", |_| verdict(ratio <= 1.25));
            // A ratio of two zeros (no steal at either end) is no ratio.
            let ratio = if ratio.is_finite() {
                format!("{ratio:.2} ×")
            } else {
                "–".to_owned()
            };
            println!("| {name} | {} | {ratio} | {verdict} |", cells.join(" | "));
        }
        let r = &g.retention;
        println!(
            "retention at {} orders: webhook p99 {:.2} ms without a purge, {:.2} ms during ({:.2} ×, ≤ 1.5 ×; medians of rounds {:.2?} and {:.2?}), {} rows purged at {:.0}/s; peak RSS {:.1} MB",
            r.orders,
            r.webhook_ms_p99_without,
            r.webhook_ms_p99_during,
            r.webhook_ms_p99_during / r.webhook_ms_p99_without,
            r.rounds_p99_without,
            r.rounds_p99_during,
            r.rows_purged,
            r.rows_purged_per_sec,
            g.peak_rss_bytes as f64 / 1_048_576.0
        );
    }
}

/// The middle value of `values` (any order).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 50.0)
}

/// The path and query of `url`.
fn path_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

/// A form `POST` of `fields` to `path`.
fn form(addr: &SocketAddr, path: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let body = serde_urlencoded::to_string(fields).unwrap_or_else(|e| panic!("{e}"));
    loadgen::post(
        addr,
        path,
        "application/x-www-form-urlencoded",
        &[],
        body.as_bytes(),
    )
}
