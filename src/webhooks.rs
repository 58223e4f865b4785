//! KOMOJU webhooks in (PROTOCOL.md §8), as one ordered pipeline; nothing is parsed or
//! stored before the signature holds: the merchant's webhook secret → signature over
//! the raw bytes, in constant time, and the envelope ([`crate::komoju::webhook`]) → find
//! the order (by `data.session`, then `data.metadata`, then `data.external_order_num`),
//! locked → dedup by event id (`INSERT … ON CONFLICT DO NOTHING`) → apply and enqueue
//! ([`crate::order_updates`]): everything after the signature in one transaction, one
//! unit of database work. The merchant comes from the merchant cache. The caller answers
//! 2xx only after [`receive`] returned: after the commit.
//!
//! A delivery whose signature holds is never refused: what cannot be applied (ping, not
//! a payment event, unreadable, no known order) is recorded and acknowledged, its reason
//! logged; KOMOJU would otherwise redeliver it for days. A database failure is an error,
//! so that KOMOJU sends it again.

use secrecy::ExposeSecret;

use crate::db;
use crate::db::webhook_events::{self, WebhookEventRow, WebhookOutcome};
use crate::error::ApiError;
use crate::komoju::webhook::{self as komoju_webhook, Content, OrderRefs};
use crate::order_updates as updates;
use crate::orders::state::{self as order_state, Event, Fact};
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
    /// Acknowledged (2xx) with this outcome: a [`WebhookOutcome`]'s name (`applied`,
    /// `ignored`, `unknown_order`, `unknown_status`, `ping`, `not_handled`, `unreadable`),
    /// or `duplicate` for an event recorded before.
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
    let merchant = app.merchants.load(mall_id, None).await?;
    let Ok(event) = komoju_webhook::read(
        merchant.komoju_webhook_secret.expose_secret().as_bytes(),
        delivery.body,
        delivery.signature,
        delivery.komoju_id,
    ) else {
        log::warn!("webhook for {mall_id}: bad or missing signature; ignored");
        signature_failed(app, mall_id).await;
        return Ok(Received::BadSignature);
    };
    signature_held(app, mall_id).await;
    let record = WebhookEventRow {
        mall_id: mall_id.to_owned(),
        event_id: event.id.clone(),
        event_type: event.kind.clone(),
        order_pk: None,
        outcome: WebhookOutcome::Ignored,
        received_at: app.clock.now_naive(),
    };
    let (payment, refs) = match event.content {
        Content::Payment { payment, refs } => (payment, refs),
        other => {
            let outcome = not_a_payment(&other, &record);
            return record_only(app, record, outcome).await;
        }
    };
    let Some(fact) = payment.to_fact() else {
        log::warn!(
            "webhook {} ({}) for {mall_id}: payment status {:?} is not one this build knows; acknowledged",
            event.id, event.kind, payment.status
        );
        return record_only(app, record, WebhookOutcome::UnknownStatus).await;
    };
    let handled = match apply_payment(app, &merchant, &record, &fact, &refs).await? {
        Step::NeedsSession(session_id) => {
            // KOMOJU converted the currency: the payment is checked through the session
            // it completed (§8 "Amounts"), read before the transaction, then applied.
            let fact = with_session_total(app, &merchant, fact, &session_id).await?;
            match apply_payment(app, &merchant, &record, &fact, &refs).await? {
                Step::Done(handled) => handled,
                Step::NeedsSession(_) => return Err(ApiError::Internal),
            }
        }
        Step::Done(handled) => handled,
    };
    Ok(acknowledge(app, &record, &refs, handled))
}

/// Counts the mall's delivery whose signature did not hold, for its settings page (the
/// mall exists: it was loaded first). A database failure is logged; the answer stays 401.
async fn signature_failed(app: &Services, mall_id: &str) {
    let (mall, now) = (mall_id.to_owned(), app.clock.now_naive());
    let counted = app
        .db
        .run(move |c| webhook_events::record_bad_signature(c, &mall, now))
        .await;
    match counted {
        Ok(()) => app.merchants.note_bad_signatures(mall_id, true),
        Err(e) => log::warn!("webhook for {mall_id}: counting the bad signature: {e}"),
    }
}

/// A correctly signed delivery: the mall's failed signatures, if it has any, are
/// forgotten (a mall with none, the usual case, costs no write). A database failure is
/// logged (the count stays until the next signed delivery).
async fn signature_held(app: &Services, mall_id: &str) {
    if !app.merchants.has_bad_signatures(mall_id) {
        return;
    }
    let mall = mall_id.to_owned();
    let cleared = app
        .db
        .run(move |c| webhook_events::clear_bad_signatures(c, &mall))
        .await;
    match cleared {
        Ok(()) => app.merchants.note_bad_signatures(mall_id, false),
        Err(e) => log::warn!("webhook for {mall_id}: clearing bad signatures: {e}"),
    }
}

/// The outcome of a signed event that is no payment event (ping, not handled,
/// unreadable), logged.
fn not_a_payment(content: &Content, record: &WebhookEventRow) -> WebhookOutcome {
    let (id, kind, mall_id) = (&record.event_id, &record.event_type, &record.mall_id);
    match content {
        Content::Ping => WebhookOutcome::Ping,
        Content::Unreadable(why) => {
            log::warn!("webhook {id} ({kind}) for {mall_id}: {why}; recorded and acknowledged");
            WebhookOutcome::Unreadable
        }
        _ => {
            log::info!("webhook {id} for {mall_id}: event type {kind} not handled; acknowledged");
            WebhookOutcome::NotHandled
        }
    }
}

/// What the committed unit of work did, as the reply says it (and the log, and the
/// outbox woken when it has rows to send).
fn acknowledge(
    app: &Services,
    record: &WebhookEventRow,
    refs: &OrderRefs,
    handled: Option<Option<Box<updates::Applied>>>,
) -> Received {
    let (id, kind, mall_id) = (&record.event_id, &record.event_type, &record.mall_id);
    match handled {
        None => {
            log::warn!(
                "webhook {id} ({kind}) for {mall_id}: no order for session {:?} / external_order_num {:?}; acknowledged",
                refs.session, refs.external_order_num
            );
            Received::Acknowledged(WebhookOutcome::UnknownOrder.as_str())
        }
        Some(None) => {
            log::info!("webhook {id} for {mall_id}: already processed");
            Received::Acknowledged("duplicate")
        }
        Some(Some(applied)) => {
            updates::committed(app, &applied);
            if applied.enqueued > 0 {
                app.outbox_wake.notify_one();
            }
            let outcome = if applied.took_effect() {
                WebhookOutcome::Applied
            } else {
                WebhookOutcome::Ignored
            };
            Received::Acknowledged(outcome.as_str())
        }
    }
}

/// What one try of [`apply_payment`] did.
enum Step {
    /// Committed: `None` no order (recorded as `unknown_order`), `Some(None)` a repeat of
    /// an event already recorded, `Some(Some(_))` applied.
    Done(Option<Option<Box<updates::Applied>>>),
    /// Nothing written: the capture is in another currency than the order's and its
    /// session (this id) must be read from KOMOJU first.
    NeedsSession(String),
}

/// One unit of database work: find and lock the order, record the event (a repeat
/// stops here), apply the fact, enqueue the notifications; committed before the reply.
async fn apply_payment(
    app: &Services,
    merchant: &crate::merchant::Merchant,
    record: &WebhookEventRow,
    fact: &Fact,
    refs: &OrderRefs,
) -> Result<Step, ApiError> {
    let now = app.clock.now_naive();
    let key = app.cafe24_service_key.expose_secret().as_bytes().to_vec();
    let (merchant, record, fact, lookup) =
        (merchant.clone(), record.clone(), fact.clone(), refs.clone());
    app.db
        .run(move |c| {
            db::transaction(c, |c| {
                let Some(order) = lock_order(c, &record.mall_id, &lookup)? else {
                    let mut record = record;
                    record.outcome = WebhookOutcome::UnknownOrder;
                    webhook_events::insert_new(c, &record)?;
                    return Ok(Step::Done(None));
                };
                if let Some(session_id) =
                    order_state::needs_session_total(&order.facts()?, &fact.event)
                {
                    return Ok(Step::NeedsSession(session_id));
                }
                let ctx = updates::Context {
                    merchant: &merchant,
                    service_key: &key,
                };
                updates::apply_locked(c, &ctx, order, &fact, "webhook", Some(record), now)
                    .map(|applied| Step::Done(Some(applied.map(Box::new))))
            })
        })
        .await
        .map_err(|e| ApiError::from_db("applying webhook", e))
}

/// The fact with the [`order_state::SessionTotal`] of `session_id`, read from KOMOJU:
/// set only when the session is `completed` by this very payment (otherwise the
/// capture stays unvouched, and the state machine calls it `amount_mismatch`).
/// Errors: KOMOJU unreachable (`upstream_error`, so KOMOJU sends the webhook again).
async fn with_session_total(
    app: &Services,
    merchant: &crate::merchant::Merchant,
    mut fact: Fact,
    session_id: &str,
) -> Result<Fact, ApiError> {
    let session = app
        .komoju
        .get_session(&merchant.komoju_secret_key, session_id)
        .await
        .map_err(|e| {
            crate::upstream::komoju(e, "reading the session of a converted payment", session_id)
        })?;
    if let Event::Payment {
        payment_id,
        session_total,
        ..
    } = &mut fact.event
    {
        let completed_by_it = session.id == session_id
            && session.status == "completed"
            && session
                .payment
                .as_ref()
                .is_some_and(|p| &p.id == payment_id);
        if let (true, Some(amount), Some(currency)) =
            (completed_by_it, session.amount, session.currency.clone())
        {
            *session_total = Some(order_state::SessionTotal { amount, currency });
        }
    }
    Ok(fact)
}

/// Records an event that changes no order (ping, not handled, unreadable) with
/// `outcome`; a repeat is fine.
async fn record_only(
    app: &Services,
    mut record: WebhookEventRow,
    outcome: WebhookOutcome,
) -> Result<Received, ApiError> {
    record.outcome = outcome;
    app.db
        .run(move |c| webhook_events::insert_new(c, &record))
        .await
        .map_err(|e| ApiError::from_db("recording webhook event", e))?;
    Ok(Received::Acknowledged(outcome.as_str()))
}

/// §8's order lookup, inside the webhook's transaction and locked for it: the order's
/// current session, then the metadata this service set, then `external_order_num`;
/// always within the URL's mall.
fn lock_order(
    c: &mut db::DbConnection,
    mall_id: &str,
    refs: &OrderRefs,
) -> Result<Option<db::orders::OrderRow>, db::DbError> {
    if let Some(session) = &refs.session {
        if let Some(o) = db::orders::lock_by_session(c, mall_id, session)? {
            return Ok(Some(o));
        }
    }
    if let Some((_, order_id)) = refs.metadata.as_ref().filter(|(m, _)| m == mall_id) {
        if let Some(o) = db::orders::lock_by_order_id(c, mall_id, order_id)? {
            return Ok(Some(o));
        }
    }
    match &refs.external_order_num {
        Some(e) => db::orders::lock_by_external_order_num(c, mall_id, e),
        None => Ok(None),
    }
}
