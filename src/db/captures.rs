//! Held card authorizations of manual-capture orders (issue 20, "manual capture"): one
//! row per order while it is `authorized`, with when it is captured automatically, the
//! claim that makes a capture one KOMOJU call however many clicks or instances ask for
//! it, and why KOMOJU refused the last one. Written by [`crate::order_updates`] in the
//! transaction that authorizes the order (and finished in the one that moves it on);
//! claimed and released by the capture use case.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{captures, orders};
use super::{DbConnection, DbError};
use crate::orders::state::OrderState;

/// A `captures` row. Times UTC.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = captures)]
pub struct CaptureRow {
    /// The order (`orders.id`).
    pub order_pk: String,
    /// KOMOJU's payment id of the authorization.
    pub payment_id: String,
    /// When the service captures it unless the merchant did.
    pub due_at: NaiveDateTime,
    /// A capture call in flight until then.
    pub claimed_until: Option<NaiveDateTime>,
    /// KOMOJU's reason for refusing the last capture.
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    /// When the order left `authorized` (captured, cancelled, expired).
    pub finished_at: Option<NaiveDateTime>,
}

/// Records a held authorization (idempotent: a second call keeps the first row).
pub fn hold(
    conn: &mut DbConnection,
    order_pk: &str,
    payment_id: &str,
    due_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    let row = CaptureRow {
        order_pk: order_pk.to_owned(),
        payment_id: payment_id.to_owned(),
        due_at,
        claimed_until: None,
        error: None,
        created_at: now,
        finished_at: None,
    };
    on_backend!(conn, |c| diesel::insert_into(captures::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// Marks the order's authorization finished (the order left `authorized`).
pub fn finish(conn: &mut DbConnection, order_pk: &str, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(
        captures::table
            .find(order_pk)
            .filter(captures::finished_at.is_null()),
    )
    .set((
        captures::finished_at.eq(Some(now)),
        captures::claimed_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// The order's capture row, if it ever had one.
pub fn find(conn: &mut DbConnection, order_pk: &str) -> Result<Option<CaptureRow>, DbError> {
    Ok(captures::table
        .find(order_pk)
        .select(CaptureRow::as_select())
        .first(conn)
        .optional()?)
}

/// Claims the capture of an order still `authorized` until `until`: true for the one
/// caller that may call KOMOJU now; false when another holds an unexpired claim, the
/// authorization is finished, or the order moved on. Clears the last refusal.
pub fn claim(
    conn: &mut DbConnection,
    order_pk: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<bool, DbError> {
    let authorized = orders::table
        .filter(orders::id.eq(order_pk))
        .filter(orders::state.eq(OrderState::Authorized.as_str()))
        .select(orders::id);
    let changed = diesel::update(
        captures::table
            .filter(captures::order_pk.eq(order_pk))
            .filter(captures::finished_at.is_null())
            .filter(
                captures::claimed_until
                    .is_null()
                    .or(captures::claimed_until.lt(now)),
            )
            .filter(captures::order_pk.eq_any(authorized)),
    )
    .set((
        captures::claimed_until.eq(Some(until)),
        captures::error.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Gives the claim back, with KOMOJU's refusal (or why the call did not finish) when
/// there is one to show.
pub fn release(
    conn: &mut DbConnection,
    order_pk: &str,
    error: Option<&str>,
) -> Result<(), DbError> {
    diesel::update(captures::table.find(order_pk))
        .set((
            captures::claimed_until.eq(None::<NaiveDateTime>),
            captures::error.eq(error),
        ))
        .execute(conn)?;
    Ok(())
}

/// Authorizations due for their automatic capture at `now`, oldest due first, not
/// claimed: at most `limit`.
pub fn due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<CaptureRow>, DbError> {
    Ok(captures::table
        .filter(captures::finished_at.is_null())
        .filter(captures::due_at.le(now))
        .filter(
            captures::claimed_until
                .is_null()
                .or(captures::claimed_until.lt(now)),
        )
        .order(captures::due_at.asc())
        .limit(limit)
        .select(CaptureRow::as_select())
        .load(conn)?)
}
