//! The StormWorkerPool reconciler against the Kubernetes API double and a fake Nimbus, driven one
//! reconcile at a time while the test plays the kubelet (pods with IPs) and Storm (supervisors
//! registering): scale-up rebalances only after registration, scale-down rebalances before the
//! Deployment shrinks, rapid scales coalesce, failures are reported and retried, the HPA follows
//! `spec.autoscaling`, and a steady pool writes nothing.

mod support;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use storm_controller::controller::worker_pool::build::{self, FAVORED_NODES, UNFAVORED_NODES};
use storm_controller::crd::worker_pool::condition;
use storm_controller::nimbus::fake::{Fault, FaultKind};
use support::pool_env::{NS, POOL, PoolEnv, SHARED_HOST, TOPOLOGY, pool_spec};

/// A pool of `replicas` supervisors with `slots` slots, created, registered and placed: the
/// topology runs `replicas x slots` workers favoring the pool's hosts.
async fn steady(replicas: i32, slots: i32, cooldown: i32) -> PoolEnv {
    let workers = replicas * slots;
    let env = PoolEnv::start(pool_spec(replicas, slots, cooldown), workers).await;
    env.reconcile().await.unwrap();
    assert_eq!(
        env.deployment_replicas(),
        Some(replicas),
        "created at the spec's size"
    );
    env.kubelet();
    env.register(replicas as usize, slots);
    env.settle(replicas as usize, "ACTIVE", workers).await;
    // The operator never placed this topology: one Placement rebalance gives it its favored nodes.
    env.reconcile().await.unwrap();
    assert_eq!(env.fake.call_count("rebalance"), 1);
    env.settle(replicas as usize, "ACTIVE", workers).await;
    env.reconcile().await.unwrap();
    assert_eq!(
        env.condition(condition::READY).await,
        Some(("True".into(), "Ready".into()))
    );
    env
}

fn favored(env: &PoolEnv) -> serde_json::Value {
    env.storm().topology(TOPOLOGY).unwrap().conf[FAVORED_NODES].clone()
}

#[tokio::test]
async fn scale_up_rebalances_onto_the_new_supervisors_only_once_they_are_registered() {
    let env = steady(2, 2, 0).await;
    assert_eq!(favored(&env), json!(["10.0.0.1", "10.0.0.2"]));
    assert_eq!(
        env.storm().topology(TOPOLOGY).unwrap().conf[UNFAVORED_NODES],
        json!([SHARED_HOST])
    );

    env.scale(4).await;
    env.reconcile().await.unwrap();
    assert_eq!(
        env.deployment_replicas(),
        Some(4),
        "the Deployment grows first"
    );
    assert_eq!(
        env.fake.call_count("rebalance"),
        1,
        "no rebalance before the supervisors exist"
    );

    // The pods run, but Storm does not list their supervisors yet.
    env.kubelet();
    env.reconcile().await.unwrap();
    assert_eq!(
        env.fake.call_count("rebalance"),
        1,
        "no rebalance before registration"
    );
    assert_eq!(
        env.condition(condition::SCALING).await,
        Some(("True".into(), "WaitingForRegistration".into()))
    );
    env.register(3, 2);
    env.settle(3, "ACTIVE", 4).await;
    env.reconcile().await.unwrap();
    assert_eq!(
        env.fake.call_count("rebalance"),
        1,
        "three of four is not enough yet"
    );

    env.register(4, 2);
    env.settle(4, "ACTIVE", 4).await;
    env.reconcile().await.unwrap();
    assert_eq!(env.fake.call_count("rebalance"), 2);
    let topology = env.storm().topology(TOPOLOGY).unwrap();
    assert_eq!(topology.num_workers, 8, "4 supervisors x 2 slots");
    assert_eq!(
        favored(&env),
        json!(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]),
        "the rebalance favors all four supervisors"
    );
    let status = env.pool().await.status.unwrap();
    assert_eq!(
        status.last_rebalance_reason.as_deref(),
        Some("ScaleUp 4->8")
    );
    assert_eq!(status.last_rebalance_workers, Some(8));
    assert_eq!(status.supervisors_registered, Some(4));
    assert_eq!(status.slots, Some(8));
    let events = env.events();
    let rebalanced = events
        .iter()
        .rev()
        .find(|(reason, ..)| reason == "Rebalanced")
        .unwrap();
    assert!(
        rebalanced
            .2
            .contains("to 8 workers on 4 supervisors (ScaleUp 4->8)"),
        "{rebalanced:?}"
    );
    assert!(
        events
            .iter()
            .any(|(reason, _, note)| reason == "ScaledUp" && note.contains("2 -> 4"))
    );

    env.register(4, 2);
    env.settle(4, "ACTIVE", 8).await;
    env.reconcile().await.unwrap();
    assert_eq!(
        env.condition(condition::READY).await,
        Some(("True".into(), "Ready".into()))
    );
    assert_eq!(env.pool().await.status.unwrap().workers_assigned, Some(8));
    assert_eq!(
        env.fake.call_count("rebalance"),
        2,
        "steady: no more rebalances"
    );
}

#[tokio::test]
async fn scale_down_rebalances_to_fewer_workers_before_the_deployment_shrinks() {
    let env = steady(4, 1, 0).await;
    env.scale(2).await;
    env.reconcile().await.unwrap();
    assert_eq!(env.fake.call_count("rebalance"), 2);
    assert_eq!(env.storm().topology(TOPOLOGY).unwrap().num_workers, 2);
    assert_eq!(
        env.deployment_replicas(),
        Some(4),
        "the supervisors stay until Storm has moved the workers"
    );
    assert_eq!(
        env.pool()
            .await
            .status
            .unwrap()
            .last_rebalance_reason
            .as_deref(),
        Some("ScaleDown 4->2")
    );
    // Storm now runs the two workers on the first two supervisors.
    env.register(4, 1);
    env.settle(4, "ACTIVE", 2).await;
    env.reconcile().await.unwrap();
    assert_eq!(
        env.deployment_replicas(),
        Some(4),
        "first the pods get their deletion costs"
    );
    let costs: Vec<String> = env
        .pods()
        .iter()
        .map(|p| {
            p.metadata.annotations.as_ref().unwrap()
                [storm_controller::controller::worker_pool::POD_DELETION_COST]
                .clone()
        })
        .collect();
    assert_eq!(costs, ["1", "1", "0", "0"], "idle supervisors go first");
    env.reconcile().await.unwrap();
    assert_eq!(
        env.deployment_replicas(),
        Some(2),
        "then the Deployment shrinks"
    );
    env.kubelet();
    assert_eq!(
        env.pod_ips(),
        ["10.0.0.1", "10.0.0.2"],
        "the supervisors that run workers stay"
    );
    env.register(2, 1);
    env.settle(2, "ACTIVE", 2).await;
    env.reconcile().await.unwrap();
    assert_eq!(
        env.fake.call_count("rebalance"),
        2,
        "no rebalance after the shrink"
    );
    assert_eq!(
        env.condition(condition::READY).await,
        Some(("True".into(), "Ready".into()))
    );
    assert_eq!(env.pool().await.status.unwrap().replicas, 2);
}

#[tokio::test]
async fn rapid_scales_coalesce_into_one_rebalance_per_cooldown() {
    let env = steady(2, 1, 3).await;
    // The HPA (or a person) asks for 3, then 4, before the operator looks.
    env.scale(3).await;
    env.scale(4).await;
    env.reconcile().await.unwrap();
    assert_eq!(
        env.deployment_replicas(),
        Some(4),
        "one growth to the latest size"
    );
    env.kubelet();
    env.register(4, 1);
    env.settle(4, "ACTIVE", 2).await;
    // Still inside the cooldown of the placement rebalance: keep asking until it is over.
    let mut waited = false;
    for _ in 0..100 {
        env.reconcile().await.unwrap();
        if env.fake.call_count("rebalance") == 2 {
            break;
        }
        waited = true;
        assert_eq!(
            env.condition(condition::SCALING).await,
            Some(("True".into(), "CoolingDown".into()))
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(waited, "the rebalance waited for the cooldown");
    assert_eq!(env.fake.call_count("rebalance"), 2);
    assert_eq!(env.storm().topology(TOPOLOGY).unwrap().num_workers, 4);

    // Two more scales during this rebalance's cooldown: no rebalance until it ends, then one.
    env.scale(5).await;
    env.reconcile().await.unwrap();
    env.kubelet();
    env.register(5, 1);
    env.scale(6).await;
    env.reconcile().await.unwrap();
    env.kubelet();
    env.register(6, 1);
    env.settle(6, "ACTIVE", 4).await;
    for _ in 0..100 {
        env.reconcile().await.unwrap();
        if env.fake.call_count("rebalance") == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        env.fake.call_count("rebalance"),
        3,
        "one rebalance for 5 and 6 together"
    );
    assert_eq!(env.storm().topology(TOPOLOGY).unwrap().num_workers, 6);
    assert_eq!(
        env.pool()
            .await
            .status
            .unwrap()
            .last_rebalance_reason
            .as_deref(),
        Some("ScaleUp 4->6")
    );
}

#[tokio::test]
async fn a_failed_rebalance_is_reported_and_retried() {
    let env = steady(2, 1, 0).await;
    env.fake
        .add_fault(Fault::on("rebalance", FaultKind::InternalError).times(1));
    env.scale(3).await;
    env.reconcile().await.unwrap();
    env.kubelet();
    env.register(3, 1);
    env.settle(3, "ACTIVE", 2).await;
    let action = env
        .reconcile()
        .await
        .expect("a Storm refusal is not a reconcile error");
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_millis(50)),
        "retried after the first backoff delay"
    );
    assert_eq!(env.storm().topology(TOPOLOGY).unwrap().num_workers, 2);
    assert_eq!(
        env.condition(condition::REBALANCE_FAILED).await,
        Some(("True".into(), "RebalanceFailed".into()))
    );
    let events = env.events();
    let failed = events
        .iter()
        .find(|(r, ..)| r == "RebalanceFailed")
        .unwrap();
    assert_eq!(failed.1, "Warning");
    assert!(
        failed.2.contains("Internal error processing rebalance"),
        "{failed:?}"
    );

    env.reconcile().await.unwrap();
    assert_eq!(env.fake.call_count("rebalance"), 3, "retried");
    assert_eq!(env.storm().topology(TOPOLOGY).unwrap().num_workers, 3);
    assert_eq!(
        env.condition(condition::REBALANCE_FAILED).await,
        Some(("False".into(), "Rebalanced".into()))
    );
}

#[tokio::test]
async fn the_hpa_follows_spec_autoscaling_and_the_scale_subresource_reports_the_pool() {
    let env = steady(2, 1, 0).await;
    let pool = env.pool().await;
    let hpa: HorizontalPodAutoscaler = env.sim.get(NS, POOL).expect("an HPA");
    let want = build::hpa(&pool, "storm").unwrap();
    assert_eq!(hpa.spec, want.spec, "the stored HPA is the built one");
    assert_eq!(
        hpa.metadata.owner_references.unwrap()[0].uid,
        pool.metadata.uid.clone().unwrap()
    );
    let status = pool.status.clone().unwrap();
    assert_eq!(status.hpa_name.as_deref(), Some(POOL));
    let scale = env.pools().get_scale(POOL).await.unwrap();
    let scale_status = scale.status.unwrap();
    assert_eq!(scale_status.replicas, 2);
    assert_eq!(
        scale_status.selector.as_deref(),
        Some(
            storm_controller::controller::labels::selector_string(&build::pod_selector(
                &pool, "storm"
            ))
            .as_str()
        ),
        "the /scale selector selects the pool's pods"
    );

    // A changed target is applied; a removed autoscaling removes the HPA.
    env.pools()
        .patch(
            POOL,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"autoscaling": {"maxReplicas": 6}}})),
        )
        .await
        .unwrap();
    env.reconcile().await.unwrap();
    let hpa: HorizontalPodAutoscaler = env.sim.get(NS, POOL).unwrap();
    assert_eq!(hpa.spec.unwrap().max_replicas, 6);
    env.pools()
        .patch(
            POOL,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"autoscaling": null}})),
        )
        .await
        .unwrap();
    env.reconcile().await.unwrap();
    assert!(env.sim.get::<HorizontalPodAutoscaler>(NS, POOL).is_none());
    assert_eq!(env.pool().await.status.unwrap().hpa_name, None);
    assert!(env.events().iter().any(|(r, ..)| r == "HPADeleted"));
}

#[tokio::test]
async fn a_steady_pool_writes_nothing() {
    let env = steady(2, 1, 0).await;
    env.reconcile().await.unwrap();
    env.sim.clear_requests();
    let action = env.reconcile().await.unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(env.ctx.settings.resync)
    );
    let writes: Vec<String> = env.sim.writes().iter().map(|w| w.path.clone()).collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[tokio::test]
async fn a_pool_on_an_external_cluster_or_without_its_topology_says_why() {
    let env = PoolEnv::start(pool_spec(2, 1, 0), 2).await;
    env.sim
        .delete::<storm_controller::crd::StormTopology>(NS, TOPOLOGY)
        .unwrap();
    env.reconcile().await.unwrap();
    assert_eq!(
        env.condition(condition::READY).await,
        Some(("False".into(), "TopologyNotFound".into()))
    );
    assert!(env.deployment().is_none());

    let external: storm_controller::crd::StormCluster = serde_json::from_value(support::read_yaml(
        "docs/samples/stormcluster-external.yaml",
    ))
    .unwrap();
    env.sim.put(&external).unwrap();
    let topology: storm_controller::crd::StormTopology = serde_json::from_value(json!({
        "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormTopology",
        "metadata": {"name": TOPOLOGY, "namespace": NS},
        "spec": {"clusterRef": {"name": "legacy"}, "jar": {"url": "https://x/wc.jar"}, "mainClass": "a.B"}
    }))
    .unwrap();
    env.sim.put(&topology).unwrap();
    env.reconcile().await.unwrap();
    assert_eq!(
        env.condition(condition::READY).await,
        Some(("False".into(), "ExternalCluster".into()))
    );
    assert!(
        env.deployment().is_none(),
        "no supervisors for a cluster outside Kubernetes"
    );
    let warnings: Vec<_> = env
        .events()
        .into_iter()
        .filter(|(_, t, _)| t == "Warning")
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    // Reported once: the same reconcile again adds no Event.
    env.reconcile().await.unwrap();
    assert_eq!(
        env.events()
            .into_iter()
            .filter(|(_, t, _)| t == "Warning")
            .count(),
        2
    );
}
