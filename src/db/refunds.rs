//! Cancellation requests from Cafe24 (PROTOCOL.md §6.4, §6.5): one row per request, with
//! its own KOMOJU idempotency key and exact request body stored before the call, and the
//! first reply given to Cafe24 (replayed to repeats within the de-duplication window).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::refunds;
use super::{DbConnection, DbError};

/// Which KOMOJU call a cancellation request makes (the `refunds.operation` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Operation {
    /// `POST /payments/{id}/refund`, after capture (full or partial).
    Refund,
    /// `POST /payments/{id}/cancel`, before capture (in full).
    Cancel,
}

impl Operation {
    /// The stored name: `refund` or `cancel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Refund => "refund",
            Operation::Cancel => "cancel",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Operation> {
        [Operation::Refund, Operation::Cancel]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// Where a cancellation request stands (the `refunds.state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum RefundState {
    /// The KOMOJU call was not confirmed yet (in flight, or it failed in a retryable way).
    Pending,
    /// KOMOJU accepted an asynchronous refund; its confirmation (webhook or reconciliation
    /// read) is awaited before Cafe24 is notified.
    Accepted,
    /// Done: refunded or cancelled at KOMOJU (and, in async mode, confirmed).
    Succeeded,
    /// KOMOJU refused to refund or cancel this payment (400 or 422).
    NotRefundable,
    /// KOMOJU refused the request for another reason.
    Failed,
}

impl RefundState {
    /// The stored name: `pending`, `accepted`, `succeeded`, `not_refundable`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::Accepted => "accepted",
            RefundState::Succeeded => "succeeded",
            RefundState::NotRefundable => "not_refundable",
            RefundState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<RefundState> {
        [
            RefundState::Pending,
            RefundState::Accepted,
            RefundState::Succeeded,
            RefundState::NotRefundable,
            RefundState::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A `refunds` row. Amounts in minor units; `cancel_amount_text` is Cafe24's string.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refunds)]
pub struct RefundRow {
    pub id: String,
    pub order_pk: String,
    /// Which route family the request came through.
    pub mode: crate::merchant::kinds::CancelMode,
    pub operation: Operation,
    /// SHA-256 of the request's identifying fields: repeats have the same one.
    pub fingerprint: String,
    pub cancel_amount: i64,
    pub cancel_amount_text: String,
    pub tid: String,
    pub cancel_noty_url: Option<String>,
    pub extra_data: Option<String>,
    /// `X-KOMOJU-IDEMPOTENCY` of this request's KOMOJU call.
    pub idempotency_key: String,
    /// The exact JSON body of the KOMOJU call.
    pub komoju_request: String,
    pub komoju_refund_id: Option<String>,
    pub state: RefundState,
    /// The first reply given to Cafe24 (HTTP status and JSON body), once there is one.
    pub reply_status: Option<i32>,
    pub reply_body: Option<String>,
    pub confirmed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Konbini, bank transfer, Pay-easy: KOMOJU's page where the buyer gives the bank
    /// account for the money (the refund's `redirect_url`), sealed by
    /// [`crate::secrets::SecretBox`] for the mall and [`BANK_ACCOUNT_URL`]. A capability
    /// link: shown only to the merchant and the operator, never logged.
    pub bank_account_url: Option<String>,
}

/// The column name the bank-account link is sealed under (associated data).
pub const BANK_ACCOUNT_URL: &str = "refunds.bank_account_url";

/// What KOMOJU answered a request, as [`record_result`] stores it.
pub struct KomojuResult<'a> {
    pub state: RefundState,
    pub komoju_refund_id: Option<&'a str>,
    /// Sealed (see [`RefundRow::bank_account_url`]).
    pub bank_account_url: Option<&'a str>,
    /// The reply given to Cafe24: HTTP status and JSON body.
    pub reply_status: i32,
    pub reply_body: &'a str,
}

/// Inserts a new request.
pub fn insert(conn: &mut DbConnection, row: &RefundRow) -> Result<(), DbError> {
    diesel::insert_into(refunds::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The latest request of the order with this fingerprint made at or after `since`.
pub fn find_recent(
    conn: &mut DbConnection,
    order_pk: &str,
    fingerprint: &str,
    since: NaiveDateTime,
) -> Result<Option<RefundRow>, DbError> {
    Ok(refunds::table
        .filter(refunds::order_pk.eq(order_pk))
        .filter(refunds::fingerprint.eq(fingerprint))
        .filter(refunds::created_at.ge(since))
        .order(refunds::created_at.desc())
        .select(RefundRow::as_select())
        .first(conn)
        .optional()?)
}

/// Money held by the order's requests still unconfirmed at KOMOJU and made at or after
/// `since` (older ones are reflected in the payment KOMOJU reports, or never happened).
pub fn reserved(
    conn: &mut DbConnection,
    order_pk: &str,
    since: NaiveDateTime,
) -> Result<i64, DbError> {
    let amounts: Vec<i64> = refunds::table
        .filter(refunds::order_pk.eq(order_pk))
        .filter(refunds::state.eq(RefundState::Pending))
        .filter(refunds::created_at.ge(since))
        .select(refunds::cancel_amount)
        .load(conn)?;
    Ok(amounts.iter().sum())
}

/// Records KOMOJU's answer and the reply to Cafe24, unless an earlier identical request
/// already did (the first reply wins). Returns the row as stored.
pub fn record_result(
    conn: &mut DbConnection,
    id: &str,
    result: &KomojuResult<'_>,
    now: NaiveDateTime,
) -> Result<RefundRow, DbError> {
    diesel::update(
        refunds::table
            .find(id)
            .filter(refunds::reply_status.is_null()),
    )
    .set((
        refunds::state.eq(result.state),
        refunds::komoju_refund_id.eq(result.komoju_refund_id),
        refunds::bank_account_url.eq(result.bank_account_url),
        refunds::reply_status.eq(Some(result.reply_status)),
        refunds::reply_body.eq(Some(result.reply_body)),
        refunds::updated_at.eq(now),
    ))
    .execute(conn)?;
    find(conn, id)?.ok_or_else(|| DbError::Corrupt(format!("refund {id} vanished")))
}

/// Marks an accepted asynchronous refund confirmed; true if this call did it.
pub fn confirm(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<bool, DbError> {
    let n = diesel::update(
        refunds::table
            .find(id)
            .filter(refunds::state.eq(RefundState::Accepted)),
    )
    .set((
        refunds::state.eq(RefundState::Succeeded),
        refunds::confirmed_at.eq(Some(now)),
        refunds::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// One request.
pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<RefundRow>, DbError> {
    Ok(refunds::table
        .find(id)
        .select(RefundRow::as_select())
        .first(conn)
        .optional()?)
}

/// The request KOMOJU's refund `refund_id` belongs to.
pub fn find_by_komoju_refund_id(
    conn: &mut DbConnection,
    refund_id: &str,
) -> Result<Option<RefundRow>, DbError> {
    Ok(refunds::table
        .filter(refunds::komoju_refund_id.eq(refund_id))
        .select(RefundRow::as_select())
        .first(conn)
        .optional()?)
}

/// Asynchronous refunds accepted before `before` and still unconfirmed.
pub fn awaiting_confirmation(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> Result<Vec<RefundRow>, DbError> {
    Ok(refunds::table
        .filter(refunds::state.eq(RefundState::Accepted))
        .filter(refunds::updated_at.lt(before))
        .order(refunds::updated_at.asc())
        .limit(limit)
        .select(RefundRow::as_select())
        .load(conn)?)
}

/// Every request of an order, oldest first.
pub fn for_order(conn: &mut DbConnection, order_pk: &str) -> Result<Vec<RefundRow>, DbError> {
    Ok(refunds::table
        .filter(refunds::order_pk.eq(order_pk))
        .order(refunds::created_at.asc())
        .select(RefundRow::as_select())
        .load(conn)?)
}
