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
use secrecy::ExposeSecret;
use serde_json::json;

use crate::checkout::{self, State};
use crate::db::{self, webhook_events::WebhookEventRow};
use crate::error::ApiError;
use crate::komoju::webhook::{self as komoju_webhook, Content, OrderRefs};

/// Mounts the handler at every webhook path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in [
        "/api/asynchronous-checkout/checkout/webhook",
        "/api/asynchronous-cancellation/cancel/webhook",
        "/api/asynchronous-refund/cancel/webhook",
    ] {
        cfg.service(super::resource(path, "POST").route(web::post().to(webhook)));
    }
}

fn ack(outcome: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "outcome": outcome }))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn webhook(
    app: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let query = crate::cafe24::parse_form(req.query_string().as_bytes())?;
    let mall_id = crate::cafe24::mall_id_field(&query)?;
    let body = crate::cafe24::read_bytes(&req, payload, app.settings.body_limits()).await?;
    let merchant = checkout::load_merchant(&app, mall_id, None).await?;
    let event = match komoju_webhook::read(
        merchant.komoju_webhook_secret.expose_secret().as_bytes(),
        &body,
        header(&req, "X-Komoju-Signature"),
        header(&req, "X-Komoju-ID"),
    ) {
        Ok(event) => event,
        Err(e) => {
            log::warn!("webhook for {mall_id}: bad or missing signature; ignored");
            return Ok(HttpResponse::Unauthorized().json(json!({
                "result_code": "9999",
                "result_message": e.to_string(),
                "error": "invalid_signature",
            })));
        }
    };
    let record = WebhookEventRow {
        mall_id: mall_id.to_owned(),
        event_id: event.id.clone(),
        event_type: event.kind.clone(),
        order_pk: None,
        outcome: String::new(),
        received_at: app.clock.now_naive(),
    };
    let (payment, refs) = match event.content {
        Content::Payment { payment, refs } => (payment, refs),
        Content::Ping => return record_only(&app, record, "ping").await,
        Content::NotHandled => {
            log::info!(
                "webhook {} for {mall_id}: event type {} not handled; acknowledged",
                event.id,
                event.kind
            );
            return record_only(&app, record, "not_handled").await;
        }
        Content::Unreadable(why) => {
            log::warn!(
                "webhook {} ({}) for {mall_id}: {why}; recorded and acknowledged",
                event.id,
                event.kind
            );
            return record_only(&app, record, "unreadable").await;
        }
    };
    let order = find_order(&app, mall_id, &refs).await?;
    let (Some(order), Some(fact)) = (order, payment.to_fact()) else {
        log::warn!(
            "webhook {} ({}) for {mall_id}: no order for session {:?} / external_order_num {:?}, or a payment status this build does not know; acknowledged",
            event.id, event.kind, refs.session, refs.external_order_num
        );
        return record_only(&app, record, "unknown_order").await;
    };
    if is_duplicate(&app, mall_id, &event.id).await? {
        log::info!("webhook {} for {mall_id}: already processed", event.id);
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
                event.id
            );
            Ok(ack("duplicate"))
        }
        Err(e) => Err(ApiError::from_db("applying webhook", e)),
    }
}

/// Records an event that changes no order (ping, unknown order, unreadable) and
/// acknowledges it with `outcome`; a repeat is fine.
async fn record_only(
    app: &State,
    mut record: WebhookEventRow,
    outcome: &'static str,
) -> Result<HttpResponse, ApiError> {
    record.outcome = outcome.to_owned();
    match app
        .db
        .run(move |c| db::webhook_events::insert(c, &record))
        .await
    {
        Ok(()) => Ok(ack(outcome)),
        Err(e) if db::is_unique_violation(&e) => Ok(ack(outcome)),
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
    refs: &OrderRefs,
) -> Result<Option<db::orders::OrderRow>, ApiError> {
    let mall = mall_id.to_owned();
    let session = refs.session.clone();
    let meta_order = refs
        .metadata
        .as_ref()
        .filter(|(m, _)| m == mall_id)
        .map(|(_, order_id)| order_id.clone());
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
