//! Synchronous checkout end to end (PROTOCOL.md §6.1), replaying the Cafe24 sample
//! app's values: partner_id `demomall:1:…`, order `20220519-0000029`, `3065.00` PHP.

use std::time::Duration;

use cafe24_komoju_sandbox::Fault;

use crate::both_backends;
use crate::helpers::*;

const ORDER: &str = "20220519-0000029";

type Fields = Vec<(String, String)>;

both_backends!(
    card_payment_goes_all_the_way_to_status,
    json_body_is_accepted_like_form,
    return_to_merchant_is_9999_and_cancelled,
    sync_never_offers_deferred_types_and_awaits_a_konbini_payment,
    bad_input_changes_nothing_and_calls_nobody,
    same_order_with_another_amount_conflicts,
    concurrent_identical_checkouts_create_one_session,
    forged_expired_or_foreign_keys_never_pay,
    komoju_500_then_retry_succeeds_without_a_second_session,
    komoju_timeout_then_retry_reuses_the_session,
    komoju_wrong_amount_in_reply_is_upstream_error_then_retry_succeeds,
    captured_amount_mismatch_is_never_paid,
    cancelled_order_can_be_checked_out_again,
    status_reads_komoju_when_the_buyer_never_came_back,
);

async fn card_payment_goes_all_the_way_to_status(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut fields = checkout_fields(ORDER, "3065.00", "PHP");
    set(
        &mut fields,
        "extra_data",
        r#"{"pgName":"komoju","LogKey":"abc"}"#,
    );
    let payment_url = app.sync_checkout_ok(&fields).await;
    assert!(payment_url.contains("/sessions/"), "{payment_url}");

    // KOMOJU was asked for minor units, with an idempotency key.
    let posts = app.komoju_posts();
    assert_eq!(posts.len(), 1);
    assert!(posts[0]
        .idempotency_key
        .as_deref()
        .is_some_and(|k| !k.is_empty()));
    let session_id = payment_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let session = app.sandbox.session_json(&session_id).unwrap_or_default();
    assert_eq!(session["amount"], 306500);
    assert_eq!(session["currency"], "PHP");

    // The buyer pays by card; KOMOJU sends the browser to our callback.
    let callback = app.press(&payment_url, "credit_card").await;
    assert!(callback.starts_with(&app.address), "{callback}");
    assert!(callback.contains(&format!("session_id={session_id}")));
    let resp = app.get(&callback).await;
    assert_eq!(resp.status(), 302);
    let to = location(&resp);
    assert!(to.starts_with(RETURN_URL), "{to}");
    let q = query_of(&to);
    assert_eq!(q["result_code"], "0000");
    assert_eq!(q["extra_data"], r#"{"pgName":"komoju","LogKey":"abc"}"#);
    let key = q["key"].clone();

    // Cafe24 reads the payment details.
    let (code, body) = app.status(&key).await;
    assert_eq!(code, 200);
    assert_eq!(body["result_code"], "0000");
    assert_eq!(body["payed_tf"], "T");
    assert_eq!(body["amount"], "3065.00");
    assert_eq!(body["currency"], "PHP");
    assert_eq!(body["order_id"], ORDER);
    assert_eq!(body["partner_id"], "demomall:1:demo-public");
    assert_eq!(body["paymethod"], "card");
    assert_eq!(body["cancel_mode"], "sync");
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    let tid = order.komoju_payment_id.clone().unwrap_or_default();
    assert!(!tid.is_empty());
    assert_eq!(body["tid"], tid.as_str());
    let expected = cafe24_hash(&["3065.00", "PHP", ORDER, "demomall:1:demo-public", &tid]);
    assert_eq!(body["hash_data"], expected.as_str());
    assert_eq!(order.state.as_str(), "paid");
    assert_eq!(order.amount, 306500);
    assert_eq!(order.amount_text, "3065.00");

    // The callback again (browser reload) changes nothing and still says paid.
    let again = app.get(&callback).await;
    assert_eq!(query_of(&location(&again))["result_code"], "0000");
    assert_eq!(app.sandbox.sessions_created(), 1);
}

async fn json_body_is_accepted_like_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let fields = checkout_fields("20220519-0000031", "3065.00", "PHP");
    let mut obj = serde_json::Map::new();
    for (k, v) in &fields {
        obj.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    let resp = app
        .client
        .post(format!("{}/api/synchronous-checkout/checkout", app.address))
        .json(&obj)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["result_code"], "0000");
    assert!(body["payment_url"]
        .as_str()
        .is_some_and(|u| u.contains("/sessions/")));
}

async fn return_to_merchant_is_9999_and_cancelled(backend: Backend) {
    let app = spawn_app(backend).await;
    let payment_url = app
        .sync_checkout_ok(&checkout_fields(ORDER, "3065.00", "PHP"))
        .await;
    let callback = app.press(&payment_url, "return").await;
    let resp = app.get(&callback).await;
    assert_eq!(resp.status(), 302);
    let q = query_of(&location(&resp));
    assert_eq!(q["result_code"], "9999");
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("cancelled".into())
    );
    let (code, body) = app.status(&q["key"]).await;
    assert_eq!(code, 200);
    assert_eq!(body["payed_tf"], "F");
    assert_eq!(body["result_code"], "1400");
    assert_eq!(body["amount"], "0");
    let expected = cafe24_hash(&["0", "PHP", ORDER, "demomall:1:demo-public", ""]);
    assert_eq!(body["hash_data"], expected.as_str());
}

async fn sync_never_offers_deferred_types_and_awaits_a_konbini_payment(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_merchant(&MerchantAdd::demo().flag(
        "--payment-types",
        "credit_card,konbini,bank_transfer,pay_easy,paypay",
    ))
    .await;
    let payment_url = app
        .sync_checkout_ok(&checkout_fields(ORDER, "3065", "JPY"))
        .await;
    let session_id = payment_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let session = app.sandbox.session_json(&session_id).unwrap_or_default();
    let offered: Vec<String> = session["payment_methods"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["type"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(offered, vec!["credit_card", "paypay"]);

    // A KOMOJU that still lets the buyer pick konbini: payment authorized, money not in.
    let callback = app.press(&payment_url, "konbini").await;
    let resp = app.get(&callback).await;
    let q = query_of(&location(&resp));
    assert_eq!(q["result_code"], "9999");
    assert!(
        q["result_message"].contains("awaited"),
        "{}",
        q["result_message"]
    );
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("awaiting_payment".into())
    );
    let (_, body) = app.status(&q["key"]).await;
    assert_eq!(body["result_code"], "1400");
    assert_eq!(body["payed_tf"], "F");
}

async fn bad_input_changes_nothing_and_calls_nobody(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_merchant(
        &MerchantAdd::mall("othermall")
            .secret_key("sk_test_othermall_0123456")
            .webhook_secret("whsec_othermall_01234"),
    )
    .await;
    app.cli(&[
        "merchant",
        "disable",
        "--mall-id",
        "othermall",
        "--shop-no",
        "1",
    ])
    .await;
    app.add_merchant(
        &MerchantAdd::mall("offmall")
            .secret_key("sk_test_offmall_01234567")
            .webhook_secret("whsec_offmall_0123456"),
    )
    .await;
    app.cli(&["merchant", "disable", "--mall-id", "offmall"])
        .await;

    let base = checkout_fields(ORDER, "3065.00", "PHP");
    let signed = |amount: &str, currency: &str, partner: &str| {
        let mut f = base.clone();
        set(&mut f, "amount", amount);
        set(&mut f, "currency", currency);
        set(&mut f, "partner_id", partner);
        remove(&mut f, "shop_no");
        set(
            &mut f,
            "hash_data",
            &cafe24_hash(&[amount, currency, ORDER, partner]),
        );
        f
    };
    let mut cases: Vec<(&str, Fields, u16, &str)> = Vec::new();
    let mut missing = base.clone();
    remove(&mut missing, "return_url");
    cases.push(("missing return_url", missing, 400, "invalid_request"));
    let mut no_hash = base.clone();
    remove(&mut no_hash, "hash_data");
    cases.push(("missing hash_data", no_hash, 401, "invalid_hash"));
    let mut wrong_hash = base.clone();
    set(
        &mut wrong_hash,
        "hash_data",
        &cafe24_hash(&["3065.00", "PHP", ORDER, "demomall:1:other"]),
    );
    cases.push(("wrong hash_data", wrong_hash, 401, "invalid_hash"));
    let mut tampered = base.clone();
    set(&mut tampered, "amount", "1.00");
    cases.push(("tampered amount", tampered, 401, "invalid_hash"));
    let mut reformatted = base.clone();
    set(&mut reformatted, "amount", "3065.0");
    cases.push(("re-formatted amount", reformatted, 401, "invalid_hash"));
    cases.push((
        "unknown mall",
        signed("3065.00", "PHP", "nomall:1:demo-public"),
        404,
        "unknown_merchant",
    ));
    cases.push((
        "unknown shop",
        signed("3065.00", "PHP", "demomall:2:demo-public"),
        404,
        "unknown_merchant",
    ));
    cases.push((
        "disabled shop",
        signed("3065.00", "PHP", "othermall:1:p"),
        404,
        "unknown_merchant",
    ));
    cases.push((
        "disabled mall",
        signed("3065.00", "PHP", "offmall:1:p"),
        403,
        "merchant_disabled",
    ));
    let mut shop_mismatch = base.clone();
    set(&mut shop_mismatch, "shop_no", "2");
    cases.push((
        "shop_no not partner_id's",
        shop_mismatch,
        400,
        "invalid_request",
    ));
    cases.push((
        "3065.5 JPY",
        signed("3065.5", "JPY", "demomall:1:demo-public"),
        400,
        "invalid_amount",
    ));
    cases.push((
        "zero",
        signed("0", "JPY", "demomall:1:demo-public"),
        400,
        "invalid_amount",
    ));
    cases.push((
        "zero with decimals",
        signed("0.00", "PHP", "demomall:1:demo-public"),
        400,
        "invalid_amount",
    ));
    cases.push((
        "negative",
        signed("-3065.00", "PHP", "demomall:1:demo-public"),
        400,
        "invalid_amount",
    ));
    cases.push((
        "overflow",
        signed("99999999999999999999", "JPY", "demomall:1:demo-public"),
        400,
        "invalid_amount",
    ));
    cases.push((
        "unknown currency",
        signed("3065.00", "XYZ", "demomall:1:demo-public"),
        400,
        "unsupported_currency",
    ));
    cases.push((
        "malformed partner_id",
        signed("3065.00", "PHP", "demomall"),
        400,
        "invalid_request",
    ));
    for (label, url) in [
        ("evil suffix", "https://x.cafe24.com.evil.example/"),
        ("plain http", "http://demomall.cafe24shop.com/r"),
        ("other host", "https://evil.example/cafe24.com"),
        ("userinfo", "https://demomall.cafe24.com@evil.example/"),
        ("ip host", "https://10.0.0.1/"),
    ] {
        let mut f = base.clone();
        set(&mut f, "return_url", url);
        cases.push((label, f, 400, "url_not_allowed"));
    }
    for (label, fields, status, error) in cases {
        let resp = app.sync_checkout(&fields).await;
        assert_eq!(resp.status().as_u16(), status, "{label}");
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(body["result_code"], "9999", "{label}");
        assert_eq!(body["error"], error, "{label}: {body}");
        assert!(
            body["result_message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{label}"
        );
    }

    // Not form, not JSON.
    let resp = app
        .client
        .post(format!("{}/api/synchronous-checkout/checkout", app.address))
        .header("Content-Type", "text/plain")
        .body("partner_id=demomall:1:demo-public")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["error"], "invalid_request");
    let resp = app
        .client
        .post(format!("{}/api/synchronous-checkout/checkout", app.address))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 400);

    // Over the size limit (64 KiB by default).
    let mut big = base.clone();
    set(&mut big, "padding", &"x".repeat(70 * 1024));
    let resp = app.sync_checkout(&big).await;
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["result_code"], "9999");

    assert_eq!(app.order_count().await, 0, "bad input wrote an order");
    assert!(app.sandbox.requests().is_empty(), "bad input called KOMOJU");
}

async fn same_order_with_another_amount_conflicts(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = app
        .sync_checkout_ok(&checkout_fields(ORDER, "3065.00", "PHP"))
        .await;
    let resp = app
        .sync_checkout(&checkout_fields(ORDER, "3066.00", "PHP"))
        .await;
    assert_eq!(resp.status(), 409);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["error"], "order_conflict");
    let resp = app
        .sync_checkout(&checkout_fields(ORDER, "3065.00", "USD"))
        .await;
    assert_eq!(resp.status(), 409);
    // The first request, repeated, still gets its session.
    assert_eq!(
        app.sync_checkout_ok(&checkout_fields(ORDER, "3065.00", "PHP"))
            .await,
        url
    );
    assert_eq!(app.sandbox.sessions_created(), 1);
    assert_eq!(app.order(ORDER).await.map(|o| o.amount), Some(306500));
}

async fn concurrent_identical_checkouts_create_one_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let fields = checkout_fields(ORDER, "3065.00", "PHP");
    let replies = futures_util::future::join_all((0..20).map(|_| app.sync_checkout(&fields))).await;
    let mut urls = Vec::new();
    for r in replies {
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        urls.push(body["payment_url"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        urls.iter().all(|u| u == &urls[0] && !u.is_empty()),
        "{urls:?}"
    );
    assert_eq!(app.sandbox.sessions_created(), 1);
    let keys: std::collections::HashSet<_> = app
        .komoju_posts()
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "every POST used the one stored idempotency key"
    );
    assert_eq!(app.order_count().await, 1);
}

async fn forged_expired_or_foreign_keys_never_pay(backend: Backend) {
    let app = spawn_app(backend).await;
    let url_a = app
        .sync_checkout_ok(&checkout_fields(ORDER, "3065.00", "PHP"))
        .await;
    let url_b = app
        .sync_checkout_ok(&checkout_fields("20220519-0000030", "100.00", "PHP"))
        .await;
    let callback_a = app.press(&url_a, "credit_card").await;
    let callback_b = app.press(&url_b, "credit_card").await;
    let q_a = query_of(&callback_a);
    let session_b = query_of(&callback_b)["session_id"].clone();
    let callback_path = format!("{}/api/synchronous-checkout/checkout/callback", app.address);

    // A forged key (tampered payload) and a garbage key: refused, nothing changes.
    let parts: Vec<&str> = q_a["key"].split('.').collect();
    let forged = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
    for key in [forged.as_str(), "garbage"] {
        let resp = app
            .client
            .get(&callback_path)
            .query(&[("key", key), ("session_id", &q_a["session_id"])])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status(), 400);
    }
    // Order A's key with order B's (paid) session: failure redirect, A stays pending.
    let resp = app
        .client
        .get(&callback_path)
        .query(&[("key", q_a["key"].as_str()), ("session_id", &session_b)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 302);
    assert_eq!(query_of(&location(&resp))["result_code"], "9999");
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("pending".into())
    );

    // An expired key: refused even with the right session.
    app.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let resp = app.get(&callback_a).await;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert!(body["result_message"]
        .as_str()
        .unwrap_or_default()
        .contains("expired"));
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("pending".into())
    );
}

async fn komoju_500_then_retry_succeeds_without_a_second_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let fields = checkout_fields(ORDER, "3065.00", "PHP");
    app.prime_payment_methods().await;
    app.sandbox.fail_next(1, Fault::InternalError);
    let resp = app.sync_checkout(&fields).await;
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["error"], "upstream_error");
    assert!(
        !body.to_string().contains("internal_server_error"),
        "upstream detail leaked: {body}"
    );
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("pending".into())
    );
    let url = app.sync_checkout_ok(&fields).await;
    assert!(!url.is_empty());
    assert_eq!(app.sandbox.sessions_created(), 1);
    let posts = app.komoju_posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].idempotency_key, posts[1].idempotency_key);
}

async fn komoju_timeout_then_retry_reuses_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let fields = checkout_fields(ORDER, "3065.00", "PHP");
    // KOMOJU creates the session but answers after our 2 s timeout.
    app.prime_payment_methods().await;
    app.sandbox
        .fail_next(1, Fault::DelayAfterProcessing(Duration::from_secs(4)));
    let resp = app.sync_checkout(&fields).await;
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["error"], "upstream_error");
    assert_eq!(app.sandbox.sessions_created(), 1);
    let url = app.sync_checkout_ok(&fields).await;
    assert_eq!(
        app.sandbox.sessions_created(),
        1,
        "the retry created a second session"
    );
    let session_id = url.rsplit('/').next().unwrap_or_default();
    assert!(app.sandbox.session_json(session_id).is_some());
}

async fn komoju_wrong_amount_in_reply_is_upstream_error_then_retry_succeeds(backend: Backend) {
    let app = spawn_app(backend).await;
    let fields = checkout_fields(ORDER, "3065.00", "PHP");
    app.prime_payment_methods().await;
    app.sandbox.fail_next(1, Fault::WrongAmountInReply);
    let resp = app.sync_checkout(&fields).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(
        app.order(ORDER).await.and_then(|o| o.komoju_session_id),
        None
    );
    let url = app.sync_checkout_ok(&fields).await;
    assert!(!url.is_empty());
    assert_eq!(app.sandbox.sessions_created(), 1);
}

async fn captured_amount_mismatch_is_never_paid(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = app
        .sync_checkout_ok(&checkout_fields(ORDER, "3065.00", "PHP"))
        .await;
    app.sandbox.set_capture_amount_delta(-100);
    let callback = app.press(&url, "credit_card").await;
    let resp = app.get(&callback).await;
    let q = query_of(&location(&resp));
    assert_eq!(q["result_code"], "9999");
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.as_str(), "amount_mismatch");
    let (_, body) = app.status(&q["key"]).await;
    assert_eq!(body["payed_tf"], "F");
    assert_eq!(body["result_code"], "1400");
}

async fn cancelled_order_can_be_checked_out_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let fields = checkout_fields(ORDER, "3065.00", "PHP");
    let first = app.sync_checkout_ok(&fields).await;
    let old_callback = app.press(&first, "return").await;
    app.get(&old_callback).await;
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("cancelled".into())
    );
    // The buyer tries again: a new session (new attempt, new external_order_num).
    let second = app.sync_checkout_ok(&fields).await;
    assert_ne!(first, second);
    assert_eq!(app.sandbox.sessions_created(), 2);
    let order = app.order(ORDER).await.unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.state.as_str(), "pending");
    assert_eq!(order.attempt, 2);
    // The old attempt's callback no longer moves the order.
    let resp = app.get(&old_callback).await;
    assert_eq!(query_of(&location(&resp))["result_code"], "9999");
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("pending".into())
    );
    let callback = app.press(&second, "credit_card").await;
    let resp = app.get(&callback).await;
    assert_eq!(query_of(&location(&resp))["result_code"], "0000");
}

async fn status_reads_komoju_when_the_buyer_never_came_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = app
        .sync_checkout_ok(&checkout_fields(ORDER, "3065.00", "PHP"))
        .await;
    // The buyer pays but closes the browser before KOMOJU's redirect is followed.
    let callback = app.press(&url, "credit_card").await;
    let key = query_of(&callback)["key"].clone();
    let (code, body) = app.status(&key).await;
    assert_eq!(code, 200);
    assert_eq!(body["payed_tf"], "T");
    assert_eq!(
        app.order(ORDER).await.map(|o| o.state.to_string()),
        Some("paid".into())
    );
}
