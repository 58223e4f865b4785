//! Purging what has served its purpose (issue 21, item 2, `RETENTION_DAYS`): delivered
//! notifications, webhook events and order events older than a cutoff, at most `limit`
//! rows per call, each call its own statement (the caller's transaction, or alone).
//! Orders, refunds, duplicate payments, captures, and notifications not delivered
//! (pending or dead) are never touched here.
//!
//! Each delete picks its rows by the oldest first through an index (migration 000015),
//! so a batch costs the same however many rows the table holds.

use chrono::NaiveDateTime;
use diesel::sql_types::{BigInt, Timestamp};

use super::{DbConnection, DbError};

/// A table the retention purges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purged {
    /// `notifications` in state `delivered`, by `delivered_at`.
    DeliveredNotifications,
    /// `webhook_events`, by `received_at`.
    WebhookEvents,
    /// `order_events` (the orders' audit trail), by `created_at`.
    OrderEvents,
}

impl Purged {
    /// Every purged table, in the order a pass purges them.
    pub const ALL: [Purged; 3] = [
        Purged::DeliveredNotifications,
        Purged::WebhookEvents,
        Purged::OrderEvents,
    ];

    /// The metric label and log name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purged::DeliveredNotifications => "notifications",
            Purged::WebhookEvents => "webhook_events",
            Purged::OrderEvents => "order_events",
        }
    }

    /// The statement, with `{cutoff}` and `{limit}` as the backend's placeholders and
    /// `{delivered_index}` where SQLite is told its index.
    fn statement(self) -> &'static str {
        match self {
            Purged::DeliveredNotifications => {
                "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications \
                 {delivered_index} WHERE state = 'delivered' AND delivered_at < {cutoff} \
                 ORDER BY delivered_at LIMIT {limit})"
            }
            Purged::WebhookEvents => {
                "DELETE FROM webhook_events WHERE (mall_id, event_id) IN \
                 (SELECT mall_id, event_id FROM webhook_events WHERE received_at < {cutoff} \
                 ORDER BY received_at LIMIT {limit})"
            }
            Purged::OrderEvents => {
                "DELETE FROM order_events WHERE id IN (SELECT id FROM order_events \
                 WHERE created_at < {cutoff} ORDER BY created_at LIMIT {limit})"
            }
        }
    }
}

/// Deletes at most `limit` rows of `table` older than `cutoff` (UTC), oldest first;
/// returns how many.
pub fn purge_batch(
    conn: &mut DbConnection,
    table: Purged,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<usize, DbError> {
    use diesel::RunQueryDsl;
    let text = table.statement();
    let deleted = match conn {
        DbConnection::Postgres(c) => {
            let text = text.replace("{delivered_index}", "");
            diesel::sql_query(text.replace("{cutoff}", "$1").replace("{limit}", "$2"))
                .bind::<Timestamp, _>(cutoff)
                .bind::<BigInt, _>(limit)
                .execute(c)?
        }
        DbConnection::Sqlite(c) => {
            // Without statistics (a deployment never runs ANALYZE) SQLite prefers the
            // equality on `state` of `notifications_due` and sorts every delivered row:
            // 480 ms per batch at 200 000 orders, on the one database thread, even with
            // nothing to purge (docs/benchmarks.md, "Growth"). The partial index on
            // `delivered_at` reads the oldest rows in order and stops at the limit.
            let text = text.replace("{delivered_index}", "INDEXED BY notifications_delivered_at");
            diesel::sql_query(text.replace("{cutoff}", "?").replace("{limit}", "?"))
                .bind::<Timestamp, _>(cutoff)
                .bind::<BigInt, _>(limit)
                .execute(c)?
        }
    };
    Ok(deleted)
}
