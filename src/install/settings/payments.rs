//! The merchant's payments page (issue 20, item 1): the mall's own orders, newest first,
//! filtered by state, shop, creation date and order id, a page at a time by keyset
//! (never OFFSET: orders arriving meanwhile do not shift a page). A session sees only its
//! own mall's orders (the mall is the session's, never the request's).

use chrono::{NaiveDate, NaiveDateTime};

use super::SiteError;
use crate::db::orders::{OrderRow, PaymentsFilter};
use crate::keys::session::Session;
use crate::money::{Currency, Money};
use crate::orders::state::OrderState;
use crate::services::Services;

/// Rows on one page.
pub const PAGE_SIZE: i64 = 50;

/// The page's query as the browser sends it (`state`, `shop`, `from`, `to` as
/// `YYYY-MM-DD` in UTC, `order_id`, `after` the previous page's cursor); empty values
/// are no filter.
#[derive(Debug, Clone, Default)]
pub struct PaymentsQuery {
    pub filter: PaymentsFilter,
    /// The keyset after which the page starts.
    pub after: Option<(NaiveDateTime, String)>,
}

impl PaymentsQuery {
    /// Reads the query pairs. Errors: [`SiteError::Form`] naming the parameter.
    pub fn parse(pairs: &[(String, String)]) -> Result<PaymentsQuery, SiteError> {
        let mut query = PaymentsQuery::default();
        for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            let bad = || SiteError::Form(format!("{name} is not valid"));
            match name.as_str() {
                "state" => query.filter.state = Some(OrderState::parse(value).ok_or_else(bad)?),
                "shop" => {
                    let n = value.parse::<i32>().ok().filter(|n| (1..=9999).contains(n));
                    query.filter.shop_no = Some(n.ok_or_else(bad)?);
                }
                "from" => query.filter.from = Some(day(value).ok_or_else(bad)?),
                "to" => {
                    let end =
                        day(value).and_then(|d| d.checked_add_signed(chrono::Duration::days(1)));
                    query.filter.to = Some(end.ok_or_else(bad)?);
                }
                "order_id" => {
                    crate::text::printable(value, 40).ok_or_else(bad)?;
                    query.filter.order_id = Some(value.clone());
                }
                "after" => query.after = Some(cursor_of(value).ok_or_else(bad)?),
                _ => {}
            }
        }
        Ok(query)
    }
}

fn day(text: &str) -> Option<NaiveDateTime> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// A row's keyset as the next page's `after`: its creation time in microseconds, `.`,
/// its id.
fn cursor(row: &OrderRow) -> String {
    format!("{}.{}", row.created_at.and_utc().timestamp_micros(), row.id)
}

fn cursor_of(text: &str) -> Option<(NaiveDateTime, String)> {
    let (micros, id) = text.split_once('.')?;
    let at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    id_ok.then(|| (at, id.to_owned()))
}

/// One order as the page lists it.
#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub order_id: String,
    pub shop_no: i32,
    /// As the shop shows money (`¥3,400`).
    pub amount: String,
    pub state: OrderState,
    pub payment_type: Option<String>,
    /// When it last changed, `YYYY-MM-DD HH:MM` UTC.
    pub updated_at: String,
    /// The payment in KOMOJU's dashboard, once there is one.
    pub komoju_url: Option<String>,
}

/// What the payments page shows.
#[derive(Debug, Clone)]
pub struct PaymentsView {
    pub mall_id: String,
    pub lang: String,
    pub rows: Vec<PaymentRow>,
    /// The next page's `after`, when this page is full.
    pub next: Option<String>,
}

/// KOMOJU's dashboard page of a payment (the address KOMOJU's EC-CUBE plugin links
/// each order to).
fn komoju_url(payment_id: &str) -> String {
    format!("https://komoju.com/admin/payments/{payment_id}")
}

fn row_of(order: &OrderRow) -> PaymentRow {
    let amount = Currency::parse(&order.currency)
        .map(|c| Money::from_minor(order.amount, c).to_display_string())
        .unwrap_or_else(|_| format!("{} {}", order.amount_text, order.currency));
    PaymentRow {
        order_id: order.order_id.clone(),
        shop_no: order.shop_no,
        amount,
        state: order.state,
        payment_type: order.payment_type.clone(),
        updated_at: order.updated_at.format("%Y-%m-%d %H:%M").to_string(),
        komoju_url: order.komoju_payment_id.as_deref().map(komoju_url),
    }
}

/// The session's mall's orders for `query`, a page at a time. Errors: the database
/// ([`SiteError::Unavailable`]).
pub async fn payments(
    app: &Services,
    session: &Session,
    query: PaymentsQuery,
) -> Result<PaymentsView, SiteError> {
    let mall = session.mall_id.clone();
    let rows = app
        .db
        .run(move |c| {
            crate::db::orders::page(c, &mall, &query.filter, query.after.clone(), PAGE_SIZE)
        })
        .await
        .map_err(|e| super::db_error("listing the payments", e))?;
    let next = (rows.len() as i64 == PAGE_SIZE)
        .then(|| rows.last().map(cursor))
        .flatten();
    Ok(PaymentsView {
        mall_id: session.mall_id.clone(),
        lang: session.lang.clone(),
        rows: rows.iter().map(row_of).collect(),
        next,
    })
}
