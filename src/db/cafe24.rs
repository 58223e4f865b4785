//! Rows of the Cafe24 install (PROTOCOL.md §12): each mall's OAuth tokens (sealed; this
//! module never opens them), the single-use OAuth `state` nonces, the used launches
//! (single use), each mall's session generation, and when Cafe24's lifecycle events for
//! a mall were last confirmed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{cafe24_tokens, launch_uses, lifecycle_checks, mall_sessions, oauth_states};
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

/// Records one use of a launch (the SHA-256 `hmac_hash` of its `hmac`) for `mall_id`,
/// kept until `expires_at`, after forgetting every use whose window ended before `now`.
/// Returns `false` when that launch was already used: `INSERT … ON CONFLICT DO NOTHING`,
/// so of two concurrent uses (in one process or several instances) exactly one wins.
pub fn use_launch(
    conn: &mut DbConnection,
    hmac_hash: &str,
    mall_id: &str,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    diesel::delete(launch_uses::table.filter(launch_uses::expires_at.lt(now))).execute(conn)?;
    let row = (
        launch_uses::hmac_hash.eq(hmac_hash),
        launch_uses::mall_id.eq(mall_id),
        launch_uses::expires_at.eq(expires_at),
    );
    let n = on_backend!(conn, |c| diesel::insert_into(launch_uses::table)
        .values(row)
        .on_conflict(launch_uses::hmac_hash)
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// The session generation of `mall_id`: 0 until its first disconnect.
pub fn session_generation(conn: &mut DbConnection, mall_id: &str) -> Result<i64, DbError> {
    Ok(mall_sessions::table
        .find(mall_id)
        .select(mall_sessions::generation)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}

/// Ends every session of `mall_id`: adds one to its generation (in the caller's
/// transaction; one upsert, so concurrent calls each count). Returns the new generation.
pub fn end_sessions(
    conn: &mut DbConnection,
    mall_id: &str,
    now: NaiveDateTime,
) -> Result<i64, DbError> {
    let row = (
        mall_sessions::mall_id.eq(mall_id),
        mall_sessions::generation.eq(1_i64),
        mall_sessions::updated_at.eq(now),
    );
    on_backend!(conn, |c| diesel::insert_into(mall_sessions::table)
        .values(row)
        .on_conflict(mall_sessions::mall_id)
        .do_update()
        .set((
            mall_sessions::generation.eq(mall_sessions::generation + 1_i64),
            mall_sessions::updated_at.eq(now),
        ))
        .execute(c))?;
    session_generation(conn, mall_id)
}

/// Claims the one lifecycle confirmation `mall_id` may have at `now`: `true` (and `now`
/// recorded, no event left waiting) when none was made after `not_after`; otherwise the
/// event is recorded as waiting (`pending_since`) and `false` is returned. One
/// conditional statement decides, so across instances one caller wins a minute.
pub fn claim_lifecycle_check(
    conn: &mut DbConnection,
    mall_id: &str,
    now: NaiveDateTime,
    not_after: NaiveDateTime,
) -> Result<bool, DbError> {
    let row = (
        lifecycle_checks::mall_id.eq(mall_id),
        lifecycle_checks::checked_at.eq(now),
        lifecycle_checks::pending_since.eq(None::<NaiveDateTime>),
    );
    let inserted = on_backend!(conn, |c| diesel::insert_into(lifecycle_checks::table)
        .values(row)
        .on_conflict(lifecycle_checks::mall_id)
        .do_nothing()
        .execute(c))?;
    if inserted == 1 || take_lifecycle_check(conn, mall_id, now, not_after, false)? {
        return Ok(true);
    }
    diesel::update(
        lifecycle_checks::table
            .find(mall_id)
            .filter(lifecycle_checks::pending_since.is_null()),
    )
    .set(lifecycle_checks::pending_since.eq(now))
    .execute(conn)?;
    Ok(false)
}

/// Takes the mall's confirmation for `now` when the last one was made at or before
/// `not_after` (and, with `pending_only`, an event waits): one conditional `UPDATE`.
pub fn take_lifecycle_check(
    conn: &mut DbConnection,
    mall_id: &str,
    now: NaiveDateTime,
    not_after: NaiveDateTime,
    pending_only: bool,
) -> Result<bool, DbError> {
    let due = lifecycle_checks::table
        .find(mall_id)
        .filter(lifecycle_checks::checked_at.le(not_after));
    let n = if pending_only {
        diesel::update(due.filter(lifecycle_checks::pending_since.is_not_null()))
            .set((
                lifecycle_checks::checked_at.eq(now),
                lifecycle_checks::pending_since.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?
    } else {
        diesel::update(due)
            .set((
                lifecycle_checks::checked_at.eq(now),
                lifecycle_checks::pending_since.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?
    };
    Ok(n == 1)
}

/// Malls with a lifecycle event waiting whose last confirmation was made at or before
/// `not_after`, longest waiting first, at most `limit`.
pub fn lifecycle_due(
    conn: &mut DbConnection,
    not_after: NaiveDateTime,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    Ok(lifecycle_checks::table
        .filter(lifecycle_checks::pending_since.is_not_null())
        .filter(lifecycle_checks::checked_at.le(not_after))
        .order(lifecycle_checks::pending_since.asc())
        .select(lifecycle_checks::mall_id)
        .limit(limit)
        .load(conn)?)
}
