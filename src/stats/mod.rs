//! Topology metrics derived from Nimbus's aggregates, and the collector that polls them.
//!
//! [`topology_metrics`] is a pure function of one `getTopologyPageInfo(id, "600", false)` answer (which
//! also carries the topology conf) and the time it was sampled. The formulas are Storm's own
//! (`reference/storm-thrift.md` §4):
//!
//! - elapsed `E = min(600, uptime)` where uptime is the longest worker uptime (stats restart with the
//!   workers, e.g. after a rebalance), or the topology uptime when no worker is listed;
//! - per spout `s`: in-flight `= acked_s / E × complete_latency_ms_s / 1000 + failed_s / E × timeout`
//!   (Little's law; `timeout` = `topology.message.timeout.secs`); `pendingTuples` is the sum;
//! - `spoutPendingRatio = pendingTuples / (topology.max.spout.pending × Σ spout tasks)`, only when
//!   that setting is positive and the topology has ackers;
//! - `completeLatencyMs = Σ(latency_s × acked_s) / Σ acked_s` (0 without acks);
//! - `capacity` = max over bolts of Nimbus's bolt capacity (Storm computes it from the 600 s window);
//! - `ackedPerSecond`/`failedPerSecond` = Σ spout acked/failed / E, `emittedPerSecond` = Σ emitted of
//!   all components / E; every rate is 0 when `E` is 0.
//!
//! Components and streams whose id starts with `__` (ackers, system, metrics, event loggers) are left out.
//! A topology without ackers (`topology.acker.executors: 0`) tracks no tuple trees: pending is 0 and the
//! ratio is absent.

pub mod collector;

pub use collector::{
    ClusterSnapshot, CollectorArgs, CollectorConfig, CollectorHandle, TopologySnapshot, poll_once,
    spawn_collector,
};

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::nimbus::TopologyConf;
use crate::nimbus::storm::{ComponentAggregateStats, SpecificAggregateStats, TopologyPageInfo};

/// The stats window the metrics are derived from.
pub const WINDOW_SECS: u32 = 600;

/// Metrics of one topology at one sample time (DESIGN.md §5). Serializes with camelCase names.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyMetrics {
    /// Storm topology id.
    pub topology_id: String,
    /// Topology name.
    pub topology_name: String,
    /// Storm status (`ACTIVE`, ...).
    pub status: String,
    /// When Nimbus was asked (Nimbus's numbers themselves can be up to ~60 s older).
    #[serde(serialize_with = "rfc3339")]
    pub sample_time: Timestamp,
    /// Seconds of data the rates are computed over: `min(600, uptime)`.
    pub window_secs: u32,
    /// Estimated tuples in flight (Little's law).
    pub pending_tuples: f64,
    /// `pendingTuples / (topology.max.spout.pending × spout tasks)`, when that ceiling exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spout_pending_ratio: Option<f64>,
    /// Acked-weighted complete latency over all spouts (ms).
    pub complete_latency_ms: f64,
    /// Highest bolt capacity (1.0 = busy all the time).
    pub capacity: f64,
    /// Tuple trees completed per second.
    pub acked_per_second: f64,
    /// Tuple trees failed per second.
    pub failed_per_second: f64,
    /// Tuples emitted per second by all components.
    pub emitted_per_second: f64,
    /// Per-bolt numbers.
    pub components: Vec<ComponentMetrics>,
    /// Executors and tasks of every spout and bolt (system components left out).
    pub parallelism: std::collections::BTreeMap<String, Parallelism>,
}

/// Per-bolt metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentMetrics {
    /// Component id.
    pub id: String,
    /// Bolt capacity from Nimbus (600 s window).
    pub capacity: f64,
    /// Execute latency (ms) in the window.
    pub execute_latency_ms: f64,
}

/// Executors and tasks of one spout or bolt (Storm runs at most one executor per task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parallelism {
    /// Executors (threads) running the component.
    pub executors: i32,
    /// Tasks of the component, fixed at submission.
    pub tasks: i32,
}

fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

fn is_system(id: &str) -> bool {
    id.starts_with("__")
}

fn f(v: Option<thrift::OrderedFloat<f64>>) -> f64 {
    v.map(|x| x.0).filter(|x| x.is_finite()).unwrap_or(0.0)
}

struct Counts {
    emitted: f64,
    acked: f64,
    failed: f64,
    tasks: f64,
}

fn counts(c: &ComponentAggregateStats) -> Counts {
    let common = c.common_stats.as_ref();
    let n = |v: Option<i64>| v.unwrap_or(0).max(0) as f64;
    Counts {
        emitted: n(common.and_then(|c| c.emitted)),
        acked: n(common.and_then(|c| c.acked)),
        failed: n(common.and_then(|c| c.failed)),
        tasks: common.and_then(|c| c.num_tasks).unwrap_or(0).max(0) as f64,
    }
}

/// The seconds of data behind the 600 s counters: `min(600, uptime)`, where uptime is the longest worker
/// uptime (all stats restart with their worker) or the topology uptime if no worker is listed.
pub fn elapsed_secs(page: &TopologyPageInfo) -> u32 {
    let topo = page.uptime_secs.unwrap_or(0).max(0);
    let worker = page
        .workers
        .as_ref()
        .and_then(|ws| ws.iter().filter_map(|w| w.uptime_secs).max());
    let uptime = worker.unwrap_or(topo).max(0);
    (uptime as u32).min(WINDOW_SECS)
}

/// Derives [`TopologyMetrics`] from a `"600"` page info; the conf is read from
/// `page.topology_conf` (an unparsable or missing conf means Storm's defaults).
pub fn topology_metrics(page: &TopologyPageInfo, sample_time: Timestamp) -> TopologyMetrics {
    let conf = page
        .topology_conf
        .as_deref()
        .and_then(|c| TopologyConf::parse(c).ok())
        .unwrap_or_default();
    topology_metrics_with_conf(page, &conf, sample_time)
}

/// Like [`topology_metrics`] with an explicitly given conf.
pub fn topology_metrics_with_conf(
    page: &TopologyPageInfo,
    conf: &TopologyConf,
    sample_time: Timestamp,
) -> TopologyMetrics {
    let elapsed = elapsed_secs(page);
    let rate = |count: f64| {
        if elapsed == 0 {
            0.0
        } else {
            count / f64::from(elapsed)
        }
    };
    let has_ackers = conf.acker_executors().is_none_or(|n| n > 0.0);
    let timeout = conf.message_timeout_secs();

    let mut parallelism = std::collections::BTreeMap::new();
    for (id, c) in page
        .id_to_spout_agg_stats
        .iter()
        .flatten()
        .chain(page.id_to_bolt_agg_stats.iter().flatten())
    {
        if let Some(common) = c.common_stats.as_ref().filter(|_| !is_system(id)) {
            parallelism.insert(
                id.clone(),
                Parallelism {
                    executors: common.num_executors.unwrap_or(0),
                    tasks: common.num_tasks.unwrap_or(0),
                },
            );
        }
    }
    let mut pending = 0.0;
    let (mut acked, mut failed, mut emitted, mut spout_tasks) = (0.0, 0.0, 0.0, 0.0);
    let mut latency_weighted = 0.0;
    for (id, s) in page.id_to_spout_agg_stats.iter().flatten() {
        if is_system(id) {
            continue;
        }
        let c = counts(s);
        let latency = match &s.specific_stats {
            Some(SpecificAggregateStats::Spout(sp)) => f(sp.complete_latency_ms),
            _ => 0.0,
        };
        pending += rate(c.acked) * latency / 1000.0 + rate(c.failed) * timeout;
        latency_weighted += latency * c.acked;
        acked += c.acked;
        failed += c.failed;
        emitted += c.emitted;
        spout_tasks += c.tasks;
    }

    let mut components = Vec::new();
    let mut capacity: f64 = 0.0;
    for (id, b) in page.id_to_bolt_agg_stats.iter().flatten() {
        if is_system(id) {
            continue;
        }
        emitted += counts(b).emitted;
        let (cap, exec) = match &b.specific_stats {
            Some(SpecificAggregateStats::Bolt(bs)) => (f(bs.capacity), f(bs.execute_latency_ms)),
            _ => (0.0, 0.0),
        };
        capacity = capacity.max(cap);
        components.push(ComponentMetrics {
            id: id.clone(),
            capacity: cap,
            execute_latency_ms: exec,
        });
    }

    if !has_ackers {
        pending = 0.0;
    }
    let spout_pending_ratio = match conf.max_spout_pending() {
        Some(max) if has_ackers && spout_tasks > 0.0 => Some(pending / (max * spout_tasks)),
        _ => None,
    };
    TopologyMetrics {
        topology_id: page.id.clone(),
        topology_name: page.name.clone().unwrap_or_default(),
        status: page.status.clone().unwrap_or_default(),
        sample_time,
        window_secs: elapsed,
        pending_tuples: pending,
        spout_pending_ratio,
        complete_latency_ms: if acked > 0.0 {
            latency_weighted / acked
        } else {
            0.0
        },
        capacity,
        acked_per_second: rate(acked),
        failed_per_second: rate(failed),
        emitted_per_second: rate(emitted),
        components,
        parallelism,
    }
}
