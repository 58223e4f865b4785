//! KOMOJU webhooks in (PROTOCOL.md §8): one handler behind
//! `POST /api/asynchronous-checkout/checkout/webhook?mall_id=…` and
//! `POST /api/asynchronous-cancellation/cancel/webhook?mall_id=…` (and the sample app's
//! `/api/asynchronous-refund/cancel/webhook`), so a merchant may register one URL.
//!
//! The route reads `mall_id`, the raw body (size- and time-limited) and the two headers,
//! and hands them to [`crate::webhooks::receive`], which owns the pipeline.

use super::{AckReply, State, Up};
use crate::error::responses::*;
use crate::error::ApiError;
use crate::webhooks::{self, Delivery, Received};
use actix_web::{web, HttpRequest, HttpResponse};

/// Every path KOMOJU's webhooks are received at (the request guard counts them apart:
/// `MAX_IN_FLIGHT_WEBHOOKS`).
pub const PATHS: [&str; 3] = [
    "/api/asynchronous-checkout/checkout/webhook",
    "/api/asynchronous-cancellation/cancel/webhook",
    "/api/asynchronous-refund/cancel/webhook",
];

/// Mounts the handler at every webhook path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in PATHS {
        cfg.service(super::resource(path, "POST").route(web::post().to(webhook)));
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// 200 `{"status":"ok","outcome":…}` once recorded and committed; 401
/// `{"result_code":"9999","error":"invalid_signature",…}` for a bad signature. (The other
/// two paths are documented as copies of this one.)
#[utoipa::path(post, path = "/api/asynchronous-checkout/checkout/webhook", tag = "KOMOJU webhooks",
    params(
        ("mall_id" = String, Query, description = "The mall the webhook was registered for", example = "demomall"),
        ("X-Komoju-Signature" = Option<String>, Header, description = "hex(HMAC-SHA256(webhook secret, raw body))"),
        ("X-Komoju-ID" = Option<String>, Header, description = "KOMOJU's delivery id"),
    ),
    request_body(description = "KOMOJU's event, signed over its raw bytes", content(
        (KomojuEvent = "application/json"))),
    responses(
        (status = 200, description = "Recorded and committed, with its outcome", body = AckReply),
        (status = 400, response = BadRequest), (status = 401, response = InvalidSignature),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 405, response = MethodNotAllowed), (status = 408, response = Timeout),
        (status = 413, response = TooLarge), (status = 503, response = Unavailable),
    ))]
async fn webhook(
    app: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let query = crate::cafe24::query(&req)?;
    let mall_id = crate::cafe24::mall_id_field(&query)?;
    let body = crate::cafe24::read_bytes(&req, payload, app.body_limits).await?;
    let delivery = Delivery {
        mall_id,
        body: &body,
        signature: header(&req, "X-Komoju-Signature"),
        komoju_id: header(&req, "X-Komoju-ID"),
    };
    Ok(match webhooks::receive(&app, delivery).await? {
        Received::Acknowledged(outcome) => HttpResponse::Ok().json(AckReply {
            status: Up::Ok,
            outcome,
        }),
        Received::BadSignature => return Err(ApiError::InvalidSignature),
    })
}

/// A KOMOJU webhook body (§8): an event on a payment, signed over its raw bytes. The
/// pipeline reads it only after the signature holds (`komoju::webhook`).
#[derive(utoipa::ToSchema)]
pub struct KomojuEvent {
    /// KOMOJU's event id.
    #[schema(required = false)]
    pub id: String,
    /// `payment.captured`, `payment.refunded`, `ping`, …
    #[schema(required = false, example = "payment.captured")]
    pub r#type: String,
    /// The payment.
    #[schema(required = false, value_type = Object)]
    pub data: serde_json::Value,
}
