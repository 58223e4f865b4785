//! Installing and the app's lifecycle as the real Cafe24 does them and as an attacker
//! finds them (issue 17 items 6–9 and 11, issue 18 items 1–3 and 8), through the real
//! server and the Cafe24 stand-in on its own port, on SQLite and PostgreSQL:
//! a wrong client secret disconnects no mall; a 403 for a missing scope is confirmed
//! and shown, not a disconnect; lifecycle webhooks need `x-api-key` and make at most one
//! confirmation call a minute; token times are KST; failed calls are logged with
//! Cafe24's `X-Trace_ID`; a launch URL opens one session; who launched decides what the
//! session may do; a disconnect ends every session of the mall.

use std::time::Duration;

use cafe24_komoju::db;
use cafe24_komoju_sandbox::{AppEvent, Cafe24Fault, Launch};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{log_lines, spawn_app, spawn_app_with, Backend, TestApp, WEBHOOK_API_KEY};
use crate::install::{merchant_row, set_cookie, token_row, Browser};

const MALL: &str = "guardmall";
const KEY: &str = "sk_test_guardmall_0123456789";

/// Installs `mall` as its representative operator, with KOMOJU keys saved (so enabled).
async fn installed<'a>(app: &'a TestApp, mall: &str) -> Browser<'a> {
    let mut browser = Browser::install(app, mall, "en_US").await;
    let (status, page) = browser
        .save_keys(&format!("sk_test_{mall}_0123456789"))
        .await;
    assert_eq!(status, 303, "{page}");
    browser
}

/// A launch URL for `mall` by a user of `user_type`, a second after the last one.
fn launch_as(app: &TestApp, mall: &str, user_type: &str) -> String {
    app.clock.advance(Duration::from_secs(1));
    app.cafe24.launch_url_for(&Launch {
        mall_id: mall,
        shop_no: 1,
        lang: "en_US",
        user_id: "staff01",
        user_name: "Staff One",
        user_type,
        timestamp: app.clock.unix_seconds(),
    })
}

/// Cafe24 Admin API calls the stand-in received for `mall` on `path`.
fn calls(app: &TestApp, mall: &str, path: &str) -> usize {
    app.cafe24
        .requests()
        .iter()
        .filter(|r| r.mall_id == mall && r.path == path)
        .count()
}

fn shops_calls(app: &TestApp, mall: &str) -> usize {
    calls(app, mall, "/api/v2/admin/shops")
}

/// POSTs a lifecycle event to the service with `key` as `x-api-key`.
async fn post_event(app: &TestApp, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/cafe24/webhooks", app.address))
        .json(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let resp = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

fn deleted(mall: &str) -> Value {
    json!({"event_no": 90077, "resource": {"mall_id": mall, "client_id": "x", "app_name": "a", "deleted_date": "2026-12-06T12:30:15+09:00"}})
}

fn lifecycle_rows(app: &TestApp) -> i64 {
    let mut c = app.state.db.get().unwrap_or_else(|e| panic!("{e}"));
    db::schema::lifecycle_checks::table
        .count()
        .get_result(&mut **c)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The CSRF token of a session cookie, as the service derives it (a read-only page shows
/// none: an attacker holding the cookie could still try).
fn csrf_for(app: &TestApp, cookie: &str) -> String {
    let session = app
        .state
        .session_keys
        .verify(Some(cookie), app.clock.unix_seconds())
        .unwrap_or_else(|| panic!("not a session"));
    app.state.session_keys.csrf(&session)
}

// ---- 17.6: a wrong client secret disconnects nothing ----

async fn a_wrong_client_secret_disconnects_no_mall(backend: Backend) {
    let app = spawn_app(backend).await;
    let malls = ["secretmall1", "secretmall2", "secretmall3"];
    for mall in malls {
        installed(&app, mall).await;
    }
    let before: Vec<_> = malls.iter().map(|m| token_row(&app, m)).collect();
    // The Developer Center reissued the secret; the service still has the old one.
    app.cafe24.rotate_client_secret("the-reissued-secret");
    app.clock.advance(Duration::from_secs(12 * 86400));
    let refreshed = cafe24_komoju::install::tokens::refresh_due(&app.state, 100).await;
    assert_eq!(refreshed.ok(), Some(0), "no refresh can work");
    let refused: Vec<_> = app
        .cafe24
        .requests()
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        refused,
        vec![401, 401, 401],
        "Cafe24 refused each mall's refresh"
    );
    for (mall, before) in malls.iter().zip(&before) {
        let after = token_row(&app, mall);
        assert_eq!(
            after.as_ref().map(|t| &t.refresh_token),
            before.as_ref().map(|t| &t.refresh_token),
            "{mall} keeps its tokens"
        );
        assert!(after.is_some_and(|t| t.refresh_lease_until.is_none()));
        assert!(
            merchant_row(&app, mall).is_some_and(|m| m.enabled),
            "{mall} is not disconnected"
        );
    }
    let metrics = app.state.metrics.render();
    assert!(
        metrics.contains("cafe24_komoju_cafe24_app_credentials_refused_total 3"),
        "counted: {metrics}"
    );
    assert!(
        log_lines().iter().any(|l| l.starts_with("ERROR")
            && l.contains("secretmall1")
            && l.contains("CAFE24_CLIENT_SECRET")),
        "logged for the operator"
    );
    // The secret fixed (the two agree again): the next refresh works for every mall.
    app.cafe24
        .rotate_client_secret(crate::helpers::CLIENT_SECRET);
    let refreshed = cafe24_komoju::install::tokens::refresh_due(&app.state, 100).await;
    assert_eq!(refreshed.ok(), Some(3));
    for (mall, before) in malls.iter().zip(&before) {
        assert_ne!(
            token_row(&app, mall).map(|t| t.refresh_token),
            before.as_ref().map(|t| t.refresh_token.clone()),
            "{mall} holds a new refresh token"
        );
    }
}

// ---- 17.7: a 403 for a missing scope is confirmed, not a disconnect ----

async fn a_403_for_a_missing_scope_disconnects_nothing_and_names_the_scope(backend: Backend) {
    let scopes = "mall.read_application,mall.write_application,mall.read_store";
    let app = spawn_app_with(backend, &[("CAFE24_SCOPES", scopes)]).await;
    let mut browser = installed(&app, MALL).await;
    let (status, page) = browser.post("/shops/1/gateway", &[("on", "1")]).await;
    assert_eq!(status, 502, "{page}");
    assert!(
        page.contains("mall.write_store"),
        "which permission: {page}"
    );
    assert!(page.contains("Developer Center"), "where to add it: {page}");
    assert!(
        page.contains("id=\"komoju\""),
        "the settings page, not an error page"
    );
    // One confirmation call, right after the refused one; nothing disconnected.
    let admin: Vec<(String, String, u16)> = app
        .cafe24
        .requests()
        .into_iter()
        .filter(|r| r.mall_id == MALL && r.path.starts_with("/api/v2/admin"))
        .map(|r| (r.method, r.path, r.status))
        .collect();
    let refused = admin
        .iter()
        .position(|r| r.1 == "/api/v2/admin/paymentgateway")
        .unwrap_or_else(|| panic!("{admin:?}"));
    assert_eq!(admin[refused].2, 403);
    assert_eq!(
        admin[refused + 1],
        ("GET".into(), "/api/v2/admin/shops".into(), 200),
        "confirmed with GET /admin/shops"
    );
    assert!(token_row(&app, MALL).is_some(), "tokens kept");
    assert!(
        merchant_row(&app, MALL).is_some_and(|m| m.enabled),
        "mall enabled"
    );
    assert!(app.cafe24.payment_gateways(MALL).is_empty());
    assert_eq!(browser.page().await.0, 200, "the session still works");
}

async fn a_client_cafe24_has_not_approved_is_told_so_and_disconnects_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = installed(&app, MALL).await;
    app.cafe24.set_paymentgateway_authorized(false);
    let (status, page) = browser.post("/shops/1/gateway", &[("on", "1")]).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("approved"), "{page}");
    assert!(page.contains("mall.write_store"), "{page}");
    assert!(token_row(&app, MALL).is_some());
    assert!(merchant_row(&app, MALL).is_some_and(|m| m.enabled));
    // Cafe24 approves the app: the same switch works, registered once.
    app.cafe24.set_paymentgateway_authorized(true);
    assert_eq!(
        browser.post("/shops/1/gateway", &[("on", "1")]).await.0,
        303
    );
    assert_eq!(app.cafe24.payment_gateways(MALL).len(), 1);
}

// ---- 17.8: lifecycle webhooks need x-api-key ----

async fn lifecycle_webhooks_need_the_api_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let _browser = installed(&app, MALL).await;
    let admin_before = app.cafe24.requests().len();
    for key in [
        None,
        Some("wrong-key"),
        Some(""),
        Some("test-cafe24-webhook-api-ke"),
    ] {
        let (status, body) = post_event(&app, key, &deleted(MALL)).await;
        assert_eq!(status, 403, "{key:?}");
        assert_eq!(body["error"], "forbidden");
        assert_eq!(body["result_code"], "9999");
    }
    // Not even a body that does not parse is read before the key.
    let (status, _) = post_event(&app, Some("wrong-key"), &json!("not an event")).await;
    assert_eq!(status, 403);
    assert_eq!(app.cafe24.requests().len(), admin_before, "no Cafe24 call");
    assert_eq!(lifecycle_rows(&app), 0, "nothing recorded");
    assert!(merchant_row(&app, MALL).is_some_and(|m| m.enabled));

    // The right key, from the stand-in as Cafe24 sends it: confirmed, then acted on.
    app.cafe24
        .set_app_webhook(&format!("{}/cafe24/webhooks", app.address), WEBHOOK_API_KEY);
    let sent = app.cafe24.send_app_event(MALL, AppEvent::Deleted).await;
    assert_eq!(sent, Ok(200));
    assert!(
        merchant_row(&app, MALL).is_some_and(|m| m.enabled),
        "not confirmed: still installed"
    );
    app.cafe24.uninstall(MALL);
    app.clock.advance(Duration::from_secs(61));
    let sent = app.cafe24.send_app_event(MALL, AppEvent::Expired).await;
    assert_eq!(sent, Ok(200));
    assert!(
        merchant_row(&app, MALL).is_some_and(|m| !m.enabled),
        "confirmed: disabled"
    );
    assert!(token_row(&app, MALL).is_none());
}

async fn without_a_webhook_key_development_accepts_events_and_warns(backend: Backend) {
    let app = spawn_app_with(backend, &[("CAFE24_WEBHOOK_API_KEY", "")]).await;
    assert!(app.state.cafe24_webhook_api_key.is_none());
    let _browser = installed(&app, MALL).await;
    let (status, body) = post_event(&app, None, &deleted(MALL)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "not_confirmed");
    assert!(log_lines()
        .iter()
        .any(|l| l.starts_with("WARN") && l.contains("CAFE24_WEBHOOK_API_KEY is not set")));
}

// ---- 17.9: token times in KST, X-Trace_ID logged, error codes, the launch window ----

async fn token_times_are_korean_time(backend: Backend) {
    let app = spawn_app(backend).await;
    // The service's clock an hour ahead of Cafe24's: the token still ends when Cafe24
    // says, two hours after Cafe24 issued it (its times are KST without a zone).
    app.clock.advance(Duration::from_secs(3600));
    let _browser = installed(&app, MALL).await;
    let tokens = token_row(&app, MALL).unwrap_or_else(|| panic!("no tokens"));
    let real_now = chrono::Utc::now().naive_utc();
    let off =
        |at: chrono::NaiveDateTime, want: chrono::NaiveDateTime| (at - want).num_seconds().abs();
    assert!(
        off(
            tokens.access_expires_at,
            real_now + chrono::Duration::hours(2)
        ) < 60,
        "access ends 2 h after Cafe24 issued it: {} vs now {real_now}",
        tokens.access_expires_at
    );
    assert!(
        off(
            tokens.refresh_expires_at,
            real_now + chrono::Duration::days(14)
        ) < 60,
        "refresh ends 14 days after: {}",
        tokens.refresh_expires_at
    );
}

async fn failed_admin_calls_are_logged_with_the_trace_id_and_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = installed(&app, MALL).await;
    app.cafe24.fail_next(1, Cafe24Fault::Status(500));
    let (status, page) = browser.page().await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Cafe24 did not list the mall's shops"),
        "{page}"
    );
    let failed = app
        .cafe24
        .requests()
        .into_iter()
        .rfind(|r| r.status == 500)
        .unwrap_or_else(|| panic!("no failed call"));
    assert_eq!(failed.trace_id.len(), 32);
    let lines = log_lines();
    let line = lines
        .iter()
        .find(|l| l.contains(&failed.trace_id))
        .unwrap_or_else(|| panic!("X-Trace_ID {} in no log line", failed.trace_id));
    assert!(line.contains("code 500"), "Cafe24's integer code: {line}");
    assert!(
        line.contains(MALL) && line.contains("/api/v2/admin/shops"),
        "{line}"
    );
}

async fn a_launch_window_over_two_hours_stops_the_service_naming_the_variable(backend: Backend) {
    let db = crate::helpers::TestDb::new(&backend);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("serve.log");
    let env = crate::helpers::test_env(
        &db.url,
        crate::helpers::free_port(),
        None,
        &[("CAFE24_LAUNCH_MAX_AGE_SECS", "7201")],
    );
    let mut child = crate::serve_fixture::spawn(None, &env, &log);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the service started with CAFE24_LAUNCH_MAX_AGE_SECS=7201");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("CAFE24_LAUNCH_MAX_AGE_SECS"), "{text}");
    assert!(text.contains("7200"), "{text}");
}

// ---- 18.1: a launch URL is single use ----

async fn a_launch_url_opens_one_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let _browser = installed(&app, MALL).await;
    let url = launch_as(&app, MALL, "P");
    // Two browsers with no cookies in common (reqwest keeps none): the first gets in.
    let first = app.get(&url).await;
    assert_eq!(first.status(), 302);
    assert!(set_cookie(&first, "cafe24_komoju_session").is_some());
    let second = app.get(&url).await;
    assert_eq!(second.status(), 403, "the same launch URL again");
    assert!(set_cookie(&second, "cafe24_komoju_session").is_none());
    let text = second.text().await.unwrap_or_default();
    assert!(text.contains("already used"), "{text}");
    // The same hmac written otherwise (lower-case escapes, the pair moved) is the same launch.
    let (base, query) = url.split_once('?').unwrap_or_default();
    let (rest, hmac) = query.rsplit_once("&hmac=").unwrap_or_default();
    let moved = format!("{base}?hmac={hmac}&{rest}");
    let lower_hmac = hmac
        .replace("%3D", "%3d")
        .replace("%2B", "%2b")
        .replace("%2F", "%2f");
    let lower = format!("{base}?{rest}&hmac={lower_hmac}");
    for replay in [moved, lower] {
        let resp = app.get(&replay).await;
        assert_eq!(resp.status(), 403, "{replay}");
    }
    // A new launch (another second) works.
    assert_eq!(app.get(&launch_as(&app, MALL, "P")).await.status(), 302);
}

// ---- 18.2: who launched decides ----

async fn a_sub_operator_reads_and_a_supplier_gets_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let _owner = installed(&app, MALL).await;
    let key_before = merchant_row(&app, MALL).map(|m| m.komoju_secret_key);

    // A sub-operator: the pages, without a form.
    let launch = app.get(&launch_as(&app, MALL, "A")).await;
    assert_eq!(launch.status(), 302);
    let cookie =
        set_cookie(&launch, "cafe24_komoju_session").unwrap_or_else(|| panic!("no session"));
    let mut sub = Browser {
        app: &app,
        mall: MALL.into(),
        session: cookie.clone(),
        pages: Vec::new(),
    };
    let (status, page) = sub.page().await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"read-only\""), "says it is read-only");
    assert!(page.contains("guardmall shop"), "sees the shops");
    assert!(!page.contains("<form"), "no form at all");
    assert!(!page.contains("name=\"csrf\""));
    // Even with the session's CSRF token every form is refused, and nothing changes.
    let csrf = csrf_for(&app, &cookie);
    let forms: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "/komoju",
            vec![
                ("secret_key", "sk_test_attacker_0123456789"),
                ("webhook_secret", "whsec_attacker_1"),
                ("cancel_mode", "sync"),
                ("locale", "en"),
            ],
        ),
        ("/shops/1/gateway", vec![("on", "1")]),
        ("/shops/1/script", vec![("on", "1")]),
        ("/webhook-test", vec![]),
        ("/disconnect", vec![]),
    ];
    for (path, fields) in forms {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let (status, body) = sub
            .post_raw(&format!("/settings/{MALL}{path}"), &cookie, &form)
            .await;
        assert_eq!(status, 403, "{path}");
        assert!(body.contains("representative operator"), "{path}: {body}");
    }
    assert_eq!(
        merchant_row(&app, MALL).map(|m| m.komoju_secret_key),
        key_before
    );
    assert!(merchant_row(&app, MALL).is_some_and(|m| m.enabled));
    assert!(token_row(&app, MALL).is_some());
    assert!(app.cafe24.payment_gateways(MALL).is_empty());

    // A supplier: no session, a page that says why.
    let supplier = app.get(&launch_as(&app, MALL, "S")).await;
    assert_eq!(supplier.status(), 403);
    assert!(set_cookie(&supplier, "cafe24_komoju_session").is_none());
    assert!(supplier
        .text()
        .await
        .unwrap_or_default()
        .contains("suppliers"));

    // A sub-operator cannot connect a mall that is not connected.
    let other = app.get(&launch_as(&app, "unconnected", "A")).await;
    assert_eq!(other.status(), 403);
    assert!(set_cookie(&other, "cafe24_komoju_oauth").is_none());
    assert!(other
        .text()
        .await
        .unwrap_or_default()
        .contains("representative operator"));
}

// ---- 18.3: a disconnect ends every session ----

async fn a_disconnect_ends_every_session_of_the_mall(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut owner = installed(&app, MALL).await;
    // A second session of the mall (another tab, another instance, a stolen cookie).
    let launch = app.get(&launch_as(&app, MALL, "P")).await;
    let other =
        set_cookie(&launch, "cafe24_komoju_session").unwrap_or_else(|| panic!("no session"));
    let other_csrf = csrf_for(&app, &other);
    let old = owner.session.clone();
    let old_csrf = csrf_for(&app, &old);
    let (status, page) = owner.post("/disconnect", &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(merchant_row(&app, MALL).is_some_and(|m| !m.enabled));
    let key_after_disconnect = merchant_row(&app, MALL).map(|m| m.komoju_secret_key);

    for (cookie, csrf) in [(&other, &other_csrf), (&old, &old_csrf)] {
        let save = [
            ("csrf", csrf.as_str()),
            ("secret_key", "sk_test_after_disconnect_0123"),
            ("webhook_secret", "whsec_after_disconnect"),
            ("cancel_mode", "sync"),
            ("locale", "en"),
        ];
        let (status, _) = owner
            .post_raw(&format!("/settings/{MALL}/komoju"), cookie, &save)
            .await;
        assert_eq!(status, 401, "an ended session saves nothing");
        let gateway = [("csrf", csrf.as_str()), ("on", "1")];
        let (status, _) = owner
            .post_raw(
                &format!("/settings/{MALL}/shops/1/gateway"),
                cookie,
                &gateway,
            )
            .await;
        assert_eq!(status, 401);
        owner.session = cookie.clone();
        assert_eq!(owner.page().await.0, 401, "nor reads");
    }
    assert!(
        merchant_row(&app, MALL).is_some_and(|m| !m.enabled),
        "still disabled"
    );
    assert_eq!(
        merchant_row(&app, MALL).map(|m| m.komoju_secret_key),
        key_after_disconnect
    );

    // Only a new install enables it again.
    let mut again = Browser::install(&app, MALL, "en_US").await;
    assert!(
        merchant_row(&app, MALL).is_some_and(|m| m.enabled),
        "keys kept: enabled"
    );
    assert_eq!(again.page().await.0, 200);
}

async fn a_confirmed_app_deleted_event_ends_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = installed(&app, MALL).await;
    let csrf = csrf_for(&app, &browser.session);
    app.cafe24.uninstall(MALL);
    app.cafe24
        .set_app_webhook(&format!("{}/cafe24/webhooks", app.address), WEBHOOK_API_KEY);
    assert_eq!(
        app.cafe24.send_app_event(MALL, AppEvent::Deleted).await,
        Ok(200)
    );
    assert!(merchant_row(&app, MALL).is_some_and(|m| !m.enabled));
    let session = browser.session.clone();
    let save = [
        ("csrf", csrf.as_str()),
        ("secret_key", KEY),
        ("cancel_mode", "sync"),
        ("locale", "en"),
    ];
    let (status, _) = browser
        .post_raw(&format!("/settings/{MALL}/komoju"), &session, &save)
        .await;
    assert_eq!(status, 401);
    assert_eq!(browser.page().await.0, 401);
    assert!(merchant_row(&app, MALL).is_some_and(|m| !m.enabled));
}

// ---- 18.8: one confirmation call a minute ----

async fn a_hundred_events_make_one_confirmation_call(backend: Backend) {
    // All hundred admitted at once (MAX_IN_FLIGHT's refusals are tests/api/overload.rs's).
    let app = spawn_app_with(backend, &[("MAX_IN_FLIGHT", "200")]).await;
    let _browser = installed(&app, MALL).await;
    let before = shops_calls(&app, MALL);
    let event = deleted(MALL);
    let sends = (0..100).map(|_| post_event(&app, Some(WEBHOOK_API_KEY), &event));
    let answers = futures_util::future::join_all(sends).await;
    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["outcome"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    outcomes.sort();
    outcomes.dedup();
    assert_eq!(outcomes, vec!["deferred", "not_confirmed"]);
    assert_eq!(
        shops_calls(&app, MALL) - before,
        1,
        "one Admin API call for 100 events"
    );
    assert!(merchant_row(&app, MALL).is_some_and(|m| m.enabled));

    // A minute later the waiting events get their one confirmation (here the app is
    // gone by then): made by whichever pass claims it first.
    app.cafe24.uninstall(MALL);
    app.clock.advance(Duration::from_secs(61));
    let _ = cafe24_komoju::install::lifecycle::sweep(&app.state).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while token_row(&app, MALL).is_some() {
        assert!(std::time::Instant::now() < deadline, "never confirmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        shops_calls(&app, MALL) - before,
        2,
        "one more, a minute later"
    );
    assert!(merchant_row(&app, MALL).is_some_and(|m| !m.enabled));
}

crate::both_backends!(
    a_wrong_client_secret_disconnects_no_mall,
    a_403_for_a_missing_scope_disconnects_nothing_and_names_the_scope,
    a_client_cafe24_has_not_approved_is_told_so_and_disconnects_nothing,
    lifecycle_webhooks_need_the_api_key,
    without_a_webhook_key_development_accepts_events_and_warns,
    token_times_are_korean_time,
    failed_admin_calls_are_logged_with_the_trace_id_and_code,
    a_launch_window_over_two_hours_stops_the_service_naming_the_variable,
    a_launch_url_opens_one_session,
    a_sub_operator_reads_and_a_supplier_gets_nothing,
    a_disconnect_ends_every_session_of_the_mall,
    a_confirmed_app_deleted_event_ends_every_session,
    a_hundred_events_make_one_confirmation_call,
);
