//! StormCluster: fetch, validate (pure), build (pure), apply, status.

pub mod build;
pub mod status;
pub mod validate;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use crate::clusters::{ClusterKey, NimbusTarget};
use crate::controller::apply::{self, Applied};
use crate::controller::context::{Context, Error};
use crate::controller::labels::{self, Component};
use crate::crd::cluster::condition;
use crate::crd::common::condition_status::{FALSE, TRUE};
use crate::crd::{StormCluster, StormClusterStatus};
use validate::ClusterPlan;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "stormcluster";

/// The Nimbus target of a validated cluster.
pub fn nimbus_target(cluster: &StormCluster, plan: &ClusterPlan) -> NimbusTarget {
    let seeds = match plan {
        ClusterPlan::External { seeds } => seeds.iter().map(|(h, p)| format!("{h}:{p}")).collect(),
        ClusterPlan::Managed(m) => build::nimbus_seeds(m)
            .into_iter()
            .map(|h| format!("{h}:{}", build::NIMBUS_PORT))
            .collect(),
    };
    let thrift = &cluster.spec.thrift;
    NimbusTarget {
        seeds,
        call_timeout: std::time::Duration::from_secs(
            u64::try_from(thrift.call_timeout_seconds.max(1)).unwrap_or(10),
        ),
        max_response_bytes: usize::try_from(thrift.max_response_bytes).unwrap_or(64 << 20),
    }
}

/// One reconcile of a StormCluster.
pub async fn reconcile(cluster: Arc<StormCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = cluster
        .namespace()
        .ok_or(Error::MissingField("namespace"))?;
    let name = cluster.name_any();
    let key = ClusterKey::new(&namespace, &name);
    if cluster.meta().deletion_timestamp.is_some() {
        // Children go with the owner (garbage collection); only our connection is ours to drop.
        ctx.clusters.remove(&key);
        return Ok(Action::await_change());
    }
    let plan = match validate::validate(&cluster) {
        Ok(plan) => plan,
        Err(invalid) => {
            report_invalid(&cluster, &ctx, &invalid).await?;
            return Ok(Action::await_change());
        }
    };
    let connection = ctx.clusters.ensure(&key, &nimbus_target(&cluster, &plan))?;
    let snapshot = connection.snapshot();
    let nimbus_view = status::NimbusView {
        snapshot: Some(&snapshot),
        max_age: ctx.settings.max_data_age,
        now: Timestamp::now(),
    };

    // Condition transition times come from the last status we wrote when the cache has not
    // caught up with it yet (see `WrittenStatus`).
    let previous = ctx
        .written
        .previous(cluster.uid().as_deref(), cluster.status.as_ref());
    let mut written = Vec::new();
    let status = match &plan {
        ClusterPlan::External { .. } => status::compute(
            previous.as_ref(),
            cluster.meta().generation,
            status::Workloads::default(),
            nimbus_view,
        ),
        ClusterPlan::Managed(managed) => {
            let children = build::build(&cluster, managed);
            let client = &ctx.client;
            macro_rules! apply_child {
                ($ty:ty, $obj:expr) => {{
                    let obj: &$ty = $obj;
                    let live = apply::get_opt::<$ty>(client, &namespace, &obj.name_any()).await?;
                    if apply::apply(client, obj, live.as_ref()).await? == Applied::Written {
                        written.push(format!(
                            "{}/{}",
                            <$ty as Resource>::kind(&()),
                            obj.name_any()
                        ));
                    }
                    live
                }};
            }
            apply_child!(ConfigMap, &children.config_map);
            apply_child!(Service, &children.nimbus_headless);
            apply_child!(Service, &children.nimbus_service);
            let nimbus_live = apply_child!(StatefulSet, &children.nimbus);
            apply_child!(PodDisruptionBudget, &children.nimbus_pdb);
            let supervisors_live = apply_child!(Deployment, &children.supervisors);
            let mut keep_ui = Vec::new();
            if let Some((deploy, svc)) = &children.ui {
                apply_child!(Deployment, deploy);
                apply_child!(Service, svc);
                keep_ui.push(build::names::ui(&name));
            }
            let uid = cluster.uid().unwrap_or_default();
            let ui_selector =
                labels::selector_string(&labels::selector_labels(&name, Component::Ui));
            let mut removed = apply::delete_orphans::<Deployment>(
                client,
                &namespace,
                &ui_selector,
                &uid,
                &keep_ui,
            )
            .await?;
            removed.extend(
                apply::delete_orphans::<Service>(client, &namespace, &ui_selector, &uid, &keep_ui)
                    .await?,
            );
            if !removed.is_empty() {
                let note = format!("deleted {} (no longer in the spec)", removed.join(", "));
                ctx.event(
                    &cluster.object_ref(&()),
                    EventType::Normal,
                    "ChildrenDeleted",
                    "Delete",
                    note,
                )
                .await;
            }
            status::compute(
                previous.as_ref(),
                cluster.meta().generation,
                status::Workloads {
                    plan: Some(managed),
                    nimbus: nimbus_live.as_ref(),
                    supervisors: supervisors_live.as_ref(),
                    config_hash: Some(&children.config_hash),
                },
                nimbus_view,
            )
        }
    };
    report_availability_change(&ctx, &cluster, &status, &snapshot).await;
    if !written.is_empty() {
        let note = format!("applied {}", written.join(", "));
        ctx.event(
            &cluster.object_ref(&()),
            EventType::Normal,
            "Applied",
            "Apply",
            note,
        )
        .await;
    }
    write_status(&ctx, &cluster, status).await?;
    Ok(Action::requeue(ctx.settings.resync))
}

/// A Warning Event with Nimbus's error when the cluster turns unavailable, a Normal one when it
/// comes back: the condition message stays stable, the Event carries the details.
async fn report_availability_change(
    ctx: &Context,
    cluster: &StormCluster,
    status: &StormClusterStatus,
    snapshot: &crate::stats::ClusterSnapshot,
) {
    let find = |s: Option<&StormClusterStatus>| {
        s.and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == condition::AVAILABLE)
        })
        .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let previous = ctx
        .written
        .previous(cluster.uid().as_deref(), cluster.status.as_ref());
    let (Some(now), before) = (find(Some(status)), find(previous.as_ref())) else {
        return;
    };
    if before.as_ref() == Some(&now) {
        return;
    }
    let reference = cluster.object_ref(&());
    match (now.0.as_str(), now.1.as_str()) {
        (TRUE, _) => {
            let note = format!(
                "Nimbus leader {} answers",
                status.leader.clone().unwrap_or_default()
            );
            ctx.event(
                &reference,
                EventType::Normal,
                "NimbusAvailable",
                "Connect",
                note,
            )
            .await;
        }
        (_, reason @ ("NimbusUnreachable" | "NoLeader")) => {
            let note = snapshot
                .error
                .clone()
                .unwrap_or_else(|| "Nimbus answers but reports no leader".into());
            ctx.event(&reference, EventType::Warning, reason, "Connect", note)
                .await;
        }
        _ => {}
    }
}

/// Writes `status` when it differs from the stored one: a steady state writes nothing.
async fn write_status(
    ctx: &Context,
    cluster: &StormCluster,
    status: StormClusterStatus,
) -> Result<(), Error> {
    ctx.write_status(cluster, cluster.status.as_ref(), status)
        .await
}

async fn report_invalid(
    cluster: &StormCluster,
    ctx: &Context,
    invalid: &validate::InvalidSpec,
) -> Result<(), Error> {
    let stored = ctx
        .written
        .previous(cluster.uid().as_deref(), cluster.status.as_ref());
    let already_reported = stored.as_ref().is_some_and(|s| {
        s.observed_generation == cluster.meta().generation
            && s.conditions.iter().any(|c| {
                c.type_ == condition::DEGRADED
                    && c.reason == invalid.reason()
                    && c.message == invalid.to_string()
            })
    });
    if already_reported {
        // Reported for this generation already: no second Event, no write.
        return Ok(());
    }
    ctx.event(
        &cluster.object_ref(&()),
        EventType::Warning,
        invalid.reason(),
        "Validate",
        invalid.to_string(),
    )
    .await;
    let now = Timestamp::now();
    let generation = cluster.meta().generation;
    let previous = stored
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    let desired = [
        crate::controller::conditions::Desired {
            type_: condition::DEGRADED,
            status: TRUE,
            reason: invalid.reason(),
            message: invalid.to_string(),
        },
        crate::controller::conditions::Desired {
            type_: condition::PROGRESSING,
            status: FALSE,
            reason: "InvalidSpec",
            message: "fix the spec; nothing is applied until then".into(),
        },
    ];
    let mut status = stored.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.conditions = crate::controller::conditions::merge(previous, &desired, generation, now);
    write_status(ctx, cluster, status).await
}
