//! The order key as the checkouts handle it (PROTOCOL.md §6.1 `key`): issued and
//! verified at the service clock ([`crate::keys::order`] does the signing), and the
//! order a verified key names. Errors are the §3 ones.

use crate::cafe24::Fields;
use crate::db::orders::{self, OrderRow};
use crate::error::ApiError;
use crate::keys::order::OrderRef;
use crate::keys::TokenError;
use crate::services::Services;

/// Issues the order key of `order` at the service clock. Errors: signing failed
/// (logged), `internal_error`.
pub fn issue(app: &Services, order: &OrderRef) -> Result<String, ApiError> {
    app.order_keys
        .issue(order, app.clock.unix_seconds())
        .map_err(|e| {
            log::error!("{e}");
            ApiError::Internal
        })
}

/// Verifies the request's `key` field (an order key) against the service clock.
pub fn verify(app: &Services, fields: &Fields) -> Result<OrderRef, ApiError> {
    let key = fields.required("key")?;
    app.order_keys
        .verify(key, app.clock.unix_seconds())
        .map_err(|e| match e {
            TokenError::Expired => ApiError::invalid("key has expired"),
            TokenError::Invalid => ApiError::invalid("key is not a valid order key"),
        })
}

/// Finds the order a verified key names.
pub async fn order_of(app: &Services, key: &OrderRef) -> Result<OrderRow, ApiError> {
    let (mall, order_id) = (key.mall_id.clone(), key.order_id.clone());
    app.db
        .run(move |c| orders::find_by_order_id(c, &mall, &order_id))
        .await
        .map_err(|e| ApiError::from_db("reading order", e))?
        .ok_or(ApiError::OrderNotFound)
}
