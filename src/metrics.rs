//! The process's Prometheus metrics: one registry (prefix `storm_controller`), one struct that owns every family.
//!
//! Later parts add their metrics here as one more field of [`Metrics`], registered in [`Metrics::new`] through a
//! `register(&mut Registry) -> Self` constructor like [`ReconcileMetrics::register`]. Labels are bounded sets
//! (controller names, error categories), never object names.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Prefix of every metric name this process exports.
pub const PREFIX: &str = "storm_controller";

/// The content type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the reconcile duration histogram buckets: 10 ms to about 82 s.
const RECONCILE_BUCKETS: [f64; 12] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 81.92,
];

/// Version and build of this binary, as exported by `storm_controller_build_info` and logged at startup.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildInfo {
    /// Crate version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Git commit, from the build-time env var `STORM_CONTROLLER_GIT_SHA`; `unknown` when it was not set.
    pub git_sha: String,
}

impl BuildInfo {
    /// The build info compiled into this binary.
    pub fn current() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            git_sha: option_env!("STORM_CONTROLLER_GIT_SHA")
                .filter(|sha| !sha.is_empty())
                .unwrap_or("unknown")
                .to_owned(),
        }
    }
}

/// Labels of the reconcile counter and duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// Controller name, e.g. `stormcluster`.
    pub controller: String,
}

/// Labels of the reconcile error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Controller name, e.g. `stormcluster`.
    pub controller: String,
    /// Error category: the error variant's name (STYLE.md §9), never free text.
    pub error: String,
}

/// Every metric of the process, behind one registry. Build once, share as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconcile counters and durations of the controllers.
    pub reconcile: ReconcileMetrics,
    /// Requests, latency, sample freshness and authorization cache of the custom metrics API.
    pub api: crate::metrics_api::ApiMetrics,
    /// Age and failures of each Storm cluster's statistics.
    pub nimbus: NimbusMetrics,
}

/// Labels of per-cluster series: `namespace/name` of the StormCluster (bounded by the number of
/// clusters, not of topologies).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// `namespace/name`.
    pub cluster: String,
}

/// `storm_controller_nimbus_snapshot_age_seconds{cluster}` (how old the data served is; absent
/// before the first successful poll) and `storm_controller_nimbus_poll_failures{cluster}`
/// (failed polls in a row).
#[derive(Clone, Debug, Default)]
pub struct NimbusMetrics {
    age: Family<ClusterLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    failures: Family<ClusterLabels, Gauge>,
}

impl NimbusMetrics {
    /// Registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "nimbus_snapshot_age_seconds",
            "Age of the latest Nimbus statistics per Storm cluster",
            metrics.age.clone(),
        );
        registry.register(
            "nimbus_poll_failures",
            "Failed Nimbus polls in a row per Storm cluster",
            metrics.failures.clone(),
        );
        metrics
    }

    /// Sets the series from the clusters' snapshots at `now`; clusters that are gone disappear.
    pub fn observe(
        &self,
        snapshots: &[(
            crate::clusters::ClusterKey,
            std::sync::Arc<crate::stats::ClusterSnapshot>,
        )],
        now: k8s_openapi::jiff::Timestamp,
    ) {
        self.age.clear();
        self.failures.clear();
        for (key, snapshot) in snapshots {
            let labels = ClusterLabels {
                cluster: key.to_string(),
            };
            if let Some(age) = snapshot.age(now) {
                self.age.get_or_create(&labels).set(age.as_secs_f64());
            }
            self.failures
                .get_or_create(&labels)
                .set(i64::from(snapshot.consecutive_failures));
        }
    }
}

impl Metrics {
    /// A registry with prefix `storm_controller` holding `build_info` (value 1, labelled with `build`) and every
    /// metric family of the process.
    pub fn new(build: &BuildInfo) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let build_info = Family::<BuildInfo, Gauge>::default();
        build_info.get_or_create(build).set(1);
        registry.register(
            "build_info",
            "Build information of the running storm-controller; the value is always 1",
            build_info,
        );
        let reconcile = ReconcileMetrics::register(&mut registry);
        let api = crate::metrics_api::ApiMetrics::new();
        api.register(&mut registry);
        let nimbus = NimbusMetrics::register(&mut registry);
        Self {
            registry,
            reconcile,
            api,
            nimbus,
        }
    }

    /// All metrics in OpenMetrics text format (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `storm_controller_reconcile_{total,errors_total,duration_seconds}`, labelled by controller (and error
/// category for errors).
///
/// Use: `let _timer = metrics.reconcile.start("stormcluster");` at the top of a reconcile (counts it, and
/// records its duration when `_timer` drops); on error, `metrics.reconcile.failed("stormcluster", err.category())`.
#[derive(Clone, Debug)]
pub struct ReconcileMetrics {
    runs: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
}

impl ReconcileMetrics {
    /// Registers the three reconcile families in `registry` (whose prefix is prepended to their names).
    pub fn register(registry: &mut Registry) -> Self {
        let runs = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration: Family<ControllerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS));
        registry.register("reconcile", "Reconciliations started", runs.clone());
        registry.register(
            "reconcile_errors",
            "Reconciliations that ended in an error, by error category",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciliations in seconds",
            duration.clone(),
        );
        Self {
            runs,
            errors,
            duration,
        }
    }

    /// Creates the zero-valued series of `controller`, so that they are exported (and rates start from zero)
    /// before its first reconcile. Families without any series are not exported at all.
    pub fn declare(&self, controller: &str) {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        drop(self.runs.get_or_create(&labels));
        drop(self.duration.get_or_create(&labels));
    }

    /// Counts a reconcile of `controller` and returns a timer that records its duration when dropped.
    pub fn start(&self, controller: &str) -> ReconcileTimer {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        self.runs.get_or_create(&labels).inc();
        ReconcileTimer {
            histogram: self.duration.get_or_create(&labels).clone(),
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile of `controller` with the error's category (a variant name, never free text).
    pub fn failed(&self, controller: &str, category: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                error: category.to_owned(),
            })
            .inc();
    }
}

/// Records the time since [`ReconcileMetrics::start`] in `storm_controller_reconcile_duration_seconds` on drop.
#[derive(Debug)]
#[must_use = "the duration is recorded when the timer is dropped; bind it to a variable such as `_timer`"]
pub struct ReconcileTimer {
    histogram: Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_lines(text: &str, name: &str) -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with(name))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn build_info_is_one_with_version_labels() {
        let build = BuildInfo {
            version: "9.8.7".into(),
            git_sha: "abc123".into(),
        };
        let text = Metrics::new(&build).encode().unwrap();
        assert_eq!(
            sample_lines(&text, "storm_controller_build_info"),
            [r#"storm_controller_build_info{version="9.8.7",git_sha="abc123"} 1"#]
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn reconcile_counters_and_histogram_are_labelled_by_controller_and_category() {
        let metrics = Metrics::new(&BuildInfo::current());
        for _ in 0..3 {
            let _timer = metrics.reconcile.start("stormcluster");
        }
        drop(metrics.reconcile.start("stormtopology"));
        metrics
            .reconcile
            .failed("stormcluster", "NimbusUnreachable");
        let text = metrics.encode().unwrap();

        let mut runs = sample_lines(&text, "storm_controller_reconcile_total");
        runs.sort();
        assert_eq!(
            runs,
            [
                r#"storm_controller_reconcile_total{controller="stormcluster"} 3"#,
                r#"storm_controller_reconcile_total{controller="stormtopology"} 1"#,
            ]
        );
        assert_eq!(
            sample_lines(&text, "storm_controller_reconcile_errors_total"),
            [
                r#"storm_controller_reconcile_errors_total{controller="stormcluster",error="NimbusUnreachable"} 1"#
            ]
        );
        assert!(
            text.contains(
                r#"storm_controller_reconcile_duration_seconds_count{controller="stormcluster"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"storm_controller_reconcile_duration_seconds_bucket{le="+Inf",controller="stormtopology"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn declared_controllers_are_exported_at_zero() {
        let metrics = Metrics::new(&BuildInfo::current());
        let before = metrics.encode().unwrap();
        assert!(
            !before.contains("storm_controller_reconcile_total"),
            "{before}"
        );
        metrics.reconcile.declare("stormworkerpool");
        let text = metrics.encode().unwrap();
        for line in [
            "# TYPE storm_controller_reconcile counter",
            r#"storm_controller_reconcile_total{controller="stormworkerpool"} 0"#,
            "# TYPE storm_controller_reconcile_duration_seconds histogram",
            r#"storm_controller_reconcile_duration_seconds_count{controller="stormworkerpool"} 0"#,
            "# TYPE storm_controller_build_info gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
