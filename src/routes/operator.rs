//! The operator API under `/operator/api/v1/` ([`crate::operator`]), behind
//! `Authorization: Bearer <operator token>`: `GET orders?mall&state&since&limit`,
//! `GET orders/{mall_id}/{order_id}`, `GET notifications?state&limit`,
//! `POST notifications/{id}/retry`, `GET merchants`. Every refusal is 401 `unauthorized`
//! in the §3 envelope, saying nothing more.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::State;
use crate::db::notifications::NotificationState;
use crate::error::responses::*;
use crate::error::ApiError;
use crate::operator::{self, OrderFilter};
use crate::orders::state::OrderState;

const PREFIX: &str = "/operator/api/v1";

/// Mounts the operator API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .service(super::scoped(PREFIX, "/orders", "GET").route(web::get().to(orders)))
            .service(
                super::scoped(PREFIX, "/orders/{mall_id}/{order_id}", "GET")
                    .route(web::get().to(order)),
            )
            .service(
                super::scoped(PREFIX, "/notifications", "GET").route(web::get().to(notifications)),
            )
            .service(
                super::scoped(PREFIX, "/notifications/{id}/retry", "POST")
                    .route(web::post().to(retry)),
            )
            .service(super::scoped(PREFIX, "/merchants", "GET").route(web::get().to(merchants))),
    );
}

/// The bearer token must be a valid operator token at the service clock.
fn authorize(app: &State, req: &HttpRequest) -> Result<(), ApiError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    app.operator_keys
        .verify(authorization, app.clock.unix_seconds())
        .map_err(|_| ApiError::Unauthorized)
}

fn limit(q: &crate::cafe24::Fields) -> Result<i64, ApiError> {
    q.optional("limit")
        .map(|l| {
            l.parse::<i64>()
                .map_err(|_| ApiError::invalid("limit must be a whole number"))
        })
        .transpose()
        .map(|l| l.unwrap_or(50))
}

fn reply(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `GET orders?mall&state&since&limit`: orders newest first.
#[utoipa::path(get, path = "/operator/api/v1/orders", tag = "operator API",
    security(("operator_token" = [])),
    params(
        ("mall" = Option<String>, Query, description = "Only this mall",
            pattern = "^[a-z0-9_-]{1,50}$"),
        ("state" = Option<String>, Query, description = "Only this §5 state",
            pattern = "^(pending|awaiting_payment|authorized|paid|amount_mismatch|partially_refunded|refunded|cancelled|expired|failed)$"),
        ("since" = Option<String>, Query, description = "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)",
            pattern = "^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z?)?$"),
        ("limit" = Option<i64>, Query, description = "At most this many (50; 1 to 1000)",
            minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "The orders", body = OperatorOrders),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized), (status = 405, response = MethodNotAllowed),
        (status = 503, response = Unavailable),
    ))]
async fn orders(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&app, &req)?;
    let q = crate::cafe24::query(&req)?;
    let filter = OrderFilter {
        mall_id: q.optional("mall").map(str::to_owned),
        state: q
            .optional("state")
            .map(|s| {
                OrderState::parse(s).ok_or_else(|| ApiError::invalid("state is not an order state"))
            })
            .transpose()?,
        since: q
            .optional("since")
            .map(|s| crate::operator::parse_since(s).map_err(ApiError::invalid))
            .transpose()?,
        limit: limit(&q)?,
    };
    Ok(reply(operator::orders(&app, filter).await?))
}

/// `GET orders/{mall_id}/{order_id}`: one order with its timeline.
#[utoipa::path(get, path = "/operator/api/v1/orders/{mall_id}/{order_id}", tag = "operator API",
    security(("operator_token" = [])),
    params(
        ("mall_id" = String, Path, description = "The Cafe24 mall id"),
        ("order_id" = String, Path, description = "Cafe24's order_id"),
    ),
    responses(
        (status = 200, description = "The order, its timeline, notifications and refunds", body = OperatorOrderDetail),
        (status = 400, response = BadRequest), (status = 404, response = NotFound),
        (status = 401, response = Unauthorized), (status = 405, response = MethodNotAllowed),
        (status = 503, response = Unavailable),
    ))]
async fn order(
    app: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&app, &req)?;
    let (mall_id, order_id) = path.into_inner();
    Ok(reply(operator::order(&app, &mall_id, &order_id).await?))
}

/// `GET notifications?state&limit`: the outbox, newest first.
#[utoipa::path(get, path = "/operator/api/v1/notifications", tag = "operator API",
    security(("operator_token" = [])),
    params(
        ("state" = Option<String>, Query, description = "pending, delivered or dead",
            pattern = "^(pending|delivered|dead)$"),
        ("limit" = Option<i64>, Query, description = "At most this many (50; 1 to 1000)",
            minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "The notifications", body = OperatorNotifications),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized), (status = 405, response = MethodNotAllowed),
        (status = 503, response = Unavailable),
    ))]
async fn notifications(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&app, &req)?;
    let q = crate::cafe24::query(&req)?;
    let state = q
        .optional("state")
        .map(|s| {
            NotificationState::parse(s)
                .ok_or_else(|| ApiError::invalid("state must be pending, delivered or dead"))
        })
        .transpose()?;
    Ok(reply(
        operator::notifications(&app, state, limit(&q)?).await?,
    ))
}

/// `POST notifications/{id}/retry`: due now, with a fresh schedule.
#[utoipa::path(post, path = "/operator/api/v1/notifications/{id}/retry", tag = "operator API",
    security(("operator_token" = [])),
    params(("id" = i64, Path, description = "The notification id")),
    responses(
        (status = 200, description = "The notification is due now", body = Retried),
        (status = 400, response = BadRequest), (status = 404, response = NotFound),
        (status = 401, response = Unauthorized), (status = 405, response = MethodNotAllowed),
        (status = 503, response = Unavailable),
    ))]
async fn retry(
    app: State,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    authorize(&app, &req)?;
    Ok(reply(operator::retry(&app, path.into_inner()).await?))
}

/// `GET merchants`: every mall with its shops, secrets masked.
#[utoipa::path(get, path = "/operator/api/v1/merchants", tag = "operator API",
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "The merchants", body = OperatorMerchants),
        (status = 401, response = Unauthorized), (status = 405, response = MethodNotAllowed),
        (status = 503, response = Unavailable),
    ))]
async fn merchants(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&app, &req)?;
    Ok(reply(operator::merchants(&app).await?))
}

/// One order in the operator API (`crate::operator` renders the replies; these are their
/// shapes).
#[derive(utoipa::ToSchema)]
pub struct OperatorOrder {
    pub mall_id: String,
    pub order_id: String,
    pub shop_no: i32,
    /// `sync`, `async` or `external`.
    pub flow: String,
    /// A §5 state.
    pub state: String,
    /// Minor units.
    pub amount: i64,
    pub amount_text: String,
    pub currency: String,
    pub attempt: i32,
    pub komoju_session_id: Option<String>,
    pub komoju_payment_id: Option<String>,
    pub payment_type: Option<String>,
    pub captured_amount: Option<i64>,
    /// What KOMOJU charged when it converted the currency (minor units of
    /// `charged_currency`).
    pub charged_amount: Option<i64>,
    pub charged_currency: Option<String>,
    pub refunded_amount: i64,
    pub created_at: String,
    pub updated_at: String,
    pub reconciled_at: Option<String>,
}

/// `GET /operator/api/v1/orders`.
#[derive(utoipa::ToSchema)]
pub struct OperatorOrders {
    pub orders: Vec<OperatorOrder>,
}

/// `GET /operator/api/v1/orders/{mall_id}/{order_id}`: the order with its `timeline`,
/// `notifications` and `refunds`.
#[derive(utoipa::ToSchema)]
pub struct OperatorOrderDetail {
    pub mall_id: String,
    pub order_id: String,
    pub state: String,
    #[schema(value_type = Vec<Object>)]
    pub timeline: Vec<serde_json::Value>,
    pub notifications: Vec<OperatorNotification>,
    /// Each with `bank_account_url` for a konbini, bank-transfer or Pay-easy refund: the
    /// page where the buyer gives the bank account (a capability link).
    #[schema(value_type = Vec<Object>)]
    pub refunds: Vec<serde_json::Value>,
    /// Second captures for the order after it was paid, and their refunds.
    #[schema(value_type = Vec<Object>)]
    pub duplicate_payments: Vec<serde_json::Value>,
}

/// One notification of the outbox.
#[derive(utoipa::ToSchema)]
pub struct OperatorNotification {
    pub id: i64,
    pub kind: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: String,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

/// `GET /operator/api/v1/notifications`.
#[derive(utoipa::ToSchema)]
pub struct OperatorNotifications {
    pub notifications: Vec<OperatorNotification>,
}

/// `POST /operator/api/v1/notifications/{id}/retry`.
#[derive(utoipa::ToSchema)]
pub struct Retried {
    pub id: i64,
    pub retried: bool,
}

/// `GET /operator/api/v1/merchants`: every mall with its shops, secrets masked.
#[derive(utoipa::ToSchema)]
pub struct OperatorMerchants {
    #[schema(value_type = Vec<Object>)]
    pub merchants: Vec<serde_json::Value>,
}
