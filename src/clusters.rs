//! The Storm clusters this process talks to: one Nimbus client and one stats collector per
//! cluster, shared by the reconcilers and the metrics API, so that Nimbus load does not grow
//! with the number of readers (DESIGN.md §3, §8).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::nimbus::{Nimbus, NimbusConfig, NimbusError, ThriftNimbus};
use crate::stats::{ClusterSnapshot, CollectorConfig, CollectorHandle, spawn_collector};

/// Names a Storm cluster: the namespace and name of its StormCluster object (or, in standalone
/// mode, the namespace the topologies are served in and a fixed name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterKey {
    /// Namespace of the StormCluster.
    pub namespace: String,
    /// Name of the StormCluster.
    pub name: String,
}

impl ClusterKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How to reach a cluster's Nimbus. A change of any field replaces the client and collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NimbusTarget {
    /// `host:port` seeds.
    pub seeds: Vec<String>,
    /// Per-call deadline.
    pub call_timeout: Duration,
    /// Largest response accepted.
    pub max_response_bytes: usize,
}

impl NimbusTarget {
    /// A target with default limits (10 s deadline, 64 MiB responses).
    pub fn new(seeds: Vec<String>) -> Self {
        let defaults = NimbusConfig::new(Vec::new());
        Self {
            seeds,
            call_timeout: defaults.call_timeout,
            max_response_bytes: defaults.max_response_bytes,
        }
    }
}

/// Makes a Nimbus client for a target (Thrift in production, anything in tests).
pub type NimbusFactory =
    Arc<dyn Fn(&NimbusTarget) -> Result<Arc<dyn Nimbus>, NimbusError> + Send + Sync>;

/// A live connection to one cluster.
#[derive(Clone)]
pub struct Connection {
    /// The Nimbus client.
    pub nimbus: Arc<dyn Nimbus>,
    /// The cluster's latest statistics.
    pub collector: CollectorHandle,
}

impl Connection {
    /// The latest snapshot, without I/O.
    pub fn snapshot(&self) -> Arc<ClusterSnapshot> {
        self.collector.snapshot()
    }
}

struct Entry {
    target: NimbusTarget,
    connection: Connection,
    stop: CancellationToken,
    origin: Origin,
}

/// Who asked for a connection; [`Clusters::sweep`] removes only the StormCluster ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A StormCluster object (its reconciler).
    StormCluster,
    /// `--standalone-nimbus`: no object backs it.
    Standalone,
}

/// The registry of clusters.
pub struct Clusters {
    factory: NimbusFactory,
    collector: CollectorConfig,
    shutdown: CancellationToken,
    entries: Mutex<BTreeMap<ClusterKey, Entry>>,
}

impl Clusters {
    /// A registry whose collectors stop when `shutdown` is cancelled.
    pub fn new(
        factory: NimbusFactory,
        collector: CollectorConfig,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            factory,
            collector,
            shutdown,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// A registry that reaches Nimbus over Thrift.
    pub fn thrift(collector: CollectorConfig, shutdown: CancellationToken) -> Self {
        let factory: NimbusFactory = Arc::new(|target: &NimbusTarget| {
            let mut config = NimbusConfig::new(target.seeds.clone());
            config.call_timeout = target.call_timeout;
            config.max_response_bytes = target.max_response_bytes;
            Ok(Arc::new(ThriftNimbus::new(config)?) as Arc<dyn Nimbus>)
        });
        Self::new(factory, collector, shutdown)
    }

    /// The connection to `key` for `target`: the existing one when the target is unchanged,
    /// otherwise a new client and collector (the old collector stops).
    pub fn ensure(
        &self,
        key: &ClusterKey,
        target: &NimbusTarget,
    ) -> Result<Connection, NimbusError> {
        self.ensure_from(key, target, Origin::StormCluster)
    }

    /// Like [`Clusters::ensure`], recording who asked.
    pub fn ensure_from(
        &self,
        key: &ClusterKey,
        target: &NimbusTarget,
        origin: Origin,
    ) -> Result<Connection, NimbusError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(key)
            && entry.target == *target
        {
            return Ok(entry.connection.clone());
        }
        let nimbus = (self.factory)(target)?;
        let stop = self.shutdown.child_token();
        let (collector, _task) = spawn_collector(
            Arc::clone(&nimbus),
            self.collector.clone(),
            stop.clone().cancelled_owned(),
        );
        let connection = Connection { nimbus, collector };
        if let Some(old) = entries.insert(
            key.clone(),
            Entry {
                target: target.clone(),
                connection: connection.clone(),
                stop,
                origin,
            },
        ) {
            old.stop.cancel();
        }
        tracing::info!(cluster = %key, seeds = ?target.seeds, "connected to Storm cluster");
        Ok(connection)
    }

    /// The connection to `key`, if one exists.
    pub fn get(&self, key: &ClusterKey) -> Option<Connection> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).map(|e| e.connection.clone())
    }

    /// Forgets `key` and stops its collector.
    pub fn remove(&self, key: &ClusterKey) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.remove(key) {
            entry.stop.cancel();
            tracing::info!(cluster = %key, "disconnected from Storm cluster");
        }
    }

    /// Drops the connections of StormClusters that no longer exist (`exists` says which do): a
    /// deleted cluster has no finalizer, so its reconciler never sees it go.
    pub fn sweep(&self, exists: impl Fn(&ClusterKey) -> bool) -> Vec<ClusterKey> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<ClusterKey> = entries
            .iter()
            .filter(|(k, e)| e.origin == Origin::StormCluster && !exists(k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &gone {
            if let Some(entry) = entries.remove(key) {
                entry.stop.cancel();
                tracing::info!(cluster = %key, "disconnected from a deleted Storm cluster");
            }
        }
        gone
    }

    /// Every cluster and its latest snapshot.
    pub fn snapshots(&self) -> Vec<(ClusterKey, Arc<ClusterSnapshot>)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|(k, e)| (k.clone(), e.connection.snapshot()))
            .collect()
    }
}

/// Keeps a connection to every valid StormCluster in the API, on every replica (leader or
/// not), so that the metrics API of a standby replica serves the same numbers. Connections of
/// deleted or invalid clusters are dropped. Runs until `shutdown`.
pub async fn follow(client: kube::Client, clusters: Arc<Clusters>, shutdown: CancellationToken) {
    use futures::StreamExt;
    use kube::ResourceExt;
    use kube::runtime::{WatchStreamExt, watcher};

    use crate::controller::cluster::{nimbus_target, validate};
    use crate::crd::StormCluster;

    let api: kube::Api<StormCluster> = kube::Api::all(client);
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    let mut listing: std::collections::HashSet<ClusterKey> = std::collections::HashSet::new();
    let connect = |cluster: &StormCluster| -> Option<ClusterKey> {
        let key = ClusterKey::new(cluster.namespace()?, cluster.name_any());
        match validate::validate(cluster) {
            Ok(plan) => match clusters.ensure(&key, &nimbus_target(cluster, &plan)) {
                Ok(_) => Some(key),
                Err(error) => {
                    tracing::warn!(cluster = %key, %error, "cannot create a Nimbus client");
                    None
                }
            },
            Err(_) => None,
        }
    };
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.next() => match event {
                Some(event) => event,
                None => return,
            },
        };
        match event {
            Ok(watcher::Event::Apply(cluster)) => {
                if connect(&cluster).is_none()
                    && let Some(ns) = cluster.namespace()
                {
                    clusters.remove(&ClusterKey::new(ns, cluster.name_any()));
                }
            }
            Ok(watcher::Event::Delete(cluster)) => {
                if let Some(ns) = cluster.namespace() {
                    clusters.remove(&ClusterKey::new(ns, cluster.name_any()));
                }
            }
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(cluster)) => {
                if let Some(key) = connect(&cluster) {
                    listing.insert(key);
                }
            }
            Ok(watcher::Event::InitDone) => {
                // A relist: whatever was connected but is no longer listed is gone.
                clusters.sweep(|k| listing.contains(k));
            }
            Err(error) => tracing::warn!(%error, "watching StormClusters"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting_registry() -> (Clusters, Arc<AtomicUsize>, CancellationToken) {
        let made = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&made);
        let factory: NimbusFactory = Arc::new(move |t: &NimbusTarget| {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut config = NimbusConfig::new(t.seeds.clone());
            config.call_timeout = Duration::from_millis(200);
            Ok(Arc::new(ThriftNimbus::new(config)?) as Arc<dyn Nimbus>)
        });
        let shutdown = CancellationToken::new();
        let config = CollectorConfig {
            poll_interval: Duration::from_secs(3600),
            concurrency: 1,
        };
        (
            Clusters::new(factory, config, shutdown.clone()),
            made,
            shutdown,
        )
    }

    #[tokio::test]
    async fn one_client_per_cluster_until_its_target_changes() {
        let (clusters, made, shutdown) = counting_registry();
        let key = ClusterKey::new("ns", "a");
        let target = NimbusTarget::new(vec!["127.0.0.1:1".into()]);
        clusters.ensure(&key, &target).unwrap();
        clusters.ensure(&key, &target).unwrap();
        assert_eq!(
            made.load(Ordering::SeqCst),
            1,
            "the same target reuses the client"
        );
        clusters
            .ensure(&key, &NimbusTarget::new(vec!["127.0.0.1:2".into()]))
            .unwrap();
        assert_eq!(
            made.load(Ordering::SeqCst),
            2,
            "a new seed list makes a new client"
        );
        clusters
            .ensure(&ClusterKey::new("ns", "b"), &target)
            .unwrap();
        assert_eq!(clusters.snapshots().len(), 2);
        clusters
            .ensure_from(
                &ClusterKey::new("ns", "standalone"),
                &target,
                Origin::Standalone,
            )
            .unwrap();
        let swept = clusters.sweep(|k| k.name != "b");
        assert_eq!(
            swept,
            [ClusterKey::new("ns", "b")],
            "only StormCluster connections that are gone"
        );
        assert!(clusters.get(&ClusterKey::new("ns", "standalone")).is_some());
        clusters.remove(&key);
        assert!(clusters.get(&key).is_none());
        assert_eq!(clusters.snapshots().len(), 1, "the standalone one is left");
        shutdown.cancel();
    }
}
