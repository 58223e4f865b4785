//! Driving the notification outbox to idle, and reading what it holds.

use super::*;

impl TestApp {
    pub async fn notifications(&self) -> Vec<cafe24_komoju::db::notifications::NotificationRow> {
        self.state
            .db
            .run(|c| cafe24_komoju::db::notifications::list(c, None, 10_000))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Drives the outbox to idle, deterministically: once the service's own worker holds
    /// no lease, a worker of the test's claims and sends every row that is due at the
    /// service clock, until none is left. Whatever Cafe24 has not received by then would
    /// not be sent at this clock time at all, so an absence asserted after it holds
    /// however fast or slow the machine is.
    ///
    /// A row the service's worker is claiming at that moment (locked, not yet committed)
    /// is skipped by the test's claim and shows no lease yet, and one it claimed since is
    /// leased, so not claimable, while its attempt is under way; so the drain ends only
    /// when no row is claimable (due, unleased, and not of a host backing off) and no row
    /// is leased.
    pub async fn drain_outbox(&self) {
        let worker = cafe24_komoju::notifications::Worker::new(
            self.state.clone(),
            self.settings.outbox.clone(),
            std::sync::Arc::new(tokio::sync::Notify::new()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            self.outbox_settled().await;
            while worker.run_once().await.unwrap_or_else(|e| panic!("{e}")) > 0 {}
            self.outbox_settled().await;
            let now = self.clock.now_naive();
            let due = self
                .state
                .db
                .run(move |c| cafe24_komoju::db::notifications::claimable(c, now))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            // A row the service's own worker claimed after the settle above is leased, so
            // not claimable: done only when nothing is due and no attempt is under way.
            let sending = self
                .notifications()
                .await
                .iter()
                .any(|n| n.lease_owner.is_some());
            if due == 0 && !sending {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "outbox never drained");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits until no notification is leased (every attempt under way has been recorded),
    /// so that moving the clock cannot race a worker's bookkeeping.
    pub async fn outbox_settled(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self
            .notifications()
            .await
            .iter()
            .any(|n| n.lease_owner.is_some())
        {
            assert!(std::time::Instant::now() < deadline, "outbox never settled");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn webhook_event_count(&self) -> i64 {
        self.state
            .db
            .run(cafe24_komoju::db::webhook_events::count)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
