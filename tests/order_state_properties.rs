//! Property tests of the pure order state machine (PROTOCOL.md §5, §6.2): random,
//! consistent KOMOJU histories, delivered shuffled and with duplicates and stale events.

use cafe24_komoju::orders::state::{apply, Event, OrderFacts, OrderState, PaymentStatus};
use proptest::prelude::*;

const AMOUNT: i64 = 306_500;

fn order() -> OrderFacts {
    OrderFacts {
        state: OrderState::Pending,
        amount: AMOUNT,
        currency: "PHP".into(),
        session_id: Some("s1".into()),
        payment_id: None,
        payment_type: None,
        captured_amount: None,
        charged: None,
        refunded_amount: 0,
        pending_notice_sent: false,
        manual_capture: false,
    }
}

fn snapshot(
    session: &str,
    id: &str,
    ty: &str,
    status: PaymentStatus,
    amount: i64,
    refunded: i64,
) -> Event {
    Event::Payment {
        session_id: Some(session.into()),
        payment_id: id.into(),
        payment_type: ty.into(),
        status,
        amount,
        currency: "PHP".into(),
        amount_refunded: refunded,
        session_total: None,
    }
}

/// How the order's final payment went (one consistent history per case).
#[derive(Debug, Clone)]
enum Ending {
    /// Card captured (maybe with another amount), then refunds growing to `refunds`.
    CardCaptured {
        mismatch: bool,
        refunds: Vec<i64>,
    },
    /// Card authorized (manual capture) then cancelled.
    CardAuthorizedCancelled,
    /// Konbini code, then paid and maybe refunded.
    KonbiniPaid {
        refunds: Vec<i64>,
    },
    KonbiniExpired,
    KonbiniCancelled,
    /// No payment: the buyer returned to the merchant, or the session expired.
    SessionCancelled,
    SessionExpired,
    /// Cards declined, then the session ended without money.
    SessionFailed,
}

fn ending() -> impl Strategy<Value = Ending> {
    let refunds = proptest::collection::vec(1..=AMOUNT, 0..4).prop_map(|mut v| {
        v.sort_unstable();
        v
    });
    prop_oneof![
        (any::<bool>(), refunds.clone())
            .prop_map(|(mismatch, refunds)| Ending::CardCaptured { mismatch, refunds }),
        Just(Ending::CardAuthorizedCancelled),
        refunds.prop_map(|refunds| Ending::KonbiniPaid { refunds }),
        Just(Ending::KonbiniExpired),
        Just(Ending::KonbiniCancelled),
        Just(Ending::SessionCancelled),
        Just(Ending::SessionExpired),
        Just(Ending::SessionFailed),
    ]
}

/// The events KOMOJU would send for a history, in the order they happened.
fn history(ending: &Ending, failed_tries: usize, stale: bool) -> (Vec<Event>, OrderState) {
    use PaymentStatus::*;
    let mut ev: Vec<Event> = (0..failed_tries)
        .map(|i| snapshot("s1", &format!("f{i}"), "credit_card", Failed, AMOUNT, 0))
        .collect();
    let expected = match ending {
        Ending::CardCaptured { mismatch, refunds } => {
            let captured = if *mismatch { AMOUNT - 1 } else { AMOUNT };
            ev.push(snapshot("s1", "p", "credit_card", Captured, captured, 0));
            for r in refunds {
                let r = (*r).min(captured);
                let status = if r == captured { Refunded } else { Captured };
                ev.push(snapshot("s1", "p", "credit_card", status, captured, r));
            }
            match (mismatch, refunds.last()) {
                (true, _) => OrderState::AmountMismatch,
                (false, None) => OrderState::Paid,
                (false, Some(r)) if *r >= AMOUNT => OrderState::Refunded,
                (false, Some(_)) => OrderState::PartiallyRefunded,
            }
        }
        Ending::CardAuthorizedCancelled => {
            ev.push(snapshot("s1", "p", "credit_card", Authorized, AMOUNT, 0));
            ev.push(snapshot("s1", "p", "credit_card", Cancelled, AMOUNT, 0));
            OrderState::Cancelled
        }
        Ending::KonbiniPaid { refunds } => {
            ev.push(snapshot("s1", "p", "konbini", Authorized, AMOUNT, 0));
            ev.push(snapshot("s1", "p", "konbini", Captured, AMOUNT, 0));
            for r in refunds {
                let status = if *r == AMOUNT { Refunded } else { Captured };
                ev.push(snapshot("s1", "p", "konbini", status, AMOUNT, *r));
            }
            match refunds.last() {
                None => OrderState::Paid,
                Some(r) if *r >= AMOUNT => OrderState::Refunded,
                Some(_) => OrderState::PartiallyRefunded,
            }
        }
        Ending::KonbiniExpired => {
            ev.push(snapshot("s1", "p", "konbini", Authorized, AMOUNT, 0));
            ev.push(snapshot("s1", "p", "konbini", Expired, AMOUNT, 0));
            OrderState::Expired
        }
        Ending::KonbiniCancelled => {
            ev.push(snapshot("s1", "p", "konbini", Authorized, AMOUNT, 0));
            ev.push(snapshot("s1", "p", "konbini", Cancelled, AMOUNT, 0));
            OrderState::Cancelled
        }
        Ending::SessionCancelled => {
            ev.push(Event::SessionCancelled {
                session_id: "s1".into(),
            });
            OrderState::Cancelled
        }
        Ending::SessionExpired => {
            ev.push(Event::SessionExpired {
                session_id: "s1".into(),
            });
            OrderState::Expired
        }
        Ending::SessionFailed => {
            ev.push(snapshot("s1", "declined", "credit_card", Failed, AMOUNT, 0));
            ev.push(Event::SessionFailed {
                session_id: "s1".into(),
            });
            OrderState::Failed
        }
    };
    if stale {
        // Events of an earlier session of the order that hold no money: always ignored
        // (money on an earlier session is `money_on_an_earlier_session_is_never_ignored`).
        ev.push(snapshot("s0", "old", "credit_card", Authorized, AMOUNT, 0));
        ev.push(snapshot("s0", "old", "credit_card", Failed, AMOUNT, 0));
        ev.push(Event::SessionCancelled {
            session_id: "s0".into(),
        });
        ev.push(Event::SessionFailed {
            session_id: "s0".into(),
        });
    }
    (ev, expected)
}

/// The §5 invariants.
fn check_invariants(o: &OrderFacts) -> Result<(), TestCaseError> {
    prop_assert!(o.refunded_amount >= 0);
    match o.state {
        OrderState::Paid | OrderState::PartiallyRefunded | OrderState::Refunded => {
            let captured = o.captured_amount.unwrap_or(-1);
            prop_assert!(
                o.refunded_amount <= captured,
                "refunded {} > captured {captured}",
                o.refunded_amount
            );
            prop_assert!(
                captured <= o.amount,
                "captured {captured} > amount {}",
                o.amount
            );
            prop_assert_eq!(
                o.state == OrderState::Refunded,
                o.refunded_amount == captured
            );
            prop_assert_eq!(
                o.state == OrderState::PartiallyRefunded,
                o.refunded_amount > 0 && o.refunded_amount < captured
            );
        }
        OrderState::AmountMismatch => prop_assert_eq!(o.refunded_amount, 0),
        _ => {
            prop_assert_eq!(o.captured_amount, None);
            prop_assert_eq!(o.refunded_amount, 0);
        }
    }
    Ok(())
}

fn run(events: &[Event]) -> Result<OrderFacts, TestCaseError> {
    let mut o = order();
    let mut paid_before = false;
    for e in events {
        let out = apply(&o, e);
        // An event applied twice is the same as once.
        let twice = apply(&out.facts, e);
        prop_assert!(!twice.changed, "{e:?} changed the order a second time");
        prop_assert!(twice.notices.is_empty());
        prop_assert_eq!(&twice.facts, &out.facts);
        // amount_mismatch never says "paid".
        if out.facts.state == OrderState::AmountMismatch {
            prop_assert!(out.notices.iter().all(|n| !n.is_paid()));
        }
        // Never backwards out of money: once paid, the order stays paid (or refunded).
        if paid_before {
            prop_assert!(
                out.facts.state.is_paid(),
                "{:?} after paid",
                out.facts.state
            );
        }
        paid_before |= out.facts.state.is_paid();
        // Refund totals never shrink.
        prop_assert!(out.facts.refunded_amount >= o.refunded_amount);
        prop_assert_eq!(out.changed, out.facts != o);
        o = out.facts;
        check_invariants(&o)?;
    }
    Ok(o)
}

/// A deterministic shuffle from the seed (Fisher-Yates with an LCG).
fn shuffle(events: &mut [Event], seed: u64) {
    let mut x = seed | 1;
    for i in (1..events.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        events.swap(i, (x >> 33) as usize % (i + 1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// In order, shuffled, with duplicates and stale events: the invariants hold after
    /// every step and every permutation ends in the state the history says.
    #[test]
    fn every_permutation_converges(
        ending in ending(),
        failed_tries in 0usize..3,
        stale in any::<bool>(),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        seed in any::<u64>(),
    ) {
        let (events, expected) = history(&ending, failed_tries, stale);
        let in_order = run(&events)?;
        prop_assert_eq!(in_order.state, expected);
        let mut shuffled = events.clone();
        for d in &dups {
            shuffled.push(events[d.index(events.len())].clone());
        }
        shuffle(&mut shuffled, seed);
        let any_order = run(&shuffled)?;
        prop_assert_eq!(any_order.state, expected);
        prop_assert_eq!(any_order.refunded_amount, in_order.refunded_amount);
        prop_assert_eq!(any_order.captured_amount, in_order.captured_amount);
    }

    /// Notices: a paid order emitted exactly one success over its life, whatever order
    /// the events came in; an order that never got money emitted none.
    #[test]
    fn success_is_told_exactly_once(ending in ending(), seed in any::<u64>()) {
        let (mut events, expected) = history(&ending, 1, true);
        let dup = events.clone();
        events.extend(dup);
        shuffle(&mut events, seed);
        let mut o = order();
        let mut successes = 0;
        for e in &events {
            let out = apply(&o, e);
            successes += out.notices.iter().filter(|n| n.is_paid()).count();
            o = out.facts;
        }
        prop_assert_eq!(successes, usize::from(expected.is_paid()));
    }

    /// Manual capture: Cafe24 hears of success at most once, at the card's authorization
    /// or at the capture, whichever the order saw first; exactly once when it ends paid.
    #[test]
    fn manual_capture_tells_success_at_most_once(ending in ending(), seed in any::<u64>()) {
        let (mut events, expected) = history(&ending, 1, true);
        let dup = events.clone();
        events.extend(dup);
        shuffle(&mut events, seed);
        let mut o = OrderFacts { manual_capture: true, ..order() };
        let mut successes = 0;
        for e in &events {
            let out = apply(&o, e);
            successes += out.notices.iter().filter(|n| n.is_paid()).count();
            o = out.facts;
        }
        prop_assert!(successes <= 1, "{} successes", successes);
        if expected.is_paid() {
            prop_assert_eq!(successes, 1);
        }
    }

    /// Money on an earlier session of the order is never ignored: after any history, a
    /// capture there pays an order that has no money yet (once, with one success), and
    /// is a duplicate payment of an order that has; the order's own facts stay.
    #[test]
    fn money_on_an_earlier_session_is_never_ignored(ending in ending(), seed in any::<u64>()) {
        let (mut events, expected) = history(&ending, 1, true);
        shuffle(&mut events, seed);
        let before = run(&events)?;
        let capture = snapshot("s0", "old", "paypay", PaymentStatus::Captured, AMOUNT, 0);
        let out = apply(&before, &capture);
        if expected.is_paid() {
            prop_assert!(!out.changed);
            prop_assert!(out.notices.is_empty());
            let dup = out.duplicate.clone();
            prop_assert!(dup.is_some_and(|d| d.payment_id == "old" && d.amount == AMOUNT));
        } else if expected == OrderState::AmountMismatch {
            prop_assert!(!out.changed);
        } else {
            prop_assert_eq!(out.facts.state, OrderState::Paid);
            prop_assert_eq!(out.notices.iter().filter(|n| n.is_paid()).count(), 1);
            prop_assert!(out.anomaly);
            let again = apply(&out.facts, &capture);
            prop_assert!(!again.changed && again.notices.is_empty() && again.duplicate.is_none());
        }
    }
}
