//! An order with everything recorded about it, read in one place for every view of an
//! order (the operator API's and the merchant's order page): its audit trail, its
//! notifications to Cafe24, its cancellations and refunds, its duplicate payments.
//! Reads only; never opens a sealed column (the caller decides who may see a link).

use super::captures::{self, CaptureRow};
use super::duplicates::{self, DuplicateRow};
use super::notifications::{self, NotificationRow};
use super::orders::{self, OrderEventRow, OrderRow};
use super::refunds::{self, RefundRow};
use super::{DbConnection, DbError};

/// An order and its records, each list oldest first as its table keeps it.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub order: OrderRow,
    /// The audit trail (`order_events`), oldest first.
    pub events: Vec<OrderEventRow>,
    pub notifications: Vec<NotificationRow>,
    pub refunds: Vec<RefundRow>,
    pub duplicates: Vec<DuplicateRow>,
    /// Its held card authorization (manual capture), if it ever had one.
    pub capture: Option<CaptureRow>,
}

/// The order `order_id` of mall `mall_id` with its records; `None` when that mall has no
/// such order (another mall's order of the same id is never read).
pub fn find(
    c: &mut DbConnection,
    mall_id: &str,
    order_id: &str,
) -> Result<Option<OrderRecord>, DbError> {
    let Some(order) = orders::find_by_order_id(c, mall_id, order_id)? else {
        return Ok(None);
    };
    Ok(Some(OrderRecord {
        events: orders::events(c, &order.id)?,
        notifications: notifications::for_order(c, &order.id)?,
        refunds: refunds::for_order(c, &order.id)?,
        duplicates: duplicates::for_order(c, &order.id)?,
        capture: captures::find(c, &order.id)?,
        order,
    }))
}
