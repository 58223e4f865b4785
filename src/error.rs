//! The error policy of every reply to Cafe24 and the mall front (PROTOCOL.md §3).
//!
//! Handlers return [`ApiError`]; it renders as the contract's JSON envelope
//! `{"result_code":"9999","result_message":…,"error":<code>}` ([`ErrorEnvelope`], built by
//! [`ApiError::envelope`] and nowhere else) with the HTTP status of the §3 table. The
//! OpenAPI document's shared error responses ([`responses`]) describe that envelope per
//! status. Layers below the handlers use their own error types (`DbError`,
//! `KomojuError`, …) and convert here, at the edge:
//! - a database that cannot be reached (or lost mid-request, after anything may have been
//!   committed) → `unavailable` (503) with `Retry-After`, cause logged; never a 500;
//! - KOMOJU 5xx, timeout or unreadable reply → `upstream_error` (502), cause logged;
//! - any other internal failure → 500 with a generic message, cause logged.
//!
//! A 5xx body never carries internal detail, and no message here ever holds a secret:
//! messages are written for the caller and name fields, not values.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;

/// The `Retry-After` of every 503 `unavailable`, in seconds: Cafe24 and KOMOJU retry on
/// schedules of their own; a person reloading waits this long.
pub const RETRY_AFTER_SECS: u32 = 5;

/// A failure answered to the caller, one variant per §3 error code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A required field missing or malformed; body not parseable. `status` is 400; 413
    /// when the body is over the size limit, 408 when it did not arrive in time (the
    /// connection is then closed), 404 for a path no route serves, 405 for a method the
    /// path does not serve.
    #[error("{message}")]
    InvalidRequest { message: String, status: StatusCode },
    #[error("{0}")]
    InvalidAmount(String),
    #[error("currency is not supported")]
    UnsupportedCurrency,
    #[error("hash_data is missing or wrong")]
    InvalidHash,
    /// A KOMOJU webhook whose `X-Komoju-Signature` is missing or not the HMAC-SHA256 of
    /// its raw body (§8): 401 `invalid_signature`, nothing read or stored.
    #[error("X-Komoju-Signature is missing or wrong")]
    InvalidSignature,
    /// External checkout: the reservation's `hmac` is not Cafe24's (code `invalid_hash`).
    #[error("the reservation's hmac does not match Cafe24's")]
    InvalidReservationHmac,
    #[error("{0}")]
    UrlNotAllowed(String),
    #[error("mall is not registered, or the shop is not enabled")]
    UnknownMerchant,
    #[error("mall is disabled")]
    MerchantDisabled,
    #[error("order not found")]
    OrderNotFound,
    #[error("{0}")]
    OrderConflict(String),
    #[error("{0}")]
    AmountExceedsRefundable(String),
    #[error("tid is not this order's KOMOJU payment")]
    TidMismatch,
    #[error("{0}")]
    NotRefundable(String),
    /// KOMOJU failed; the message is safe to show (no upstream body).
    #[error("{0}")]
    Upstream(String),
    #[error("service temporarily unavailable, retry later")]
    Unavailable,
    /// Too many requests from one client for one mall (external checkout's HMAC endpoint).
    #[error("too many requests, slow down")]
    RateLimited,
    /// The operator API without a valid bearer token (nothing else is said).
    #[error("a valid operator token is required")]
    Unauthorized,
    /// A caller without the credential the route requires (Cafe24's lifecycle webhook
    /// without the right `x-api-key`): 403 `forbidden`, nothing done.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A bug or broken invariant; the cause was logged where it happened.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A 400 `invalid_request` with `message`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::InvalidRequest {
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// The stable snake_case code of the §3 table (`invalid_request`, …).
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    /// The §3 error code of this failure.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            ApiError::InvalidAmount(_) => ErrorCode::InvalidAmount,
            ApiError::UnsupportedCurrency => ErrorCode::UnsupportedCurrency,
            ApiError::InvalidHash | ApiError::InvalidReservationHmac => ErrorCode::InvalidHash,
            ApiError::InvalidSignature => ErrorCode::InvalidSignature,
            ApiError::UrlNotAllowed(_) => ErrorCode::UrlNotAllowed,
            ApiError::UnknownMerchant => ErrorCode::UnknownMerchant,
            ApiError::MerchantDisabled => ErrorCode::MerchantDisabled,
            ApiError::OrderNotFound => ErrorCode::OrderNotFound,
            ApiError::OrderConflict(_) => ErrorCode::OrderConflict,
            ApiError::AmountExceedsRefundable(_) => ErrorCode::AmountExceedsRefundable,
            ApiError::TidMismatch => ErrorCode::TidMismatch,
            ApiError::NotRefundable(_) => ErrorCode::NotRefundable,
            ApiError::Upstream(_) => ErrorCode::UpstreamError,
            ApiError::Unavailable => ErrorCode::Unavailable,
            ApiError::RateLimited => ErrorCode::RateLimited,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::Internal => ErrorCode::InternalError,
        }
    }

    /// The §3 envelope of this failure: `result_code` `9999`, the message (never a
    /// secret, never internal detail: see the variants), the code. The one place the
    /// envelope is built: [`ResponseError::error_response`] and stored cancellation
    /// replies (§6.4) both serialize it.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            result_code: FAILURE,
            result_message: self.to_string(),
            error: self.error_code(),
        }
    }

    /// Logs a storage failure and maps it: unreachable → `unavailable`, else internal.
    pub fn from_db(context: &str, e: DbError) -> ApiError {
        if e.is_unavailable() {
            log::error!("{context}: {e}");
            ApiError::Unavailable
        } else {
            log::error!("{context}: {e}");
            ApiError::Internal
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { status, .. } => *status,
            ApiError::InvalidAmount(_)
            | ApiError::UnsupportedCurrency
            | ApiError::UrlNotAllowed(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidHash
            | ApiError::InvalidReservationHmac
            | ApiError::InvalidSignature => StatusCode::UNAUTHORIZED,
            ApiError::UnknownMerchant | ApiError::OrderNotFound => StatusCode::NOT_FOUND,
            ApiError::MerchantDisabled => StatusCode::FORBIDDEN,
            ApiError::OrderConflict(_)
            | ApiError::AmountExceedsRefundable(_)
            | ApiError::TidMismatch => StatusCode::CONFLICT,
            ApiError::NotRefundable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut reply = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::REQUEST_TIMEOUT {
            // The body never arrived: nothing more can be read from this connection.
            reply.force_close();
        }
        if matches!(self, ApiError::Unavailable) {
            reply.insert_header((actix_web::http::header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        reply.json(self.envelope())
    }
}

/// The `result_code` of every failure (§3).
pub const FAILURE: &str = "9999";

/// The §3 error envelope every failure is answered with:
/// `{"result_code":"9999","result_message":…,"error":<code>}`. Built by
/// [`ApiError::envelope`] only.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"result_code": "9999", "result_message": "amount is required", "error": "invalid_request"}))]
pub struct ErrorEnvelope {
    /// Always `9999`.
    #[schema(pattern = "^9999$", example = "9999")]
    pub result_code: &'static str,
    /// What went wrong, for people: names fields, never a secret or internal detail.
    pub result_message: String,
    /// The stable code of the §3 table.
    pub error: ErrorCode,
}

/// The §3 error codes, as `error` spells them (snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidAmount,
    UnsupportedCurrency,
    InvalidHash,
    /// A KOMOJU webhook whose `X-Komoju-Signature` does not hold.
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

impl ErrorCode {
    /// The code as the envelope's `error` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidAmount => "invalid_amount",
            ErrorCode::UnsupportedCurrency => "unsupported_currency",
            ErrorCode::InvalidHash => "invalid_hash",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::UrlNotAllowed => "url_not_allowed",
            ErrorCode::UnknownMerchant => "unknown_merchant",
            ErrorCode::MerchantDisabled => "merchant_disabled",
            ErrorCode::OrderNotFound => "order_not_found",
            ErrorCode::OrderConflict => "order_conflict",
            ErrorCode::AmountExceedsRefundable => "amount_exceeds_refundable",
            ErrorCode::TidMismatch => "tid_mismatch",
            ErrorCode::NotRefundable => "not_refundable",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InternalError => "internal_error",
        }
    }
}

/// The shared error responses of the OpenAPI document (`components/responses`), one per
/// meaning: each is the §3 [`ErrorEnvelope`] under the status the §3 table gives it. Each
/// operation names the ones its code can answer.
pub mod responses {
    use utoipa::ToResponse;

    /// 400: `invalid_request` (a field missing or malformed, a body that does not parse, a
    /// content type other than form or JSON), `invalid_amount`, `unsupported_currency`,
    /// `url_not_allowed`.
    #[derive(ToResponse)]
    #[response(
        description = "invalid_request, invalid_amount, unsupported_currency or url_not_allowed (§3 envelope)"
    )]
    pub struct BadRequest(pub super::ErrorEnvelope);

    /// 401: `invalid_hash` (Cafe24's `hash_data`, the reservation's `hmac`).
    #[derive(ToResponse)]
    #[response(
        description = "invalid_hash: hash_data (or the reservation's hmac) is missing or wrong"
    )]
    pub struct InvalidHash(pub super::ErrorEnvelope);

    /// 401: `unauthorized` (the operator API without a valid bearer token).
    #[derive(ToResponse)]
    #[response(description = "unauthorized: no valid operator bearer token")]
    pub struct Unauthorized(pub super::ErrorEnvelope);

    /// 401: `invalid_signature` (a KOMOJU webhook).
    #[derive(ToResponse)]
    #[response(
        description = "invalid_signature: X-Komoju-Signature is missing or wrong; nothing was read or stored"
    )]
    pub struct InvalidSignature(pub super::ErrorEnvelope);

    /// 403: `merchant_disabled`.
    #[derive(ToResponse)]
    #[response(description = "merchant_disabled: the mall is registered but disabled")]
    pub struct Forbidden(pub super::ErrorEnvelope);

    /// 403: `forbidden` (Cafe24's lifecycle webhook without the right `x-api-key`).
    #[derive(ToResponse)]
    #[response(
        description = "forbidden: x-api-key is missing or not CAFE24_WEBHOOK_API_KEY; nothing was read or done"
    )]
    pub struct ApiKeyRefused(pub super::ErrorEnvelope);

    /// 404: `unknown_merchant`, `order_not_found`, or `invalid_request` for a missing row.
    #[derive(ToResponse)]
    #[response(
        description = "unknown_merchant, order_not_found, or invalid_request naming what does not exist"
    )]
    pub struct NotFound(pub super::ErrorEnvelope);

    /// 405: another method than the path serves; `Allow` names those it does.
    #[derive(ToResponse)]
    #[response(
        description = "invalid_request: this method is not served here (the Allow header names those that are)",
        headers(("Allow" = String, description = "The methods this path serves, e.g. `GET, POST`"))
    )]
    pub struct MethodNotAllowed(pub super::ErrorEnvelope);

    /// 408: the body did not arrive within `BODY_TIMEOUT_SECS` (the connection is closed).
    #[derive(ToResponse)]
    #[response(
        description = "invalid_request: the body did not arrive within BODY_TIMEOUT_SECS; the connection is closed"
    )]
    pub struct Timeout(pub super::ErrorEnvelope);

    /// 409: `order_conflict`, `amount_exceeds_refundable`, `tid_mismatch`.
    #[derive(ToResponse)]
    #[response(description = "order_conflict, amount_exceeds_refundable or tid_mismatch")]
    pub struct Conflict(pub super::ErrorEnvelope);

    /// 413: the body is larger than `BODY_LIMIT_BYTES`.
    #[derive(ToResponse)]
    #[response(description = "invalid_request: the body is larger than BODY_LIMIT_BYTES")]
    pub struct TooLarge(pub super::ErrorEnvelope);

    /// 422: `not_refundable`.
    #[derive(ToResponse)]
    #[response(description = "not_refundable: KOMOJU cannot refund this payment type by API")]
    pub struct NotRefundable(pub super::ErrorEnvelope);

    /// 429: `rate_limited`.
    #[derive(ToResponse)]
    #[response(description = "rate_limited: too many requests from this address for this mall")]
    pub struct RateLimited(pub super::ErrorEnvelope);

    /// 502: `upstream_error`.
    #[derive(ToResponse)]
    #[response(
        description = "upstream_error: KOMOJU answered 5xx, timed out, or answered what cannot be read"
    )]
    pub struct Upstream(pub super::ErrorEnvelope);

    /// 503: `unavailable`.
    #[derive(ToResponse)]
    #[response(description = "unavailable: the database cannot be reached; retry later")]
    pub struct Unavailable(pub super::ErrorEnvelope);
}

impl From<crate::money::MoneyError> for ApiError {
    fn from(e: crate::money::MoneyError) -> ApiError {
        match e {
            crate::money::MoneyError::UnsupportedCurrency => ApiError::UnsupportedCurrency,
            other => ApiError::InvalidAmount(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_the_section_3_shape_with_the_code_as_error() {
        let body = serde_json::to_value(ApiError::InvalidSignature.envelope()).unwrap_or_default();
        assert_eq!(
            body,
            serde_json::json!({
                "result_code": "9999",
                "result_message": "X-Komoju-Signature is missing or wrong",
                "error": "invalid_signature",
            })
        );
        assert_eq!(
            ApiError::InvalidSignature.status_code(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn every_error_code_serializes_as_its_name() {
        let errors = [
            ApiError::invalid("x"),
            ApiError::InvalidAmount("x".into()),
            ApiError::UnsupportedCurrency,
            ApiError::InvalidHash,
            ApiError::InvalidReservationHmac,
            ApiError::InvalidSignature,
            ApiError::UrlNotAllowed("x".into()),
            ApiError::UnknownMerchant,
            ApiError::MerchantDisabled,
            ApiError::OrderNotFound,
            ApiError::OrderConflict("x".into()),
            ApiError::AmountExceedsRefundable("x".into()),
            ApiError::TidMismatch,
            ApiError::NotRefundable("x".into()),
            ApiError::Upstream("x".into()),
            ApiError::Unavailable,
            ApiError::RateLimited,
            ApiError::Unauthorized,
            ApiError::Forbidden("x"),
            ApiError::Internal,
        ];
        for e in errors {
            let code = serde_json::to_value(e.error_code()).unwrap_or_default();
            assert_eq!(code, serde_json::json!(e.code()), "{e:?}");
        }
    }
}
