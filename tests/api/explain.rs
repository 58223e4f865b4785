//! Query plans of the hot paths (issue 21, item 1), on PostgreSQL and on SQLite: the SQL the
//! service really issues while serving checkout (sync and async), the callback, the
//! status read, KOMOJU's webhook, a synchronous cancellation, the outbox delivering a
//! notification, a reconciliation pass, the operator API's order list and order view,
//! and the merchant's payments and order pages is recorded through diesel's
//! instrumentation; the database is then seeded with a realistic year
//! (`db::seed`), analysed, and every recorded statement on `orders`, `order_events`,
//! `webhook_events`, `notifications` or `refunds` is explained with its binds. A
//! sequential scan of one of those tables fails the test, naming the statement.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cafe24_komoju::db::seed::{seed, SeedPlan};
use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::helpers::*;
use crate::install::{checkout, installed, merchant_row};

/// The tables a hot path must never scan whole.
const BIG: [&str; 5] = [
    "orders",
    "order_events",
    "webhook_events",
    "notifications",
    "refunds",
];

/// How many tests are recording (the PostgreSQL and the SQLite test may overlap).
static RECORDING: AtomicUsize = AtomicUsize::new(0);
/// (connection URL, statement with its binds as diesel shows them).
static RECORDED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

thread_local! {
    /// The URL of the last connection opened on this thread.
    static OPENED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Remembers its connection's URL and, while a test is [`RECORDING`], every statement it
/// starts.
/// The pool replaces a new connection's instrumentation with its own, which passes
/// events on to a second instance made right after, on the same thread: that one takes
/// the URL the first saw.
struct Recorder {
    url: String,
}

impl Instrumentation for Recorder {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                self.url = url.to_owned();
                OPENED.with(|o| *o.borrow_mut() = url.to_owned());
            }
            InstrumentationEvent::StartQuery { query, .. }
                if RECORDING.load(Ordering::SeqCst) > 0 =>
            {
                let text = query.to_string();
                if let Ok(mut seen) = RECORDED.lock() {
                    seen.push((self.url.clone(), text));
                }
            }
            _ => {}
        }
    }
}

fn recorder() -> Option<Box<dyn Instrumentation>> {
    let url = OPENED.with(|o| o.borrow().clone());
    Some(Box::new(Recorder { url }))
}

#[actix_web::test]
#[cfg_attr(
    not(test_postgres),
    ignore = "PostgreSQL: set TEST_POSTGRES_URL (then cargo rebuilds the tests)"
)]
async fn hot_paths_never_scan_a_big_table_whole() {
    let (app, statements) = recorded_then_seeded(Backend::postgres(), 50_000, 40, 7).await;
    let mut conn = PgConnection::establish(&app._db.url).unwrap_or_else(|e| panic!("connect: {e}"));
    diesel::sql_query("ANALYZE")
        .execute(&mut conn)
        .unwrap_or_else(|e| panic!("analyze: {e}"));
    diesel::sql_query(
        "CREATE FUNCTION pg_temp.plan_of(q TEXT) RETURNS TEXT AS $$ \
         DECLARE r TEXT; BEGIN EXECUTE q INTO r; RETURN r; END $$ LANGUAGE plpgsql",
    )
    .execute(&mut conn)
    .unwrap_or_else(|e| panic!("plan function: {e}"));

    let (mut explained, mut scans) = (0, Vec::new());
    for (sql, binds) in &statements {
        match explain(&mut conn, sql, binds) {
            Ok(plan) => {
                explained += 1;
                println!("explained: {}", sql.chars().take(160).collect::<String>());
                scans.extend(seq_scans(&plan).into_iter().map(|t| format!("{t}: {sql}")));
            }
            Err(why) => println!("not explained ({why}): {sql} -- {binds}"),
        }
    }
    println!("{explained} of {} statements explained", statements.len());
    assert!(explained > 10, "too few statements explained: {explained}");
    assert!(
        scans.is_empty(),
        "sequential scans on a hot path:\n{}",
        scans.join("\n")
    );
}

/// SQLite, which a deployment never gives statistics (no `ANALYZE`): every recorded
/// statement on a big table is planned (`EXPLAIN QUERY PLAN`, the binds inlined) against
/// a seeded database. A plan fails the test when it reads a big table whole (`SCAN t`
/// without an index) or sorts every row of one state (a search on `state` alone followed
/// by a temporary B-tree for the `ORDER BY`): the retention purge of delivered
/// notifications did, 480 ms a batch at 200 000 orders, until it named its index.
#[actix_web::test]
async fn sqlite_plans_of_the_hot_paths_never_read_a_big_table_whole() {
    let (app, statements) = recorded_then_seeded(Backend::Sqlite, 20_000, 20, 11).await;
    let url = app._db.url.clone();
    let mut conn =
        cafe24_komoju::db::establish(&url).unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let cafe24_komoju::db::DbConnection::Sqlite(conn) = &mut conn else {
        panic!("{url} is not SQLite");
    };
    let (mut planned, mut faults) = (0, Vec::new());
    for (sql, binds) in &statements {
        let Some(text) = literals(binds).map(|l| inline(sql, &l)) else {
            println!("not planned (binds not understood): {sql} -- {binds}");
            continue;
        };
        let rows = diesel::sql_query(format!("EXPLAIN QUERY PLAN {text}"))
            .load::<PlanRow>(conn)
            .unwrap_or_else(|e| panic!("EXPLAIN QUERY PLAN {text}: {e}"));
        planned += 1;
        let details: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
        faults.extend(
            sqlite_faults(sql, &details)
                .into_iter()
                .map(|f| format!("{f}: {sql}")),
        );
    }
    println!("{planned} of {} statements planned", statements.len());
    assert!(planned > 10, "too few statements planned: {planned}");
    assert!(
        faults.is_empty(),
        "plans reading a big table whole:\n{}",
        faults.join("\n")
    );
}

/// A test service on `backend` whose hot paths are driven while every statement is
/// recorded ([`drive_hot_paths`]); then its database seeded with `orders` orders over
/// `malls` malls and a year (`seed` for the random choices). Returns the service and
/// the statements its connections ran, with their binds.
async fn recorded_then_seeded(
    backend: Backend,
    orders: u64,
    malls: u32,
    seed_with: u64,
) -> (TestApp, BTreeMap<String, String>) {
    set_default_instrumentation(recorder).unwrap_or_else(|e| panic!("instrumentation: {e}"));
    RECORDING.fetch_add(1, Ordering::SeqCst);
    let app = spawn_quiet(backend).await;
    drive_hot_paths(&app).await;
    RECORDING.fetch_sub(1, Ordering::SeqCst);
    // What the connections' URL holds: PostgreSQL's schema, SQLite's file name (the
    // connections see the path, not the URL).
    let marker = match app._db.pg_schema() {
        Some(schema) => schema.to_owned(),
        None => app
            ._db
            .url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let statements = recorded(&marker);
    let plan = SeedPlan {
        orders,
        malls,
        days: 365,
        now: app.clock.now_naive(),
        seed: seed_with,
        retry_schedule: &cafe24_komoju::notifications::SCHEDULE,
    };
    app.state
        .db
        .run(move |c| seed(c, &plan))
        .await
        .unwrap_or_else(|e| panic!("seeding: {e}"));
    (app, statements)
}

#[derive(QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = Text)]
    detail: String,
}

/// What is wrong with the SQLite plan of `sql` (its `detail` lines), if anything. A
/// `SCAN t` in the order of `t`'s integer key under a `LIMIT`, with nothing to sort,
/// walks the table from one end and stops at the limit: not a whole read.
fn sqlite_faults(sql: &str, details: &[&str]) -> Vec<String> {
    let sorts = details
        .iter()
        .any(|d| d.starts_with("USE TEMP B-TREE FOR ORDER BY"));
    let mut faults = Vec::new();
    for d in details {
        let words: Vec<&str> = d.split_whitespace().collect();
        let table = words.get(1).copied().unwrap_or_default();
        if !BIG.contains(&table) {
            continue;
        }
        let key_order = sql.contains(&format!("ORDER BY `{table}`.`id`")) && sql.contains("LIMIT");
        let walks_from_one_end = key_order && !sorts;
        if words.first() == Some(&"SCAN") && !d.contains("USING") && !walks_from_one_end {
            faults.push(format!("reads {table} whole"));
        }
        if words.first() == Some(&"SEARCH") && d.ends_with("(state=?)") && sorts {
            faults.push(format!("sorts every {table} row of a state"));
        }
    }
    faults
}

/// `sql` with its placeholders (`?`, or `?N` numbered from 1) replaced by `literals`.
fn inline(sql: &str, literals: &[String]) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let (mut out, mut i, mut next, mut quoted) = (String::new(), 0, 0, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '?' || quoted {
            out.push(c);
            i += 1;
            continue;
        }
        let digits: String = chars[i + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .collect();
        let index = if digits.is_empty() {
            next += 1;
            next - 1
        } else {
            digits.parse::<usize>().unwrap_or(1) - 1
        };
        out.push_str(literals.get(index).map_or("NULL", String::as_str));
        i += 1 + digits.len();
    }
    out
}

/// Every hot path once, through the real HTTP server.
async fn drive_hot_paths(app: &TestApp) {
    // Synchronous checkout, callback, status, cancellation.
    let order = "20261206-0000801";
    let url = app
        .sync_checkout_ok(&checkout_fields(order, "3065", "JPY"))
        .await;
    let callback = app.press(&url, "credit_card").await;
    let resp = app.get(&callback).await;
    assert_eq!(resp.status(), 302);
    let key = query_of(&location(&resp))["key"].clone();
    assert_eq!(app.status(&key).await.0, 200);
    let tid = app
        .order(order)
        .await
        .and_then(|o| o.komoju_payment_id)
        .unwrap_or_default();
    let (code, body) = app
        .sync_cancel(&cancel_fields(order, &tid, "3065", "JPY"))
        .await;
    assert_eq!(code, 200, "{body}");

    // Asynchronous checkout paid, KOMOJU's webhook, the outbox delivering.
    let cafe24 = Receiver::spawn(app.clock.clone());
    let async_order = "20261206-0000802";
    let url = app
        .async_checkout_ok(&async_fields(async_order, "3400", "JPY", &cafe24))
        .await;
    let callback = app.press(&url, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);
    let session_id = url.rsplit('/').next().unwrap_or_default();
    let payment = app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
    let body = event_body("evt_explain_1", "payment.captured", &payment);
    let signature = komoju_signature(WEBHOOK_SECRET, &body);
    assert_eq!(app.send_webhook(MALL, &body, Some(&signature)).await, 200);
    app.drain_outbox().await;

    // One reconciliation pass.
    let mut backoff = cafe24_komoju::reconciliation::Backoff::default();
    let ran =
        cafe24_komoju::reconciliation::pass(&app.state, &app.settings.reconcile, &mut backoff)
            .await;
    assert!(matches!(ran, Ok(Some(_))), "{ran:?}");

    operator_and_merchant_pages(app, order).await;
}

/// The operator API's list and order view; the merchant's payments and order pages.
async fn operator_and_merchant_pages(app: &TestApp, order: &str) {
    let token = app.cli(&["operator", "token", "--ttl", "1h"]).await;
    for path in ["/orders".to_owned(), format!("/orders/{MALL}/{order}")] {
        let resp = app
            .client
            .get(format!("{}/operator/api/v1{path}", app.address))
            .header("Authorization", format!("Bearer {}", token.trim()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("operator: {e}"));
        assert_eq!(resp.status(), 200, "{path}");
    }
    let browser = installed(app).await;
    let public_ref = merchant_row(app, &browser.mall)
        .map(|m| m.public_ref)
        .unwrap_or_default();
    let partner = format!("{}:1:{public_ref}", browser.mall);
    app.sync_checkout_ok(&checkout(&partner, "NEW-0801")).await;
    for path in ["payments".to_owned(), "payments/NEW-0801".to_owned()] {
        let resp = app
            .client
            .get(format!("{}/settings/{}/{path}", app.address, browser.mall))
            .header(
                "Cookie",
                format!("cafe24_komoju_session={}", browser.session),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(resp.status(), 200, "{path}");
    }
}

/// The recorded statements of this test's database (its URL holds `marker`: the
/// PostgreSQL schema, the SQLite file) that touch a big table, each once: SQL → its
/// first binds (diesel's debug list).
fn recorded(marker: &str) -> BTreeMap<String, String> {
    let seen = RECORDED.lock().map(|s| s.clone()).unwrap_or_default();
    let mut statements = BTreeMap::new();
    for (url, text) in seen {
        if !url.contains(marker) {
            continue;
        }
        let (sql, binds) = text.rsplit_once(" -- binds: ").unwrap_or((&text, "[]"));
        let words: Vec<&str> = sql
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        let upper = sql.trim_start().to_ascii_uppercase();
        let plannable = ["SELECT", "UPDATE", "DELETE", "INSERT", "WITH"]
            .iter()
            .any(|k| upper.starts_with(k));
        if plannable && BIG.iter().any(|t| words.contains(t)) {
            statements
                .entry(sql.to_owned())
                .or_insert_with(|| binds.to_owned());
        }
    }
    statements
}

#[derive(QueryableByName)]
struct Plan {
    #[diesel(sql_type = Text)]
    plan: String,
}

/// The JSON plan of `sql` with `binds` (diesel's debug list) as literal parameters.
fn explain(conn: &mut PgConnection, sql: &str, binds: &str) -> Result<String, String> {
    let literals = literals(binds).ok_or("binds not understood")?;
    let _ = diesel::sql_query("DEALLOCATE ALL").execute(conn);
    diesel::sql_query(format!("PREPARE hot AS {sql}"))
        .execute(conn)
        .map_err(|e| e.to_string())?;
    let args = if literals.is_empty() {
        String::new()
    } else {
        format!("({})", literals.join(", "))
    };
    let explain = format!("EXPLAIN (FORMAT JSON) EXECUTE hot{args}");
    diesel::sql_query("SELECT pg_temp.plan_of($1) AS plan")
        .bind::<Text, _>(explain)
        .get_result::<Plan>(conn)
        .map(|p| p.plan)
        .map_err(|e| e.to_string())
}

/// The big tables a plan scans sequentially.
fn seq_scans(plan: &str) -> Vec<String> {
    fn walk(node: &serde_json::Value, found: &mut Vec<String>) {
        match node {
            serde_json::Value::Object(map) => {
                let relation = map.get("Relation Name").and_then(|r| r.as_str());
                if map.get("Node Type").and_then(|n| n.as_str()) == Some("Seq Scan") {
                    if let Some(r) = relation.filter(|r| BIG.contains(r)) {
                        found.push(r.to_owned());
                    }
                }
                map.values().for_each(|v| walk(v, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let value: serde_json::Value =
        serde_json::from_str(plan).unwrap_or_else(|e| panic!("plan JSON: {e}: {plan}"));
    let mut found = Vec::new();
    walk(&value, &mut found);
    found
}

/// diesel's debug list of binds (`["a", Some(5), None, Paid, 2026-12-06T12:00:00]`) as
/// SQL literals; `None` when a value is not understood.
fn literals(binds: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = binds.trim().chars().collect();
    let mut at = 0;
    match value(&chars, &mut at)? {
        Value::List(items) => Some(items.iter().map(Value::sql).collect()),
        _ => None,
    }
}

enum Value {
    Text(String),
    Bare(String),
    Null,
    List(Vec<Value>),
}

impl Value {
    fn sql(&self) -> String {
        match self {
            Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Null => "NULL".into(),
            Value::Bare(b) if b == "true" || b == "false" => b.clone(),
            Value::Bare(b) if b.parse::<f64>().is_ok() => b.clone(),
            // A date-time, or an enum stored by its snake_case name.
            Value::Bare(b) if b.contains('-') => format!("'{b}'"),
            Value::Bare(b) => format!("'{}'", snake(b)),
            Value::List(items) if items.is_empty() => "'{}'".into(),
            Value::List(items) => format!(
                "ARRAY[{}]",
                items.iter().map(Value::sql).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn value(chars: &[char], at: &mut usize) -> Option<Value> {
    while chars.get(*at) == Some(&' ') {
        *at += 1;
    }
    match chars.get(*at)? {
        '"' => {
            *at += 1;
            let mut s = String::new();
            loop {
                match chars.get(*at)? {
                    '"' => break,
                    '\\' => {
                        *at += 1;
                        s.push(match chars.get(*at)? {
                            'n' => '\n',
                            't' => '\t',
                            c => *c,
                        });
                    }
                    c => s.push(*c),
                }
                *at += 1;
            }
            *at += 1;
            Some(Value::Text(s))
        }
        '[' => {
            *at += 1;
            let mut items = Vec::new();
            loop {
                while matches!(chars.get(*at), Some(' ' | ',')) {
                    *at += 1;
                }
                if chars.get(*at)? == &']' {
                    *at += 1;
                    return Some(Value::List(items));
                }
                items.push(value(chars, at)?);
            }
        }
        _ => {
            let start = *at;
            while chars
                .get(*at)
                .is_some_and(|c| !matches!(c, ',' | ']' | ')' | '(' | ' '))
            {
                *at += 1;
            }
            let word: String = chars[start..*at].iter().collect();
            if chars.get(*at) == Some(&'(') {
                // `Some(x)` or a newtype `Name(x)`: the inner value.
                *at += 1;
                let inner = value(chars, at)?;
                (chars.get(*at)? == &')').then_some(())?;
                *at += 1;
                return Some(inner);
            }
            Some(if word == "None" {
                Value::Null
            } else {
                Value::Bare(word)
            })
        }
    }
}
