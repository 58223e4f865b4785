//! What both benchmarks send and read: the bench merchant, signed checkout and webhook
//! requests (PROTOCOL.md §2 H1, KOMOJU's `X-Komoju-Signature`), the bench's orders as
//! the service stored them, percentiles and the machine's busy time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;

use super::loadgen;

pub const SERVICE_KEY: &str = "bench-service-key";
pub const WEBHOOK_SECRET: &str = "whsec_bench_0123456789";
pub const MALL: &str = "benchmall";
pub const PARTNER: &str = "benchmall:1:b";
pub const AMOUNT: &str = "1000";
/// The KOMOJU stand-in's fixed delay before it answers `POST /sessions`.
pub const KOMOJU_DELAY: Duration = Duration::from_millis(50);

pub fn hmac_b64(values: &[&str]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SERVICE_KEY.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(values.concat().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The whole machine's `cpu` line of `/proc/stat`, jiffies: user, nice, system, idle,
/// iowait, irq, softirq, steal, guest, guest_nice (guest time is also counted in user).
fn cpu_line() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// Busy and total jiffies of the whole machine (`/proc/stat`).
pub fn machine_jiffies() -> (u64, u64) {
    let values = cpu_line();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// The machine's stolen CPU time (given by its hypervisor to others) and its total so
/// far, jiffies: (steal, user to steal).
pub fn steal_jiffies() -> (u64, u64) {
    let values = cpu_line();
    let all = values.iter().take(8).sum();
    (values.get(7).copied().unwrap_or(0), all)
}

/// The share (0 to 1) of the machine's time since `start` ([`machine_jiffies`]) that it
/// was busy.
pub fn busy_since(start: (u64, u64)) -> f64 {
    share_since(start, machine_jiffies())
}

/// The share (0 to 1) of the machine's time since `start` ([`steal_jiffies`]) that its
/// hypervisor gave to others.
pub fn steal_since(start: (u64, u64)) -> f64 {
    share_since(start, steal_jiffies())
}

/// (part, total) jiffies from `start` to `now`, as a share of the total.
fn share_since(start: (u64, u64), now: (u64, u64)) -> f64 {
    (now.0 - start.0) as f64 / (now.1 - start.1).max(1) as f64
}

/// Percentile `p` (0..=100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The latencies of `replies` in milliseconds, less `minus` (a stand-in's fixed delay),
/// sorted for [`percentile`].
pub fn latencies_ms<'a>(
    replies: impl IntoIterator<Item = &'a super::loadgen::Reply>,
    minus: Duration,
) -> Vec<f64> {
    let mut ms: Vec<f64> = replies
        .into_iter()
        .map(|r| (r.latency.as_secs_f64() - minus.as_secs_f64()) * 1000.0)
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    ms
}

/// The database-level preparation before each timed phase: statistics current and
/// dead rows gone (PostgreSQL), the write-ahead log folded back (SQLite; no ANALYZE, which
/// a deployment does not run either).
pub fn settle(db_url: &str) {
    use diesel::connection::SimpleConnection;
    let mut c = cafe24_komoju::db::establish(db_url).unwrap_or_else(|e| panic!("{e}"));
    let statements: &[&str] = match c {
        cafe24_komoju::db::DbConnection::Postgres(_) => &["VACUUM ANALYZE", "CHECKPOINT"],
        cafe24_komoju::db::DbConnection::Sqlite(_) => &["PRAGMA wal_checkpoint(TRUNCATE)"],
    };
    for sql in statements {
        c.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The `n` of `sql` (`SELECT COUNT(*) AS n …`) on `c`; panics on any error.
pub fn count_on(c: &mut cafe24_komoju::db::DbConnection, sql: &str) -> i64 {
    use cafe24_komoju::db::DbConnection;
    use diesel::RunQueryDsl;
    let counted = match c {
        DbConnection::Postgres(c) => diesel::sql_query(sql).get_result::<Count>(c),
        DbConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<Count>(c),
    };
    counted.unwrap_or_else(|e| panic!("{sql}: {e}")).n
}

/// [`count_on`] on a connection of its own to `db_url`.
pub fn count(db_url: &str, sql: &str) -> i64 {
    let mut c = cafe24_komoju::db::establish(db_url).unwrap_or_else(|e| panic!("{e}"));
    count_on(&mut c, sql)
}

/// The shop's `return_url` every bench checkout carries.
const RETURN_URL: &str = "https://benchmall.cafe24shop.com/order/result";

/// The form of a checkout for `order_id` (H1 signed): asynchronous when it carries a
/// `return_noty_url`, synchronous when not.
fn checkout_form(order_id: &str, return_noty_url: Option<&str>) -> String {
    let hash = hmac_b64(&[AMOUNT, "JPY", order_id, PARTNER]);
    let mut fields = vec![
        ("partner_id", PARTNER),
        ("order_id", order_id),
        ("amount", AMOUNT),
        ("currency", "JPY"),
        ("return_url", RETURN_URL),
        ("buyer_email", "buyer@example.com"),
        ("lang", "ja"),
    ];
    if let Some(url) = return_noty_url {
        fields.push(("return_noty_url", url));
    }
    fields.push(("hash_data", &hash));
    serde_urlencoded::to_string(fields).unwrap_or_else(|e| panic!("{e}"))
}

/// Checkout requests for orders `B-{first}` … `B-{first + n - 1}`: asynchronous ones
/// notifying `receiver`, or with `None` synchronous ones.
pub fn checkout_requests(
    target: &SocketAddr,
    receiver: Option<&str>,
    first: usize,
    n: usize,
) -> Vec<(String, Vec<u8>)> {
    let path = if receiver.is_some() {
        "/api/asynchronous-checkout/checkout"
    } else {
        "/api/synchronous-checkout/checkout"
    };
    (first..first + n)
        .map(|i| {
            let order_id = format!("B-{i:07}");
            let body = checkout_form(&order_id, receiver);
            let request = loadgen::post(
                target,
                path,
                "application/x-www-form-urlencoded",
                &[],
                body.as_bytes(),
            );
            (order_id, request)
        })
        .collect()
}

/// An order as the checkout left it.
#[derive(Debug, Clone)]
pub struct Order {
    pub pk: String,
    pub order_id: String,
    pub session_id: String,
    pub external_order_num: String,
}

/// KOMOJU's `payment.captured` event for `order`, as bytes.
pub fn captured_event(order: &Order) -> Vec<u8> {
    let payment = json!({
        "id": format!("pay{}", order.session_id),
        "resource": "payment",
        "status": "captured",
        "amount": 1000,
        "tax": 0,
        "customer": null,
        "payment_deadline": null,
        "payment_details": {
            "type": "credit_card", "email": "buyer@example.com", "brand": "visa",
            "last_four_digits": "4242", "month": 12, "year": 2030
        },
        "payment_method_fee": 0,
        "total": 1000,
        "currency": "JPY",
        "description": null,
        "captured_at": "2026-12-03T12:00:01.000+09:00",
        "external_order_num": order.external_order_num,
        "metadata": {"mall_id": MALL, "order_id": order.order_id, "flow": "async"},
        "created_at": "2026-12-03T12:00:00.000+09:00",
        "amount_refunded": 0,
        "locale": "ja",
        "session": order.session_id,
        "customer_family_name": null,
        "customer_given_name": null,
        "refunds": [],
        "refund_requests": []
    });
    serde_json::to_vec(&json!({
        "id": format!("ev_{}", order.order_id),
        "type": "payment.captured",
        "resource": "event",
        "data": payment,
        "created_at": "2026-12-03T12:00:01.000+09:00",
        "reason": null
    }))
    .unwrap_or_default()
}

pub fn webhook_request(target: &SocketAddr, body: &[u8]) -> Vec<u8> {
    let signature = hmac_hex(body);
    loadgen::post(
        target,
        &format!("/api/asynchronous-checkout/checkout/webhook?mall_id={MALL}"),
        "application/json",
        &[
            ("X-Komoju-Signature", &signature),
            ("X-Komoju-Event", "payment.captured"),
        ],
        body,
    )
}

/// The orders of the mall, by `order_id`.
pub fn orders_by_id(db_url: &str) -> HashMap<String, Order> {
    let mut c = cafe24_komoju::db::establish(db_url).unwrap_or_else(|e| panic!("{e}"));
    cafe24_komoju::db::orders::list(&mut c, Some(MALL), None, None, i64::MAX)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|o| {
            (
                o.order_id.clone(),
                Order {
                    pk: o.id,
                    order_id: o.order_id,
                    session_id: o.komoju_session_id.unwrap_or_default(),
                    external_order_num: o.external_order_num,
                },
            )
        })
        .collect()
}

/// Runs the loadgen on a thread and runtime of its own.
pub fn load(
    targets: Vec<SocketAddr>,
    connections: usize,
    requests: Vec<Vec<u8>>,
    keep_bodies: bool,
) -> loadgen::Run {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .block_on(loadgen::run(&targets, connections, requests, keep_bodies))
    })
    .join()
    .unwrap_or_else(|_| panic!("the load generator panicked"))
}

pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A schema of its own on the PostgreSQL of `admin`, dropped with its holder.
pub struct PgSchema {
    /// A connection URL whose `search_path` is the schema.
    pub url: String,
    admin: String,
    name: String,
}

impl PgSchema {
    /// Creates `{prefix}_{pid}`; panics when PostgreSQL refuses.
    pub fn create(admin: &str, prefix: &str) -> PgSchema {
        use diesel::RunQueryDsl;
        let name = format!("{prefix}_{}", std::process::id());
        let mut c = cafe24_komoju::db::establish(admin).unwrap_or_else(|e| panic!("{e}"));
        diesel::sql_query(format!("CREATE SCHEMA {name}"))
            .execute(&mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        let sep = if admin.contains('?') { '&' } else { '?' };
        PgSchema {
            url: format!("{admin}{sep}options=-c%20search_path%3D{name}"),
            admin: admin.to_owned(),
            name,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        use diesel::RunQueryDsl;
        if let Ok(mut c) = cafe24_komoju::db::establish(&self.admin) {
            let _ = diesel::sql_query(format!("DROP SCHEMA {} CASCADE", self.name)).execute(&mut c);
        }
    }
}

/// Runs the CLI with `env`; returns its stdout.
pub fn cli(env: &HashMap<String, String>, args: &[String]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cafe24-komoju"))
        .args(args)
        .env_clear()
        .envs(env)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Adds the bench merchant (`MALL`, public ref `b`, [`WEBHOOK_SECRET`]) through the CLI.
pub fn add_merchant(env: &HashMap<String, String>) {
    let args = super::merchant_fixture::MerchantAdd::mall(MALL)
        .public_ref("b")
        .secret_key("sk_test_bench_0123456789")
        .webhook_secret(WEBHOOK_SECRET)
        .args();
    cli(env, &args);
}

/// User + system CPU of the database: every `postgres` process, or the service's
/// `sqlite` thread.
pub fn db_cpu(backend: &str, service_pid: u32) -> Duration {
    let mut total = Duration::ZERO;
    let (dir, name) = if backend == "sqlite" {
        (format!("/proc/{service_pid}/task"), "(sqlite)")
    } else {
        ("/proc".to_owned(), "(postgres)")
    };
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        if stat.contains(name) {
            total += stat_cpu(&stat, true);
        }
    }
    total
}

/// utime + stime of one `/proc/…/stat` line and, with `children`, cutime + cstime: the
/// CPU of its children that have exited and been reaped (PostgreSQL's postmaster reaps
/// every backend that closes, so a connection closed during a run still counts). Clock
/// ticks of 10 ms; the command name may hold spaces, so fields are counted after its
/// closing parenthesis (utime is field 14 of the line, 12 after the name).
pub fn stat_cpu(stat: &str, children: bool) -> Duration {
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let last = if children { 14 } else { 12 };
    let ticks: u64 = (11..=last)
        .map(|i| fields.get(i).copied().unwrap_or(0))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The service's `/metrics` page at `addr`, as text; panics when it cannot be read.
pub async fn metrics_text(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("metrics: {e}"))
        .text()
        .await
        .unwrap_or_default()
}

/// "met" or "NOT MET", for the benchmarks' tables.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT MET"
    }
}

/// Writes `figures` as JSON to the path in the environment variable `var`, or to
/// `target/{file}`; says where, or why not.
pub fn write_json(var: &str, file: &str, figures: &impl serde::Serialize) {
    let out = std::env::var(var)
        .unwrap_or_else(|_| format!("{}/target/{file}", env!("CARGO_MANIFEST_DIR")));
    match std::fs::write(&out, serde_json::to_vec_pretty(figures).unwrap_or_default()) {
        Ok(()) => println!("figures written to {out}"),
        Err(e) => eprintln!("could not write {out}: {e}"),
    }
}
