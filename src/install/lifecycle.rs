//! Cafe24's app-lifecycle events (PROTOCOL.md §12, "App lifecycle"): `POST
//! /cafe24/webhooks` announces that the app was deleted from a mall or expired, as
//! `{"event_no": 90077 | 90078, "resource": {"mall_id", …}}` or in the older shape
//! `{"resource_type": "APP", "event_type": "MALL.APP.DELETED" | "MALL.APP.EXPIRED",
//! "resource": {"mall_id", …}}`.
//!
//! Such an event carries no signature anyone has found, so it is a hint: one Admin API
//! call for that mall confirms it (Cafe24 refusing the mall's tokens, after a refresh
//! attempt, with 401 or 403), and only then is the mall disabled and its tokens deleted.
//! A call that succeeds changes nothing.

use serde_json::Value;

use super::tokens::{self, AdminError};
use crate::services::Services;

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
}

impl Outcome {
    /// `disconnected`, `not_confirmed` or `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Disconnected => "disconnected",
            Outcome::NotConfirmed => "not_confirmed",
            Outcome::Ignored => "ignored",
        }
    }
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

/// Handles one event: for an app-deleted or app-expired event of a mall with tokens,
/// confirms it with one Admin API call (`GET /admin/shops`) and disconnects the mall
/// only when Cafe24 refuses it.
pub async fn receive(app: &Services, body: &[u8]) -> Result<Outcome, LifecycleError> {
    let Some(mall_id) = read(body)? else {
        return Ok(Outcome::Ignored);
    };
    let confirmed = tokens::with_access(app, &mall_id, |access| {
        let mall_id = mall_id.clone();
        async move { app.cafe24.shops(&mall_id, &access).await }
    })
    .await;
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
