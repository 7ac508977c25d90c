//! A StormWorkerPool under test: the Kubernetes API double, a fake Nimbus behind a fast
//! collector, a managed StormCluster, a StormTopology running in the fake Storm, and helpers that
//! play the kubelet (pods with IPs, Deployment status) and Storm (supervisors registering).
//! Tests drive `worker_pool::reconcile` themselves, one call at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use storm_controller::controller::worker_pool::{self, POD_DELETION_COST, build};
use storm_controller::controller::{Context, Error};
use storm_controller::crd::{StormCluster, StormTopology, StormWorkerPool};
use storm_controller::kubesim::KubeSim;
use storm_controller::nimbus::fake::{FakeCluster, FakeNimbus, FakeTopology, fake_supervisor};
use storm_controller::stats::ClusterSnapshot;
use tokio_util::sync::CancellationToken;

/// Namespace of everything.
pub const NS: &str = "storm";
/// Name of the pool, the topology (in Kubernetes and in Storm) and the cluster.
pub const POOL: &str = "wc-pool";
/// The StormTopology (and its Storm name).
pub const TOPOLOGY: &str = "wordcount";
/// A supervisor of the cluster's shared pool, registered all along.
pub const SHARED_HOST: &str = "10.9.0.1";

/// The environment of one test.
pub struct PoolEnv {
    /// The Kubernetes API double.
    pub sim: KubeSim,
    /// The fake Nimbus.
    pub fake: FakeNimbus,
    /// The reconcilers' context.
    pub ctx: Arc<Context>,
    shutdown: CancellationToken,
}

impl Drop for PoolEnv {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The pool's spec: `replicas` supervisors of `slots` slots, rebalances with `cooldown` seconds,
/// Storm's wait 0 (a rebalance finishes at once unless a test says otherwise).
pub fn pool_spec(replicas: i32, slots: i32, cooldown: i32) -> Value {
    json!({
        "topologyRef": {"name": TOPOLOGY},
        "replicas": replicas,
        "slotsPerSupervisor": slots,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
        "autoscaling": {
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [{"type": "Storm", "storm": {"metric": "storm_topology_pending_tuples", "averageValue": "1000"}}]
        },
        "rebalance": {"cooldownSeconds": cooldown, "waitSeconds": 0, "registrationTimeoutSeconds": 10}
    })
}

impl PoolEnv {
    /// Starts everything with the pool of `spec` and a topology running `workers` workers
    /// (its `spec.workers`, the cap, is 100).
    pub async fn start(spec: Value, workers: i32) -> PoolEnv {
        let sim = KubeSim::start().await;
        let fake = FakeNimbus::start().await.unwrap();
        let shutdown = CancellationToken::new();
        let ctx = super::controller_ctx::test_context(
            &sim,
            fake.endpoint(),
            Duration::from_millis(50),
            &shutdown,
        );
        let env = PoolEnv {
            sim,
            fake,
            ctx,
            shutdown,
        };
        let cluster: StormCluster =
            serde_json::from_value(super::read_yaml("docs/samples/stormcluster-managed.yaml"))
                .unwrap();
        Api::<StormCluster>::namespaced(env.sim.client(), NS)
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
        let topology: StormTopology = serde_json::from_value(json!({
            "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormTopology",
            "metadata": {"name": TOPOLOGY, "namespace": NS},
            "spec": {"clusterRef": {"name": "storm"}, "jar": {"url": "https://x/wc.jar"},
                     "mainClass": "a.WordCount", "workers": 100}
        }))
        .unwrap();
        Api::<StormTopology>::namespaced(env.sim.client(), NS)
            .create(&PostParams::default(), &topology)
            .await
            .unwrap();
        let pool: StormWorkerPool = serde_json::from_value(json!({
            "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormWorkerPool",
            "metadata": {"name": POOL, "namespace": NS},
            "spec": spec,
        }))
        .unwrap();
        env.pools()
            .create(&PostParams::default(), &pool)
            .await
            .unwrap();
        let mut running = FakeTopology::new(TOPOLOGY);
        running.num_workers = workers;
        env.storm().put_topology(running);
        env.storm()
            .set_supervisors(vec![fake_supervisor(SHARED_HOST, 4, 0)]);
        env
    }

    /// The fake Storm cluster.
    pub fn storm(&self) -> FakeCluster {
        self.fake.cluster()
    }

    /// The pools API.
    pub fn pools(&self) -> Api<StormWorkerPool> {
        Api::namespaced(self.sim.client(), NS)
    }

    /// The pool as stored.
    pub async fn pool(&self) -> StormWorkerPool {
        self.pools().get(POOL).await.unwrap()
    }

    /// One reconcile of the pool as stored.
    pub async fn reconcile(&self) -> Result<Action, Error> {
        worker_pool::reconcile(Arc::new(self.pool().await), Arc::clone(&self.ctx)).await
    }

    /// Sets `spec.replicas` through the `/scale` subresource, as the HPA and `kubectl scale` do.
    pub async fn scale(&self, replicas: i32) {
        self.pools()
            .patch_scale(
                POOL,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .unwrap();
    }

    /// The pool's Deployment.
    pub fn deployment(&self) -> Option<Deployment> {
        let name = format!("{POOL}-pool");
        self.sim.get(NS, &name)
    }

    /// `.spec.replicas` of the pool's Deployment.
    pub fn deployment_replicas(&self) -> Option<i32> {
        self.deployment()?.spec?.replicas
    }

    /// The pool's pods that are not being deleted, by name.
    pub fn pods(&self) -> Vec<Pod> {
        let mut pods: Vec<Pod> = self
            .sim
            .list::<Pod>(Some(NS))
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        pods.sort_by_key(|p| p.metadata.name.clone());
        pods
    }

    /// Pod IPs of the pool's pods, in pod-name order.
    pub fn pod_ips(&self) -> Vec<String> {
        self.pods()
            .iter()
            .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
            .collect()
    }

    /// Plays the ReplicaSet controller and the kubelet: the pool has as many running pods (with
    /// IPs) as its Deployment asks for, removing the lowest deletion cost first, and the
    /// Deployment's status counts them.
    pub fn kubelet(&self) {
        let want = usize::try_from(self.deployment_replicas().unwrap_or(0)).unwrap();
        let mut pods = self.pods();
        pods.sort_by_key(|p| {
            let cost: i64 = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(POD_DELETION_COST))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            (cost, std::cmp::Reverse(p.metadata.name.clone()))
        });
        while pods.len() > want {
            let gone = pods.remove(0);
            self.sim
                .delete::<Pod>(NS, gone.metadata.name.as_deref().unwrap())
                .unwrap();
        }
        let mut next = 1 + self
            .pods()
            .iter()
            .filter_map(|p| {
                p.metadata
                    .name
                    .as_ref()?
                    .rsplit('-')
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        let pool = self
            .sim
            .get::<StormWorkerPool>(NS, POOL)
            .expect("the pool exists");
        let labels: BTreeMap<String, String> = build::pod_selector(&pool, "storm");
        while self.pods().len() < want {
            let pod: Pod = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{POOL}-pool-{next}"), "namespace": NS, "labels": labels},
                "spec": {"containers": [{"name": "supervisor", "image": "apache/storm:2.8.1"}]},
                "status": {"phase": "Running", "podIP": format!("10.0.0.{next}")}
            }))
            .unwrap();
            self.sim.put(&pod).unwrap();
            next += 1;
        }
        let n = self.pods().len();
        self.sim
            .apply_status::<Deployment>(
                NS,
                &format!("{POOL}-pool"),
                json!({"replicas": n, "readyReplicas": n, "updatedReplicas": n}),
            )
            .unwrap();
    }

    /// Plays Storm: the first `count` pool pods (in name order) are registered supervisors of
    /// `slots` slots beside the shared one, the topology's workers spread over them.
    pub fn register(&self, count: usize, slots: i32) {
        let hosts: Vec<String> = self.pod_ips().into_iter().take(count).collect();
        let mut left = self.storm().topology(TOPOLOGY).map_or(0, |t| t.num_workers);
        let mut supervisors = vec![fake_supervisor(SHARED_HOST, 4, 0)];
        for host in &hosts {
            let used = left.min(slots);
            left -= used;
            supervisors.push(fake_supervisor(host, slots, used));
        }
        self.storm().set_supervisors(supervisors);
    }

    /// Waits (bounded) until the collector's snapshot satisfies `check`.
    pub async fn wait_snapshot(&self, what: &str, check: impl Fn(&ClusterSnapshot) -> bool) {
        for _ in 0..400 {
            if self.ctx.clusters.snapshots().iter().any(|(_, s)| check(s)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for a snapshot with {what}");
    }

    /// Waits until a snapshot shows `registered` pool supervisors and the topology in `status`
    /// with `workers` workers, taken after the pool's last rebalance (so the planner trusts it).
    pub async fn settle(&self, registered: usize, status: &str, workers: i32) {
        let after: Option<Timestamp> = self
            .pool()
            .await
            .status
            .and_then(|s| s.last_rebalance_time)
            .and_then(|t| t.parse().ok());
        let what =
            format!("{registered} pool supervisors, {TOPOLOGY} {status} with {workers} workers");
        self.wait_snapshot(&what, |s| {
            let pool_supervisors = s.cluster.as_ref().map_or(0, |c| {
                c.supervisors
                    .iter()
                    .filter(|x| x.host != SHARED_HOST)
                    .count()
            });
            let topology = s.topology(TOPOLOGY).map(|t| &t.summary);
            pool_supervisors == registered
                && topology.is_some_and(|t| t.status == status && t.num_workers == workers)
                && after.is_none_or(|a| s.taken_at.is_some_and(|t| t > a))
        })
        .await;
    }

    /// Reason, type and note of the Events about the pool, oldest first.
    pub fn events(&self) -> Vec<(String, String, String)> {
        let mut events: Vec<k8s_openapi::api::events::v1::Event> = self.sim.list(Some(NS));
        events.sort_by_key(|e| e.event_time.clone().map(|t| t.0));
        events
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(POOL))
            .map(|e| {
                (
                    e.reason.unwrap_or_default(),
                    e.type_.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// `(status, reason)` of one of the pool's conditions.
    pub async fn condition(&self, type_: &str) -> Option<(String, String)> {
        let pool = self.pool().await;
        let c = pool
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)?;
        Some((c.status, c.reason))
    }
}
