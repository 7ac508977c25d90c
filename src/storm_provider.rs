//! The metrics API's source in the running operator: Storm statistics from the collectors'
//! snapshots, object names and labels from a watch cache of the Storm objects. Nothing here does
//! I/O: the request path only reads memory (DESIGN.md §3).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::ResourceExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use crate::clusters::{ClusterKey, Clusters, Connection};
use crate::crd::worker_pool::StormMetricName;
use crate::crd::{StormTopology, StormWorkerPool};
use crate::metrics_api::provider::{MetricsProvider, ObjectInfo, Sample, ServedResource};
use crate::stats::TopologyMetrics;

/// The samples of `metric` in one topology's metrics: one for topology-wide metrics, one per
/// bolt (labelled `component=<id>`) for the per-component ones. Non-finite values are left out.
pub fn samples_of(metrics: &TopologyMetrics, metric: StormMetricName) -> Vec<Sample> {
    let timestamp = SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(
            u64::try_from(metrics.sample_time.as_second()).unwrap_or(0),
        );
    let window_seconds = Some(i64::from(metrics.window_secs));
    let one = |value: Option<f64>| -> Vec<Sample> {
        value
            .filter(|v| v.is_finite())
            .map(|value| Sample {
                labels: BTreeMap::new(),
                value,
                timestamp,
                window_seconds,
            })
            .into_iter()
            .collect()
    };
    let per_component = |pick: fn(&crate::stats::ComponentMetrics) -> f64| -> Vec<Sample> {
        metrics
            .components
            .iter()
            .filter(|c| pick(c).is_finite())
            .map(|c| Sample {
                labels: BTreeMap::from([("component".to_string(), c.id.clone())]),
                value: pick(c),
                timestamp,
                window_seconds,
            })
            .collect()
    };
    match metric {
        StormMetricName::PendingTuples => one(Some(metrics.pending_tuples)),
        StormMetricName::SpoutPendingRatio => one(metrics.spout_pending_ratio),
        StormMetricName::CompleteLatencyMs => one(Some(metrics.complete_latency_ms)),
        StormMetricName::Capacity => one(Some(metrics.capacity)),
        StormMetricName::AckedPerSecond => one(Some(metrics.acked_per_second)),
        StormMetricName::FailedPerSecond => one(Some(metrics.failed_per_second)),
        StormMetricName::EmittedPerSecond => one(Some(metrics.emitted_per_second)),
        StormMetricName::ComponentCapacity => per_component(|c| c.capacity),
        StormMetricName::ComponentExecuteLatencyMs => per_component(|c| c.execute_latency_ms),
    }
}

/// The Storm name a StormTopology runs under: the one Storm reports for it in status (it
/// changes during a BlueGreen update), else `spec.stormName`, else `metadata.name`.
pub fn storm_name(topology: &StormTopology) -> String {
    topology
        .status
        .as_ref()
        .and_then(|s| s.storm_name.clone())
        .or_else(|| topology.spec.storm_name.clone())
        .unwrap_or_else(|| topology.name_any())
}

fn labels_of<K: ResourceExt>(object: &K) -> ObjectInfo {
    ObjectInfo {
        name: object.name_any(),
        labels: object.labels().clone(),
    }
}

/// Serves the StormTopology and StormWorkerPool objects of the operator's watch caches.
pub struct StormProvider {
    clusters: Arc<Clusters>,
    topologies: Store<StormTopology>,
    pools: Store<StormWorkerPool>,
    ready: Arc<AtomicBool>,
}

impl StormProvider {
    /// A provider over these caches and connections; ready once both caches have listed. Call it
    /// inside a tokio runtime (it spawns the readiness watch).
    pub fn new(
        clusters: Arc<Clusters>,
        topologies: Store<StormTopology>,
        pools: Store<StormWorkerPool>,
    ) -> Self {
        let ready = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ready);
        let (t, p) = (topologies.clone(), pools.clone());
        tokio::spawn(async move {
            if t.wait_until_ready().await.is_ok() && p.wait_until_ready().await.is_ok() {
                flag.store(true, Ordering::Release);
            }
        });
        Self {
            clusters,
            topologies,
            pools,
            ready,
        }
    }

    /// Watches StormTopologies and StormWorkerPools into caches (labels for `labelSelector`, the
    /// topology a pool runs) until `shutdown`, and serves them.
    pub fn watch(
        client: kube::Client,
        clusters: Arc<Clusters>,
        shutdown: CancellationToken,
    ) -> Self {
        let (topologies, topology_writer) = reflector::store();
        let (pools, pool_writer) = reflector::store();
        let topology_events = watcher(
            kube::Api::<StormTopology>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(topology_writer)
        .for_each(|_| async {});
        let pool_events = watcher(
            kube::Api::<StormWorkerPool>::all(client),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(pool_writer)
        .for_each(|_| async {});
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                _ = futures::future::join(topology_events, pool_events) => {}
            }
        });
        Self::new(clusters, topologies, pools)
    }

    fn topology(&self, namespace: &str, name: &str) -> Option<Arc<StormTopology>> {
        self.topologies.get(&ObjectRef::new(name).within(namespace))
    }

    fn metrics_of(&self, namespace: &str, topology: &StormTopology) -> Option<TopologyMetrics> {
        let key = ClusterKey::new(namespace, &topology.spec.cluster_ref.name);
        let snapshot = self.clusters.get(&key)?.snapshot();
        snapshot.topology(&storm_name(topology))?.metrics.clone()
    }
}

impl MetricsProvider for StormProvider {
    fn list_objects(&self, resource: ServedResource, namespace: &str) -> Vec<ObjectInfo> {
        match resource {
            ServedResource::StormTopologies => self
                .topologies
                .state()
                .iter()
                .filter(|t| t.namespace().as_deref() == Some(namespace))
                .map(|t| labels_of(t.as_ref()))
                .collect(),
            ServedResource::StormWorkerPools => self
                .pools
                .state()
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(namespace))
                .map(|p| labels_of(p.as_ref()))
                .collect(),
        }
    }

    fn samples(
        &self,
        resource: ServedResource,
        namespace: &str,
        name: &str,
        metric: StormMetricName,
    ) -> Vec<Sample> {
        let topology = match resource {
            ServedResource::StormTopologies => self.topology(namespace, name),
            ServedResource::StormWorkerPools => self
                .pools
                .get(&ObjectRef::new(name).within(namespace))
                .and_then(|pool| self.topology(namespace, &pool.spec.topology_ref.name)),
        };
        topology
            .and_then(|t| self.metrics_of(namespace, &t))
            .map(|m| samples_of(&m, metric))
            .unwrap_or_default()
    }

    fn is_ready(&self) -> bool {
        // Readiness is "the caches have listed once"; an empty cluster is ready too.
        self.ready.load(Ordering::Acquire)
    }
}

/// `--standalone-nimbus`: the topologies of one Storm cluster served as StormTopology objects of
/// the same names in one namespace, without any CRD or watch.
pub struct StandaloneProvider {
    namespace: String,
    connection: Connection,
}

impl StandaloneProvider {
    /// Serves `connection`'s topologies in `namespace`.
    pub fn new(namespace: impl Into<String>, connection: Connection) -> Self {
        Self {
            namespace: namespace.into(),
            connection,
        }
    }
}

impl MetricsProvider for StandaloneProvider {
    fn list_objects(&self, resource: ServedResource, namespace: &str) -> Vec<ObjectInfo> {
        if resource != ServedResource::StormTopologies || namespace != self.namespace {
            return Vec::new();
        }
        let snapshot = self.connection.snapshot();
        snapshot
            .topologies
            .keys()
            .map(|name| ObjectInfo {
                name: name.clone(),
                labels: BTreeMap::new(),
            })
            .collect()
    }

    fn samples(
        &self,
        resource: ServedResource,
        namespace: &str,
        name: &str,
        metric: StormMetricName,
    ) -> Vec<Sample> {
        if resource != ServedResource::StormTopologies || namespace != self.namespace {
            return Vec::new();
        }
        let snapshot = self.connection.snapshot();
        snapshot
            .topology(name)
            .and_then(|t| t.metrics.as_ref())
            .map(|m| samples_of(m, metric))
            .unwrap_or_default()
    }

    fn is_ready(&self) -> bool {
        self.connection.snapshot().taken_at.is_some()
    }
}
