//! StormTopology: submit from a jar, then run, suspend, rebalance, update and kill declaratively.
//!
//! One reconcile:
//! 1. deletion: kill what this object submitted, wait until Nimbus no longer lists it, release
//!    the finalizer (or release it with a Warning when the cluster is gone or unreachable too
//!    long);
//! 2. otherwise add the finalizer, find the StormCluster, apply the inline StormWorkerPool;
//! 3. observe Nimbus: the collector's snapshot when everything already matches the spec (no
//!    Nimbus call of its own), a fresh `getTopologySummaries` before any action;
//! 4. [`plan::decide`] the next step and take it: run the submit Job, kill, wait, or converge a
//!    running topology (activate, deactivate, rebalance);
//! 5. write the status when it changed (metrics only when they moved by more than 10%).

pub mod build;
pub mod plan;
pub mod submit;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::clusters::{ClusterKey, Connection};
use crate::controller::apply::{self, is_subset};
use crate::controller::cluster::{nimbus_target, validate};
use crate::controller::conditions::{self, Desired};
use crate::controller::context::{Context, Error};
use crate::controller::labels::{self, Component};
use crate::crd::common::condition_status::{FALSE, TRUE, UNKNOWN};
use crate::crd::common::{TOPOLOGY_OWNED_KEYS, owned_keys_in};
use crate::crd::topology::{MetricsSummary, TopologyPhase, condition};
use crate::crd::{
    FIELD_MANAGER, StormCluster, StormTopology, StormTopologyStatus, StormWorkerPool,
    TOPOLOGY_FINALIZER,
};
use crate::nimbus::{NimbusError, RebalanceRequest};
use crate::stats::TopologyMetrics;
use plan::{KillReason, Listed, Step};
use submit::JobState;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "stormtopology";
/// Seconds after a submit Job succeeded during which the topology may still be missing from
/// Nimbus's list before it counts as `NotFoundInStorm`.
pub const APPEAR_GRACE_SECS: i64 = 60;
/// Condition reason of a BlueGreen update that gave up.
pub const REASON_ACTIVATION_TIMEOUT: &str = "ActivationTimeout";

/// The primary Storm name: `spec.stormName`, else `metadata.name`.
pub fn primary_name(topology: &StormTopology) -> String {
    topology
        .spec
        .storm_name
        .clone()
        .unwrap_or_else(|| topology.name_any())
}

/// One reconcile of a StormTopology.
pub async fn reconcile(topology: Arc<StormTopology>, ctx: Arc<Context>) -> Result<Action, Error> {
    if topology.meta().deletion_timestamp.is_some() {
        return finalize(&topology, &ctx).await;
    }
    if !has_finalizer(&topology) {
        match add_finalizer(&topology, &ctx).await {
            Ok(()) => {}
            // The cache was behind a write (ours or a person's): look again once it caught up,
            // without a Warning Event for what is no failure.
            Err(Error::Kube(kube::Error::Api(e))) if e.code == 409 => {
                return Ok(Action::requeue(ctx.settings.progress));
            }
            Err(e) => return Err(e),
        }
    }
    let mut run = Run::new(&topology, &ctx);
    let action = run.reconcile().await;
    run.write_status().await?;
    action
}

fn has_finalizer(topology: &StormTopology) -> bool {
    topology
        .finalizers()
        .iter()
        .any(|f| f == TOPOLOGY_FINALIZER)
}

fn api(ctx: &Context, topology: &StormTopology) -> Api<StormTopology> {
    Api::namespaced(
        ctx.client.clone(),
        &topology.namespace().unwrap_or_default(),
    )
}

/// Adds the finalizer before anything reaches Storm, so that a delete always kills what was
/// submitted.
async fn add_finalizer(topology: &StormTopology, ctx: &Context) -> Result<(), Error> {
    let mut finalizers: Vec<&str> = topology.finalizers().iter().map(String::as_str).collect();
    finalizers.push(TOPOLOGY_FINALIZER);
    set_finalizers(topology, ctx, &finalizers).await
}

/// Publishes `note` as a Warning (`reason`) or, without one, nothing, then removes the finalizer:
/// the delete goes through.
async fn release(
    topology: &StormTopology,
    ctx: &Context,
    warning: Option<(&str, String)>,
) -> Result<Action, Error> {
    if let Some((reason, note)) = warning {
        ctx.event(
            &topology.object_ref(&()),
            EventType::Warning,
            reason,
            "Delete",
            note,
        )
        .await;
    }
    let finalizers: Vec<&str> = topology
        .finalizers()
        .iter()
        .map(String::as_str)
        .filter(|f| *f != TOPOLOGY_FINALIZER)
        .collect();
    match set_finalizers(topology, ctx, &finalizers).await {
        Ok(()) => Ok(Action::await_change()),
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}

/// Writes the finalizer list; the resourceVersion makes the write fail rather than drop a
/// concurrent change.
async fn set_finalizers(
    topology: &StormTopology,
    ctx: &Context,
    finalizers: &[&str],
) -> Result<(), Error> {
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": topology.resource_version(),
    }});
    api(ctx, topology)
        .patch(
            &topology.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Lists what Nimbus has under the topology's two Storm names.
fn ours<'a>(
    primary: &'a str,
    summaries: impl IntoIterator<Item = &'a crate::nimbus::storm::TopologySummary>,
) -> Vec<Listed> {
    let alternate = plan::alternate_name(primary);
    summaries
        .into_iter()
        .filter(|s| s.name == primary || s.name == alternate)
        .map(Listed::from_summary)
        .collect()
}

/// Whether Storm's topology `id` was submitted by this StormTopology (its conf carries our uid).
async fn owned_by(connection: &Connection, id: &str, uid: &str) -> Result<bool, NimbusError> {
    match connection.nimbus.topology_conf(id).await {
        Ok(conf) => Ok(conf.string(build::OWNER_CONF_KEY) == Some(uid)),
        Err(NimbusError::NotAlive(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn seconds_since(t: Timestamp, now: Timestamp) -> i64 {
    now.duration_since(t).as_secs()
}

/// Deletion: stop submit Jobs, kill what we submitted, wait until Nimbus forgets it, let go.
async fn finalize(topology: &StormTopology, ctx: &Context) -> Result<Action, Error> {
    if !has_finalizer(topology) {
        return Ok(Action::await_change());
    }
    let namespace = topology
        .namespace()
        .ok_or(Error::MissingField("namespace"))?;
    let reference = topology.object_ref(&());
    let cluster_name = &topology.spec.cluster_ref.name;
    let cluster: Option<StormCluster> =
        apply::get_opt(&ctx.client, &namespace, cluster_name).await?;
    let Some(cluster) = cluster else {
        let note = format!(
            "StormCluster {cluster_name} no longer exists: nothing to kill the topology in; if that Storm cluster still runs it, kill it there"
        );
        return release(topology, ctx, Some(("ClusterGone", note))).await;
    };

    // A Job still running could submit after the kill: delete the Jobs first (foreground, so
    // they are gone only once their pods are) and wait for them.
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = labels::selector_string(&labels::selector_labels(
        &topology.name_any(),
        Component::Submitter,
    ));
    let listed_jobs = jobs.list(&ListParams::default().labels(&selector)).await?;
    for job in &listed_jobs {
        if job.metadata.deletion_timestamp.is_none() {
            match jobs
                .delete(&job.name_any(), &DeleteParams::foreground())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    let deleting_for = topology
        .meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| seconds_since(t.0, Timestamp::now()))
        .unwrap_or_default();
    let give_up = deleting_for > ctx.settings.finalizer_timeout.as_secs() as i64;
    let primary = primary_name(topology);
    let listed = match validate::validate(&cluster) {
        Ok(plan) => {
            let key = ClusterKey::new(&namespace, cluster_name);
            let connection = ctx.clusters.ensure(&key, &nimbus_target(&cluster, &plan))?;
            match connection.nimbus.topologies().await {
                Ok(all) => Ok((connection, ours(&primary, &all))),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(invalid) => Err(format!("StormCluster {cluster_name} is invalid: {invalid}")),
    };
    let (connection, listed) = match listed {
        Ok(found) => found,
        Err(why) if give_up => {
            let note = format!(
                "Storm cluster unreachable for {deleting_for} s ({why}): the finalizer is released; the topology may still run in Storm"
            );
            return release(topology, ctx, Some(("FinalizerReleased", note))).await;
        }
        Err(why) => {
            let mut run = Run::new(topology, ctx);
            run.phase = Some(TopologyPhase::Killing);
            run.ready(
                UNKNOWN,
                "NimbusUnreachable",
                format!("cannot kill the topology yet: {why}"),
            );
            run.write_status().await?;
            return Ok(Action::requeue(ctx.settings.progress));
        }
    };

    let uid = topology.uid().unwrap_or_default();
    let mut waiting = Vec::new();
    for l in &listed {
        if !owned_by(&connection, &l.id, &uid).await? {
            continue;
        }
        if l.alive() {
            let wait = u32::try_from(topology.spec.kill_wait_seconds).ok();
            match connection.nimbus.kill(&l.name, wait).await {
                Ok(()) | Err(NimbusError::NotAlive(_)) => {}
                Err(e) => return Err(e.into()),
            }
            ctx.event(
                &reference,
                EventType::Normal,
                "Killing",
                "Delete",
                format!(
                    "killing {} ({}) with a {} s wait",
                    l.name, l.id, topology.spec.kill_wait_seconds
                ),
            )
            .await;
        }
        waiting.push(l.name.clone());
    }
    if waiting.is_empty() && listed_jobs.items.is_empty() {
        ctx.event(
            &reference,
            EventType::Normal,
            "Killed",
            "Delete",
            format!("{primary} is no longer in Storm"),
        )
        .await;
        return release(topology, ctx, None).await;
    }
    let mut run = Run::new(topology, ctx);
    run.phase = Some(TopologyPhase::Killing);
    let what = if waiting.is_empty() {
        "waiting for the submit Jobs to go".to_string()
    } else {
        format!("waiting until Storm removes {}", waiting.join(", "))
    };
    run.ready(FALSE, "Killing", what);
    run.write_status().await?;
    Ok(Action::requeue(ctx.settings.progress))
}

/// The state of one (non-deletion) reconcile: the status being computed and what to write.
struct Run<'a> {
    topology: &'a StormTopology,
    ctx: &'a Context,
    previous: StormTopologyStatus,
    next: StormTopologyStatus,
    phase: Option<TopologyPhase>,
    desired: Vec<(&'static str, &'static str, String, String)>,
}

impl<'a> Run<'a> {
    fn new(topology: &'a StormTopology, ctx: &'a Context) -> Self {
        let previous = ctx
            .written
            .previous(topology.uid().as_deref(), topology.status.as_ref())
            .unwrap_or_default();
        let mut next = previous.clone();
        next.observed_generation = topology.meta().generation;
        Self {
            topology,
            ctx,
            phase: previous.phase,
            previous,
            next,
            desired: Vec::new(),
        }
    }

    fn set(&mut self, type_: &'static str, status: &'static str, reason: &str, message: String) {
        self.desired.retain(|d| d.0 != type_);
        self.desired
            .push((type_, status, reason.to_string(), message));
    }

    fn submitted(&mut self, status: &'static str, reason: &str, message: impl Into<String>) {
        self.set(condition::SUBMITTED, status, reason, message.into());
    }

    fn ready(&mut self, status: &'static str, reason: &str, message: impl Into<String>) {
        self.set(condition::READY, status, reason, message.into());
    }

    fn degraded(&mut self, status: &'static str, reason: &str, message: impl Into<String>) {
        self.set(condition::DEGRADED, status, reason, message.into());
    }

    fn reference(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        self.topology.object_ref(&())
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        self.ctx
            .event(&self.reference(), type_, reason, action, note)
            .await;
    }

    /// The previous reason of a condition, to publish an Event only when it changes.
    fn previous_reason(&self, type_: &str) -> Option<(String, String)> {
        conditions::find(&self.previous.conditions, type_)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    /// Sets a condition and publishes it as a Warning Event, but only when the condition was
    /// not already at that status and reason: a lasting problem is one Event, not one per
    /// reconcile.
    async fn warn_once(
        &mut self,
        type_: &'static str,
        status: &'static str,
        reason: &str,
        action: &str,
        message: String,
    ) {
        if self.previous_reason(type_) != Some((status.to_string(), reason.to_string())) {
            self.event(EventType::Warning, reason, action, message.clone())
                .await;
        }
        self.set(type_, status, reason, message);
    }

    /// A failure that stays until the spec or the world changes: a condition, and an Event
    /// only when the reason is new.
    async fn fail(&mut self, reason: &str, message: String) {
        self.phase = Some(TopologyPhase::Failed);
        self.warn_once(
            condition::SUBMITTED,
            FALSE,
            reason,
            "Submit",
            message.clone(),
        )
        .await;
        self.ready(FALSE, reason, message);
    }

    async fn reconcile(&mut self) -> Result<Action, Error> {
        let topology = self.topology;
        let ctx = self.ctx;
        let namespace = topology
            .namespace()
            .ok_or(Error::MissingField("namespace"))?;
        let cluster_name = topology.spec.cluster_ref.name.clone();

        if let Some((_, message)) = owned_keys_in(&topology.spec.config, TOPOLOGY_OWNED_KEYS)
            .into_iter()
            .next()
        {
            self.fail("InvalidSpec", message).await;
            return Ok(Action::await_change());
        }
        let cluster: Option<StormCluster> =
            apply::get_opt(&ctx.client, &namespace, &cluster_name).await?;
        let Some(cluster) = cluster else {
            self.pending(
                "ClusterNotFound",
                format!("StormCluster {cluster_name} does not exist in {namespace}"),
            );
            return Ok(Action::requeue(ctx.settings.resync));
        };
        let cluster_plan = match validate::validate(&cluster) {
            Ok(plan) => plan,
            Err(invalid) => {
                self.pending(
                    "ClusterInvalid",
                    format!("StormCluster {cluster_name} is invalid: {invalid}"),
                );
                return Ok(Action::requeue(ctx.settings.resync));
            }
        };
        self.next.worker_pool = self.sync_pool().await?;

        let key = ClusterKey::new(&namespace, &cluster_name);
        let connection = ctx
            .clusters
            .ensure(&key, &nimbus_target(&cluster, &cluster_plan))?;
        let snapshot = connection.snapshot();
        let primary = primary_name(topology);
        let version = build::desired_version(topology);
        let fresh_enough = snapshot
            .age(Timestamp::now())
            .is_some_and(|age| age <= ctx.settings.max_data_age);

        // The snapshot answers the steady state; anything else is decided on a fresh read.
        let from_snapshot = ours(
            &primary,
            snapshot
                .cluster
                .as_ref()
                .map(|c| c.topologies.as_slice())
                .unwrap_or_default(),
        );
        let mut listed = from_snapshot;
        let mut step = plan::decide(&self.input(&primary, &version, &listed));
        let steady = fresh_enough
            && matches!(
                &step,
                Step::Converge {
                    outdated: false,
                    ..
                }
            )
            && self.in_place_changes(&listed, &step, &snapshot).is_none();
        if !steady {
            match connection.nimbus.topologies().await {
                Ok(all) => {
                    listed = ours(&primary, &all);
                    step = plan::decide(&self.input(&primary, &version, &listed));
                }
                Err(e) => {
                    let message = format!("Nimbus of StormCluster {cluster_name}: {e}");
                    self.warn_once(
                        condition::READY,
                        UNKNOWN,
                        "NimbusUnreachable",
                        "Observe",
                        message,
                    )
                    .await;
                    if self.phase.is_none() {
                        self.phase = Some(TopologyPhase::Pending);
                    }
                    return Ok(Action::requeue(ctx.settings.resync));
                }
            }
        }
        tracing::debug!(?step, fresh = !steady, "decided");
        let metrics = |name: &str, id: &str| {
            snapshot
                .topology(name)
                .filter(|t| t.summary.id == id)
                .and_then(|t| t.metrics.clone())
        };

        match step {
            Step::Submit { storm_name, update } => {
                self.submit(&cluster, &cluster_plan, &storm_name, &version, update)
                    .await
            }
            Step::WaitGone { storm_name } => {
                self.phase = Some(if self.next.topology_id.is_some() {
                    TopologyPhase::Updating
                } else {
                    TopologyPhase::Pending
                });
                self.ready(
                    FALSE,
                    "WaitingForKill",
                    format!("waiting until Storm removes the killed {storm_name}"),
                );
                Ok(Action::requeue(ctx.settings.progress))
            }
            Step::WaitActive {
                storm_name,
                remaining_secs,
            } => {
                self.phase = Some(TopologyPhase::Updating);
                self.ready(
                    FALSE,
                    "Updating",
                    format!(
                        "{storm_name} runs version {version} but has no workers yet; the old version keeps running (giving up in {remaining_secs} s)"
                    ),
                );
                Ok(Action::requeue(ctx.settings.progress))
            }
            Step::Kill {
                storm_name,
                version: old_version,
                reason,
            } => {
                let id = listed
                    .iter()
                    .find(|l| l.name == storm_name)
                    .map(|l| l.id.clone())
                    .unwrap_or_default();
                self.kill(&connection, &storm_name, &id, old_version, reason, &version)
                    .await
            }
            Step::Converge {
                storm_name,
                outdated,
            } => {
                let Some(l) = listed.iter().find(|l| l.name == storm_name).cloned() else {
                    return Ok(Action::requeue(ctx.settings.progress));
                };
                let m = metrics(&l.name, &l.id);
                self.converge(&connection, &l, m.as_ref(), outdated, &version)
                    .await
            }
        }
    }

    fn input<'b>(
        &'b self,
        primary: &'b str,
        version: &'b str,
        listed: &'b [Listed],
    ) -> plan::Input<'b> {
        let spec = &self.topology.spec;
        let abandoned = self.next.submitted_version.as_deref() == Some(version)
            && conditions::find(&self.previous.conditions, condition::READY)
                .is_some_and(|c| c.reason == REASON_ACTIVATION_TIMEOUT);
        plan::Input {
            desired_version: version,
            suspend: spec.suspend,
            strategy: spec.update_strategy.type_,
            activation_timeout_secs: spec.update_strategy.activation_timeout_seconds,
            primary,
            current: self.next.storm_name.as_deref(),
            listed,
            update_abandoned: abandoned,
        }
    }

    /// The in-place changes a converging topology needs, `None` when it matches the spec.
    fn in_place_changes(
        &self,
        listed: &[Listed],
        step: &Step,
        snapshot: &crate::stats::ClusterSnapshot,
    ) -> Option<plan::InPlace> {
        let Step::Converge { storm_name, .. } = step else {
            return None;
        };
        let l = listed.iter().find(|l| &l.name == storm_name)?;
        if l.status == "REBALANCING" {
            return Some(plan::InPlace::default());
        }
        let running = snapshot
            .topology(storm_name)
            .and_then(|t| t.metrics.as_ref())
            .map(|m| m.parallelism.clone())
            .unwrap_or_default();
        let change = self.shape(l, &running, self.has_inline_pool());
        (change != plan::InPlace::default()).then_some(change)
    }

    fn has_inline_pool(&self) -> bool {
        self.topology.spec.worker_pool.is_some()
    }

    fn shape(
        &self,
        l: &Listed,
        running: &BTreeMap<String, crate::stats::Parallelism>,
        pool: bool,
    ) -> plan::InPlace {
        let spec = &self.topology.spec;
        plan::in_place(&plan::Shape {
            listed: l,
            suspend: spec.suspend,
            workers: spec.workers,
            parallelism: &spec.parallelism,
            requested_workers: self.next.requested_workers,
            requested_parallelism: &self.next.requested_parallelism,
            running_parallelism: running,
            pool_owns_workers: pool,
        })
    }

    fn pending(&mut self, reason: &str, message: String) {
        if self.next.topology_id.is_none() {
            self.phase = Some(TopologyPhase::Pending);
            self.submitted(FALSE, reason, message.clone());
        }
        self.ready(UNKNOWN, reason, message);
    }

    /// Applies the StormWorkerPool of `spec.workerPool`, or deletes the one a removed
    /// `spec.workerPool` left. With autoscaling the pool's replicas belong to its HPA: they
    /// are set when the pool is created and never applied again.
    async fn sync_pool(&mut self) -> Result<Option<String>, Error> {
        let topology = self.topology;
        let client = &self.ctx.client;
        let namespace = topology.namespace().unwrap_or_default();
        let Some(pool) = build::inline_worker_pool(topology) else {
            let selector = labels::selector_string(&labels::selector_labels(
                &topology.name_any(),
                Component::WorkerPool,
            ));
            let removed = apply::delete_orphans::<StormWorkerPool>(
                client,
                &namespace,
                &selector,
                &topology.uid().unwrap_or_default(),
                &[],
            )
            .await?;
            if !removed.is_empty() {
                self.event(
                    EventType::Normal,
                    "WorkerPoolDeleted",
                    "Delete",
                    format!(
                        "deleted StormWorkerPool {} (spec.workerPool removed)",
                        removed.join(", ")
                    ),
                )
                .await;
            }
            return Ok(None);
        };
        let name = pool.name_any();
        let api: Api<StormWorkerPool> = Api::namespaced(client.clone(), &namespace);
        let Some(live) = api.get_opt(&name).await? else {
            api.create(&PostParams::default(), &pool).await?;
            self.event(
                EventType::Normal,
                "WorkerPoolCreated",
                "Create",
                format!("created StormWorkerPool {name}"),
            )
            .await;
            return Ok(Some(name));
        };
        let uid = topology.uid();
        if !live
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref() && o.controller == Some(true))
        {
            self.degraded(
                TRUE,
                "WorkerPoolNameTaken",
                format!("a StormWorkerPool named {name} exists and does not belong to this topology; spec.workerPool is not applied"),
            );
            return Ok(None);
        }
        let mut desired = pool.clone();
        let scaled_by_hpa = pool.spec.template.autoscaling.is_some();
        if scaled_by_hpa {
            // Hashed without the replicas, which belong to the HPA.
            desired.spec.template.replicas = 0;
        }
        let mut desired = apply::stamped(&desired);
        if scaled_by_hpa && let Some(spec) = desired.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.remove("replicas");
        }
        let live_value = serde_json::to_value(&live).unwrap_or(Value::Null);
        if !is_subset(&desired, &live_value) {
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await?;
        }
        Ok(Some(name))
    }

    async fn submit(
        &mut self,
        cluster: &StormCluster,
        cluster_plan: &validate::ClusterPlan,
        storm_name: &str,
        version: &str,
        update: bool,
    ) -> Result<Action, Error> {
        let topology = self.topology;
        let ctx = self.ctx;
        let namespace = topology.namespace().unwrap_or_default();
        let job_name = build::submit_job_name(topology, storm_name, version);
        let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
        let progress_phase = if update {
            TopologyPhase::Updating
        } else {
            TopologyPhase::Submitting
        };
        // Storm listed it under this name with this version before, and now does not: it was
        // killed behind the operator's back.
        let seen_before = self.next.topology_id.is_some()
            && self.next.storm_name.as_deref() == Some(storm_name)
            && self.next.running_version.as_deref() == Some(version);

        match jobs.get_opt(&job_name).await? {
            None => {
                if seen_before {
                    self.report_lost(storm_name).await;
                }
                let job = match build::submit_job(
                    topology,
                    cluster,
                    cluster_plan,
                    storm_name,
                    version,
                    build::DEFAULT_FETCH_IMAGE,
                ) {
                    Ok(job) => job,
                    Err(e) => {
                        self.fail(e.reason(), e.to_string()).await;
                        return Ok(Action::await_change());
                    }
                };
                jobs.patch(
                    &job_name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&job),
                )
                .await?;
                self.event(
                    EventType::Normal,
                    "SubmitJobCreated",
                    "Submit",
                    format!(
                        "Nimbus does not list {storm_name}: created Job {job_name} to submit version {version}"
                    ),
                )
                .await;
                self.next.requested_workers = Some(topology.spec.workers);
                self.next.requested_parallelism = BTreeMap::new();
                self.submitting(&job_name, storm_name, version, progress_phase);
                Ok(Action::requeue(ctx.settings.progress))
            }
            Some(job) => match submit::job_state(&job) {
                JobState::Running => {
                    self.submitting(&job_name, storm_name, version, progress_phase);
                    Ok(Action::requeue(ctx.settings.progress))
                }
                JobState::Succeeded { at } => {
                    if seen_before {
                        // The Job did its work once; the topology is gone since. Delete the
                        // Job so that the next reconcile submits again.
                        self.report_lost(storm_name).await;
                        delete_job(&jobs, &job_name).await?;
                        self.phase = Some(progress_phase);
                        return Ok(Action::requeue(ctx.settings.progress));
                    }
                    let waited = at
                        .map(|t| seconds_since(t, Timestamp::now()))
                        .unwrap_or(APPEAR_GRACE_SECS + 1);
                    if waited <= APPEAR_GRACE_SECS {
                        self.phase = Some(progress_phase);
                        return Ok(Action::requeue(ctx.settings.progress));
                    }
                    self.fail(
                        "NotFoundInStorm",
                        format!(
                            "Job {job_name} succeeded but Nimbus lists no topology named {storm_name}: the main class must submit under the name it gets as $(STORM_TOPOLOGY_NAME) in spec.args; delete the Job to submit again"
                        ),
                    )
                    .await;
                    Ok(Action::requeue(ctx.settings.resync))
                }
                JobState::Failed { reason, message } => {
                    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
                    let pods = pods
                        .list(&ListParams::default().labels(&format!("job-name={job_name}")))
                        .await?;
                    let failure = submit::diagnose(&job_name, &reason, &message, &pods.items);
                    if failure.already_alive {
                        // Storm had the name when the Job ran and has not now: submit again.
                        self.event(
                            EventType::Normal,
                            "AlreadyAlive",
                            "Submit",
                            format!(
                                "Storm still ran {storm_name} when Job {job_name} submitted; the name is free now, submitting again"
                            ),
                        )
                        .await;
                        delete_job(&jobs, &job_name).await?;
                        self.phase = Some(progress_phase);
                        return Ok(Action::requeue(ctx.settings.progress));
                    }
                    self.fail(
                        failure.reason,
                        format!(
                            "{}\n(delete Job {job_name}, or change the spec, to try again)",
                            failure.message
                        ),
                    )
                    .await;
                    Ok(Action::requeue(ctx.settings.resync))
                }
            },
        }
    }

    /// The status while the submit Job `job_name` runs `storm jar` for `version`.
    fn submitting(
        &mut self,
        job_name: &str,
        storm_name: &str,
        version: &str,
        phase: TopologyPhase,
    ) {
        self.next.submit_job = Some(job_name.to_string());
        self.next.submitted_version = Some(version.to_string());
        self.phase = Some(phase);
        self.submitted(
            FALSE,
            "Submitting",
            format!("Job {job_name} runs storm jar for version {version}"),
        );
        self.ready(FALSE, "Submitting", format!("submitting {storm_name}"));
    }

    async fn report_lost(&mut self, storm_name: &str) {
        let note = format!(
            "{storm_name} ({}) is no longer in Storm: it was killed outside the operator; submitting it again as the spec says it should run",
            self.next.topology_id.clone().unwrap_or_default()
        );
        self.event(EventType::Warning, "NotFoundInStorm", "Observe", note)
            .await;
        self.next.topology_id = None;
        self.next.storm_status = None;
        self.next.running_version = None;
        self.next.workers = None;
        self.next.executors = None;
        self.next.tasks = None;
        self.next.launch_time = None;
        self.next.metrics = None;
    }

    async fn kill(
        &mut self,
        connection: &Connection,
        storm_name: &str,
        id: &str,
        old_version: Option<String>,
        reason: KillReason,
        version: &str,
    ) -> Result<Action, Error> {
        let uid = self.topology.uid().unwrap_or_default();
        if !owned_by(connection, id, &uid).await? {
            self.fail(
                "NameTaken",
                format!(
                    "Storm runs a topology named {storm_name} ({id}) that this StormTopology did not submit; it is left alone. Kill it in Storm, or set spec.stormName to another name"
                ),
            )
            .await;
            return Ok(Action::requeue(self.ctx.settings.resync));
        }
        let wait = u32::try_from(self.topology.spec.kill_wait_seconds).ok();
        match connection.nimbus.kill(storm_name, wait).await {
            Ok(()) | Err(NimbusError::NotAlive(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let old = old_version.unwrap_or_else(|| "unversioned".into());
        let note = match reason {
            KillReason::Recreate => format!(
                "Recreate update to version {version}: killing {storm_name} (version {old}) with a {} s wait; the new version is submitted once Storm removed it",
                self.topology.spec.kill_wait_seconds
            ),
            KillReason::Replaced => format!(
                "BlueGreen update to version {version}: the new version runs, killing {storm_name} (version {old})"
            ),
            KillReason::ActivationTimeout => format!(
                "BlueGreen update to version {version}: {storm_name} got no workers within {} s; killing it and keeping the old version (change the spec to try again)",
                self.topology
                    .spec
                    .update_strategy
                    .activation_timeout_seconds
            ),
            KillReason::Duplicate => {
                format!("killing {storm_name} (version {old}): a second outdated copy")
            }
        };
        let type_ = if reason == KillReason::ActivationTimeout {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.event(type_, "Killing", "Update", note.clone()).await;
        self.phase = Some(TopologyPhase::Updating);
        if reason == KillReason::ActivationTimeout {
            self.ready(FALSE, REASON_ACTIVATION_TIMEOUT, note);
            self.degraded(
                TRUE,
                REASON_ACTIVATION_TIMEOUT,
                format!("version {version} did not become active; the old version keeps running"),
            );
        } else {
            self.ready(FALSE, "Updating", note);
        }
        Ok(Action::requeue(self.ctx.settings.progress))
    }

    async fn converge(
        &mut self,
        connection: &Connection,
        l: &Listed,
        metrics: Option<&TopologyMetrics>,
        outdated: bool,
        version: &str,
    ) -> Result<Action, Error> {
        let spec = &self.topology.spec;
        let ctx = self.ctx;
        if self.next.topology_id.as_deref() != Some(&l.id) {
            let what = if self.next.topology_id.is_some() {
                "Updated"
            } else {
                "Submitted"
            };
            self.event(
                EventType::Normal,
                what,
                "Submit",
                format!(
                    "Storm runs {} as {} (version {})",
                    l.name,
                    l.id,
                    l.version.as_deref().unwrap_or("none")
                ),
            )
            .await;
            if l.version.as_deref() != self.next.submitted_version.as_deref() {
                // Adopted after a lost status: what runs is what was asked for.
                self.next.requested_workers = None;
                self.next.requested_parallelism = BTreeMap::new();
            }
        }
        self.observe(l, metrics);
        self.submitted(
            TRUE,
            "Submitted",
            format!("Storm runs {} as {}", l.name, l.id),
        );
        if l.status == "REBALANCING" {
            self.phase = Some(TopologyPhase::Rebalancing);
            self.ready(FALSE, "Rebalancing", "Storm is redistributing the workers");
            return Ok(Action::requeue(ctx.settings.progress));
        }

        let running = metrics.map(|m| m.parallelism.clone()).unwrap_or_default();
        let mut change = self.shape(l, &running, self.has_inline_pool());
        if change.workers.is_some() && self.standalone_pool_exists().await? {
            // The pool sizes the workers; recording spec.workers as asked keeps later
            // reconciles from looking again.
            change.workers = None;
            self.next.requested_workers = Some(spec.workers);
        }
        let mut degraded: Option<(&str, String)> = None;
        if let Some(activate) = change.activate {
            let result = if activate {
                connection.nimbus.activate(&l.name).await
            } else {
                connection.nimbus.deactivate(&l.name).await
            };
            result?;
            let (reason, note) = if activate {
                (
                    "Activated",
                    format!("activated {} (spec.suspend is false)", l.name),
                )
            } else {
                (
                    "Deactivated",
                    format!("deactivated {} (spec.suspend is true)", l.name),
                )
            };
            self.event(EventType::Normal, reason, "Lifecycle", note)
                .await;
            self.phase = Some(if activate {
                TopologyPhase::Running
            } else {
                TopologyPhase::Suspended
            });
            self.ready(FALSE, reason, format!("{reason} {}", l.name));
            return Ok(Action::requeue(ctx.settings.progress));
        }
        if !change.executors.is_empty()
            && let Err(e) = plan::check_parallelism(&change.executors, &running)
        {
            degraded = Some((e.reason(), e.to_string()));
            change.executors = BTreeMap::new();
        }
        if change.rebalance() {
            return self.rebalance(connection, l, change).await;
        }

        let active_as_asked =
            (spec.suspend && l.status == "INACTIVE") || (!spec.suspend && l.status == "ACTIVE");
        self.phase = Some(if l.status == "INACTIVE" {
            TopologyPhase::Suspended
        } else {
            TopologyPhase::Running
        });
        let asked = self.next.requested_workers.unwrap_or(spec.workers);
        if degraded.is_none()
            && !self.has_inline_pool()
            && l.workers < asked
            && !self.standalone_pool_exists().await?
        {
            degraded = Some((
                "MissingWorkers",
                format!(
                    "Storm runs {} of the {asked} workers asked for: the cluster may lack free slots",
                    l.workers
                ),
            ));
        }
        if outdated {
            degraded = Some((
                REASON_ACTIVATION_TIMEOUT,
                format!(
                    "version {version} did not become active; {} keeps running version {}",
                    l.name,
                    l.version.as_deref().unwrap_or("none")
                ),
            ));
        }
        match (&degraded, outdated, active_as_asked) {
            (_, true, _) => {
                // Keep the ActivationTimeout reason: it is what stops a retry loop.
                let message = degraded.as_ref().map(|d| d.1.clone()).unwrap_or_default();
                self.ready(FALSE, REASON_ACTIVATION_TIMEOUT, message);
            }
            (_, false, true) => {
                let how = if spec.suspend { "suspended" } else { "active" };
                self.ready(
                    TRUE,
                    if spec.suspend { "Suspended" } else { "Running" },
                    format!("{} runs version {version}, {how}", l.name),
                );
            }
            (_, false, false) => self.ready(
                FALSE,
                "NotActive",
                format!("Storm reports {} as {}", l.name, l.status),
            ),
        }
        match degraded {
            Some((reason, message)) => {
                self.warn_once(condition::DEGRADED, TRUE, reason, "Observe", message)
                    .await;
            }
            None => self.degraded(FALSE, "AsExpected", "the topology runs as asked"),
        }
        Ok(Action::requeue(ctx.settings.resync))
    }

    async fn standalone_pool_exists(&self) -> Result<bool, Error> {
        let api: Api<StormWorkerPool> = Api::namespaced(
            self.ctx.client.clone(),
            &self.topology.namespace().unwrap_or_default(),
        );
        let name = self.topology.name_any();
        // Listed whole and filtered here: a field selector on a CRD needs Kubernetes 1.31+, and
        // this runs only when spec.workers changed.
        let pools = api.list(&ListParams::default()).await?;
        Ok(pools.items.iter().any(|p| p.spec.topology_ref.name == name))
    }

    async fn rebalance(
        &mut self,
        connection: &Connection,
        l: &Listed,
        change: plan::InPlace,
    ) -> Result<Action, Error> {
        let request = RebalanceRequest {
            wait_secs: Some(0),
            num_workers: change.workers.and_then(|w| u32::try_from(w).ok()),
            num_executors: change
                .executors
                .iter()
                .map(|(c, n)| (c.clone(), u32::try_from(*n).unwrap_or(1)))
                .collect(),
            conf_overrides: None,
        };
        let what = describe(&change);
        match connection.nimbus.rebalance(&l.name, &request).await {
            Ok(()) => {
                self.event(
                    EventType::Normal,
                    "Rebalanced",
                    "Rebalance",
                    format!("rebalancing {}: {what}", l.name),
                )
                .await;
                self.phase = Some(TopologyPhase::Rebalancing);
                self.ready(FALSE, "Rebalancing", format!("rebalancing: {what}"));
                self.next.last_rebalance_time = Some(Timestamp::now().to_string());
            }
            Err(NimbusError::InvalidTopology(message)) => {
                // Storm refused for good: remember the request so it is not sent again until
                // the spec changes.
                let note = format!("Storm refused to rebalance {} ({what}): {message}", l.name);
                self.event(
                    EventType::Warning,
                    "RebalanceRejected",
                    "Rebalance",
                    note.clone(),
                )
                .await;
                self.degraded(TRUE, "RebalanceRejected", note);
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(w) = change.workers {
            self.next.requested_workers = Some(w);
        }
        if !change.executors.is_empty() {
            self.next.requested_parallelism = change.executors;
        }
        Ok(Action::requeue(self.ctx.settings.progress))
    }

    /// Copies what Nimbus reports into the status.
    fn observe(&mut self, l: &Listed, metrics: Option<&TopologyMetrics>) {
        let next = &mut self.next;
        next.storm_name = Some(l.name.clone());
        next.topology_id = Some(l.id.clone());
        next.storm_status = Some(l.status.clone());
        next.running_version = l.version.clone();
        next.workers = Some(l.workers);
        next.executors = Some(l.executors);
        next.tasks = Some(l.tasks);
        next.launch_time = launch_time(&l.id);
        if let Some(m) = metrics {
            next.metrics = Some(summarize(self.previous.metrics.as_ref(), m));
        }
    }

    async fn write_status(&mut self) -> Result<(), Error> {
        let now = Timestamp::now();
        let desired: Vec<Desired<'_>> = self
            .desired
            .iter()
            .map(|(type_, status, reason, message)| Desired {
                type_,
                status,
                reason,
                message: message.clone(),
            })
            .collect();
        self.next.conditions = conditions::merge(
            &self.previous.conditions,
            &desired,
            self.topology.meta().generation,
            now,
        );
        self.next.phase = self.phase;
        if self.next == self.previous && self.topology.status.is_some() {
            return Ok(());
        }
        let patch = json!({
            "apiVersion": "storm.apache.org/v1alpha1",
            "kind": "StormTopology",
            "status": self.next,
        });
        match api(self.ctx, self.topology)
            .patch_status(
                &self.topology.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => {}
            // Deleted meanwhile (the finalizer was released): nothing to report on.
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.ctx
            .written
            .record(self.topology.uid().as_deref(), &self.next);
        Ok(())
    }
}

async fn delete_job(jobs: &Api<Job>, name: &str) -> Result<(), Error> {
    match jobs.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn describe(change: &plan::InPlace) -> String {
    let mut parts = Vec::new();
    if let Some(w) = change.workers {
        parts.push(format!("{w} workers"));
    }
    if !change.executors.is_empty() {
        let executors: Vec<String> = change
            .executors
            .iter()
            .map(|(c, n)| format!("{c}={n}"))
            .collect();
        parts.push(format!("executors {}", executors.join(",")));
    }
    parts.join(", ")
}

/// The launch time encoded in a Storm id (`name-counter-epochSeconds`), as RFC 3339.
pub fn launch_time(id: &str) -> Option<String> {
    let secs: i64 = id.rsplit('-').next()?.parse().ok()?;
    Timestamp::from_second(secs).ok().map(|t| t.to_string())
}

fn round3(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return 0.0;
    }
    let digits = 3 - (v.abs().log10().floor() as i32) - 1;
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// The metrics summary to write: `previous` unchanged while every value stays within 10% (or a
/// small absolute step) of it, else the new numbers with their sample time. Statistics move a
/// little on every poll; the status should not.
pub fn summarize(previous: Option<&MetricsSummary>, m: &TopologyMetrics) -> MetricsSummary {
    let next = MetricsSummary {
        pending_tuples: Some(round3(m.pending_tuples)),
        complete_latency_ms: Some(round3(m.complete_latency_ms)),
        capacity: Some(round3(m.capacity)),
        acked_per_second: Some(round3(m.acked_per_second)),
        failed_per_second: Some(round3(m.failed_per_second)),
        sample_time: Some(m.sample_time.to_string()),
    };
    let Some(previous) = previous else {
        return next;
    };
    let close = |a: Option<f64>, b: Option<f64>, floor: f64| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= floor.max(0.1 * a.abs().max(b.abs())),
        (None, None) => true,
        _ => false,
    };
    let same = close(previous.pending_tuples, next.pending_tuples, 1.0)
        && close(previous.complete_latency_ms, next.complete_latency_ms, 1.0)
        && close(previous.capacity, next.capacity, 0.02)
        && close(previous.acked_per_second, next.acked_per_second, 0.5)
        && close(previous.failed_per_second, next.failed_per_second, 0.5);
    if same { previous.clone() } else { next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_time_comes_from_the_id() {
        assert_eq!(
            launch_time("wordcount-3-1700000000").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(launch_time("odd"), None);
    }

    #[test]
    fn rounding_keeps_three_significant_digits() {
        assert_eq!(round3(1234.5), 1230.0);
        assert_eq!(round3(0.012345), 0.0123);
        assert_eq!(round3(0.0), 0.0);
    }

    fn metrics(pending: f64, latency: f64) -> TopologyMetrics {
        TopologyMetrics {
            topology_id: "t".into(),
            topology_name: "t".into(),
            status: "ACTIVE".into(),
            sample_time: Timestamp::from_second(1_700_000_000).unwrap(),
            window_secs: 600,
            pending_tuples: pending,
            spout_pending_ratio: None,
            complete_latency_ms: latency,
            capacity: 0.5,
            acked_per_second: 100.0,
            failed_per_second: 0.0,
            emitted_per_second: 300.0,
            components: Vec::new(),
            parallelism: BTreeMap::new(),
        }
    }

    #[test]
    fn small_moves_keep_the_written_summary() {
        let first = summarize(None, &metrics(1000.0, 10.0));
        assert_eq!(first.pending_tuples, Some(1000.0));
        let mut later = metrics(1050.0, 10.4);
        later.sample_time = Timestamp::from_second(1_700_000_030).unwrap();
        assert_eq!(summarize(Some(&first), &later), first, "within 10%");
        let moved = summarize(Some(&first), &metrics(1500.0, 10.0));
        assert_eq!(moved.pending_tuples, Some(1500.0));
    }
}
