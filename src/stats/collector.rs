//! The per-cluster collector: polls Nimbus on an interval and publishes immutable snapshots.
//!
//! One poll costs exactly one `getClusterInfo` plus one `getTopologyPageInfo(id, "600", false)` per live
//! (non-KILLED) topology, run with bounded concurrency, whatever the number of readers. Readers call
//! [`CollectorHandle::snapshot`], which clones an `Arc` and never does I/O. A failed poll keeps the
//! previous data and records the error; [`ClusterSnapshot::age`] tells how old the data is.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{TopologyMetrics, topology_metrics};
use crate::nimbus::storm::{ClusterSummary, TopologyPageInfo, TopologySummary};
use crate::nimbus::{Nimbus, WINDOW_10_MIN};

/// Collector settings.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Time between polls (`--nimbus-poll-interval`, default 30 s; workers push stats every 60 s).
    pub poll_interval: Duration,
    /// Page-info calls in flight at once.
    pub concurrency: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(30),
            concurrency: 8,
        }
    }
}

/// Collector flags for the `run` command (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone)]
pub struct CollectorArgs {
    /// How often to poll Nimbus for stats (workers push them every 60 s), e.g. `30s`.
    #[arg(long = "nimbus-poll-interval", env = "STORM_CONTROLLER_NIMBUS_POLL_INTERVAL", default_value = "30s", value_parser = crate::nimbus::cli::parse_duration)]
    pub poll_interval: Duration,
    /// Page-info calls in flight at once during a poll.
    #[arg(
        long = "nimbus-poll-concurrency",
        env = "STORM_CONTROLLER_NIMBUS_POLL_CONCURRENCY",
        default_value_t = 8
    )]
    pub concurrency: usize,
}

impl From<&CollectorArgs> for CollectorConfig {
    fn from(a: &CollectorArgs) -> Self {
        Self {
            poll_interval: a.poll_interval,
            concurrency: a.concurrency.max(1),
        }
    }
}

/// What the collector knows about one topology.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologySnapshot {
    /// The summary from the last successful cluster call.
    pub summary: TopologySummary,
    /// The latest metrics; kept from an earlier poll if the last page-info call failed.
    pub metrics: Option<TopologyMetrics>,
    /// Why the last page-info call failed, if it did.
    pub error: Option<String>,
}

/// An immutable view of one Storm cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSnapshot {
    /// When the last successful poll started; `None` before the first one.
    pub taken_at: Option<Timestamp>,
    /// When the last poll (successful or not) started.
    pub attempted_at: Option<Timestamp>,
    /// The error of the last poll, if it failed.
    pub error: Option<String>,
    /// Failed polls in a row.
    pub consecutive_failures: u32,
    /// The last cluster summary (supervisors, Nimbus nodes, topologies).
    pub cluster: Option<ClusterSummary>,
    /// Topologies by name.
    pub topologies: BTreeMap<String, TopologySnapshot>,
    /// Nimbus calls the last poll made.
    pub calls_last_poll: usize,
}

impl ClusterSnapshot {
    /// How old the data is at `now` (`None` before the first successful poll).
    pub fn age(&self, now: Timestamp) -> Option<Duration> {
        let t = self.taken_at?;
        let d: SignedDuration = now.duration_since(t);
        Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
    }

    /// One topology by name.
    pub fn topology(&self, name: &str) -> Option<&TopologySnapshot> {
        self.topologies.get(name)
    }
}

type PageFuture<'a> = std::pin::Pin<
    Box<dyn Future<Output = (String, crate::nimbus::Result<TopologyPageInfo>)> + Send + 'a>,
>;

/// Runs one poll against `nimbus`, starting from `previous`, and returns the next snapshot.
pub async fn poll_once(
    nimbus: &dyn Nimbus,
    config: &CollectorConfig,
    previous: &ClusterSnapshot,
    now: Timestamp,
) -> ClusterSnapshot {
    let cluster = match nimbus.cluster_summary().await {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "Nimbus poll failed; keeping the last snapshot");
            return ClusterSnapshot {
                attempted_at: Some(now),
                error: Some(e.to_string()),
                consecutive_failures: previous.consecutive_failures + 1,
                calls_last_poll: 1,
                ..previous.clone()
            };
        }
    };
    let live: Vec<&TopologySummary> = cluster
        .topologies
        .iter()
        .filter(|t| t.status != "KILLED")
        .collect();
    let jobs: Vec<(String, String)> = live
        .iter()
        .map(|t| (t.name.clone(), t.id.clone()))
        .collect();
    let fetches: Vec<PageFuture<'_>> = jobs
        .into_iter()
        .map(|(name, id)| -> PageFuture<'_> {
            Box::pin(async move {
                let page = nimbus.topology_page_info(&id, WINDOW_10_MIN).await;
                (name, page)
            })
        })
        .collect();
    let pages: Vec<_> = futures::stream::iter(fetches)
        .buffer_unordered(config.concurrency.max(1))
        .collect()
        .await;
    let mut pages: BTreeMap<String, _> = pages.into_iter().collect();
    let calls = 1 + live.len();

    let topologies = cluster
        .topologies
        .iter()
        .map(|t| {
            let prev = previous
                .topologies
                .get(&t.name)
                .filter(|p| p.summary.id == t.id)
                .and_then(|p| p.metrics.clone());
            let (metrics, error) = match pages.remove(&t.name) {
                Some(Ok(page)) => (Some(topology_metrics(&page, now)), None),
                Some(Err(e)) => (prev, Some(e.to_string())),
                None => (None, None),
            };
            (
                t.name.clone(),
                TopologySnapshot {
                    summary: t.clone(),
                    metrics,
                    error,
                },
            )
        })
        .collect();
    debug!(
        calls,
        topologies = cluster.topologies.len(),
        "Nimbus poll done"
    );
    ClusterSnapshot {
        taken_at: Some(now),
        attempted_at: Some(now),
        error: None,
        consecutive_failures: 0,
        cluster: Some(cluster),
        topologies,
        calls_last_poll: calls,
    }
}

/// Reader side of a running collector; cheap to clone.
#[derive(Debug, Clone)]
pub struct CollectorHandle {
    rx: watch::Receiver<Arc<ClusterSnapshot>>,
}

impl CollectorHandle {
    /// The latest snapshot, without I/O.
    pub fn snapshot(&self) -> Arc<ClusterSnapshot> {
        self.rx.borrow().clone()
    }

    /// Waits until a new snapshot is published (returns `false` once the collector stopped).
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

/// Starts the collector task: polls immediately, then every `poll_interval`, until `shutdown` resolves.
pub fn spawn_collector(
    nimbus: Arc<dyn Nimbus>,
    config: CollectorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (CollectorHandle, JoinHandle<()>) {
    let (tx, rx) = watch::channel(Arc::new(ClusterSnapshot::default()));
    let task = tokio::spawn(async move {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(config.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticker.tick() => {}
            }
            let previous = tx.borrow().clone();
            let next = tokio::select! {
                _ = &mut shutdown => break,
                next = poll_once(nimbus.as_ref(), &config, &previous, Timestamp::now()) => next,
            };
            tx.send_replace(Arc::new(next));
        }
        debug!("Nimbus collector stopped");
    });
    (CollectorHandle { rx }, task)
}
