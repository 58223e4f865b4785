//! The outbox table: notifications to Cafe24, written in the transaction that changed
//! the order, claimed by workers with a lease, finished only by the lease holder.
//!
//! Claiming is one statement per backend: PostgreSQL `UPDATE … WHERE id IN (SELECT …
//! FOR UPDATE SKIP LOCKED) RETURNING *`, so several instances never claim the same row;
//! SQLite `UPDATE … RETURNING *` on its single writer connection. A claim skips the rows
//! of a host that is backing off (`outbox_hosts.retry_at` in the future): a host's
//! back-off is shared by every row going to it ([`host_failed`], [`host_recovered`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::schema::{notifications, outbox_hosts};
use super::{DbConnection, DbError};

/// Where a notification stands (the `notifications.state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum NotificationState {
    /// Waiting for its next attempt (or leased by a worker sending it now).
    Pending,
    /// Cafe24 answered OK.
    Delivered,
    /// Every attempt of the schedule failed; replay with `notifications retry`.
    Dead,
}

impl NotificationState {
    /// The stored name: `pending`, `delivered` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Delivered => "delivered",
            NotificationState::Dead => "dead",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<NotificationState> {
        [
            NotificationState::Pending,
            NotificationState::Delivered,
            NotificationState::Dead,
        ]
        .into_iter()
        .find(|n| n.as_str() == s)
    }
}

/// What a notification tells Cafe24, and where (the `notifications.kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum NotificationKind {
    /// The payment result at `return_noty_url` (§6.2).
    ReturnNoty,
    /// External checkout's payment result at `return_notification_url` (§6.3).
    ReturnNotification,
    /// A refund's result at `cancel_noty_url` (§6.5).
    CancelNoty,
}

impl NotificationKind {
    /// The stored name: `return_noty`, `return_notification`, `cancel_noty`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::ReturnNoty => "return_noty",
            NotificationKind::ReturnNotification => "return_notification",
            NotificationKind::CancelNoty => "cancel_noty",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<NotificationKind> {
        [
            NotificationKind::ReturnNoty,
            NotificationKind::ReturnNotification,
            NotificationKind::CancelNoty,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A `notifications` row.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    pub id: i64,
    pub order_pk: String,
    pub kind: NotificationKind,
    /// Unique per order transition: the same change never enqueues twice.
    pub dedup_key: String,
    pub target_url: String,
    pub encoding: crate::merchant::kinds::NotifyEncoding,
    /// The fields to send, a JSON array of `[name, value]` string pairs, in order.
    pub fields: String,
    pub state: NotificationState,
    /// Attempts started so far (incremented when claimed).
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// `host[:port]` of `target_url` ([`target_host`]); `None` for a URL without one.
    pub target_host: Option<String>,
}

impl NotificationRow {
    /// The stored fields as pairs.
    pub fn field_pairs(&self) -> Result<Vec<(String, String)>, DbError> {
        serde_json::from_str(&self.fields)
            .map_err(|e| DbError::Corrupt(format!("notification {} fields: {e}", self.id)))
    }
}

/// A notification to enqueue.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = notifications)]
// Values are bound, `None` as NULL, never written `DEFAULT`: one SQL text for every
// row, so the insert stays prepared (`db::prepared`).
#[diesel(treat_none_as_default_value = false)]
pub struct NewNotification {
    pub order_pk: String,
    pub kind: NotificationKind,
    pub dedup_key: String,
    pub target_url: String,
    pub encoding: crate::merchant::kinds::NotifyEncoding,
    pub fields: String,
    pub state: NotificationState,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The host a notification goes to, as its back-off is keyed: the URL's host, lowercase,
/// with `:port` when the URL names one other than the scheme's default. `None` when
/// `url` is not an absolute URL with a host.
pub fn target_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    Some(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// Enqueues inside the caller's transaction (`INSERT … ON CONFLICT DO NOTHING`), with its
/// [`target_host`]. A repeated `dedup_key` is skipped (returns false): the transition was
/// already enqueued.
pub fn enqueue(conn: &mut DbConnection, n: &NewNotification) -> Result<bool, DbError> {
    let host = notifications::target_host.eq(target_host(&n.target_url));
    let inserted = on_backend!(conn, |c| diesel::insert_into(notifications::table)
        .values((n, host.clone()))
        .on_conflict(notifications::dedup_key)
        .do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

const CLAIM_POSTGRES: &str = "UPDATE notifications \
    SET lease_owner = $1, lease_expires_at = $2, next_attempt_at = $2, \
        attempts = attempts + 1, updated_at = $3 \
    WHERE id IN (SELECT id FROM notifications \
                 WHERE state = 'pending' AND next_attempt_at <= $3 \
                   AND (lease_expires_at IS NULL OR lease_expires_at < $3) \
                   AND NOT EXISTS (SELECT 1 FROM outbox_hosts h \
                                   WHERE h.host = notifications.target_host AND h.retry_at > $3) \
                 ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
    RETURNING *";

const CLAIM_SQLITE: &str = "UPDATE notifications \
    SET lease_owner = ?1, lease_expires_at = ?2, next_attempt_at = ?2, \
        attempts = attempts + 1, updated_at = ?3 \
    WHERE id IN (SELECT id FROM notifications \
                 WHERE state = 'pending' AND next_attempt_at <= ?3 \
                   AND (lease_expires_at IS NULL OR lease_expires_at < ?3) \
                   AND NOT EXISTS (SELECT 1 FROM outbox_hosts h \
                                   WHERE h.host = notifications.target_host AND h.retry_at > ?3) \
                 ORDER BY next_attempt_at, id LIMIT ?4) \
    RETURNING *";

/// Claims up to `limit` due rows for `owner` until `lease_until`, oldest due first,
/// skipping the rows of hosts backing off at `now`. A claimed row's `next_attempt_at`
/// becomes `lease_until`: should its worker die, that is when it is due again, and
/// until then it is out of the due range every later claim walks (a claim no longer
/// steps over the rows earlier claims hold; docs/decisions.md, "A claim moves the
/// row's next attempt to its lease's end"). The lease test stays, for rows leased
/// before this rule. The returned rows carry the new `next_attempt_at`.
pub fn claim(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<NotificationRow>, DbError> {
    let rows = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(CLAIM_POSTGRES)
            .bind::<Text, _>(owner)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load::<NotificationRow>(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(CLAIM_SQLITE)
            .bind::<Text, _>(owner)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load::<NotificationRow>(lite)?,
    };
    Ok(rows)
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Finish {
    Delivered {
        status: i32,
    },
    Retry {
        status: Option<i32>,
        error: String,
        next_attempt_at: NaiveDateTime,
    },
    Dead {
        status: Option<i32>,
        error: String,
    },
}

/// Records the end of an attempt, only if `owner` still holds the lease (a worker whose
/// lease was taken over finishes nothing). Returns whether the row was updated.
pub fn finish(
    conn: &mut DbConnection,
    id: i64,
    owner: &str,
    how: Finish,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let target = notifications::id
        .eq(id)
        .and(notifications::lease_owner.eq(owner))
        .and(notifications::state.eq(NotificationState::Pending));
    let none_owner = notifications::lease_owner.eq(None::<String>);
    let none_expiry = notifications::lease_expires_at.eq(None::<NaiveDateTime>);
    let n = match how {
        Finish::Delivered { status } => super::prepared::update(
            notifications::table,
            (
                notifications::state.eq(NotificationState::Delivered),
                notifications::last_status.eq(Some(status)),
                notifications::last_error.eq(None::<String>),
                notifications::delivered_at.eq(Some(now)),
                none_owner,
                none_expiry,
                notifications::updated_at.eq(now),
            ),
            target,
        )
        .execute(conn)?,
        Finish::Retry {
            status,
            error,
            next_attempt_at,
        } => super::prepared::update(
            notifications::table,
            (
                notifications::last_status.eq(status),
                notifications::last_error.eq(Some(error)),
                notifications::next_attempt_at.eq(next_attempt_at),
                none_owner,
                none_expiry,
                notifications::updated_at.eq(now),
            ),
            target,
        )
        .execute(conn)?,
        Finish::Dead { status, error } => super::prepared::update(
            notifications::table,
            (
                notifications::state.eq(NotificationState::Dead),
                notifications::last_status.eq(status),
                notifications::last_error.eq(Some(error)),
                none_owner,
                none_expiry,
                notifications::updated_at.eq(now),
            ),
            target,
        )
        .execute(conn)?,
    };
    Ok(n == 1)
}

/// Gives claimed rows back without counting the attempt (graceful shutdown, or the
/// rest of a failing host's rows): due again at `now` (the claim had moved them to the
/// lease's end).
pub fn release(
    conn: &mut DbConnection,
    ids: &[i64],
    owner: &str,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        notifications::table
            .filter(notifications::id.eq_any(ids))
            .filter(notifications::lease_owner.eq(owner))
            .filter(notifications::state.eq(NotificationState::Pending)),
    )
    .set((
        notifications::attempts.eq(notifications::attempts - 1),
        notifications::lease_owner.eq(None::<String>),
        notifications::lease_expires_at.eq(None::<NaiveDateTime>),
        notifications::next_attempt_at.eq(now),
        notifications::updated_at.eq(now),
    ))
    .execute(conn)?)
}

/// Gives back every row `owner` still holds, without counting the attempt (a stopping
/// worker), due at `now`, so another worker may claim them at once. Returns how many.
pub fn release_all(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        notifications::table
            .filter(notifications::lease_owner.eq(owner))
            .filter(notifications::state.eq(NotificationState::Pending)),
    )
    .set((
        notifications::attempts.eq(notifications::attempts - 1),
        notifications::lease_owner.eq(None::<String>),
        notifications::lease_expires_at.eq(None::<NaiveDateTime>),
        notifications::next_attempt_at.eq(now),
        notifications::updated_at.eq(now),
    ))
    .execute(conn)?)
}

/// The consecutive failed attempts of each of `hosts` that has any (hosts absent from
/// the map are healthy).
pub fn host_failures(
    conn: &mut DbConnection,
    hosts: &[String],
) -> Result<std::collections::HashMap<String, i32>, DbError> {
    if hosts.is_empty() {
        return Ok(Default::default());
    }
    Ok(outbox_hosts::table
        .filter(outbox_hosts::host.eq_any(hosts))
        .filter(outbox_hosts::failures.gt(0))
        .select((outbox_hosts::host, outbox_hosts::failures))
        .load::<(String, i32)>(conn)?
        .into_iter()
        .collect())
}

/// Records a failed attempt to `host` at `now`: one more consecutive failure, and no
/// attempt to the host before `retry_at` — unless a failure of this same back-off
/// window was already counted (several rows of one batch failing together count once).
pub fn host_failed(
    conn: &mut DbConnection,
    host: &str,
    now: NaiveDateTime,
    retry_at: NaiveDateTime,
) -> Result<(), DbError> {
    let row = (
        outbox_hosts::host.eq(host),
        outbox_hosts::failures.eq(1),
        outbox_hosts::retry_at.eq(Some(retry_at)),
        outbox_hosts::updated_at.eq(now),
    );
    let inserted = on_backend!(conn, |c| diesel::insert_into(outbox_hosts::table)
        .values(row)
        .on_conflict(outbox_hosts::host)
        .do_nothing()
        .execute(c))?;
    if inserted == 0 {
        diesel::update(
            outbox_hosts::table.find(host).filter(
                outbox_hosts::retry_at
                    .is_null()
                    .or(outbox_hosts::retry_at.le(now)),
            ),
        )
        .set((
            outbox_hosts::failures.eq(outbox_hosts::failures + 1),
            outbox_hosts::retry_at.eq(Some(retry_at)),
            outbox_hosts::updated_at.eq(now),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// A delivery to `host` succeeded at `now` after failures: its back-off is cleared and
/// every row of it waiting for a later attempt is due now (claimed oldest first, a
/// batch at a time); a row a worker holds (its next attempt is its lease's end) is left
/// to that worker. Returns how many rows were made due.
pub fn host_recovered(
    conn: &mut DbConnection,
    host: &str,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    diesel::update(outbox_hosts::table.find(host))
        .set((
            outbox_hosts::failures.eq(0),
            outbox_hosts::retry_at.eq(None::<NaiveDateTime>),
            outbox_hosts::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(diesel::update(
        notifications::table
            .filter(notifications::target_host.eq(host))
            .filter(notifications::state.eq(NotificationState::Pending))
            .filter(notifications::lease_owner.is_null())
            .filter(notifications::next_attempt_at.gt(now)),
    )
    .set((
        notifications::next_attempt_at.eq(now),
        notifications::updated_at.eq(now),
    ))
    .execute(conn)?)
}

/// Makes a notification due now with a fresh schedule (operator replay), and lifts its
/// host's back-off (the operator says the target works again; a failure starts it
/// anew). Returns false when there is no such row or it was already delivered.
pub fn retry(conn: &mut DbConnection, id: i64, now: NaiveDateTime) -> Result<bool, DbError> {
    let n = diesel::update(
        notifications::table
            .find(id)
            .filter(notifications::state.ne(NotificationState::Delivered)),
    )
    .set((
        notifications::state.eq(NotificationState::Pending),
        notifications::attempts.eq(0),
        notifications::next_attempt_at.eq(now),
        notifications::lease_owner.eq(None::<String>),
        notifications::lease_expires_at.eq(None::<NaiveDateTime>),
        notifications::updated_at.eq(now),
    ))
    .execute(conn)?;
    if n == 1 {
        let host: Option<String> = notifications::table
            .find(id)
            .select(notifications::target_host)
            .first(conn)?;
        if let Some(host) = host {
            diesel::update(outbox_hosts::table.find(host))
                .set(outbox_hosts::retry_at.eq(None::<NaiveDateTime>))
                .execute(conn)?;
        }
    }
    Ok(n == 1)
}

/// Notifications, newest first, optionally of one state.
pub fn list(
    conn: &mut DbConnection,
    state: Option<NotificationState>,
    limit: i64,
) -> Result<Vec<NotificationRow>, DbError> {
    let mut q = notifications::table
        .select(NotificationRow::as_select())
        .order(notifications::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(s) = state {
        q = q.filter(notifications::state.eq(s));
    }
    Ok(q.load(conn)?)
}

/// One notification.
pub fn find(conn: &mut DbConnection, id: i64) -> Result<Option<NotificationRow>, DbError> {
    Ok(notifications::table
        .find(id)
        .select(NotificationRow::as_select())
        .first(conn)
        .optional()?)
}

/// How many rows a claim at `now` would take: pending, due, not leased (or the lease
/// ended), and not of a host backing off. Tests drive the outbox to idle with it.
pub fn claimable(conn: &mut DbConnection, now: NaiveDateTime) -> Result<i64, DbError> {
    let backing_off = outbox_hosts::table
        .filter(outbox_hosts::retry_at.gt(now))
        .select(outbox_hosts::host.nullable());
    Ok(notifications::table
        .filter(notifications::state.eq(NotificationState::Pending))
        .filter(notifications::next_attempt_at.le(now))
        .filter(
            notifications::lease_expires_at
                .is_null()
                .or(notifications::lease_expires_at.lt(now)),
        )
        .filter(
            notifications::target_host
                .is_null()
                .or(notifications::target_host.ne_all(backing_off)),
        )
        .count()
        .get_result(conn)?)
}

/// The notifications of one order, oldest first.
pub fn for_order(conn: &mut DbConnection, order_pk: &str) -> Result<Vec<NotificationRow>, DbError> {
    Ok(notifications::table
        .filter(notifications::order_pk.eq(order_pk))
        .order(notifications::id.asc())
        .select(NotificationRow::as_select())
        .load(conn)?)
}

/// How many notifications are pending, and when the oldest of them was created.
pub fn pending_summary(conn: &mut DbConnection) -> Result<(i64, Option<NaiveDateTime>), DbError> {
    let pending = notifications::table.filter(notifications::state.eq(NotificationState::Pending));
    let count: i64 = pending.count().get_result(conn)?;
    let oldest: Option<NaiveDateTime> = pending
        .select(diesel::dsl::min(notifications::created_at))
        .first(conn)?;
    Ok((count, oldest))
}
