//! HTTP routes: one module per route family of the Cafe24 PG-app wiki (seed
//! `cafe24-pg-app-routes.txt`), plus the operator's health check. Handlers are thin:
//! extract, call one domain function, shape the reply.

pub mod asynchronous_cancellation;
pub mod asynchronous_checkout;
pub mod external_checkout;
pub mod komoju_webhook;
pub mod synchronous_cancellation;
pub mod synchronous_checkout;

use actix_web::{web, HttpResponse};

/// Mounts every route family.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        // Before the scopes: a scope owns its whole prefix, and the webhook paths sit
        // under the asynchronous families' prefixes.
        .configure(komoju_webhook::configure)
        .configure(synchronous_checkout::configure)
        .configure(asynchronous_checkout::configure)
        .configure(synchronous_cancellation::configure)
        .configure(asynchronous_cancellation::configure)
        .configure(external_checkout::configure);
}

/// `GET /health`: 200 `{"status":"ok","database":"up"}` when the database answers, 503
/// otherwise.
async fn health(app: crate::checkout::State) -> HttpResponse {
    match app
        .db
        .run(|c| {
            use diesel::connection::SimpleConnection;
            c.batch_execute("SELECT 1")
                .map_err(crate::db::DbError::from)
        })
        .await
    {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": "up"})),
        Err(e) => {
            log::error!("health: {e}");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "degraded", "database": "down"}))
        }
    }
}

/// `POST …/checkout` of the synchronous and asynchronous families: 200
/// `{"result_code":"0000","result_message","payment_url"}`.
pub(crate) async fn checkout_reply(
    app: &crate::startup::AppState,
    req: &actix_web::HttpRequest,
    body: web::Payload,
    flow: crate::checkout::Flow,
) -> Result<HttpResponse, crate::error::ApiError> {
    let fields = crate::cafe24::read_body(req, body, app.settings.body_limit_bytes).await?;
    let payment_url = crate::checkout::start(app, flow, &fields).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "result_code": "0000",
        "result_message": "Successfully created checkout",
        "payment_url": payment_url,
    })))
}

/// A small HTML page for the buyer's browser when a callback cannot finish (KOMOJU
/// unreachable): nothing changed, and reloading the same URL tries again.
pub fn retry_page(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Payment status pending</title></head>\
         <body style=\"font-family:sans-serif;max-width:36em;margin:3em auto\"><h1>We could not confirm your payment yet</h1>\
         <p>{}</p><p>Nothing was lost. Please reload this page in a moment.</p></body></html>",
        html_escape::encode_text(message)
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}
