//! The operator API under `/operator/api/v1/` ([`crate::operator`]), behind
//! `Authorization: Bearer <operator token>`: `GET orders?mall&state&since&limit`,
//! `GET orders/{mall_id}/{order_id}`, `GET notifications?state&limit`,
//! `POST notifications/{id}/retry`, `GET merchants`. Every refusal is 401 `unauthorized`
//! in the §3 envelope, saying nothing more.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::State;
use crate::db::notifications::NotificationState;
use crate::error::ApiError;
use crate::operator::{self, OrderFilter};
use crate::orders::state::OrderState;

/// Mounts the operator API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/operator/api/v1")
            .service(super::resource("/orders", "GET").route(web::get().to(orders)))
            .service(
                super::resource("/orders/{mall_id}/{order_id}", "GET").route(web::get().to(order)),
            )
            .service(super::resource("/notifications", "GET").route(web::get().to(notifications)))
            .service(
                super::resource("/notifications/{id}/retry", "POST").route(web::post().to(retry)),
            )
            .service(super::resource("/merchants", "GET").route(web::get().to(merchants))),
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

async fn order(
    app: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&app, &req)?;
    let (mall_id, order_id) = path.into_inner();
    Ok(reply(operator::order(&app, &mall_id, &order_id).await?))
}

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

async fn retry(
    app: State,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    authorize(&app, &req)?;
    Ok(reply(operator::retry(&app, path.into_inner()).await?))
}

async fn merchants(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&app, &req)?;
    Ok(reply(operator::merchants(&app).await?))
}
