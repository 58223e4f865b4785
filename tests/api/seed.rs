//! The seeding tool (issue 21, item 1): a realistic period of traffic written with
//! multi-row statements, on both backends; every table gets its rows and the order
//! states come in the documented shares, open orders and pending notifications only in
//! the last days (docs/benchmarks.md, "Seeding").

use cafe24_komoju::db::schema::{
    merchant_shops, merchants, notifications, order_events, orders, refunds, webhook_events,
};
use cafe24_komoju::db::seed::{seed, SeedPlan, OPEN_FOR_DAYS, STATE_SHARES};
use cafe24_komoju::db::{Database, DbConnection};
use cafe24_komoju::orders::state::OrderState;
use chrono::NaiveDate;
use diesel::prelude::*;

use crate::both_backends;
use crate::helpers::*;

both_backends!(seeding_fills_every_table_in_the_documented_shares);

const ORDERS: u64 = 4_000;

async fn seeding_fills_every_table_in_the_documented_shares(backend: Backend) {
    let db = TestDb::new(&backend);
    let database = Database::connect_sized(&db.url, 2).unwrap_or_else(|e| panic!("db: {e}"));
    database
        .run_migrations()
        .unwrap_or_else(|e| panic!("migrations: {e}"));
    let mut conn = database.get().unwrap_or_else(|e| panic!("connection: {e}"));
    let now = NaiveDate::from_ymd_opt(2026, 12, 6)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .unwrap_or_default();
    let plan = SeedPlan {
        orders: ORDERS,
        malls: 7,
        days: 365,
        now,
        seed: 42,
        retry_schedule: &cafe24_komoju::notifications::SCHEDULE,
    };
    let written = seed(&mut conn, &plan).unwrap_or_else(|e| panic!("seed: {e}"));
    let count =
        |n: Result<i64, diesel::result::Error>| n.unwrap_or_else(|e| panic!("count: {e}")) as u64;
    let c: &mut DbConnection = &mut conn;
    assert_eq!(count(merchants::table.count().get_result(c)), 7);
    assert_eq!(
        count(merchant_shops::table.count().get_result(c)),
        written.shops
    );
    assert!((7..=21).contains(&written.shops), "{written:?}");
    assert_eq!(count(orders::table.count().get_result(c)), ORDERS);
    let events = count(order_events::table.count().get_result(c));
    assert_eq!(events, written.order_events);
    assert!(
        (2 * ORDERS..=4 * ORDERS).contains(&events),
        "{events} order events"
    );
    assert_eq!(count(notifications::table.count().get_result(c)), ORDERS);
    assert_eq!(
        count(webhook_events::table.count().get_result(c)),
        written.webhook_events
    );
    // Every state in its share, within two percentage points; an open state only on the
    // orders of the last OPEN_FOR_DAYS, older ones ended as they end (pending and
    // awaiting payment: expired; authorized: paid).
    let share = |state: OrderState| {
        STATE_SHARES
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0.0, |(_, n)| *n as f64 / 1000.0)
    };
    let recent = OPEN_FOR_DAYS as f64 / 365.0;
    let open = [
        OrderState::Pending,
        OrderState::AwaitingPayment,
        OrderState::Authorized,
    ];
    for (state, _) in STATE_SHARES {
        let expected = match state {
            s if open.contains(&s) => share(s) * recent,
            OrderState::Expired => {
                share(state)
                    + (share(OrderState::Pending) + share(OrderState::AwaitingPayment))
                        * (1.0 - recent)
            }
            OrderState::Paid => share(state) + share(OrderState::Authorized) * (1.0 - recent),
            s => share(s),
        };
        let expected = (expected * ORDERS as f64).round() as u64;
        let n = count(
            orders::table
                .filter(orders::state.eq(state.as_str()))
                .count()
                .get_result(c),
        );
        assert!(
            n.abs_diff(expected) <= ORDERS / 50,
            "{state:?}: {n} orders, about {expected} expected"
        );
    }
    let open_since = now - chrono::Duration::days(OPEN_FOR_DAYS);
    let old_open = count(
        orders::table
            .filter(orders::state.eq_any(open.map(|s| s.as_str())))
            .filter(orders::created_at.lt(open_since))
            .count()
            .get_result(c),
    );
    assert_eq!(old_open, 0, "no order stays open for a year");
    let old_pending = count(
        notifications::table
            .filter(notifications::state.eq("pending"))
            .filter(notifications::created_at.lt(open_since))
            .count()
            .get_result(c),
    );
    assert_eq!(old_pending, 0, "no notification stays pending for a year");
    // A pending notification is being retried: its next attempt is still to come.
    let pending = count(
        notifications::table
            .filter(notifications::state.eq("pending"))
            .count()
            .get_result(c),
    );
    let overdue = count(
        notifications::table
            .filter(notifications::state.eq("pending"))
            .filter(notifications::next_attempt_at.le(now))
            .count()
            .get_result(c),
    );
    assert!(pending > 0, "some notifications are being retried");
    assert_eq!(overdue, 0, "of {pending} pending, none is overdue");
    let delivered = count(
        notifications::table
            .filter(notifications::state.eq("delivered"))
            .count()
            .get_result(c),
    );
    assert!(
        delivered >= ORDERS * 93 / 100,
        "mostly delivered: {delivered}"
    );
    let dead = count(
        notifications::table
            .filter(notifications::state.eq("dead"))
            .count()
            .get_result(c),
    );
    assert!((1..=ORDERS / 40).contains(&dead), "some dead: {dead}");
    // A refund for each refunded or partially refunded order, and orders over the year.
    let refunded = count(
        orders::table
            .filter(orders::state.eq_any(["refunded", "partially_refunded"]))
            .count()
            .get_result(c),
    );
    assert_eq!(count(refunds::table.count().get_result(c)), refunded);
    let oldest: Option<chrono::NaiveDateTime> = orders::table
        .select(diesel::dsl::min(orders::created_at))
        .get_result(c)
        .unwrap_or_else(|e| panic!("oldest: {e}"));
    let oldest = oldest.unwrap_or_default();
    assert!(oldest < now - chrono::Duration::days(330), "{oldest}");
    assert!(oldest >= now - chrono::Duration::days(365), "{oldest}");
}
