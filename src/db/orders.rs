//! Order rows and their audit trail. One order per `(mall_id, order_id)`; every change
//! of state is written with an `order_events` row describing why.
//!
//! Functions take a connection that may already be inside a transaction, so the same
//! query serves alone or in a larger unit of work. Nothing here decides a transition:
//! that is [`crate::orders::state`]'s job.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{order_events, orders};
use super::{DbConnection, DbError};
use crate::orders::state::{OrderFacts, OrderState};

/// An `orders` row. Amounts in minor units; `amount_text` is Cafe24's exact string.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders)]
// Values are bound, `None` as NULL, never written `DEFAULT`: one SQL text for every
// row, so the insert stays prepared (`db::prepared`).
#[diesel(treat_none_as_default_value = false)]
pub struct OrderRow {
    pub id: String,
    pub mall_id: String,
    pub order_id: String,
    pub shop_no: i32,
    pub partner_id: String,
    /// `sync`, `async` or `external`.
    pub flow: crate::orders::Flow,
    pub amount: i64,
    pub amount_text: String,
    pub currency: String,
    pub state: crate::orders::state::OrderState,
    pub return_url: String,
    pub return_noty_url: Option<String>,
    pub extra_data: Option<String>,
    /// The other request fields Cafe24 sent (JSON object of strings), kept as received.
    pub request_fields: String,
    /// 1 for the first KOMOJU session; +1 for each new session after a cancelled one.
    pub attempt: i32,
    /// `X-KOMOJU-IDEMPOTENCY` of this attempt's `POST /sessions`, stored before the call.
    pub komoju_idempotency_key: String,
    /// `payment_data.external_order_num` of this attempt (unique per attempt).
    pub external_order_num: String,
    /// The exact JSON body of this attempt's `POST /sessions`, resent byte for byte.
    pub komoju_session_request: String,
    pub komoju_session_id: Option<String>,
    pub komoju_session_url: Option<String>,
    pub komoju_payment_id: Option<String>,
    pub payment_type: Option<String>,
    pub captured_amount: Option<i64>,
    pub refunded_amount: i64,
    pub pending_notice_sent: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The latest `cancel_noty_url` Cafe24 gave in a cancellation request: where refunds
    /// made elsewhere (KOMOJU dashboard) are reported.
    pub cancel_noty_url: Option<String>,
    /// When a reconciliation pass last read this order's session from KOMOJU.
    pub reconciled_at: Option<NaiveDateTime>,
    /// When the order's konbini / bank-transfer / Pay-easy code expires, as KOMOJU said it
    /// when the order became `awaiting_payment` (UTC); `None` when unknown.
    pub payment_expires_at: Option<NaiveDateTime>,
    /// What KOMOJU charged when it converted the currency (minor units of
    /// `charged_currency`); `None` when it charged the order's currency.
    pub charged_amount: Option<i64>,
    pub charged_currency: Option<String>,
}

impl OrderRow {
    /// The paid amount in Cafe24's decimal format: the exact string Cafe24 sent when the
    /// capture equals the order amount (it always does outside `amount_mismatch`), else
    /// the captured minor units formatted for the currency.
    pub fn paid_amount_text(&self) -> String {
        match self.captured_amount {
            Some(c) if c != self.amount => crate::money::Currency::parse(&self.currency)
                .map(|cur| crate::money::Money::from_minor(c, cur).to_decimal_string())
                .unwrap_or_else(|_| c.to_string()),
            _ => self.amount_text.clone(),
        }
    }

    /// `minor` units of the currency KOMOJU charged, in the order's currency: the same
    /// number unless KOMOJU converted it, then in proportion to what was charged (rounded
    /// down; all of the charge is all of the capture).
    pub fn in_order_currency(&self, minor: i64) -> i64 {
        match (self.charged_amount, self.captured_amount) {
            (Some(charged), Some(captured)) if charged > 0 => {
                if minor >= charged {
                    captured
                } else {
                    let share = i128::from(minor) * i128::from(captured) / i128::from(charged);
                    i64::try_from(share).unwrap_or(captured)
                }
            }
            _ => minor,
        }
    }

    /// True when the current session was created with `payment_data.capture: manual`
    /// (§7), as its stored request says: the request is the one record of what KOMOJU
    /// was asked, whatever the merchant's setting became since.
    pub fn manual_capture(&self) -> bool {
        #[derive(serde::Deserialize)]
        struct Request {
            payment_data: Data,
        }
        #[derive(serde::Deserialize)]
        struct Data {
            capture: Option<String>,
        }
        serde_json::from_str::<Request>(&self.komoju_session_request)
            .is_ok_and(|r| r.payment_data.capture.as_deref() == Some("manual"))
    }

    /// True when Cafe24 was told of success at this order's card authorization
    /// ([`crate::orders::state::authorization_held`]).
    pub fn authorization_held(&self) -> bool {
        // Only an authorized order can hold one: its session request is read only then.
        self.state == OrderState::Authorized
            && crate::orders::state::authorization_held(
                self.state,
                self.manual_capture(),
                self.payment_type.as_deref(),
            )
    }

    /// Takes the facts the state machine decided, as [`save_facts`] stores them.
    pub fn set_facts(&mut self, facts: &OrderFacts, now: NaiveDateTime) {
        self.state = facts.state;
        self.komoju_payment_id.clone_from(&facts.payment_id);
        self.payment_type.clone_from(&facts.payment_type);
        self.captured_amount = facts.captured_amount;
        self.charged_amount = facts.charged.as_ref().map(|c| c.amount);
        self.charged_currency = facts.charged.as_ref().map(|c| c.currency.clone());
        self.refunded_amount = facts.refunded_amount;
        self.pending_notice_sent = facts.pending_notice_sent;
        self.updated_at = now;
    }

    /// The facts the state machine reads.
    pub fn facts(&self) -> Result<OrderFacts, DbError> {
        Ok(OrderFacts {
            state: self.state,
            amount: self.amount,
            currency: self.currency.clone(),
            session_id: self.komoju_session_id.clone(),
            payment_id: self.komoju_payment_id.clone(),
            payment_type: self.payment_type.clone(),
            captured_amount: self.captured_amount,
            charged: match (self.charged_amount, &self.charged_currency) {
                (Some(amount), Some(currency)) => Some(crate::orders::state::Charged {
                    amount,
                    currency: currency.clone(),
                }),
                _ => None,
            },
            refunded_amount: self.refunded_amount,
            pending_notice_sent: self.pending_notice_sent,
            manual_capture: self.manual_capture(),
        })
    }
}

/// An `order_events` row to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = order_events)]
// Values are bound, `None` as NULL, never written `DEFAULT`: one SQL text for every
// row, so the insert stays prepared (`db::prepared`).
#[diesel(treat_none_as_default_value = false)]
pub struct NewOrderEvent {
    pub order_pk: String,
    /// Who saw it: `callback`, `status`, `webhook`, `checkout`, …
    pub source: String,
    /// What happened, e.g. `payment.captured`.
    pub event: String,
    pub from_state: String,
    pub to_state: String,
    /// False when the state machine ignored the event.
    pub applied: bool,
    pub detail: String,
    pub created_at: NaiveDateTime,
}

/// An `order_events` row as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_events)]
pub struct OrderEventRow {
    pub id: i64,
    pub order_pk: String,
    pub source: String,
    pub event: String,
    pub from_state: String,
    pub to_state: String,
    pub applied: bool,
    pub detail: String,
    pub created_at: NaiveDateTime,
}

/// The order `order_id` of `mall_id`.
pub fn find_by_order_id(
    conn: &mut DbConnection,
    mall_id: &str,
    order_id: &str,
) -> Result<Option<OrderRow>, DbError> {
    Ok(orders::table
        .filter(orders::mall_id.eq(mall_id))
        .filter(orders::order_id.eq(order_id))
        .select(OrderRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Orders newest first, at most `limit`, optionally of one mall, in one state, and
/// created at or after `since`.
pub fn list(
    conn: &mut DbConnection,
    mall_id: Option<&str>,
    state: Option<OrderState>,
    since: Option<NaiveDateTime>,
    limit: i64,
) -> Result<Vec<OrderRow>, DbError> {
    let mut q = orders::table
        .select(OrderRow::as_select())
        .order(orders::created_at.desc())
        .limit(limit)
        .into_boxed();
    if let Some(m) = mall_id {
        q = q.filter(orders::mall_id.eq(m.to_owned()));
    }
    if let Some(s) = state {
        q = q.filter(orders::state.eq(s));
    }
    if let Some(t) = since {
        q = q.filter(orders::created_at.ge(t));
    }
    Ok(q.load(conn)?)
}

/// What the merchant's payments page filters a mall's orders by; every field optional.
#[derive(Debug, Clone, Default)]
pub struct PaymentsFilter {
    pub state: Option<crate::orders::state::OrderState>,
    pub shop_no: Option<i32>,
    /// Created at or after (UTC).
    pub from: Option<NaiveDateTime>,
    /// Created before (UTC).
    pub to: Option<NaiveDateTime>,
    /// Cafe24's order id, exactly.
    pub order_id: Option<String>,
}

/// One page of `mall_id`'s orders matching `filter`, newest first (`created_at`, then
/// `id`, both descending), starting after the keyset `after` (the last row of the
/// previous page): rows inserted meanwhile never shift a page, as an OFFSET would.
/// At most `limit` rows (index `orders_mall_created`).
pub fn page(
    conn: &mut DbConnection,
    mall_id: &str,
    filter: &PaymentsFilter,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<OrderRow>, DbError> {
    let mut q = orders::table
        .select(OrderRow::as_select())
        .filter(orders::mall_id.eq(mall_id.to_owned()))
        .order((orders::created_at.desc(), orders::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(s) = filter.state {
        q = q.filter(orders::state.eq(s));
    }
    if let Some(n) = filter.shop_no {
        q = q.filter(orders::shop_no.eq(n));
    }
    if let Some(t) = filter.from {
        q = q.filter(orders::created_at.ge(t));
    }
    if let Some(t) = filter.to {
        q = q.filter(orders::created_at.lt(t));
    }
    if let Some(id) = &filter.order_id {
        q = q.filter(orders::order_id.eq(id.clone()));
    }
    if let Some((at, id)) = after {
        q = q.filter(
            orders::created_at
                .lt(at)
                .or(orders::created_at.eq(at).and(orders::id.lt(id))),
        );
    }
    Ok(q.load(conn)?)
}

/// The order with primary key `id`.
pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<OrderRow>, DbError> {
    Ok(orders::table
        .find(id)
        .select(OrderRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Reads the one row `$query` selects for a decision inside a transaction: on
/// PostgreSQL the row is locked (`SELECT … FOR UPDATE`) until the transaction ends;
/// SQLite's single connection already serializes every writer. No `LIMIT`: every
/// lookup is by a unique key (a bound `LIMIT ?` makes SQLite prepare the statement
/// again at every use).
macro_rules! lock_one {
    ($conn:expr, $query:expr) => {
        match $conn {
            DbConnection::Postgres(pg) => $query.for_update().get_result(pg).optional(),
            DbConnection::Sqlite(lite) => $query.get_result(lite).optional(),
        }
    };
}

/// The order with primary key `id`, locked for the caller's transaction (see
/// `lock_one`).
pub fn lock_order(conn: &mut DbConnection, id: &str) -> Result<Option<OrderRow>, DbError> {
    Ok(lock_one!(
        conn,
        orders::table.find(id).select(OrderRow::as_select())
    )?)
}

/// The order of `mall_id` whose current KOMOJU session is `session_id`, locked for the
/// caller's transaction.
pub fn lock_by_session(
    conn: &mut DbConnection,
    mall_id: &str,
    session_id: &str,
) -> Result<Option<OrderRow>, DbError> {
    Ok(lock_one!(
        conn,
        orders::table
            .filter(orders::komoju_session_id.eq(session_id))
            .filter(orders::mall_id.eq(mall_id))
            .select(OrderRow::as_select())
    )?)
}

/// The order `order_id` of `mall_id`, locked for the caller's transaction.
pub fn lock_by_order_id(
    conn: &mut DbConnection,
    mall_id: &str,
    order_id: &str,
) -> Result<Option<OrderRow>, DbError> {
    Ok(lock_one!(
        conn,
        orders::table
            .filter(orders::mall_id.eq(mall_id))
            .filter(orders::order_id.eq(order_id))
            .select(OrderRow::as_select())
    )?)
}

/// The order of `mall_id` whose current attempt uses `external_order_num`, locked for
/// the caller's transaction.
pub fn lock_by_external_order_num(
    conn: &mut DbConnection,
    mall_id: &str,
    external_order_num: &str,
) -> Result<Option<OrderRow>, DbError> {
    Ok(lock_one!(
        conn,
        orders::table
            .filter(orders::mall_id.eq(mall_id))
            .filter(orders::external_order_num.eq(external_order_num))
            .select(OrderRow::as_select())
    )?)
}

/// Inserts a new order unless `(mall_id, order_id)` exists (`INSERT … ON CONFLICT DO
/// NOTHING`); returns whether this call inserted it.
pub fn insert_new(conn: &mut DbConnection, row: &OrderRow) -> Result<bool, DbError> {
    let n = on_backend!(conn, |c| diesel::insert_into(orders::table)
        .values(row)
        .on_conflict((orders::mall_id, orders::order_id))
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// Records the KOMOJU session of attempt `attempt`. Only fills an empty slot or repeats
/// the same id, so concurrent identical checkouts converge; returns the rows changed.
pub fn set_session(
    conn: &mut DbConnection,
    id: &str,
    attempt: i32,
    session_id: &str,
    session_url: &str,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(super::prepared::update(
        orders::table,
        (
            orders::komoju_session_id.eq(session_id),
            orders::komoju_session_url.eq(session_url),
            orders::updated_at.eq(now),
        ),
        orders::id.eq(id).and(orders::attempt.eq(attempt)).and(
            orders::komoju_session_id
                .is_null()
                .or(orders::komoju_session_id.eq(session_id)),
        ),
    )
    .execute(conn)?)
}

/// The fields of a new checkout attempt on an order whose last attempt ended unpaid.
pub struct NewAttempt<'a> {
    pub attempt: i32,
    pub komoju_idempotency_key: &'a str,
    pub external_order_num: &'a str,
    pub komoju_session_request: &'a str,
}

/// Starts attempt `next.attempt` if the order is still at `next.attempt - 1` (a
/// concurrent request may have started it first); returns the rows changed.
pub fn start_attempt(
    conn: &mut DbConnection,
    id: &str,
    next: &NewAttempt<'_>,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        orders::table
            .find(id)
            .filter(orders::attempt.eq(next.attempt - 1)),
    )
    .set((
        orders::attempt.eq(next.attempt),
        orders::state.eq(OrderState::Pending.as_str()),
        orders::komoju_idempotency_key.eq(next.komoju_idempotency_key),
        orders::external_order_num.eq(next.external_order_num),
        orders::komoju_session_request.eq(next.komoju_session_request),
        orders::komoju_session_id.eq(None::<String>),
        orders::komoju_session_url.eq(None::<String>),
        orders::komoju_payment_id.eq(None::<String>),
        orders::payment_type.eq(None::<String>),
        orders::pending_notice_sent.eq(false),
        orders::payment_expires_at.eq(None::<NaiveDateTime>),
        orders::updated_at.eq(now),
    ))
    .execute(conn)?)
}

/// Writes what the state machine decides of `order` (as [`OrderRow::set_facts`] left
/// it): state, payment, capture, refunds, the pending notice, the code's expiry,
/// `updated_at`.
pub fn save_facts(conn: &mut DbConnection, order: &OrderRow) -> Result<(), DbError> {
    super::prepared::update(
        orders::table,
        (
            orders::state.eq(order.state),
            orders::komoju_payment_id.eq(&order.komoju_payment_id),
            orders::payment_type.eq(&order.payment_type),
            orders::captured_amount.eq(order.captured_amount),
            orders::charged_amount.eq(order.charged_amount),
            orders::charged_currency.eq(&order.charged_currency),
            orders::refunded_amount.eq(order.refunded_amount),
            orders::pending_notice_sent.eq(order.pending_notice_sent),
            orders::payment_expires_at.eq(order.payment_expires_at),
            orders::updated_at.eq(order.updated_at),
        ),
        orders::id.eq(&order.id),
    )
    .execute(conn)?;
    Ok(())
}

/// Appends to the order's audit trail.
pub fn insert_event(conn: &mut DbConnection, event: &NewOrderEvent) -> Result<(), DbError> {
    diesel::insert_into(order_events::table)
        .values(event)
        .execute(conn)?;
    Ok(())
}

/// The order's audit trail, oldest first.
pub fn events(conn: &mut DbConnection, order_pk: &str) -> Result<Vec<OrderEventRow>, DbError> {
    Ok(order_events::table
        .filter(order_events::order_pk.eq(order_pk))
        .order(order_events::id.asc())
        .select(OrderEventRow::as_select())
        .load(conn)?)
}

/// Number of orders (for tests and operators).
pub fn count(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(orders::table.count().get_result(conn)?)
}

/// Which orders of one state a reconciliation pass reads: see [`due_for_reading`].
#[derive(Debug, Clone, Copy)]
pub struct Due {
    /// The state the orders are in.
    pub state: OrderState,
    /// Orders unchanged since before this…
    pub changed_before: NaiveDateTime,
    /// …and not read by a pass since before this are due.
    pub read_before: NaiveDateTime,
    /// With a value: orders whose payment expired (`payment_expires_at`) before it and
    /// that no pass read after the expiry are due too.
    pub expired_before: Option<NaiveDateTime>,
}

/// Which of the due orders a query returns: a pass reads every [`Sweep::First`] before
/// any [`Sweep::Again`], so that an order nobody has read yet (a silently paid one)
/// never waits behind orders read before and still open (abandoned checkouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Never read by a pass (`reconciled_at` empty), least recently changed first.
    First,
    /// Read before, least recently read first.
    Again,
}

/// Orders in `due.state` with a KOMOJU session that a reconciliation pass should read
/// (the ones a webhook should have moved), of one [`Sweep`], at most `limit`, none of
/// the malls in `except` (merchants backed off): unchanged since `due.changed_before`
/// and not read since `due.read_before`; or, with `due.expired_before`, expired before
/// it and not read since the expiry. Both sweeps walk `orders_state_reconciled_at` in
/// order.
pub fn due_for_reading(
    conn: &mut DbConnection,
    due: Due,
    sweep: Sweep,
    except: &[String],
    limit: i64,
) -> Result<Vec<OrderRow>, DbError> {
    let query = orders::table
        .filter(orders::state.eq(due.state))
        .filter(orders::komoju_session_id.is_not_null())
        .limit(limit)
        .select(OrderRow::as_select())
        .into_boxed();
    let query = if except.is_empty() {
        query
    } else {
        query.filter(diesel::dsl::not(orders::mall_id.eq_any(except.to_vec())))
    };
    let query = match (sweep, due.expired_before) {
        (Sweep::First, None) => query.filter(orders::updated_at.lt(due.changed_before)),
        (Sweep::First, Some(expired_before)) => query.filter(
            orders::updated_at
                .lt(due.changed_before)
                .nullable()
                .or(orders::payment_expires_at.lt(expired_before)),
        ),
        (Sweep::Again, None) => query.filter(
            orders::updated_at
                .lt(due.changed_before)
                .and(orders::reconciled_at.lt(due.read_before)),
        ),
        (Sweep::Again, Some(expired_before)) => query.filter(
            orders::updated_at
                .lt(due.changed_before)
                .and(orders::reconciled_at.lt(due.read_before))
                .nullable()
                .or(orders::payment_expires_at
                    .lt(expired_before)
                    .and(orders::reconciled_at.le(orders::payment_expires_at))),
        ),
    };
    let query = match sweep {
        Sweep::First => query
            .filter(orders::reconciled_at.is_null())
            .order(orders::updated_at.asc()),
        Sweep::Again => query
            .filter(orders::reconciled_at.is_not_null())
            .order(orders::reconciled_at.asc()),
    };
    Ok(query.load(conn)?)
}

/// Records the expiry KOMOJU gave for the order's payment code.
pub fn set_payment_expires_at(
    conn: &mut DbConnection,
    id: &str,
    expires_at: Option<NaiveDateTime>,
) -> Result<(), DbError> {
    diesel::update(orders::table.find(id))
        .set(orders::payment_expires_at.eq(expires_at))
        .execute(conn)?;
    Ok(())
}

/// Records that a reconciliation pass read the order's session at `now`.
pub fn set_reconciled(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    super::prepared::update(
        orders::table,
        orders::reconciled_at.eq(Some(now)),
        orders::id.eq(id),
    )
    .execute(conn)?;
    Ok(())
}

/// Records that a reconciliation pass took the orders `ids` at `now` without reading
/// them (their merchant cannot be loaded): one statement for a batch's orders of one
/// merchant. Returns the rows changed.
pub fn set_reconciled_unread(
    conn: &mut DbConnection,
    ids: &[String],
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(diesel::update(orders::table.filter(orders::id.eq_any(ids)))
        .set(orders::reconciled_at.eq(Some(now)))
        .execute(conn)?)
}

/// The order whose current KOMOJU session is `session_id`.
pub fn find_by_session(
    conn: &mut DbConnection,
    session_id: &str,
) -> Result<Option<OrderRow>, DbError> {
    Ok(orders::table
        .filter(orders::komoju_session_id.eq(session_id))
        .select(OrderRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// The order of `mall_id` whose current attempt uses `external_order_num`.
pub fn find_by_external_order_num(
    conn: &mut DbConnection,
    mall_id: &str,
    external_order_num: &str,
) -> Result<Option<OrderRow>, DbError> {
    Ok(orders::table
        .filter(orders::mall_id.eq(mall_id))
        .filter(orders::external_order_num.eq(external_order_num))
        .select(OrderRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Remembers the `cancel_noty_url` of the latest cancellation request.
pub fn set_cancel_noty_url(
    conn: &mut DbConnection,
    id: &str,
    url: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(orders::table.find(id))
        .set((orders::cancel_noty_url.eq(url), orders::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}
