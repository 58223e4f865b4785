//! A mall's Cafe24 OAuth tokens in use (PROTOCOL.md §12): stored sealed, refreshed ahead
//! of expiry, refreshed once and retried on a 401. A 403 is confirmed with one
//! `GET /admin/shops` before anything is decided: when that is refused too the app was
//! removed, and the mall is disabled, its tokens deleted and its sessions ended; when it
//! succeeds the call was refused for a scope ([`AdminError::Refused`]) and nothing
//! changes. A refused refresh token disconnects its one mall; a refusal of the app's own
//! credentials (a wrong or rotated `CAFE24_CLIENT_SECRET`) disconnects nothing and keeps
//! every token, so the next attempt works once the setting is fixed.
//!
//! Refreshing: the caller claims a lease on the mall's token row with one conditional
//! `UPDATE` ([`db::cafe24::claim_refresh`]); whoever holds it calls Cafe24 and stores the
//! new pair (the new refresh token replaces the old in the same statement); everyone
//! else waits for the row to change and uses what the holder stored. So two requests,
//! in one process or in several instances, make one refresh call, and no transaction
//! stays open across a call to Cafe24. If the process dies after Cafe24 rotated the
//! refresh token but before the commit, the old one no longer works: the next refresh
//! is refused and the mall must be authorized again (relaunching the app does it).

use std::future::Future;
use std::time::Duration;

use chrono::NaiveDateTime;
use secrecy::SecretString;

use crate::cafe24::admin::{Cafe24Error, Shop};
use crate::cafe24::oauth::TokenGrant;
use crate::db::{self, cafe24::TokenRow, DbError};
use crate::services::Services;

/// Column names used as associated data when sealing the tokens.
pub const ACCESS_COLUMN: &str = "cafe24_access_token";
pub const REFRESH_COLUMN: &str = "cafe24_refresh_token";
/// An access token this close to its end is refreshed before use.
const REFRESH_AHEAD: chrono::Duration = chrono::Duration::minutes(5);
/// How long a refresh lease lasts (longer than one Cafe24 call may take).
const LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// How often a waiter looks whether the lease holder has finished.
const LEASE_POLL: Duration = Duration::from_millis(50);
/// The background task refreshes tokens whose refresh token ends within this.
pub const REFRESH_TOKEN_AHEAD: chrono::Duration = chrono::Duration::days(3);

/// Why a mall's Admin API call could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The mall never authorized the app (or its tokens were deleted).
    #[error("the mall has not authorized the app")]
    NotConnected,
    /// Cafe24 says the app is gone (403 confirmed by `GET /admin/shops`, or the refresh
    /// token refused): the mall was disabled and its tokens deleted.
    #[error("the app was removed from the mall; the mall is disabled")]
    Disconnected,
    /// Cafe24 refused this call (403) while the mall's shops are still listed: the token
    /// lacks the call's scope, or Cafe24 has not authorized the client for the API.
    /// Nothing was changed. `message` is Cafe24's.
    #[error("Cafe24 refused the call although the app is installed: {message}")]
    Refused { message: String },
    #[error("{0}")]
    Cafe24(#[from] Cafe24Error),
    #[error("{0}")]
    Db(#[from] DbError),
    /// A stored token does not open (wrong `APP_SECRET`, tampered row).
    #[error("the mall's stored tokens do not open")]
    Sealed,
}

/// Seals a grant into the row to store for `mall_id`, received at `now`.
pub fn sealed_row(
    app: &Services,
    mall_id: &str,
    grant: &TokenGrant,
    now: NaiveDateTime,
) -> Result<TokenRow, AdminError> {
    let seal = |column: &str, value: &SecretString| {
        app.secrets.seal(mall_id, column, value).map_err(|e| {
            log::error!("sealing the Cafe24 tokens of {mall_id}: {e}");
            AdminError::Sealed
        })
    };
    Ok(TokenRow {
        mall_id: mall_id.to_owned(),
        access_token: seal(ACCESS_COLUMN, &grant.access_token)?,
        access_expires_at: grant.access_end(now),
        refresh_token: seal(REFRESH_COLUMN, &grant.refresh_token)?,
        refresh_expires_at: grant.refresh_end(now),
        scopes: grant.scopes.join(","),
        user_id: grant.user_id.clone(),
        refresh_lease_until: None,
        created_at: now,
        updated_at: now,
    })
}

fn open(app: &Services, row: &TokenRow, column: &str) -> Result<SecretString, AdminError> {
    let sealed = if column == ACCESS_COLUMN {
        &row.access_token
    } else {
        &row.refresh_token
    };
    app.secrets.open(&row.mall_id, column, sealed).map_err(|e| {
        log::error!("opening the Cafe24 tokens of {}: {e}", row.mall_id);
        AdminError::Sealed
    })
}

/// True when the mall has tokens whose refresh token still lives at `now`.
pub async fn is_connected(app: &Services, mall_id: &str) -> Result<bool, DbError> {
    let mall = mall_id.to_owned();
    let now = app.clock.now_naive();
    let row = app
        .db
        .run(move |c| db::cafe24::find_token(c, &mall))
        .await?;
    Ok(row.is_some_and(|r| r.refresh_expires_at > now))
}

/// The scopes the mall granted, when it has tokens whose refresh token still lives at
/// `now` (`None` otherwise: it must authorize the app).
pub async fn granted_scopes(app: &Services, mall_id: &str) -> Result<Option<Vec<String>>, DbError> {
    let mall = mall_id.to_owned();
    let now = app.clock.now_naive();
    let row = app
        .db
        .run(move |c| db::cafe24::find_token(c, &mall))
        .await?;
    Ok(row.filter(|r| r.refresh_expires_at > now).map(|r| {
        r.scopes
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }))
}

/// What a 403 to a call means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On403 {
    /// Not yet known: confirmed with one `GET /admin/shops`.
    Confirm,
    /// The call was `GET /admin/shops` itself: the app is gone.
    Final,
}

/// Runs `call` with a live access token of `mall_id`: refreshed first when it is near its
/// end, refreshed once and `call` retried when Cafe24 answers 401. A 403 is confirmed
/// with one `GET /admin/shops`: refused too, the mall is disabled and its tokens deleted
/// ([`AdminError::Disconnected`]); listed, nothing changes and the call's refusal is
/// returned ([`AdminError::Refused`]). A refresh Cafe24 refuses disconnects the mall; a
/// refusal of the app's credentials is returned as it is
/// ([`Cafe24Error::AppCredentials`]) and disconnects nothing.
pub async fn with_access<T, F, Fut>(app: &Services, mall_id: &str, call: F) -> Result<T, AdminError>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, Cafe24Error>>,
{
    access(app, mall_id, On403::Confirm, call).await
}

/// `GET /admin/shops` with a live access token of `mall_id`: the call that confirms a
/// 403, so its own 403 disconnects the mall at once (one call, not two).
pub async fn shops(app: &Services, mall_id: &str) -> Result<Vec<Shop>, AdminError> {
    access(app, mall_id, On403::Final, |token| async move {
        app.cafe24.shops(mall_id, &token).await
    })
    .await
}

async fn access<T, F, Fut>(
    app: &Services,
    mall_id: &str,
    on_403: On403,
    call: F,
) -> Result<T, AdminError>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, Cafe24Error>>,
{
    let row = current(app, mall_id).await?;
    let row = if row.access_expires_at - REFRESH_AHEAD <= app.clock.now_naive() {
        refresh(app, mall_id, Some(&row.access_token)).await?
    } else {
        row
    };
    let token = open(app, &row, ACCESS_COLUMN)?;
    match call(token.clone()).await {
        Err(Cafe24Error::Unauthorized) => {
            log::info!("Cafe24 refused the access token of {mall_id}; refreshing once");
            let fresh = refresh(app, mall_id, Some(&row.access_token)).await?;
            let token = open(app, &fresh, ACCESS_COLUMN)?;
            match call(token.clone()).await {
                Err(Cafe24Error::Unauthorized) => {
                    disconnect(app, mall_id, "Cafe24 refused a fresh access token").await
                }
                Err(Cafe24Error::Forbidden { message }) => {
                    forbidden(app, mall_id, on_403, &token, message).await
                }
                other => Ok(other?),
            }
        }
        Err(Cafe24Error::Forbidden { message }) => {
            forbidden(app, mall_id, on_403, &token, message).await
        }
        other => Ok(other?),
    }
}

/// A 403 with `token`: confirmed with one `GET /admin/shops` (unless the call was that),
/// then the mall disconnected, or the refusal returned with nothing changed.
async fn forbidden<T>(
    app: &Services,
    mall_id: &str,
    on_403: On403,
    token: &SecretString,
    message: String,
) -> Result<T, AdminError> {
    if on_403 == On403::Final {
        return disconnect(app, mall_id, "Cafe24 refused GET /admin/shops (403)").await;
    }
    match app.cafe24.shops(mall_id, token).await {
        Ok(_) => {
            log::warn!("mall {mall_id}: Cafe24 refused a call (403: {message}) but still lists the mall's shops; nothing disconnected");
            Err(AdminError::Refused { message })
        }
        Err(Cafe24Error::Forbidden { .. }) => {
            disconnect(
                app,
                mall_id,
                "Cafe24 answered 403, confirmed by GET /admin/shops",
            )
            .await
        }
        Err(e) => {
            log::warn!("mall {mall_id}: a 403 could not be confirmed ({e}); nothing disconnected");
            Err(e.into())
        }
    }
}

async fn current(app: &Services, mall_id: &str) -> Result<TokenRow, AdminError> {
    let mall = mall_id.to_owned();
    app.db
        .run(move |c| db::cafe24::find_token(c, &mall))
        .await?
        .ok_or(AdminError::NotConnected)
}

/// Refreshes the tokens of `mall_id` unless someone else already replaced `stale` (the
/// sealed access token the caller found wanting; `None` refreshes regardless). Returns the
/// row now stored.
pub async fn refresh(
    app: &Services,
    mall_id: &str,
    stale: Option<&str>,
) -> Result<TokenRow, AdminError> {
    let deadline = tokio::time::Instant::now() + LEASE.to_std().unwrap_or(Duration::from_secs(30));
    loop {
        let mall = mall_id.to_owned();
        let now = app.clock.now_naive();
        let (row, claimed) = app
            .db
            .run(move |c| {
                let Some(row) = db::cafe24::find_token(c, &mall)? else {
                    return Ok((None, false));
                };
                if row.refresh_lease_until.is_some_and(|t| t >= now) {
                    return Ok((Some(row), false));
                }
                let claimed = db::cafe24::claim_refresh(c, &mall, now, now + LEASE)?;
                Ok((Some(row), claimed))
            })
            .await?;
        let row = row.ok_or(AdminError::NotConnected)?;
        let replaced = stale.is_some_and(|s| s != row.access_token);
        if replaced && !matches!(row.refresh_lease_until, Some(t) if t >= now) {
            if claimed {
                release(app, mall_id).await;
            }
            return Ok(row);
        }
        if claimed {
            return refresh_holding_lease(app, &row).await;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AdminError::Cafe24(Cafe24Error::Timeout));
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

async fn release(app: &Services, mall_id: &str) {
    let mall = mall_id.to_owned();
    if let Err(e) = app
        .db
        .run(move |c| db::cafe24::release_refresh(c, &mall))
        .await
    {
        log::warn!("releasing the refresh lease of {mall_id}: {e}");
    }
}

async fn refresh_holding_lease(app: &Services, row: &TokenRow) -> Result<TokenRow, AdminError> {
    let mall_id = row.mall_id.as_str();
    let refresh_token = match open(app, row, REFRESH_COLUMN) {
        Ok(t) => t,
        Err(e) => {
            release(app, mall_id).await;
            return Err(e);
        }
    };
    match app.cafe24.refresh(mall_id, &refresh_token).await {
        Ok(grant) if grant.mall_id == mall_id => {
            let fresh = sealed_row(app, mall_id, &grant, app.clock.now_naive())?;
            let stored = fresh.clone();
            app.db
                .run(move |c| db::cafe24::save_token(c, &stored))
                .await?;
            log::info!("refreshed the Cafe24 tokens of {mall_id}");
            Ok(fresh)
        }
        Ok(_) => {
            release(app, mall_id).await;
            log::error!("Cafe24's refresh reply for {mall_id} names another mall; not stored");
            Err(AdminError::Cafe24(Cafe24Error::Unreadable {
                status: 200,
                detail: "token reply for another mall".into(),
            }))
        }
        Err(Cafe24Error::Grant { status, error }) if error == "invalid_grant" => {
            log::warn!("Cafe24 refused the refresh token of {mall_id} ({status} {error})");
            disconnect(app, mall_id, "the refresh token was refused").await
        }
        Err(e @ Cafe24Error::AppCredentials { .. }) => {
            // The app's credentials, not this mall's: the refresh token was not used (Cafe24
            // refused the client before the grant), so it is kept for the next attempt.
            release(app, mall_id).await;
            log::error!(
                "refreshing the Cafe24 tokens of {mall_id}: {e}; the mall keeps its tokens"
            );
            Err(e.into())
        }
        Err(e) => {
            release(app, mall_id).await;
            Err(e.into())
        }
    }
}

/// Cafe24 says the app is gone from `mall_id`: disables the mall, forgets what Cafe24
/// was told about its shops, deletes its tokens, ends its sessions. The orders stay.
async fn disconnect<T>(app: &Services, mall_id: &str, why: &str) -> Result<T, AdminError> {
    log::warn!("mall {mall_id}: {why}; disabling the mall and deleting its Cafe24 tokens");
    forget_mall(app, mall_id).await?;
    Err(AdminError::Disconnected)
}

/// Disables the mall and its shops, marks every registration `off`, deletes the tokens
/// and ends every session of the mall (its session generation grows by one), in one
/// transaction.
pub async fn forget_mall(app: &Services, mall_id: &str) -> Result<(), DbError> {
    let mall = mall_id.to_owned();
    let now = app.clock.now_naive();
    app.db
        .run(move |c| {
            db::transaction(c, |c| {
                db::merchants::set_enabled(c, &mall, None, false, now)?;
                for shop in db::merchants::shops(c, &mall)? {
                    use db::merchants::Registration::Off;
                    db::merchants::set_gateway(c, &mall, shop.shop_no, Off, false, now)?;
                    db::merchants::set_script(c, &mall, shop.shop_no, Off, None, now)?;
                }
                db::cafe24::delete_token(c, &mall)?;
                db::cafe24::end_sessions(c, &mall, now)?;
                Ok(())
            })
        })
        .await
}

/// One pass of the background refresh: refreshes the tokens of every mall whose refresh
/// token ends within [`REFRESH_TOKEN_AHEAD`] (at most `limit`). Returns how many were
/// refreshed; a mall that fails is logged and left for the next pass.
pub async fn refresh_due(app: &Services, limit: i64) -> Result<usize, DbError> {
    let before = app.clock.now_naive() + REFRESH_TOKEN_AHEAD;
    let malls = app
        .db
        .run(move |c| db::cafe24::refresh_due(c, before, limit))
        .await?;
    let mut refreshed = 0;
    for mall in malls {
        match refresh(app, &mall, None).await {
            Ok(_) => refreshed += 1,
            Err(e) => log::warn!("background refresh of the Cafe24 tokens of {mall}: {e}"),
        }
    }
    Ok(refreshed)
}

/// How often the background refresh looks for tokens near their end.
const REFRESH_INTERVAL: Duration = Duration::from_secs(3600);
/// Most malls refreshed in one pass.
const REFRESH_BATCH: i64 = 100;

/// The background task: every hour, [`refresh_due`]; stops when `shutdown` turns true.
pub async fn run(app: std::sync::Arc<Services>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        match refresh_due(&app, REFRESH_BATCH).await {
            Ok(0) => {}
            Ok(n) => log::info!("refreshed the Cafe24 tokens of {n} malls ahead of their end"),
            Err(e) => log::warn!("background Cafe24 token refresh: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
