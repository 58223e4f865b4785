//! HTTP routes: one module per route family of the Cafe24 PG-app wiki (seed
//! `cafe24-pg-app-routes.txt`), plus the operator's health check. Handlers are thin:
//! extract, call one domain function, shape the reply.

pub mod asynchronous_cancellation;
pub mod asynchronous_checkout;
pub mod external_checkout;
pub mod install;
pub mod komoju_webhook;
pub mod metrics;
pub mod operator;
pub mod pages;
pub mod settings_pages;
pub mod settings_site;
pub mod synchronous_cancellation;
pub mod synchronous_checkout;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::error::ApiError;
use crate::services::Services;

/// What every handler extracts: the shared [`Services`].
pub type State = web::Data<Services>;

/// Mounts every route family.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|e, _| {
            ApiError::invalid(format!("query string is malformed: {e}")).into()
        }),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::invalid(format!("path is malformed: {e}")).into()),
    )
    .service(resource("/health", "GET").route(web::get().to(health)))
    .service(resource("/health/ready", "GET").route(web::get().to(ready)))
    // Before the scopes: a scope owns its whole prefix, and the webhook paths sit
    // under the asynchronous families' prefixes.
    .configure(komoju_webhook::configure)
    .configure(synchronous_checkout::configure)
    .configure(asynchronous_checkout::configure)
    .configure(synchronous_cancellation::configure)
    .configure(asynchronous_cancellation::configure)
    .configure(external_checkout::configure)
    .configure(operator::configure)
    .configure(install::configure)
    .configure(settings_site::configure);
}

/// A resource at `path` that answers a method it does not serve with 405 in the §3
/// envelope and `Allow: allow` (for example `"GET, POST"`); the caller adds the routes.
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        let error = ApiError::InvalidRequest {
            message: format!("method {} is not allowed here; use {allow}", req.method()),
            status: StatusCode::METHOD_NOT_ALLOWED,
        };
        let mut reply = error.error_response();
        if let Ok(value) = header::HeaderValue::from_str(allow) {
            reply.headers_mut().insert(header::ALLOW, value);
        }
        reply
    }))
}

/// The reply to a path no route serves: 404 in the §3 envelope (the path is not echoed:
/// it is the caller's own).
pub async fn not_found() -> HttpResponse {
    ApiError::InvalidRequest {
        message: "no route serves this path".into(),
        status: StatusCode::NOT_FOUND,
    }
    .error_response()
}

/// `GET /health` (PROTOCOL.md §13): liveness, no dependency checked: 200
/// `{"status":"ok"}` while the process serves.
async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"status": "ok"}))
}

/// `GET /health/ready` (§13): 200 when the database answers and its migrations are
/// current, 503 otherwise; `{"status":"ok"|"degraded","checks":{"database":"up"|"down",
/// "migrations":"current"|"pending"}}`.
async fn ready(app: State) -> HttpResponse {
    let r = app.db.readiness().await;
    let ok = r.database && r.migrations_current;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "checks": {
            "database": if r.database { "up" } else { "down" },
            "migrations": if r.migrations_current { "current" } else { "pending" },
        },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `POST …/checkout` of the synchronous and asynchronous families: 200
/// `{"result_code":"0000","result_message","payment_url"}`.
pub(crate) async fn checkout_reply(
    app: &Services,
    req: &actix_web::HttpRequest,
    body: web::Payload,
    flow: crate::orders::Flow,
) -> Result<HttpResponse, crate::error::ApiError> {
    let fields = crate::cafe24::read_body(req, body, app.body_limits).await?;
    let payment_url = crate::checkout::start(app, flow, &fields).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "result_code": "0000",
        "result_message": "Successfully created checkout",
        "payment_url": payment_url,
    })))
}

/// 302 to `base` with `params` appended (Cafe24's stored `return_url`, or the mall's
/// `pgsuccess`/`pg_fail` page), never cached.
pub(crate) fn found(base: &str, params: &[(&str, &str)]) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, crate::cafe24::append_query(base, params)?))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// A small HTML page for the buyer's browser when a callback cannot finish (KOMOJU
/// unreachable): nothing changed, and reloading the same URL tries again.
pub fn retry_page(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(pages::retry(message).into_string())
}
