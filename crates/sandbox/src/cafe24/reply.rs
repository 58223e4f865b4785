//! One JSON answer of the stand-in's API and its shapes: the Admin API's error body and
//! the token endpoint's (PROTOCOL.md §12). Shared by every endpoint module, so that
//! none of them depends on another.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use serde::Serialize;
use serde_json::json;

/// One JSON answer of the API.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Bytes,
}

impl Reply {
    pub(super) fn json<V: Serialize>(status: StatusCode, body: &V) -> Reply {
        match serde_json::to_vec(body) {
            Ok(body) => Reply {
                status,
                body: Bytes::from(body),
            },
            Err(_) => Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The reply could not be rendered",
            ),
        }
    }

    /// The Admin API's error shape, `{"error":{"code":N,"message":"…","more_info":{}}}`:
    /// `code` an integer, the HTTP status (PROTOCOL.md §12, "Error bodies are
    /// `{"error":{"code":422,"message":"…","more_info":{…}}}` with an integer `code`"; the
    /// shape is Cafe24's introduction.md "에러 응답 예제", whose `"code": "error code"` is a
    /// placeholder).
    pub(super) fn error(status: StatusCode, message: &str) -> Reply {
        let body = json!({
            "error": {"code": status.as_u16(), "message": message, "more_info": {}}
        });
        Reply {
            status,
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        }
    }

    /// The token endpoint's error shape, `{"error":"…","error_description":"…"}`.
    pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
        let body = json!({"error": error, "error_description": description});
        Reply {
            status,
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        }
    }

    pub(super) fn not_found() -> Reply {
        Reply::error(StatusCode::NOT_FOUND, "No API found for this request")
    }
}
