//! KOMOJU webhook events already processed, keyed by `(mall_id, event_id)`: a repeat of
//! an event is recognised by the unique key, inside the same transaction as its effect.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{webhook_events, webhook_signature_failures};
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
// Values are bound, `None` as NULL, never written `DEFAULT`: one SQL text for every
// row, so the insert stays prepared (`db::prepared`).
#[diesel(treat_none_as_default_value = false)]
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

/// KOMOJU deliveries for a mall whose signature did not hold, since the last correctly
/// signed one (`webhook_signature_failures`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct SignatureFailures {
    /// How many.
    pub failures: i64,
    /// The first of them.
    pub first_at: NaiveDateTime,
    /// The newest.
    pub last_at: NaiveDateTime,
}

/// Counts a delivery for `mall_id` whose signature did not hold, at `now`: the mall's one
/// row is created or updated (`INSERT … ON CONFLICT DO UPDATE`). Call only for a mall
/// that exists, so an unsigned caller cannot add rows.
pub fn record_bad_signature(
    conn: &mut DbConnection,
    mall_id: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    use webhook_signature_failures as f;
    let row = (
        f::mall_id.eq(mall_id),
        f::failures.eq(1_i64),
        f::first_at.eq(now),
        f::last_at.eq(now),
    );
    on_backend!(conn, |c| diesel::insert_into(f::table)
        .values(row)
        .on_conflict(f::mall_id)
        .do_update()
        .set((f::failures.eq(f::failures + 1_i64), f::last_at.eq(now)))
        .execute(c))?;
    Ok(())
}

/// Forgets `mall_id`'s failed signatures (a correctly signed delivery arrived).
pub fn clear_bad_signatures(conn: &mut DbConnection, mall_id: &str) -> Result<(), DbError> {
    diesel::delete(webhook_signature_failures::table.find(mall_id)).execute(conn)?;
    Ok(())
}

/// `mall_id`'s failed signatures since the last correctly signed delivery, if any.
pub fn bad_signatures(
    conn: &mut DbConnection,
    mall_id: &str,
) -> Result<Option<SignatureFailures>, DbError> {
    use webhook_signature_failures as f;
    Ok(f::table
        .find(mall_id)
        .select((f::failures, f::first_at, f::last_at))
        .first::<SignatureFailures>(conn)
        .optional()?)
}
