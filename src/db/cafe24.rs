//! Rows of the Cafe24 install (PROTOCOL.md §12): each mall's OAuth tokens (sealed; this
//! module never opens them) and the single-use OAuth `state` nonces.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{cafe24_tokens, oauth_states};
use super::{DbConnection, DbError};

/// A `cafe24_tokens` row: both tokens sealed by [`crate::secrets::SecretBox`].
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = cafe24_tokens)]
pub struct TokenRow {
    pub mall_id: String,
    pub access_token: String,
    /// When the access token stops working (UTC, as this service reckons it).
    pub access_expires_at: NaiveDateTime,
    pub refresh_token: String,
    /// When the refresh token stops working (UTC).
    pub refresh_expires_at: NaiveDateTime,
    /// The granted scopes, comma-separated.
    pub scopes: String,
    /// The Cafe24 operator who authorized the app.
    pub user_id: String,
    /// Set while a refresh is in flight ([`claim_refresh`]).
    pub refresh_lease_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// An `oauth_states` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_states)]
pub struct StateRow {
    /// SHA-256 (hex) of the `state` value; the value itself is only in the browser.
    pub state_hash: String,
    pub mall_id: String,
    pub user_id: String,
    pub lang: String,
    pub created_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

/// The tokens of `mall_id`, if any.
pub fn find_token(conn: &mut DbConnection, mall_id: &str) -> Result<Option<TokenRow>, DbError> {
    Ok(cafe24_tokens::table
        .find(mall_id)
        .select(TokenRow::as_select())
        .first(conn)
        .optional()?)
}

/// Claims the right to refresh the tokens of `mall_id` until `until`: one conditional
/// `UPDATE` (the row is locked for it on PostgreSQL; SQLite takes its write lock), true
/// when no other holder's lease is live at `now`. So two callers, in one process or in
/// several instances, never refresh one mall at once, and no transaction stays open
/// across the call to Cafe24.
pub fn claim_refresh(
    conn: &mut DbConnection,
    mall_id: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<bool, DbError> {
    Ok(diesel::update(
        cafe24_tokens::table.find(mall_id).filter(
            cafe24_tokens::refresh_lease_until
                .is_null()
                .or(cafe24_tokens::refresh_lease_until.lt(now)),
        ),
    )
    .set(cafe24_tokens::refresh_lease_until.eq(until))
    .execute(conn)?
        == 1)
}

/// Gives up a refresh lease without changing the tokens.
pub fn release_refresh(conn: &mut DbConnection, mall_id: &str) -> Result<(), DbError> {
    diesel::update(cafe24_tokens::table.find(mall_id))
        .set(cafe24_tokens::refresh_lease_until.eq(None::<NaiveDateTime>))
        .execute(conn)?;
    Ok(())
}

/// Inserts or replaces the tokens of the row's mall (keeping its `created_at`), and
/// releases any refresh lease: the new refresh token replaces the old in this statement.
pub fn save_token(conn: &mut DbConnection, row: &TokenRow) -> Result<(), DbError> {
    let updated = diesel::update(cafe24_tokens::table.find(&row.mall_id))
        .set((
            cafe24_tokens::access_token.eq(&row.access_token),
            cafe24_tokens::access_expires_at.eq(row.access_expires_at),
            cafe24_tokens::refresh_token.eq(&row.refresh_token),
            cafe24_tokens::refresh_expires_at.eq(row.refresh_expires_at),
            cafe24_tokens::scopes.eq(&row.scopes),
            cafe24_tokens::user_id.eq(&row.user_id),
            cafe24_tokens::refresh_lease_until.eq(None::<NaiveDateTime>),
            cafe24_tokens::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(cafe24_tokens::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// Deletes the tokens of `mall_id`; returns whether there were any.
pub fn delete_token(conn: &mut DbConnection, mall_id: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(cafe24_tokens::table.find(mall_id)).execute(conn)? > 0)
}

/// Malls whose refresh token ends before `before`, soonest first, at most `limit`.
pub fn refresh_due(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    Ok(cafe24_tokens::table
        .filter(cafe24_tokens::refresh_expires_at.lt(before))
        .order(cafe24_tokens::refresh_expires_at.asc())
        .select(cafe24_tokens::mall_id)
        .limit(limit)
        .load(conn)?)
}

/// Stores a new `state` nonce (and forgets those older than `expired_before`).
pub fn insert_state(
    conn: &mut DbConnection,
    row: &StateRow,
    expired_before: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::delete(oauth_states::table.filter(oauth_states::created_at.lt(expired_before)))
        .execute(conn)?;
    diesel::insert_into(oauth_states::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Uses the `state` nonce whose hash is `state_hash`: marks it used when it exists, was
/// never used and was created at or after `not_before`, and returns it; `None` otherwise
/// (unknown, reused or expired). One statement, so two callbacks cannot both use it.
pub fn use_state(
    conn: &mut DbConnection,
    state_hash: &str,
    not_before: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<Option<StateRow>, DbError> {
    let changed = diesel::update(
        oauth_states::table
            .filter(oauth_states::state_hash.eq(state_hash))
            .filter(oauth_states::used_at.is_null())
            .filter(oauth_states::created_at.ge(not_before)),
    )
    .set(oauth_states::used_at.eq(now))
    .execute(conn)?;
    if changed == 0 {
        return Ok(None);
    }
    Ok(oauth_states::table
        .find(state_hash)
        .select(StateRow::as_select())
        .first(conn)
        .optional()?)
}
