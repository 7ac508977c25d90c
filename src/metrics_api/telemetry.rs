//! Prometheus metrics of the metrics API, for the admin port: requests by code and path kind, a
//! latency histogram, the age of served samples, and authorization cache hits and misses.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// What kind of path a request was for (bounded label values, never object names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum PathKind {
    /// `/apis`, `/apis/<group>`, `/apis/<group>/<version>`.
    Discovery,
    /// Metric reads.
    Metric,
    /// `/openapi/...`.
    Openapi,
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// Anything else.
    Other,
}

/// Labels of the request counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP status code.
    pub code: u16,
    /// Path kind.
    pub kind: PathKind,
}

/// Labels of the latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    /// Path kind.
    pub kind: PathKind,
}

type HistogramFamily = Family<KindLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// The metrics; cheap to clone handles, register once.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    freshness: Histogram,
    pub(crate) authz_hits: Counter,
    pub(crate) authz_misses: Counter,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics::new()
    }
}

impl ApiMetrics {
    /// New, unregistered metrics.
    pub fn new() -> ApiMetrics {
        ApiMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            freshness: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            authz_hits: Counter::default(),
            authz_misses: Counter::default(),
        }
    }

    /// Registers every metric in `registry` (use a sub-registry for a prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "metrics_api_requests",
            "Requests to the custom metrics API by status code and path kind",
            self.requests.clone(),
        );
        registry.register(
            "metrics_api_request_duration_seconds",
            "Time to answer a custom metrics API request, by path kind",
            self.duration.clone(),
        );
        registry.register(
            "metrics_apiserver_metric_freshness_seconds",
            "Age of the samples served (now - sample time)",
            self.freshness.clone(),
        );
        registry.register(
            "metrics_api_authorization_cache_hits",
            "Authorization decisions answered from the cache",
            self.authz_hits.clone(),
        );
        registry.register(
            "metrics_api_authorization_cache_misses",
            "Authorization decisions that needed a SubjectAccessReview",
            self.authz_misses.clone(),
        );
    }

    pub(crate) fn observe_request(&self, kind: PathKind, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { code, kind })
            .inc();
        self.duration
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }

    pub(crate) fn observe_freshness(&self, age_seconds: f64) {
        self.freshness.observe(age_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        let m = ApiMetrics::new();
        let mut r = Registry::with_prefix("storm_controller");
        m.register(&mut r);
        m.observe_request(PathKind::Metric, 200, 0.001);
        m.observe_freshness(3.0);
        m.authz_hits.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(
            out.contains(
                r#"storm_controller_metrics_api_requests_total{code="200",kind="Metric"} 1"#
            ),
            "{out}"
        );
        assert!(out.contains("storm_controller_metrics_api_authorization_cache_hits_total 1"));
        assert!(
            out.contains("storm_controller_metrics_apiserver_metric_freshness_seconds_count 1")
        );
    }
}
