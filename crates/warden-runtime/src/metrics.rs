//! Prometheus metrics, one registry per server (no global state, so tests can run several).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use warden_store::PoolStats;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) route: String,
    /// A standard method's name, or `other`: a label never holds what a client made up.
    pub(crate) method: &'static str,
    pub(crate) status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) listener: &'static str,
    pub(crate) reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ListenerLabels {
    pub(crate) listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PoolLabels {
    pub(crate) state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SinkLabels {
    pub(crate) sink: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) latency: Family<RouteLabels, Histogram>,
    pub(crate) rejections: Family<ReasonLabels, Counter>,
    pub(crate) connections: Family<ListenerLabels, Gauge>,
    pool: Family<PoolLabels, Gauge>,
    sink_cursors: Family<SinkLabels, Gauge>,
    sink_errors: Family<SinkLabels, Counter>,
    /// Unauthenticated refusals the audit log's sampling left out.
    pub unrecorded_refusals: Counter,
    /// Unauthenticated refusals, recorded or not.
    pub anonymous_refusals: Counter,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("warden");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "edge_rejections",
            "Requests and connections refused at the edge, by listener and reason",
            rejections.clone(),
        );
        let connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_open",
            "Connections open now, by listener",
            connections.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (idle, in_use, max)",
            pool.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Build information; the value is always 1",
            build,
        );
        let sink_cursors = Family::<SinkLabels, Gauge>::default();
        registry.register(
            "audit_sink_cursor",
            "Last audit event delivered, by sink",
            sink_cursors.clone(),
        );
        let sink_errors = Family::<SinkLabels, Counter>::default();
        registry.register(
            "audit_sink_errors",
            "Failed audit deliveries, by sink",
            sink_errors.clone(),
        );
        let unrecorded_refusals = Counter::default();
        registry.register(
            "audit_unrecorded_refusals",
            "Unauthenticated refusals counted here but left out of the audit log by sampling",
            unrecorded_refusals.clone(),
        );
        let anonymous_refusals = Counter::default();
        registry.register(
            "anonymous_refusals",
            "Unauthenticated requests refused (missing, malformed or unknown credentials)",
            anonymous_refusals.clone(),
        );
        Metrics {
            unrecorded_refusals,
            anonymous_refusals,
            registry,
            requests,
            latency,
            rejections,
            connections,
            pool,
            sink_cursors,
            sink_errors,
        }
    }

    /// Counts a request or connection refused at the edge, by listener and reason.
    pub fn reject(&self, listener: &'static str, reason: &'static str) {
        self.rejections
            .get_or_create(&ReasonLabels { listener, reason })
            .inc();
    }

    /// Sets how far an export sink has delivered.
    pub(crate) fn sink_cursor(&self, sink: &str, seq: u64) {
        let value = i64::try_from(seq).unwrap_or(i64::MAX);
        self.sink_cursors
            .get_or_create(&SinkLabels {
                sink: sink.to_owned(),
            })
            .set(value);
    }

    pub(crate) fn sink_error(&self, sink: &str) {
        self.sink_errors
            .get_or_create(&SinkLabels {
                sink: sink.to_owned(),
            })
            .inc();
    }

    /// The exposition text, with pool gauges read now.
    pub fn render(&self, pool: PoolStats) -> String {
        let in_use = i64::from(pool.size.saturating_sub(pool.idle));
        self.pool
            .get_or_create(&PoolLabels { state: "idle" })
            .set(i64::from(pool.idle));
        self.pool
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(in_use);
        self.pool
            .get_or_create(&PoolLabels { state: "max" })
            .set(i64::from(pool.max));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
