//! StormCluster status, computed purely from what was applied and what Nimbus reports.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::validate::Managed;
use crate::controller::conditions::{self, Desired};
use crate::crd::cluster::{ClusterPhase, NimbusStatus, SlotsStatus, StormClusterStatus, condition};
use crate::crd::common::condition_status::{FALSE, TRUE};
use crate::stats::ClusterSnapshot;

/// What the reconciler saw of a cluster's workloads (managed clusters only).
#[derive(Clone, Copy, Debug, Default)]
pub struct Workloads<'a> {
    /// The plan the workloads were built from.
    pub plan: Option<&'a Managed>,
    /// The live Nimbus StatefulSet.
    pub nimbus: Option<&'a StatefulSet>,
    /// The live supervisor Deployment.
    pub supervisors: Option<&'a Deployment>,
    /// Hash of the rendered storm.yaml.
    pub config_hash: Option<&'a str>,
}

/// The Nimbus side of the status: reachable, fresh data, or why not.
#[derive(Clone, Copy, Debug)]
pub struct NimbusView<'a> {
    /// The collector's latest snapshot, if a collector runs.
    pub snapshot: Option<&'a ClusterSnapshot>,
    /// Data older than this counts as unreachable.
    pub max_age: Duration,
    /// Now.
    pub now: Timestamp,
}

fn rollout_done_sts(sts: &StatefulSet) -> (i32, i32, bool) {
    let desired = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = sts.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let generation_seen =
        status.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0) >= desired
        && status.current_revision.is_some()
        && status.current_revision == status.update_revision;
    (
        ready,
        desired,
        generation_seen && updated && ready >= desired,
    )
}

fn rollout_done_deploy(deploy: &Deployment) -> (i32, i32, bool) {
    let desired = deploy.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = deploy.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let generation_seen =
        status.observed_generation.unwrap_or(0) >= deploy.metadata.generation.unwrap_or(0);
    let updated =
        status.updated_replicas.unwrap_or(0) >= desired && status.replicas.unwrap_or(0) == desired;
    (
        ready,
        desired,
        generation_seen && updated && ready >= desired,
    )
}

/// Computes the status of a cluster at `generation`, keeping condition transition times from `current`.
pub fn compute(
    current: Option<&StormClusterStatus>,
    generation: Option<i64>,
    workloads: Workloads<'_>,
    nimbus: NimbusView<'_>,
) -> StormClusterStatus {
    let mut status = StormClusterStatus {
        observed_generation: generation,
        config_hash: workloads.config_hash.map(str::to_string),
        ..StormClusterStatus::default()
    };

    // What Nimbus says, when the data is fresh enough to trust.
    let snapshot = nimbus.snapshot;
    let fresh = snapshot.filter(|s| s.age(nimbus.now).is_some_and(|age| age <= nimbus.max_age));
    let summary = fresh.and_then(|s| s.cluster.as_ref());
    if let Some(summary) = summary {
        let mut nimbuses: Vec<NimbusStatus> = summary
            .nimbuses
            .iter()
            .map(|n| NimbusStatus {
                address: format!("{}:{}", n.host, n.port),
                leader: n.is_leader,
                version: Some(n.version.clone()).filter(|v| !v.is_empty()),
            })
            .collect();
        nimbuses.sort_by(|a, b| a.address.cmp(&b.address));
        status.leader = nimbuses
            .iter()
            .find(|n| n.leader)
            .map(|n| n.address.clone());
        status.storm_version = nimbuses
            .iter()
            .find(|n| n.leader)
            .and_then(|n| n.version.clone());
        status.nimbuses = nimbuses;
        let total: i32 = summary
            .supervisors
            .iter()
            .map(|s| s.num_workers.max(0))
            .sum();
        let used: i32 = summary
            .supervisors
            .iter()
            .map(|s| s.num_used_workers.max(0))
            .sum();
        status.slots = Some(SlotsStatus {
            total,
            used,
            free: (total - used).max(0),
        });
        status.supervisors_registered =
            Some(i32::try_from(summary.supervisors.len()).unwrap_or(i32::MAX));
        status.topologies = Some(i32::try_from(summary.topologies.len()).unwrap_or(i32::MAX));
    }

    // What Kubernetes says about the workloads.
    let nimbus_rollout = workloads.nimbus.map(rollout_done_sts);
    let supervisor_rollout = workloads.supervisors.map(rollout_done_deploy);
    if let Some(plan) = workloads.plan {
        status.supervisors_desired = Some(plan.supervisors.replicas);
        status.supervisors_ready = Some(supervisor_rollout.map(|(ready, _, _)| ready).unwrap_or(0));
    }
    let managed = workloads.plan.is_some();
    status.supervisors_summary = match (
        managed,
        status.supervisors_registered,
        status.supervisors_desired,
    ) {
        (true, registered, Some(desired)) => Some(format!("{}/{desired}", registered.unwrap_or(0))),
        (false, Some(registered), _) => Some(registered.to_string()),
        _ => None,
    };

    // Conditions.
    let available = match (snapshot, fresh, summary) {
        (_, Some(_), Some(_)) if status.leader.is_some() => Desired {
            type_: condition::AVAILABLE,
            status: TRUE,
            reason: "LeaderElected",
            message: format!(
                "Nimbus leader {} answers",
                status.leader.clone().unwrap_or_default()
            ),
        },
        (_, Some(_), Some(_)) => Desired {
            type_: condition::AVAILABLE,
            status: FALSE,
            reason: "NoLeader",
            message:
                "Nimbus answers but no Nimbus is the leader (is ZooKeeper reachable from Nimbus?)"
                    .into(),
        },
        (Some(s), _, _) if s.error.is_some() && s.taken_at.is_none() => Desired {
            type_: condition::AVAILABLE,
            status: FALSE,
            reason: "NimbusUnreachable",
            // The error text varies from poll to poll (timeouts, resets, DNS); a stable message
            // keeps a steady state free of status writes. The text goes into an Event when
            // the condition turns (see the reconciler) and into the log on every failed poll.
            message: "Nimbus does not answer; the operator retries every poll (the Warning Event and the operator log carry the error)".into(),
        },
        (Some(s), _, _) if s.taken_at.is_some() => Desired {
            type_: condition::AVAILABLE,
            status: FALSE,
            reason: "NimbusUnreachable",
            message: format!(
                "no answer from Nimbus for more than {} s",
                nimbus.max_age.as_secs()
            ),
        },
        _ => Desired {
            type_: condition::AVAILABLE,
            status: FALSE,
            reason: "WaitingForNimbus",
            message: "Nimbus has not been reached yet".into(),
        },
    };

    let mut rolling = Vec::new();
    if let Some((ready, desired, false)) = nimbus_rollout {
        rolling.push(format!("Nimbus {ready}/{desired} ready"));
    }
    if let Some((ready, desired, false)) = supervisor_rollout {
        rolling.push(format!("supervisors {ready}/{desired} ready"));
    }
    let progressing = if rolling.is_empty() {
        Desired {
            type_: condition::PROGRESSING,
            status: FALSE,
            reason: if managed {
                "RolloutComplete"
            } else {
                "External"
            },
            message: if managed {
                "every workload runs the current spec".into()
            } else {
                "the operator runs no workloads for an external cluster".into()
            },
        }
    } else {
        Desired {
            type_: condition::PROGRESSING,
            status: TRUE,
            reason: "RollingOut",
            message: rolling.join(", "),
        }
    };

    let mut degraded = Vec::new();
    if available.status != TRUE {
        degraded.push((available.reason, available.message.clone()));
    }
    if rolling.is_empty()
        && let (Some(registered), Some(desired)) =
            (status.supervisors_registered, status.supervisors_desired)
        && registered < desired
    {
        degraded.push((
            "SupervisorsMissing",
            format!("{registered} of {desired} supervisors are registered in Nimbus"),
        ));
    }
    if rolling.is_empty()
        && managed
        && status.nimbuses.len() == 1
        && workloads.plan.is_some_and(|p| p.nimbus.replicas > 1)
    {
        degraded.push((
            "NoStandbyNimbus",
            "only one Nimbus is registered; there is no standby leader".into(),
        ));
    }
    let degraded_condition = match degraded.first() {
        Some((reason, _)) => Desired {
            type_: condition::DEGRADED,
            status: TRUE,
            reason,
            message: degraded
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        },
        None => Desired {
            type_: condition::DEGRADED,
            status: FALSE,
            reason: "AsDesired",
            message: "the cluster runs as specified".into(),
        },
    };

    status.phase = Some(if available.status != TRUE {
        if snapshot.is_some_and(|s| s.error.is_some() || s.taken_at.is_some()) {
            ClusterPhase::Unreachable
        } else {
            ClusterPhase::Progressing
        }
    } else if progressing.status == TRUE {
        ClusterPhase::Progressing
    } else if degraded_condition.status == TRUE {
        ClusterPhase::Degraded
    } else {
        ClusterPhase::Running
    });

    let previous: &[Condition] = current.map(|c| c.conditions.as_slice()).unwrap_or(&[]);
    status.conditions = conditions::merge(
        previous,
        &[available, progressing, degraded_condition],
        generation,
        nimbus.now,
    );
    status
}
