//! Synchronous cancellation (PROTOCOL.md §6.4; wiki "Cancellation (Synchronous)"):
//! `POST /api/synchronous-cancellation/cancel`, and the sample app's
//! `/api/synchronous-refund/cancel`. Fields `partner_id, order_id, tid, cancel_amount,
//! currency, hash_data` (H2); `0000` only when KOMOJU confirmed the refund or cancel.

use actix_web::{web, HttpRequest, HttpResponse};

use super::fields::{self, Field};
use super::{ResultReply, State};
use crate::cafe24;
use crate::cancellation::{self, Mode};
use crate::error::ApiError;

/// Mounts the route and its alias.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in [
        "/api/synchronous-cancellation/cancel",
        "/api/synchronous-refund/cancel",
    ] {
        cfg.service(super::resource(path, "POST").route(web::post().to(cancel)));
    }
}

/// `POST …/cancel` (the alias `/api/synchronous-refund/cancel` is documented as a copy).
#[utoipa::path(post, path = "/api/synchronous-cancellation/cancel", tag = "synchronous cancellation",
    request_body(description = "Cafe24's cancel request (H2)", content(
        (CancelRequest = "application/x-www-form-urlencoded"),
        (CancelRequest = "application/json"))),
    responses(
        (status = 200, description = "0000 when KOMOJU confirmed the refund or cancel", body = ResultReply),
        super::CancelFailures,
    ))]
async fn cancel(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fields = cafe24::read_body(&req, body, app.body_limits).await?;
    let reply = cancellation::cancel(&app, Mode::Sync, &fields).await?;
    Ok(HttpResponse::build(reply.status).json(reply.body))
}

crate::request_schema!(
    /// `POST …/cancel` (§6.4, §6.5).
    CancelRequest,
    "Cafe24's cancel request, signed with H2",
    &CANCEL_FIELDS
);

/// The fields of a cancel request as `cancellation::cancel` reads them.
const CANCEL_FIELDS: [Field; 9] = [
    Field::required("partner_id", "`{mall_id}:{shop_no}:{public_ref}`")
        .pattern(fields::PARTNER_ID)
        .example("demomall:1:demo-public"),
    Field::required("order_id", "Cafe24's order id").pattern(fields::ORDER_ID),
    Field::required("tid", "KOMOJU's payment id (the status reply's `tid`)").max_length(100),
    Field::required("cancel_amount", "The amount to refund, in Cafe24's format")
        .pattern(fields::AMOUNT)
        .example("1000"),
    Field::required("currency", "ISO 4217").pattern(fields::CURRENCY).example("JPY"),
    Field::required("hash_data", "H2: base64(HMAC-SHA256(service key, cancel_amount · currency · order_id · partner_id · tid))")
        .pattern(fields::BASE64_MAC),
    Field::optional("cancel_noty_url", "Required by the asynchronous family: where the confirmation is POSTed")
        .pattern(fields::URL)
        .max_length(2048),
    Field::optional("amount", "The order's amount").pattern(fields::AMOUNT),
    Field::optional("extra_data", "Echoed back to Cafe24").max_length(2000),
];
