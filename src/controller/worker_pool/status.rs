//! The pool's status, computed (pure) from what the reconcile observed and did: the `/scale`
//! fields, supervisors, slots and workers, the last rebalance, and the conditions `Ready`,
//! `Scaling` and `RebalanceFailed`.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;

use super::scale::{LastRebalance, RebalanceReason, Step, TopologyWait};
use crate::controller::conditions::{self, Desired};
use crate::crd::common::condition_status::{FALSE, TRUE};
use crate::crd::worker_pool::{StormWorkerPoolStatus, condition};

/// A rebalance Nimbus accepted in this reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Rebalanced {
    /// When (rounded up to the second, so a snapshot taken later really is later).
    pub at: Timestamp,
    /// Why.
    pub reason: RebalanceReason,
    /// The topology id it went to.
    pub topology_id: String,
    /// The favored hosts, sorted.
    pub hosts: Vec<String>,
}

/// Why nothing could be done for the pool (the topology or its cluster is missing or unusable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// CamelCase reason, also the Event reason.
    pub reason: &'static str,
    /// What a person should do.
    pub message: String,
}

/// What the status is computed from.
#[derive(Clone, Debug, Default)]
pub struct Inputs<'a> {
    /// The status to start from (the last one written, or the cached one).
    pub previous: Option<&'a StormWorkerPoolStatus>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Now, for condition transition times.
    pub now: Timestamp,
    /// The live Deployment (its status counts the pods).
    pub deployment: Option<&'a Deployment>,
    /// The pod selector in string form (the `/scale` selector).
    pub selector: Option<String>,
    /// `spec.replicas`.
    pub desired: i32,
    /// Slots per supervisor.
    pub slots_per_supervisor: i32,
    /// Pool supervisors registered in Nimbus (`None` without Nimbus data).
    pub registered: Option<i32>,
    /// Workers running on the pool's supervisors (`None` without Nimbus data).
    pub workers_assigned: Option<i32>,
    /// The Storm name of the topology.
    pub storm_name: String,
    /// Name of the HPA, when `spec.autoscaling` is set.
    pub hpa_name: Option<String>,
    /// The planner's step.
    pub step: Option<&'a Step>,
    /// A rebalance done in this reconcile.
    pub rebalanced: Option<&'a Rebalanced>,
    /// Why the rebalance of this reconcile failed.
    pub rebalance_error: Option<String>,
    /// Why nothing could be done.
    pub blocked: Option<&'a Blocked>,
}

/// The last rebalance recorded in `status`, if it is complete enough to plan with.
pub fn last_rebalance(status: Option<&StormWorkerPoolStatus>) -> Option<LastRebalance> {
    let status = status?;
    let at: Timestamp = status.last_rebalance_time.as_deref()?.parse().ok()?;
    let mut hosts = status.placement_hosts.clone();
    hosts.sort();
    Some(LastRebalance {
        at,
        workers: status.last_rebalance_workers,
        topology_id: status.last_rebalance_topology_id.clone(),
        hosts,
    })
}

/// `(reason, message)` of the `Scaling` condition for a step.
fn scaling(step: &Step, storm_name: &str) -> (&'static str, bool, String) {
    match step {
        Step::GrowDeployment(n) => (
            "GrowingDeployment",
            true,
            format!("setting the supervisor Deployment to {n} pods"),
        ),
        Step::WaitForRegistration { registered, wanted } => (
            "WaitingForRegistration",
            true,
            format!("{registered} of {wanted} supervisors registered in Nimbus"),
        ),
        Step::Rebalance { workers, reason } => (
            "Rebalancing",
            true,
            format!("rebalancing {storm_name} to {workers} workers ({reason})"),
        ),
        Step::WaitCooldown(left) => (
            "CoolingDown",
            true,
            format!(
                "the next rebalance waits {}s for the cooldown after the last one",
                left.as_secs()
            ),
        ),
        Step::WaitRebalancing => (
            "WaitingForRebalance",
            true,
            format!("waiting for Storm to finish rebalancing {storm_name}"),
        ),
        Step::ShrinkDeployment(n) => (
            "ShrinkingDeployment",
            true,
            format!("workers moved off; setting the supervisor Deployment to {n} pods"),
        ),
        Step::WaitForTopology(_) | Step::WaitForNimbus | Step::Steady => {
            ("Steady", false, "no scale in progress".into())
        }
    }
}

/// `(status, reason, message)` of the `Ready` condition.
fn ready(inputs: &Inputs<'_>, step: &Step) -> (&'static str, &'static str, String) {
    let name = &inputs.storm_name;
    match step {
        Step::Steady => {
            let registered = inputs.registered.unwrap_or(0);
            if registered >= inputs.desired {
                (
                    TRUE,
                    "Ready",
                    format!(
                        "{registered} supervisors registered; {} workers run on the pool",
                        inputs.workers_assigned.unwrap_or(0)
                    ),
                )
            } else {
                (
                    FALSE,
                    "SupervisorsMissing",
                    format!(
                        "{registered} of {} supervisors registered in Nimbus; the topology was rebalanced onto those",
                        inputs.desired
                    ),
                )
            }
        }
        Step::WaitForTopology(TopologyWait::NotRunning) => (
            FALSE,
            "TopologyNotRunning",
            format!("Nimbus does not list the topology {name}"),
        ),
        Step::WaitForTopology(TopologyWait::Busy) => (
            FALSE,
            "TopologyBusy",
            format!("the topology {name} is being submitted, updated or killed"),
        ),
        Step::WaitForTopology(TopologyWait::Killed) => (
            FALSE,
            "TopologyKilled",
            format!("Storm is killing the topology {name}"),
        ),
        Step::WaitForNimbus => (
            FALSE,
            "NimbusUnavailable",
            "no recent data from Nimbus".into(),
        ),
        _ => (FALSE, "Scaling", "a scale is in progress".into()),
    }
}

/// The status after this reconcile. Unchanged inputs give an identical status.
pub fn compute(inputs: &Inputs<'_>) -> StormWorkerPoolStatus {
    let mut status = inputs.previous.cloned().unwrap_or_default();
    status.observed_generation = inputs.generation;
    let deployment_status = inputs.deployment.and_then(|d| d.status.as_ref());
    status.replicas = deployment_status.and_then(|s| s.replicas).unwrap_or(0);
    status.ready_replicas = deployment_status
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    if inputs.selector.is_some() {
        status.selector = inputs.selector.clone();
    }
    status.hpa_name = inputs.hpa_name.clone();
    if inputs.registered.is_some() {
        status.supervisors_registered = inputs.registered;
        status.slots = inputs
            .registered
            .map(|r| r.saturating_mul(inputs.slots_per_supervisor));
        status.workers_assigned = inputs.workers_assigned;
    }
    if let Some(done) = inputs.rebalanced {
        status.last_rebalance_time = Some(done.at.to_string());
        status.last_rebalance_reason = Some(done.reason.to_string());
        status.last_rebalance_workers = Some(done.reason.to);
        status.last_rebalance_topology_id = Some(done.topology_id.clone());
        status.placement_hosts = done.hosts.clone();
    }

    let mut desired: Vec<Desired<'_>> = Vec::new();
    if let Some(blocked) = inputs.blocked {
        desired.push(Desired {
            type_: condition::READY,
            status: FALSE,
            reason: blocked.reason,
            message: blocked.message.clone(),
        });
        desired.push(Desired {
            type_: condition::SCALING,
            status: FALSE,
            reason: blocked.reason,
            message: "nothing is scaled until this is fixed".into(),
        });
    } else if let Some(step) = inputs.step {
        let (status_, reason, message) = ready(inputs, step);
        desired.push(Desired {
            type_: condition::READY,
            status: status_,
            reason,
            message,
        });
        let (reason, scaling_now, message) = scaling(step, &inputs.storm_name);
        desired.push(Desired {
            type_: condition::SCALING,
            status: if scaling_now { TRUE } else { FALSE },
            reason,
            message,
        });
    }
    match (&inputs.rebalance_error, inputs.rebalanced) {
        (Some(error), _) => desired.push(Desired {
            type_: condition::REBALANCE_FAILED,
            status: TRUE,
            reason: "RebalanceFailed",
            message: error.clone(),
        }),
        (None, Some(done)) => desired.push(Desired {
            type_: condition::REBALANCE_FAILED,
            status: FALSE,
            reason: "Rebalanced",
            message: format!("the last rebalance ({}) was accepted", done.reason),
        }),
        (None, None) => {
            if conditions::find(&status.conditions, condition::REBALANCE_FAILED).is_none() {
                desired.push(Desired {
                    type_: condition::REBALANCE_FAILED,
                    status: FALSE,
                    reason: "NoFailure",
                    message: "no rebalance has failed".into(),
                });
            }
        }
    }
    status.conditions =
        conditions::merge(&status.conditions, &desired, inputs.generation, inputs.now);
    status
}
