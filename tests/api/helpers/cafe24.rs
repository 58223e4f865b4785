//! What Cafe24 sends: signed checkout and cancellation requests (hashes computed here,
//! independently of the service), and the calls that send them.

use super::*;

/// Cafe24's hash_data, computed here independently of the service's code.
pub fn cafe24_hash(values: &[&str]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SERVICE_KEY.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(values.concat().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A signed checkout request with the Cafe24 sample app's values.
pub fn checkout_fields(order_id: &str, amount: &str, currency: &str) -> Vec<(String, String)> {
    let partner_id = format!("{MALL}:1:demo-public");
    let hash = cafe24_hash(&[amount, currency, order_id, &partner_id]);
    vec![
        ("partner_id".into(), partner_id),
        ("order_id".into(), order_id.into()),
        ("amount".into(), amount.into()),
        ("currency".into(), currency.into()),
        ("return_url".into(), RETURN_URL.into()),
        ("buyer_id".into(), "buyer01".into()),
        ("shop_no".into(), "1".into()),
        ("buyer_email".into(), "buyer@example.com".into()),
        ("hash_data".into(), hash),
    ]
}

pub fn set(fields: &mut Vec<(String, String)>, name: &str, value: &str) {
    fields.retain(|(k, _)| k != name);
    fields.push((name.into(), value.into()));
}

pub fn remove(fields: &mut Vec<(String, String)>, name: &str) {
    fields.retain(|(k, _)| k != name);
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location header (status {})", resp.status()))
        .to_owned()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// An async checkout request whose `return_noty_url` is the receiver.
pub fn async_fields(
    order_id: &str,
    amount: &str,
    currency: &str,
    receiver: &Receiver,
) -> Vec<(String, String)> {
    let mut f = checkout_fields(order_id, amount, currency);
    f.push(("return_noty_url".into(), receiver.url("/noty")));
    f
}

/// A signed cancellation request (H2 computed here independently).
pub fn cancel_fields(
    order_id: &str,
    tid: &str,
    cancel_amount: &str,
    currency: &str,
) -> Vec<(String, String)> {
    let partner_id = format!("{MALL}:1:demo-public");
    let hash = cafe24_hash(&[cancel_amount, currency, order_id, &partner_id, tid]);
    vec![
        ("partner_id".into(), partner_id),
        ("order_id".into(), order_id.into()),
        ("tid".into(), tid.into()),
        ("cancel_amount".into(), cancel_amount.into()),
        ("currency".into(), currency.into()),
        ("hash_data".into(), hash),
    ]
}

impl TestApp {
    pub async fn sync_cancel(&self, fields: &[(String, String)]) -> (u16, serde_json::Value) {
        let r = self
            .post_form("/api/synchronous-cancellation/cancel", fields)
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    pub async fn async_cancel(&self, fields: &[(String, String)]) -> (u16, serde_json::Value) {
        let r = self
            .post_form("/api/asynchronous-cancellation/cancel", fields)
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    pub async fn async_checkout(&self, fields: &[(String, String)]) -> reqwest::Response {
        self.post_form("/api/asynchronous-checkout/checkout", fields)
            .await
    }

    pub async fn async_checkout_ok(&self, fields: &[(String, String)]) -> String {
        let resp = self.async_checkout(fields).await;
        assert_eq!(resp.status(), 200, "async checkout failed");
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        body["payment_url"].as_str().unwrap_or_default().to_owned()
    }
}
