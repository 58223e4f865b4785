//! Synchronous checkout (PROTOCOL.md §6.1; wiki "Checkout (Synchronous)"):
//! - `POST /api/synchronous-checkout/checkout` (Cafe24): start a checkout, answer the
//!   KOMOJU `payment_url`;
//! - `GET|POST /api/synchronous-checkout/checkout/callback?key&session_id` (the buyer's
//!   browser, sent back by KOMOJU): read the session from KOMOJU, apply it, redirect to
//!   Cafe24's stored `return_url`;
//! - `POST /api/synchronous-checkout/checkout/status` (Cafe24): the payment details,
//!   signed with H3.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;

use super::fields::{self, Field};
use super::{CheckoutReply, State};
use crate::cafe24;
use crate::cafe24::payment_result::{self, PaymentResult};
use crate::checkout::{self, Returned};
use crate::db::orders::OrderRow;
use crate::error::ApiError;
use crate::merchant::Merchant;
use crate::orders::state::OrderState;
use crate::orders::Flow;
use crate::services::Services;

const PREFIX: &str = "/api/synchronous-checkout/checkout";

/// Mounts the three routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .service(super::scoped(PREFIX, "", "POST").route(web::post().to(checkout)))
            .service(
                super::scoped(PREFIX, "/callback", "GET, POST")
                    .route(web::get().to(callback))
                    .route(web::post().to(callback)),
            )
            .service(
                super::scoped(PREFIX, "/status", "GET, POST")
                    .route(web::post().to(status))
                    .route(web::get().to(status_by_query)),
            ),
    );
}

/// `POST …/checkout` (§6.1): the KOMOJU `payment_url` of the order's session.
#[utoipa::path(post, path = "/api/synchronous-checkout/checkout", tag = "synchronous checkout",
    request_body(description = "Cafe24's payment request (H1)", content(
        (CheckoutRequest = "application/x-www-form-urlencoded"),
        (CheckoutRequest = "application/json"))),
    responses(
        (status = 200, description = "Checkout created (or the same one, repeated)", body = CheckoutReply),
        super::CheckoutFailures,
    ))]
async fn checkout(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    super::checkout_reply(&app, &req, body, Flow::Sync).await
}

/// `GET|POST …/checkout/callback`: 302 to the order's `return_url` with `result_code`
/// (`0000` paid, `9999` otherwise), `result_message`, `key` and `extra_data`.
#[utoipa::path(method(get, post), path = "/api/synchronous-checkout/checkout/callback",
    tag = "synchronous checkout",
    params(
        ("key" = String, Query, description = "The order's signed token"),
        ("session_id" = Option<String>, Query, description = "The KOMOJU session KOMOJU returns the buyer from"),
    ),
    responses(
        (status = 302, description = "To Cafe24's stored return_url with result_code, result_message, key, extra_data",
            headers(("Location" = String))),
        super::CallbackFailures,
    ))]
async fn callback(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fields = cafe24::query_and_body(&req, body, app.body_limits).await?;
    let raw_key = fields.required("key")?.to_owned();
    let order = match checkout::buyer_returned(&app, Flow::Sync, &fields).await? {
        Returned::Applied(order) => order,
        Returned::NotCurrent(order) => {
            let (code, message) = payment_result::NOT_CURRENT_SESSION;
            return redirect(&order, code, message, &raw_key);
        }
        Returned::KomojuUnreachable(msg) => {
            return Ok(super::retry_page(&req, StatusCode::BAD_GATEWAY, &msg))
        }
    };
    let (code, message) =
        payment_result::sync_redirect_result(order.state, order.authorization_held());
    redirect(&order, code, &message, &raw_key)
}

fn redirect(
    order: &OrderRow,
    code: &str,
    message: &str,
    key: &str,
) -> Result<HttpResponse, ApiError> {
    let mut params = vec![
        ("result_code", code),
        ("result_message", message),
        ("key", key),
    ];
    if let Some(extra) = order.extra_data.as_deref() {
        params.push(("extra_data", extra));
    }
    super::found(&order.return_url, &params)
}

/// `POST …/checkout/status` (field `key` in the body): the §6.1 payment details with H3.
#[utoipa::path(post, path = "/api/synchronous-checkout/checkout/status", tag = "synchronous checkout",
    request_body(content(
        (StatusRequest = "application/x-www-form-urlencoded"),
        (StatusRequest = "application/json"))),
    responses(
        (status = 200, description = "The payment details, signed (H3)", body = StatusReply),
        super::StatusFailures,
    ))]
async fn status(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fields = cafe24::query_and_body(&req, body, app.body_limits).await?;
    status_reply(&app, &fields).await
}

/// `GET …/checkout/status?key`: [`status`] with the field in the query string (a GET
/// with a body is refused, so the two are documented apart).
#[utoipa::path(get, path = "/api/synchronous-checkout/checkout/status", tag = "synchronous checkout",
    params(("key" = String, Query, description = "The order's signed token",
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$")),
    responses(
        (status = 200, description = "The payment details, signed (H3)", body = StatusReply),
        super::StatusFailures,
    ))]
async fn status_by_query(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fields = cafe24::query_and_body(&req, body, app.body_limits).await?;
    status_reply(&app, &fields).await
}

/// The order `fields`' `key` names, refreshed from KOMOJU while pending, as §6.1's reply.
async fn status_reply(app: &Services, fields: &cafe24::Fields) -> Result<HttpResponse, ApiError> {
    let key = crate::checkout::key::verify(app, fields)?;
    let mut order = crate::checkout::key::order_of(app, &key).await?;
    let merchant = app.merchants.load(&order.mall_id, None).await?;
    if order.state == OrderState::Pending && order.komoju_session_id.is_some() {
        // The buyer may never have come back: ask KOMOJU, but answer from our records
        // if it cannot say.
        let pk = order.id.clone();
        match checkout::refresh_from_session(app, &merchant, order.clone(), "status").await {
            Ok(o) => order = o,
            Err(e) => {
                log::warn!("status of order {pk}: KOMOJU read failed ({e}); answering from records")
            }
        }
    }
    Ok(HttpResponse::Ok().json(payment_details(app, &merchant, &order)?))
}

/// The §6.1 status reply for an order.
pub fn payment_details(
    app: &Services,
    merchant: &Merchant,
    order: &OrderRow,
) -> Result<StatusReply, ApiError> {
    let state = order.state;
    let held = order.authorization_held();
    let paid = state.is_paid() || held;
    let amount = if paid {
        order.paid_amount_text()
    } else {
        "0".to_owned()
    };
    let tid = order.komoju_payment_id.clone().unwrap_or_default();
    let (result_code, result_message) = payment_result::status_result(state, held);
    Ok(StatusReply(
        PaymentResult {
            partner_id: &order.partner_id,
            paymethod: merchant.paymethod(order.payment_type.as_deref()),
            tid: &tid,
            amount: &amount,
            order_id: &order.order_id,
            currency: &order.currency,
            payed: paid,
            extra_data: order.extra_data.as_deref().unwrap_or_default(),
            result_code,
            result_message: &result_message,
        }
        .status_reply(
            app.cafe24_service_key.expose_secret().as_bytes(),
            merchant.cancel_mode.as_str(),
        ),
    ))
}

/// 200 of `…/checkout/status` (§6.1): the payment details Cafe24's `PaymentResult`
/// renders (every value a string), signed with H3. `cafe24::payment_result` owns the
/// field list; the document's shape is the table `STATUS_FIELDS`.
#[derive(serde::Serialize)]
#[serde(transparent)]
pub struct StatusReply(serde_json::Value);

impl utoipa::PartialSchema for StatusReply {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        fields::object("The §6.1 payment details, signed with H3", &STATUS_FIELDS)
    }
}

impl utoipa::ToSchema for StatusReply {}

/// The fields of the §6.1 status reply, as `cafe24::payment_result` renders them.
const STATUS_FIELDS: [Field; 16] = [
    Field::present("partner_id", "mall_id:shop_no:public_ref").pattern(fields::PARTNER_ID),
    Field::present("paymethod", "`card`, `etc`, or the merchant's override"),
    Field::present("tid", "KOMOJU's payment id; empty before a payment exists").max_length(100),
    Field::present("amount", "The paid amount; `0` when nothing is paid").pattern(fields::AMOUNT),
    Field::present("order_id", "Cafe24's order id"),
    Field::present("currency", "ISO 4217").pattern(fields::CURRENCY),
    Field::present("cancel_mode", "`sync` or `async`").one_of(&["sync", "async"]),
    Field::present("all_cancel_tf", "T or F").one_of(&["T", "F"]),
    Field::present("part_cancel_tf", "T or F").one_of(&["T", "F"]),
    Field::present("escrow_tf", "T or F").one_of(&["T", "F"]),
    Field::present("payed_tf", "`T` when paid").one_of(&["T", "F"]),
    Field::present("easy_pay", "Cafe24's easy-pay flag"),
    Field::present(
        "hash_data",
        "H3 over amount · currency · order_id · partner_id · tid",
    )
    .pattern(fields::BASE64_MAC),
    Field::present("extra_data", "Cafe24's extra_data, echoed"),
    Field::present("result_code", "`0000` paid, `1400` not paid").one_of(&["0000", "1400"]),
    Field::present("result_message", "For people"),
];

crate::request_schema!(
    /// `POST …/synchronous-checkout/checkout` (§6.1).
    CheckoutRequest,
    "Cafe24's payment request, signed with H1; unknown fields are kept on the order",
    &CHECKOUT_FIELDS
);

/// The fields of a checkout request (§6.1) as `checkout::start` reads them.
pub const CHECKOUT_FIELDS: [Field; 12] = [
    Field::required("partner_id", "`{mall_id}:{shop_no}:{public_ref}`")
        .pattern(fields::PARTNER_ID)
        .example("demomall:1:demo-public"),
    Field::required("order_id", "Cafe24's order id")
        .pattern(fields::ORDER_ID)
        .example("20220519-0000029"),
    Field::required("amount", "A positive decimal in Cafe24's format")
        .pattern(fields::AMOUNT)
        .example("3065.00"),
    Field::required("currency", "ISO 4217")
        .pattern(fields::CURRENCY)
        .example("JPY"),
    Field::required(
        "return_url",
        "Where the buyer is sent back; its host must be allowed (§10)",
    )
    .pattern(fields::URL)
    .max_length(2048),
    Field::required(
        "hash_data",
        "H1: base64(HMAC-SHA256(service key, amount · currency · order_id · partner_id))",
    )
    .pattern(fields::BASE64_MAC),
    Field::optional("buyer_id", "The buyer's member id").max_length(100),
    Field::optional("shop_no", "The shop number").pattern(fields::SHOP_NO),
    Field::optional("buyer_email", "The buyer's e-mail address").max_length(200),
    Field::optional("buyer_name", "The buyer's name").max_length(200),
    Field::optional("lang", "The buyer's language").max_length(10),
    Field::optional("extra_data", "Echoed back to Cafe24").max_length(2000),
];

crate::request_schema!(
    /// `…/checkout/status` (§6.1).
    StatusRequest,
    "The order's key",
    &[Field::required("key", "The signed order token given with the checkout's redirect").pattern(fields::ORDER_KEY)]
);
