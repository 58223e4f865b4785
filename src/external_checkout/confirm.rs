//! What a reservation must pass besides its HMAC (issue 18, item 9): a fresh
//! `response_time`, and its total confirmed against Cafe24's own order (`GET
//! /admin/orders/{order_id}`, scope `mall.read_order`), or within the shop's ceiling when
//! Cafe24 cannot confirm it.

use super::{RESERVATION_MAX_AGE_SECS, RESERVATION_SKEW_SECS};
use crate::error::ApiError;
use crate::money::Money;
use crate::services::Services;

/// Unix seconds of a reservation's `response_time`: Unix seconds (10 digits, as the
/// browser test's stand-in of Cafe24's SDK writes it) or milliseconds (13), Cafe24's
/// zoneless `YYYY-MM-DD HH:MM:SS` (Korean time, +09:00, as Cafe24's other zoneless times:
/// PROTOCOL.md §12), or RFC 3339 with an offset. `None` for anything else (`"yesterday"`,
/// `"1e30"`).
pub fn response_time_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().ok()?;
        return match text.len() {
            9 | 10 => Some(n),
            13 => Some(n / 1000),
            _ => None,
        };
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    let kst = chrono::FixedOffset::east_opt(9 * 3600)?;
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
        .and_then(|t| t.and_local_timezone(kst).single())
        .map(|t| t.timestamp())
}

/// A reservation's `response_time` is a time at most [`RESERVATION_MAX_AGE_SECS`] old
/// and not ahead of now (beyond [`RESERVATION_SKEW_SECS`]). Errors: `invalid_request`.
pub(super) fn check_fresh(app: &Services, response_time: &str) -> Result<(), ApiError> {
    let now = app.clock.unix_seconds();
    match response_time_seconds(response_time) {
        Some(t) if t <= now + RESERVATION_SKEW_SECS && now - t <= RESERVATION_MAX_AGE_SECS => {
            Ok(())
        }
        Some(_) => Err(ApiError::invalid(
            "response_time is not within the last 10 minutes; reserve the order again",
        )),
        None => Err(ApiError::invalid("response_time is not a time")),
    }
}

/// Confirms a reservation's `total` for `order_id` of the shop: against Cafe24's own
/// order when Cafe24 shows it (a different amount or currency is `invalid_amount`);
/// otherwise against the shop's ceiling for unconfirmed reservations, when one is set.
/// Errors: `invalid_amount`; `upstream_error` when Cafe24 fails; `merchant_disabled`
/// when Cafe24 says the app is gone; `unavailable`.
pub(super) async fn confirm_amount(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    order_id: &str,
    total: Money,
) -> Result<(), ApiError> {
    let why = match cafe24_due(app, mall_id, shop_no, order_id).await? {
        Ok(due) => {
            let currency = total.currency();
            let same_currency = due
                .currency
                .as_deref()
                .map_or(true, |c| c == currency.code());
            let amount = Money::parse_non_negative(&due.amount, currency).ok();
            if same_currency && amount == Some(total) {
                return Ok(());
            }
            log::warn!(
                "external checkout: mall {mall_id} order {order_id}: the reservation says {} {currency}, Cafe24's order {} {}; refused",
                total.to_decimal_string(),
                due.amount,
                due.currency.as_deref().unwrap_or("?")
            );
            return Err(ApiError::InvalidAmount(
                "the amount is not the amount of Cafe24's order".into(),
            ));
        }
        Err(why) => why,
    };
    let mall = mall_id.to_owned();
    let max = app
        .db
        .run(move |c| crate::db::limits::external_max(c, &mall, shop_no))
        .await
        .map_err(|e| ApiError::from_db("reading the shop's ceiling", e))?;
    match max {
        Some(max) if total.minor() > max => {
            log::warn!("external checkout: mall {mall_id} order {order_id}: not confirmed by Cafe24 ({why}) and above the shop's ceiling; refused");
            Err(ApiError::InvalidAmount(format!(
                "the amount is above what this shop accepts without Cafe24's confirmation ({} {})",
                Money::from_minor(max, total.currency()).to_decimal_string(),
                total.currency()
            )))
        }
        _ => {
            log::warn!("external checkout: mall {mall_id} order {order_id}: amount not confirmed by Cafe24 ({why}); accepted");
            Ok(())
        }
    }
}

/// Whether the mall's tokens hold the `mall.read_order` scope (`Err` says why not).
async fn may_read_orders(app: &Services, mall_id: &str) -> Result<Result<(), String>, ApiError> {
    use crate::cafe24::orders::READ_ORDER_SCOPE;
    let mall = mall_id.to_owned();
    let token = app
        .db
        .run(move |c| crate::db::cafe24::find_token(c, &mall))
        .await
        .map_err(|e| ApiError::from_db("reading the mall's Cafe24 tokens", e))?;
    let Some(token) = token else {
        return Ok(Err("the mall has not authorized the app".into()));
    };
    if !token
        .scopes
        .split(',')
        .any(|s| s.trim() == READ_ORDER_SCOPE)
    {
        return Ok(Err(format!("the app was not granted {READ_ORDER_SCOPE}")));
    }
    Ok(Ok(()))
}

/// What Cafe24's order says is due, or why Cafe24 could not say (`Ok(Err(reason))`).
async fn cafe24_due(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    order_id: &str,
) -> Result<Result<crate::cafe24::orders::DueAmount, String>, ApiError> {
    use crate::cafe24::admin::Cafe24Error;
    use crate::cafe24::orders;
    use crate::install::tokens::AdminError;
    if let Err(why) = may_read_orders(app, mall_id).await? {
        return Ok(Err(why));
    }
    /// What the order call found; a 403 is not the app's removal here (another scope
    /// may be missing), so it never disconnects the mall.
    enum Lookup {
        Found(serde_json::Value),
        Missing,
        Refused,
    }
    let found = crate::install::tokens::with_access(app, mall_id, |access| async move {
        match orders::find(&app.cafe24, mall_id, &access, order_id, shop_no).await {
            Ok(Some(reply)) => Ok(Lookup::Found(reply)),
            Ok(None) => Ok(Lookup::Missing),
            Err(Cafe24Error::Forbidden { .. }) => Ok(Lookup::Refused),
            Err(e) => Err(e),
        }
    })
    .await;
    match found {
        Ok(Lookup::Found(reply)) => {
            Ok(orders::due_amount(&reply)
                .ok_or_else(|| "Cafe24's order carries no amount".to_owned()))
        }
        Ok(Lookup::Missing) => Ok(Err("Cafe24 does not show the order".into())),
        Ok(Lookup::Refused) => Ok(Err("Cafe24 refused to show the order (403)".into())),
        Err(AdminError::NotConnected) => Ok(Err("the mall has not authorized the app".into())),
        Err(AdminError::Refused { .. }) => Ok(Err("Cafe24 refused to show the order (403)".into())),
        Err(AdminError::Sealed) => Ok(Err("the mall's Cafe24 tokens do not open".into())),
        Err(AdminError::Disconnected) => Err(ApiError::MerchantDisabled),
        Err(AdminError::Db(e)) => Err(ApiError::from_db("reading the mall's Cafe24 tokens", e)),
        Err(AdminError::Cafe24(e)) => {
            log::warn!("external checkout: mall {mall_id} order {order_id}: Cafe24 could not be asked: {e}");
            Err(ApiError::Upstream(
                "Cafe24 could not confirm the order; try again".into(),
            ))
        }
    }
}
