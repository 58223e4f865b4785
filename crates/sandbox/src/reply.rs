//! One answer of the stand-in's API as it is stored for idempotent replay, and KOMOJU's
//! error envelope `{"error":{"code","message","param","details"}}` (SDK
//! `docs/Models/APIErrorBody.md`; docs.komoju.com's error example carries
//! `"details": {}`).
//!
//! Codes are KOMOJU's documented ones only (doc.komoju.com/docs/errors, with their HTTP
//! statuses: `bad_request` 400, `unauthorized` 401, `request_failed` 402, `forbidden` 403,
//! `not_found` 404, `unprocessable_entity` 422, `internal_server_error` 500,
//! `bad_gateway` 502, `service_unavailable` 503, `gateway_timeout` 504) and the
//! payment-specific ones KOMOJU's EC-CUBE plugin translates (`KomojuClient.php`:
//! `not_refundable`, `not_capturable`, `not_cancellable`, `invalid_parameter`,
//! `missing_parameter`, `card_declined`, …). Those plugin keys (`errors.
//! unprocessable_entity.not_chargebackable`) put the payment-specific ones under 422.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use serde::Serialize;
use serde_json::json;

/// Status, body, and the body with every `amount` skewed by one
/// (`Fault::WrongAmountInReply`) when the reply is a session or payment.
#[derive(Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    pub(crate) skewed: Option<Bytes>,
}

impl Reply {
    /// KOMOJU's error envelope.
    pub(crate) fn error(
        status: StatusCode,
        code: &str,
        message: &str,
        param: Option<&str>,
    ) -> Reply {
        let body = json!({"error": {
            "code": code, "message": message, "param": param, "details": {}
        }});
        Reply {
            status,
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            skewed: None,
        }
    }

    /// 422 `invalid_parameter` naming `param` (the plugins' code for a bad value; the
    /// example of doc.komoju.com's errors page is `missing_parameter` for `amount`).
    pub(crate) fn invalid(param: &str, message: &str) -> Reply {
        Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
            message,
            Some(param),
        )
    }

    /// 422 `missing_parameter` naming `param`.
    pub(crate) fn missing(param: &str) -> Reply {
        Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_parameter",
            &format!("A required parameter ({param}) is missing"),
            Some(param),
        )
    }

    /// 422 with a payment-specific code (`not_capturable`, `not_refundable`, …).
    pub(crate) fn unprocessable(code: &str, message: &str) -> Reply {
        Reply::error(StatusCode::UNPROCESSABLE_ENTITY, code, message, None)
    }

    pub(crate) fn not_found() -> Reply {
        Reply::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource could not be found",
            None,
        )
    }

    /// 200 with a JSON body that has no `amount` to skew.
    pub(crate) fn plain<V: Serialize>(body: &V) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
            skewed: None,
        }
    }

    /// 200 with a session or payment, rendered once as is and once with `amount` + 1.
    pub(crate) fn object<V: Serialize>(render: impl Fn(i64) -> V) -> Reply {
        match (
            serde_json::to_vec(&render(0)),
            serde_json::to_vec(&render(1)),
        ) {
            (Ok(body), Ok(skewed)) => Reply {
                status: StatusCode::OK,
                body: Bytes::from(body),
                skewed: Some(Bytes::from(skewed)),
            },
            _ => Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "The reply could not be rendered",
                None,
            ),
        }
    }
}
