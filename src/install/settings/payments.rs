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
    /// When it last changed, in the order's shop's zone: `YYYY-MM-DD HH:MM JST`
    /// ([`crate::clock::shop_time`]).
    pub updated_at: String,
    /// The payment in KOMOJU's dashboard, once there is one.
    pub komoju_url: Option<String>,
    /// A held card authorization (manual capture): the row has a Capture button.
    pub capturable: bool,
}

/// What the payments page shows.
#[derive(Debug, Clone)]
pub struct PaymentsView {
    pub mall_id: String,
    pub lang: String,
    pub rows: Vec<PaymentRow>,
    /// The next page's `after`, when this page is full.
    pub next: Option<String>,
    /// The session's CSRF token for the Capture buttons; `None` for a read-only
    /// (sub-operator's) session, whose page has no button.
    pub csrf: Option<String>,
}

/// KOMOJU's dashboard page of a payment (the address KOMOJU's EC-CUBE plugin links
/// each order to).
pub fn komoju_url(payment_id: &str) -> String {
    format!("https://komoju.com/admin/payments/{payment_id}")
}

/// The mall's shops' zones (`shop_no` → IANA name as Cafe24 lists it).
type Zones = std::collections::HashMap<i32, String>;

fn row_of(order: &OrderRow, zones: &Zones) -> PaymentRow {
    let amount = Currency::parse(&order.currency)
        .map(|c| Money::from_minor(order.amount, c).to_display_string())
        .unwrap_or_else(|_| format!("{} {}", order.amount_text, order.currency));
    PaymentRow {
        order_id: order.order_id.clone(),
        shop_no: order.shop_no,
        amount,
        state: order.state,
        payment_type: order.payment_type.clone(),
        updated_at: crate::clock::shop_time(
            order.updated_at,
            zones.get(&order.shop_no).map_or("", String::as_str),
        ),
        komoju_url: order.komoju_payment_id.as_deref().map(komoju_url),
        capturable: order.authorization_held(),
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
    let (rows, zones) = app
        .db
        .run(move |c| {
            let rows =
                crate::db::orders::page(c, &mall, &query.filter, query.after.clone(), PAGE_SIZE)?;
            let zones: Zones = crate::db::merchants::shops(c, &mall)?
                .into_iter()
                .map(|s| (s.shop_no, s.timezone))
                .collect();
            Ok((rows, zones))
        })
        .await
        .map_err(|e| super::db_error("listing the payments", e))?;
    let next = (rows.len() as i64 == PAGE_SIZE)
        .then(|| rows.last().map(cursor))
        .flatten();
    Ok(PaymentsView {
        mall_id: session.mall_id.clone(),
        lang: session.lang.clone(),
        rows: rows.iter().map(|r| row_of(r, &zones)).collect(),
        next,
        csrf: session.may_change().then(|| app.session_keys.csrf(session)),
    })
}

/// Most rows one CSV export holds (the newest first); a narrower filter gets the rest.
pub const CSV_MAX_ROWS: usize = 10_000;

/// The header row of the CSV export.
pub const CSV_HEADER: [&str; 9] = [
    "order_id",
    "shop_no",
    "amount",
    "currency",
    "state",
    "payment_type",
    "komoju_payment_id",
    "created_at_utc",
    "updated_at_utc",
];

/// A cell as a spreadsheet may not run it: one that starts with `=`, `+`, `-`, `@`, a tab
/// or a carriage return gets a leading `'` (OWASP's CSV injection advice), so a value
/// chosen by someone else (an order id, a payment type) never becomes a formula.
pub fn neutralised(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// `rows` as CSV records (quoted where needed by the `csv` crate; every cell
/// [`neutralised`]), the header first when `header`.
pub fn csv_chunk(rows: &[OrderRow], header: bool) -> Result<Vec<u8>, SiteError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| {
        log::error!("writing the payments CSV: {e}");
        SiteError::Internal
    };
    if header {
        out.write_record(CSV_HEADER).map_err(failed)?;
    }
    for o in rows {
        let amount = Currency::parse(&o.currency)
            .map(|c| Money::from_minor(o.amount, c).to_decimal_string())
            .unwrap_or_else(|_| o.amount_text.clone());
        let record = [
            o.order_id.clone(),
            o.shop_no.to_string(),
            amount,
            o.currency.clone(),
            o.state.as_str().to_owned(),
            o.payment_type.clone().unwrap_or_default(),
            o.komoju_payment_id.clone().unwrap_or_default(),
            o.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            o.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        ];
        out.write_record(record.iter().map(|c| neutralised(c)))
            .map_err(failed)?;
    }
    out.into_inner().map_err(|e| {
        log::error!("writing the payments CSV: {e}");
        SiteError::Internal
    })
}

/// One batch of the CSV export: the session's mall's orders for `filter` after `after`,
/// and the keyset of its last row (`None` when it was the last batch).
pub async fn csv_batch(
    app: &Services,
    session: &Session,
    filter: PaymentsFilter,
    after: Option<(NaiveDateTime, String)>,
    batch: i64,
) -> Result<(Vec<OrderRow>, Option<(NaiveDateTime, String)>), SiteError> {
    let mall = session.mall_id.clone();
    let rows = app
        .db
        .run(move |c| crate::db::orders::page(c, &mall, &filter, after.clone(), batch))
        .await
        .map_err(|e| super::db_error("exporting the payments", e))?;
    let next = (rows.len() as i64 == batch)
        .then(|| rows.last().map(|r| (r.created_at, r.id.clone())))
        .flatten();
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_plain_values_kept() {
        assert_eq!(neutralised("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralised("+1"), "'+1");
        assert_eq!(neutralised("-2"), "'-2");
        assert_eq!(neutralised("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralised("\tx"), "'\tx");
        assert_eq!(neutralised("20261206-0000001"), "20261206-0000001");
        assert_eq!(neutralised(""), "");
    }

    #[test]
    fn cursors_read_back_and_nothing_else_does() {
        assert_eq!(
            cursor_of("1700000000000000.abc-1").map(|(_, id)| id),
            Some("abc-1".into())
        );
        assert!(cursor_of("x.y").is_none());
        assert!(cursor_of("1.").is_none());
        assert!(cursor_of("1.'").is_none());
    }
}
