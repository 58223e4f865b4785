//! Asynchronous cancellation (PROTOCOL.md §6.5; wiki "Cancellation (Asynchronous)"):
//! `POST /api/asynchronous-cancellation/cancel`, and the sample app's
//! `/api/asynchronous-refund/cancel`. As the synchronous one plus a required
//! `cancel_noty_url`; `0000` ("refund requested") once KOMOJU accepted. KOMOJU's
//! confirmation (webhook, or the reconciliation pass's read) enqueues the
//! `cancel_noty_url` notification. The webhook routes are [`super::komoju_webhook`].

use actix_web::{web, HttpRequest, HttpResponse};

use super::synchronous_cancellation::CancelRequest;
use super::{ResultReply, State};
use crate::cafe24;
use crate::cancellation::{self, Mode};
use crate::error::ApiError;

/// Mounts the route and its alias.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in [
        "/api/asynchronous-cancellation/cancel",
        "/api/asynchronous-refund/cancel",
    ] {
        cfg.service(super::resource(path, "POST").route(web::post().to(cancel)));
    }
}

/// `POST …/cancel` (the alias `/api/asynchronous-refund/cancel` is documented as a copy).
#[utoipa::path(post, path = "/api/asynchronous-cancellation/cancel", tag = "asynchronous cancellation",
    request_body(description = "Cafe24's cancel request (H2)", content(
        (CancelRequest = "application/x-www-form-urlencoded"),
        (CancelRequest = "application/json"))),
    responses(
        (status = 200, description = "0000 (refund requested) once KOMOJU accepted; cancel_noty_url is told of the confirmation", body = ResultReply),
        super::CancelFailures,
    ))]
async fn cancel(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fields = cafe24::read_body(&req, body, app.body_limits).await?;
    let reply = cancellation::cancel(&app, Mode::Async, &fields).await?;
    Ok(HttpResponse::build(reply.status).json(reply.body))
}
