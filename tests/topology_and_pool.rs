//! The StormTopology and StormWorkerPool reconcilers together on one topology with an inline
//! pool: the topology is submitted, its pool sizes the workers, a scale of the pool reaches Storm
//! as one rebalance, and the topology reconciler never fights the pool over the worker count.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use storm_controller::controller::{Context, topology, worker_pool};
use storm_controller::crd::topology::TopologyPhase;
use storm_controller::crd::{StormCluster, StormTopology, StormWorkerPool};
use storm_controller::kubesim::KubeSim;
use storm_controller::nimbus::fake::FakeNimbus;
use tokio_util::sync::CancellationToken;

const NS: &str = "storm";
const NAME: &str = "wc";

struct Env {
    sim: KubeSim,
    fake: FakeNimbus,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Env {
    async fn start() -> Env {
        let sim = KubeSim::start().await;
        let fake = FakeNimbus::start().await.unwrap();
        let shutdown = CancellationToken::new();
        let ctx = support::controller_ctx::test_context(
            &sim,
            fake.endpoint(),
            Duration::from_millis(50),
            &shutdown,
        );
        Api::<StormCluster>::namespaced(sim.client(), NS)
            .create(
                &PostParams::default(),
                &support::fixtures::managed_cluster(),
            )
            .await
            .unwrap();
        let topology = support::fixtures::topology(
            NS,
            NAME,
            json!({
                "workers": 8,
                "workerPool": {"replicas": 2, "slotsPerSupervisor": 1,
                    "autoscaling": {"minReplicas": 1, "maxReplicas": 8, "metrics": [{"type": "Storm",
                        "storm": {"metric": "storm_topology_pending_tuples", "averageValue": "1000"}}]},
                    "rebalance": {"cooldownSeconds": 0, "waitSeconds": 0, "registrationTimeoutSeconds": 10}},
            }),
        );
        Api::<StormTopology>::namespaced(sim.client(), NS)
            .create(&PostParams::default(), &topology)
            .await
            .unwrap();
        Env {
            sim,
            fake,
            ctx,
            shutdown,
        }
    }

    /// One round: both reconcilers, then the kubelet and Storm catch up with what they did.
    async fn round(&self) {
        let topology: StormTopology = self.sim.get(NS, NAME).unwrap();
        topology::reconcile(Arc::new(topology), Arc::clone(&self.ctx))
            .await
            .unwrap();
        if let Some(job) = self
            .sim
            .list::<Job>(Some(NS))
            .into_iter()
            .find(|j| j.status.as_ref().and_then(|s| s.succeeded).is_none())
        {
            storm_controller::dev::play_submit_job(&self.sim, &self.fake.cluster(), &job).unwrap();
        }
        if let Some(pool) = self.sim.get::<StormWorkerPool>(NS, NAME) {
            worker_pool::reconcile(Arc::new(pool), Arc::clone(&self.ctx))
                .await
                .unwrap();
        }
        support::kubelet::play_pool(&self.sim, &self.fake, NS, &format!("{NAME}-pool"), NAME);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }

    async fn until(&self, what: &str, done: impl Fn(&Env) -> bool) {
        for _ in 0..100 {
            self.round().await;
            if done(self) {
                return;
            }
        }
        panic!("not reached: {what}");
    }

    fn workers(&self) -> i32 {
        self.fake
            .cluster()
            .topology(NAME)
            .map_or(0, |t| t.num_workers)
    }

    fn topology_status(&self) -> storm_controller::crd::StormTopologyStatus {
        self.sim
            .get::<StormTopology>(NS, NAME)
            .and_then(|t| t.status)
            .unwrap_or_default()
    }

    fn rebalance_events(&self) -> Vec<String> {
        self.sim
            .list::<k8s_openapi::api::events::v1::Event>(Some(NS))
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Rebalanced"))
            .map(|e| {
                format!(
                    "{}: {}",
                    e.regarding.and_then(|r| r.kind).unwrap_or_default(),
                    e.note.unwrap_or_default()
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn the_pool_sizes_the_topology_and_the_topology_reconciler_leaves_it_alone() {
    let env = Env::start().await;
    env.until("submitted and sized by its pool", |e| {
        e.workers() == 2 && e.topology_status().phase == Some(TopologyPhase::Running)
    })
    .await;
    let after_submit = env.fake.call_count("rebalance");
    assert!(
        after_submit >= 1,
        "the pool rebalanced the 8 submitted workers onto its 2 slots"
    );

    // `kubectl scale stormwp wc --replicas 4`, as the HPA would.
    Api::<StormWorkerPool>::namespaced(env.sim.client(), NS)
        .patch_scale(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    env.until("4 workers on 4 supervisors", |e| e.workers() == 4)
        .await;
    // Settle: further rounds change nothing.
    for _ in 0..10 {
        env.round().await;
    }
    assert_eq!(env.workers(), 4);
    assert_eq!(
        env.fake.call_count("rebalance"),
        after_submit + 1,
        "one rebalance for the scale, none from the topology reconciler: {:?}",
        env.rebalance_events()
    );
    assert!(
        env.rebalance_events()
            .iter()
            .all(|e| e.starts_with("StormWorkerPool")),
        "{:?}",
        env.rebalance_events()
    );
    let status = env.topology_status();
    assert_eq!(status.phase, Some(TopologyPhase::Running));
    assert_eq!(status.workers, Some(4));
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .map(|c| c.status.clone());
    assert_eq!(degraded.as_deref(), Some("False"));
    // The HPA's scale survived the topology reconciler's applies of the inline pool.
    let pool: StormWorkerPool = env.sim.get(NS, NAME).unwrap();
    assert_eq!(pool.spec.template.replicas, 4);

    // spec.workers is the cap: raising it changes nothing the pool cannot fill; lowering it
    // below the pool's slots makes the pool (not the topology reconciler) rebalance down.
    let topologies: Api<StormTopology> = Api::namespaced(env.sim.client(), NS);
    let patch = |workers: i32| json!({"spec": {"workers": workers}});
    topologies
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch(6)))
        .await
        .unwrap();
    for _ in 0..10 {
        env.round().await;
    }
    assert_eq!(env.workers(), 4, "the pool has 4 slots: 6 cannot be placed");
    topologies
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch(3)))
        .await
        .unwrap();
    env.until("capped at 3", |e| e.workers() == 3).await;
    for _ in 0..10 {
        env.round().await;
    }
    assert_eq!(env.workers(), 3);
    assert_eq!(env.fake.call_count("rebalance"), after_submit + 2);
    assert!(
        env.rebalance_events()
            .iter()
            .all(|e| e.starts_with("StormWorkerPool")),
        "{:?}",
        env.rebalance_events()
    );
}
