//! The buyer's return from KOMOJU, shared by every callback (§6.1, §6.2, §6.3): the key
//! is checked, the session must be the order's current one, and what KOMOJU says about
//! it is applied through the one state machine.

use super::key as keys;
use crate::cafe24::Fields;
use crate::db::orders::OrderRow;
use crate::error::ApiError;
use crate::merchant::Merchant;
use crate::order_updates as updates;
use crate::orders::Flow;
use crate::services::Services;

/// What a KOMOJU return to one of our callbacks found.
#[derive(Debug)]
pub enum Returned {
    /// The session was read from KOMOJU and applied; the order as it is now.
    Applied(OrderRow),
    /// The `session_id` (or the key's attempt) is not the order's current session:
    /// nothing was read or changed.
    NotCurrent(OrderRow),
    /// KOMOJU could not be read; nothing changed, and the same URL works again later.
    KomojuUnreachable(String),
}

/// The shared part of every callback KOMOJU returns the buyer to (§6.1, §6.2, §6.3):
/// verify the `key` (HS256, audience, expiry) and that it names an order of `flow`;
/// trust nothing else from the query but `session_id`, which must be the order's current
/// session; read that session from KOMOJU and apply it.
pub async fn buyer_returned(
    app: &Services,
    flow: Flow,
    fields: &Fields,
) -> Result<Returned, ApiError> {
    let key = keys::verify(app, fields)?;
    if key.flow != flow {
        return Err(ApiError::invalid("key belongs to another checkout flow"));
    }
    let order = keys::order_of(app, &key).await?;
    let session_id = fields.optional("session_id");
    if key.attempt != order.attempt
        || session_id.is_none()
        || session_id != order.komoju_session_id.as_deref()
    {
        if let (Some(sid), true) = (session_id, key.attempt < order.attempt) {
            match earlier_session_money(app, &order, sid).await {
                Ok(Some(paid)) => return Ok(Returned::Applied(paid)),
                Ok(None) => {}
                Err(ApiError::Upstream(msg)) => return Ok(Returned::KomojuUnreachable(msg)),
                Err(e) => return Err(e),
            }
        }
        log::warn!(
            "{} callback for order {} of {}: session {:?} (attempt {}) is not the order's current one; nothing changed",
            flow.as_str(), order.order_id, order.mall_id, session_id, key.attempt
        );
        return Ok(Returned::NotCurrent(order));
    }
    let merchant = app.merchants.load(&order.mall_id, None).await?;
    match refresh_from_session(app, &merchant, order, "callback").await {
        Ok(order) => {
            app.outbox_wake.notify_one();
            Ok(Returned::Applied(order))
        }
        Err(ApiError::Upstream(msg)) => Ok(Returned::KomojuUnreachable(msg)),
        Err(e) => Err(e),
    }
}

/// The buyer came back from a session of an earlier attempt of the order: money on it is
/// never ignored (§5). Reads that session from KOMOJU; when it is the order's (its
/// metadata, which this service set, names the order) and holds money, applies it (the
/// state machine makes it `paid`, or a duplicate payment) and returns the order after.
/// `None`: not the order's session, or no money on it (nothing changed).
async fn earlier_session_money(
    app: &Services,
    order: &OrderRow,
    session_id: &str,
) -> Result<Option<OrderRow>, ApiError> {
    let merchant = app.merchants.load(&order.mall_id, None).await?;
    let session = app
        .komoju
        .get_session(&merchant.komoju_secret_key, session_id)
        .await
        .map_err(|e| {
            crate::upstream::komoju(e, "reading an earlier KOMOJU session", &order.order_id)
        })?;
    let ours = session.id == session_id
        && session.metadata_value("mall_id") == Some(order.mall_id.as_str())
        && session.metadata_value("order_id") == Some(order.order_id.as_str());
    let money = session
        .payment
        .as_ref()
        .is_some_and(|p| matches!(p.status.as_str(), "captured" | "refunded"));
    let Some(fact) = session.to_fact().filter(|_| ours && money) else {
        return Ok(None);
    };
    let applied = updates::apply_fact(app, &merchant, &order.id, fact, "callback")
        .await
        .map_err(|e| ApiError::from_db("applying an earlier KOMOJU session", e))?;
    app.outbox_wake.notify_one();
    Ok(Some(applied.order))
}

/// Reads the order's session from KOMOJU and applies what it says. `session_id` must be
/// the order's current session (checked by the caller). Returns the order afterwards.
pub async fn refresh_from_session(
    app: &Services,
    merchant: &Merchant,
    order: OrderRow,
    source: &'static str,
) -> Result<OrderRow, ApiError> {
    let Some(session_id) = order.komoju_session_id.clone() else {
        return Ok(order);
    };
    let session = app
        .komoju
        .get_session(&merchant.komoju_secret_key, &session_id)
        .await
        .map_err(|e| crate::upstream::komoju(e, "reading KOMOJU session", &order.order_id))?;
    if session.id != session_id {
        log::error!(
            "KOMOJU answered session {} when asked for {session_id}",
            session.id
        );
        return Err(ApiError::Upstream("KOMOJU answered another session".into()));
    }
    let Some(fact) = session.to_fact() else {
        return Ok(order);
    };
    let applied = updates::apply_fact(app, merchant, &order.id, fact, source)
        .await
        .map_err(|e| ApiError::from_db("applying KOMOJU session", e))?;
    Ok(applied.order)
}
