//! How the use cases answer when KOMOJU fails (PROTOCOL.md §3 `upstream_error`, §7):
//! the KOMOJU adapter says what went wrong ([`KomojuError`]); this says what the caller
//! is told. The cause goes to the log; the reply never repeats KOMOJU's body. Refusals
//! a use case handles itself (a cancellation's 400/422 → `not_refundable`) are mapped
//! there, before this.

use crate::error::ApiError;
use crate::komoju::KomojuError;

/// Logs the failure of `context` for `order_id` and maps it to the §3 reply: a timeout,
/// a 5xx, a transport failure, an unreadable reply or a refusal the caller did not
/// handle → `upstream_error` (502).
pub fn komoju(e: KomojuError, context: &str, order_id: &str) -> ApiError {
    log::warn!("{context} for order {order_id}: {e}");
    match e {
        KomojuError::Timeout => ApiError::Upstream("KOMOJU did not answer in time".into()),
        _ => ApiError::Upstream("KOMOJU could not complete the request".into()),
    }
}
