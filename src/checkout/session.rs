//! The attempt's KOMOJU session: which payment types it offers, the exact body of its
//! `POST /sessions` (stored before the call, so every repeat sends the same bytes), the
//! call itself with its reply checked, and the webhook registration start-up may ask
//! for before it.

use std::collections::BTreeMap;

use super::ValidCheckout;
use crate::db::{orders, orders::OrderRow};
use crate::error::ApiError;
use crate::keys::order::OrderRef;
use crate::komoju::{CreateSession, SessionPaymentData};
use crate::merchant::Merchant;
use crate::orders::Flow;
use crate::services::Services;

/// `{order_id}-{attempt}-{6 random hex}`: unique per attempt, as KOMOJU requires.
pub(super) fn external_order_num(order_id: &str, attempt: i32) -> String {
    let suffix: u32 = rand::random::<u32>() & 0x00ff_ffff;
    format!("{order_id}-{attempt}-{suffix:06x}")
}

/// The payment types a session of this request offers: the merchant's (without the
/// deferred ones in synchronous checkout, §6.1) that KOMOJU offers in the order's
/// currency (`GET /payment_methods` lists one entry per type and currency, §7; cached
/// by the KOMOJU client). Errors: none left (`unsupported_currency`, or
/// `merchant_disabled` when the merchant has none for this flow at all), KOMOJU's list
/// unreadable (`upstream_error`).
pub(super) async fn offered_types(
    app: &Services,
    flow: Flow,
    v: &ValidCheckout,
) -> Result<Vec<String>, ApiError> {
    let wanted = v.merchant.payment_types_for(flow == Flow::Sync);
    if wanted.is_empty() {
        log::warn!(
            "merchant {} offers no payment type usable in {} checkout",
            v.merchant.mall_id,
            flow.as_str()
        );
        return Err(ApiError::MerchantDisabled);
    }
    let currency = v.amount.currency().code();
    let listed = app
        .komoju
        .payment_methods_cached(&v.merchant.komoju_secret_key)
        .await
        .map_err(|e| crate::upstream::komoju(e, "listing KOMOJU payment methods", &v.order_id))?;
    let offered: Vec<String> = wanted
        .into_iter()
        .filter(|t| {
            listed
                .iter()
                .any(|m| &m.type_slug == t && m.currency.as_deref().map_or(true, |c| c == currency))
        })
        .collect();
    if offered.is_empty() {
        log::warn!(
            "merchant {}: none of its payment types is offered by KOMOJU in {currency}",
            v.merchant.mall_id
        );
        return Err(ApiError::UnsupportedCurrency);
    }
    Ok(offered)
}

/// The exact JSON body of the attempt's `POST /sessions`.
pub(super) fn session_request(
    app: &Services,
    flow: Flow,
    v: &ValidCheckout,
    payment_types: &[String],
    order_id: &str,
    attempt: i32,
    external_order_num: &str,
) -> Result<String, ApiError> {
    let key = crate::checkout::key::issue(
        app,
        &OrderRef {
            mall_id: v.partner_id.mall_id().to_string(),
            order_id: order_id.to_owned(),
            flow,
            attempt,
        },
    )?;
    let return_url = app.public_url(flow.callback_path(), &[("key", &key)]);
    let locale = v
        .merchant
        .locale_for(v.partner_id.shop_no(), v.lang.as_deref())
        .as_str()
        .to_owned();
    let mut metadata = BTreeMap::new();
    metadata.insert("mall_id".to_owned(), v.partner_id.mall_id().to_string());
    metadata.insert("order_id".to_owned(), order_id.to_owned());
    metadata.insert("flow".to_owned(), flow.as_str().to_owned());
    let body = CreateSession {
        mode: "payment".to_owned(),
        amount: v.amount.minor(),
        currency: v.amount.currency().code().to_owned(),
        return_url,
        default_locale: locale,
        email: v.buyer_email.clone(),
        payment_types: payment_types.to_vec(),
        payment_data: SessionPaymentData {
            external_order_num: external_order_num.to_owned(),
            capture: v.merchant.capture.as_str().to_owned(),
        },
        metadata,
    };
    serde_json::to_string(&body).map_err(|_| ApiError::Internal)
}

/// Calls KOMOJU with the attempt's stored key and body, checks the reply, stores the
/// session. A failure leaves the order `pending` without a session: the next identical
/// request repeats the same call, and KOMOJU's idempotency makes it one session.
pub(super) async fn create_session(
    app: &Services,
    merchant: &Merchant,
    order: &OrderRow,
) -> Result<String, ApiError> {
    register_webhook(app, merchant, order).await?;
    let session = app
        .komoju
        .create_session(
            &merchant.komoju_secret_key,
            &order.komoju_idempotency_key,
            &order.komoju_session_request,
        )
        .await
        .map_err(|e| crate::upstream::komoju(e, "creating KOMOJU session", &order.order_id))?;
    if session.amount.is_some_and(|a| a != order.amount)
        || session
            .currency
            .as_deref()
            .is_some_and(|c| c != order.currency)
    {
        log::error!(
            "KOMOJU session {} for order {} of {} has amount {:?} {:?}, expected {} {}",
            session.id,
            order.order_id,
            order.mall_id,
            session.amount,
            session.currency,
            order.amount,
            order.currency
        );
        return Err(ApiError::Upstream(
            "KOMOJU answered a session with another amount".into(),
        ));
    }
    let url = session
        .session_url
        .clone()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| {
            ApiError::Upstream("KOMOJU answered a session without session_url".into())
        })?;
    store_session(app, order, &session.id, &url).await?;
    Ok(url)
}

/// Where the service registers webhook endpoints itself (start-up gave it a
/// [`WebhookRegistrar`](crate::services::WebhookRegistrar)), registers the merchant's
/// before every session: registering again replaces the endpoint. Errors: KOMOJU
/// (`upstream_error`).
async fn register_webhook(
    app: &Services,
    merchant: &Merchant,
    order: &OrderRow,
) -> Result<(), ApiError> {
    let Some(registrar) = &app.webhook_registrar else {
        return Ok(());
    };
    let url = app.komoju_webhook_url(&merchant.mall_id);
    registrar
        .register(
            &merchant.komoju_secret_key,
            &url,
            &merchant.komoju_webhook_secret,
        )
        .await
        .map_err(|e| crate::upstream::komoju(e, "registering the KOMOJU webhook", &order.order_id))
}

/// Stores the attempt's session `session_id` and its `url`. Errors: the attempt changed
/// meanwhile (`order_conflict`), the database.
async fn store_session(
    app: &Services,
    order: &OrderRow,
    session_id: &str,
    url: &str,
) -> Result<(), ApiError> {
    let (id, attempt, sid, surl, now) = (
        order.id.clone(),
        order.attempt,
        session_id.to_owned(),
        url.to_owned(),
        app.clock.now_naive(),
    );
    let stored = app
        .db
        .run(move |c| orders::set_session(c, &id, attempt, &sid, &surl, now))
        .await
        .map_err(|e| ApiError::from_db("storing session", e))?;
    if stored == 0 {
        log::error!(
            "order {} of {}: session {} could not be stored (attempt changed)",
            order.order_id,
            order.mall_id,
            session_id
        );
        return Err(ApiError::OrderConflict(
            "order changed while its session was created; retry".into(),
        ));
    }
    log::info!(
        "order {} of {}: KOMOJU session {}",
        order.order_id,
        order.mall_id,
        session_id
    );
    Ok(())
}
