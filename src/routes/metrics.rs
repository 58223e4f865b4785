//! `GET /metrics` (PROTOCOL.md §13): the Prometheus text exposition of the service's
//! registry ([`crate::metrics`]), with the outbox gauges read at the scrape. Mounted on
//! the main address, or only on `METRICS_BIND_ADDR` when that is set.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::State;

/// Mounts `GET /metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/metrics", "GET").route(web::get().to(metrics)));
}

/// 200 `text/plain; version=0.0.4` with every family. A database that does not answer
/// leaves the outbox gauges at their last values (logged), the rest is still served.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format (only on METRICS_BIND_ADDR when that is set)",
            content_type = "text/plain; version=0.0.4", body = String),
        (status = 405, response = crate::error::responses::MethodNotAllowed),
    ))]
pub(crate) async fn metrics(app: State) -> HttpResponse {
    if let Err(e) = crate::notifications::observe_outbox(&app).await {
        log::warn!("metrics: the outbox gauges could not be read: {e}");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(app.metrics.render())
}
