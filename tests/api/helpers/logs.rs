//! Every log line of this test binary (for tests that check what never reaches a log).

/// Every log record of this test binary, for tests that check what never reaches a log.
static LOG_LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

struct CapturingLogger(env_logger::Logger);

impl log::Log for CapturingLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        if let Ok(mut lines) = LOG_LINES.lock() {
            if lines.len() < 500_000 {
                lines.push(line);
            }
        }
        if self.0.matches(record) {
            self.0.log(record);
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger once (records at debug and above are kept; what is printed
/// follows `RUST_LOG`).
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let inner = env_logger::builder().is_test(true).build();
        if log::set_boxed_logger(Box::new(CapturingLogger(inner))).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
}

/// Every log line recorded so far by this test binary.
pub fn log_lines() -> Vec<String> {
    LOG_LINES.lock().map(|l| l.clone()).unwrap_or_default()
}
