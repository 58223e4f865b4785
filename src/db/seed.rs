//! Filling a database with a realistic year of traffic (issue 21, item 1), for the
//! EXPLAIN test and for benchmarks: merchants and their shops, orders spread over a
//! number of days in every state, their order events, KOMOJU webhook events,
//! notifications to Cafe24 (mostly delivered, some dead) and refunds.
//!
//! Rows are written with multi-row `INSERT` statements ([`ROWS_PER_STATEMENT`] rows
//! each) inside one transaction; every value in the SQL text is generated here (a
//! deterministic generator, never user input), and the few text values are quoted
//! anyway. The shares and assumptions are documented in docs/benchmarks.md ("Seeding").
//! This module never calls KOMOJU or Cafe24 and never touches existing rows: every key it
//! writes carries the run's own tag.

use chrono::{Duration, NaiveDateTime};
use diesel::RunQueryDsl;

use super::{DbConnection, DbError};
use crate::orders::state::OrderState;

/// Rows per `INSERT` statement.
pub const ROWS_PER_STATEMENT: usize = 500;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    /// Orders to write (over all malls).
    pub orders: u64,
    /// Malls (merchants) to create; each gets 1–3 shops.
    pub malls: u32,
    /// The orders' creation times are spread over this many days before `now`.
    pub days: u32,
    /// The end of the seeded period (UTC).
    pub now: NaiveDateTime,
    /// The generator's seed; the same plan writes the same rows.
    pub seed: u64,
    /// The outbox's delays between attempts (`crate::notifications::SCHEDULE`): a
    /// seeded pending notification is one its worker has tried and is retrying on
    /// them, due at its next step (never overdue: a running outbox would have tried
    /// it); one whose schedule ran out before `now` is dead.
    pub retry_schedule: &'static [std::time::Duration],
}

/// How many rows of each table a run wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Rows in `merchants`.
    pub merchants: u64,
    /// Rows in `merchant_shops`.
    pub shops: u64,
    /// Rows in `orders`.
    pub orders: u64,
    /// Rows in `order_events`.
    pub order_events: u64,
    /// Rows in `webhook_events`.
    pub webhook_events: u64,
    /// Rows in `notifications`.
    pub notifications: u64,
    /// Rows in `refunds`.
    pub refunds: u64,
}

/// The order states and their shares in thousandths (they sum to 1000): paid 70 %,
/// refunded or partially refunded 5 %, cancelled / expired / failed 15 %, pending /
/// awaiting payment / authorized 10 %. An open state drawn for an order older than
/// [`OPEN_FOR_DAYS`] becomes the state it ends in (pending and awaiting payment:
/// expired; authorized: paid).
pub const STATE_SHARES: [(OrderState, u64); 9] = [
    (OrderState::Paid, 700),
    (OrderState::PartiallyRefunded, 20),
    (OrderState::Refunded, 30),
    (OrderState::Cancelled, 60),
    (OrderState::Expired, 60),
    (OrderState::Failed, 30),
    (OrderState::Pending, 30),
    (OrderState::AwaitingPayment, 50),
    (OrderState::Authorized, 20),
];

/// How long a seeded order may stay open (pending, awaiting payment, authorized) or
/// keep a pending notification: an older one has ended as KOMOJU, the reconciliation
/// and the outbox end it (a session or a payment code lapses: expired; an authorization
/// is captured: paid; a notification is delivered). A year of real traffic has its open
/// orders in its last days, not spread over the year.
pub const OPEN_FOR_DAYS: i64 = 2;

/// The payment methods seeded orders use, by share.
const PAYMENT_TYPES: [&str; 4] = ["credit_card", "credit_card", "konbini", "paypay"];

/// A small deterministic generator (SplitMix64): enough for spreading rows, no crypto.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One generated order, with what its dependent rows need.
struct Order {
    id: String,
    mall: String,
    shop_no: u64,
    state: OrderState,
    amount: i64,
    created: NaiveDateTime,
    payment_type: &'static str,
    /// Created within [`OPEN_FOR_DAYS`] of the plan's end.
    recent: bool,
}

/// Buffers the rows of one table and sends them as multi-row `INSERT`s.
struct Batch {
    head: &'static str,
    rows: Vec<String>,
    written: u64,
}

impl Batch {
    fn new(head: &'static str) -> Batch {
        Batch {
            head,
            rows: Vec::with_capacity(ROWS_PER_STATEMENT),
            written: 0,
        }
    }

    fn push(&mut self, conn: &mut DbConnection, row: String) -> Result<(), DbError> {
        self.rows.push(row);
        if self.rows.len() >= ROWS_PER_STATEMENT {
            self.flush(conn)?;
        }
        Ok(())
    }

    fn flush(&mut self, conn: &mut DbConnection) -> Result<(), DbError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let sql = format!("{} VALUES {}", self.head, self.rows.join(","));
        on_backend!(conn, |c| diesel::sql_query(sql.as_str()).execute(c))?;
        self.written += self.rows.len() as u64;
        self.rows.clear();
        Ok(())
    }
}

/// A text literal (single quotes doubled).
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A timestamp literal both backends read as diesel's `Timestamp`.
fn ts(t: NaiveDateTime) -> String {
    format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f"))
}

/// Writes the plan's rows in one transaction; returns how many of each.
///
/// Errors: any database error (the transaction is rolled back, nothing is left).
pub fn seed(conn: &mut DbConnection, plan: &SeedPlan) -> Result<Seeded, DbError> {
    super::transaction(conn, |conn| {
        let mut rng = Rng(plan.seed);
        let tag = format!("{:08x}", rng.next() as u32);
        let (merchants, shops) = seed_merchants(conn, plan, &tag, &mut rng)?;
        let mut tables = Tables::new();
        for n in 0..plan.orders {
            let order = next_order(plan, &tag, n, &shops, &mut rng);
            write_order(conn, &mut tables, plan, &order, n, &mut rng)?;
        }
        tables.flush(conn)?;
        Ok(Seeded {
            merchants,
            shops: shops.len() as u64,
            orders: tables.orders.written,
            order_events: tables.events.written,
            webhook_events: tables.webhooks.written,
            notifications: tables.notifications.written,
            refunds: tables.refunds.written,
        })
    })
}

/// The malls and their shops: returns the merchants written and the (mall, shop) pairs.
fn seed_merchants(
    conn: &mut DbConnection,
    plan: &SeedPlan,
    tag: &str,
    rng: &mut Rng,
) -> Result<(u64, Vec<(String, u64)>), DbError> {
    let start = ts(plan.now - Duration::days(i64::from(plan.days) + 30));
    let mut merchants = Batch::new(
        "INSERT INTO merchants (mall_id, public_ref, komoju_secret_key, komoju_webhook_secret, \
         payment_types, locale, cancel_mode, allowed_hosts, paymethod_codes, enabled, \
         created_at, updated_at)",
    );
    let mut shop_rows = Batch::new(
        "INSERT INTO merchant_shops (mall_id, shop_no, enabled, created_at, updated_at, \
         shop_name, currency)",
    );
    let mut shops = Vec::new();
    for m in 0..plan.malls.max(1) {
        let mall = format!("seed{tag}m{m}");
        let public_ref = q(&format!("ref{tag}{m}"));
        let cancel = if m % 4 == 0 { "'async'" } else { "'sync'" };
        let row = format!(
            "({}, {public_ref}, '', '', 'credit_card,konbini,paypay', 'ja', {cancel}, '', '', \
             TRUE, {start}, {start})",
            q(&mall)
        );
        merchants.push(conn, row)?;
        for shop_no in 1..=(1 + rng.below(3)) {
            let currency = if shop_no == 1 { "'JPY'" } else { "'USD'" };
            let row = format!(
                "({}, {shop_no}, TRUE, {start}, {start}, {}, {currency})",
                q(&mall),
                q(&format!("Shop {shop_no}"))
            );
            shop_rows.push(conn, row)?;
            shops.push((mall.clone(), shop_no));
        }
    }
    merchants.flush(conn)?;
    shop_rows.flush(conn)?;
    Ok((merchants.written, shops))
}

/// The `n`th order: a mall and shop, a state by [`STATE_SHARES`], a time in the period.
fn next_order(plan: &SeedPlan, tag: &str, n: u64, shops: &[(String, u64)], rng: &mut Rng) -> Order {
    // Malls are not equal: a few big ones take most orders (squared uniform pick).
    let pick = rng.below(1 << 16);
    let index = ((pick * pick * shops.len() as u64) >> 32) as usize;
    let (mall, shop_no) = shops[index.min(shops.len().saturating_sub(1))].clone();
    let mut roll = rng.below(1000);
    let state = STATE_SHARES
        .iter()
        .find(|(_, share)| {
            let hit = roll < *share;
            roll = roll.saturating_sub(*share);
            hit
        })
        .map_or(OrderState::Paid, |(s, _)| *s);
    // In time order, as a real history is appended: the `n`th order at its share of
    // the period, with a random offset within its slot. Rows written in this order lie
    // on the pages of their time, so the retention purge meets what a real table holds
    // (the oldest rows together), not rows scattered over every page.
    let period = i64::from(plan.days.max(1)) * 86_400;
    let slot = (n as f64 + rng.below(1000) as f64 / 1000.0) / plan.orders.max(1) as f64;
    let created = plan.now - Duration::seconds(period)
        + Duration::seconds((slot * period as f64) as i64)
        - Duration::seconds(1);
    let recent = plan.now - created <= Duration::days(OPEN_FOR_DAYS);
    let state = match state {
        OrderState::Pending | OrderState::AwaitingPayment if !recent => OrderState::Expired,
        OrderState::Authorized if !recent => OrderState::Paid,
        s => s,
    };
    Order {
        recent,
        id: format!("seed-{tag}-{n:010}"),
        mall,
        shop_no,
        state,
        amount: 500 + 100 * rng.below(300) as i64,
        created,
        payment_type: PAYMENT_TYPES[rng.below(PAYMENT_TYPES.len() as u64) as usize],
    }
}

/// The batches of the per-order tables.
struct Tables {
    orders: Batch,
    events: Batch,
    webhooks: Batch,
    notifications: Batch,
    refunds: Batch,
}

impl Tables {
    fn new() -> Tables {
        Tables {
            orders: Batch::new(
                "INSERT INTO orders (id, mall_id, order_id, shop_no, partner_id, flow, amount, \
                 amount_text, currency, state, return_url, return_noty_url, request_fields, \
                 attempt, komoju_idempotency_key, external_order_num, komoju_session_request, \
                 komoju_session_id, komoju_payment_id, payment_type, captured_amount, \
                 refunded_amount, created_at, updated_at)",
            ),
            events: Batch::new(
                "INSERT INTO order_events (order_pk, source, event, from_state, to_state, \
                 applied, detail, created_at)",
            ),
            webhooks: Batch::new(
                "INSERT INTO webhook_events (mall_id, event_id, event_type, order_pk, outcome, \
                 received_at)",
            ),
            notifications: Batch::new(
                "INSERT INTO notifications (order_pk, kind, dedup_key, target_url, encoding, \
                 fields, state, attempts, next_attempt_at, last_status, delivered_at, \
                 created_at, updated_at, target_host)",
            ),
            refunds: Batch::new(
                "INSERT INTO refunds (id, order_pk, mode, operation, fingerprint, cancel_amount, \
                 cancel_amount_text, tid, idempotency_key, komoju_request, komoju_refund_id, \
                 state, confirmed_at, created_at, updated_at)",
            ),
        }
    }

    fn flush(&mut self, conn: &mut DbConnection) -> Result<(), DbError> {
        // Orders first: the others refer to them.
        self.orders.flush(conn)?;
        self.events.flush(conn)?;
        self.webhooks.flush(conn)?;
        self.notifications.flush(conn)?;
        self.refunds.flush(conn)
    }
}

/// Pushes one order and its dependent rows; flushes the orders' batch before any
/// dependent batch can flush, so foreign keys always find their order.
fn write_order(
    conn: &mut DbConnection,
    t: &mut Tables,
    plan: &SeedPlan,
    o: &Order,
    n: u64,
    rng: &mut Rng,
) -> Result<(), DbError> {
    let updated = o.created + Duration::seconds(30 + rng.below(600) as i64);
    let (payment, captured, refunded) = money_columns(o);
    let flow = if n % 3 == 0 { "'async'" } else { "'sync'" };
    let row = format!(
        "({id}, {mall}, {oid}, {shop}, {pid}, {flow}, {amt}, {amt_text}, 'JPY', {state}, \
         'https://{mall_host}.cafe24.com/return', 'https://{mall_host}.cafe24.com/noty', '{{}}', \
         1, {key}, {ext}, '{{}}', {session}, {payment}, {ptype}, {captured}, {refunded}, \
         {created}, {updated})",
        id = q(&o.id),
        mall = q(&o.mall),
        oid = q(&format!("{}-{n:07}", o.created.format("%Y%m%d"))),
        shop = o.shop_no,
        pid = q("partner"),
        amt = o.amount,
        amt_text = q(&o.amount.to_string()),
        state = q(o.state.as_str()),
        mall_host = o.mall,
        key = q(&format!("key{}", o.id)),
        ext = q(&format!("ext{}", o.id)),
        session = q(&format!("sess{}", o.id)),
        ptype = q(o.payment_type),
        created = ts(o.created),
        updated = ts(updated),
    );
    t.orders.push(conn, row)?;
    if t.orders.rows.is_empty() {
        // The orders just went out: their dependents may follow.
        t.events.flush(conn)?;
        t.webhooks.flush(conn)?;
        t.notifications.flush(conn)?;
        t.refunds.flush(conn)?;
    }
    write_events(t, o, updated, rng);
    write_notification(t, plan, o, n, updated, rng);
    write_refund(t, o, refunded, updated);
    Ok(())
}

/// The order's payment id, captured amount (SQL literals) and refunded amount.
fn money_columns(o: &Order) -> (String, String, i64) {
    let has_payment = !matches!(
        o.state,
        OrderState::Pending | OrderState::AwaitingPayment | OrderState::Expired
    );
    let payment = if has_payment {
        q(&format!("pay{}", o.id))
    } else {
        "NULL".into()
    };
    let captured = if o.state.is_paid() {
        o.amount.to_string()
    } else {
        "NULL".into()
    };
    let refunded = match o.state {
        OrderState::Refunded => o.amount,
        OrderState::PartiallyRefunded => o.amount / 2,
        _ => 0,
    };
    (payment, captured, refunded)
}

/// 2–4 order events, and a webhook event when money moved.
fn write_events(t: &mut Tables, o: &Order, updated: NaiveDateTime, rng: &mut Rng) {
    let id = q(&o.id);
    let to = q(o.state.as_str());
    let mut rows = vec![
        format!(
            "({id}, 'checkout', 'created', '', 'pending', TRUE, '', {})",
            ts(o.created)
        ),
        format!(
            "({id}, 'checkout', 'session_created', 'pending', 'awaiting_payment', TRUE, '', {})",
            ts(o.created + Duration::seconds(1))
        ),
    ];
    if o.state != OrderState::Pending && o.state != OrderState::AwaitingPayment {
        rows.push(format!(
            "({id}, 'webhook', 'payment.updated', 'awaiting_payment', {to}, TRUE, '', {})",
            ts(updated)
        ));
        if rng.below(4) == 0 {
            rows.push(format!(
                "({id}, 'reconciliation', 'payment.checked', {to}, {to}, FALSE, '', {})",
                ts(updated + Duration::seconds(60))
            ));
        }
    }
    t.events.rows.extend(rows);
    if o.state.is_paid() || o.state == OrderState::Authorized {
        t.webhooks.rows.push(format!(
            "({}, {}, 'payment.captured', {id}, 'applied', {})",
            q(&o.mall),
            q(&format!("evt{}", o.id)),
            ts(updated)
        ));
    }
}

/// One notification per order: 95 % delivered, 1 % dead, the rest pending on the orders
/// of the last [`OPEN_FOR_DAYS`] (delivered on older ones): a pending one has failed
/// every attempt since `updated` and waits for its next on the plan's retry schedule
/// ([`retrying`]; dead once the schedule is over).
fn write_notification(
    t: &mut Tables,
    plan: &SeedPlan,
    o: &Order,
    n: u64,
    updated: NaiveDateTime,
    rng: &mut Rng,
) {
    let roll = rng.below(100);
    let dead_after = plan.retry_schedule.len() + 1;
    let (state, attempts, status, delivered, next) = match roll {
        0 => ("'dead'", dead_after, "500", "NULL".to_string(), updated),
        1..=4 if o.recent => match retrying(updated, plan.now, plan.retry_schedule) {
            Some((0, next)) => ("'pending'", 0, "NULL", "NULL".to_string(), next),
            Some((made, next)) => ("'pending'", made, "503", "NULL".to_string(), next),
            None => ("'dead'", dead_after, "503", "NULL".to_string(), updated),
        },
        _ => (
            "'delivered'",
            1,
            "200",
            ts(updated + Duration::seconds(2)),
            updated,
        ),
    };
    let kind = if n % 3 == 0 {
        "'return_noty'"
    } else {
        "'return_notification'"
    };
    t.notifications.rows.push(format!(
        "({id}, {kind}, {dedup}, 'https://{host}.cafe24.com/noty', 'form', '{{}}', {state}, \
         {attempts}, {next}, {status}, {delivered}, {at}, {at}, {host_q})",
        id = q(&o.id),
        dedup = q(&format!("noty{}", o.id)),
        host = o.mall,
        next = ts(next),
        at = ts(updated),
        host_q = q(&format!("{}.cafe24.com", o.mall)),
    ));
}

/// Where a notification enqueued at `enqueued`, whose every attempt has failed, stands at
/// `now` on `schedule` (its first attempt at `enqueued`, each next one a delay of the
/// schedule later): `Some((attempts made, the next attempt's time))`, that time after
/// `now`; `None` once the schedule is over (the row is dead).
fn retrying(
    enqueued: NaiveDateTime,
    now: NaiveDateTime,
    schedule: &[std::time::Duration],
) -> Option<(usize, NaiveDateTime)> {
    if enqueued > now {
        return Some((0, enqueued));
    }
    let mut at = enqueued;
    for (made, delay) in (1..).zip(schedule) {
        at += Duration::from_std(*delay).ok()?;
        if at > now {
            return Some((made, at));
        }
    }
    None
}

/// A succeeded refund for each refunded or partially refunded order.
fn write_refund(t: &mut Tables, o: &Order, refunded: i64, updated: NaiveDateTime) {
    if refunded <= 0 {
        return;
    }
    let at = ts(updated + Duration::hours(24));
    t.refunds.rows.push(format!(
        "({id}, {order}, 'sync', 'refund', {fp}, {amt}, {amt_text}, {tid}, {key}, '{{}}', \
         {refund}, 'succeeded', {at}, {at}, {at})",
        id = q(&format!("rf{}", o.id)),
        order = q(&o.id),
        fp = q(&format!("fp{}", o.id)),
        amt = refunded,
        amt_text = q(&refunded.to_string()),
        tid = q(&format!("pay{}", o.id)),
        key = q(&format!("rk{}", o.id)),
        refund = q(&format!("ref{}", o.id)),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    const SCHEDULE: [Std; 3] = [Std::from_secs(10), Std::from_secs(60), Std::from_secs(300)];

    fn at(seconds: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_796_688_000 + seconds, 0)
            .unwrap_or_default()
            .naive_utc()
    }

    #[test]
    fn a_retrying_notification_waits_for_its_next_step_and_is_never_overdue() {
        let enqueued = at(0);
        // Not yet tried: due when enqueued.
        assert_eq!(retrying(enqueued, at(-5), &SCHEDULE), Some((0, at(0))));
        // Tried at 0, failed: next at 10 s; tried at 10 s too: next at 70 s.
        assert_eq!(retrying(enqueued, at(0), &SCHEDULE), Some((1, at(10))));
        assert_eq!(retrying(enqueued, at(9), &SCHEDULE), Some((1, at(10))));
        assert_eq!(retrying(enqueued, at(10), &SCHEDULE), Some((2, at(70))));
        assert_eq!(retrying(enqueued, at(369), &SCHEDULE), Some((3, at(370))));
        // The fourth attempt, at 370 s, was its last: dead.
        assert_eq!(retrying(enqueued, at(370), &SCHEDULE), None);
        for now in (0..370).step_by(7) {
            let (_, next) = retrying(enqueued, at(now), &SCHEDULE).unwrap_or_default();
            assert!(next > at(now), "due at {next} before or at {now}");
        }
    }
}
