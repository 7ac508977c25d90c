//! The StormTopology reconciler against the Kubernetes API double and a fake Nimbus.
//!
//! Nothing here runs `storm jar`: the tests play the submit Job (and the kubelet) by putting the
//! topology into the fake Nimbus with the version and owner the Job's argv carries, then marking
//! the Job complete — or failed, with the termination messages a real pod would have.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use serde_json::json;
use storm_controller::controller::topology::{self, build};
use storm_controller::controller::{self, Context, Settings};
use storm_controller::crd::{StormCluster, StormTopology, StormWorkerPool};
use storm_controller::kubesim::KubeSim;
use storm_controller::nimbus::fake::{FakeNimbus, FakeTopology, Fault, FaultKind};
use storm_controller::nimbus::{Nimbus, NimbusConfig, ThriftNimbus};
use tokio_util::sync::CancellationToken;

const NS: &str = "storm";
const NAME: &str = "wc";

struct Env {
    sim: KubeSim,
    fake: FakeNimbus,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
}

fn settings() -> Settings {
    Settings {
        finalizer_timeout: Duration::from_secs(600),
        ..support::controller_ctx::test_settings()
    }
}

/// A fresh operator process: its own connections, collectors and memory of written status.
fn context(
    sim: &KubeSim,
    fake: &FakeNimbus,
    settings: Settings,
    shutdown: &CancellationToken,
) -> Arc<Context> {
    support::controller_ctx::context_with(
        sim,
        fake.endpoint(),
        Duration::from_millis(100),
        settings,
        shutdown,
    )
}

async fn env_with(settings: Settings) -> Env {
    let sim = KubeSim::start().await;
    let fake = FakeNimbus::start().await.unwrap();
    let shutdown = CancellationToken::new();
    let ctx = context(&sim, &fake, settings, &shutdown);
    Api::<StormCluster>::namespaced(sim.client(), NS)
        .create(
            &PostParams::default(),
            &support::fixtures::managed_cluster(),
        )
        .await
        .unwrap();
    Env {
        sim,
        fake,
        ctx,
        shutdown,
    }
}

async fn env() -> Env {
    env_with(settings()).await
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn topology_yaml(spec: serde_json::Value) -> StormTopology {
    support::fixtures::topology(NS, NAME, spec)
}

impl Env {
    fn api(&self) -> Api<StormTopology> {
        Api::namespaced(self.sim.client(), NS)
    }

    async fn create(&self, topology: &StormTopology) -> StormTopology {
        self.api()
            .create(&PostParams::default(), topology)
            .await
            .unwrap()
    }

    async fn fetch(&self) -> StormTopology {
        self.api().get(NAME).await.unwrap()
    }

    async fn patch_spec(&self, spec: serde_json::Value) {
        self.api()
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": spec})),
            )
            .await
            .unwrap();
    }

    async fn reconcile(&self) -> Result<Action, controller::Error> {
        self.reconcile_with(&self.ctx).await
    }

    async fn reconcile_with(&self, ctx: &Arc<Context>) -> Result<Action, controller::Error> {
        topology::reconcile(Arc::new(self.fetch().await), Arc::clone(ctx)).await
    }

    /// Reconciles up to `n` times, stopping once `done` holds.
    async fn reconcile_until(&self, what: &str, n: usize, done: impl Fn(&Env) -> bool) {
        for _ in 0..n {
            self.reconcile().await.unwrap();
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not reached after {n} reconciles: {what}");
    }

    /// A new operator process, with the object's status lost as well: only the cluster state
    /// (Jobs, Nimbus) is left to go by.
    fn restart_losing_status(&self) -> Arc<Context> {
        self.sim
            .apply_status::<StormTopology>(NS, NAME, json!(null))
            .unwrap();
        context(&self.sim, &self.fake, settings(), &self.shutdown)
    }

    /// Runs all controllers, leading from the start, until the test cancels `shutdown`.
    fn start_controllers(&self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let (_, leading) = tokio::sync::watch::channel(true);
        let ctx = Arc::clone(&self.ctx);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move { controller::run(ctx, leading, shutdown).await })
    }

    /// The submit Job of `version`.
    fn job_for(&self, version: &str) -> Job {
        self.jobs()
            .into_iter()
            .find(|j| {
                j.metadata.annotations.as_ref().unwrap()[build::VERSION_ANNOTATION] == version
            })
            .unwrap_or_else(|| panic!("no submit Job for version {version}"))
    }

    /// Runs version 1.0.0 with `spec` (a BlueGreen strategy), then asks for 2.0.0 and reconciles
    /// until the second submit Job exists.
    async fn blue_green_to_v2(&self, spec: serde_json::Value) {
        self.running(&topology_yaml(spec)).await;
        self.patch_spec(json!({"version": "2.0.0"})).await;
        self.reconcile_until("the green Job", 5, |e| e.jobs().len() == 2)
            .await;
    }

    fn jobs(&self) -> Vec<Job> {
        self.sim.list::<Job>(Some(NS))
    }

    fn status(&self) -> storm_controller::crd::StormTopologyStatus {
        self.sim
            .get::<StormTopology>(NS, NAME)
            .and_then(|t| t.status)
            .unwrap_or_default()
    }

    fn condition(&self, type_: &str) -> Option<(String, String)> {
        self.status()
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    fn events(&self, reason: &str) -> usize {
        self.sim
            .list::<Event>(Some(NS))
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.series.as_ref().map_or(1, |s| s.count.max(1) as usize))
            .sum()
    }

    /// Plays the submit Job `job`: Storm gets the topology it submits, the Job completes.
    fn run_job(&self, job: &Job) {
        storm_controller::dev::play_submit_job(&self.sim, &self.fake.cluster(), job).unwrap();
    }

    /// Ends `job`: complete long ago (past the grace for its topology to appear), or failed.
    fn finish_job(&self, job: &Job, ok: bool) {
        if ok {
            let long_ago = "2026-01-01T00:00:00Z".parse().unwrap();
            storm_controller::dev::complete_job(&self.sim, job, long_ago).unwrap();
            return;
        }
        let name = job.metadata.name.clone().unwrap();
        let status = json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True",
               "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
        self.sim.apply_status::<Job>(NS, &name, status).unwrap();
    }

    /// A failed pod of `job` whose container `container` ended with `message`.
    fn failed_pod(&self, job: &Job, init: bool, container: &str, code: i32, message: &str) {
        let job_name = job.metadata.name.clone().unwrap();
        let statuses = json!([{"name": container, "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": code, "message": message}}}]);
        let key = if init {
            "initContainerStatuses"
        } else {
            "containerStatuses"
        };
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{job_name}-x1"), "namespace": NS,
                         "labels": {"job-name": job_name}},
            "spec": {"containers": [{"name": "submit", "image": "x"}]},
        }))
        .unwrap();
        self.sim.put(&pod).unwrap();
        self.sim
            .apply_status::<Pod>(
                NS,
                &format!("{job_name}-x1"),
                json!({"phase": "Failed", key: statuses}),
            )
            .unwrap();
    }

    /// Submits and runs the topology: reconcile, play the Job, reconcile until Running.
    async fn running(&self, topology: &StormTopology) {
        self.create(topology).await;
        self.reconcile_until("a submit Job", 5, |e| !e.jobs().is_empty())
            .await;
        let job = self.jobs().pop().unwrap();
        self.run_job(&job);
        self.reconcile_until("Running", 10, |e| {
            e.status().phase == Some(storm_controller::crd::topology::TopologyPhase::Running)
        })
        .await;
    }

    fn alive(&self) -> Vec<(String, String, Option<String>)> {
        let cluster = self.fake.cluster();
        cluster
            .topology_names()
            .into_iter()
            .filter_map(|n| cluster.topology(&n))
            .filter(|t| t.status != "KILLED")
            .map(|t| {
                let version = t
                    .conf
                    .get("topology.version")
                    .and_then(|v| v.as_str())
                    .map(String::from);
                (t.name, t.status, version)
            })
            .collect()
    }
}

use storm_controller::crd::topology::TopologyPhase;

#[tokio::test]
async fn submit_creates_one_job_then_storm_runs_it() {
    let env = env().await;
    let created = env.create(&topology_yaml(json!({}))).await;
    env.reconcile().await.unwrap();
    let t = env.fetch().await;
    assert!(
        t.metadata
            .finalizers
            .clone()
            .unwrap()
            .contains(&"storm.apache.org/topology".to_string()),
        "the finalizer comes before anything reaches Storm"
    );
    let jobs = env.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].metadata.name.as_deref(),
        Some(build::submit_job_name(&t, NAME, "1.0.0").as_str())
    );
    assert_eq!(
        jobs[0].metadata.owner_references.as_ref().unwrap()[0].uid,
        created.metadata.uid.clone().unwrap()
    );
    assert_eq!(env.status().phase, Some(TopologyPhase::Submitting));
    assert_eq!(
        env.condition("Submitted"),
        Some(("False".into(), "Submitting".into()))
    );

    // Retried reconciles while the Job runs create nothing more.
    for _ in 0..3 {
        env.reconcile().await.unwrap();
    }
    assert_eq!(env.jobs().len(), 1);
    assert_eq!(env.events("SubmitJobCreated"), 1);

    env.run_job(&env.jobs()[0]);
    env.reconcile().await.unwrap();
    let status = env.status();
    assert_eq!(status.phase, Some(TopologyPhase::Running));
    assert_eq!(status.storm_status.as_deref(), Some("ACTIVE"));
    assert_eq!(status.running_version.as_deref(), Some("1.0.0"));
    assert_eq!(status.storm_name.as_deref(), Some(NAME));
    assert_eq!(status.workers, Some(2));
    assert!(status.launch_time.is_some());
    assert_eq!(
        env.condition("Submitted"),
        Some(("True".into(), "Submitted".into()))
    );
    assert_eq!(
        env.condition("Ready"),
        Some(("True".into(), "Running".into()))
    );
    assert_eq!(
        env.condition("Degraded"),
        Some(("False".into(), "AsExpected".into()))
    );
    assert_eq!(env.events("Submitted"), 1);
    assert_eq!(
        env.fake.call_count("submitTopologyWithOpts"),
        0,
        "only the Job submits"
    );
}

#[tokio::test]
async fn metrics_reach_the_status_after_a_poll() {
    let env = env().await;
    env.running(&topology_yaml(json!({}))).await;
    let mut metrics = None;
    for _ in 0..100 {
        env.reconcile().await.unwrap();
        metrics = env.status().metrics;
        if metrics.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = metrics.expect("metrics summary in status");
    // 60000 acked over min(600, uptime 5 s) with 12 ms latency: Little's law gives 144.
    assert_eq!(m.acked_per_second, Some(12000.0));
    assert_eq!(m.complete_latency_ms, Some(12.0));
    assert_eq!(m.pending_tuples, Some(144.0));
    assert_eq!(m.capacity, Some(0.4));
    assert!(m.sample_time.is_some());
}

#[tokio::test]
async fn a_checksum_mismatch_fails_the_submission_once() {
    let env = env().await;
    env.create(&topology_yaml(
        json!({"jar": {"url": "https://repo.example.com/wc.jar",
        "sha256": "a".repeat(64)}}),
    ))
    .await;
    env.reconcile().await.unwrap();
    let job = env.jobs().pop().unwrap();
    env.failed_pod(
        &job,
        true,
        "fetch-jar",
        3,
        "ChecksumMismatch: expected aaaa, got bbbb\n",
    );
    env.finish_job(&job, false);
    env.reconcile().await.unwrap();
    let status = env.status();
    assert_eq!(status.phase, Some(TopologyPhase::Failed));
    assert_eq!(
        env.condition("Submitted"),
        Some(("False".into(), "ChecksumMismatch".into()))
    );
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Submitted")
        .unwrap()
        .message
        .clone();
    assert!(message.contains("expected aaaa, got bbbb"), "{message}");
    for _ in 0..3 {
        env.reconcile().await.unwrap();
    }
    assert_eq!(env.jobs().len(), 1, "a failed Job is not retried by itself");
    assert_eq!(
        env.events("ChecksumMismatch"),
        1,
        "one Event, not one per reconcile"
    );

    // Deleting the failed Job is how a person retries.
    env.sim
        .delete::<Job>(NS, job.metadata.name.as_deref().unwrap())
        .unwrap();
    env.reconcile().await.unwrap();
    assert_eq!(env.jobs().len(), 1);
    assert_eq!(env.status().phase, Some(TopologyPhase::Submitting));
}

#[tokio::test]
async fn a_failed_storm_jar_reports_the_tail_of_its_log() {
    let env = env().await;
    env.create(&topology_yaml(json!({}))).await;
    env.reconcile().await.unwrap();
    let job = env.jobs().pop().unwrap();
    let log = "Running: java -client ...\nException in thread \"main\" java.lang.ClassNotFoundException: org.apache.storm.starter.WordCountTopology\n";
    env.failed_pod(&job, false, "submit", 1, log);
    env.finish_job(&job, false);
    env.reconcile().await.unwrap();
    assert_eq!(
        env.condition("Submitted"),
        Some(("False".into(), "SubmitFailed".into()))
    );
    let message = env
        .status()
        .conditions
        .iter()
        .find(|c| c.type_ == "Submitted")
        .unwrap()
        .message
        .clone();
    assert!(message.contains("ClassNotFoundException"), "{message}");
    assert_eq!(env.events("SubmitFailed"), 1);
}

#[tokio::test]
async fn a_job_that_succeeded_without_a_topology_is_not_found_in_storm() {
    let env = env().await;
    env.create(&topology_yaml(json!({}))).await;
    env.reconcile().await.unwrap();
    let job = env.jobs().pop().unwrap();
    // The main class ignored $(STORM_TOPOLOGY_NAME): Storm runs it under another name.
    env.fake
        .cluster()
        .put_topology(FakeTopology::new("WordCount"));
    env.finish_job(&job, true);
    env.reconcile().await.unwrap();
    assert_eq!(
        env.condition("Submitted"),
        Some(("False".into(), "NotFoundInStorm".into()))
    );
    assert_eq!(env.status().phase, Some(TopologyPhase::Failed));
    assert_eq!(env.jobs().len(), 1, "no resubmission loop");
}

#[tokio::test]
async fn suspend_deactivates_and_resume_activates() {
    let env = env().await;
    env.running(&topology_yaml(json!({}))).await;
    env.patch_spec(json!({"suspend": true})).await;
    env.reconcile_until("Suspended", 5, |e| {
        e.condition("Ready") == Some(("True".into(), "Suspended".into()))
    })
    .await;
    assert_eq!(
        env.fake.cluster().topology(NAME).unwrap().status,
        "INACTIVE"
    );
    assert_eq!(env.fake.call_count("deactivate"), 1);
    assert_eq!(
        env.condition("Ready"),
        Some(("True".into(), "Suspended".into()))
    );
    for _ in 0..3 {
        env.reconcile().await.unwrap();
    }
    assert_eq!(env.fake.call_count("deactivate"), 1, "deactivated once");

    env.patch_spec(json!({"suspend": false})).await;
    env.reconcile_until("Running", 5, |e| {
        e.condition("Ready") == Some(("True".into(), "Running".into()))
    })
    .await;
    assert_eq!(env.fake.cluster().topology(NAME).unwrap().status, "ACTIVE");
    assert_eq!(env.fake.call_count("activate"), 1);
    assert_eq!(env.events("Deactivated"), 1);
    assert_eq!(env.events("Activated"), 1);
}

#[tokio::test]
async fn workers_and_parallelism_changes_rebalance_in_place() {
    let env = env().await;
    env.running(&topology_yaml(json!({}))).await;
    env.patch_spec(json!({"workers": 4})).await;
    env.reconcile_until("4 workers", 10, |e| {
        e.status().workers == Some(4) && e.status().phase == Some(TopologyPhase::Running)
    })
    .await;
    assert_eq!(env.fake.call_count("rebalance"), 1);
    assert_eq!(env.status().requested_workers, Some(4));
    assert!(env.status().last_rebalance_time.is_some());
    assert_eq!(env.jobs().len(), 1, "a rebalance is not a resubmission");

    env.patch_spec(json!({"parallelism": {"split": 6}})).await;
    env.reconcile_until("executors", 10, |e| {
        e.fake.cluster().topology(NAME).unwrap().bolts["split"].executors == 6
            && e.status().phase == Some(TopologyPhase::Running)
    })
    .await;
    assert_eq!(env.fake.call_count("rebalance"), 2);
    for _ in 0..3 {
        env.reconcile().await.unwrap();
    }
    assert_eq!(env.fake.call_count("rebalance"), 2, "no rebalance loop");
}

#[tokio::test]
async fn executors_above_the_task_count_are_reported_not_sent() {
    let env = env().await;
    env.running(&topology_yaml(json!({}))).await;
    // The collector must have seen the components' task counts.
    support::fixtures::wait_until("page info polled", || {
        env.ctx.clusters.snapshots().iter().any(|(_, s)| {
            s.topology(NAME)
                .and_then(|t| t.metrics.as_ref())
                .is_some_and(|m| !m.parallelism.is_empty())
        })
    })
    .await;
    env.patch_spec(json!({"parallelism": {"split": 9}})).await;
    env.reconcile_until("Degraded", 5, |e| {
        e.condition("Degraded") == Some(("True".into(), "ExecutorsAboveTasks".into()))
    })
    .await;
    assert_eq!(env.fake.call_count("rebalance"), 0);
    let message = env
        .status()
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap()
        .message
        .clone();
    assert!(message.contains("8 tasks"), "{message}");
}

#[tokio::test]
async fn recreate_kills_waits_and_resubmits() {
    let env = env().await;
    env.running(&topology_yaml(json!({}))).await;
    env.patch_spec(json!({"version": "2.0.0"})).await;
    env.reconcile().await.unwrap();
    assert_eq!(env.fake.call_count("killTopologyWithOpts"), 1);
    assert_eq!(env.status().phase, Some(TopologyPhase::Updating));
    env.reconcile_until("the new Job", 10, |e| e.jobs().len() == 2)
        .await;
    assert!(
        env.alive().is_empty(),
        "Recreate: the old one is gone before the new one is submitted"
    );
    let job = env.job_for("2.0.0");
    env.run_job(&job);
    env.reconcile_until("Running 2.0.0", 10, |e| {
        e.status().running_version.as_deref() == Some("2.0.0")
            && e.status().phase == Some(TopologyPhase::Running)
    })
    .await;
    assert_eq!(env.alive().len(), 1);
    let reasons: Vec<_> = env
        .sim
        .list::<Event>(Some(NS))
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(env.events("Updated"), 1, "{reasons:?}");
}

#[tokio::test]
async fn blue_green_runs_the_new_version_before_killing_the_old() {
    let env = env().await;
    env.blue_green_to_v2(json!({"updateStrategy": {"type": "BlueGreen"}}))
        .await;
    assert_eq!(env.fake.call_count("killTopologyWithOpts"), 0);
    let job = env.job_for("2.0.0");
    let env_name = &job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .as_ref()
        .unwrap()[0];
    assert_eq!(env_name.value.as_deref(), Some("wc-green"));

    env.run_job(&job);
    // Not active yet: no workers assigned.
    env.fake
        .cluster()
        .update_topology("wc-green", |t| t.num_workers = 0);
    for _ in 0..3 {
        env.reconcile().await.unwrap();
        assert_eq!(
            env.alive().len(),
            2,
            "the old version runs until the new one has workers"
        );
    }
    assert_eq!(env.status().phase, Some(TopologyPhase::Updating));
    env.fake
        .cluster()
        .update_topology("wc-green", |t| t.num_workers = 2);
    env.reconcile_until("green running alone", 10, |e| {
        e.alive().len() == 1
            && e.status().storm_name.as_deref() == Some("wc-green")
            && e.status().phase == Some(TopologyPhase::Running)
    })
    .await;
    assert_eq!(env.alive()[0].2.as_deref(), Some("2.0.0"));

    // The next update goes back to the primary name.
    env.patch_spec(json!({"version": "3.0.0"})).await;
    env.reconcile_until("the blue Job", 5, |e| e.jobs().len() == 3)
        .await;
    let job = env.job_for("3.0.0");
    env.run_job(&job);
    env.reconcile_until("blue running alone", 10, |e| {
        e.alive().len() == 1 && e.status().storm_name.as_deref() == Some(NAME)
    })
    .await;
}

#[tokio::test]
async fn a_blue_green_update_that_never_activates_keeps_the_old_version() {
    let env = env().await;
    env.blue_green_to_v2(
        json!({"updateStrategy": {"type": "BlueGreen", "activationTimeoutSeconds": 10}}),
    )
    .await;
    let job = env.job_for("2.0.0");
    env.run_job(&job);
    env.fake.cluster().update_topology("wc-green", |t| {
        t.num_workers = 0;
        t.uptime_secs = 11;
    });
    env.reconcile_until("green killed", 5, |e| e.alive().len() == 1)
        .await;
    assert_eq!(env.alive()[0].0, NAME, "the old version survives");
    assert_eq!(env.condition("Ready").unwrap().1, "ActivationTimeout");
    for _ in 0..4 {
        env.reconcile().await.unwrap();
    }
    assert_eq!(env.jobs().len(), 2, "no retry loop until the spec changes");
    assert_eq!(
        env.condition("Degraded"),
        Some(("True".into(), "ActivationTimeout".into()))
    );
}

#[tokio::test]
async fn deletion_kills_the_topology_then_releases_the_finalizer() {
    let env = env().await;
    env.running(&topology_yaml(json!({"killWaitSeconds": 1})))
        .await;
    env.api()
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    env.reconcile().await.unwrap();
    assert_eq!(env.fake.call_count("killTopologyWithOpts"), 1);
    assert!(
        env.sim.get::<StormTopology>(NS, NAME).is_some(),
        "held until Storm removed it"
    );
    assert_eq!(env.status().phase, Some(TopologyPhase::Killing));
    for _ in 0..100 {
        if env.sim.get::<StormTopology>(NS, NAME).is_none() {
            break;
        }
        env.reconcile().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(env.sim.get::<StormTopology>(NS, NAME).is_none());
    assert!(env.fake.cluster().topology_names().is_empty());
    assert_eq!(env.events("Killed"), 1);
}

#[tokio::test]
async fn deletion_with_the_cluster_gone_releases_the_finalizer() {
    let env = env().await;
    env.running(&topology_yaml(json!({}))).await;
    env.sim.delete::<StormCluster>(NS, "storm").unwrap();
    env.api()
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    env.reconcile().await.unwrap();
    assert!(env.sim.get::<StormTopology>(NS, NAME).is_none());
    assert_eq!(env.events("ClusterGone"), 1);
}

#[tokio::test]
async fn deletion_with_nimbus_unreachable_gives_up_after_the_bound() {
    let env = env_with(Settings {
        finalizer_timeout: Duration::from_secs(1),
        ..settings()
    })
    .await;
    env.running(&topology_yaml(json!({}))).await;
    env.fake.add_fault(Fault::always(FaultKind::Disconnect));
    env.api()
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    env.reconcile().await.unwrap();
    assert!(
        env.sim.get::<StormTopology>(NS, NAME).is_some(),
        "not yet: within the bound"
    );
    assert_eq!(
        env.condition("Ready"),
        Some(("Unknown".into(), "NimbusUnreachable".into()))
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    env.reconcile().await.unwrap();
    assert!(env.sim.get::<StormTopology>(NS, NAME).is_none());
    assert_eq!(env.events("FinalizerReleased"), 1);
}

#[tokio::test]
async fn an_operator_restart_mid_submit_does_not_submit_twice() {
    let env = env().await;
    env.create(&topology_yaml(json!({}))).await;
    env.reconcile().await.unwrap();
    assert_eq!(env.jobs().len(), 1);
    // A new process whose status was lost too.
    let restarted = env.restart_losing_status();
    for _ in 0..3 {
        env.reconcile_with(&restarted).await.unwrap();
    }
    assert_eq!(
        env.jobs().len(),
        1,
        "the deterministic Job name finds the running Job"
    );
    env.run_job(&env.jobs()[0]);
    // And once more after the Job ran: Nimbus lists it, nothing new is created.
    let again = env.restart_losing_status();
    env.reconcile_with(&again).await.unwrap();
    assert_eq!(env.jobs().len(), 1);
    assert_eq!(env.status().phase, Some(TopologyPhase::Running));
    assert_eq!(env.fake.cluster().topology_names(), vec![NAME.to_string()]);
}

#[tokio::test]
async fn an_operator_restart_mid_update_kills_nothing_wrong() {
    let env = env().await;
    env.blue_green_to_v2(json!({"updateStrategy": {"type": "BlueGreen"}}))
        .await;
    let job = env.job_for("2.0.0");
    env.run_job(&job);
    env.fake
        .cluster()
        .update_topology("wc-green", |t| t.num_workers = 0);
    // Restart with the status lost, while both versions run and the new one has no workers.
    let restarted = env.restart_losing_status();
    for _ in 0..3 {
        env.reconcile_with(&restarted).await.unwrap();
    }
    assert_eq!(
        env.alive().len(),
        2,
        "neither version is killed while the new one starts"
    );
    assert_eq!(env.jobs().len(), 2, "no third submission");
    env.fake
        .cluster()
        .update_topology("wc-green", |t| t.num_workers = 2);
    env.reconcile_with(&restarted).await.unwrap();
    let alive = env.alive();
    assert_eq!(alive.len(), 1);
    assert_eq!(
        alive[0].2.as_deref(),
        Some("2.0.0"),
        "the old version went, the new stays"
    );
}

#[tokio::test]
async fn an_operator_restart_mid_recreate_resubmits_once() {
    let env = env().await;
    env.running(&topology_yaml(json!({"killWaitSeconds": 1})))
        .await;
    env.patch_spec(json!({"version": "2.0.0"})).await;
    env.reconcile().await.unwrap();
    assert_eq!(env.fake.call_count("killTopologyWithOpts"), 1);
    let restarted = env.restart_losing_status();
    for _ in 0..60 {
        env.reconcile_with(&restarted).await.unwrap();
        if env.jobs().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.jobs().len(), 2);
    assert_eq!(
        env.fake.call_count("killTopologyWithOpts"),
        1,
        "killed once"
    );
    for _ in 0..3 {
        env.reconcile_with(&restarted).await.unwrap();
    }
    assert_eq!(env.jobs().len(), 2, "submitted once");
}

#[tokio::test]
async fn a_topology_killed_outside_the_operator_is_reported_and_resubmitted() {
    let env = env().await;
    env.running(&topology_yaml(json!({}))).await;
    let nimbus = env.ctx.clusters.snapshots();
    assert!(!nimbus.is_empty());
    // `storm kill wc -w 0` by a person.
    let client = ThriftNimbus::new(NimbusConfig::new(vec![env.fake.endpoint()])).unwrap();
    client.kill(NAME, Some(0)).await.unwrap();
    env.reconcile_until("resubmitted", 5, |e| {
        e.jobs().iter().any(|j| {
            j.metadata.deletion_timestamp.is_none()
                && j.status.as_ref().and_then(|s| s.succeeded).is_none()
        })
    })
    .await;
    assert_eq!(env.events("NotFoundInStorm"), 1);
    let job = env.jobs().pop().unwrap();
    env.run_job(&job);
    env.reconcile_until("Running again", 5, |e| {
        e.status().phase == Some(TopologyPhase::Running)
    })
    .await;
    assert_eq!(env.alive().len(), 1);
}

#[tokio::test]
async fn a_name_taken_by_another_topology_is_left_alone() {
    let env = env().await;
    env.fake
        .cluster()
        .put_topology(FakeTopology::new(NAME).with_conf("topology.version", json!("0.9")));
    env.create(&topology_yaml(json!({}))).await;
    env.reconcile().await.unwrap();
    env.reconcile().await.unwrap();
    assert_eq!(env.fake.call_count("killTopologyWithOpts"), 0);
    assert_eq!(
        env.condition("Submitted"),
        Some(("False".into(), "NameTaken".into()))
    );
    assert!(env.jobs().is_empty());
    // Deleting the StormTopology does not kill it either.
    env.api()
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    env.reconcile().await.unwrap();
    assert!(env.sim.get::<StormTopology>(NS, NAME).is_none());
    assert_eq!(env.fake.call_count("killTopologyWithOpts"), 0);
    assert_eq!(env.alive().len(), 1);
}

#[tokio::test]
async fn the_inline_worker_pool_is_created_owned_and_removed() {
    let env = env().await;
    let created = env
        .create(&topology_yaml(json!({"workerPool": {"replicas": 2, "slotsPerSupervisor": 2,
            "autoscaling": {"minReplicas": 1, "maxReplicas": 5, "metrics": [
                {"type": "Storm", "storm": {"metric": "storm_topology_pending_tuples", "averageValue": "1000"}}]}}})))
        .await;
    env.reconcile().await.unwrap();
    let pool: StormWorkerPool = env.sim.get(NS, NAME).expect("pool");
    assert_eq!(
        pool.metadata.owner_references.unwrap()[0].uid,
        created.metadata.uid.unwrap()
    );
    assert_eq!(pool.spec.template.replicas, 2);
    assert_eq!(env.status().worker_pool.as_deref(), Some(NAME));

    // The HPA scales the pool: the operator does not put replicas back.
    Api::<StormWorkerPool>::namespaced(env.sim.client(), NS)
        .patch_scale(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    env.reconcile().await.unwrap();
    let pool: StormWorkerPool = env.sim.get(NS, NAME).unwrap();
    assert_eq!(pool.spec.template.replicas, 4);

    env.patch_spec(json!({"workerPool": null})).await;
    env.reconcile().await.unwrap();
    assert!(env.sim.get::<StormWorkerPool>(NS, NAME).is_none());
    assert_eq!(env.events("WorkerPoolDeleted"), 1);
}

#[tokio::test]
async fn a_steady_state_makes_no_writes_and_no_nimbus_calls_of_its_own() {
    let env = env().await;
    env.running(&topology_yaml(json!({}))).await;
    // Let the collector catch up with the submission and the metrics reach the status.
    for _ in 0..100 {
        env.reconcile().await.unwrap();
        if env.status().metrics.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.reconcile().await.unwrap();
    env.sim.clear_requests();
    env.fake.clear_calls();
    for _ in 0..5 {
        env.reconcile().await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let writes = env.sim.writes();
    assert!(writes.is_empty(), "steady state wrote: {writes:?}");
    let own: Vec<String> = env
        .fake
        .calls()
        .into_iter()
        .filter(|c| c != "getClusterInfo" && c != "getTopologyPageInfo")
        .collect();
    assert!(
        own.is_empty(),
        "the reconciler called Nimbus itself: {own:?}"
    );
}

#[tokio::test]
async fn the_running_controller_submits_and_reports() {
    let env = env().await;
    let task = env.start_controllers();
    env.create(&topology_yaml(json!({}))).await;
    support::fixtures::wait_until("a submit Job", || !env.jobs().is_empty()).await;
    env.run_job(&env.jobs()[0]);
    support::fixtures::wait_until("Running", || {
        env.status().phase == Some(TopologyPhase::Running)
    })
    .await;
    env.api()
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    support::fixtures::wait_until("deleted", || {
        env.sim.get::<StormTopology>(NS, NAME).is_none()
    })
    .await;
    assert!(env.alive().is_empty());
    env.shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_standalone_pool_owns_the_worker_count() {
    let env = env().await;
    env.running(&topology_yaml(json!({}))).await;
    let pool: StormWorkerPool = serde_json::from_value(json!({
        "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormWorkerPool",
        "metadata": {"name": "wc-pool", "namespace": NS},
        "spec": {"topologyRef": {"name": NAME}, "replicas": 2},
    }))
    .unwrap();
    Api::<StormWorkerPool>::namespaced(env.sim.client(), NS)
        .create(&PostParams::default(), &pool)
        .await
        .unwrap();
    // Storm runs fewer workers than asked at submission: the pool's doing, not a degradation.
    env.fake
        .cluster()
        .update_topology(NAME, |t| t.num_workers = 1);
    env.patch_spec(json!({"workers": 6, "parallelism": {"split": 4}}))
        .await;
    env.reconcile_until("executors rebalanced", 5, |e| {
        e.fake.cluster().topology(NAME).unwrap().bolts["split"].executors == 4
    })
    .await;
    assert_eq!(
        env.fake.cluster().topology(NAME).unwrap().num_workers,
        1,
        "the pool, not spec.workers, sizes the workers"
    );
    for _ in 0..3 {
        env.reconcile().await.unwrap();
    }
    assert_eq!(env.fake.call_count("rebalance"), 1);
    assert_eq!(
        env.condition("Degraded"),
        Some(("False".into(), "AsExpected".into())),
        "fewer workers than spec.workers is the pool's business, not a degradation"
    );
}

#[tokio::test]
async fn the_running_controllers_give_an_inline_pool_its_supervisors_and_hpa() {
    let env = env().await;
    let task = env.start_controllers();
    env.create(&topology_yaml(json!({"workerPool": {"replicas": 2,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "metrics": [
            {"type": "Storm", "storm": {"metric": "storm_topology_capacity", "value": "800m"}}]}}})))
        .await;
    support::fixtures::wait_until("the pool", || {
        env.sim.get::<StormWorkerPool>(NS, NAME).is_some()
    })
    .await;
    let pool: StormWorkerPool = env.sim.get(NS, NAME).unwrap();
    let deployment = storm_controller::controller::worker_pool::build::deployment_name(&pool);
    let hpa = storm_controller::controller::worker_pool::build::hpa_name(&pool);
    support::fixtures::wait_until("the pool's Deployment and HPA", || {
        env.sim
            .get::<k8s_openapi::api::apps::v1::Deployment>(NS, &deployment)
            .is_some()
            && env
                .sim
                .get::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(NS, &hpa)
                .is_some()
    })
    .await;
    env.shutdown.cancel();
    task.await.unwrap().unwrap();
}
