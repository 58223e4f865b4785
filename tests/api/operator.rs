//! The operator API (issue 11) through the real server: each route with a token minted by
//! `cafe24-komoju operator token`, and each refusal (no token, another audience,
//! `alg: none`, expired) answered 401 with nothing disclosed.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::both_backends;
use crate::helpers::*;

const ORDER: &str = "20261201-0000700";

both_backends!(
    operator_routes_answer_with_a_minted_token,
    operator_routes_refuse_every_other_token
);

impl TestApp {
    async fn operator(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .request(method, format!("{}/operator/api/v1{path}", self.address));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    async fn operator_token(&self, ttl: &str) -> String {
        self.cli(&["operator", "token", "--ttl", ttl])
            .await
            .trim()
            .to_owned()
    }
}

async fn operator_routes_answer_with_a_minted_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.operator_token("1h").await;
    let get = reqwest::Method::GET;
    let tid = app.paid_order(ORDER, "3065", "JPY", "credit_card").await;

    let (status, body) = app
        .operator(get.clone(), "/orders?state=paid", Some(&token))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orders"][0]["order_id"], ORDER);
    assert_eq!(body["orders"][0]["komoju_payment_id"], tid.as_str());
    let (_, none) = app
        .operator(get.clone(), "/orders?mall=othermall", Some(&token))
        .await;
    assert_eq!(none["orders"], serde_json::json!([]));

    let (status, order) = app
        .operator(
            get.clone(),
            &format!("/orders/{MALL}/{ORDER}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["state"], "paid");
    assert_eq!(order["timeline"][0]["source"], "callback");
    assert_eq!(order["timeline"][0]["to"], "paid");
    assert!(!order.to_string().contains("buyer@example.com"), "{order}");
    let (status, missing) = app
        .operator(get.clone(), &format!("/orders/{MALL}/nope"), Some(&token))
        .await;
    assert_eq!(
        (status, missing["error"].as_str()),
        (404, Some("order_not_found"))
    );

    // A notification Cafe24 keeps refusing, replayed by the operator.
    let cafe24 = Receiver::spawn(app.clock.clone());
    cafe24.fail_always(true);
    let url = app
        .async_checkout_ok(&async_fields("20261201-0000701", "3065", "JPY", &cafe24))
        .await;
    let callback = app.press(&url, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);
    let session_id = url.rsplit('/').next().unwrap_or_default();
    let payment = app.sandbox.session_json(session_id).unwrap_or_default()["payment"].clone();
    let event = event_body("ev_op_1", "payment.captured", &payment);
    assert_eq!(
        app.send_webhook(
            MALL,
            &event,
            Some(&komoju_signature(WEBHOOK_SECRET, &event))
        )
        .await,
        200
    );
    cafe24.wait_for(1, Duration::from_secs(5)).await;
    app.drain_outbox().await;
    let (status, listed) = app
        .operator(get.clone(), "/notifications?state=pending", Some(&token))
        .await;
    assert_eq!(status, 200, "{listed}");
    let id = listed["notifications"][0]["id"]
        .as_i64()
        .unwrap_or_default();
    assert!(id > 0, "{listed}");
    assert_eq!(listed["notifications"][0]["last_status"], 500);
    cafe24.fail_always(false);
    let (status, retried) = app
        .operator(
            reqwest::Method::POST,
            &format!("/notifications/{id}/retry"),
            Some(&token),
        )
        .await;
    assert_eq!(
        (status, retried["retried"].as_bool()),
        (200, Some(true)),
        "{retried}"
    );
    app.drain_outbox().await;
    let (_, delivered) = app
        .operator(get.clone(), "/notifications?state=delivered", Some(&token))
        .await;
    assert_eq!(delivered["notifications"][0]["id"], id);
    let (status, again) = app
        .operator(
            reqwest::Method::POST,
            &format!("/notifications/{id}/retry"),
            Some(&token),
        )
        .await;
    assert_eq!(status, 404, "{again}");

    let (status, merchants) = app.operator(get, "/merchants", Some(&token)).await;
    assert_eq!(status, 200, "{merchants}");
    assert_eq!(merchants["merchants"][0]["mall_id"], MALL);
    assert_eq!(
        merchants["merchants"][0]["komoju_secret_key"],
        "sk_test_…6789"
    );
    let text = merchants.to_string();
    assert!(
        !text.contains("sk_test_demomall_0123456789") && !text.contains(WEBHOOK_SECRET),
        "{text}"
    );
}

/// A JWT signed with the operator key of the test's `APP_SECRET`, computed here.
fn forged(header: &str, claims: &serde_json::Value, sign: bool) -> String {
    use hmac::Mac;
    let mut key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"cafe24-komoju"), APP_SECRET.as_bytes())
        .expand(b"cafe24-komoju/operator-token/v1", &mut key)
        .unwrap_or_else(|e| panic!("{e}"));
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    if !sign {
        return format!("{signing_input}.");
    }
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap_or_else(|e| panic!("{e}"));
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

async fn operator_routes_refuse_every_other_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = app.clock.unix_seconds();
    let claims = |aud: &str, exp: i64| serde_json::json!({"aud": aud, "iss": "cafe24-komoju", "iat": now, "exp": exp, "sub": "operator"});
    // The forger's key is right: a well-formed token with it is accepted…
    let good = forged(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims("cafe24-komoju/operator", now + 600),
        true,
    );
    assert_eq!(
        app.operator(reqwest::Method::GET, "/merchants", Some(&good))
            .await
            .0,
        200
    );
    let expiring = app.operator_token("1h").await;
    app.clock.advance(Duration::from_secs(2 * 3600));
    let refused = [
        None,
        Some("not-a-jwt".to_owned()),
        // Another audience (an order key's), same key.
        Some(forged(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &claims("cafe24-komoju/order", now + 99_999),
            true,
        )),
        // alg none, unsigned.
        Some(forged(
            r#"{"alg":"none","typ":"JWT"}"#,
            &claims("cafe24-komoju/operator", now + 99_999),
            false,
        )),
        // No expiry at all.
        Some(forged(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &serde_json::json!({"aud": "cafe24-komoju/operator", "iss": "cafe24-komoju", "sub": "operator"}),
            true,
        )),
        // Minted for an hour, two hours ago.
        Some(expiring),
    ];
    for token in &refused {
        for (method, path) in [
            (reqwest::Method::GET, "/orders"),
            (reqwest::Method::GET, "/orders/demomall/x"),
            (reqwest::Method::GET, "/notifications"),
            (reqwest::Method::POST, "/notifications/1/retry"),
            (reqwest::Method::GET, "/merchants"),
        ] {
            let (status, body) = app.operator(method.clone(), path, token.as_deref()).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert_eq!(
                body,
                serde_json::json!({
                    "result_code": "9999",
                    "result_message": "a valid operator token is required",
                    "error": "unauthorized",
                }),
                "{method} {path}"
            );
        }
    }
}
