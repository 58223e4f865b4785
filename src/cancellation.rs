//! Cancellations and refunds, shared by the two cancellation route families
//! (PROTOCOL.md §6.4, §6.5; §2 H2/H4; §3; §7).
//!
//! Never twice: every request is a `refunds` row with its own KOMOJU idempotency key and
//! exact request body, written (under the order's row lock) before KOMOJU is called. The
//! same request repeated within [`DEDUP_WINDOW`] finds that row: it gets the first reply,
//! or, if the first call's outcome is unknown (timeout, crash), repeats the call with the
//! same key, so KOMOJU refunds once. Money still unconfirmed at KOMOJU is reserved, so
//! concurrent different requests cannot refund more than was captured.
//!
//! Before capture (card authorized, konbini code issued) the payment is cancelled at
//! KOMOJU, in full; after capture it is refunded, partially when less than what is left.

use std::time::Duration;

use actix_web::http::StatusCode;
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cafe24::ids::OrderId;
use crate::cafe24::partner_id::PartnerId;
use crate::cafe24::{hash_data, Fields};
use crate::db::refunds::{self, Operation, RefundRow, RefundState};
use crate::db::{self, orders, DbError};
use crate::error::ApiError;
use crate::komoju::{KomojuError, Payment};
use crate::merchant::Merchant;
use crate::money::{Currency, Money};
use crate::orders::state::OrderState;
use crate::services::Services;

/// A repeat of the same request within this window gets the first reply (§6.4).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Which route family the request came through: §6.4 (`Sync`) or §6.5 (`Async`).
pub use crate::merchant::CancelMode as Mode;

/// A reply to Cafe24: HTTP status and JSON body (stored, so repeats get it verbatim).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl Reply {
    fn from_error(e: &ApiError) -> Reply {
        use actix_web::ResponseError;
        Reply {
            status: e.status_code(),
            body: json!(e.envelope()),
        }
    }

    fn from_row(row: &RefundRow) -> Option<Reply> {
        let status = StatusCode::from_u16(u16::try_from(row.reply_status?).ok()?).ok()?;
        let body = serde_json::from_str(row.reply_body.as_deref()?).ok()?;
        Some(Reply { status, body })
    }
}

/// Fields the cancellation reads (everything else is ignored).
#[derive(Clone)]
struct ValidCancel {
    partner_id: PartnerId,
    order_id: OrderId,
    tid: String,
    cancel_amount: Money,
    cancel_amount_text: String,
    cancel_noty_url: Option<String>,
    extra_data: Option<String>,
    fingerprint: String,
}

/// Handles a cancellation request; returns the reply for Cafe24. Errors before the
/// KOMOJU call change nothing and call nobody.
pub async fn cancel(app: &Services, mode: Mode, fields: &Fields) -> Result<Reply, ApiError> {
    let reply = cancel_request(app, mode, fields).await;
    let result = match &reply {
        Ok(_) => "accepted",
        Err(e) => e.code(),
    };
    let mode_label = match mode {
        Mode::Sync => "synchronous",
        Mode::Async => "asynchronous",
    };
    app.metrics
        .cancellations
        .with_label_values(&[mode_label, result])
        .inc();
    reply
}

async fn cancel_request(app: &Services, mode: Mode, fields: &Fields) -> Result<Reply, ApiError> {
    let mut valid = validate(mode, app, fields)?;
    let merchant = app.merchants.load_partner(&valid.partner_id, false).await?;
    valid.cancel_noty_url = valid
        .cancel_noty_url
        .map(|url| {
            app.allowed_hosts
                .check_field("cancel_noty_url", &url, &merchant.allowed_hosts)
        })
        .transpose()?;
    let row = decide(app, mode, &valid).await?;
    if let Some(reply) = Reply::from_row(&row) {
        log::info!(
            "cancel {} of order {}: repeat within the window, first reply replayed",
            row.id,
            valid.order_id
        );
        return Ok(reply);
    }
    let decided = match ask_komoju(app, &merchant, &row).await {
        Ok(payment) => accepted(app, mode, &row, &merchant, payment).await?,
        Err(e) if e.is_refusal() => refused(&row, &valid.order_id, &e),
        // 5xx, timeout, unreadable, still in flight: the outcome is unknown. The row stays
        // pending; a repeat of the request replays the same key.
        Err(e) => {
            return Err(crate::upstream::komoju(
                e,
                "cancelling at KOMOJU",
                &valid.order_id,
            ))
        }
    };
    record(app, mode, &valid, &merchant, &row, decided).await
}

/// The cancel or refund of `row` at KOMOJU, with the row's idempotency key.
async fn ask_komoju(
    app: &Services,
    merchant: &Merchant,
    row: &RefundRow,
) -> Result<Payment, KomojuError> {
    let secret = &merchant.komoju_secret_key;
    if row.operation == Operation::Cancel {
        app.komoju
            .cancel_payment(secret, &row.idempotency_key, &row.tid)
            .await
    } else {
        app.komoju
            .refund_payment(secret, &row.idempotency_key, &row.tid, &row.komoju_request)
            .await
    }
}

/// What KOMOJU decided, kept: the payment applied to the order, then the reply stored on
/// the row (the reply Cafe24's repeats replay).
async fn record(
    app: &Services,
    mode: Mode,
    valid: &ValidCancel,
    merchant: &Merchant,
    row: &RefundRow,
    decided: Decided,
) -> Result<Reply, ApiError> {
    // The payment first, then the reply: a process stopped (or a connection lost)
    // between the two leaves the row pending, so Cafe24's repeat calls KOMOJU again with
    // the same key and applies the same payment (a fact applied twice is applied once).
    // The other order left the order paid while KOMOJU had refunded, the repeat finding
    // the stored reply (issue 18, item 13).
    if let Some(fact) = decided.payment.as_ref().and_then(Payment::to_fact) {
        crate::order_updates::apply_fact(app, merchant, &row.order_pk, fact, "cancel")
            .await
            .map_err(|e| ApiError::from_db("applying cancellation", e))?;
    }
    let body = decided.reply.body.to_string();
    let (id, status_code, now) = (
        row.id.clone(),
        i32::from(decided.reply.status.as_u16()),
        app.clock.now_naive(),
    );
    let (state, refund_id, link) = (
        decided.state,
        decided.refund_id.clone(),
        decided.bank_account_url.clone(),
    );
    let stored = app
        .db
        .run(move |c| {
            let result = refunds::KomojuResult {
                state,
                komoju_refund_id: refund_id.as_deref(),
                bank_account_url: link.as_deref(),
                reply_status: status_code,
                reply_body: &body,
            };
            refunds::record_result(c, &id, &result, now)
        })
        .await
        .map_err(|e| ApiError::from_db("recording cancellation", e))?;
    log::info!(
        "cancel {} of order {} of {} ({} {} {}): {}{}",
        row.id,
        valid.order_id,
        valid.partner_id.mall_id(),
        row.operation,
        row.cancel_amount_text,
        mode.as_str(),
        stored.state,
        if stored.bank_account_url.is_some() {
            "; the buyer must give a bank account on KOMOJU's page"
        } else {
            ""
        }
    );
    Reply::from_row(&stored).ok_or(ApiError::Internal)
}

/// What KOMOJU's answer to a cancellation decided: the request's state, KOMOJU's refund
/// (its id, and its sealed bank-account link), the reply to Cafe24, and the payment to
/// apply.
struct Decided {
    state: RefundState,
    refund_id: Option<String>,
    bank_account_url: Option<String>,
    reply: Reply,
    payment: Option<Payment>,
}

/// KOMOJU accepted the cancel or refund. A refund of a konbini, bank-transfer or
/// Pay-easy payment carries a `redirect_url` where the buyer gives a bank account
/// (§6.4): accepted all the same, the reply says so, and the link is kept sealed for the
/// merchant and the operator (never logged, never sent to Cafe24).
async fn accepted(
    app: &Services,
    mode: Mode,
    row: &RefundRow,
    merchant: &Merchant,
    payment: Payment,
) -> Result<Decided, ApiError> {
    let refund = if row.operation == Operation::Refund {
        let refund = our_refund(app, row, &payment).await?;
        if refund.is_none() {
            log::error!(
                "KOMOJU refund of {} answered without a refund of {} (refunds row {})",
                row.tid,
                row.cancel_amount,
                row.id
            );
            return Err(ApiError::Upstream(
                "KOMOJU answered without the refund".into(),
            ));
        }
        refund
    } else {
        None
    };
    let link = refund.as_ref().and_then(|r| r.redirect_url.clone());
    let sealed = link
        .map(|url| {
            app.secrets
                .seal(&merchant.mall_id, refunds::BANK_ACCOUNT_URL, &url.into())
                .map_err(|_| ApiError::Internal)
        })
        .transpose()?;
    let (state, message) = match (mode, row.operation, sealed.is_some()) {
        (Mode::Sync, Operation::Cancel, _) => (RefundState::Succeeded, "Payment cancelled"),
        (Mode::Async, Operation::Cancel, _) => (RefundState::Accepted, "Cancellation requested"),
        (Mode::Sync, Operation::Refund, false) => (RefundState::Succeeded, "Refund completed"),
        (Mode::Async, Operation::Refund, false) => (RefundState::Accepted, "Refund requested"),
        (mode, Operation::Refund, true) => (
            if mode == Mode::Sync {
                RefundState::Succeeded
            } else {
                RefundState::Accepted
            },
            "Refund accepted: the buyer must give a bank account on KOMOJU's page for the money to be returned",
        ),
    };
    Ok(Decided {
        state,
        refund_id: refund.map(|r| r.id),
        bank_account_url: sealed,
        reply: Reply {
            status: StatusCode::OK,
            body: json!({"result_code": "0000", "result_message": message}),
        },
        payment: Some(payment),
    })
}

/// KOMOJU refused the request itself (a 4xx): final, replayed to repeats. A 400 or 422
/// is `not_refundable` (§3: KOMOJU's `bad_request` / `unprocessable_entity` for this
/// payment, never assumed from its type); any other refusal is `upstream_error`.
fn refused(row: &RefundRow, order_id: &str, e: &KomojuError) -> Decided {
    let status = e.status().unwrap_or_default();
    let code = match e {
        KomojuError::Api { code, .. } => code.clone(),
        _ => String::new(),
    };
    log::warn!(
        "cancel of order {order_id} ({}): KOMOJU refused it ({status} {code})",
        row.tid
    );
    let (state, err) = if status == 400 || status == 422 {
        (
            RefundState::NotRefundable,
            ApiError::NotRefundable(format!(
                "KOMOJU refused to {} this payment ({code})",
                row.operation
            )),
        )
    } else {
        (
            RefundState::Failed,
            ApiError::Upstream(format!("KOMOJU refused the request ({code})")),
        )
    };
    Decided {
        state,
        refund_id: None,
        bank_account_url: None,
        reply: Reply::from_error(&err),
        payment: None,
    }
}

/// §6.4 checks that need no storage: fields, H2, partner, money.
fn validate(mode: Mode, app: &Services, fields: &Fields) -> Result<ValidCancel, ApiError> {
    let partner_id = fields.required("partner_id")?;
    let order_id = fields.required("order_id")?;
    let tid = fields.required("tid")?;
    let cancel_amount = fields.required("cancel_amount")?;
    let currency = fields.required("currency")?;
    let hash = fields
        .required("hash_data")
        .map_err(|_| ApiError::InvalidHash)?;
    let cancel_noty_url = match mode {
        Mode::Async => Some(fields.required("cancel_noty_url")?),
        Mode::Sync => fields.optional("cancel_noty_url"),
    };
    let signed = hash_data::CancelRequest {
        cancel_amount,
        currency,
        order_id,
        partner_id,
        tid,
    };
    if !signed.verify(app.cafe24_service_key.expose_secret().as_bytes(), hash) {
        return Err(ApiError::InvalidHash);
    }
    let partner = PartnerId::parse(partner_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let order = OrderId::parse(order_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let currency_code = Currency::parse(currency)?;
    let money = Money::parse_positive(cancel_amount, currency_code)?;
    let fingerprint = {
        let mut h = Sha256::new();
        for part in [
            mode.as_str(),
            partner_id,
            order_id,
            tid,
            cancel_amount,
            currency,
        ] {
            h.update(part.as_bytes());
            h.update([0x1f]);
        }
        hex::encode(h.finalize())
    };
    Ok(ValidCancel {
        order_id: order,
        tid: tid.to_owned(),
        cancel_amount: money,
        cancel_amount_text: cancel_amount.to_owned(),
        cancel_noty_url: cancel_noty_url.map(str::to_owned),
        extra_data: fields.optional("extra_data").map(str::to_owned),
        partner_id: partner,
        fingerprint,
    })
}

/// Under the order's lock: the repeat of a recent request, or a new request row after the
/// order, `tid`, state and amount checks.
async fn decide(app: &Services, mode: Mode, v: &ValidCancel) -> Result<RefundRow, ApiError> {
    let v = v.clone();
    let now = app.clock.now_naive();
    let since = now - chrono::Duration::from_std(DEDUP_WINDOW).unwrap_or_default();
    app.db
        .run(move |c| db::transaction(c, |c| decide_locked(c, mode, &v, now, since)))
        .await
        .map_err(|e: DbError| ApiError::from_db("deciding cancellation", e))?
}

/// [`decide`] inside its transaction: the order locked, a repeat within the window found,
/// or a new pending row inserted. The inner error is the reply; nothing was written.
fn decide_locked(
    c: &mut db::DbConnection,
    mode: Mode,
    v: &ValidCancel,
    now: chrono::NaiveDateTime,
    since: chrono::NaiveDateTime,
) -> Result<Result<RefundRow, ApiError>, DbError> {
    let order = match locked_order(c, v)? {
        Ok(order) => order,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(row) = refunds::find_recent(c, &order.id, &v.fingerprint, since)? {
        return Ok(Ok(row));
    }
    let operation = match operation_for(c, &order, v.cancel_amount, since)? {
        Ok(operation) => operation,
        Err(e) => return Ok(Err(e)),
    };
    let komoju_request = if operation == Operation::Refund {
        refund_body(&order, v.cancel_amount.minor(), v.order_id.as_str())
    } else {
        // `POST /payments/{id}/cancel` takes no body (§7).
        String::new()
    };
    let row = RefundRow {
        // Time-ordered, like an order's key (see `checkout::new_order_row`).
        id: uuid::Uuid::now_v7().to_string(),
        order_pk: order.id.clone(),
        mode,
        operation,
        fingerprint: v.fingerprint.clone(),
        cancel_amount: v.cancel_amount.minor(),
        cancel_amount_text: v.cancel_amount_text.clone(),
        tid: v.tid.clone(),
        cancel_noty_url: v.cancel_noty_url.clone(),
        extra_data: v.extra_data.clone(),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        komoju_request,
        komoju_refund_id: None,
        state: RefundState::Pending,
        reply_status: None,
        reply_body: None,
        confirmed_at: None,
        created_at: now,
        updated_at: now,
        bank_account_url: None,
    };
    refunds::insert(c, &row)?;
    if let (Mode::Async, Some(url)) = (mode, &v.cancel_noty_url) {
        orders::set_cancel_noty_url(c, &order.id, url, now)?;
    }
    Ok(Ok(row))
}

/// The order the request names, locked: of this partner, paid with this `tid`, in the
/// request's currency (`order_not_found`, `tid_mismatch`, `order_conflict` otherwise).
fn locked_order(
    c: &mut db::DbConnection,
    v: &ValidCancel,
) -> Result<Result<orders::OrderRow, ApiError>, DbError> {
    let mall = v.partner_id.mall_id().as_str();
    let Some(found) = orders::find_by_order_id(c, mall, v.order_id.as_str())? else {
        return Ok(Err(ApiError::OrderNotFound));
    };
    let Some(order) = orders::lock_order(c, &found.id)? else {
        return Ok(Err(ApiError::OrderNotFound));
    };
    Ok(if order.partner_id != v.partner_id.as_str() {
        Err(ApiError::OrderNotFound)
    } else if order.komoju_payment_id.as_deref() != Some(v.tid.as_str()) {
        Err(ApiError::TidMismatch)
    } else if order.currency != v.cancel_amount.currency().code() {
        Err(ApiError::OrderConflict(
            "currency is not the order's".into(),
        ))
    } else {
        Ok(order)
    })
}

/// What the order's state allows: a refund of a captured payment (up to what is left
/// after refunds made and reserved), or a cancel, in full, of one not captured yet (one
/// at a time); `order_conflict` or `amount_exceeds_refundable` otherwise.
fn operation_for(
    c: &mut db::DbConnection,
    order: &orders::OrderRow,
    amount: Money,
    since: chrono::NaiveDateTime,
) -> Result<Result<Operation, ApiError>, DbError> {
    let operation = match order.state {
        OrderState::Paid | OrderState::PartiallyRefunded => Operation::Refund,
        OrderState::Authorized | OrderState::AwaitingPayment => Operation::Cancel,
        s => {
            return Ok(Err(ApiError::OrderConflict(format!(
                "order is {s}: nothing to cancel"
            ))))
        }
    };
    let reserved = refunds::reserved(c, &order.id, since)?;
    if operation == Operation::Cancel {
        if amount.minor() != order.amount {
            return Ok(Err(ApiError::OrderConflict(
                "a payment not captured yet can only be cancelled in full".into(),
            )));
        }
        if reserved > 0 {
            return Ok(Err(ApiError::OrderConflict(
                "a cancellation of this order is under way".into(),
            )));
        }
        return Ok(Ok(operation));
    }
    let left = order.captured_amount.unwrap_or(0) - order.refunded_amount - reserved;
    if amount.minor() > left {
        return Ok(Err(ApiError::AmountExceedsRefundable(format!(
            "cancel_amount is more than what is left to refund ({})",
            Money::from_minor(left.max(0), amount.currency()).to_decimal_string()
        ))));
    }
    Ok(Ok(operation))
}

/// The exact body of `POST /payments/{id}/refund` for `minor` units of the order's
/// currency. KOMOJU refunds in the payment's currency: when it converted the order's
/// (a USD order paid in JPY), all that is left is asked without `amount` (KOMOJU refunds
/// the rest) and a part in proportion to what was charged, rounded down
/// (docs/decisions.md "Converted currencies").
fn refund_body(order: &orders::OrderRow, minor: i64, order_id: &str) -> String {
    let description = format!("Cafe24 order {order_id}");
    let captured = order.captured_amount.unwrap_or(0);
    match order.charged_amount.filter(|_| captured > 0) {
        None => json!({"amount": minor, "description": description}),
        Some(_) if minor >= captured - order.refunded_amount => {
            json!({"description": description})
        }
        Some(charged) => {
            let share = i128::from(minor) * i128::from(charged) / i128::from(captured);
            json!({"amount": i64::try_from(share).unwrap_or(0), "description": description})
        }
    }
    .to_string()
}

/// Which refund in KOMOJU's answer is this request's: the one already recorded, else one
/// of the amount sent to KOMOJU that no other request of the order claims (the newest
/// such).
async fn our_refund(
    app: &Services,
    row: &RefundRow,
    payment: &Payment,
) -> Result<Option<crate::komoju::Refund>, ApiError> {
    let pk = row.order_pk.clone();
    let own = row.id.clone();
    let claimed: Vec<String> = app
        .db
        .run(move |c| refunds::for_order(c, &pk))
        .await
        .map_err(|e| ApiError::from_db("reading refunds", e))?
        .into_iter()
        .filter(|r| r.id != own)
        .filter_map(|r| r.komoju_refund_id)
        .collect();
    if let Some(known) = &row.komoju_refund_id {
        return Ok(payment.refunds.iter().find(|r| &r.id == known).cloned());
    }
    let sent: Option<i64> = serde_json::from_str::<serde_json::Value>(&row.komoju_request)
        .ok()
        .and_then(|b| b.get("amount").and_then(serde_json::Value::as_i64));
    Ok(payment
        .refunds
        .iter()
        .rev()
        .find(|r| sent.map_or(true, |a| r.amount == a) && !claimed.contains(&r.id))
        .cloned())
}
