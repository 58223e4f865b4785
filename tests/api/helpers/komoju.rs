//! What KOMOJU sends: signed webhooks (signatures computed here, independently of the
//! service), and what the KOMOJU sandbox recorded.

use super::*;

/// Lowercase hex HMAC-SHA256, as KOMOJU signs webhooks; computed independently here.
pub fn komoju_signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub const WEBHOOK_SECRET: &str = "whsec_demomall_0123456789";

/// A KOMOJU event envelope around a payment, as bytes.
pub fn event_body(event_id: &str, event_type: &str, payment: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": event_id,
        "type": event_type,
        "resource": "event",
        "data": payment,
        "created_at": "2026-11-21T12:00:00.000+09:00",
        "reason": null,
    }))
    .unwrap_or_default()
}

impl TestApp {
    /// Sends a signed webhook for `mall` to the service; returns the HTTP status.
    pub async fn send_webhook(&self, mall: &str, body: &[u8], signature: Option<&str>) -> u16 {
        let mut req = self
            .client
            .post(format!(
                "{}/api/asynchronous-checkout/checkout/webhook?mall_id={mall}",
                self.address
            ))
            .header("Content-Type", "application/json")
            .header("X-Komoju-Event", "payment")
            .body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("X-Komoju-Signature", s);
        }
        req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    }

    /// Lets the sandbox send this merchant's KOMOJU webhooks to the service, as KOMOJU
    /// does once the merchant registered the webhook URL.
    pub fn route_sandbox_webhooks(&self) {
        self.sandbox.set_webhook(
            "sk_test_demomall_0123456789",
            &format!(
                "{}/api/asynchronous-checkout/checkout/webhook?mall_id={MALL}",
                self.address
            ),
            WEBHOOK_SECRET,
        );
        self.sandbox
            .set_webhook_retry_delays(vec![std::time::Duration::from_millis(200); 5]);
    }

    /// KOMOJU API calls that created something (POSTs), as the sandbox saw them.
    pub fn komoju_posts(&self) -> Vec<cafe24_komoju_sandbox::RecordedRequest> {
        self.sandbox
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }

    /// A synchronous checkout paid on the sandbox with `method` and returned through the
    /// callback; returns the KOMOJU payment id (`tid`).
    pub async fn paid_order(
        &self,
        order_id: &str,
        amount: &str,
        currency: &str,
        method: &str,
    ) -> String {
        let url = self
            .sync_checkout_ok(&checkout_fields(order_id, amount, currency))
            .await;
        let callback = self.press(&url, method).await;
        let resp = self.get(&callback).await;
        assert_eq!(resp.status(), 302);
        self.order(order_id)
            .await
            .and_then(|o| o.komoju_payment_id)
            .unwrap_or_else(|| panic!("order {order_id} has no payment"))
    }

    /// Has the service read the demo merchant's payment methods already (it lists them
    /// before its first session and keeps them a while), so that a fault injected next
    /// meets the call the test is about.
    pub async fn prime_payment_methods(&self) {
        let key = secrecy::SecretString::from("sk_test_demomall_0123456789".to_owned());
        self.state
            .komoju
            .payment_methods_cached(&key)
            .await
            .unwrap_or_else(|e| panic!("payment methods: {e}"));
    }

    /// KOMOJU's refunds of a payment, as the sandbox holds them.
    pub fn komoju_refunds(&self, tid: &str) -> Vec<serde_json::Value> {
        self.sandbox.payment_json(tid).unwrap_or_default()["refunds"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
