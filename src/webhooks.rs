//! KOMOJU webhooks in (PROTOCOL.md §8), as one ordered pipeline; nothing is parsed or
//! stored before the signature holds: the merchant's webhook secret → signature over
//! the raw bytes, in constant time, and the envelope ([`crate::komoju::webhook`]) → find
//! the order (by `data.session`, then `data.metadata`, then `data.external_order_num`) →
//! dedup by event id → apply, enqueue and record the event id in one transaction
//! ([`crate::orders::updates`]). The caller answers 2xx only after [`receive`] returned:
//! after the commit.
//!
//! A delivery whose signature holds is never refused: what cannot be applied (ping, not
//! a payment event, unreadable, no known order) is recorded and acknowledged, its reason
//! logged; KOMOJU would otherwise redeliver it for days. A database failure is an error,
//! so that KOMOJU sends it again.

use secrecy::ExposeSecret;

use crate::db::{self, webhook_events::WebhookEventRow};
use crate::error::ApiError;
use crate::komoju::webhook::{self as komoju_webhook, Content, OrderRefs};
use crate::services::Services;

/// One delivery as it arrived: the `mall_id` of the URL, the raw body and the
/// `X-Komoju-Signature` and `X-Komoju-ID` headers.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub mall_id: &'a str,
    pub body: &'a [u8],
    pub signature: Option<&'a str>,
    pub komoju_id: Option<&'a str>,
}

/// What a delivery led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// The signature is missing or wrong: answer 401, nothing was read or stored.
    BadSignature,
    /// Acknowledged (2xx) with this outcome: `applied`, `ignored`, `duplicate`, `ping`,
    /// `not_handled`, `unreadable` or `unknown_order`.
    Acknowledged(&'static str),
}

/// Runs the §8 pipeline for one delivery and counts its outcome (`webhooks_total`).
/// Errors: unknown mall (`unknown_merchant`), database failures (`unavailable` /
/// internal), so that KOMOJU redelivers.
pub async fn receive(app: &Services, delivery: Delivery<'_>) -> Result<Received, ApiError> {
    let received = pipeline(app, delivery).await;
    if let Ok(r) = &received {
        let outcome = match r {
            Received::BadSignature => "bad_signature",
            Received::Acknowledged(outcome) => outcome,
        };
        app.metrics.webhooks.with_label_values(&[outcome]).inc();
    }
    received
}

async fn pipeline(app: &Services, delivery: Delivery<'_>) -> Result<Received, ApiError> {
    let mall_id = delivery.mall_id;
    let merchant = crate::merchant::load(app, mall_id, None).await?;
    let Ok(event) = komoju_webhook::read(
        merchant.komoju_webhook_secret.expose_secret().as_bytes(),
        delivery.body,
        delivery.signature,
        delivery.komoju_id,
    ) else {
        log::warn!("webhook for {mall_id}: bad or missing signature; ignored");
        return Ok(Received::BadSignature);
    };
    let record = WebhookEventRow {
        mall_id: mall_id.to_owned(),
        event_id: event.id.clone(),
        event_type: event.kind.clone(),
        order_pk: None,
        outcome: String::new(),
        received_at: app.clock.now_naive(),
    };
    let (payment, refs) = match event.content {
        Content::Payment { payment, refs } => (payment, refs),
        Content::Ping => return record_only(app, record, "ping").await,
        Content::NotHandled => {
            log::info!(
                "webhook {} for {mall_id}: event type {} not handled; acknowledged",
                event.id,
                event.kind
            );
            return record_only(app, record, "not_handled").await;
        }
        Content::Unreadable(why) => {
            log::warn!(
                "webhook {} ({}) for {mall_id}: {why}; recorded and acknowledged",
                event.id,
                event.kind
            );
            return record_only(app, record, "unreadable").await;
        }
    };
    let order = find_order(app, mall_id, &refs).await?;
    let (Some(order), Some(fact)) = (order, payment.to_fact()) else {
        log::warn!(
            "webhook {} ({}) for {mall_id}: no order for session {:?} / external_order_num {:?}, or a payment status this build does not know; acknowledged",
            event.id, event.kind, refs.session, refs.external_order_num
        );
        return record_only(app, record, "unknown_order").await;
    };
    if is_duplicate(app, mall_id, &event.id).await? {
        log::info!("webhook {} for {mall_id}: already processed", event.id);
        return Ok(Received::Acknowledged("duplicate"));
    }
    match crate::orders::updates::apply_fact(
        app,
        &merchant,
        &order.id,
        fact,
        "webhook",
        Some(record),
    )
    .await
    {
        Ok(applied) => {
            if applied.enqueued > 0 {
                app.outbox_wake.notify_one();
            }
            Ok(Received::Acknowledged(if applied.outcome.changed {
                "applied"
            } else {
                "ignored"
            }))
        }
        // A concurrent delivery of the same event committed first: this one rolled back.
        Err(e) if db::is_unique_violation(&e) => {
            log::info!(
                "webhook {} for {mall_id}: already processed (concurrent delivery)",
                event.id
            );
            Ok(Received::Acknowledged("duplicate"))
        }
        Err(e) => Err(ApiError::from_db("applying webhook", e)),
    }
}

/// Records an event that changes no order (ping, unknown order, unreadable) with
/// `outcome`; a repeat is fine.
async fn record_only(
    app: &Services,
    mut record: WebhookEventRow,
    outcome: &'static str,
) -> Result<Received, ApiError> {
    record.outcome = outcome.to_owned();
    match app
        .db
        .run(move |c| db::webhook_events::insert(c, &record))
        .await
    {
        Ok(()) => Ok(Received::Acknowledged(outcome)),
        Err(e) if db::is_unique_violation(&e) => Ok(Received::Acknowledged(outcome)),
        Err(e) => Err(ApiError::from_db("recording webhook event", e)),
    }
}

async fn is_duplicate(app: &Services, mall_id: &str, event_id: &str) -> Result<bool, ApiError> {
    let (m, e) = (mall_id.to_owned(), event_id.to_owned());
    app.db
        .run(move |c| db::webhook_events::exists(c, &m, &e))
        .await
        .map_err(|e| ApiError::from_db("reading webhook events", e))
}

/// §8's order lookup: the order's current session, then the metadata this service set,
/// then `external_order_num`; always within the URL's mall.
async fn find_order(
    app: &Services,
    mall_id: &str,
    refs: &OrderRefs,
) -> Result<Option<db::orders::OrderRow>, ApiError> {
    let mall = mall_id.to_owned();
    let session = refs.session.clone();
    let meta_order = refs
        .metadata
        .as_ref()
        .filter(|(m, _)| m == mall_id)
        .map(|(_, order_id)| order_id.clone());
    let eon = refs.external_order_num.clone();
    app.db
        .run(move |c| {
            if let Some(s) = session {
                if let Some(o) = db::orders::find_by_session(c, &s)? {
                    if o.mall_id == mall {
                        return Ok(Some(o));
                    }
                }
            }
            if let Some(order_id) = meta_order {
                if let Some(o) = db::orders::find_by_order_id(c, &mall, &order_id)? {
                    return Ok(Some(o));
                }
            }
            if let Some(e) = eon {
                return db::orders::find_by_external_order_num(c, &mall, &e);
            }
            Ok(None)
        })
        .await
        .map_err(|e| ApiError::from_db("finding webhook order", e))
}
