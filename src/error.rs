//! The error policy of every reply to Cafe24 and the mall front (PROTOCOL.md §3).
//!
//! Handlers return [`ApiError`]; it renders as the contract's JSON envelope
//! `{"result_code":"9999","result_message":…,"error":<code>}` with the HTTP status of
//! the §3 table. Layers below the handlers use their own error types (`DbError`,
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
use serde_json::json;

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

    /// The stable snake_case code of the §3 table.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::InvalidAmount(_) => "invalid_amount",
            ApiError::UnsupportedCurrency => "unsupported_currency",
            ApiError::InvalidHash | ApiError::InvalidReservationHmac => "invalid_hash",
            ApiError::UrlNotAllowed(_) => "url_not_allowed",
            ApiError::UnknownMerchant => "unknown_merchant",
            ApiError::MerchantDisabled => "merchant_disabled",
            ApiError::OrderNotFound => "order_not_found",
            ApiError::OrderConflict(_) => "order_conflict",
            ApiError::AmountExceedsRefundable(_) => "amount_exceeds_refundable",
            ApiError::TidMismatch => "tid_mismatch",
            ApiError::NotRefundable(_) => "not_refundable",
            ApiError::Upstream(_) => "upstream_error",
            ApiError::Unavailable => "unavailable",
            ApiError::RateLimited => "rate_limited",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Internal => "internal_error",
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
            ApiError::InvalidHash | ApiError::InvalidReservationHmac => StatusCode::UNAUTHORIZED,
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
        reply.json(json!({
            "result_code": "9999",
            "result_message": self.to_string(),
            "error": self.code(),
        }))
    }
}

impl From<crate::money::MoneyError> for ApiError {
    fn from(e: crate::money::MoneyError) -> ApiError {
        match e {
            crate::money::MoneyError::UnsupportedCurrency => ApiError::UnsupportedCurrency,
            other => ApiError::InvalidAmount(other.to_string()),
        }
    }
}
