//! A burst larger than the machine (issue 21, item 3):
//! `cargo bench --bench throughput -- overload`.
//!
//! Per backend, the release service at its default `MAX_IN_FLIGHT` and
//! `MAX_IN_FLIGHT_WEBHOOKS` (2 per core it runs on; or the values in the environment of
//! the bench), each measurement on the same database. With `BENCH_SERVICE_CPUS` and
//! `BENCH_LOADGEN_CPUS` (main.rs) the service and the load generator run on cores of
//! their own (PostgreSQL's server is not moved: pin it with `taskset` beside the
//! service's cores, docs/benchmarks.md):
//!
//! 1. **Webhooks.** Capacity `C`: `BENCH_ORDERS` (5 000) signed `payment.captured`
//!    closed loop over as many connections as `MAX_IN_FLIGHT_WEBHOOKS` admits; the
//!    unloaded p99 over one connection (5 000); then `2 C` per second offered open loop
//!    (`loadgen::paced`: each due at its time, answered or not) for
//!    `BENCH_OVERLOAD_SECS` (30) s, each moving an order of its own. Checked from the
//!    database afterwards: the orders paid and the notifications enqueued each grew by
//!    exactly the number of 200s (every 2xx applied, none twice); every other reply was
//!    503 `unavailable` with `Retry-After`.
//! 2. **Checkouts** against a KOMOJU stand-in answering after 50 ms: capacity closed loop
//!    at as many connections as `MAX_IN_FLIGHT` admits (32), the unloaded p99 over one,
//!    then twice the capacity for the same time; the orders stored grew by exactly the
//!    number of 200s.
//!
//! Printed per backend: offered, admitted, refused, admitted p99 against 3 × the
//! unloaded p99, the admitted requests' p99 inside the service (its request-duration
//! histogram over the burst: where the wait is), the longest wait (≤ 10 s), the service's
//! CPU per admitted request (closed loop) and per refusal (the rest of the burst's CPU)
//! and its peak RSS (≤ 64 MB); written
//! as JSON to `BENCH_OVERLOAD_JSON` (default `target/overload.json`); with
//! `BENCH_OVERLOAD_TRACE=FILE`, each webhook of the burst to `FILE` ([`trace`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cafe24_komoju::app::settings::{default_max_in_flight_webhooks, DEFAULT_MAX_IN_FLIGHT};

use super::loadgen::{self, Run};
use super::service::Service;
use super::standins;
use super::wire::{
    add_merchant, captured_event, checkout_requests, count, env_num, latencies_ms, load,
    metrics_text, orders_by_id, percentile, settle, verdict, webhook_request, write_json, PgSchema,
    KOMOJU_DELAY, SERVICE_KEY,
};

/// Most connections the open-loop generator holds at once.
const MAX_CONNECTIONS: usize = 1024;
/// Webhooks timed at one connection for their unloaded p99 (its 50th slowest: the
/// 10th of 1 000 moved the bound by 3 × between runs of the same commit).
const UNLOADED: usize = 5000;
/// Checkouts timed at one connection for theirs (each waits 50 ms for the stand-in).
const UNLOADED_CHECKOUTS: usize = 200;

/// One burst and what it found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Burst {
    pub what: &'static str,
    /// Closed-loop capacity, requests per second.
    pub capacity_per_sec: f64,
    pub unloaded_ms_p99: f64,
    pub offered_per_sec: f64,
    pub offered: usize,
    pub admitted: usize,
    pub refused: usize,
    pub admitted_ms_p99: f64,
    /// The same requests' p99 inside the service (from its request-duration histogram:
    /// the upper bound of the bucket holding the 99th percentile), milliseconds.
    pub inside_ms_p99: f64,
    /// The longest any request waited, admitted or refused.
    pub longest_wait_ms: f64,
    /// Rows the database gained over the burst (orders paid, or orders stored).
    pub applied: i64,
    /// Notifications enqueued over the burst (webhooks).
    pub notifications: i64,
    /// The service's CPU per request of the closed-loop capacity run, microseconds.
    pub cpu_us_per_admitted: f64,
    /// The service's CPU per refused request, estimated from the burst's: what the burst
    /// used beyond `cpu_us_per_admitted` for each admitted one, over the refused,
    /// microseconds.
    pub cpu_us_per_refusal: f64,
}

impl Burst {
    /// Fills in the CPU figures from the service's CPU over the capacity run
    /// (`capacity_cpu`, for `capacity_n` requests) and over the burst (`burst_cpu`).
    fn cpu(&mut self, capacity_cpu: Duration, capacity_n: usize, burst_cpu: Duration) {
        self.cpu_us_per_admitted = capacity_cpu.as_secs_f64() * 1e6 / capacity_n.max(1) as f64;
        let admitted = self.cpu_us_per_admitted * self.admitted as f64;
        self.cpu_us_per_refusal =
            (burst_cpu.as_secs_f64() * 1e6 - admitted) / self.refused.max(1) as f64;
    }
}

#[derive(Debug, serde::Serialize)]
pub struct Overload {
    pub backend: &'static str,
    pub max_in_flight: String,
    pub webhooks: Burst,
    pub checkouts: Burst,
    pub peak_rss_bytes: u64,
}

/// Runs the open-loop generator on a thread and runtime of its own.
fn burst(target: SocketAddr, rate: f64, requests: Vec<Vec<u8>>) -> Run {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .block_on(loadgen::paced(target, rate, requests, MAX_CONNECTIONS))
    })
    .join()
    .unwrap_or_else(|_| panic!("the load generator panicked"))
}

/// The service's `…_http_requests_duration_seconds` buckets for `endpoint`'s 200s:
/// (upper bound in seconds, cumulative count), in bucket order.
async fn served_buckets(addr: SocketAddr, endpoint: &str) -> Vec<(f64, f64)> {
    let text = metrics_text(addr).await;
    let endpoint = format!("endpoint=\"{endpoint}\"");
    text.lines()
        .filter(|l| l.starts_with("cafe24_komoju_http_requests_duration_seconds_bucket{"))
        .filter(|l| l.contains(&endpoint) && l.contains("status=\"200\""))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The p99 of what the histogram gained between `before` and `after`, milliseconds:
/// the upper bound of the bucket where the 99th percentile falls.
fn bucket_p99_ms(before: &[(f64, f64)], after: &[(f64, f64)]) -> f64 {
    let gained: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
            (le, n - was)
        })
        .collect();
    let total = gained.last().map_or(0.0, |g| g.1);
    gained
        .iter()
        .find(|g| g.1 >= 0.99 * total)
        .map_or(f64::NAN, |g| g.0 * 1000.0)
}

fn p99_ms(run: &Run, status: u16) -> f64 {
    let ms = latencies_ms(
        run.replies.iter().filter(|r| r.status == status),
        Duration::ZERO,
    );
    percentile(&ms, 99.0)
}

/// With `BENCH_OVERLOAD_TRACE=FILE`, writes the webhook burst's replies to `FILE`, one
/// line each in the order sent: the second it was due, its status, its latency in ms.
/// Where the slow replies fall in time (together with the refusals beside them, or
/// alone) tells a pause of the whole process from one of the database thread.
fn trace(run: &Run, rate: f64) {
    let Ok(path) = std::env::var("BENCH_OVERLOAD_TRACE") else {
        return;
    };
    let lines: Vec<String> = run
        .replies
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let due = i as f64 / rate;
            let ms = r.latency.as_secs_f64() * 1000.0;
            format!("{due:.6} {} {ms:.3}", r.status)
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap_or_else(|e| panic!("{path}: {e}"));
}

/// Fills in what the burst's replies say; panics on a reply neither 200 nor the 503 of
/// the admission limit.
fn tally(b: &mut Burst, run: &Run) {
    b.offered = run.replies.len();
    b.admitted = run.replies.iter().filter(|r| r.status == 200).count();
    b.refused = run.replies.iter().filter(|r| r.status == 503).count();
    if let Some(r) = run
        .replies
        .iter()
        .find(|r| r.status != 200 && r.status != 503)
    {
        panic!(
            "{}: a reply {}: {}",
            b.what,
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    if let Some(r) = run
        .replies
        .iter()
        .find(|r| r.status == 503 && !String::from_utf8_lossy(&r.body).contains("\"unavailable\""))
    {
        panic!(
            "{}: a 503 outside the envelope: {}",
            b.what,
            String::from_utf8_lossy(&r.body)
        );
    }
    b.admitted_ms_p99 = p99_ms(run, 200);
    b.longest_wait_ms = run
        .replies
        .iter()
        .map(|r| r.latency.as_secs_f64() * 1000.0)
        .fold(0.0, f64::max);
}

fn env(db_url: &str, komoju_api: &str) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("DATABASE_URL", db_url),
        ("KOMOJU_API_BASE", komoju_api),
        ("CAFE24_SERVICE_KEY", SERVICE_KEY),
        ("APP_SECRET", "bench-app-secret-0123456789abcdef-0123456789"),
        ("OUTBOX_WORKER", "off"),
        ("DATABASE_POOL_SIZE", "16"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // Each limit named (the bench's value, else the service's default for the cores it
    // runs on), so that the bench measures the capacity at the limit the service has.
    let defaults = [
        ("MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT),
        (
            "MAX_IN_FLIGHT_WEBHOOKS",
            default_max_in_flight_webhooks(service_cores()),
        ),
    ];
    for (limit, default) in defaults {
        let value = std::env::var(limit).unwrap_or_else(|_| default.to_string());
        env.insert(limit.into(), value);
    }
    env
}

/// The cores the service runs on: those `BENCH_SERVICE_CPUS` lists (`taskset -c`: `1`,
/// `2,3`, `0-3`), else this process's.
fn service_cores() -> usize {
    match std::env::var("BENCH_SERVICE_CPUS") {
        Ok(list) => list
            .split(',')
            .map(|part| match part.split_once('-') {
                Some((a, b)) => match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                    (Ok(a), Ok(b)) if b >= a => b - a + 1,
                    _ => panic!("BENCH_SERVICE_CPUS: {list}"),
                },
                None => 1,
            })
            .sum(),
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// The limit `name` the service runs with, as [`env`] named it.
fn limit(env: &HashMap<String, String>, name: &str) -> usize {
    env.get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not a number of requests"))
}

/// The webhook burst: orders prepared by checkouts against a stand-in that answers at
/// once, then capacity, unloaded p99 and the burst.
async fn webhooks(db_url: &str, dir: &Path, secs: f64, service: &mut Option<Service>) -> Burst {
    let receiver = standins::Receiver::spawn();
    let env = env(db_url, &standins::komoju(Duration::ZERO));
    let one = Service::start(&env, &dir.join("overload-webhooks.log")).await;
    add_merchant(&env);
    let n = env_num("BENCH_ORDERS", 5000);
    let mut b = Burst {
        what: "webhooks",
        ..Burst::default()
    };
    let mut first = 0;
    // Orders of their own for `count` webhooks, made by checkouts.
    let mut orders = |count: usize| {
        let (ids, requests): (Vec<String>, Vec<Vec<u8>>) =
            checkout_requests(&one.addr, Some(&receiver.url), first, count)
                .into_iter()
                .unzip();
        first += count;
        // Under the admission limit: a closed loop over it would be shed.
        load(vec![one.addr], 16, requests, false).expect_status(200, "checkout");
        let by_id = orders_by_id(db_url);
        ids.iter()
            .map(|id| webhook_request(&one.addr, &captured_event(&by_id[id])))
            .collect::<Vec<Vec<u8>>>()
    };
    let (capacity, unloaded) = (orders(n), orders(UNLOADED));
    settle(db_url);
    // The capacity as configured: as many in flight as the webhooks' limit admits.
    let admitted = limit(&env, "MAX_IN_FLIGHT_WEBHOOKS");
    let (capacity, capacity_cpu) = one.cpu_over(|| load(vec![one.addr], admitted, capacity, false));
    capacity.expect_status(200, "webhook (capacity)");
    b.capacity_per_sec = capacity.rate();
    let unloaded = load(vec![one.addr], 1, unloaded, false);
    unloaded.expect_status(200, "webhook (unloaded)");
    b.unloaded_ms_p99 = p99_ms(&unloaded, 200);
    b.offered_per_sec = 2.0 * b.capacity_per_sec;
    let requests = orders((b.offered_per_sec * secs) as usize);
    let paid = "SELECT COUNT(*) AS n FROM orders WHERE state = 'paid'";
    let notices = "SELECT COUNT(*) AS n FROM notifications";
    let (paid_before, notices_before) = (count(db_url, paid), count(db_url, notices));
    settle(db_url);
    let endpoint = "/api/asynchronous-checkout/checkout/webhook";
    let served_before = served_buckets(one.addr, endpoint).await;
    let (run, burst_cpu) = one.cpu_over(|| burst(one.addr, b.offered_per_sec, requests));
    trace(&run, b.offered_per_sec);
    tally(&mut b, &run);
    b.cpu(capacity_cpu, n, burst_cpu);
    b.inside_ms_p99 = bucket_p99_ms(&served_before, &served_buckets(one.addr, endpoint).await);
    b.applied = count(db_url, paid) - paid_before;
    b.notifications = count(db_url, notices) - notices_before;
    *service = Some(one);
    b
}

/// The checkout burst against a KOMOJU stand-in answering after 50 ms.
async fn checkouts(db_url: &str, dir: &Path, secs: f64) -> (Burst, u64) {
    let receiver = standins::Receiver::spawn();
    let env = env(db_url, &standins::komoju(KOMOJU_DELAY));
    let one = Service::start(&env, &dir.join("overload-checkouts.log")).await;
    add_merchant(&env);
    let mut b = Burst {
        what: "checkouts",
        ..Burst::default()
    };
    let n = env_num("BENCH_ORDERS", 5000);
    let mut first = 1_000_000;
    let mut next = |count: usize| {
        let requests: Vec<Vec<u8>> =
            checkout_requests(&one.addr, Some(&receiver.url), first, count)
                .into_iter()
                .map(|(_, r)| r)
                .collect();
        first += count;
        requests
    };
    // The capacity as configured: as many in flight as the limit admits.
    let admitted = limit(&env, "MAX_IN_FLIGHT");
    let (capacity, capacity_cpu) = one.cpu_over(|| load(vec![one.addr], admitted, next(n), false));
    capacity.expect_status(200, "checkout (capacity)");
    b.capacity_per_sec = capacity.rate();
    let unloaded = load(vec![one.addr], 1, next(UNLOADED_CHECKOUTS), false);
    unloaded.expect_status(200, "checkout (unloaded)");
    b.unloaded_ms_p99 = p99_ms(&unloaded, 200);
    b.offered_per_sec = 2.0 * b.capacity_per_sec;
    let requests = next((b.offered_per_sec * secs) as usize);
    let orders = "SELECT COUNT(*) AS n FROM orders";
    let before = count(db_url, orders);
    settle(db_url);
    let endpoint = "/api/asynchronous-checkout/checkout";
    let served_before = served_buckets(one.addr, endpoint).await;
    let (run, burst_cpu) = one.cpu_over(|| burst(one.addr, b.offered_per_sec, requests));
    tally(&mut b, &run);
    b.cpu(capacity_cpu, n, burst_cpu);
    b.inside_ms_p99 = bucket_p99_ms(&served_before, &served_buckets(one.addr, endpoint).await);
    b.applied = count(db_url, orders) - before;
    let rss = one.peak_rss();
    one.stop();
    (b, rss)
}

/// One backend: the webhook burst on `webhooks_db`, the checkout burst on `checkouts_db`
/// (a database of its own: the stand-in numbers its sessions from `bs1` again).
async fn run(
    backend: &'static str,
    webhooks_db: String,
    checkouts_db: String,
    dir: &Path,
) -> Overload {
    let secs = env_num("BENCH_OVERLOAD_SECS", 30) as f64;
    println!("\n== {backend}: bursts at twice the capacity for {secs} s");
    let mut service = None;
    let webhooks = webhooks(&webhooks_db, dir, secs, &mut service).await;
    println!("{webhooks:?}");
    let mut peak = 0;
    if let Some(s) = service {
        peak = s.peak_rss();
        s.stop();
    }
    let (checkouts, rss) = checkouts(&checkouts_db, dir, secs).await;
    println!("{checkouts:?}");
    Overload {
        backend,
        max_in_flight: ["MAX_IN_FLIGHT", "MAX_IN_FLIGHT_WEBHOOKS"]
            .map(|v| format!("{v}={}", std::env::var(v).as_deref().unwrap_or("default")))
            .join(" "),
        webhooks,
        checkouts,
        peak_rss_bytes: peak.max(rss),
    }
}

/// The overload benchmark's entry: SQLite, then PostgreSQL with `BENCH_POSTGRES_URL`.
pub fn main(dir: &Path) {
    let mut results = Vec::new();
    let sqlite = |name: &str| format!("sqlite://{}", dir.join(name).display());
    results.push(actix_web::rt::System::new().block_on(run(
        "sqlite",
        sqlite("overload-webhooks.sqlite3"),
        sqlite("overload-checkouts.sqlite3"),
        dir,
    )));
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let (webhooks, checkouts) = (
            PgSchema::create(&admin, "overload_w"),
            PgSchema::create(&admin, "overload_c"),
        );
        results.push(actix_web::rt::System::new().block_on(run(
            "postgresql",
            webhooks.url.clone(),
            checkouts.url.clone(),
            dir,
        )));
    }
    println!("\n| backend | burst | capacity/s | offered/s | offered | admitted | refused 503 | admitted p99 / 3 × unloaded p99 | inside the service p99 ≤ | longest wait ≤ 10 s | applied = admitted | service CPU per admitted / per refusal |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for o in &results {
        for b in [&o.webhooks, &o.checkouts] {
            let bound = 3.0 * b.unloaded_ms_p99;
            let applied = b.applied == b.admitted as i64
                && (b.what != "webhooks" || b.notifications == b.admitted as i64);
            println!(
                "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {:.1} / {:.1} ms: {} | {:.1} ms | {:.0} ms: {} | {} ({} rows, {} notifications) | {:.0} / {:.0} µs |",
                o.backend,
                b.what,
                b.capacity_per_sec,
                b.offered_per_sec,
                b.offered,
                b.admitted,
                b.refused,
                b.admitted_ms_p99,
                bound,
                verdict(b.admitted_ms_p99 <= bound),
                b.inside_ms_p99,
                b.longest_wait_ms,
                verdict(b.longest_wait_ms <= 10_000.0),
                verdict(applied),
                b.applied,
                b.notifications,
                b.cpu_us_per_admitted,
                b.cpu_us_per_refusal
            );
        }
        println!(
            "| {} | peak RSS | {:.1} MB: {} |",
            o.backend,
            o.peak_rss_bytes as f64 / 1_048_576.0,
            verdict(o.peak_rss_bytes <= 64 * 1_048_576)
        );
    }
    write_json("BENCH_OVERLOAD_JSON", "overload.json", &results);
}
