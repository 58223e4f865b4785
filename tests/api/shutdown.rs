//! Graceful shutdown (issue 18, item 12), with the service as a child process: on
//! SIGTERM it stops accepting, finishes the requests it accepted, gives back the outbox
//! rows it holds so another instance sends them at once (not after the lease), and
//! exits 0, all within `SHUTDOWN_TIMEOUT_SECS`.

use std::time::{Duration, Instant};

use crate::both_backends;
use crate::helpers::*;
use crate::processes::Harness;

const WAIT: Duration = Duration::from_secs(10);

both_backends!(sigterm_finishes_what_was_accepted_gives_back_leases_and_exits_0);

async fn sigterm_finishes_what_was_accepted_gives_back_leases_and_exits_0(backend: Backend) {
    let h = Harness::new(&backend).await;
    let settings = [
        ("SHUTDOWN_TIMEOUT_SECS", "3"),
        ("OUTBOX_LEASE_SECS", "30"),
        ("NOTIFY_TIMEOUT_SECS", "20"),
        ("KOMOJU_TIMEOUT_SECS", "10"),
    ];
    let mut a = h.start("a", &settings).await;
    // A notification in flight at A: Cafe24 takes a minute to answer.
    let body = h.paid_order(&a.address, "20261206-0000900").await;
    h.cafe24.hang(Some(Duration::from_secs(60)));
    assert_eq!(h.webhook(&a.address, &body).await, 200);
    assert_eq!(h.cafe24.wait_for(1, WAIT).await.len(), 1);
    // A checkout accepted before the signal, whose KOMOJU call takes 1.5 s.
    h.sandbox.fail_next(
        1,
        cafe24_komoju_sandbox::Fault::DelayAfterProcessing(Duration::from_millis(1500)),
    );
    let slow = tokio::spawn({
        let request = h
            .client
            .post(format!("{}/api/asynchronous-checkout/checkout", a.address))
            .form(&async_fields("20261206-0000901", "3065", "JPY", &h.cafe24));
        async move { request.send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    a.signal_term();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = a.address.trim_start_matches("http://").to_owned();
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "still accepting connections after SIGTERM"
    );
    assert_eq!(
        slow.await.ok().and_then(Result::ok),
        Some(200),
        "the accepted checkout was not finished"
    );
    let status = a.wait_exit(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    assert!(
        took < Duration::from_secs(6),
        "exited {took:?} after SIGTERM"
    );
    // The row A was sending is pending and no longer leased…
    let rows = h.notifications().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].state.as_str(), "pending", "{rows:?}");
    assert!(rows[0].lease_owner.is_none(), "still leased: {rows:?}");
    // …so another instance delivers it at once, not after the 30 s lease.
    h.cafe24.hang(None);
    let _b = h.start("b", &settings).await;
    let started = Instant::now();
    h.all_delivered().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "delivered {:?} after the other instance started",
        started.elapsed()
    );
    assert_eq!(h.cafe24.received().len(), 2);
}
