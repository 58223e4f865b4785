//! Cafe24's app-lifecycle events (PROTOCOL.md §12, "App lifecycle"): `POST
//! /cafe24/webhooks` announces that the app was deleted from a mall or expired, as
//! `{"event_no": 90077 | 90078, "resource": {"mall_id", …}}` or in the older shape
//! `{"resource_type": "APP", "event_type": "MALL.APP.DELETED" | "MALL.APP.EXPIRED",
//! "resource": {"mall_id", …}}`.
//!
//! Cafe24 does not sign these events; it sends the app's fixed credential in `x-api-key`,
//! which the route checks before anything else (`CAFE24_WEBHOOK_API_KEY`). Even with the
//! key an event is a hint: one Admin API call for that mall confirms it (Cafe24 refusing
//! the mall's tokens, after a refresh attempt, with 401 or 403), and only then is the
//! mall disabled, its tokens deleted and its sessions ended. A call that succeeds changes
//! nothing. At most one confirmation call is made per mall per minute however many
//! events arrive (a stored claim, [`db::cafe24::claim_lifecycle_check`], so it holds
//! across instances); an event that finds the minute taken waits for the next one,
//! which [`run`] makes.

use std::time::Duration;

use serde_json::Value;

use super::tokens::{self, AdminError};
use crate::db;
use crate::services::Services;

/// At most one confirmation call per mall within this.
pub const CHECK_INTERVAL: chrono::Duration = chrono::Duration::seconds(60);
/// How often [`run`] looks for events left waiting.
const SWEEP_INTERVAL: Duration = Duration::from_secs(15);
/// Most malls confirmed in one pass of [`run`].
const SWEEP_BATCH: i64 = 100;

/// `event_no` of "app deleted" and "app expired".
pub const APP_DELETED: i64 = 90077;
pub const APP_EXPIRED: i64 = 90078;

/// What an event led to (the reply's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Confirmed by Cafe24: the mall is disabled and its tokens deleted.
    Disconnected,
    /// Cafe24 still answers the mall's calls: nothing changed.
    NotConfirmed,
    /// Not an app-deleted or app-expired event, or a mall without tokens: nothing to do.
    Ignored,
    /// The mall was confirmed less than a minute ago: the event waits for the next
    /// confirmation ([`run`]).
    Deferred,
}

impl Outcome {
    /// `disconnected`, `not_confirmed` or `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Disconnected => "disconnected",
            Outcome::NotConfirmed => "not_confirmed",
            Outcome::Ignored => "ignored",
            Outcome::Deferred => "deferred",
        }
    }
}

/// Whether an event's `x-api-key` header is the app's webhook credential
/// (`CAFE24_WEBHOOK_API_KEY`): compared in constant time (SHA-256 of both, so neither the
/// length nor a prefix shows in the time taken). With no key configured (development
/// only: production refuses to start without one) every event is accepted.
pub fn api_key_accepted(app: &Services, given: Option<&[u8]>) -> bool {
    use secrecy::ExposeSecret;
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let Some(expected) = &app.cafe24_webhook_api_key else {
        return true;
    };
    let Some(given) = given else {
        log::warn!("Cafe24 lifecycle event without x-api-key: refused");
        return false;
    };
    let expected = Sha256::digest(expected.expose_secret().as_bytes());
    let accepted: bool = Sha256::digest(given).ct_eq(&expected).into();
    if !accepted {
        log::warn!("Cafe24 lifecycle event with a wrong x-api-key: refused");
    }
    accepted
}

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Not JSON, or no `resource.mall_id` (400).
    #[error("{0}")]
    Invalid(&'static str),
    /// Cafe24 or the database failed while confirming; Cafe24 may send it again (503).
    #[error("the event could not be confirmed now")]
    Unavailable,
}

/// The mall an app-deleted or app-expired event is about, or `None` for another event.
/// Errors: not a JSON object, or no readable `resource.mall_id`.
pub fn read(body: &[u8]) -> Result<Option<String>, LifecycleError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| LifecycleError::Invalid("the body is not JSON"))?;
    if !v.is_object() {
        return Err(LifecycleError::Invalid("the body is not a JSON object"));
    }
    let by_number = matches!(
        v.get("event_no")
            .and_then(|n| n.as_i64().or_else(|| n.as_str()?.parse().ok())),
        Some(APP_DELETED) | Some(APP_EXPIRED)
    );
    let by_name = matches!(
        v.get("event_type").and_then(Value::as_str),
        Some("MALL.APP.DELETED") | Some("MALL.APP.EXPIRED")
    );
    if !by_number && !by_name {
        return Ok(None);
    }
    let mall_id = v
        .pointer("/resource/mall_id")
        .or_else(|| v.get("mall_id"))
        .and_then(Value::as_str)
        .filter(|m| crate::cafe24::partner_id::is_valid_mall_id(m))
        .ok_or(LifecycleError::Invalid(
            "the event has no valid resource.mall_id",
        ))?;
    Ok(Some(mall_id.to_owned()))
}

/// Handles one event (its `x-api-key` already checked): for an app-deleted or
/// app-expired event of a mall with tokens, confirms it with one Admin API call
/// (`GET /admin/shops`) unless the mall had one in the last minute (then
/// [`Outcome::Deferred`]), and disconnects the mall only when Cafe24 refuses it.
pub async fn receive(app: &Services, body: &[u8]) -> Result<Outcome, LifecycleError> {
    let Some(mall_id) = read(body)? else {
        return Ok(Outcome::Ignored);
    };
    if !tokens::is_connected(app, &mall_id)
        .await
        .map_err(unavailable)?
    {
        return Ok(Outcome::Ignored);
    }
    let now = app.clock.now_naive();
    let mall = mall_id.clone();
    let claimed = app
        .db
        .run(move |c| {
            db::transaction(c, |c| {
                db::cafe24::claim_lifecycle_check(c, &mall, now, now - CHECK_INTERVAL)
            })
        })
        .await
        .map_err(unavailable)?;
    if !claimed {
        log::info!(
            "Cafe24 lifecycle event for {mall_id}: confirmed less than a minute ago; deferred"
        );
        return Ok(Outcome::Deferred);
    }
    confirm(app, &mall_id).await
}

fn unavailable(e: db::DbError) -> LifecycleError {
    log::warn!("Cafe24 lifecycle event: {e}");
    LifecycleError::Unavailable
}

/// One confirmation call for `mall_id` (its claim taken).
async fn confirm(app: &Services, mall_id: &str) -> Result<Outcome, LifecycleError> {
    let confirmed = tokens::shops(app, mall_id).await;
    match confirmed {
        Ok(_) => {
            log::warn!("Cafe24 announced the app's removal from {mall_id}, but the mall's calls still work; nothing changed");
            Ok(Outcome::NotConfirmed)
        }
        Err(AdminError::Disconnected) => {
            log::info!("Cafe24 confirmed the app's removal from {mall_id}: mall disabled");
            Ok(Outcome::Disconnected)
        }
        Err(AdminError::NotConnected) => Ok(Outcome::Ignored),
        Err(e) => {
            log::warn!("confirming the app's removal from {mall_id}: {e}");
            Err(LifecycleError::Unavailable)
        }
    }
}

/// One pass: confirms every mall whose event waits and whose last confirmation is a
/// minute old (each claimed first, so an instance that got there before wins). Returns
/// how many were confirmed.
pub async fn sweep(app: &Services) -> Result<usize, db::DbError> {
    let now = app.clock.now_naive();
    let not_after = now - CHECK_INTERVAL;
    let malls = app
        .db
        .run(move |c| db::cafe24::lifecycle_due(c, not_after, SWEEP_BATCH))
        .await?;
    let mut confirmed = 0;
    for mall in malls {
        let claim = mall.clone();
        let taken = app
            .db
            .run(move |c| db::cafe24::take_lifecycle_check(c, &claim, now, not_after, true))
            .await?;
        if !taken {
            continue;
        }
        match confirm(app, &mall).await {
            Ok(outcome) => {
                log::info!(
                    "Cafe24 lifecycle event for {mall} confirmed later: {}",
                    outcome.as_str()
                );
                confirmed += 1;
            }
            Err(e) => log::warn!("confirming a deferred Cafe24 lifecycle event for {mall}: {e}"),
        }
    }
    Ok(confirmed)
}

/// The background task: every few seconds, [`sweep`]; stops when `shutdown` turns true.
pub async fn run(app: std::sync::Arc<Services>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = sweep(&app).await {
            log::warn!("deferred Cafe24 lifecycle events: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
