//! External checkout over HTTP (PROTOCOL.md §6.3): script, data, HMAC, payload, review,
//! callback. The button itself runs in a real browser in `tests/browser`.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Digest;

use crate::both_backends;
use crate::helpers::*;

const CLIENT_ID: &str = "test-client-id";
const WAIT: Duration = Duration::from_secs(5);

both_backends!(
    script_is_stable_cached_and_matches_its_integrity,
    data_describes_the_shop_or_refuses,
    hmac_endpoint_is_not_an_oracle,
    payload_creates_the_order_exactly_or_refuses,
    paid_button_order_returns_to_the_mall_and_notifies_cafe24,
    review_page_escapes_and_protects_its_form,
    reservation_signed_as_the_cafe24_sample_checks_it_is_accepted,
    the_buttons_texts_speak_the_pages_language,
);

/// Cafe24's reservation HMAC as the sample app checks it, computed here independently:
/// key client_id·order_id, message PHP
/// `json_encode((int)total·order_id·response_time·url, JSON_UNESCAPED_UNICODE |
/// JSON_UNESCAPED_SLASHES)`: quoted, `"` and `\` escaped, `/` and non-ASCII as they are
/// (these test strings hold no control character).
pub(crate) fn reservation_hmac(
    order_id: &str,
    total_major: &str,
    response_time: &str,
    url: &str,
) -> String {
    let message = format!("{total_major}{order_id}{response_time}{url}");
    let encoded = format!("\"{}\"", message.replace('\\', "\\\\").replace('"', "\\\""));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(format!("{CLIENT_ID}{order_id}").as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(encoded.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub(crate) async fn register_shop(app: &TestApp, review: bool, currency: &str) {
    app.add_merchant(
        &MerchantAdd::demo()
            .flag("--shop-name", "Demo <Mall>")
            .flag("--currency", currency)
            .flag("--review-page", if review { "on" } else { "off" }),
    )
    .await;
}

pub(crate) fn payload(
    order_id: &str,
    lines: serde_json::Value,
    total_major: &str,
    notify: &str,
    base: &str,
    currency: &str,
) -> serde_json::Value {
    let response_time = chrono::Utc::now().timestamp().to_string();
    let response_time = response_time.as_str();
    serde_json::json!({
        "mall_id": MALL, "shop_no": 1, "member_id": "", "is_guest": true, "currency": currency,
        "order_id": order_id, "return_notification_url": notify, "return_url_base": base,
        "response_time": response_time, "hmac": reservation_hmac(order_id, total_major, response_time, notify),
        "order": lines,
    })
}

impl TestApp {
    pub(crate) async fn ext_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/api/external-checkout{path}", self.address))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) async fn ext_payload(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(format!("{}/api/external-checkout/payload", self.address))
            .header("Origin", "https://demomall.cafe24.com")
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }
}

async fn script_is_stable_cached_and_matches_its_integrity(backend: Backend) {
    let public = [("PUBLIC_BASE_URL", "https://pg.example.com")];
    let a = spawn_app_with(backend.clone(), &public).await;
    let b = spawn_app_with(backend, &public).await;
    let ra = a.ext_get("/script").await;
    assert_eq!(ra.status(), 200);
    assert!(ra.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("application/javascript"));
    assert_eq!(ra.headers()["access-control-allow-origin"], "*");
    assert!(ra.headers()["cache-control"]
        .to_str()
        .unwrap_or("")
        .contains("max-age=604800"));
    let bytes_a = ra.bytes().await.unwrap_or_default();
    let bytes_b = b.ext_get("/script").await.bytes().await.unwrap_or_default();
    assert_eq!(
        bytes_a, bytes_b,
        "two instances of one release serve different loaders"
    );
    assert!(String::from_utf8_lossy(&bytes_a)
        .contains("https://pg.example.com/api/external-checkout/script/app.js"));
    let expected = format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&bytes_a))
    );
    assert_eq!(a.cli(&["script-integrity"]).await.trim(), expected);
    let app_js = a.ext_get("/script/app.js").await;
    assert_eq!(app_js.status(), 200);
    let text = app_js.text().await.unwrap_or_default();
    assert!(text.contains("https://pg.example.com") && !text.contains("__CAFE24_KOMOJU_BASE__"));
}

async fn data_describes_the_shop_or_refuses(backend: Backend) {
    let app = spawn_app(backend).await;
    register_shop(&app, false, "JPY").await;
    let r = app.ext_get("/script/data?mall_id=demomall&shop_no=1").await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(body["shop_name"], "Demo <Mall>");
    assert_eq!(body["currency"], "JPY");
    assert_eq!(body["public_ref"], "demo-public");
    assert_eq!(body["client_id"], CLIENT_ID);
    assert_eq!(
        body["payment_types"],
        serde_json::json!(["credit_card", "konbini"])
    );
    for (query, status, error) in [
        ("?mall_id=nomall&shop_no=1", 404, "unknown_merchant"),
        ("?mall_id=demomall&shop_no=2", 404, "unknown_merchant"),
        ("?mall_id=demomall", 400, "invalid_request"),
    ] {
        let r = app.ext_get(&format!("/script/data{query}")).await;
        assert_eq!(r.status().as_u16(), status, "{query}");
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        assert_eq!(body["error"], error, "{query}");
        assert_eq!(body["result_code"], "9999");
    }
    app.cli(&["merchant", "disable", "--mall-id", MALL, "--shop-no", "1"])
        .await;
    assert_eq!(
        app.ext_get("/script/data?mall_id=demomall&shop_no=1")
            .await
            .status(),
        404
    );
}

async fn hmac_endpoint_is_not_an_oracle(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = app.clock.unix_seconds().to_string();
    let r = app
        .ext_get(&format!(
            "/script/hmac?mall_id=demomall&request_time={now}&member_id=buyer01"
        ))
        .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(
        body["hmac"],
        cafe24_hash(&["demomall", &now, CLIENT_ID, "buyer01"]).as_str()
    );
    let stale = (app.clock.unix_seconds() - 6 * 60).to_string();
    let future = (app.clock.unix_seconds() + 6 * 60).to_string();
    for (query, status) in [
        (
            format!("?mall_id=nomall&request_time={now}&member_id=x"),
            404,
        ),
        (
            format!("?mall_id=demomall&request_time={stale}&member_id=x"),
            400,
        ),
        (
            format!("?mall_id=demomall&request_time={future}&member_id=x"),
            400,
        ),
        (
            "?mall_id=demomall&request_time=soon&member_id=x".to_owned(),
            400,
        ),
        (
            format!("?mall_id=demomall&request_time={now}&member_id=x&client_key=another-app"),
            400,
        ),
    ] {
        assert_eq!(
            app.ext_get(&format!("/script/hmac{query}"))
                .await
                .status()
                .as_u16(),
            status,
            "{query}"
        );
    }
    // The caller's client_key is never what is signed.
    let r = app.ext_get(&format!("/script/hmac?mall_id=demomall&request_time={now}&member_id=buyer01&client_key={CLIENT_ID}")).await;
    assert_eq!(r.status(), 200);
    // A burst from one address for one mall is cut off.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(
            app.ext_get(&format!(
                "/script/hmac?mall_id=demomall&request_time={now}&member_id=b"
            ))
            .await
            .status()
            .as_u16(),
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = app
        .ext_get(&format!(
            "/script/hmac?mall_id=demomall&request_time={now}&member_id=b"
        ))
        .await;
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(body["error"], "rate_limited");
}

async fn payload_creates_the_order_exactly_or_refuses(backend: Backend) {
    let app = spawn_app(backend).await;
    register_shop(&app, false, "PHP").await;
    let notify = "https://demomall.cafe24.com/Pay/Recv/noty";
    let base = "https://demomall.cafe24.com";
    let lines = serde_json::json!([
        {"product_no": 11, "product_name": "Shirt", "quantity": 2, "product_price": "1200.50", "option_price": "99.99"},
        {"product_no": 12, "product_name": "Socks", "quantity": "1", "product_price": "0.01", "option_price": "0.00"}
    ]);
    // 2 × 1300.49 + 0.01 = 2600.99; the sample's HMAC uses (int) 2600.
    let mut body = payload("EXT-0001", lines.clone(), "2600", notify, base, "PHP");
    let posts_before = app.komoju_posts().len();
    let mut bad_hmac = body.clone();
    bad_hmac["hmac"] = serde_json::json!(reservation_hmac(
        "EXT-0001",
        "2601",
        "2026-11-21 12:00:00",
        notify
    ));
    assert_eq!(app.ext_payload(&bad_hmac).await.0, 401);
    let mut bad_total = body.clone();
    bad_total["total"] = serde_json::json!("2601.00");
    let (status, err) = app.ext_payload(&bad_total).await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["result_message"]
            .as_str()
            .unwrap_or_default()
            .contains("total"),
        "{err}"
    );
    let evil = payload(
        "EXT-0001",
        lines.clone(),
        "2600",
        "https://demomall.cafe24.com.evil.example/n",
        base,
        "PHP",
    );
    let (status, err) = app.ext_payload(&evil).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("url_not_allowed"))
    );
    let evil_base = payload(
        "EXT-0001",
        lines.clone(),
        "2600",
        notify,
        "https://evil.example",
        "PHP",
    );
    assert_eq!(app.ext_payload(&evil_base).await.0, 400);
    let wrong_currency = payload("EXT-0001", lines.clone(), "2600", notify, base, "JPY");
    assert_eq!(app.ext_payload(&wrong_currency).await.0, 400);
    assert_eq!(
        app.komoju_posts().len(),
        posts_before,
        "a refused reservation called KOMOJU"
    );
    assert_eq!(app.order_count().await, 0);

    body["total"] = serde_json::json!("2600.99");
    let (status, reply) = app.ext_payload(&body).await;
    assert_eq!(status, 200, "{reply}");
    let url = reply["session_url"].as_str().unwrap_or_default();
    assert!(url.contains("/sessions/"));
    assert!(reply["review_url"].is_null());
    let order = app
        .state
        .db
        .run(|c| cafe24_komoju::db::orders::find_by_order_id(c, MALL, "EXT-0001"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.amount, 260099, "exact total in minor units");
    assert_eq!(order.amount_text, "2600.99");
    assert_eq!(order.flow.as_str(), "external");
    let session_id = url.rsplit('/').next().unwrap_or_default();
    assert_eq!(
        app.sandbox.session_json(session_id).unwrap_or_default()["amount"],
        260099
    );
    // The same reservation again: the same session.
    assert_eq!(
        app.ext_payload(&body).await.1["session_url"],
        reply["session_url"]
    );
}

async fn paid_button_order_returns_to_the_mall_and_notifies_cafe24(backend: Backend) {
    let app = spawn_app(backend).await;
    register_shop(&app, false, "JPY").await;
    let cafe24 = Receiver::spawn(app.clock.clone());
    let mall = Receiver::spawn(app.clock.clone());
    let lines = serde_json::json!([{"product_no": 1, "product_name": "Tea", "quantity": 3, "product_price": "1000", "option_price": "0"}]);
    let body = payload(
        "EXT-0002",
        lines.clone(),
        "3000",
        &cafe24.url("/noty"),
        &format!("{}/shop2", mall.base),
        "JPY",
    );
    let (status, reply) = app.ext_payload(&body).await;
    assert_eq!(status, 200, "{reply}");
    let callback = app
        .press(
            reply["session_url"].as_str().unwrap_or_default(),
            "credit_card",
        )
        .await;
    assert!(
        callback.contains("/api/external-checkout/order/callback"),
        "{callback}"
    );
    let resp = app.get(&callback).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(
        location(&resp),
        format!("{}/shop2/api/shop/pgsuccess?order_id=EXT-0002", mall.base)
    );
    let got = cafe24.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let f = &got[0].fields;
    assert_eq!(
        (
            f["request_type"].as_str(),
            f["payed_tf"].as_str(),
            f["result_code"].as_str()
        ),
        ("payment", "T", "0000")
    );
    assert_eq!(f["amount"], "3000");
    assert_eq!(f["order_id"], "EXT-0002");
    assert_eq!(f["partner_id"], "demomall:1:demo-public");
    let expected = cafe24_hash(&[
        "3000",
        "JPY",
        "EXT-0002",
        "demomall:1:demo-public",
        &f["tid"],
    ]);
    assert_eq!(f["hash_data"], expected);
    // The buyer who returns to the merchant ends on pg_fail.
    let body = payload(
        "EXT-0003",
        lines,
        "3000",
        &cafe24.url("/noty"),
        &mall.base,
        "JPY",
    );
    let (_, reply) = app.ext_payload(&body).await;
    let callback = app
        .press(reply["session_url"].as_str().unwrap_or_default(), "return")
        .await;
    let resp = app.get(&callback).await;
    assert_eq!(
        location(&resp),
        format!("{}/api/shop/pg_fail?order_id=EXT-0003", mall.base)
    );
}

async fn review_page_escapes_and_protects_its_form(backend: Backend) {
    let app = spawn_app(backend).await;
    register_shop(&app, true, "JPY").await;
    let lines = serde_json::json!([{"product_no": 1, "product_name": "<script>alert(1)</script> T-shirt", "quantity": 1,
        "product_price": "2500", "option_price": "0"}]);
    let body = payload(
        "EXT-0004",
        lines,
        "2500",
        "https://demomall.cafe24.com/noty",
        "https://demomall.cafe24.com",
        "JPY",
    );
    let (status, reply) = app.ext_payload(&body).await;
    assert_eq!(status, 200, "{reply}");
    let review = reply["review_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no review_url: {reply}"))
        .to_owned();
    let page = app.get(&review).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap_or("")
        .contains("default-src 'none'"));
    let html = page.text().await.unwrap_or_default();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; T-shirt"),
        "{html}"
    );
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("Demo &lt;Mall&gt;"));
    assert!(html.contains("2500"));
    let key = query_of(&review)["key"].clone();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let pay = format!("{}/api/external-checkout/order/pay", app.address);
    let forged = app
        .client
        .post(&pay)
        .form(&[("key", key.as_str()), ("csrf", "0000")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forged.status(), 400);
    let ok = app
        .client
        .post(&pay)
        .form(&[("key", key.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status(), 303);
    assert_eq!(
        location(&ok),
        reply["session_url"].as_str().unwrap_or_default()
    );
}

/// Issue 8 §1: a reservation signed the way the Cafe24 sample's `createPayload` checks it
/// (`json_encode(…, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES)`), with a real-looking
/// `return_notification_url` holding slashes and non-ASCII characters. The `hmac` below
/// was computed outside this code, with Python:
/// `base64(hmac.new(b"test-client-id20261121-0000042",
///   json.dumps("306520261121-00000422026-11-21 12:00:00" + url, ensure_ascii=False).encode(),
///   sha256).digest())`.
/// With PHP's default flags (`/` as `\/`, non-ASCII as `\uXXXX`) it would be
/// `vXWFxYR/dzMc+X6Tqqi/FiJmlngEte5z6YIJ/Bc8pxg=`, which must be refused.
async fn reservation_signed_as_the_cafe24_sample_checks_it_is_accepted(backend: Backend) {
    // The notification URL is a real mall's: no worker, so nothing leaves the machine.
    let app = spawn_app_with(backend, &[("OUTBOX_WORKER", "off")]).await;
    register_shop(&app, false, "JPY").await;
    let notify = "https://demomall.cafe24.com/exec/front/order/pg/notify?shop=デモ店&order_id=20261121-0000042";
    let reservation = |hmac: &str, response_time: &str| {
        serde_json::json!({
            "mall_id": MALL, "shop_no": 1, "member_id": "", "is_guest": true, "currency": "JPY",
            "order_id": "20261121-0000042", "return_notification_url": notify,
            "return_url_base": "https://demomall.cafe24.com", "response_time": response_time,
            "hmac": hmac,
            "order": [{"product_no": 7, "product_name": "茶碗", "quantity": 1, "product_price": "3065", "option_price": "0"}],
        })
    };
    let vector_time = "2026-11-21 12:00:00";
    let (status, err) = app
        .ext_payload(&reservation(
            "vXWFxYR/dzMc+X6Tqqi/FiJmlngEte5z6YIJ/Bc8pxg=",
            vector_time,
        ))
        .await;
    assert_eq!((status, err["error"].as_str()), (401, Some("invalid_hash")));
    assert_eq!(app.order_count().await, 0);
    // The vector's HMAC holds (not 401); its response_time is long past (issue 18).
    let (status, err) = app
        .ext_payload(&reservation(
            "3KRF00tPkRmONg2AscbD65x4KpzfsXqnusQhZHzGtPc=",
            vector_time,
        ))
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request")),
        "{err}"
    );
    assert_eq!(app.order_count().await, 0);
    let now = app.clock.unix_seconds().to_string();
    let fresh = reservation_hmac("20261121-0000042", "3065", &now, notify);
    let (status, body) = app.ext_payload(&reservation(&fresh, &now)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result_code"], "0000");
    let order = app
        .order("20261121-0000042")
        .await
        .unwrap_or_else(|| panic!("no order"));
    assert_eq!(order.amount, 3065);
    // Stored as the URL parser serialised it: the path and query percent-encoded.
    assert_eq!(
        order.return_noty_url.as_deref(),
        Some("https://demomall.cafe24.com/exec/front/order/pg/notify?shop=%E3%83%87%E3%83%A2%E5%BA%97&order_id=20261121-0000042")
    );
}

/// The button's texts come from the catalogue in the page's language (`lang`, as Cafe24's
/// skin declares it), else the buyer's `Accept-Language`, else English.
async fn the_buttons_texts_speak_the_pages_language(backend: Backend) {
    let app = spawn_app(backend).await;
    register_shop(&app, false, "JPY").await;
    let data = |query: &'static str, accept: Option<&'static str>| {
        let mut req = app.client.get(format!(
            "{}/api/external-checkout/script/data?mall_id=demomall&shop_no=1{query}",
            app.address
        ));
        if let Some(accept) = accept {
            req = req.header("Accept-Language", accept);
        }
        async move {
            let r = req.send().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap_or_default()
        }
    };
    let ko = data("&lang=ko_KR", Some("ja,en;q=0.5")).await;
    assert_eq!(ko["lang"], "ko");
    assert_eq!(ko["button_label"], "KOMOJU로 결제");
    assert_eq!(
        ko["messages"]["failed"],
        "결제를 시작할 수 없었습니다. 다시 시도해 주세요."
    );
    assert_eq!(
        ko["messages"]["reserve"],
        "주문을 접수할 수 없었습니다. 장바구니를 확인한 후 다시 시도해 주세요."
    );
    let ja = data("", Some("ja-JP,ja;q=0.9")).await;
    assert_eq!(ja["lang"], "ja");
    assert_eq!(ja["button_label"], "KOMOJU で支払う");
    let en = data("&lang=", None).await;
    assert_eq!(en["lang"], "en");
    assert_eq!(en["button_label"], "Pay with KOMOJU");
}
