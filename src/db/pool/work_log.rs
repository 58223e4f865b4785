//! What a unit of work sent over a PostgreSQL connection (diesel's instrumentation):
//! whether a lost connection can have committed anything, so the unit of work may run
//! again on a new one (see the parent module).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use diesel::connection::{Instrumentation, InstrumentationEvent};

/// What one unit of work sent over a PostgreSQL connection, as diesel's instrumentation
/// reports it: enough to tell whether a lost connection can have committed anything.
#[derive(Debug, Default)]
pub struct WorkLog {
    /// The transaction depth (0: none open).
    depth: AtomicU32,
    /// A `COMMIT` was sent, or a statement other than a read outside a transaction.
    may_have_committed: AtomicBool,
}

impl WorkLog {
    pub(super) fn start(&self) {
        self.depth.store(0, Ordering::SeqCst);
        self.may_have_committed.store(false, Ordering::SeqCst);
    }

    /// True when nothing sent since [`WorkLog::start`] can have been committed.
    pub(super) fn nothing_committed(&self) -> bool {
        !self.may_have_committed.load(Ordering::SeqCst)
    }
}

/// Feeds a [`WorkLog`] from diesel's connection events, and passes every event on to
/// the process's default instrumentation (diesel's `set_default_instrumentation`, made
/// when the connection was opened), which it replaces on the connection: a tool or a
/// test that installs one (the query-plan test records the statements) still sees them.
pub(super) struct WorkTracker {
    pub(super) log: Arc<WorkLog>,
    pub(super) next: Option<Box<dyn Instrumentation>>,
}

impl Instrumentation for WorkTracker {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        let log = &self.log;
        match event {
            InstrumentationEvent::BeginTransaction { depth, .. } => {
                log.depth.store(depth.get(), Ordering::SeqCst)
            }
            InstrumentationEvent::CommitTransaction { depth, .. } => {
                if depth.get() == 1 {
                    log.may_have_committed.store(true, Ordering::SeqCst);
                }
                log.depth.store(depth.get() - 1, Ordering::SeqCst);
            }
            InstrumentationEvent::RollbackTransaction { depth, .. } => {
                log.depth.store(depth.get() - 1, Ordering::SeqCst)
            }
            InstrumentationEvent::StartQuery { query, .. }
                if log.depth.load(Ordering::SeqCst) == 0 && !is_read(query) =>
            {
                log.may_have_committed.store(true, Ordering::SeqCst);
            }
            _ => {}
        }
        if let Some(next) = self.next.as_mut() {
            next.on_connection_event(event);
        }
    }
}

/// True when the statement is a plain read (`SELECT …`), judged from the first bytes
/// of its SQL (the binds are never formatted).
fn is_read(query: &dyn diesel::connection::DebugQuery) -> bool {
    use std::fmt::Write;
    /// Keeps the first bytes written, then refuses more (which stops the formatting).
    struct Head([u8; 8], usize);
    impl Write for Head {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for b in s.bytes() {
                if self.1 == self.0.len() {
                    return Err(std::fmt::Error);
                }
                if self.1 > 0 || !b.is_ascii_whitespace() {
                    self.0[self.1] = b.to_ascii_uppercase();
                    self.1 += 1;
                }
            }
            Ok(())
        }
    }
    let mut head = Head([0; 8], 0);
    let _ = write!(head, "{query}");
    head.0.starts_with(b"SELECT ") || head.0.starts_with(b"SELECT\n")
}
