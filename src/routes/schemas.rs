//! The wire shapes of the routes, for the OpenAPI document only ([`super::openapi`]):
//! request fields as Cafe24, KOMOJU and the mall front send them, the replies the
//! handlers build, and the §3 error envelope with one shared response per status.
//!
//! Unknown fields are allowed in every request shape (Cafe24's are kept, never an
//! error). Nothing here is parsed or serialized at run time: handlers read
//! [`crate::cafe24::Fields`] (the exact strings received) and build their replies with
//! `json!`; schemathesis in CI (`.ci/schemathesis`) checks that the two agree.

#![allow(dead_code)] // Read by the OpenAPI derive only.

use utoipa::{ToResponse, ToSchema};

/// The §3 error envelope every failure is answered with (PROTOCOL.md §3).
#[derive(ToSchema)]
#[schema(example = json!({"result_code": "9999", "result_message": "amount is required", "error": "invalid_request"}))]
pub struct ErrorEnvelope {
    /// Always `9999` on a failure.
    #[schema(pattern = "^[0-9]{4}$")]
    result_code: String,
    /// What went wrong, for people; never a secret or internal detail.
    result_message: String,
    /// The stable code of the §3 table (`invalid_signature`: a KOMOJU webhook whose
    /// `X-Komoju-Signature` does not hold).
    error: ErrorCode,
}

/// The §3 error codes.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidAmount,
    UnsupportedCurrency,
    InvalidHash,
    InvalidSignature,
    UrlNotAllowed,
    UnknownMerchant,
    MerchantDisabled,
    OrderNotFound,
    OrderConflict,
    AmountExceedsRefundable,
    TidMismatch,
    NotRefundable,
    UpstreamError,
    Unavailable,
    RateLimited,
    Unauthorized,
    Forbidden,
    InternalError,
}

/// 400: `invalid_request` (a field missing or malformed, a body that does not parse, a
/// content type other than form or JSON), `invalid_amount`, `unsupported_currency`,
/// `url_not_allowed`.
#[derive(ToResponse)]
#[response(
    description = "invalid_request, invalid_amount, unsupported_currency or url_not_allowed (§3 envelope)"
)]
pub struct BadRequest(ErrorEnvelope);

/// 401: `invalid_hash` (Cafe24's `hash_data`, the reservation's `hmac`).
#[derive(ToResponse)]
#[response(description = "invalid_hash: hash_data (or the reservation's hmac) is missing or wrong")]
pub struct InvalidHash(ErrorEnvelope);

/// 401: `unauthorized` (the operator API without a valid bearer token).
#[derive(ToResponse)]
#[response(description = "unauthorized: no valid operator bearer token")]
pub struct Unauthorized(ErrorEnvelope);

/// 401: `invalid_signature` (a KOMOJU webhook).
#[derive(ToResponse)]
#[response(
    description = "invalid_signature: X-Komoju-Signature is missing or wrong; nothing was read or stored"
)]
pub struct InvalidSignature(ErrorEnvelope);

/// 403: `merchant_disabled`.
#[derive(ToResponse)]
#[response(description = "merchant_disabled: the mall is registered but disabled")]
pub struct Forbidden(ErrorEnvelope);

/// 403: `forbidden` (Cafe24's lifecycle webhook without the right `x-api-key`).
#[derive(ToResponse)]
#[response(
    description = "forbidden: x-api-key is missing or not CAFE24_WEBHOOK_API_KEY; nothing was read or done"
)]
pub struct ApiKeyRefused(ErrorEnvelope);

/// 404: `unknown_merchant`, `order_not_found`, or `invalid_request` for a missing row.
#[derive(ToResponse)]
#[response(
    description = "unknown_merchant, order_not_found, or invalid_request naming what does not exist"
)]
pub struct NotFound(ErrorEnvelope);

/// 405: another method than the path serves; `Allow` names those it does.
#[derive(ToResponse)]
#[response(
    description = "invalid_request: this method is not served here (the Allow header names those that are)",
    headers(("Allow" = String, description = "The methods this path serves, e.g. `GET, POST`"))
)]
pub struct MethodNotAllowed(ErrorEnvelope);

/// 408: the body did not arrive within `BODY_TIMEOUT_SECS` (the connection is closed).
#[derive(ToResponse)]
#[response(
    description = "invalid_request: the body did not arrive within BODY_TIMEOUT_SECS; the connection is closed"
)]
pub struct Timeout(ErrorEnvelope);

/// 409: `order_conflict`, `amount_exceeds_refundable`, `tid_mismatch`.
#[derive(ToResponse)]
#[response(description = "order_conflict, amount_exceeds_refundable or tid_mismatch")]
pub struct Conflict(ErrorEnvelope);

/// 413: the body is larger than `BODY_LIMIT_BYTES`.
#[derive(ToResponse)]
#[response(description = "invalid_request: the body is larger than BODY_LIMIT_BYTES")]
pub struct TooLarge(ErrorEnvelope);

/// 422: `not_refundable`.
#[derive(ToResponse)]
#[response(description = "not_refundable: KOMOJU cannot refund this payment type by API")]
pub struct NotRefundable(ErrorEnvelope);

/// 429: `rate_limited`.
#[derive(ToResponse)]
#[response(description = "rate_limited: too many requests from this address for this mall")]
pub struct RateLimited(ErrorEnvelope);

/// 502: `upstream_error`.
#[derive(ToResponse)]
#[response(
    description = "upstream_error: KOMOJU answered 5xx, timed out, or answered what cannot be read"
)]
pub struct Upstream(ErrorEnvelope);

/// 503: `unavailable`.
#[derive(ToResponse)]
#[response(description = "unavailable: the database cannot be reached; retry later")]
pub struct Unavailable(ErrorEnvelope);

/// `POST …/synchronous-checkout/checkout` (§6.1), form or JSON. Unknown fields are kept
/// on the order (`extra_data`), never an error.
#[derive(ToSchema)]
pub struct CheckoutRequest {
    /// `{mall_id}:{shop_no}:{public_ref}`.
    #[schema(example = "demomall:1:demo-public")]
    partner_id: String,
    #[schema(example = "20220519-0000029")]
    order_id: String,
    /// A positive decimal in Cafe24's format (`3065.00`).
    #[schema(example = "3065.00")]
    amount: String,
    /// ISO 4217 (`JPY`, `KRW`, `USD`, …).
    #[schema(example = "JPY")]
    currency: String,
    /// Where the buyer is sent back; its host must be allowed (§10).
    return_url: String,
    /// H1: base64(HMAC-SHA256(service key, amount · currency · order_id · partner_id)).
    hash_data: String,
    #[schema(required = false)]
    buyer_id: String,
    #[schema(required = false)]
    shop_no: String,
    #[schema(required = false)]
    buyer_email: String,
    #[schema(required = false)]
    buyer_name: String,
    #[schema(required = false)]
    lang: String,
    #[schema(required = false)]
    extra_data: String,
}

/// `POST …/asynchronous-checkout/checkout` (§6.2): as [`CheckoutRequest`], plus
/// `return_noty_url`.
#[derive(ToSchema)]
pub struct AsyncCheckoutRequest {
    #[schema(example = "demomall:1:demo-public")]
    partner_id: String,
    order_id: String,
    #[schema(example = "3065.00")]
    amount: String,
    #[schema(example = "JPY")]
    currency: String,
    return_url: String,
    /// Where the payment notice is POSTed (§9); its host must be allowed.
    return_noty_url: String,
    hash_data: String,
    #[schema(required = false)]
    buyer_id: String,
    #[schema(required = false)]
    shop_no: String,
    #[schema(required = false)]
    buyer_email: String,
    #[schema(required = false)]
    buyer_name: String,
    #[schema(required = false)]
    lang: String,
    #[schema(required = false)]
    extra_data: String,
}

/// 200 of a checkout: the KOMOJU hosted page to send the buyer to.
#[derive(ToSchema)]
pub struct CheckoutReply {
    #[schema(example = "0000")]
    result_code: String,
    result_message: String,
    payment_url: String,
}

/// `…/checkout/status` (§6.1): the order's `key`.
#[derive(ToSchema)]
pub struct StatusRequest {
    /// The signed order token given with the checkout's redirect.
    key: String,
}

/// 200 of `…/checkout/status` (§6.1), signed with H3.
#[derive(ToSchema)]
pub struct StatusReply {
    partner_id: String,
    /// `card`, `etc`, or the merchant's override.
    paymethod: String,
    /// KOMOJU's payment id; empty before a payment exists.
    tid: String,
    /// The paid amount; `0` when nothing is paid.
    amount: String,
    order_id: String,
    currency: String,
    /// `sync` or `async`.
    cancel_mode: String,
    all_cancel_tf: String,
    part_cancel_tf: String,
    escrow_tf: String,
    /// `T` when paid.
    payed_tf: String,
    easy_pay: String,
    /// H3 over `amount · currency · order_id · partner_id · tid`.
    hash_data: String,
    extra_data: String,
    /// `0000` paid, `1400` not paid.
    result_code: String,
    result_message: String,
}

/// `POST …/cancel` (§6.4, §6.5), form or JSON.
#[derive(ToSchema)]
pub struct CancelRequest {
    partner_id: String,
    order_id: String,
    /// KOMOJU's payment id (the status reply's `tid`).
    tid: String,
    #[schema(example = "1000")]
    cancel_amount: String,
    currency: String,
    /// H2.
    hash_data: String,
    /// Required by the asynchronous family: where the confirmation is POSTed.
    #[schema(required = false)]
    cancel_noty_url: String,
    #[schema(required = false)]
    amount: String,
    #[schema(required = false)]
    extra_data: String,
}

/// A reply with only a result: `0000` and a message.
#[derive(ToSchema)]
pub struct ResultReply {
    #[schema(example = "0000")]
    result_code: String,
    result_message: String,
}

/// 200 of a KOMOJU webhook or a Cafe24 app event: recorded, with what came of it.
#[derive(ToSchema)]
pub struct AckReply {
    #[schema(example = "ok")]
    status: String,
    /// Webhooks: `applied`, `ignored`, `duplicate`, `ping`, `not_handled`, `unreadable`,
    /// `unknown_order`; app events: `disconnected`, `not_confirmed`, `ignored`,
    /// `deferred` (the mall was confirmed less than a minute ago; the next confirmation
    /// follows).
    outcome: String,
}

/// A KOMOJU webhook body (§8): an event on a payment, signed over its raw bytes.
#[derive(ToSchema)]
pub struct KomojuEvent {
    #[schema(required = false)]
    id: String,
    /// `payment.captured`, `payment.refunded`, `ping`, …
    #[schema(required = false, example = "payment.captured")]
    r#type: String,
    #[schema(required = false, value_type = Object)]
    data: serde_json::Value,
}

/// A Cafe24 app-lifecycle event (§12): `event_no` 90077 (deleted) or 90078 (expired),
/// or the older `resource_type`/`event_type` shape.
#[derive(ToSchema)]
pub struct AppEvent {
    #[schema(required = false, example = 90077)]
    event_no: i64,
    #[schema(required = false)]
    event_type: String,
    #[schema(required = false)]
    resource_type: String,
    /// Holds `mall_id` and `client_id`.
    #[schema(required = false, value_type = Object)]
    resource: serde_json::Value,
}

/// 200 of `GET /api/external-checkout/script/data`: what the button shows.
#[derive(ToSchema)]
pub struct ButtonData {
    #[schema(example = "0000")]
    result_code: String,
    mall_id: String,
    shop_no: i32,
    shop_name: String,
    currency: String,
    public_ref: String,
    payment_types: Vec<String>,
    client_id: String,
    /// Whether a review page comes before KOMOJU.
    review: bool,
    button_label: String,
}

/// 200 of `GET /api/external-checkout/script/hmac`.
#[derive(ToSchema)]
pub struct HmacReply {
    #[schema(example = "0000")]
    result_code: String,
    /// base64(HMAC-SHA256) of the precreateOrder request.
    hmac: String,
}

/// A number Cafe24 may send as a JSON string or number.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
pub enum Text {
    Str(String),
    Num(f64),
}

/// One cart line of a reservation.
#[derive(ToSchema)]
pub struct Line {
    #[schema(required = false)]
    product_no: Text,
    #[schema(required = false)]
    product_name: String,
    #[schema(required = false)]
    variant_code: String,
    quantity: Text,
    product_price: Text,
    #[schema(required = false)]
    option_price: Text,
}

/// `POST /api/external-checkout/payload`: Cafe24's reservation as the button posts it.
#[derive(ToSchema)]
pub struct Reservation {
    mall_id: String,
    shop_no: Text,
    #[schema(required = false)]
    member_id: String,
    #[schema(required = false)]
    is_guest: bool,
    currency: String,
    order_id: String,
    return_notification_url: String,
    return_url_base: String,
    response_time: Text,
    /// Cafe24's HMAC over the reservation.
    hmac: String,
    order: Vec<Line>,
    /// The front's total, when sent: it must equal the lines'.
    #[schema(required = false)]
    total: Text,
}

/// 200 of `POST /api/external-checkout/payload`.
#[derive(ToSchema)]
pub struct ReservationReply {
    #[schema(example = "0000")]
    result_code: String,
    result_message: String,
    /// The KOMOJU hosted page.
    session_url: String,
    /// The review page, when the merchant shows one first.
    review_url: Option<String>,
}

/// `POST /api/external-checkout/order/pay` (the review page's form).
#[derive(ToSchema)]
pub struct PayForm {
    key: String,
    /// The token only the review page knows.
    csrf: String,
}

/// 200 of `GET /health`.
#[derive(ToSchema)]
pub struct Liveness {
    #[schema(example = "ok")]
    status: String,
}

/// `GET /health/ready`: `ok` (200) or `degraded` (503), each check named.
#[derive(ToSchema)]
pub struct Readiness {
    /// `ok` or `degraded`.
    status: String,
    checks: ReadinessChecks,
}

/// The checks of [`Readiness`].
#[derive(ToSchema)]
pub struct ReadinessChecks {
    /// `up` or `down`.
    database: String,
    /// `current`, `pending`, or `unknown` while the database does not answer.
    migrations: String,
}

/// One order in the operator API.
#[derive(ToSchema)]
pub struct OperatorOrder {
    mall_id: String,
    order_id: String,
    shop_no: i32,
    /// `sync`, `async` or `external`.
    flow: String,
    /// A §5 state.
    state: String,
    /// Minor units.
    amount: i64,
    amount_text: String,
    currency: String,
    attempt: i32,
    komoju_session_id: Option<String>,
    komoju_payment_id: Option<String>,
    payment_type: Option<String>,
    captured_amount: Option<i64>,
    /// What KOMOJU charged when it converted the currency (minor units of
    /// `charged_currency`).
    charged_amount: Option<i64>,
    charged_currency: Option<String>,
    refunded_amount: i64,
    created_at: String,
    updated_at: String,
    reconciled_at: Option<String>,
}

/// `GET /operator/api/v1/orders`.
#[derive(ToSchema)]
pub struct OperatorOrders {
    orders: Vec<OperatorOrder>,
}

/// `GET /operator/api/v1/orders/{mall_id}/{order_id}`: the order with its `timeline`,
/// `notifications` and `refunds`.
#[derive(ToSchema)]
pub struct OperatorOrderDetail {
    mall_id: String,
    order_id: String,
    state: String,
    #[schema(value_type = Vec<Object>)]
    timeline: Vec<serde_json::Value>,
    notifications: Vec<OperatorNotification>,
    /// Each with `bank_account_url` for a konbini, bank-transfer or Pay-easy refund: the
    /// page where the buyer gives the bank account (a capability link).
    #[schema(value_type = Vec<Object>)]
    refunds: Vec<serde_json::Value>,
    /// Second captures for the order after it was paid, and their refunds.
    #[schema(value_type = Vec<Object>)]
    duplicate_payments: Vec<serde_json::Value>,
}

/// One notification of the outbox.
#[derive(ToSchema)]
pub struct OperatorNotification {
    id: i64,
    kind: String,
    /// `pending`, `delivered` or `dead`.
    state: String,
    attempts: i32,
    next_attempt_at: String,
    last_status: Option<i32>,
    last_error: Option<String>,
    delivered_at: Option<String>,
}

/// `GET /operator/api/v1/notifications`.
#[derive(ToSchema)]
pub struct OperatorNotifications {
    notifications: Vec<OperatorNotification>,
}

/// `POST /operator/api/v1/notifications/{id}/retry`.
#[derive(ToSchema)]
pub struct Retried {
    id: i64,
    retried: bool,
}

/// `GET /operator/api/v1/merchants`: every mall with its shops, secrets masked.
#[derive(ToSchema)]
pub struct OperatorMerchants {
    #[schema(value_type = Vec<Object>)]
    merchants: Vec<serde_json::Value>,
}

/// The settings site's KOMOJU form (§12). `payment_types` may repeat.
#[derive(ToSchema)]
pub struct KomojuSettingsForm {
    /// The session's CSRF token.
    csrf: String,
    #[schema(required = false)]
    secret_key: String,
    #[schema(required = false)]
    webhook_secret: String,
    #[schema(required = false)]
    payment_types: Vec<String>,
    #[schema(required = false)]
    payment_types_shown: String,
    /// `sync` or `async`.
    #[schema(required = false)]
    cancel_mode: String,
    #[schema(required = false)]
    locale: String,
    #[schema(required = false)]
    external_review: String,
}

/// A settings-site switch: `on=1|0` and the session's CSRF token.
#[derive(ToSchema)]
pub struct SwitchForm {
    csrf: String,
    /// `1` or `0`.
    on: String,
}

/// A settings-site button: only the session's CSRF token.
#[derive(ToSchema)]
pub struct CsrfForm {
    csrf: String,
}
