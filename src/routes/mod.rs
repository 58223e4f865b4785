//! HTTP routes: one module per route family of the Cafe24 PG-app wiki (seed
//! `cafe24-pg-app-routes.txt`), plus the operator's health check. Handlers are thin:
//! extract, call one domain function, shape the reply.

pub mod asynchronous_cancellation;
pub mod asynchronous_checkout;
pub mod external_checkout;
pub mod fields;
pub mod guard;
pub mod install;
pub mod komoju_webhook;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod pages;
pub mod settings_forms;
pub mod settings_order_page;
pub mod settings_pages;
pub mod settings_site;
pub mod synchronous_cancellation;
pub mod synchronous_checkout;

use std::collections::BTreeMap;
use std::sync::Mutex;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::responses::*;
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
    .configure(openapi::configure)
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
/// The path and its methods are recorded in [`mounted`].
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    scoped("", path, allow)
}

/// [`resource`] for a `web::scope(prefix)`: actix sees `path`, [`mounted`] records
/// `prefix` + `path`.
pub fn scoped(prefix: &str, path: &str, allow: &'static str) -> actix_web::Resource {
    if let Ok(mut all) = MOUNTED.lock() {
        all.insert(format!("{prefix}{path}"), allow);
    }
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

/// Every path mounted through [`resource`] so far in this process, with its `Allow`.
static MOUNTED: Mutex<BTreeMap<String, &'static str>> = Mutex::new(BTreeMap::new());

/// Every route mounted through [`resource`] and [`scoped`] in this process, as actix
/// spells the path (`/settings/{mall_id}`), with the methods it serves (`["GET",
/// "POST"]`). Filled when an app is configured; the OpenAPI coverage test reads it.
pub fn mounted() -> Vec<(String, Vec<String>)> {
    let all = MOUNTED.lock().map(|m| m.clone()).unwrap_or_default();
    all.into_iter()
        .map(|(path, allow)| {
            let methods = allow.split(',').map(|m| m.trim().to_owned()).collect();
            (path, methods)
        })
        .collect()
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
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "The process serves", body = Liveness),
        (status = 405, response = MethodNotAllowed),
    ))]
async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Liveness { status: Up::Ok })
}

/// 200 of `GET /health`: `{"status":"ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    pub status: Up,
}

/// The liveness status: only `ok`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Up {
    Ok,
}

/// `GET /health/ready`: `ok` (200) or `degraded` (503), each check named.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    pub checks: ReadinessChecks,
}

/// `ok` when every check passed, `degraded` otherwise.
#[derive(Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    Ok,
    Degraded,
}

/// The checks of [`Readiness`].
#[derive(Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// `up` or `down`.
    pub database: DatabaseCheck,
    /// `current`, `pending`, or `unknown` while the database does not answer.
    pub migrations: MigrationsCheck,
}

/// Whether the database answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseCheck {
    Up,
    Down,
}

/// Whether the database's migrations are this build's.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MigrationsCheck {
    Current,
    Pending,
    Unknown,
}

/// `GET /health/ready` (§13): 200 when the database answers and its migrations are
/// current, 503 otherwise; `{"status":"ok"|"degraded","checks":{"database":"up"|"down",
/// "migrations":"current"|"pending"|"unknown"}}` (`unknown` while the database is down).
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready: the database answers, migrations are current", body = Readiness),
        (status = 405, response = MethodNotAllowed),
        (status = 503, description = "Degraded: a check failed (named)", body = Readiness),
    ))]
async fn ready(app: State) -> HttpResponse {
    let r = app.db.readiness().await;
    let ok = r.database && r.migrations_current == Some(true);
    let body = Readiness {
        status: if ok {
            ReadyStatus::Ok
        } else {
            ReadyStatus::Degraded
        },
        checks: ReadinessChecks {
            database: if r.database {
                DatabaseCheck::Up
            } else {
                DatabaseCheck::Down
            },
            migrations: match r.migrations_current {
                Some(true) => MigrationsCheck::Current,
                Some(false) => MigrationsCheck::Pending,
                None => MigrationsCheck::Unknown,
            },
        },
    };
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
    Ok(HttpResponse::Ok().json(CheckoutReply {
        result_code: SUCCESS,
        result_message: "Successfully created checkout",
        payment_url,
    }))
}

/// Cafe24's `result_code` of a success.
pub const SUCCESS: &str = "0000";

/// 200 of a checkout (§6.1, §6.2): the KOMOJU hosted page to send the buyer to.
#[derive(Serialize, ToSchema)]
pub struct CheckoutReply {
    /// `0000`.
    #[schema(pattern = "^0000$", example = "0000")]
    pub result_code: &'static str,
    pub result_message: &'static str,
    /// KOMOJU's hosted payment page of the order's session.
    pub payment_url: String,
}

/// A reply with only a result (§6.4, §6.5): `result_code` and `result_message`.
#[derive(Serialize, ToSchema)]
pub struct ResultReply {
    /// `0000` on success.
    #[schema(pattern = "^[0-9]{4}$", example = "0000")]
    pub result_code: String,
    pub result_message: String,
}

/// 200 of a KOMOJU webhook or a Cafe24 app event: `{"status":"ok","outcome":…}`,
/// recorded and committed.
#[derive(Serialize, ToSchema)]
pub struct AckReply {
    pub status: Up,
    /// Webhooks: `applied`, `ignored`, `duplicate`, `ping`, `not_handled`, `unreadable`,
    /// `unknown_order`, `unknown_status`; app events: `disconnected`, `not_confirmed`,
    /// `ignored`, `deferred`.
    #[schema(pattern = "^[a-z_]{1,40}$")]
    pub outcome: &'static str,
}

/// 302 to `base` with `params` appended (Cafe24's stored `return_url`, or the mall's
/// `pgsuccess`/`pg_fail` page), never cached.
pub(crate) fn found(base: &str, params: &[(&str, &str)]) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, crate::cafe24::append_query(base, params)?))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// A small HTML page, in the buyer's language, for the buyer's browser when a callback
/// cannot finish (KOMOJU unreachable: `why`, logged): nothing changed, and reloading the
/// same URL tries again.
pub fn retry_page(
    req: &HttpRequest,
    status: actix_web::http::StatusCode,
    why: &str,
) -> HttpResponse {
    log::warn!(
        "{} {}: the buyer is asked to reload ({why})",
        req.method(),
        req.path()
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(pages::retry(pages::buyer_lang(req)).into_string())
}

/// The failures of `POST …/checkout` (§6.1, §6.2), each the §3 envelope.
#[derive(utoipa::IntoResponses)]
pub enum CheckoutFailures {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 401)]
    InvalidHash(#[ref_response] InvalidHash),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    #[response(status = 405)]
    MethodNotAllowed(#[ref_response] MethodNotAllowed),
    #[response(status = 408)]
    Timeout(#[ref_response] Timeout),
    #[response(status = 409)]
    Conflict(#[ref_response] Conflict),
    #[response(status = 413)]
    TooLarge(#[ref_response] TooLarge),
    #[response(status = 502)]
    Upstream(#[ref_response] Upstream),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// The failures of `…/checkout/status` (§6.1), each the §3 envelope.
#[derive(utoipa::IntoResponses)]
pub enum StatusFailures {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    #[response(status = 405)]
    MethodNotAllowed(#[ref_response] MethodNotAllowed),
    #[response(status = 408)]
    Timeout(#[ref_response] Timeout),
    #[response(status = 413)]
    TooLarge(#[ref_response] TooLarge),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// The failures of `POST …/cancel` (§6.4, §6.5), each the §3 envelope.
#[derive(utoipa::IntoResponses)]
pub enum CancelFailures {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 401)]
    InvalidHash(#[ref_response] InvalidHash),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    #[response(status = 405)]
    MethodNotAllowed(#[ref_response] MethodNotAllowed),
    #[response(status = 408)]
    Timeout(#[ref_response] Timeout),
    #[response(status = 409)]
    Conflict(#[ref_response] Conflict),
    #[response(status = 413)]
    TooLarge(#[ref_response] TooLarge),
    #[response(status = 422)]
    NotRefundable(#[ref_response] NotRefundable),
    #[response(status = 502)]
    Upstream(#[ref_response] Upstream),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// The failures of a buyer's return from KOMOJU (`…/callback` of every checkout family):
/// the §3 envelope, or a page saying to reload when KOMOJU could not be read.
#[derive(utoipa::IntoResponses)]
pub enum CallbackFailures {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    #[response(status = 405)]
    MethodNotAllowed(#[ref_response] MethodNotAllowed),
    #[response(status = 408)]
    Timeout(#[ref_response] Timeout),
    #[response(status = 413)]
    TooLarge(#[ref_response] TooLarge),
    /// KOMOJU could not be read: a page saying to reload.
    #[response(status = 502, content_type = "text/html")]
    RetryPage(String),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}
