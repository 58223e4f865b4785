//! Throughput of the two paths money facts take, each beside its ceiling measured in the
//! same run on the same database (docs/benchmarks.md):
//!
//! 1. **Webhooks acknowledged per second**: signed `payment.captured` webhooks posted by
//!    `BENCH_CONCURRENCY` (16) keep-alive connections of the bench process to the service
//!    (the release binary in a process of its own, outbox worker off); beside it the
//!    same statements run directly on the database by as many threads (SQLite: one
//!    connection, as the service has), and on PostgreSQL `pgbench` with the same
//!    transaction as a script when it is installed.
//! 2. **Notifications delivered per second**: the service's outbox worker delivering every
//!    pending notification to a local Cafe24 stand-in that answers OK at once; beside it
//!    the least code that claims, sends and records the same rows against the same
//!    stand-in.
//! 3. **Checkout overhead**: p50 and p99 latency of asynchronous checkouts at
//!    `BENCH_CHECKOUT_CONCURRENCY` (64) concurrent requests against a KOMOJU stand-in
//!    that answers after a fixed 50 ms, minus those 50 ms.
//! 4. **Peak resident memory** of every service process of the run.
//! 5. **Two instances** (PostgreSQL): two service processes on one database against one.
//!
//! `cargo bench --bench throughput -- growth` measures instead how the cost of each
//! path changes as the database grows (`growth.rs`), and
//! `cargo bench --bench throughput -- overload` a burst at twice the capacity
//! (`overload.rs`).
//!
//! Run: `cargo bench --bench throughput` (SQLite); with
//! `BENCH_POSTGRES_URL=postgres://…` (a database it may create a schema in) PostgreSQL
//! too. `BENCH_SERVICE_CPUS` and `BENCH_LOADGEN_CPUS` (`taskset -c` lists, e.g. `1` and
//! `0`) put the service and this process on cores of their own. `BENCH_ORDERS` (default
//! 5000) is the number of webhooks per measurement. The
//! figures are printed as a table and written as JSON to `BENCH_JSON` (default
//! `target/throughput.json`), which `docs/plot_benchmarks.py` draws.

mod ceiling;
mod growth;
mod loadgen;
mod overload;
mod service;
mod standins;
mod wire;

#[path = "../../tests/common/merchant.rs"]
mod merchant_fixture;
#[path = "../../tests/common/serve.rs"]
mod serve_fixture;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cafe24_komoju::db::notifications::{NewNotification, NotificationState};
use cafe24_komoju::orders::state::{OrderFacts, OrderState};
use serde_json::json;

use service::Service;
use wire::{
    add_merchant, busy_since, captured_event, checkout_requests, db_cpu, env_num, hmac_b64,
    latencies_ms, load, machine_jiffies, orders_by_id, percentile, settle, verdict,
    webhook_request, write_json, Order, PgSchema, AMOUNT, KOMOJU_DELAY, MALL, PARTNER, SERVICE_KEY,
};

/// Checkouts sent first to warm connections and caches, left out of the figures.
const WARM_UP: usize = 256;
/// The outbox batch of the service and of its ceiling.
const OUTBOX_BATCH: i64 = 50;

struct Config {
    orders: usize,
    concurrency: usize,
    checkout_concurrency: usize,
}

/// A measured figure beside its ceiling.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Pair {
    service: f64,
    ceiling: f64,
}

impl Pair {
    fn ratio(&self) -> f64 {
        self.service / self.ceiling
    }
}

#[derive(Debug, serde::Serialize)]
struct Figures {
    backend: &'static str,
    webhooks_per_sec: Pair,
    notifications_per_sec: Pair,
    /// pgbench's transactions per second for the same transaction (PostgreSQL).
    pgbench_tps: Option<f64>,
    checkout_overhead_ms_p50: f64,
    checkout_overhead_ms_p99: f64,
    checkouts_per_sec: f64,
    peak_rss_bytes: u64,
    /// Webhooks per second with two service processes, and the ratio to one.
    two_instances_per_sec: Option<f64>,
    /// Service CPU per webhook acknowledged, microseconds.
    service_cpu_us_per_webhook: f64,
    /// Database CPU per webhook, microseconds: the service's run and (PostgreSQL) the
    /// ceiling's (every `postgres` process; SQLite: the service's `sqlite` thread).
    db_cpu_us_per_webhook: f64,
    db_cpu_us_per_webhook_ceiling: Option<f64>,
    /// The PostgreSQL server's CPU per pgbench transaction, microseconds.
    db_cpu_us_per_pgbench_transaction: Option<f64>,
    /// Service CPU and database CPU per notification delivered, microseconds.
    service_cpu_us_per_notification: f64,
    db_cpu_us_per_notification: f64,
    /// Share of the machine's CPU in use during the service's webhook run.
    machine_busy_webhooks: f64,
    /// Write transactions (transaction ids assigned) per webhook (PostgreSQL): the
    /// service's and the ceiling's.
    commits_per_webhook: Option<Pair>,
}

#[derive(diesel::QueryableByName)]
struct Commits {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    commits: i64,
}

/// Transaction ids PostgreSQL has assigned so far (the next one to assign: every
/// transaction that writes takes one), `None` on SQLite. Read from the current snapshot,
/// which assigns none itself and, unlike `pg_stat_database.xact_commit`, does not lag:
/// a backend reports its commits to the statistics only when it goes idle, up to ten
/// seconds later, so a phase's last commits were counted in the next one.
fn commits(db_url: &str) -> Option<i64> {
    use diesel::RunQueryDsl;
    let mut c = cafe24_komoju::db::establish(db_url).ok()?;
    let cafe24_komoju::db::DbConnection::Postgres(pg) = &mut c else {
        return None;
    };
    diesel::sql_query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS commits")
        .get_result::<Commits>(pg)
        .ok()
        .map(|c| c.commits)
}

/// What the ceiling writes for `order`: the service's own values for a card capture.
fn ceiling_webhook(order: &Order, receiver: &str) -> ceiling::Webhook {
    let now = chrono::Utc::now().naive_utc();
    let payment_id = format!("pay{}", order.session_id);
    let fields = json!([
        ["request_type", "payment"],
        ["partner_id", PARTNER],
        ["paymethod", "card"],
        ["tid", payment_id],
        ["amount", AMOUNT],
        ["order_id", order.order_id],
        ["currency", "JPY"],
        ["payed_tf", "T"],
        [
            "hash_data",
            hmac_b64(&[AMOUNT, "JPY", &order.order_id, PARTNER, &payment_id])
        ],
        ["extra_data", ""],
        ["result_code", "0000"],
        ["result_message", "Payment completed"]
    ]);
    ceiling::Webhook {
        mall_id: MALL.into(),
        session_id: order.session_id.clone(),
        event_id: format!("ev_{}", order.order_id),
        facts: OrderFacts {
            state: OrderState::Paid,
            amount: 1000,
            currency: "JPY".into(),
            session_id: Some(order.session_id.clone()),
            payment_id: Some(payment_id),
            payment_type: Some("credit_card".into()),
            captured_amount: Some(1000),
            charged: None,
            refunded_amount: 0,
            pending_notice_sent: false,
            manual_capture: false,
        },
        notification: NewNotification {
            order_pk: order.pk.clone(),
            kind: cafe24_komoju::db::notifications::NotificationKind::ReturnNoty,
            dedup_key: format!("{}:return_noty:a1:payment:T:0000", order.pk),
            target_url: receiver.into(),
            encoding: cafe24_komoju::merchant::NotifyEncoding::Form,
            fields: fields.to_string(),
            state: NotificationState::Pending,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
        },
    }
}

/// What one backend's run shares between its phases.
struct Bench<'a> {
    backend: &'static str,
    db_url: String,
    cfg: &'a Config,
    dir: &'a Path,
    receiver: standins::Receiver,
    /// The service's environment (outbox worker off, every request admitted).
    env: HashMap<String, String>,
}

/// Checkout latency: p50 and p99 beyond the stand-in's delay, and the rate.
struct Checkouts {
    p50_ms: f64,
    p99_ms: f64,
    per_sec: f64,
}

/// One webhook run (the ceiling's or the service's): rate, CPU per webhook of the
/// service (none for the ceiling) and of the database, write transactions per webhook,
/// and the machine's busy share.
struct WebhookRun {
    per_sec: f64,
    service_cpu_us: Option<f64>,
    db_cpu_us: f64,
    commits: Option<f64>,
    machine_busy: f64,
}

/// Notifications delivered: rates, CPU per notification, the worker's peak RSS.
struct Notifications {
    per_sec: Pair,
    service_cpu_us: f64,
    db_cpu_us: f64,
    peak_rss: u64,
}

/// The environment of the bench's service processes.
fn service_env(db_url: &str, komoju_api: String, cfg: &Config) -> HashMap<String, String> {
    [
        ("DATABASE_URL", db_url.to_owned()),
        ("KOMOJU_API_BASE", komoju_api),
        ("CAFE24_SERVICE_KEY", SERVICE_KEY.to_owned()),
        (
            "APP_SECRET",
            "bench-app-secret-0123456789abcdef-0123456789".to_owned(),
        ),
        ("OUTBOX_WORKER", "off".to_owned()),
        ("OUTBOX_BATCH", OUTBOX_BATCH.to_string()),
        ("DATABASE_POOL_SIZE", cfg.concurrency.to_string()),
        // Throughput is measured here, not shedding: every request admitted.
        ("MAX_IN_FLIGHT", "10000".to_owned()),
        ("MAX_IN_FLIGHT_WEBHOOKS", "10000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Bench<'_> {
    fn log(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(format!("{}-{name}.log", self.backend))
    }

    /// `count` checkouts after a warm-up: the orders every later phase uses (stored,
    /// in the order they were sent), and the checkout latency.
    async fn checkouts(&self, one: &Service, count: usize) -> (Vec<Order>, Checkouts) {
        let cfg = self.cfg;
        let receiver = Some(self.receiver.url.as_str());
        let warm = checkout_requests(&one.addr, receiver, 0, WARM_UP);
        load(
            vec![one.addr],
            cfg.checkout_concurrency,
            warm.into_iter().map(|(_, r)| r).collect(),
            false,
        )
        .expect_status(200, "warm-up checkout");
        let (order_ids, requests): (Vec<String>, Vec<Vec<u8>>) =
            checkout_requests(&one.addr, receiver, WARM_UP, count)
                .into_iter()
                .unzip();
        let run = load(vec![one.addr], cfg.checkout_concurrency, requests, true);
        run.expect_status(200, "checkout");
        let overhead = latencies_ms(&run.replies, KOMOJU_DELAY);
        let (p50, p99) = (percentile(&overhead, 50.0), percentile(&overhead, 99.0));
        println!(
            "checkouts: {count} at {} concurrent, {:.0}/s; overhead beyond the stand-in's {} ms: p50 {p50:.2} ms, p99 {p99:.2} ms",
            cfg.checkout_concurrency,
            run.rate(),
            KOMOJU_DELAY.as_millis()
        );
        let by_id = orders_by_id(&self.db_url);
        let orders = order_ids
            .iter()
            .map(|id| {
                by_id
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| panic!("order {id} not stored"))
            })
            .collect();
        let figures = Checkouts {
            p50_ms: p50,
            p99_ms: p99,
            per_sec: run.rate(),
        };
        (orders, figures)
    }

    /// The webhook ceiling: `set`'s webhooks as the same statements, no HTTP, by as many
    /// threads as the service has senders (SQLite: one).
    async fn webhook_ceiling(&self, set: &[Order]) -> WebhookRun {
        let (backend, n) = (self.backend, set.len());
        let work: Vec<ceiling::Webhook> = set
            .iter()
            .map(|o| ceiling_webhook(o, &self.receiver.url))
            .collect();
        let threads = if backend == "sqlite" {
            1
        } else {
            self.cfg.concurrency
        };
        settle(&self.db_url);
        let (commits_before, busy) = (commits(&self.db_url), machine_jiffies());
        let url = self.db_url.clone();
        let perf = profile(backend, "webhook-ceiling");
        let db_before = db_cpu(backend, 0);
        let elapsed = tokio::task::spawn_blocking(move || ceiling::webhooks(&url, work, threads))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let db_cpu_us = (db_cpu(backend, 0) - db_before).as_secs_f64() * 1e6 / n as f64;
        drop(perf);
        let per_sec = n as f64 / elapsed.as_secs_f64();
        println!("webhook ceiling: {per_sec:.0}/s ({threads} connection(s))");
        WebhookRun {
            per_sec,
            service_cpu_us: None,
            db_cpu_us,
            commits: commits_before
                .zip(commits(&self.db_url))
                .map(|(a, b)| (b - a) as f64 / n as f64),
            machine_busy: busy_since(busy),
        }
    }

    /// `set`'s webhooks sent to the service `one` by the configured senders.
    fn service_webhooks(&self, one: &Service, set: &[Order]) -> WebhookRun {
        let (backend, n) = (self.backend, set.len());
        let requests: Vec<Vec<u8>> = set
            .iter()
            .map(|o| webhook_request(&one.addr, &captured_event(o)))
            .collect();
        settle(&self.db_url);
        let commits_before = commits(&self.db_url);
        let (cpu_before, busy) = (one.cpu(), machine_jiffies());
        let db_before = db_cpu(backend, one.pid());
        let perf = profile(backend, "webhooks");
        let run = load(vec![one.addr], self.cfg.concurrency, requests, false);
        drop(perf);
        run.expect_status(200, "webhook");
        let figures = WebhookRun {
            per_sec: run.rate(),
            service_cpu_us: Some((one.cpu() - cpu_before).as_secs_f64() * 1e6 / n as f64),
            db_cpu_us: (db_cpu(backend, one.pid()) - db_before).as_secs_f64() * 1e6 / n as f64,
            commits: commits_before
                .zip(commits(&self.db_url))
                .map(|(a, b)| (b - a) as f64 / n as f64),
            machine_busy: busy_since(busy),
        };
        let lat = latencies_ms(&run.replies, Duration::ZERO);
        println!(
            "webhook latency at {} concurrent: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.cfg.concurrency,
            percentile(&lat, 50.0),
            percentile(&lat, 90.0),
            percentile(&lat, 99.0),
            percentile(&lat, 100.0)
        );
        figures
    }

    /// `set`'s webhooks spread over `one` and a second service process on the same
    /// database; webhooks per second.
    async fn two_instances(&self, one: &Service, set: &[Order], one_rate: f64) -> f64 {
        let other = Service::start(&self.env, &self.log("service-2")).await;
        let requests: Vec<Vec<u8>> = set
            .iter()
            .enumerate()
            .map(|(i, o)| {
                webhook_request(
                    if i % 2 == 0 { &one.addr } else { &other.addr },
                    &captured_event(o),
                )
            })
            .collect();
        settle(&self.db_url);
        let run = load(
            vec![one.addr, other.addr],
            self.cfg.concurrency,
            requests,
            false,
        );
        run.expect_status(200, "webhook (two instances)");
        println!(
            "two instances: {:.0}/s = {:.2} × one",
            run.rate(),
            run.rate() / one_rate
        );
        other.stop();
        run.rate()
    }

    /// The `total` pending notifications delivered by the ceiling, put back, then
    /// delivered by a service process with its outbox worker on.
    async fn notifications(&self, total: usize) -> Notifications {
        let (backend, db_url, receiver) = (self.backend, &self.db_url, &self.receiver);
        receiver.reset();
        settle(db_url);
        ceiling::notifications(db_url, OUTBOX_BATCH, total).await;
        let ceiling_span = receiver.wait_for(total).await;
        ceiling::reset_notifications(db_url);
        settle(db_url);
        receiver.reset();
        let mut worker_env = self.env.clone();
        worker_env.insert("OUTBOX_WORKER".into(), "on".into());
        let perf = profile(backend, "notifications");
        let worker = Service::start(&worker_env, &self.log("service")).await;
        let (cpu_before, db_before) = (worker.cpu(), db_cpu(backend, worker.pid()));
        let service_span = receiver.wait_for(total).await;
        let per_notification = |d: Duration| d.as_secs_f64() * 1e6 / total as f64;
        let figures = Notifications {
            per_sec: Pair {
                service: (total - 1) as f64 / service_span.as_secs_f64(),
                ceiling: (total - 1) as f64 / ceiling_span.as_secs_f64(),
            },
            service_cpu_us: per_notification(worker.cpu() - cpu_before),
            db_cpu_us: per_notification(db_cpu(backend, worker.pid()) - db_before),
            peak_rss: worker.peak_rss(),
        };
        drop(perf);
        worker.stop();
        println!(
            "notifications: service {:.0}/s, ceiling {:.0}/s = {:.0} %",
            figures.per_sec.service,
            figures.per_sec.ceiling,
            figures.per_sec.ratio() * 100.0
        );
        figures
    }

    /// pgbench's transactions per second for the same transaction over ten seconds, and
    /// the server's CPU per transaction (PostgreSQL with pgbench installed).
    fn pgbench(&self, sessions: usize) -> Option<(f64, f64)> {
        if self.backend != "postgresql" {
            return None;
        }
        let db_before = db_cpu(self.backend, 0);
        let tps = ceiling::pgbench(
            &self.db_url,
            self.cfg.concurrency,
            sessions,
            &self.receiver.url,
        )?;
        let cpu = (db_cpu(self.backend, 0) - db_before).as_secs_f64() * 1e6 / (tps * 10.0);
        println!("pgbench, the same transaction: {tps:.0} tps");
        Some((tps, cpu))
    }
}

async fn run(backend: &'static str, db_url: String, cfg: &Config, dir: &Path) -> Figures {
    println!("\n== {backend}");
    let env = service_env(&db_url, standins::komoju(KOMOJU_DELAY), cfg);
    let bench = Bench {
        backend,
        db_url,
        cfg,
        dir,
        receiver: standins::Receiver::spawn(),
        env,
    };
    let one = Service::start(&bench.env, &bench.log("service")).await;
    add_merchant(&bench.env);

    // Checkouts: the orders every later phase uses (a set per webhook run).
    let sets = if backend == "postgresql" { 3 } else { 2 };
    let (orders, checkouts) = bench.checkouts(&one, sets * cfg.orders).await;
    let sets: Vec<&[Order]> = orders.chunks(cfg.orders).collect();

    // 1. Webhooks: the ceiling, then the service.
    let ceiling = bench.webhook_ceiling(sets[0]).await;
    let service = bench.service_webhooks(&one, sets[1]);
    let webhooks = Pair {
        service: service.per_sec,
        ceiling: ceiling.per_sec,
    };
    println!(
        "webhooks: service {:.0}/s = {:.0} % of the ceiling; service CPU {:.0} µs per webhook; machine {:.0} % busy",
        webhooks.service,
        webhooks.ratio() * 100.0,
        service.service_cpu_us.unwrap_or_default(),
        service.machine_busy * 100.0
    );

    // 5. Two instances on one PostgreSQL.
    let two_instances = match sets.get(2) {
        Some(set) => Some(bench.two_instances(&one, set, webhooks.service).await),
        None => None,
    };
    let one_rss = one.peak_rss();
    one.stop();

    // 2. Notifications: every webhook above enqueued one.
    let notifications = bench.notifications(cfg.orders * sets.len()).await;
    let pgbench = bench.pgbench(WARM_UP + orders.len());
    Figures {
        backend,
        webhooks_per_sec: webhooks,
        notifications_per_sec: notifications.per_sec,
        pgbench_tps: pgbench.map(|(tps, _)| tps),
        checkout_overhead_ms_p50: checkouts.p50_ms,
        checkout_overhead_ms_p99: checkouts.p99_ms,
        checkouts_per_sec: checkouts.per_sec,
        peak_rss_bytes: one_rss.max(notifications.peak_rss),
        two_instances_per_sec: two_instances,
        service_cpu_us_per_webhook: service.service_cpu_us.unwrap_or_default(),
        db_cpu_us_per_webhook: service.db_cpu_us,
        db_cpu_us_per_webhook_ceiling: (backend == "postgresql").then_some(ceiling.db_cpu_us),
        db_cpu_us_per_pgbench_transaction: pgbench.map(|(_, cpu)| cpu),
        service_cpu_us_per_notification: notifications.service_cpu_us,
        db_cpu_us_per_notification: notifications.db_cpu_us,
        machine_busy_webhooks: service.machine_busy,
        commits_per_webhook: service.commits.zip(ceiling.commits).map(|(s, c)| Pair {
            service: s,
            ceiling: c,
        }),
    }
}

/// With `BENCH_PERF=DIR`: `perf record` of the whole machine (every process, call
/// graphs) while the returned guard lives, into `DIR/{backend}-{phase}.perf`.
fn profile(backend: &str, phase: &str) -> Option<Profile> {
    let out = std::env::var("BENCH_PERF").ok()?;
    let file = format!("{out}/{backend}-{phase}.perf");
    let child = std::process::Command::new("perf")
        .args([
            "record",
            "-a",
            "-g",
            "-e",
            "cpu-clock",
            "-F",
            "1999",
            "-o",
            &file,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    Some(Profile(child))
}

struct Profile(std::process::Child);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-INT")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// The table rows of one backend's figures.
fn print_rows(f: &Figures, cfg: &Config) {
    let w = f.webhooks_per_sec;
    println!(
        "| {} | webhooks acknowledged/s | {:.0} | {:.0}{} | {:.0} % | ≥ 80 %: {} |",
        f.backend,
        w.service,
        w.ceiling,
        f.pgbench_tps
            .map(|t| format!(" (pgbench {t:.0})"))
            .unwrap_or_default(),
        w.ratio() * 100.0,
        verdict(w.ratio() >= 0.8)
    );
    let nt = f.notifications_per_sec;
    println!(
        "| {} | notifications delivered/s | {:.0} | {:.0} | {:.0} % | ≥ 80 %: {} |",
        f.backend,
        nt.service,
        nt.ceiling,
        nt.ratio() * 100.0,
        verdict(nt.ratio() >= 0.8)
    );
    println!(
        "| {} | checkout overhead p50 / p99 ({} concurrent, {} ms stand-in) | {:.2} / {:.2} ms | | | p99 ≤ 5 ms: {} |",
        f.backend,
        cfg.checkout_concurrency,
        KOMOJU_DELAY.as_millis(),
        f.checkout_overhead_ms_p50,
        f.checkout_overhead_ms_p99,
        verdict(f.checkout_overhead_ms_p99 <= 5.0)
    );
    println!(
        "| {} | peak RSS of a service process | {:.1} MB | | | ≤ 64 MB: {} |",
        f.backend,
        f.peak_rss_bytes as f64 / 1048576.0,
        verdict(f.peak_rss_bytes <= 64 * 1048576)
    );
    if let Some(two) = f.two_instances_per_sec {
        let ratio = two / w.service;
        println!(
            "| {} | webhooks/s, two instances / one | {:.0} / {:.0} | | {:.2} × | ≥ 1.6 ×: {} |",
            f.backend,
            two,
            w.service,
            ratio,
            verdict(ratio >= 1.6)
        );
    }
    println!(
        "| {} | service CPU per webhook; machine busy | {:.0} µs; {:.0} % | | | |",
        f.backend,
        f.service_cpu_us_per_webhook,
        f.machine_busy_webhooks * 100.0
    );
    println!(
        "| {} | database CPU per webhook: service / ceiling / pgbench | {:.0} µs | {} | {} | |",
        f.backend,
        f.db_cpu_us_per_webhook,
        f.db_cpu_us_per_webhook_ceiling
            .map(|c| format!("{c:.0} µs"))
            .unwrap_or_default(),
        f.db_cpu_us_per_pgbench_transaction
            .map(|c| format!("pgbench {c:.0} µs"))
            .unwrap_or_default()
    );
    println!(
        "| {} | CPU per notification delivered: service; database | {:.0} µs; {:.0} µs | | | |",
        f.backend, f.service_cpu_us_per_notification, f.db_cpu_us_per_notification
    );
    if let Some(c) = f.commits_per_webhook {
        println!(
            "| {} | write transactions per webhook | {:.2} | {:.2} | | |",
            f.backend, c.service, c.ceiling
        );
    }
}

/// The processor's model name (`/proc/cpuinfo`), or empty.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default()
}

/// Moves every thread of this process (the load generator, the stand-ins) onto the CPUs
/// `BENCH_LOADGEN_CPUS` names (`taskset -c`), if set: beside `BENCH_SERVICE_CPUS`, the
/// service and the generator on cores of their own, as with a generator on another
/// machine. Panics when `taskset` fails.
fn pin_load_generator() {
    let Ok(cpus) = std::env::var("BENCH_LOADGEN_CPUS") else {
        return;
    };
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-cp", &cpus, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(pinned, "taskset -a -cp {cpus} failed");
    println!("load generator on CPUs {cpus}");
}

fn main() {
    pin_load_generator();
    let cfg = Config {
        orders: env_num("BENCH_ORDERS", 5000),
        concurrency: env_num("BENCH_CONCURRENCY", 16),
        checkout_concurrency: env_num("BENCH_CHECKOUT_CONCURRENCY", 64),
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = cpu_model();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    if std::env::args().any(|a| a == "growth") {
        growth::main(dir.path());
        return;
    }
    if std::env::args().any(|a| a == "overload") {
        overload::main(dir.path());
        return;
    }
    let started = Instant::now();
    let mut results = Vec::new();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.sqlite3").display());
    results.push(actix_web::rt::System::new().block_on(run("sqlite", sqlite, &cfg, dir.path())));
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let schema = PgSchema::create(&admin, "bench");
        results.push(actix_web::rt::System::new().block_on(run(
            "postgresql",
            schema.url.clone(),
            &cfg,
            dir.path(),
        )));
    }

    println!(
        "\nthroughput: {cores} cores ({cpu}), {} webhooks per measurement, {} concurrent senders, checkouts at {} concurrent, release build, {:.0} s",
        cfg.orders,
        cfg.concurrency,
        cfg.checkout_concurrency,
        started.elapsed().as_secs_f64()
    );
    println!("| backend | measure | service | ceiling | ratio | target |");
    println!("|---|---|---|---|---|---|");
    for f in &results {
        print_rows(f, &cfg);
    }
    let doc = json!({
        "cores": cores,
        "cpu": cpu,
        "orders": cfg.orders,
        "concurrency": cfg.concurrency,
        "checkout_concurrency": cfg.checkout_concurrency,
        "results": results,
    });
    println!();
    write_json("BENCH_JSON", "throughput.json", &doc);
}
