//! Checkout, shared by the route families that start a KOMOJU hosted-page session
//! (PROTOCOL.md §6.1, §6.2): validate Cafe24's request, create or find the order, create
//! its KOMOJU session exactly once, and later apply what KOMOJU says about it.
//!
//! Exactly one session per attempt, whatever the concurrency: the order row (unique per
//! `(mall_id, order_id)`) stores the attempt's idempotency key, `external_order_num` and
//! the exact request body *before* KOMOJU is called. Every concurrent or later repeat
//! sends the same key and bytes, so KOMOJU creates one session and answers the rest with
//! the same reply (or 409 while the first is in flight, which the client waits out).
//!
//! Every change of order state goes through [`crate::order_updates::apply`]: one
//! transaction that locks the order, asks the state machine, writes the new facts, an
//! audit row and the notifications Cafe24 must receive. The buyer's return from KOMOJU
//! is `returned`.

pub mod key;
mod returned;
mod session;

use session::{create_session, external_order_num, offered_types, session_request};

pub use returned::{buyer_returned, refresh_from_session, Returned};

use secrecy::ExposeSecret;

use crate::cafe24::ids::OrderId;
use crate::cafe24::partner_id::PartnerId;
use crate::cafe24::{hash_data, Fields};
use crate::db::{orders, orders::OrderRow};
use crate::error::ApiError;
use crate::merchant::Merchant;
use crate::money::{Currency, Money};
use crate::orders::state::OrderState;
use crate::orders::Flow;
use crate::services::Services;

/// Request fields the checkout reads; every other field is kept in `request_fields`.
const KNOWN_FIELDS: [&str; 13] = [
    "partner_id",
    "order_id",
    "amount",
    "currency",
    "return_url",
    "return_noty_url",
    "hash_data",
    "buyer_id",
    "shop_no",
    "buyer_email",
    "buyer_name",
    "lang",
    "extra_data",
];

/// A checkout request that passed every check of §6.1 (before any write).
pub(crate) struct ValidCheckout {
    pub(crate) partner_id: PartnerId,
    pub(crate) order_id: OrderId,
    pub(crate) amount: Money,
    pub(crate) amount_text: String,
    /// Cafe24's `return_url` (external checkout: the mall's `return_url_base`).
    pub(crate) return_url: String,
    /// Where Cafe24 hears the result (`return_noty_url` / `return_notification_url`).
    pub(crate) return_noty_url: Option<String>,
    pub(crate) extra_data: Option<String>,
    /// Other request fields, a JSON object kept with the order.
    pub(crate) request_fields: String,
    pub(crate) buyer_email: Option<String>,
    pub(crate) lang: Option<String>,
    pub(crate) merchant: Merchant,
}

/// Handles a checkout request: returns the KOMOJU `session_url` to give Cafe24 as
/// `payment_url`. Errors are the §3 codes; a failure before the order row is written
/// writes nothing and calls nobody.
pub async fn start(app: &Services, flow: Flow, fields: &Fields) -> Result<String, ApiError> {
    let started = async {
        let valid = validate(app, flow, fields).await?;
        start_valid(app, flow, &valid).await.map(|(_, url)| url)
    }
    .await;
    count(app, flow, started.as_ref().map(|_| ()));
    started
}

/// Counts one checkout request of `flow` by its result (`created` or the §3 code).
pub(crate) fn count(app: &Services, flow: Flow, result: Result<(), &ApiError>) {
    let result = match result {
        Ok(()) => "created",
        Err(e) => e.code(),
    };
    app.metrics
        .checkouts
        .with_label_values(&[flow.as_str(), result])
        .inc();
}

/// Creates or finds the order of a validated request and its KOMOJU session; returns the
/// order and the `session_url`.
pub(crate) async fn start_valid(
    app: &Services,
    flow: Flow,
    valid: &ValidCheckout,
) -> Result<(OrderRow, String), ApiError> {
    let order = create_or_find(app, flow, valid).await?;
    if let (Some(url), true) = (
        &order.komoju_session_url,
        order.state == OrderState::Pending,
    ) {
        return Ok((order.clone(), url.clone()));
    }
    let url = create_session(app, &valid.merchant, &order).await?;
    Ok((order, url))
}

/// §6.1 steps before any write: hash, partner, money, merchant, URLs.
async fn validate(app: &Services, flow: Flow, fields: &Fields) -> Result<ValidCheckout, ApiError> {
    let partner_id = fields.required("partner_id")?;
    let order_id = fields.required("order_id")?;
    let amount = fields.required("amount")?;
    let currency = fields.required("currency")?;
    let return_url = fields.required("return_url")?;
    let hash = fields
        .required("hash_data")
        .map_err(|_| ApiError::InvalidHash)?;
    let return_noty_url = match flow {
        Flow::Async | Flow::External => Some(fields.required("return_noty_url")?),
        Flow::Sync => fields.optional("return_noty_url"),
    };
    let signed = hash_data::PaymentRequest {
        amount,
        currency,
        order_id,
        partner_id,
    };
    if !signed.verify(app.cafe24_service_key.expose_secret().as_bytes(), hash) {
        return Err(ApiError::InvalidHash);
    }
    let partner = PartnerId::parse(partner_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let order_id = OrderId::parse(order_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    if let Some(shop_no) = fields.optional("shop_no") {
        if shop_no != partner.shop_no().to_string() {
            return Err(ApiError::invalid("shop_no does not match partner_id"));
        }
    }
    let currency = Currency::parse(currency)?;
    let money = Money::parse_positive(amount, currency)?;
    let merchant = app.merchants.load_partner(&partner, true).await?;
    let hosts = &merchant.allowed_hosts;
    let return_url = app
        .allowed_hosts
        .check_field("return_url", return_url, hosts)?;
    let return_noty_url = return_noty_url
        .map(|url| app.allowed_hosts.check_field("return_noty_url", url, hosts))
        .transpose()?;
    Ok(ValidCheckout {
        order_id,
        amount: money,
        amount_text: amount.to_owned(),
        return_url,
        return_noty_url,
        extra_data: fields.optional("extra_data").map(str::to_owned),
        request_fields: fields.others(&KNOWN_FIELDS),
        buyer_email: fields.optional("buyer_email").map(str::to_owned),
        lang: fields.optional("lang").map(str::to_owned),
        partner_id: partner,
        merchant,
    })
}

/// Writes the order (or finds it), deciding whether a session is needed: one unit of
/// database work (insert unless `(mall_id, order_id)` exists, else read it).
async fn create_or_find(
    app: &Services,
    flow: Flow,
    v: &ValidCheckout,
) -> Result<OrderRow, ApiError> {
    let now = app.clock.now_naive();
    // A row that cannot be made (no payment type for this flow and currency, or KOMOJU's
    // list unreadable) may still be found.
    let row = match offered_types(app, flow, v).await {
        Ok(types) => new_order_row(app, flow, v, &types, now),
        Err(e) => Err(e),
    };
    let candidate = row.as_ref().ok().cloned();
    let (mall_id, order_id) = (v.partner_id.mall_id().to_string(), v.order_id.to_string());
    let found = app
        .db
        .run(move |c| {
            if let Some(row) = candidate {
                if orders::insert_new(c, &row)? {
                    return Ok(Some((row, true)));
                }
            }
            Ok(orders::find_by_order_id(c, &mall_id, &order_id)?.map(|o| (o, false)))
        })
        .await
        .map_err(|e| ApiError::from_db("writing order", e))?;
    let Some((existing, created)) = found else {
        return Err(row.err().unwrap_or(ApiError::Internal));
    };
    if created {
        log::info!(
            "order created: mall_id={} order_id={} flow={} amount={} {}",
            existing.mall_id,
            existing.order_id,
            existing.flow,
            existing.amount_text,
            existing.currency
        );
        return Ok(existing);
    }
    continue_existing(app, flow, v, existing).await
}

/// The order already stored under the request's `order_id`: it must be the same amount,
/// currency and flow; a pending order goes on, one whose last attempt ended unpaid gets
/// a new attempt, any other is `order_conflict`.
async fn continue_existing(
    app: &Services,
    flow: Flow,
    v: &ValidCheckout,
    existing: OrderRow,
) -> Result<OrderRow, ApiError> {
    if existing.amount != v.amount.minor() || existing.currency != v.amount.currency().code() {
        return Err(ApiError::OrderConflict(
            "order_id already exists with another amount or currency".into(),
        ));
    }
    if existing.flow != flow {
        return Err(ApiError::OrderConflict(format!(
            "order_id already exists in the {} checkout flow",
            existing.flow
        )));
    }
    let state = existing.state;
    match state {
        OrderState::Pending => Ok(existing),
        s if s.allows_new_attempt() => {
            let old = close_previous_session(app, &v.merchant, existing).await?;
            new_attempt(app, flow, v, old).await
        }
        s => Err(ApiError::OrderConflict(format!("order is already {s}"))),
    }
}

/// Before a new attempt replaces the order's session (§5 "at most one live KOMOJU
/// session per order"): reads it from KOMOJU; an open one is cancelled
/// (`POST /sessions/{id}/cancel`, so the buyer cannot pay it while paying the new one);
/// one that holds money is applied first, and then no new attempt is made
/// (`order_conflict`). Errors: KOMOJU unreachable (`upstream_error`: nothing changed).
async fn close_previous_session(
    app: &Services,
    merchant: &Merchant,
    order: OrderRow,
) -> Result<OrderRow, ApiError> {
    let Some(session_id) = order.komoju_session_id.clone() else {
        return Ok(order);
    };
    let key = &merchant.komoju_secret_key;
    let session = app
        .komoju
        .get_session(key, &session_id)
        .await
        .map_err(|e| {
            crate::upstream::komoju(e, "reading the previous KOMOJU session", &order.order_id)
        })?;
    if session.status == "pending" && !session.ended() {
        app.komoju
            .cancel_session(key, &format!("cancel-session-{session_id}"), &session_id)
            .await
            .map_err(|e| {
                crate::upstream::komoju(
                    e,
                    "cancelling the previous KOMOJU session",
                    &order.order_id,
                )
            })?;
        log::info!(
            "order {} of {}: open session {session_id} cancelled at KOMOJU before a new attempt",
            order.order_id,
            order.mall_id
        );
        return Ok(order);
    }
    let Some(fact) = session.to_fact() else {
        return Ok(order);
    };
    let applied = crate::order_updates::apply_fact(app, merchant, &order.id, fact, "checkout")
        .await
        .map_err(|e| ApiError::from_db("applying the previous KOMOJU session", e))?;
    let state = applied.order.state;
    if state.allows_new_attempt() {
        Ok(applied.order)
    } else {
        app.outbox_wake.notify_one();
        Err(ApiError::OrderConflict(format!("order is already {state}")))
    }
}

/// Starts a fresh KOMOJU session for an order whose last attempt ended unpaid.
async fn new_attempt(
    app: &Services,
    flow: Flow,
    v: &ValidCheckout,
    old: OrderRow,
) -> Result<OrderRow, ApiError> {
    let attempt = old.attempt + 1;
    let key = uuid::Uuid::new_v4().to_string();
    let external_order_num = external_order_num(&old.order_id, attempt);
    let types = offered_types(app, flow, v).await?;
    let body = session_request(
        app,
        flow,
        v,
        &types,
        &old.order_id,
        attempt,
        &external_order_num,
    )?;
    let now = app.clock.now_naive();
    let id = old.id.clone();
    let changed = app
        .db
        .run(move |c| {
            orders::start_attempt(
                c,
                &id,
                &orders::NewAttempt {
                    attempt,
                    komoju_idempotency_key: &key,
                    external_order_num: &external_order_num,
                    komoju_session_request: &body,
                },
                now,
            )
        })
        .await
        .map_err(|e| ApiError::from_db("starting attempt", e))?;
    if changed == 1 {
        log::info!(
            "order {} of {}: attempt {attempt} after {}",
            old.order_id,
            old.mall_id,
            old.state
        );
    }
    pending_after_attempt(app, &old).await
}

/// The order as stored after its new attempt: still `pending`, else `order_conflict`
/// (a webhook or another request moved it meanwhile).
async fn pending_after_attempt(app: &Services, old: &OrderRow) -> Result<OrderRow, ApiError> {
    let id = old.id.clone();
    let row = app
        .db
        .run(move |c| orders::find(c, &id))
        .await
        .map_err(|e| ApiError::from_db("reading order", e))?
        .ok_or(ApiError::Internal)?;
    if row.state != OrderState::Pending {
        return Err(ApiError::OrderConflict(format!(
            "order is already {}",
            row.state
        )));
    }
    Ok(row)
}

fn new_order_row(
    app: &Services,
    flow: Flow,
    v: &ValidCheckout,
    payment_types: &[String],
    now: chrono::NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let attempt = 1;
    let external_order_num = external_order_num(&v.order_id, attempt);
    Ok(OrderRow {
        // Time-ordered (UUIDv7): a new order's key, and the keys of the events,
        // notifications and refunds that name it, land on the last pages of their indexes
        // instead of a random page of a table of millions (docs/benchmarks.md, "Growth").
        id: uuid::Uuid::now_v7().to_string(),
        mall_id: v.partner_id.mall_id().to_string(),
        order_id: v.order_id.to_string(),
        shop_no: v.partner_id.shop_no(),
        partner_id: v.partner_id.as_str().to_owned(),
        flow,
        amount: v.amount.minor(),
        amount_text: v.amount_text.clone(),
        currency: v.amount.currency().code().to_owned(),
        state: OrderState::Pending,
        return_url: v.return_url.clone(),
        return_noty_url: v.return_noty_url.clone(),
        extra_data: v.extra_data.clone(),
        request_fields: v.request_fields.clone(),
        attempt,
        komoju_idempotency_key: uuid::Uuid::new_v4().to_string(),
        komoju_session_request: session_request(
            app,
            flow,
            v,
            payment_types,
            &v.order_id,
            attempt,
            &external_order_num,
        )?,
        external_order_num,
        komoju_session_id: None,
        komoju_session_url: None,
        komoju_payment_id: None,
        payment_type: None,
        captured_amount: None,
        refunded_amount: 0,
        pending_notice_sent: false,
        created_at: now,
        updated_at: now,
        cancel_noty_url: None,
        reconciled_at: None,
        payment_expires_at: None,
        charged_amount: None,
        charged_currency: None,
    })
}
