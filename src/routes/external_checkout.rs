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
use serde_json::json;

use super::State;
use crate::checkout::{self, Returned};
use crate::error::ApiError;
use crate::external_checkout::{self as external, Payload};
use crate::orders::state::OrderState;
use crate::orders::Flow;

/// Mounts the family's scope, with CORS for the mall front's calls.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/external-checkout")
            .wrap(
                Cors::default()
                    .allow_any_origin()
                    .send_wildcard()
                    .allowed_methods(vec!["GET", "POST"])
                    .allowed_header(header::CONTENT_TYPE)
                    .max_age(3600),
            )
            .service(super::resource("/script", "GET").route(web::get().to(loader)))
            .service(super::resource("/script/app.js", "GET").route(web::get().to(app_js)))
            .service(super::resource("/script/data", "GET").route(web::get().to(data)))
            .service(super::resource("/script/hmac", "GET").route(web::get().to(hmac)))
            .service(super::resource("/payload", "POST").route(web::post().to(payload)))
            .service(super::resource("/order/review", "GET").route(web::get().to(review)))
            .service(super::resource("/order/pay", "POST").route(web::post().to(pay)))
            .service(
                super::resource("/order/callback", "GET, POST")
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

async fn loader(app: State) -> HttpResponse {
    javascript(external::loader_script(app.public_base()))
}

async fn app_js(app: State) -> HttpResponse {
    javascript(external::app_script(app.public_base()))
}

/// `GET /script/data`: `{"result_code":"0000","mall_id","shop_no","shop_name","currency",
/// "public_ref","payment_types","client_id","review","button_label"}`.
async fn data(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = crate::cafe24::query(&req)?;
    let mall_id = crate::cafe24::mall_id_field(&q)?;
    let shop_no: i32 = q
        .required("shop_no")?
        .parse()
        .map_err(|_| ApiError::invalid("shop_no must be a shop number"))?;
    let merchant = crate::merchant::load(&app, mall_id, Some(shop_no)).await?;
    let shop = external::load_shop(&app, mall_id, shop_no).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "result_code": "0000",
            "mall_id": merchant.mall_id,
            "shop_no": shop_no,
            "shop_name": shop.shop_name,
            "currency": shop.currency,
            "public_ref": merchant.public_ref,
            "payment_types": merchant.payment_types,
            "client_id": app.cafe24_client_id,
            "review": merchant.external_review,
            "button_label": "Pay with KOMOJU",
        })))
}

/// `GET /script/hmac`: `{"result_code":"0000","hmac":…}`. Not an oracle: the mall must be
/// registered and enabled, `client_id` is always this app's, `request_time` within five
/// minutes of now, and each client address may ask a mall a limited number of times.
async fn hmac(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = crate::cafe24::query(&req)?;
    let mall_id = crate::cafe24::mall_id_field(&q)?;
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    if app
        .hmac_limiter
        .check_key(&(ip.clone(), mall_id.to_owned()))
        .is_err()
    {
        log::warn!("script/hmac: rate limit hit by {ip} for mall {mall_id}");
        return Err(ApiError::RateLimited);
    }
    let request_time = q.required("request_time")?;
    let seconds: i64 = request_time
        .parse()
        .ok()
        .filter(|_| request_time.len() <= 12 && request_time.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ApiError::invalid("request_time must be Unix seconds"))?;
    if (seconds - app.clock.unix_seconds()).abs() > external::REQUEST_TIME_TOLERANCE_SECS {
        return Err(ApiError::invalid(
            "request_time is not within 5 minutes of now",
        ));
    }
    let member_id = q.get("member_id").unwrap_or("");
    if member_id.len() > 100 || member_id.chars().any(char::is_control) {
        return Err(ApiError::invalid("member_id is malformed"));
    }
    if let Some(k) = q.optional("client_key") {
        if k != app.cafe24_client_id {
            return Err(ApiError::invalid("client_key is not this app's client id"));
        }
    }
    let merchant = crate::merchant::load(&app, mall_id, None).await?;
    if !merchant.enabled {
        return Err(ApiError::MerchantDisabled);
    }
    use secrecy::ExposeSecret;
    let hmac = external::request_hmac(
        app.cafe24_service_key.expose_secret().as_bytes(),
        mall_id,
        request_time,
        &app.cafe24_client_id,
        member_id,
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"result_code": "0000", "hmac": hmac})))
}

/// `POST /payload`: `{"result_code":"0000","session_url","review_url"}`.
async fn payload(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = crate::cafe24::read_bytes(&req, body, app.body_limits).await?;
    let payload: Payload = crate::cafe24::parse_json_document(&bytes)?;
    let started = external::start(&app, &payload).await?;
    Ok(HttpResponse::Ok().json(json!({
        "result_code": "0000",
        "result_message": "Checkout created",
        "session_url": started.session_url,
        "review_url": started.review_url,
    })))
}

/// Verifies an external order key and loads its order, still pending with a session.
async fn pending_order(app: &State, key: &str) -> Result<crate::db::orders::OrderRow, ApiError> {
    let fields = crate::cafe24::Fields::from_pairs(vec![("key".into(), key.to_owned())])?;
    let order_ref = crate::orders::keys::verify(app, &fields)?;
    if order_ref.flow != Flow::External.as_str() {
        return Err(ApiError::invalid("key belongs to another checkout flow"));
    }
    let order = crate::orders::keys::order_of(app, &order_ref).await?;
    if order.attempt != order_ref.attempt
        || order.state != OrderState::Pending.as_str()
        || order.komoju_session_url.is_none()
    {
        return Err(ApiError::OrderConflict(format!("order is {}", order.state)));
    }
    Ok(order)
}

/// `GET /order/review?key`: the order summary, every value escaped, with a Pay button
/// whose form carries a token only this page can know.
async fn review(app: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = crate::cafe24::query(&req)?;
    let key = q.required("key")?;
    let order = pending_order(&app, key).await?;
    let shop = external::load_shop(&app, &order.mall_id, order.shop_no).await?;
    let esc = |s: &str| html_escape::encode_text(s).into_owned();
    let attr = |s: &str| html_escape::encode_double_quoted_attribute(s).into_owned();
    let rows: String = external::stored_lines(&order)
        .iter()
        .map(|(name, qty, line_total)| {
            format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{} {}</td></tr>",
                esc(name),
                esc(qty),
                esc(line_total),
                esc(&order.currency)
            )
        })
        .collect();
    let total = order.paid_amount_text();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Review your order</title>\
<style>body{{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}}\
main{{max-width:34rem;margin:3rem auto;background:#fff;border-radius:8px;padding:2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}}\
table{{width:100%;border-collapse:collapse}}td,th{{padding:.4rem;border-bottom:1px solid #e4e6ea;text-align:left}}\
.n{{text-align:right}}button{{margin-top:1.5rem;width:100%;padding:.8rem;font-size:1rem;border:0;border-radius:6px;background:#172b4d;color:#fff;cursor:pointer}}</style>\
</head><body><main><h1>Review your order</h1><p>{shop} · order <strong>{order_id}</strong></p>\
<table><thead><tr><th>Item</th><th class=\"n\">Qty</th><th class=\"n\">Amount</th></tr></thead><tbody>{rows}</tbody>\
<tfoot><tr><th>Total</th><th></th><th class=\"n\" id=\"review-total\">{total} {currency}</th></tr></tfoot></table>\
<form method=\"post\" action=\"{base}/api/external-checkout/order/pay\">\
<input type=\"hidden\" name=\"key\" value=\"{key}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\" id=\"review-pay\">Pay with KOMOJU</button></form></main></body></html>",
        shop = esc(if shop.shop_name.is_empty() { &order.mall_id } else { &shop.shop_name }),
        order_id = esc(&order.order_id),
        total = esc(&total),
        currency = esc(&order.currency),
        base = attr(app.public_base()),
        key = attr(key),
        csrf = attr(&external::csrf_token(&app, key)),
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body))
}

/// `POST /order/pay` (form `key`, `csrf`): 303 to the KOMOJU hosted page.
async fn pay(app: State, req: HttpRequest, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let fields = crate::cafe24::read_body(&req, body, app.body_limits).await?;
    let key = fields.required("key")?;
    let csrf = fields.required("csrf")?;
    if !external::csrf_valid(&app, key, csrf) {
        return Err(ApiError::invalid(
            "the form token is not this page's; reload the review page",
        ));
    }
    let order = pending_order(&app, key).await?;
    let url = order.komoju_session_url.unwrap_or_default();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `GET|POST /order/callback?key&session_id`: applies the session (the outbox tells
/// `return_notification_url`), then sends the buyer to the mall: `pgsuccess` when paid or
/// awaiting payment, `pg_fail` otherwise. The mall base comes from the stored order.
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
            return Ok(super::retry_page(StatusCode::BAD_GATEWAY, &msg))
        }
    };
    let state = order
        .state()
        .map_err(|e| ApiError::from_db("reading order", e))?;
    let success =
        state.is_paid() || matches!(state, OrderState::AwaitingPayment | OrderState::Authorized);
    to_mall(&order, success)
}

fn to_mall(order: &crate::db::orders::OrderRow, success: bool) -> Result<HttpResponse, ApiError> {
    let page = if success { "pgsuccess" } else { "pg_fail" };
    super::found(
        &format!("{}/api/shop/{page}", order.return_url.trim_end_matches('/')),
        &[("order_id", &order.order_id)],
    )
}
