//! KOMOJU webhook events already processed, keyed by `(mall_id, event_id)`: a repeat of
//! an event is recognised by the unique key, inside the same transaction as its effect.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::webhook_events;
use super::{DbConnection, DbError};

/// What became of a recorded event (the `webhook_events.outcome` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum WebhookOutcome {
    /// It changed its order (or recorded a duplicate payment).
    Applied,
    /// Its order was found; the state machine changed nothing.
    Ignored,
    /// No order of this mall matches it.
    UnknownOrder,
    /// A payment status this build does not know.
    UnknownStatus,
    /// KOMOJU's `ping`.
    Ping,
    /// An event type this service does not act on.
    NotHandled,
    /// Signed, but nothing in it can be applied.
    Unreadable,
}

impl WebhookOutcome {
    /// The stored name (also the `webhooks_total` metric's `outcome` label).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Applied => "applied",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::UnknownOrder => "unknown_order",
            WebhookOutcome::UnknownStatus => "unknown_status",
            WebhookOutcome::Ping => "ping",
            WebhookOutcome::NotHandled => "not_handled",
            WebhookOutcome::Unreadable => "unreadable",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<WebhookOutcome> {
        [
            WebhookOutcome::Applied,
            WebhookOutcome::Ignored,
            WebhookOutcome::UnknownOrder,
            WebhookOutcome::UnknownStatus,
            WebhookOutcome::Ping,
            WebhookOutcome::NotHandled,
            WebhookOutcome::Unreadable,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// A `webhook_events` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_events)]
pub struct WebhookEventRow {
    pub mall_id: String,
    /// The event's `id` (stable across KOMOJU's redeliveries).
    pub event_id: String,
    pub event_type: String,
    pub order_pk: Option<String>,
    pub outcome: WebhookOutcome,
    pub received_at: NaiveDateTime,
}

/// Records an event. A repeat fails with a unique violation
/// ([`super::is_unique_violation`]), which rolls back the caller's transaction.
pub fn insert(conn: &mut DbConnection, row: &WebhookEventRow) -> Result<(), DbError> {
    diesel::insert_into(webhook_events::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Records an event unless `(mall_id, event_id)` is already recorded (`INSERT … ON
/// CONFLICT DO NOTHING`, in the caller's transaction); returns whether this call
/// recorded it. A concurrent insert of the same key waits for the other transaction and
/// then records nothing.
pub fn insert_new(conn: &mut DbConnection, row: &WebhookEventRow) -> Result<bool, DbError> {
    let n = on_backend!(conn, |c| diesel::insert_into(webhook_events::table)
        .values(row)
        .on_conflict((webhook_events::mall_id, webhook_events::event_id))
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// True when `(mall_id, event_id)` was already recorded.
pub fn exists(conn: &mut DbConnection, mall_id: &str, event_id: &str) -> Result<bool, DbError> {
    let n: i64 = webhook_events::table
        .filter(webhook_events::mall_id.eq(mall_id))
        .filter(webhook_events::event_id.eq(event_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Number of recorded events (tests, operators).
pub fn count(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(webhook_events::table.count().get_result(conn)?)
}

/// When the newest event of `event_type` (e.g. `ping`) for `mall_id` was received.
pub fn last_received(
    conn: &mut DbConnection,
    mall_id: &str,
    event_type: &str,
) -> Result<Option<NaiveDateTime>, DbError> {
    Ok(webhook_events::table
        .filter(webhook_events::mall_id.eq(mall_id))
        .filter(webhook_events::event_type.eq(event_type))
        .select(diesel::dsl::max(webhook_events::received_at))
        .first::<Option<NaiveDateTime>>(conn)?)
}
