//! The StormCluster reconciler against the Kubernetes API double and a fake Nimbus: create, roll on
//! config change, scale Nimbus, switch the UI off, external mode, deletion, a bad spec, API errors
//! retried, and a steady state that writes nothing.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use storm_controller::controller::{self, Context, cluster};
use storm_controller::crd::StormCluster;
use storm_controller::kubesim::KubeSim;
use storm_controller::nimbus::fake::FakeNimbus;
use tokio_util::sync::CancellationToken;

const NS: &str = "storm";
const BOUND: Duration = Duration::from_secs(20);

struct Env {
    sim: KubeSim,
    fake: FakeNimbus,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
}

/// kubesim + a fake Nimbus that every cluster's seeds lead to (DNS names of Nimbus pods do not
/// resolve here), with a fast collector.
async fn env() -> Env {
    let sim = KubeSim::start().await;
    let fake = FakeNimbus::start().await.unwrap();
    let shutdown = CancellationToken::new();
    let ctx = support::controller_ctx::test_context(
        &sim,
        fake.endpoint(),
        Duration::from_millis(100),
        &shutdown,
    );
    Env {
        sim,
        fake,
        ctx,
        shutdown,
    }
}

fn managed() -> StormCluster {
    let value = support::read_yaml("docs/samples/stormcluster-managed.yaml");
    serde_json::from_value(value).unwrap()
}

fn external(seeds: &[&str]) -> StormCluster {
    let mut value = support::read_yaml("docs/samples/stormcluster-external.yaml");
    value["spec"]["external"]["nimbusSeeds"] = serde_json::json!(seeds);
    serde_json::from_value(value).unwrap()
}

impl Env {
    fn api(&self) -> Api<StormCluster> {
        Api::namespaced(self.sim.client(), NS)
    }

    async fn create(&self, cluster: &StormCluster) -> StormCluster {
        self.api()
            .create(&PostParams::default(), cluster)
            .await
            .unwrap()
    }

    async fn fetch(&self, name: &str) -> StormCluster {
        self.api().get(name).await.unwrap()
    }

    async fn reconcile(
        &self,
        name: &str,
    ) -> Result<kube::runtime::controller::Action, controller::Error> {
        cluster::reconcile(Arc::new(self.fetch(name).await), Arc::clone(&self.ctx)).await
    }

    /// Runs the whole controller (leader from the start) until the test ends.
    /// The sender is dropped at once, as in `run --leader-elect=false`: the controllers must keep
    /// running regardless.
    fn run_controller(&self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let (_, leading) = tokio::sync::watch::channel(true);
        let ctx = Arc::clone(&self.ctx);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move { controller::run(ctx, leading, shutdown).await })
    }

    /// Polls `check` (bounded) until it holds.
    async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + BOUND;
        while tokio::time::Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }
}

impl Env {
    /// Waits (bounded) until some cluster's collector snapshot satisfies `check`.
    async fn wait_for_snapshot(
        &self,
        what: &str,
        check: impl Fn(&storm_controller::stats::ClusterSnapshot) -> bool,
    ) {
        self.eventually(what, || async {
            self.ctx.clusters.snapshots().iter().any(|(_, s)| check(s))
        })
        .await;
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn condition(cluster: &StormCluster, type_: &str) -> Option<(String, String)> {
    let conditions = &cluster.status.as_ref()?.conditions;
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn template_hash(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()["storm.apache.org/config-hash"]
        .clone()
}

#[tokio::test]
async fn create_applies_every_child_owned_by_the_cluster() {
    let env = env().await;
    let created = env.create(&managed()).await;
    env.reconcile("storm").await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let sts: StatefulSet = env.sim.get(NS, "storm-nimbus").expect("nimbus statefulset");
    assert_eq!(sts.metadata.owner_references.as_ref().unwrap()[0].uid, uid);
    assert!(env.sim.get::<ConfigMap>(NS, "storm-config").is_some());
    assert!(
        env.sim
            .get::<Service>(NS, "storm-nimbus-headless")
            .is_some()
    );
    assert!(env.sim.get::<Service>(NS, "storm-nimbus").is_some());
    assert!(
        env.sim
            .get::<PodDisruptionBudget>(NS, "storm-nimbus")
            .is_some()
    );
    assert!(env.sim.get::<Deployment>(NS, "storm-supervisor").is_some());
    assert!(env.sim.get::<Deployment>(NS, "storm-ui").is_some());
    assert!(env.sim.get::<Service>(NS, "storm-ui").is_some());
    let status = env.fetch("storm").await.status.expect("status written");
    assert_eq!(status.observed_generation, created.metadata.generation);
    assert_eq!(status.supervisors_desired, Some(3));
    assert!(status.config_hash.is_some());
}

#[tokio::test]
async fn status_follows_the_workloads_and_nimbus() {
    let env = env().await;
    env.create(&managed()).await;
    env.reconcile("storm").await.unwrap();
    // Play the StatefulSet and Deployment controllers: everything rolled out and ready.
    let sts: StatefulSet = env.sim.get(NS, "storm-nimbus").unwrap();
    let generation = sts.metadata.generation.unwrap();
    env.sim
        .apply_status::<StatefulSet>(
            NS,
            "storm-nimbus",
            serde_json::json!({"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "observedGeneration": generation, "currentRevision": "r1", "updateRevision": "r1"}),
        )
        .unwrap();
    let deploy: Deployment = env.sim.get(NS, "storm-supervisor").unwrap();
    env.sim
        .apply_status::<Deployment>(NS, "storm-supervisor", serde_json::json!({"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "observedGeneration": deploy.metadata.generation.unwrap()}))
        .unwrap();
    env.wait_for_snapshot("a Nimbus snapshot", |s| s.cluster.is_some())
        .await;
    env.reconcile("storm").await.unwrap();
    let cluster = env.fetch("storm").await;
    let status = cluster.status.clone().unwrap();
    assert_eq!(status.leader.as_deref(), Some(env.fake.endpoint().as_str()));
    assert_eq!(status.supervisors_ready, Some(3));
    assert_eq!(
        status.supervisors_registered,
        Some(1),
        "the fake cluster has one supervisor"
    );
    assert_eq!(status.slots.map(|s| s.total), Some(4));
    assert_eq!(
        condition(&cluster, "Available"),
        Some(("True".into(), "LeaderElected".into()))
    );
    assert_eq!(
        condition(&cluster, "Progressing"),
        Some(("False".into(), "RolloutComplete".into()))
    );
    assert_eq!(
        condition(&cluster, "Degraded"),
        Some(("True".into(), "SupervisorsMissing".into()))
    );
}

#[tokio::test]
async fn a_config_change_rolls_every_pod_template() {
    let env = env().await;
    env.create(&managed()).await;
    env.reconcile("storm").await.unwrap();
    let before: StatefulSet = env.sim.get(NS, "storm-nimbus").unwrap();
    let patch = serde_json::json!({"spec": {"config": {"topology.message.timeout.secs": 120}}});
    env.api()
        .patch("storm", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    env.reconcile("storm").await.unwrap();
    let after: StatefulSet = env.sim.get(NS, "storm-nimbus").unwrap();
    let old = template_hash(&before.spec.unwrap().template);
    let new = template_hash(&after.spec.unwrap().template);
    assert_ne!(old, new);
    let supervisors: Deployment = env.sim.get(NS, "storm-supervisor").unwrap();
    assert_eq!(template_hash(&supervisors.spec.unwrap().template), new);
    let cm: ConfigMap = env.sim.get(NS, "storm-config").unwrap();
    assert!(cm.data.unwrap()["storm.yaml"].contains("topology.message.timeout.secs: 120"));
}

#[tokio::test]
async fn scaling_nimbus_updates_the_statefulset_and_the_seeds() {
    let env = env().await;
    env.create(&managed()).await;
    env.reconcile("storm").await.unwrap();
    let patch = serde_json::json!({"spec": {"nimbus": {"replicas": 3}}});
    env.api()
        .patch("storm", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    env.reconcile("storm").await.unwrap();
    let sts: StatefulSet = env.sim.get(NS, "storm-nimbus").unwrap();
    assert_eq!(sts.spec.unwrap().replicas, Some(3));
    let cm: ConfigMap = env.sim.get(NS, "storm-config").unwrap();
    assert!(
        cm.data.unwrap()["storm.yaml"].contains("storm-nimbus-2.storm-nimbus-headless.storm.svc")
    );
}

#[tokio::test]
async fn switching_the_ui_off_deletes_its_children_and_says_so() {
    let env = env().await;
    env.create(&managed()).await;
    env.reconcile("storm").await.unwrap();
    assert!(env.sim.get::<Deployment>(NS, "storm-ui").is_some());
    let patch = serde_json::json!({"spec": {"ui": {"enabled": false}}});
    env.api()
        .patch("storm", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    env.reconcile("storm").await.unwrap();
    assert!(env.sim.get::<Deployment>(NS, "storm-ui").is_none());
    assert!(env.sim.get::<Service>(NS, "storm-ui").is_none());
    assert!(
        env.sim.get::<Deployment>(NS, "storm-supervisor").is_some(),
        "only the UI goes"
    );
    let events: Vec<k8s_openapi::api::events::v1::Event> = env.sim.list(Some(NS));
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("ChildrenDeleted")),
        "{events:?}"
    );
}

#[tokio::test]
async fn external_mode_creates_no_workloads_and_reports_nimbus() {
    let env = env().await;
    env.create(&external(&[&env.fake.endpoint()])).await;
    env.reconcile("legacy").await.unwrap();
    env.wait_for_snapshot("a Nimbus snapshot", |s| s.cluster.is_some())
        .await;
    env.reconcile("legacy").await.unwrap();
    assert!(env.sim.list::<StatefulSet>(Some(NS)).is_empty());
    assert!(env.sim.list::<Deployment>(Some(NS)).is_empty());
    assert!(env.sim.list::<ConfigMap>(Some(NS)).is_empty());
    let cluster = env.fetch("legacy").await;
    assert_eq!(
        condition(&cluster, "Available"),
        Some(("True".into(), "LeaderElected".into()))
    );
    assert_eq!(
        condition(&cluster, "Progressing").map(|c| c.1),
        Some("External".into())
    );
    assert_eq!(cluster.status.unwrap().topologies, Some(0));
}

#[tokio::test]
async fn unreachable_nimbus_is_a_condition_not_an_error() {
    let env = env().await;
    env.fake
        .add_fault(storm_controller::nimbus::fake::Fault::always(
            storm_controller::nimbus::fake::FaultKind::Disconnect,
        ));
    env.create(&external(&[&env.fake.endpoint()])).await;
    env.reconcile("legacy").await.unwrap();
    env.wait_for_snapshot("a failed poll", |s| s.error.is_some())
        .await;
    env.reconcile("legacy").await.unwrap();
    let cluster = env.fetch("legacy").await;
    assert_eq!(
        condition(&cluster, "Available"),
        Some(("False".into(), "NimbusUnreachable".into()))
    );
    assert_eq!(
        condition(&cluster, "Degraded").map(|c| c.1),
        Some("NimbusUnreachable".into())
    );
    assert_eq!(
        cluster.status.clone().unwrap().phase,
        Some(storm_controller::crd::cluster::ClusterPhase::Unreachable)
    );
    let events: Vec<k8s_openapi::api::events::v1::Event> = env.sim.list(Some(NS));
    let warning = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("NimbusUnreachable"))
        .expect("an event with the error");
    assert!(!warning.note.clone().unwrap_or_default().is_empty());
    // Every poll fails with its own text; the status does not churn with it.
    env.sim.clear_requests();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        env.reconcile("legacy").await.unwrap();
    }
    let writes: Vec<String> = env.sim.writes().iter().map(|w| w.path.clone()).collect();
    assert!(
        writes.is_empty(),
        "an unreachable steady state wrote {writes:?}"
    );
}

#[tokio::test]
async fn a_bad_spec_gets_a_condition_and_an_event_and_touches_nothing() {
    let env = env().await;
    let mut bad = managed();
    bad.spec
        .config
        .insert("nimbus.seeds".into(), serde_json::json!(["x"]));
    env.create(&bad).await;
    env.sim.clear_requests();
    env.reconcile("storm").await.unwrap();
    let cluster = env.fetch("storm").await;
    assert_eq!(
        condition(&cluster, "Degraded"),
        Some(("True".into(), "OwnedConfigKey".into()))
    );
    assert!(env.sim.list::<StatefulSet>(Some(NS)).is_empty());
    assert!(env.sim.list::<ConfigMap>(Some(NS)).is_empty());
    let events: Vec<k8s_openapi::api::events::v1::Event> = env.sim.list(Some(NS));
    let warning = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("OwnedConfigKey"))
        .expect("a warning event");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(
        warning
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("spec.external.nimbusSeeds")
    );
    let writes: Vec<String> = env.sim.writes().iter().map(|r| r.path.clone()).collect();
    assert!(
        writes
            .iter()
            .all(|p| p.contains("/events") || p.ends_with("/stormclusters/storm/status")),
        "{writes:?}"
    );
    // Reported once: the reconcile its own status write triggers adds no Event and no write.
    env.sim.clear_requests();
    env.reconcile("storm").await.unwrap();
    assert!(
        env.sim.writes().is_empty(),
        "{:?}",
        env.sim
            .writes()
            .iter()
            .map(|w| w.path.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_steady_state_reconcile_writes_nothing() {
    let env = env().await;
    env.create(&managed()).await;
    env.reconcile("storm").await.unwrap();
    env.reconcile("storm").await.unwrap();
    env.sim.clear_requests();
    for _ in 0..3 {
        env.reconcile("storm").await.unwrap();
    }
    let writes: Vec<String> = env
        .sim
        .writes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "steady state wrote {writes:?}");
    assert!(!env.sim.requests().is_empty(), "the reconciles did read");
}

#[tokio::test]
async fn the_controller_converges_through_api_errors_and_conflicts() {
    let env = env().await;
    // The first StatefulSet writes fail: a server error, then a conflict.
    env.sim.fail_next(
        1,
        Some(http::Method::PATCH),
        "/apis/apps/v1/namespaces/storm/statefulsets",
        500,
    );
    env.sim.fail_next(
        1,
        Some(http::Method::PATCH),
        "/apis/apps/v1/namespaces/storm/statefulsets",
        409,
    );
    let _controller = env.run_controller();
    env.create(&managed()).await;
    env.eventually("the statefulset after retries", || async {
        env.sim.get::<StatefulSet>(NS, "storm-nimbus").is_some()
    })
    .await;
    env.eventually("a status", || async {
        env.fetch("storm").await.status.is_some()
    })
    .await;
    let events: Vec<k8s_openapi::api::events::v1::Event> = env.sim.list(Some(NS));
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.clone()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r == "KubeApiError" || r == "Conflict"),
        "{reasons:?}"
    );
    let metrics = env.ctx.metrics.encode().unwrap();
    assert!(
        metrics.contains("storm_controller_reconcile_errors_total{controller=\"stormcluster\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn deleting_the_cluster_garbage_collects_its_children() {
    let env = env().await;
    let _controller = env.run_controller();
    env.create(&managed()).await;
    env.eventually("children", || async {
        env.sim.get::<Deployment>(NS, "storm-ui").is_some()
    })
    .await;
    env.api()
        .delete("storm", &DeleteParams::default())
        .await
        .unwrap();
    env.eventually("no children", || async {
        env.sim.list::<StatefulSet>(Some(NS)).is_empty()
            && env.sim.list::<Deployment>(Some(NS)).is_empty()
            && env.sim.list::<ConfigMap>(Some(NS)).is_empty()
    })
    .await;
    env.eventually("the connection dropped", || async {
        env.ctx.clusters.snapshots().is_empty()
    })
    .await;
}

#[tokio::test]
async fn missing_crds_stop_the_controllers_with_an_install_hint() {
    let sim = KubeSim::start_with(storm_controller::kubesim::KubeSimOptions {
        install_storm_crds: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let error = controller::check_crds(&sim.client()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("storm-controller crds | kubectl apply"),
        "{error}"
    );
}

#[tokio::test]
async fn controllers_stop_when_leadership_is_lost_and_resume_when_regained() {
    let env = env().await;
    let (tx, leading) = tokio::sync::watch::channel(true);
    let ctx = Arc::clone(&env.ctx);
    let shutdown = env.shutdown.clone();
    let task = tokio::spawn(async move { controller::run(ctx, leading, shutdown).await });
    env.create(&managed()).await;
    env.eventually("children while leading", || async {
        env.sim.get::<StatefulSet>(NS, "storm-nimbus").is_some()
    })
    .await;
    tx.send_replace(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.sim.clear_requests();
    let patch = serde_json::json!({"spec": {"nimbus": {"replicas": 3}}});
    env.api()
        .patch("storm", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sts: StatefulSet = env.sim.get(NS, "storm-nimbus").unwrap();
    assert_eq!(
        sts.spec.unwrap().replicas,
        Some(2),
        "a follower does not reconcile"
    );
    tx.send_replace(true);
    env.eventually("the change applied once leading again", || async {
        env.sim
            .get::<StatefulSet>(NS, "storm-nimbus")
            .and_then(|s| s.spec?.replicas)
            == Some(3)
    })
    .await;
    env.shutdown.cancel();
    tokio::time::timeout(BOUND, task)
        .await
        .expect("run returns on shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_object_that_does_not_deserialize_is_reported_not_fatal() {
    let env = env().await;
    let _controller = env.run_controller();
    // Written around validation (the double does none): replicas is not a number.
    let resource = kube::api::ApiResource::erase::<StormCluster>(&());
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(env.sim.client(), NS, &resource);
    let mut broken = kube::api::DynamicObject::new("broken", &resource);
    broken.data = serde_json::json!({"spec": {"image": "x", "zookeeper": {"servers": ["zk"]}, "nimbus": {"replicas": "two"}}});
    api.create(&PostParams::default(), &broken).await.unwrap();
    env.create(&managed()).await;
    env.eventually("an InvalidObject event", || async {
        let events: Vec<k8s_openapi::api::events::v1::Event> = env.sim.list(Some(NS));
        events.iter().any(|e| {
            e.reason.as_deref() == Some("InvalidObject")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
        })
    })
    .await;
    // The controller keeps working for the valid object.
    env.eventually("the valid cluster's children", || async {
        env.sim.get::<StatefulSet>(NS, "storm-nimbus").is_some()
    })
    .await;
}
