//! External checkout (PROTOCOL.md §6.3; wiki "External Checkout"), under
//! `/api/external-checkout`:
//! - `GET /script`: the loader installed by Cafe24's Scripttag API (stable bytes, long
//!   cache, CORS `*`); `GET /script/app.js`: the button script it loads;
//! - `GET /script/data?mall_id&shop_no`: what the button shows;
//! - `GET /script/hmac?mall_id&request_time&member_id`: the precreateOrder request HMAC,
//!   for registered, enabled malls only, near now, rate-limited;
//! - `POST /payload`: the reservation → order and KOMOJU session;
//! - `GET /order/review?key`, `POST /order/pay`: the optional review page;
//! - `GET /order/callback?key&session_id`: KOMOJU's return → the mall's `pgsuccess` or
//!   `pg_fail` page, while the outbox tells `return_notification_url`.

use actix_cors::Cors;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::fields::{self, Field};
use super::{State, SUCCESS};
use crate::checkout::{self, Returned};
use crate::error::responses::*;
use crate::error::ApiError;
use crate::external_checkout::{self as external, Payload};
use crate::orders::state::OrderState;
use crate::orders::Flow;

const PREFIX: &str = "/api/external-checkout";

/// Mounts the family's scope, with CORS for the mall front's calls.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .wrap(
                Cors::default()
                    .allow_any_origin()
                    .send_wildcard()
                    .allowed_methods(vec!["GET", "POST"])
                    .allowed_header(header::CONTENT_TYPE)
                    .max_age(3600),
            )
            .service(super::scoped(PREFIX, "/script", "GET").route(web::get().to(loader)))
            .service(super::scoped(PREFIX, "/script/app.js", "GET").route(web::get().to(app_js)))
            .service(super::scoped(PREFIX, "/script/data", "GET").route(web::get().to(data)))
            .service(super::scoped(PREFIX, "/script/hmac", "GET").route(web::get().to(hmac)))
            .service(super::scoped(PREFIX, "/payload", "POST").route(web::post().to(payload)))
            .service(super::scoped(PREFIX, "/order/review", "GET").route(web::get().to(review)))
            .service(super::scoped(PREFIX, "/order/pay", "POST").route(web::post().to(pay)))
            .service(
                super::scoped(PREFIX, "/order/callback", "GET, POST")
                    .route(web::get().to(callback))
                    .route(web::post().to(callback)),
            ),
    );
}

fn javascript(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=604800"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

/// `GET /script`: the loader the Scripttag API installs.
#[utoipa::path(get, path = "/api/external-checkout/script", tag = "external checkout",
    responses(
        (status = 200, description = "The loader script (stable bytes, long cache, CORS *)",
            content_type = "application/javascript", body = String),
        (status = 405, response = MethodNotAllowed),
    ))]
async fn loader(app: State) -> HttpResponse {
    javascript(external::loader_script(app.public_base()))
}

/// `GET /script/app.js`: the button script.
#[utoipa::path(get, path = "/api/external-checkout/script/app.js", tag = "external checkout",
    responses(
        (status = 200, description = "The button script", content_type = "application/javascript", body = String),
        (status = 405, response = MethodNotAllowed),
    ))]
async fn app_js(app: State) -> HttpResponse {
    javascript(external::app_script(app.public_base()))
}

/// `GET /script/data`: `{"result_code":"0000","mall_id","shop_no","shop_name","currency",
/// "public_ref","payment_types","client_id","review","lang","button_label","messages"}`,
/// the texts in `lang` (the page's), else `Accept-Language`, else the shop's language.
#[utoipa::path(get, path = "/api/external-checkout/script/data", tag = "external checkout",
    params(
        ("mall_id" = String, Query, description = "The Cafe24 mall id", example = "demomall"),
        ("shop_no" = String, Query, description = "The shop number", example = "1"),
        ("lang" = Option<String>, Query, description = "The page's language (`ko`, `ko_KR`…); else Accept-Language", example = "ko_KR"),
    ),
    responses(
        (status = 200, description = "What the button shows", body = ButtonData),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 405, response = MethodNotAllowed),
        (status = 503, response = Unavailable),
    ))]
async fn data(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = crate::cafe24::query(&req)?;
    let mall_id = crate::cafe24::mall_id_field(&q)?;
    let shop_no: i32 = q
        .required("shop_no")?
        .parse()
        .map_err(|_| ApiError::invalid("shop_no must be a shop number"))?;
    let merchant = app.merchants.load(mall_id, Some(shop_no)).await?;
    let shop = external::load_shop(&app, mall_id, shop_no).await?;
    let accept = req.headers().get(header::ACCEPT_LANGUAGE);
    let lang = external::button_lang(
        q.optional("lang"),
        accept.and_then(|v| v.to_str().ok()),
        &shop.language_code,
    );
    let texts = external::button_texts(lang);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ButtonData {
            result_code: SUCCESS,
            mall_id: merchant.mall_id.to_string(),
            shop_no,
            shop_name: shop.shop_name,
            currency: shop.currency,
            public_ref: merchant.public_ref.clone(),
            payment_types: merchant.payment_types.clone(),
            client_id: app.cafe24_client_id.clone(),
            review: merchant.external_review,
            lang: texts.lang,
            button_label: texts.label,
            messages: ButtonMessages {
                failed: texts.failed,
                reserve: texts.reserve,
            },
        }))
}

/// `GET /script/hmac`: `{"result_code":"0000","hmac":…}`. Not an oracle: the mall must be
/// registered and enabled, `client_id` is always this app's, `request_time` within five
/// minutes of now, and each client address may ask a mall a limited number of times.
#[utoipa::path(get, path = "/api/external-checkout/script/hmac", tag = "external checkout",
    params(
        ("mall_id" = String, Query, description = "The Cafe24 mall id", example = "demomall"),
        ("request_time" = String, Query, description = "Unix seconds, within five minutes of now"),
        ("member_id" = Option<String>, Query, description = "The buyer's member id, if logged in"),
    ),
    responses(
        (status = 200, description = "The precreateOrder request HMAC", body = HmacReply),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 405, response = MethodNotAllowed),
        (status = 429, response = RateLimited), (status = 503, response = Unavailable),
    ))]
async fn hmac(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = crate::cafe24::query(&req)?;
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let hmac = external::signed_request(&app, &peer, &q).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(HmacReply {
            result_code: SUCCESS,
            hmac,
        }))
}

/// `POST /payload`: `{"result_code":"0000","session_url","review_url"}`.
#[utoipa::path(post, path = "/api/external-checkout/payload", tag = "external checkout",
    request_body(description = "Cafe24's reservation", content((Reservation = "application/json"))),
    responses(
        (status = 200, description = "Order and KOMOJU session created", body = ReservationReply),
        super::CheckoutFailures,
    ))]
async fn payload(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = crate::cafe24::read_bytes(&req, body, app.body_limits).await?;
    let payload: Payload = crate::cafe24::parse_json_document(&bytes)?;
    let started = external::start(&app, &payload).await?;
    Ok(HttpResponse::Ok().json(ReservationReply {
        result_code: SUCCESS,
        result_message: "Checkout created",
        session_url: started.session_url,
        review_url: started.review_url,
    }))
}

/// `GET /order/review?key`: the order summary, every value escaped, with a Pay button
/// whose form carries a token only this page can know.
#[utoipa::path(get, path = "/api/external-checkout/order/review", tag = "external checkout",
    params(("key" = String, Query, description = "The order's signed token")),
    responses(
        (status = 200, description = "The review page", content_type = "text/html", body = String),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 405, response = MethodNotAllowed),
        (status = 409, response = Conflict), (status = 503, response = Unavailable),
    ))]
async fn review(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = crate::cafe24::query(&req)?;
    let review = external::review(&app, q.required("key")?).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(super::pages::review(&review, super::pages::buyer_lang(&req)).into_string()))
}

/// `POST /order/pay` (form `key`, `csrf`): 303 to the KOMOJU hosted page.
#[utoipa::path(post, path = "/api/external-checkout/order/pay", tag = "external checkout",
    request_body(content((PayForm = "application/x-www-form-urlencoded"), (PayForm = "application/json"))),
    responses(
        (status = 303, description = "To the KOMOJU hosted page", headers(("Location" = String))),
        super::CheckoutFailures,
    ))]
async fn pay(app: State, req: HttpRequest, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let fields = crate::cafe24::read_body(&req, body, app.body_limits).await?;
    let url = external::pay(&app, fields.required("key")?, fields.required("csrf")?).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `GET|POST /order/callback?key&session_id`: applies the session (the outbox tells
/// `return_notification_url`), then sends the buyer to the mall: `pgsuccess` when paid or
/// awaiting payment, `pg_fail` otherwise. The mall base comes from the stored order.
#[utoipa::path(method(get, post), path = "/api/external-checkout/order/callback", tag = "external checkout",
    params(
        ("key" = String, Query, description = "The order's signed token"),
        ("session_id" = Option<String>, Query, description = "The KOMOJU session KOMOJU returns the buyer from"),
    ),
    responses(
        (status = 302, description = "To the mall's pgsuccess or pg_fail page", headers(("Location" = String))),
        super::CallbackFailures,
    ))]
async fn callback(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fields = crate::cafe24::query_and_body(&req, body, app.body_limits).await?;
    let order = match checkout::buyer_returned(&app, Flow::External, &fields).await? {
        Returned::Applied(order) => order,
        Returned::NotCurrent(order) => return to_mall(&order, false),
        Returned::KomojuUnreachable(msg) => {
            return Ok(super::retry_page(&req, StatusCode::BAD_GATEWAY, &msg))
        }
    };
    let state = order.state;
    let success =
        state.is_paid() || matches!(state, OrderState::AwaitingPayment | OrderState::Authorized);
    to_mall(&order, success)
}

fn to_mall(order: &crate::db::orders::OrderRow, success: bool) -> Result<HttpResponse, ApiError> {
    let page = if success { "pgsuccess" } else { "pg_fail" };
    let base = url::Url::parse(&order.return_url).map_err(|e| {
        log::error!(
            "order {}: stored return_url_base is not a URL ({e})",
            order.id
        );
        ApiError::Internal
    })?;
    let page_url = crate::urls::with_path(&base, &["api", "shop", page]);
    super::found(page_url.as_str(), &[("order_id", &order.order_id)])
}

/// 200 of `GET /script/data`: what the button shows.
#[derive(Serialize, ToSchema)]
pub struct ButtonData {
    #[schema(pattern = "^0000$", example = "0000")]
    pub result_code: &'static str,
    pub mall_id: String,
    pub shop_no: i32,
    pub shop_name: String,
    /// ISO 4217.
    pub currency: String,
    pub public_ref: String,
    /// KOMOJU payment types offered, in order.
    pub payment_types: Vec<String>,
    /// This app's Cafe24 client id.
    pub client_id: String,
    /// Whether a review page comes before KOMOJU.
    pub review: bool,
    /// The language of the texts below: `ja`, `ko` or `en`.
    #[schema(pattern = "^(ja|ko|en)$", example = "ko")]
    pub lang: &'static str,
    /// The button's label in that language.
    pub button_label: String,
    pub messages: ButtonMessages,
}

/// The button's messages, in [`ButtonData::lang`].
#[derive(Serialize, ToSchema)]
pub struct ButtonMessages {
    /// The payment could not be started.
    pub failed: String,
    /// Cafe24 could not reserve the order.
    pub reserve: String,
}

/// 200 of `GET /script/hmac`.
#[derive(Serialize, ToSchema)]
pub struct HmacReply {
    #[schema(pattern = "^0000$", example = "0000")]
    pub result_code: &'static str,
    /// base64(HMAC-SHA256) of the precreateOrder request.
    pub hmac: String,
}

/// 200 of `POST /payload`.
#[derive(Serialize, ToSchema)]
pub struct ReservationReply {
    #[schema(pattern = "^0000$", example = "0000")]
    pub result_code: &'static str,
    pub result_message: &'static str,
    /// The KOMOJU hosted page.
    pub session_url: String,
    /// The review page, when the merchant shows one first.
    pub review_url: Option<String>,
}

crate::request_schema!(
    /// `POST /api/external-checkout/order/pay` (the review page's form).
    PayForm,
    "The review page's form",
    &[
        Field::required("key", "The order's signed token").pattern(fields::ORDER_KEY),
        Field::required("csrf", "The token only the review page knows").max_length(200),
    ]
);

/// A number Cafe24 may send as a JSON string or number.
#[derive(utoipa::ToSchema, serde::Serialize)]
#[serde(untagged)]
pub enum Text {
    Str(String),
    Num(f64),
}

/// One cart line of a reservation.
#[derive(utoipa::ToSchema)]
pub struct Line {
    #[schema(required = false)]
    pub product_no: Text,
    #[schema(required = false)]
    pub product_name: String,
    #[schema(required = false)]
    pub variant_code: String,
    pub quantity: Text,
    pub product_price: Text,
    #[schema(required = false)]
    pub option_price: Text,
}

/// `POST /api/external-checkout/payload`: Cafe24's reservation as the button posts it
/// (`external_checkout::Payload` parses it).
#[derive(utoipa::ToSchema)]
pub struct Reservation {
    pub mall_id: String,
    pub shop_no: Text,
    #[schema(required = false)]
    pub member_id: String,
    #[schema(required = false)]
    pub is_guest: bool,
    pub currency: String,
    pub order_id: String,
    pub return_notification_url: String,
    pub return_url_base: String,
    pub response_time: Text,
    /// Cafe24's HMAC over the reservation.
    pub hmac: String,
    pub order: Vec<Line>,
    /// The front's total, when sent: it must equal the lines'.
    #[schema(required = false)]
    pub total: Text,
}
