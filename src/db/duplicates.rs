//! Duplicate payments (PROTOCOL.md §5): a capture of another payment for an order
//! already paid, one row per KOMOJU payment, recorded in the transaction that saw it,
//! and the automatic refund's progress. The decision that a capture is a duplicate is
//! [`crate::orders::state`]'s; the refund is [`crate::duplicates`]'s.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::duplicate_payments;
use super::{DbConnection, DbError};

/// Where a duplicate payment's money stands (the `duplicate_payments.state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum DuplicateState {
    /// To be refunded in full by the background pass.
    RefundDue,
    /// KOMOJU refunded it (or already had when it was seen).
    Refunded,
    /// KOMOJU accepted the refund; the buyer must give a bank account on KOMOJU's page
    /// (konbini, bank transfer, Pay-easy).
    RefundRequested,
    /// KOMOJU refused the refund: an operator must act (`last_error` says why).
    RefundFailed,
    /// The merchant turned automatic refunds off: recorded and shown only.
    Kept,
}

impl DuplicateState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DuplicateState::RefundDue => "refund_due",
            DuplicateState::Refunded => "refunded",
            DuplicateState::RefundRequested => "refund_requested",
            DuplicateState::RefundFailed => "refund_failed",
            DuplicateState::Kept => "kept",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<DuplicateState> {
        [
            DuplicateState::RefundDue,
            DuplicateState::Refunded,
            DuplicateState::RefundRequested,
            DuplicateState::RefundFailed,
            DuplicateState::Kept,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// A `duplicate_payments` row. Amounts in minor units of `currency` (what KOMOJU charged).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = duplicate_payments)]
pub struct DuplicateRow {
    /// KOMOJU's id of the second payment.
    pub payment_id: String,
    pub order_pk: String,
    pub session_id: Option<String>,
    pub payment_type: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub state: DuplicateState,
    /// `X-KOMOJU-IDEMPOTENCY` of the refund, derived from the payment id so that every
    /// instance and every retry asks KOMOJU for the same one refund.
    pub refund_idempotency_key: String,
    pub komoju_refund_id: Option<String>,
    /// The refund's bank-account page (konbini, bank transfer, Pay-easy), sealed like
    /// [`super::refunds::RefundRow::bank_account_url`] under [`BANK_ACCOUNT_URL`].
    pub bank_account_url: Option<String>,
    /// Refund calls whose outcome was unknown (KOMOJU 5xx, timeout).
    pub attempts: i32,
    /// When the background pass may try the refund (again).
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The column name the bank-account link is sealed under (associated data).
pub const BANK_ACCOUNT_URL: &str = "duplicate_payments.bank_account_url";

/// The refund's idempotency key for payment `payment_id` (≤ 100 ASCII characters: KOMOJU
/// ids are 25).
pub fn refund_key(payment_id: &str) -> String {
    format!("duplicate-refund-{payment_id}")
}

/// Records a duplicate unless its payment is recorded already (`ON CONFLICT DO
/// NOTHING`); true when this call recorded it.
pub fn insert_new(conn: &mut DbConnection, row: &DuplicateRow) -> Result<bool, DbError> {
    let n = on_backend!(conn, |c| diesel::insert_into(duplicate_payments::table)
        .values(row)
        .on_conflict(duplicate_payments::payment_id)
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// The order's duplicate payments, oldest first.
pub fn for_order(conn: &mut DbConnection, order_pk: &str) -> Result<Vec<DuplicateRow>, DbError> {
    Ok(duplicate_payments::table
        .filter(duplicate_payments::order_pk.eq(order_pk))
        .order(duplicate_payments::created_at.asc())
        .select(DuplicateRow::as_select())
        .load(conn)?)
}

/// Duplicates whose refund is due at `now`, oldest first, at most `limit`.
pub fn due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<DuplicateRow>, DbError> {
    Ok(duplicate_payments::table
        .filter(duplicate_payments::state.eq(DuplicateState::RefundDue))
        .filter(duplicate_payments::next_attempt_at.le(now))
        .order(duplicate_payments::next_attempt_at.asc())
        .limit(limit)
        .select(DuplicateRow::as_select())
        .load(conn)?)
}

/// Takes a due refund for one try: moves its next attempt to `until` if it is still due
/// at `now`. True when this call took it (another instance did not first).
pub fn claim(
    conn: &mut DbConnection,
    payment_id: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        duplicate_payments::table
            .find(payment_id)
            .filter(duplicate_payments::state.eq(DuplicateState::RefundDue))
            .filter(duplicate_payments::next_attempt_at.le(now)),
    )
    .set((
        duplicate_payments::next_attempt_at.eq(until),
        duplicate_payments::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// What a refund try ended in, as [`record`] stores it.
pub struct RefundResult<'a> {
    pub state: DuplicateState,
    pub komoju_refund_id: Option<&'a str>,
    /// Sealed.
    pub bank_account_url: Option<&'a str>,
    pub last_error: Option<&'a str>,
    /// With `state` still `RefundDue`: when to try again.
    pub next_attempt_at: NaiveDateTime,
}

/// Records a refund try of a claimed duplicate; counts an attempt.
pub fn record(
    conn: &mut DbConnection,
    payment_id: &str,
    result: &RefundResult<'_>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(duplicate_payments::table.find(payment_id))
        .set((
            duplicate_payments::state.eq(result.state),
            duplicate_payments::komoju_refund_id.eq(result.komoju_refund_id),
            duplicate_payments::bank_account_url.eq(result.bank_account_url),
            duplicate_payments::last_error.eq(result.last_error),
            duplicate_payments::next_attempt_at.eq(result.next_attempt_at),
            duplicate_payments::attempts.eq(duplicate_payments::attempts + 1),
            duplicate_payments::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks a duplicate refunded when KOMOJU reports all of it refunded (a webhook or a
/// read of the payment); true when this call changed it.
pub fn mark_refunded(
    conn: &mut DbConnection,
    payment_id: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        duplicate_payments::table
            .find(payment_id)
            .filter(duplicate_payments::state.ne(DuplicateState::Refunded)),
    )
    .set((
        duplicate_payments::state.eq(DuplicateState::Refunded),
        duplicate_payments::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Every duplicate payment, newest first, at most `limit` (operators).
pub fn list(conn: &mut DbConnection, limit: i64) -> Result<Vec<DuplicateRow>, DbError> {
    Ok(duplicate_payments::table
        .order(duplicate_payments::created_at.desc())
        .limit(limit)
        .select(DuplicateRow::as_select())
        .load(conn)?)
}
