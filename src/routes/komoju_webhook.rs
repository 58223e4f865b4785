//! KOMOJU webhooks in (PROTOCOL.md §8): one handler behind
//! `POST /api/asynchronous-checkout/checkout/webhook?mall_id=…` and
//! `POST /api/asynchronous-cancellation/cancel/webhook?mall_id=…` (and the sample app's
//! `/api/asynchronous-refund/cancel/webhook`), so a merchant may register one URL.
//!
//! An ordered pipeline; nothing is parsed or stored before the signature holds:
//! `mall_id` → raw body (size-limited) → the merchant's webhook secret → HMAC-SHA256 of
//! the raw bytes, compared in constant time with `X-Komoju-Signature` → parse → find the
//! order (by `data.session`, then `data.metadata`, then `data.external_order_num`) →
//! apply, enqueue and record the event id in one transaction → 2xx. A repeat of an event
//! id is answered 200 and changes nothing; a database failure is 503 so KOMOJU sends it
//! again; `ping` and events for unknown orders are answered 200 (and logged).

use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::checkout::{self, State};
use crate::db::{self, webhook_events::WebhookEventRow};
use crate::error::ApiError;
use crate::komoju::Payment;

/// Mounts the handler at every webhook path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in [
        "/api/asynchronous-checkout/checkout/webhook",
        "/api/asynchronous-cancellation/cancel/webhook",
        "/api/asynchronous-refund/cancel/webhook",
    ] {
        cfg.route(path, web::post().to(webhook));
    }
}

#[derive(Deserialize)]
struct MallQuery {
    mall_id: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct DataRefs {
    session: Option<String>,
    external_order_num: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

fn ack(outcome: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "outcome": outcome }))
}

/// Verifies `X-Komoju-Signature` (lowercase hex HMAC-SHA256 of the raw body with the
/// merchant's webhook secret) in constant time.
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header.map(str::trim) else {
        return false;
    };
    let Some(expected) = decode_hex(sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

async fn webhook(
    app: State,
    req: HttpRequest,
    query: web::Query<MallQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mall_id = query
        .mall_id
        .clone()
        .filter(|m| crate::cafe24::partner_id::is_valid_mall_id(m))
        .ok_or_else(|| ApiError::invalid("mall_id query parameter is required"))?;
    let body = crate::cafe24::read_bytes(&req, payload, app.settings.body_limit_bytes).await?;
    let merchant = checkout::load_merchant(&app, &mall_id, None).await?;
    let header = req
        .headers()
        .get("X-Komoju-Signature")
        .and_then(|v| v.to_str().ok());
    if !signature_valid(
        merchant.komoju_webhook_secret.expose_secret().as_bytes(),
        &body,
        header,
    ) {
        log::warn!("webhook for {mall_id}: bad or missing signature; ignored");
        return Ok(HttpResponse::Unauthorized().json(json!({
            "result_code": "9999",
            "result_message": "X-Komoju-Signature is missing or wrong",
            "error": "invalid_signature",
        })));
    }
    let envelope: Envelope = serde_json::from_slice(&body)
        .map_err(|_| ApiError::invalid("webhook body is not a KOMOJU event"))?;
    if envelope.id.is_empty() || envelope.id.len() > 200 {
        return Err(ApiError::invalid("webhook event id is missing"));
    }
    let now = app.clock.now_naive();
    let record = WebhookEventRow {
        mall_id: mall_id.clone(),
        event_id: envelope.id.clone(),
        event_type: envelope.kind.clone(),
        order_pk: None,
        outcome: String::new(),
        received_at: now,
    };
    if envelope.kind == "ping" {
        record_only(&app, record, "ping").await?;
        return Ok(ack("ping"));
    }
    let Some(data) = envelope
        .data
        .filter(|_| envelope.kind.starts_with("payment."))
    else {
        log::info!(
            "webhook {} for {mall_id}: event type {} not handled; acknowledged",
            envelope.id,
            envelope.kind
        );
        record_only(&app, record, "not_handled").await?;
        return Ok(ack("not_handled"));
    };
    let refs: DataRefs = serde_json::from_value(data.clone()).unwrap_or_default();
    let payment: Option<Payment> = serde_json::from_value(data).ok();
    let order = find_order(&app, &mall_id, &refs).await?;
    let (Some(order), Some(fact)) = (order, payment.as_ref().and_then(Payment::to_fact)) else {
        log::warn!(
            "webhook {} ({}) for {mall_id}: no order for session {:?} / external_order_num {:?}, or unreadable payment; acknowledged",
            envelope.id, envelope.kind, refs.session, refs.external_order_num
        );
        record_only(&app, record, "unknown_order").await?;
        return Ok(ack("unknown_order"));
    };
    if is_duplicate(&app, &mall_id, &envelope.id).await? {
        log::info!("webhook {} for {mall_id}: already processed", envelope.id);
        return Ok(ack("duplicate"));
    }
    match checkout::apply_fact(&app, &merchant, &order.id, fact, "webhook", Some(record)).await {
        Ok(applied) => {
            if applied.enqueued > 0 {
                app.outbox_wake.notify_one();
            }
            Ok(ack(if applied.outcome.changed {
                "applied"
            } else {
                "ignored"
            }))
        }
        // A concurrent delivery of the same event committed first: this one rolled back.
        Err(e) if db::is_unique_violation(&e) => {
            log::info!(
                "webhook {} for {mall_id}: already processed (concurrent delivery)",
                envelope.id
            );
            Ok(ack("duplicate"))
        }
        Err(e) => Err(ApiError::from_db("applying webhook", e)),
    }
}

/// Records an event that changes no order (ping, unknown order); a repeat is fine.
async fn record_only(
    app: &State,
    mut record: WebhookEventRow,
    outcome: &str,
) -> Result<(), ApiError> {
    record.outcome = outcome.to_owned();
    match app
        .db
        .run(move |c| db::webhook_events::insert(c, &record))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if db::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(ApiError::from_db("recording webhook event", e)),
    }
}

async fn is_duplicate(app: &State, mall_id: &str, event_id: &str) -> Result<bool, ApiError> {
    let (m, e) = (mall_id.to_owned(), event_id.to_owned());
    app.db
        .run(move |c| db::webhook_events::exists(c, &m, &e))
        .await
        .map_err(|e| ApiError::from_db("reading webhook events", e))
}

async fn find_order(
    app: &State,
    mall_id: &str,
    refs: &DataRefs,
) -> Result<Option<db::orders::OrderRow>, ApiError> {
    let mall = mall_id.to_owned();
    let session = refs.session.clone();
    let meta_order = refs
        .metadata
        .as_ref()
        .filter(|m| m.get("mall_id").and_then(|v| v.as_str()) == Some(mall_id))
        .and_then(|m| {
            m.get("order_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        });
    let eon = refs.external_order_num.clone();
    app.db
        .run(move |c| {
            if let Some(s) = session {
                if let Some(o) = db::orders::find_by_session(c, &s)? {
                    if o.mall_id == mall {
                        return Ok(Some(o));
                    }
                }
            }
            if let Some(order_id) = meta_order {
                if let Some(o) = db::orders::find_by_order_id(c, &mall, &order_id)? {
                    return Ok(Some(o));
                }
            }
            if let Some(e) = eon {
                return db::orders::find_by_external_order_num(c, &mall, &e);
            }
            Ok(None)
        })
        .await
        .map_err(|e| ApiError::from_db("finding webhook order", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|e| panic!("{e}"));
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn signature_is_checked_over_the_raw_bytes() {
        let body = br#"{"id":"ev1","type":"ping"}"#;
        let sig = sign(b"secret", body);
        assert!(signature_valid(b"secret", body, Some(&sig)));
        assert!(signature_valid(b"secret", body, Some(&sig.to_uppercase())));
        assert!(!signature_valid(b"other", body, Some(&sig)));
        assert!(!signature_valid(
            b"secret",
            br#"{"id":"ev1", "type":"ping"}"#,
            Some(&sig)
        ));
        assert!(!signature_valid(b"secret", body, None));
        assert!(!signature_valid(b"secret", body, Some(&sig[..62])));
        assert!(!signature_valid(b"secret", body, Some("zz")));
    }
}
