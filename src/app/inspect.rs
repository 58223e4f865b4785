//! `cafe24-komoju orders show|list`: an order as an operator needs to see it, without
//! SQL: its facts, its timeline (every `order_events` row: who saw what, from → to,
//! applied or why not), its notifications and its refunds. Read-only; prints no secret
//! and no buyer data beyond what identifies the order.

use std::io::Write;

use chrono::NaiveDateTime;

use secrecy::ExposeSecret;

use super::error::CliError;
use crate::db::orders::OrderRow;
use crate::db::{self, DbConnection};
use crate::orders::state::OrderState;
use crate::secrets::SecretBox;

const TIME: &str = "%Y-%m-%dT%H:%M:%SZ";

/// `orders show MALL ORDER_ID`: the order's facts, timeline, notifications, refunds
/// (with a konbini, bank-transfer or Pay-easy refund's bank-account link, opened with
/// `secrets`: the operator gives it to the buyer) and duplicate payments. Errors: no
/// such order (`Usage`), the database.
pub fn show(
    conn: &mut DbConnection,
    secrets: &SecretBox,
    mall_id: &str,
    order_id: &str,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let order = db::orders::find_by_order_id(conn, mall_id, order_id)?
        .ok_or_else(|| CliError::Usage(format!("no order {order_id} of mall {mall_id}")))?;
    facts(&order, out)?;
    timeline(conn, &order, out)?;
    notifications(conn, &order, out)?;
    let link = |column: &str, sealed: &Option<String>| match sealed {
        None => String::new(),
        Some(sealed) => match secrets.open(&order.mall_id, column, sealed) {
            Ok(url) => format!("; bank account: {}", url.expose_secret()),
            Err(_) => "; bank account: <cannot open: APP_SECRET changed?>".to_owned(),
        },
    };
    writeln!(out, "refunds:")?;
    for r in db::refunds::for_order(conn, &order.id)? {
        writeln!(
            out,
            "  {} {} {} {} ({} mode) KOMOJU refund {} at {}{}",
            r.id,
            r.operation,
            r.cancel_amount_text,
            r.state,
            r.mode,
            r.komoju_refund_id.as_deref().unwrap_or("-"),
            r.created_at.format(TIME),
            link(db::refunds::BANK_ACCOUNT_URL, &r.bank_account_url)
        )?;
    }
    writeln!(out, "duplicate payments:")?;
    for d in db::duplicates::for_order(conn, &order.id)? {
        writeln!(
            out,
            "  {} {} {} {} ({}) refund {}{}{} at {}",
            d.payment_id,
            d.amount,
            d.currency,
            d.state,
            d.payment_type.as_deref().unwrap_or("-"),
            d.komoju_refund_id.as_deref().unwrap_or("-"),
            d.last_error
                .as_deref()
                .map(|e| format!("; {e}"))
                .unwrap_or_default(),
            link(db::duplicates::BANK_ACCOUNT_URL, &d.bank_account_url),
            d.created_at.format(TIME)
        )?;
    }
    Ok(())
}

fn facts(order: &OrderRow, out: &mut dyn Write) -> Result<(), CliError> {
    writeln!(
        out,
        "order {} of {} (shop {}), {} checkout, attempt {}",
        order.order_id, order.mall_id, order.shop_no, order.flow, order.attempt
    )?;
    writeln!(
        out,
        "  state {}; amount {} {} (Cafe24 sent {:?}); captured {}; refunded {}{}",
        order.state,
        order.amount,
        order.currency,
        order.amount_text,
        order
            .captured_amount
            .map_or_else(|| "-".to_owned(), |a| a.to_string()),
        order.refunded_amount,
        match (order.charged_amount, &order.charged_currency) {
            (Some(a), Some(c)) => format!("; KOMOJU charged {a} {c}"),
            _ => String::new(),
        }
    )?;
    writeln!(
        out,
        "  KOMOJU session {}, payment {} ({})",
        order.komoju_session_id.as_deref().unwrap_or("-"),
        order.komoju_payment_id.as_deref().unwrap_or("-"),
        order.payment_type.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "  created {}, updated {}, last reconciled {}",
        order.created_at.format(TIME),
        order.updated_at.format(TIME),
        order
            .reconciled_at
            .map_or_else(|| "never".to_owned(), |t| t.format(TIME).to_string())
    )?;
    Ok(())
}

fn timeline(
    conn: &mut DbConnection,
    order: &OrderRow,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    writeln!(out, "timeline:")?;
    for e in db::orders::events(conn, &order.id)? {
        let outcome = if e.applied {
            "applied".to_owned()
        } else if e.detail.is_empty() {
            "ignored".to_owned()
        } else {
            format!("ignored: {}", e.detail)
        };
        writeln!(
            out,
            "  {} {} {} {} -> {} {}",
            e.created_at.format(TIME),
            e.source,
            e.event,
            e.from_state,
            e.to_state,
            outcome
        )?;
    }
    Ok(())
}

fn notifications(
    conn: &mut DbConnection,
    order: &OrderRow,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    writeln!(out, "notifications:")?;
    for n in db::notifications::for_order(conn, &order.id)? {
        writeln!(
            out,
            "  #{} {} {} attempts={} last_status={} last_error={} next={}",
            n.id,
            n.kind,
            n.state,
            n.attempts,
            n.last_status
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            n.last_error.as_deref().unwrap_or("-"),
            n.next_attempt_at.format(TIME)
        )?;
    }
    Ok(())
}

/// `orders list`: one line per order, newest first.
pub fn list(
    conn: &mut DbConnection,
    mall_id: Option<&str>,
    state: Option<OrderState>,
    since: Option<NaiveDateTime>,
    limit: i64,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let rows = db::orders::list(conn, mall_id, state, since, limit.clamp(1, 10_000))?;
    if rows.is_empty() {
        writeln!(out, "no orders")?;
    }
    for o in rows {
        writeln!(
            out,
            "{} {} {} {} {} {} {} created={}",
            o.mall_id,
            o.order_id,
            o.flow,
            o.state,
            o.amount_text,
            o.currency,
            o.komoju_payment_id.as_deref().unwrap_or("-"),
            o.created_at.format(TIME)
        )?;
    }
    Ok(())
}
