//! The service's Prometheus metrics (PROTOCOL.md §13), on one registry per running
//! service: HTTP requests by route pattern (recorded by `actix-web-prom`'s middleware on
//! this registry), and the domain counters, incremented where the facts happen:
//!
//! | family | labels | where |
//! |---|---|---|
//! | `cafe24_komoju_http_requests_total`, `…_http_requests_duration_seconds` | `endpoint` (route pattern, `unmatched`), `method`, `status` | the HTTP middleware |
//! | `cafe24_komoju_requests_shed_total` | – | the request guard, for each request answered 503 because `MAX_IN_FLIGHT` requests were in flight |
//! | `cafe24_komoju_requests_in_flight` | – | the request guard: requests being served now (those `MAX_IN_FLIGHT` bounds) |
//! | `cafe24_komoju_webhooks_total` | `outcome` (`applied`, `ignored`, `duplicate`, `unknown_order`, `unknown_status` (a payment status this build does not know), `bad_signature`, `ping`, `not_handled`, `unreadable`) | [`crate::webhooks::receive`] |
//! | `cafe24_komoju_notifications_total` | `outcome` (`delivered`, `retried`, `dead`) | the outbox worker |
//! | `cafe24_komoju_notifications_pending`, `…_oldest_pending_age_seconds` | – | read from the outbox at each scrape |
//! | `cafe24_komoju_komoju_requests_total`, `…_komoju_request_duration_seconds` | `operation`, `status` (`2xx`, `4xx`, `5xx`, `timeout`, `error`) | the KOMOJU client |
//! | `cafe24_komoju_checkouts_total` | `flow`, `result` (`created` or the §3 error code) | checkout start |
//! | `cafe24_komoju_cancellations_total` | `mode`, `result` | cancellation |
//! | `cafe24_komoju_amount_mismatch_total` | – | the state machine's apply, after its commit |
//! | `cafe24_komoju_duplicate_payments_total` | – | the state machine's apply, after its commit (a second capture for a paid order) |
//! | `cafe24_komoju_cafe24_app_credentials_refused_total` | – | the Cafe24 client, when Cafe24 refuses the app's own client credentials (`CAFE24_CLIENT_SECRET`) |
//! | `cafe24_komoju_retention_purged_total` | `table` (`notifications`, `webhook_events`, `order_events`) | the retention purge |
//! | `cafe24_komoju_duplicate_refunds_total` | `result` (`refunded`, `refund_requested`, `refused`, `retried`) | the duplicate-payment refund pass |
//!
//! No label carries an order id, a mall id, a secret or a URL with a query. Metric
//! handles are cheap clones of the registry's; a clone records into the same registry.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Prefix of every family.
pub const NAMESPACE: &str = "cafe24_komoju";

/// The registry and the domain metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub webhooks: IntCounterVec,
    pub notifications: IntCounterVec,
    pub notifications_pending: IntGauge,
    pub oldest_pending_age: IntGauge,
    komoju: KomojuCalls,
    pub checkouts: IntCounterVec,
    pub cancellations: IntCounterVec,
    pub amount_mismatch: IntCounter,
    pub duplicate_payments: IntCounter,
    pub duplicate_refunds: IntCounterVec,
    pub retention_purged: IntCounterVec,
    /// `requests_shed_total`: requests refused at once because the limit was full.
    pub requests_shed: IntCounter,
    /// `requests_in_flight`: requests admitted and not yet answered.
    pub requests_in_flight: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

/// `metric`, registered (a name registered twice is logged, never a panic).
fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    metric: prometheus::Result<M>,
) -> M {
    let m = metric.unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}"));
    if let Err(e) = registry.register(Box::new(m.clone())) {
        log::error!("metric {name} not registered: {e}");
    }
    m
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let opts = Opts::new(name, help).namespace(NAMESPACE);
    registered(registry, name, IntCounterVec::new(opts, labels))
}

/// A labelled counter family: its name (without the namespace), help and labels.
type Family = (&'static str, &'static str, &'static [&'static str]);

/// `cafe24_komoju_webhooks_total`.
const WEBHOOKS: Family = (
    "webhooks_total",
    "KOMOJU webhook deliveries by outcome",
    &["outcome"],
);

/// `cafe24_komoju_notifications_total`.
const NOTIFICATIONS: Family = (
    "notifications_total",
    "Notification attempts to Cafe24 by outcome",
    &["outcome"],
);

/// `cafe24_komoju_checkouts_total`.
const CHECKOUTS: Family = (
    "checkouts_total",
    "Checkout requests by flow and result",
    &["flow", "result"],
);

/// `cafe24_komoju_cancellations_total`.
const CANCELLATIONS: Family = (
    "cancellations_total",
    "Cancellation requests by mode and result",
    &["mode", "result"],
);

/// `cafe24_komoju_duplicate_refunds_total`.
const DUPLICATE_REFUNDS: Family = (
    "duplicate_refunds_total",
    "Automatic refunds of duplicate payments by result",
    &["result"],
);

/// `cafe24_komoju_retention_purged_total`.
const RETENTION_PURGED: Family = (
    "retention_purged_total",
    "Rows purged past RETENTION_DAYS, by table",
    &["table"],
);

fn family(registry: &Registry, (name, help, labels): Family) -> IntCounterVec {
    counter_vec(registry, name, help, labels)
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let opts = Opts::new(name, help).namespace(NAMESPACE);
    registered(registry, name, IntCounter::with_opts(opts))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let opts = Opts::new(name, help).namespace(NAMESPACE);
    registered(registry, name, IntGauge::with_opts(opts))
}

/// The calls to KOMOJU: `komoju_requests_total` by operation and status class, and
/// `komoju_request_duration_seconds`.
/// The buckets of `…_http_requests_duration_seconds`, in seconds: from 1 ms, since a
/// webhook or a status read is served in about one, to the 10 s past which a request is
/// answered 503 anyway.
pub const HTTP_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone)]
struct KomojuCalls {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl KomojuCalls {
    fn new(registry: &Registry) -> KomojuCalls {
        let name = "komoju_request_duration_seconds";
        let opts = HistogramOpts::new(name, "Latency of calls to KOMOJU, in seconds")
            .namespace(NAMESPACE)
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        KomojuCalls {
            requests: counter_vec(
                registry,
                "komoju_requests_total",
                "Calls to KOMOJU by operation and status class",
                &["operation", "status"],
            ),
            duration: registered(registry, name, HistogramVec::new(opts, &["operation"])),
        }
    }
}

impl Metrics {
    /// A fresh registry with every domain family registered (HTTP families are added by
    /// the middleware built on [`Metrics::registry`]).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        Metrics {
            webhooks: family(&registry, WEBHOOKS),
            notifications: family(&registry, NOTIFICATIONS),
            notifications_pending: gauge(
                &registry,
                "notifications_pending",
                "Notifications not yet delivered (pending)",
            ),
            oldest_pending_age: gauge(
                &registry,
                "notifications_oldest_pending_age_seconds",
                "Age of the oldest pending notification, in seconds (0 when none)",
            ),
            komoju: KomojuCalls::new(&registry),
            checkouts: family(&registry, CHECKOUTS),
            cancellations: family(&registry, CANCELLATIONS),
            amount_mismatch: counter(
                &registry,
                "amount_mismatch_total",
                "Orders that entered amount_mismatch (KOMOJU captured another amount)",
            ),
            duplicate_payments: counter(
                &registry,
                "duplicate_payments_total",
                "Second captures for orders already paid (duplicate payments)",
            ),
            duplicate_refunds: family(&registry, DUPLICATE_REFUNDS),
            retention_purged: family(&registry, RETENTION_PURGED),
            requests_shed: counter(
                &registry,
                "requests_shed_total",
                "Requests answered 503 at once because MAX_IN_FLIGHT requests were in flight",
            ),
            requests_in_flight: gauge(
                &registry,
                "requests_in_flight",
                "Requests being served now (bounded by MAX_IN_FLIGHT)",
            ),
            registry,
        }
    }

    /// The registry (for the HTTP middleware).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one KOMOJU call of `operation` that ended with `status` (`2xx`, `4xx`,
    /// `5xx`, `timeout` or `error`) after `seconds`.
    pub fn komoju_call(&self, operation: &str, status: &str, seconds: f64) {
        self.komoju
            .requests
            .with_label_values(&[operation, status])
            .inc();
        let h: Histogram = self.komoju.duration.with_label_values(&[operation]);
        h.observe(seconds);
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics could not be encoded: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
