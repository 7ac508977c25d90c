//! StormWorkerPool: supervisor pods dedicated to one topology, an HPA on Storm metrics, and
//! scaling ordered with rebalances so that more pods mean more throughput.
//!
//! The pipeline: validate (pure) → fetch the StormTopology and its StormCluster → observe the
//! Deployment, the pool's pods and Nimbus's latest snapshot → plan the next step ([`scale::plan`],
//! pure) → apply the Deployment and the HPA ([`build`], pure) → rebalance when the plan says so →
//! status ([`status::compute`], pure). The pool owns the topology's worker count: the StormTopology
//! reconciler leaves `workers` to it when a pool targets the topology.

pub mod build;
pub mod scale;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::clusters::ClusterKey;
use crate::controller::apply::{self, Applied};
use crate::controller::cluster::validate::{self as cluster_validate, ClusterPlan, Managed};
use crate::controller::context::{Context, Error};
use crate::controller::labels;
use crate::crd::topology::TopologyPhase;
use crate::crd::worker_pool::condition;
use crate::crd::{StormCluster, StormTopology, StormWorkerPool, StormWorkerPoolStatus};
use crate::nimbus::RebalanceRequest;
use scale::{Observed, Step, StormState};
use status::{Blocked, Rebalanced};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "stormworkerpool";
/// Pod annotation the ReplicaSet controller reads when it picks pods to remove: lowest first.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// What a pool runs for: its topology, and the managed cluster that topology runs on.
struct Target {
    topology: StormTopology,
    cluster: StormCluster,
    plan: ClusterPlan,
    managed: Managed,
}

/// One reconcile of a StormWorkerPool.
pub async fn reconcile(pool: Arc<StormWorkerPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = pool.namespace().ok_or(Error::MissingField("namespace"))?;
    if pool.meta().deletion_timestamp.is_some() {
        // The Deployment and HPA go with their owner (garbage collection).
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let previous = ctx
        .written
        .previous(pool.uid().as_deref(), pool.status.as_ref());
    if let Err(invalid) = build::validate(&pool) {
        let blocked = Blocked {
            reason: invalid.reason(),
            message: invalid.to_string(),
        };
        report_blocked(&ctx, &pool, previous.as_ref(), &blocked, now).await?;
        return Ok(Action::await_change());
    }
    let target = match fetch_target(&ctx, &pool, &namespace).await? {
        Ok(target) => target,
        Err(blocked) => {
            report_blocked(&ctx, &pool, previous.as_ref(), &blocked, now).await?;
            return Ok(Action::requeue(ctx.settings.resync));
        }
    };
    let Target {
        topology,
        cluster,
        plan: cluster_plan,
        managed,
    } = target;
    let client = &ctx.client;
    let spec = &pool.spec.template;
    let cluster_name = cluster.name_any();

    // Observe: Nimbus's latest snapshot (the StormCluster reconciler keeps the connection), the
    // pool's pods and which of them Nimbus lists as supervisors, the Deployment.
    let key = ClusterKey::new(&namespace, &cluster_name);
    let connection = match ctx.clusters.get(&key) {
        Some(connection) => connection,
        None => ctx.clusters.ensure(
            &key,
            &crate::controller::cluster::nimbus_target(&cluster, &cluster_plan),
        )?,
    };
    let snapshot = connection.snapshot();
    let fresh = snapshot
        .age(now)
        .is_some_and(|age| age <= ctx.settings.max_data_age);
    let supervisors: BTreeMap<&str, i32> = snapshot
        .cluster
        .as_ref()
        .filter(|_| fresh)
        .map(|c| {
            c.supervisors
                .iter()
                .filter(|s| s.blacklisted != Some(true))
                .map(|s| (s.host.as_str(), s.num_used_workers))
                .collect()
        })
        .unwrap_or_default();
    let selector = build::pod_selector(&pool, &cluster_name);
    let selector_string = labels::selector_string(&selector);
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels(&selector_string))
        .await?
        .items;
    let view = PodView::new(&pods, &supervisors);
    let storm_name = crate::storm_provider::storm_name(&topology);
    let storm = snapshot
        .topology(&storm_name)
        .filter(|_| fresh)
        .map(|t| StormState {
            id: t.summary.id.clone(),
            status: t.summary.status.clone(),
            num_workers: t.summary.num_workers,
        });
    let busy = topology
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| {
            matches!(
                p,
                TopologyPhase::Submitting | TopologyPhase::Updating | TopologyPhase::Killing
            )
        });
    let live_deploy =
        apply::get_opt::<Deployment>(client, &namespace, &build::deployment_name(&pool)).await?;
    let live_replicas = live_deploy.as_ref().and_then(|d| d.spec.as_ref()?.replicas);
    let secs = |s: i32| Duration::from_secs(u64::try_from(s).unwrap_or(0));
    let observed = Observed {
        desired: spec.replicas,
        slots_per_supervisor: spec.slots_per_supervisor,
        max_workers: topology.spec.workers,
        deployment_replicas: live_replicas,
        registered_hosts: view.registered.clone(),
        storm,
        topology_busy: busy,
        snapshot_at: snapshot.taken_at.filter(|_| fresh),
        last_rebalance: status::last_rebalance(previous.as_ref()),
        waiting_since: view.waiting_since,
        cooldown: secs(spec.rebalance.cooldown_seconds),
        registration_timeout: secs(spec.rebalance.registration_timeout_seconds),
        now,
    };
    let step = scale::plan(&observed);
    tracing::debug!(pool = %pool.name_any(), ?step, "planned");

    // Apply: the Deployment at the size the step says, and the HPA.
    let mut replicas = match step {
        Step::GrowDeployment(n) | Step::ShrinkDeployment(n) => n,
        _ => live_replicas.unwrap_or(spec.replicas),
    };
    if matches!(step, Step::ShrinkDeployment(_))
        && mark_deletion_costs(&ctx, &namespace, &view).await? > 0
    {
        // The ReplicaSet controller must see the costs before it picks pods: shrink next time.
        replicas = live_replicas.unwrap_or(replicas);
    }
    let deployment = build::deployment(&pool, &cluster, &managed, replicas);
    if apply::apply(client, &deployment, live_deploy.as_ref()).await? == Applied::Written {
        report_resize(&ctx, &pool, live_replicas, replicas).await;
    }
    let hpa_name = apply_hpa(&ctx, &pool, &namespace, &cluster_name).await?;

    // Rebalance when the plan says so.
    let mut rebalanced = None;
    let mut rebalance_error = None;
    if let (Step::Rebalance { workers, reason }, Some(storm)) = (&step, &observed.storm) {
        let request = RebalanceRequest {
            wait_secs: u32::try_from(spec.rebalance.wait_seconds).ok(),
            num_workers: u32::try_from(*workers).ok(),
            conf_overrides: Some(build::placement_conf(&view.registered, &view.others)),
            ..RebalanceRequest::default()
        };
        let reference = pool.object_ref(&());
        // Events with the same reason and action become one series that keeps its first note:
        // the action names the rebalance, so each distinct one is an Event of its own.
        let action = format!("Rebalance {reason}");
        match connection.nimbus.rebalance(&storm_name, &request).await {
            Ok(()) => {
                let note = format!(
                    "rebalanced {storm_name} to {workers} workers on {} supervisors ({reason})",
                    view.registered.len()
                );
                ctx.event(&reference, EventType::Normal, "Rebalanced", &action, note)
                    .await;
                rebalanced = Some(Rebalanced {
                    at: ceil_to_second(now),
                    reason: *reason,
                    topology_id: storm.id.clone(),
                    hosts: view.registered.clone(),
                });
            }
            Err(error) => {
                let note =
                    format!("rebalance of {storm_name} to {workers} workers ({reason}): {error}");
                ctx.event(
                    &reference,
                    EventType::Warning,
                    "RebalanceFailed",
                    &action,
                    note.clone(),
                )
                .await;
                rebalance_error = Some(note);
            }
        }
    }

    let new_status = status::compute(&status::Inputs {
        previous: previous.as_ref(),
        generation: pool.meta().generation,
        now,
        deployment: live_deploy.as_ref(),
        selector: Some(selector_string),
        desired: spec.replicas,
        slots_per_supervisor: spec.slots_per_supervisor,
        registered: fresh.then_some(i32::try_from(view.registered.len()).unwrap_or(i32::MAX)),
        workers_assigned: fresh.then_some(view.used_workers),
        storm_name,
        hpa_name,
        step: Some(&step),
        rebalanced: rebalanced.as_ref(),
        rebalance_error: rebalance_error.clone(),
        blocked: None,
    });
    write_status(&ctx, &pool, new_status).await?;

    let backoff_key = format!("{namespace}/{}", pool.name_any());
    if rebalance_error.is_some() {
        // Reported once (Event and condition); retried with the per-object backoff.
        return Ok(Action::requeue(ctx.backoff.next(&backoff_key)));
    }
    ctx.backoff.reset(&backoff_key);
    Ok(Action::requeue(requeue_after(&ctx, &step)))
}

/// How soon to look again: soon while a scale is in progress, at the resync otherwise.
fn requeue_after(ctx: &Context, step: &Step) -> Duration {
    let resync = ctx.settings.resync;
    let progress = (resync / 6).max(ctx.settings.backoff_base).min(resync);
    match step {
        Step::Steady | Step::WaitForTopology(_) => resync,
        Step::WaitCooldown(left) => (*left).clamp(progress.min(Duration::from_millis(100)), resync),
        _ => progress,
    }
}

/// `at` rounded up to a whole second: the status keeps whole seconds, and a snapshot must be
/// known to be taken after the rebalance.
fn ceil_to_second(at: Timestamp) -> Timestamp {
    let whole = Timestamp::from_second(at.as_second()).unwrap_or(at);
    if whole == at {
        at
    } else {
        Timestamp::from_second(at.as_second() + 1).unwrap_or(at)
    }
}

/// The pool's pods as Nimbus sees them.
struct PodView<'a> {
    /// Hosts (pod IPs) of the live pods that Nimbus lists as supervisors, sorted.
    registered: Vec<String>,
    /// Every other supervisor host Nimbus lists, sorted.
    others: Vec<String>,
    /// Creation time of the oldest live pod that has not registered.
    waiting_since: Option<Timestamp>,
    /// Workers running on the pool's supervisors.
    used_workers: i32,
    /// Live pods with their workers (for deletion costs).
    live: Vec<(&'a Pod, i32)>,
}

impl<'a> PodView<'a> {
    fn new(pods: &'a [Pod], supervisors: &BTreeMap<&str, i32>) -> Self {
        let ip = |p: &Pod| p.status.as_ref().and_then(|s| s.pod_ip.clone());
        let pool_ips: BTreeSet<String> = pods.iter().filter_map(ip).collect();
        let live: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let mut registered = Vec::new();
        let mut waiting_since: Option<Timestamp> = None;
        let mut used_workers = 0;
        let mut with_workers = Vec::new();
        for pod in live {
            match ip(pod).and_then(|h| supervisors.get(h.as_str()).map(|w| (h, *w))) {
                Some((host, workers)) => {
                    registered.push(host);
                    used_workers += workers;
                    with_workers.push((pod, workers));
                }
                None => {
                    with_workers.push((pod, 0));
                    if let Some(created) = &pod.metadata.creation_timestamp {
                        waiting_since = Some(waiting_since.map_or(created.0, |w| w.min(created.0)));
                    }
                }
            }
        }
        registered.sort();
        let others = supervisors
            .keys()
            .filter(|h| !pool_ips.contains(**h))
            .map(|h| h.to_string())
            .collect();
        Self {
            registered,
            others,
            waiting_since,
            used_workers,
            live: with_workers,
        }
    }
}

/// Sets each live pod's deletion cost to the workers it runs, so that a shrink removes idle
/// supervisors first. Returns how many pods it changed.
async fn mark_deletion_costs(
    ctx: &Context,
    namespace: &str,
    view: &PodView<'_>,
) -> Result<usize, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let mut changed = 0;
    for (pod, workers) in &view.live {
        let cost = workers.to_string();
        if pod.annotations().get(POD_DELETION_COST) == Some(&cost) {
            continue;
        }
        let patch = json!({"metadata": {"annotations": {POD_DELETION_COST: cost}}});
        api.patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        changed += 1;
    }
    Ok(changed)
}

/// Applies the HPA of `spec.autoscaling`, or deletes the pool's HPA when autoscaling is gone.
/// Returns the HPA's name when there is one.
async fn apply_hpa(
    ctx: &Context,
    pool: &StormWorkerPool,
    namespace: &str,
    cluster: &str,
) -> Result<Option<String>, Error> {
    let name = build::hpa_name(pool);
    let live = apply::get_opt::<HorizontalPodAutoscaler>(&ctx.client, namespace, &name).await?;
    match build::hpa(pool, cluster) {
        Some(hpa) => {
            if apply::apply(&ctx.client, &hpa, live.as_ref()).await? == Applied::Written
                && live.is_none()
            {
                let note = format!("created the HorizontalPodAutoscaler {name}");
                ctx.event(
                    &pool.object_ref(&()),
                    EventType::Normal,
                    "HPACreated",
                    "Apply",
                    note,
                )
                .await;
            }
            Ok(Some(name))
        }
        None => {
            let uid = pool.uid().unwrap_or_default();
            let ours = live.as_ref().is_some_and(|h| {
                h.owner_references()
                    .iter()
                    .any(|o| o.uid == uid && o.controller == Some(true))
            });
            if ours {
                let api: Api<HorizontalPodAutoscaler> =
                    Api::namespaced(ctx.client.clone(), namespace);
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {
                        let note = format!(
                            "deleted the HorizontalPodAutoscaler {name}: spec.autoscaling is gone"
                        );
                        ctx.event(
                            &pool.object_ref(&()),
                            EventType::Normal,
                            "HPADeleted",
                            "Delete",
                            note,
                        )
                        .await;
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(None)
        }
    }
}

/// An Event when the Deployment's size changes.
async fn report_resize(ctx: &Context, pool: &StormWorkerPool, from: Option<i32>, to: i32) {
    let (reason, note) = match from {
        None => (
            "Created",
            format!("created the supervisor Deployment with {to} pods"),
        ),
        Some(from) if from < to => ("ScaledUp", format!("supervisor pods {from} -> {to}")),
        Some(from) if from > to => ("ScaledDown", format!("supervisor pods {from} -> {to}")),
        Some(_) => return,
    };
    let action = format!("Scale {}->{to}", from.unwrap_or(0));
    ctx.event(
        &pool.object_ref(&()),
        EventType::Normal,
        reason,
        &action,
        note,
    )
    .await;
}

/// The pool's topology and its managed cluster, or why the pool cannot run.
async fn fetch_target(
    ctx: &Context,
    pool: &StormWorkerPool,
    namespace: &str,
) -> Result<Result<Target, Blocked>, Error> {
    let topology_name = &pool.spec.topology_ref.name;
    let Some(topology) =
        apply::get_opt::<StormTopology>(&ctx.client, namespace, topology_name).await?
    else {
        return Ok(Err(Blocked {
            reason: "TopologyNotFound",
            message: format!("the StormTopology {topology_name} does not exist in {namespace}"),
        }));
    };
    let cluster_name = &topology.spec.cluster_ref.name;
    let Some(cluster) =
        apply::get_opt::<StormCluster>(&ctx.client, namespace, cluster_name).await?
    else {
        return Ok(Err(Blocked {
            reason: "ClusterNotFound",
            message: format!(
                "the StormCluster {cluster_name} of the topology {topology_name} does not exist"
            ),
        }));
    };
    let plan = match cluster_validate::validate(&cluster) {
        Ok(plan) => plan,
        Err(invalid) => {
            return Ok(Err(Blocked {
                reason: "ClusterInvalid",
                message: format!("the StormCluster {cluster_name} is invalid: {invalid}"),
            }));
        }
    };
    let managed = match &plan {
        ClusterPlan::Managed(managed) => (**managed).clone(),
        ClusterPlan::External { .. } => {
            return Ok(Err(Blocked {
                reason: "ExternalCluster",
                message: format!(
                    "the StormCluster {cluster_name} is external: its supervisors run outside Kubernetes, so a worker pool cannot add to them; use a cluster the operator runs"
                ),
            }));
        }
    };
    Ok(Ok(Target {
        topology,
        cluster,
        plan,
        managed,
    }))
}

/// Writes a status saying why nothing can be done, with one Warning Event per new reason.
async fn report_blocked(
    ctx: &Context,
    pool: &StormWorkerPool,
    previous: Option<&StormWorkerPoolStatus>,
    blocked: &Blocked,
    now: Timestamp,
) -> Result<(), Error> {
    let already = previous.is_some_and(|s| {
        s.observed_generation == pool.meta().generation
            && crate::controller::conditions::find(&s.conditions, condition::READY)
                .is_some_and(|c| c.reason == blocked.reason && c.message == blocked.message)
    });
    if already {
        return Ok(());
    }
    ctx.event(
        &pool.object_ref(&()),
        EventType::Warning,
        blocked.reason,
        "Reconcile",
        blocked.message.clone(),
    )
    .await;
    let status = status::compute(&status::Inputs {
        previous,
        generation: pool.meta().generation,
        now,
        desired: pool.spec.template.replicas,
        slots_per_supervisor: pool.spec.template.slots_per_supervisor,
        storm_name: pool.spec.topology_ref.name.clone(),
        hpa_name: previous.and_then(|s| s.hpa_name.clone()),
        blocked: Some(blocked),
        ..status::Inputs::default()
    });
    write_status(ctx, pool, status).await
}

/// Writes `status` when it differs from the last one written (or cached).
async fn write_status(
    ctx: &Context,
    pool: &StormWorkerPool,
    status: StormWorkerPoolStatus,
) -> Result<(), Error> {
    ctx.write_status(pool, pool.status.as_ref(), status).await
}
