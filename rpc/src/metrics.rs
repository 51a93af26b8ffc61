//! The process's Prometheus metrics: what every service measures, in one
//! registry, served as text by `stratus` on `[metrics] listen`.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label pairs.
pub type Labels = Vec<(String, String)>;

type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Every metric stratus keeps.
#[derive(Debug)]
pub struct Metrics {
    /// RPC calls by method and outcome, in seconds.
    pub rpc_calls: Histograms,
    /// Broker connections re-established after a loss.
    pub rpc_reconnects: Counter,
    /// Build steps by step, in seconds.
    pub build_steps: Histograms,
    /// Instances by state (set by the api service from its tables).
    pub instances: Family<Labels, Gauge>,
    /// EC2 API requests by action and status.
    pub api_requests: Family<Labels, Counter>,
}

fn latency() -> Histogram {
    // 0.5 ms to ~65 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

struct Global {
    registry: Registry,
    metrics: &'static Metrics,
}

fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let metrics: &'static Metrics = Box::leak(Box::new(Metrics {
            rpc_calls: Family::new_with_constructor(latency),
            rpc_reconnects: Counter::default(),
            build_steps: Family::new_with_constructor(latency),
            instances: Family::default(),
            api_requests: Family::default(),
        }));
        let mut registry = Registry::with_prefix("stratus");
        registry.register(
            "rpc_call_seconds",
            "RPC calls by method and outcome",
            metrics.rpc_calls.clone(),
        );
        registry.register(
            "rpc_reconnects",
            "Broker connections re-established after a loss",
            metrics.rpc_reconnects.clone(),
        );
        registry.register(
            "build_step_seconds",
            "Instance build steps on this compute host",
            metrics.build_steps.clone(),
        );
        registry.register("instances", "Instances by state", metrics.instances.clone());
        registry.register(
            "api_requests",
            "EC2 API requests by action and status",
            metrics.api_requests.clone(),
        );
        Global { registry, metrics }
    })
}

/// The metrics to update.
pub fn metrics() -> &'static Metrics {
    global().metrics
}

/// The registry in Prometheus's text format.
pub fn encode() -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &global().registry).is_err() {
        out.clear();
    }
    out
}

/// Label pairs from string pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_prometheus_text() {
        metrics()
            .rpc_calls
            .get_or_create(&labels(&[("method", "ping"), ("outcome", "ok")]))
            .observe(0.002);
        metrics().rpc_reconnects.inc();
        let text = encode();
        assert!(text.contains("stratus_rpc_call_seconds_bucket{"), "{text}");
        assert!(text.contains("method=\"ping\""), "{text}");
        assert!(text.contains("stratus_rpc_reconnects_total"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
