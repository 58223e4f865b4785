//! Asynchronous checkout (PROTOCOL.md §6.2; wiki "Checkout (Asynchronous)"):
//! - `POST /api/asynchronous-checkout/checkout` (Cafe24): as the synchronous one, plus a
//!   required `return_noty_url`;
//! - `GET|POST /api/asynchronous-checkout/checkout/callback?key&session_id` (the buyer's
//!   browser): read the session, apply it through the state machine (which enqueues the
//!   notification of any change), redirect to `return_url` with `0000` (authorized or
//!   captured), `0001` (failed) or `9999` (cancelled, expired). It sends nothing to
//!   `return_noty_url` itself: the outbox does, once per transition;
//! - the webhook is [`super::komoju_webhook`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::fields::{self, Field};
use super::{CheckoutReply, State};
use crate::cafe24::{self, payment_result};
use crate::checkout::{self, Returned};
use crate::db::orders::OrderRow;
use crate::error::ApiError;
use crate::orders::Flow;

const PREFIX: &str = "/api/asynchronous-checkout/checkout";

/// Mounts checkout and callback.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .service(super::scoped(PREFIX, "", "POST").route(web::post().to(checkout)))
            .service(
                super::scoped(PREFIX, "/callback", "GET, POST")
                    .route(web::get().to(callback))
                    .route(web::post().to(callback)),
            ),
    );
}

/// `POST …/checkout` (§6.2): as the synchronous one, with `return_noty_url`.
#[utoipa::path(post, path = "/api/asynchronous-checkout/checkout", tag = "asynchronous checkout",
    request_body(description = "Cafe24's payment request (H1)", content(
        (AsyncCheckoutRequest = "application/x-www-form-urlencoded"),
        (AsyncCheckoutRequest = "application/json"))),
    responses(
        (status = 200, description = "Checkout created (or the same one, repeated)", body = CheckoutReply),
        super::CheckoutFailures,
    ))]
async fn checkout(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    super::checkout_reply(&app, &req, body, Flow::Async).await
}

/// `GET|POST …/checkout/callback`: 302 to the order's `return_url` with `result_code`
/// (`0000`, `0001`, `9999`), `result_message` and `extra_data`.
#[utoipa::path(method(get, post), path = "/api/asynchronous-checkout/checkout/callback",
    tag = "asynchronous checkout",
    params(
        ("key" = String, Query, description = "The order's signed token"),
        ("session_id" = Option<String>, Query, description = "The KOMOJU session KOMOJU returns the buyer from"),
    ),
    responses(
        (status = 302, description = "To Cafe24's stored return_url with result_code, result_message, extra_data",
            headers(("Location" = String))),
        super::CallbackFailures,
    ))]
async fn callback(
    app: State,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fields = cafe24::query_and_body(&req, body, app.body_limits).await?;
    let order = match checkout::buyer_returned(&app, Flow::Async, &fields).await? {
        Returned::Applied(order) => order,
        Returned::NotCurrent(order) => {
            let (code, message) = payment_result::NOT_CURRENT_SESSION;
            return redirect(&order, code, message);
        }
        Returned::KomojuUnreachable(msg) => {
            return Ok(super::retry_page(&req, StatusCode::BAD_GATEWAY, &msg))
        }
    };
    let (code, message) = payment_result::async_redirect_result(order.state);
    redirect(&order, code, message)
}

fn redirect(order: &OrderRow, code: &str, message: &str) -> Result<HttpResponse, ApiError> {
    let mut params = vec![("result_code", code), ("result_message", message)];
    if let Some(extra) = order.extra_data.as_deref() {
        params.push(("extra_data", extra));
    }
    super::found(&order.return_url, &params)
}

crate::request_schema!(
    /// `POST …/asynchronous-checkout/checkout` (§6.2).
    AsyncCheckoutRequest,
    "Cafe24's payment request, signed with H1, with return_noty_url; unknown fields are kept on the order",
    &ASYNC_CHECKOUT_FIELDS
);

/// The synchronous checkout's fields (§6.1) and `return_noty_url`.
const ASYNC_CHECKOUT_FIELDS: [Field; 13] = {
    use super::synchronous_checkout::CHECKOUT_FIELDS as F;
    let [a, b, c, d, e, f, g, h, i, j, k, l] = F;
    [
        a,
        b,
        c,
        d,
        e,
        Field::required(
            "return_noty_url",
            "Where the payment notice is POSTed (§9); its host must be allowed",
        )
        .pattern(fields::URL)
        .max_length(2048),
        f,
        g,
        h,
        i,
        j,
        k,
        l,
    ]
};
