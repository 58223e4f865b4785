//! The operator API (issue 11): what `orders show|list`, `notifications list|retry` and
//! `merchant list` tell, as JSON under `/operator/api/v1/`, behind a bearer token.
//!
//! The token ([`crate::keys::operator`]) is an HS256 JWT keyed from `APP_SECRET` (its own HKDF
//! derivation, distinct from the order keys'), audience `cafe24-komoju/operator`, expiry
//! required, the algorithm pinned; `cafe24-komoju operator token --ttl 1h` mints one. A request without
//! a valid token learns nothing but that it is refused. Secrets are masked in every
//! answer; buyer data (e-mail, request fields) is never included.

use chrono::NaiveDateTime;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::cafe24::ids::{MallId, OrderId};
use crate::db::{self, notifications::NotificationState, orders::OrderRow};
use crate::error::ApiError;
use crate::orders::state::OrderState;
use crate::services::Services;

const TIME: &str = "%Y-%m-%dT%H:%M:%SZ";

/// A `since` filter (`orders list --since`, `GET orders?since`): `YYYY-MM-DD` (midnight
/// UTC) or `YYYY-MM-DDTHH:MM:SS` (UTC, `Z` optional). Errors: a message naming both forms.
pub fn parse_since(s: &str) -> Result<NaiveDateTime, String> {
    let t = s.trim_end_matches('Z');
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .map_err(|_| format!("{s:?} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)"))
}

/// The filters of `GET orders`.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub mall_id: Option<String>,
    pub state: Option<OrderState>,
    pub since: Option<chrono::NaiveDateTime>,
    pub limit: i64,
}

fn order_json(o: &OrderRow) -> Value {
    json!({
        "mall_id": o.mall_id,
        "order_id": o.order_id,
        "shop_no": o.shop_no,
        "flow": o.flow.as_str(),
        "state": o.state.as_str(),
        "amount": o.amount,
        "amount_text": o.amount_text,
        "currency": o.currency,
        "attempt": o.attempt,
        "komoju_session_id": o.komoju_session_id,
        "komoju_payment_id": o.komoju_payment_id,
        "payment_type": o.payment_type,
        "captured_amount": o.captured_amount,
        "charged_amount": o.charged_amount,
        "charged_currency": o.charged_currency,
        "refunded_amount": o.refunded_amount,
        "created_at": o.created_at.format(TIME).to_string(),
        "updated_at": o.updated_at.format(TIME).to_string(),
        "reconciled_at": o.reconciled_at.map(|t| t.format(TIME).to_string()),
    })
}

fn notification_json(n: &db::notifications::NotificationRow) -> Value {
    json!({
        "id": n.id,
        "kind": n.kind.as_str(),
        "state": n.state.as_str(),
        "attempts": n.attempts,
        "next_attempt_at": n.next_attempt_at.format(TIME).to_string(),
        "last_status": n.last_status,
        "last_error": n.last_error,
        "delivered_at": n.delivered_at.map(|t| t.format(TIME).to_string()),
    })
}

fn db_error(e: db::DbError) -> ApiError {
    ApiError::from_db("operator API", e)
}

/// `GET orders`: `{"orders":[…]}`, newest first.
pub async fn orders(app: &Services, filter: OrderFilter) -> Result<Value, ApiError> {
    let rows = app
        .db
        .run(move |c| {
            db::orders::list(
                c,
                filter.mall_id.as_deref(),
                filter.state,
                filter.since,
                filter.limit.clamp(1, 1000),
            )
        })
        .await
        .map_err(db_error)?;
    Ok(json!({ "orders": rows.iter().map(order_json).collect::<Vec<_>>() }))
}

/// `GET orders/{mall_id}/{order_id}`: the order with its `timeline`, `notifications`,
/// `refunds` (with a konbini, bank-transfer or Pay-easy refund's `bank_account_url`, the
/// page where the buyer gives a bank account) and `duplicate_payments`. Errors:
/// `order_not_found`.
pub async fn order(app: &Services, mall_id: &str, order_id: &str) -> Result<Value, ApiError> {
    let mall = MallId::parse(mall_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let id = OrderId::parse(order_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let found = app
        .db
        .run(move |c| db::order_record::find(c, mall.as_str(), id.as_str()))
        .await
        .map_err(db_error)?;
    let db::order_record::OrderRecord {
        order: o,
        events,
        notifications,
        refunds,
        duplicates,
        capture,
    } = found.ok_or(ApiError::OrderNotFound)?;
    let link = |column: &str, sealed: &Option<String>| open_link(app, &o.mall_id, column, sealed);
    let mut body = order_json(&o);
    body["timeline"] = events.iter().map(event_json).collect();
    // A held card authorization (manual capture): when it is captured automatically,
    // KOMOJU's last refusal, when the order left `authorized`.
    body["capture"] = capture.map_or(Value::Null, |c| {
        json!({
            "due_at": c.due_at.format(TIME).to_string(),
            "error": c.error,
            "finished_at": c.finished_at.map(|t| t.format(TIME).to_string()),
        })
    });
    body["notifications"] = notifications.iter().map(notification_json).collect();
    body["refunds"] = refunds
        .iter()
        .map(|r| refund_json(r, link(db::refunds::BANK_ACCOUNT_URL, &r.bank_account_url)))
        .collect();
    body["duplicate_payments"] = duplicates
        .iter()
        .map(|d| {
            duplicate_json(
                d,
                link(db::duplicates::BANK_ACCOUNT_URL, &d.bank_account_url),
            )
        })
        .collect();
    Ok(body)
}

/// A sealed capability link (a bank-account page), opened for the operator: shown here
/// and nowhere else, never logged.
fn open_link(
    app: &Services,
    mall_id: &str,
    column: &str,
    sealed: &Option<String>,
) -> Option<String> {
    sealed
        .as_deref()
        .map(|sealed| match app.secrets.open(mall_id, column, sealed) {
            Ok(url) => url.expose_secret().to_owned(),
            Err(_) => "<cannot open: APP_SECRET changed?>".to_owned(),
        })
}

/// One row of an order's `timeline` (its audit trail).
fn event_json(e: &db::orders::OrderEventRow) -> Value {
    json!({
        "at": e.created_at.format(TIME).to_string(),
        "source": e.source,
        "event": e.event,
        "from": e.from_state,
        "to": e.to_state,
        "applied": e.applied,
        "detail": e.detail,
    })
}

/// One cancellation or refund of an order, with its opened `bank_account_url`.
fn refund_json(r: &db::refunds::RefundRow, bank_account_url: Option<String>) -> Value {
    json!({
        "id": r.id,
        "mode": r.mode,
        "operation": r.operation.as_str(),
        "cancel_amount": r.cancel_amount,
        "cancel_amount_text": r.cancel_amount_text,
        "tid": r.tid,
        "state": r.state.as_str(),
        "komoju_refund_id": r.komoju_refund_id,
        "bank_account_url": bank_account_url,
        "created_at": r.created_at.format(TIME).to_string(),
    })
}

/// One duplicate payment of an order, with its opened `bank_account_url`.
fn duplicate_json(d: &db::duplicates::DuplicateRow, bank_account_url: Option<String>) -> Value {
    json!({
        "payment_id": d.payment_id,
        "session_id": d.session_id,
        "payment_type": d.payment_type,
        "amount": d.amount,
        "currency": d.currency,
        "state": d.state.as_str(),
        "komoju_refund_id": d.komoju_refund_id,
        "bank_account_url": bank_account_url,
        "last_error": d.last_error,
        "created_at": d.created_at.format(TIME).to_string(),
    })
}

/// `GET notifications`: `{"notifications":[…]}`, newest first.
pub async fn notifications(
    app: &Services,
    state: Option<NotificationState>,
    limit: i64,
) -> Result<Value, ApiError> {
    let rows = app
        .db
        .run(move |c| db::notifications::list(c, state, limit.clamp(1, 1000)))
        .await
        .map_err(db_error)?;
    Ok(json!({ "notifications": rows.iter().map(notification_json).collect::<Vec<_>>() }))
}

/// `POST notifications/{id}/retry`: the notification is due now with a fresh schedule.
/// Errors: no such notification, or it was delivered already (404 `invalid_request`).
pub async fn retry(app: &Services, id: i64) -> Result<Value, ApiError> {
    let now = app.clock.now_naive();
    let done = app
        .db
        .run(move |c| db::notifications::retry(c, id, now))
        .await
        .map_err(db_error)?;
    if done {
        app.outbox_wake.notify_one();
        Ok(json!({ "id": id, "retried": true }))
    } else {
        Err(ApiError::InvalidRequest {
            message: format!("notification {id} does not exist or was already delivered"),
            status: actix_web::http::StatusCode::NOT_FOUND,
        })
    }
}

/// `GET merchants`: every mall with its shops, secrets masked.
pub async fn merchants(app: &Services) -> Result<Value, ApiError> {
    let all = app.db.run(db::merchants::list).await.map_err(db_error)?;
    let shown =
        |mall: &str, column: &str, sealed: &str| match app.secrets.open(mall, column, sealed) {
            Ok(s) => crate::secrets::mask(s.expose_secret()),
            Err(_) => "<cannot open: APP_SECRET changed?>".to_owned(),
        };
    let merchants: Vec<Value> = all
        .iter()
        .map(|(m, shops)| {
            json!({
                "mall_id": m.mall_id,
                "enabled": m.enabled,
                "public_ref": m.public_ref,
                "komoju_secret_key": shown(&m.mall_id, crate::merchant::SECRET_KEY_COLUMN, &m.komoju_secret_key),
                "komoju_webhook_secret": shown(&m.mall_id, crate::merchant::WEBHOOK_SECRET_COLUMN, &m.komoju_webhook_secret),
                "payment_types": m.payment_types.to_vec(),
                "cancel_mode": m.cancel_mode,
                "shops": shops.iter().map(|s| json!({
                    "shop_no": s.shop_no,
                    "enabled": s.enabled,
                    "shop_name": s.shop_name,
                    "currency": s.currency,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({ "merchants": merchants }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_a_utc_time() {
        assert_eq!(
            parse_since("2026-12-01").map(|t| t.to_string()),
            Ok("2026-12-01 00:00:00".to_owned())
        );
        assert_eq!(
            parse_since("2026-12-01T10:30:00Z").map(|t| t.to_string()),
            Ok("2026-12-01 10:30:00".to_owned())
        );
        assert!(parse_since("yesterday").is_err());
    }
}
