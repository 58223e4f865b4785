//! Synchronous cancellation (PROTOCOL.md §6.4; wiki "Cancellation (Synchronous)"):
//! `POST /api/synchronous-cancellation/cancel`, and the sample app's
//! `/api/synchronous-refund/cancel`. Fields `partner_id, order_id, tid, cancel_amount,
//! currency, hash_data` (H2); `0000` only when KOMOJU confirmed the refund or cancel.

use actix_web::{web, HttpRequest, HttpResponse};

use super::State;
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

async fn cancel(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fields = cafe24::read_body(&req, body, app.body_limits).await?;
    let reply = cancellation::cancel(&app, Mode::Sync, &fields).await?;
    Ok(HttpResponse::build(reply.status).json(reply.body))
}
