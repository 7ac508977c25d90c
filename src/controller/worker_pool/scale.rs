//! The scale planner: a pure function from what the operator observes (the pool's spec, its
//! Deployment and pods, the supervisors Nimbus lists, the topology's state in Storm, the last
//! rebalance) to the one next step that brings the topology's workers to the pool's size.
//!
//! - Scale-up: grow the Deployment, wait until the new supervisors are registered in Nimbus (at
//!   most `registrationTimeoutSeconds`, then go on with those that did), then rebalance to
//!   `min(registered x slots, topology spec.workers)` workers.
//! - Scale-down: rebalance to fewer workers first; shrink the Deployment only once Storm runs that
//!   many (so no worker is killed with its supervisor while others have room).
//! - Every rebalance waits for the previous one to finish (REBALANCING) and for the cooldown after
//!   it (Storm resets its statistics on rebalance, so the HPA needs time to see new numbers).
//! - Only the latest `spec.replicas` counts, so scale requests that arrive while a step is in
//!   progress coalesce into one rebalance.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// Storm's status of a topology that can be rebalanced.
const REBALANCEABLE: [&str; 2] = ["ACTIVE", "INACTIVE"];
/// Storm's status while a rebalance is under way.
const REBALANCING: &str = "REBALANCING";

/// The topology as Nimbus reports it in the latest snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StormState {
    /// Storm's topology id (changes when the topology is resubmitted).
    pub id: String,
    /// `ACTIVE`, `INACTIVE`, `REBALANCING` or `KILLED`.
    pub status: String,
    /// Workers Storm runs for it.
    pub num_workers: i32,
}

/// What the operator's last rebalance for this pool asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastRebalance {
    /// When it was accepted by Nimbus.
    pub at: Timestamp,
    /// The workers it asked for.
    pub workers: Option<i32>,
    /// The topology id it went to.
    pub topology_id: Option<String>,
    /// The pool's supervisor hosts it favored, sorted.
    pub hosts: Vec<String>,
}

/// Everything the planner looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// `spec.replicas`: the pool size wanted (the HPA and `kubectl scale` write it).
    pub desired: i32,
    /// Worker slots per supervisor.
    pub slots_per_supervisor: i32,
    /// The topology's `spec.workers`: the most workers a rebalance asks for.
    pub max_workers: i32,
    /// `.spec.replicas` of the live Deployment; `None` when it does not exist yet.
    pub deployment_replicas: Option<i32>,
    /// Hosts (pod IPs) of the pool's pods that Nimbus lists as supervisors, sorted.
    pub registered_hosts: Vec<String>,
    /// The topology in Storm; `None` when Nimbus does not list it.
    pub storm: Option<StormState>,
    /// The StormTopology is being submitted, updated or killed: leave it alone.
    pub topology_busy: bool,
    /// When the Nimbus snapshot was taken; `None` when there is no usable one (none yet, or
    /// older than the operator trusts).
    pub snapshot_at: Option<Timestamp>,
    /// The operator's last rebalance, if any.
    pub last_rebalance: Option<LastRebalance>,
    /// When the oldest pool pod that is not registered in Nimbus was created (`None` when there
    /// is none): the registration wait is measured from it.
    pub waiting_since: Option<Timestamp>,
    /// Cooldown after a rebalance.
    pub cooldown: Duration,
    /// Longest wait for new supervisors to register.
    pub registration_timeout: Duration,
    /// Now.
    pub now: Timestamp,
}

/// Why a rebalance happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebalanceKind {
    /// More workers.
    ScaleUp,
    /// Fewer workers.
    ScaleDown,
    /// Same number of workers, onto a changed set of supervisors.
    Placement,
}

/// A rebalance's reason: kind and worker counts, shown as `ScaleUp 2->4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebalanceReason {
    /// Kind.
    pub kind: RebalanceKind,
    /// Workers before.
    pub from: i32,
    /// Workers asked for.
    pub to: i32,
}

impl std::fmt::Display for RebalanceReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            RebalanceKind::ScaleUp => "ScaleUp",
            RebalanceKind::ScaleDown => "ScaleDown",
            RebalanceKind::Placement => "Placement",
        };
        write!(f, "{kind} {}->{}", self.from, self.to)
    }
}

/// What is blocking a pool until the topology runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyWait {
    /// Nimbus does not list the topology.
    NotRunning,
    /// The StormTopology is being submitted, updated or killed.
    Busy,
    /// Nimbus lists it as KILLED.
    Killed,
}

/// The next step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Set the Deployment to this many pods (create it, or grow it).
    GrowDeployment(i32),
    /// Wait for the pool's new supervisors to register in Nimbus.
    WaitForRegistration {
        /// Pool supervisors registered.
        registered: i32,
        /// Pool supervisors wanted.
        wanted: i32,
    },
    /// Rebalance the topology to this many workers.
    Rebalance {
        /// Workers.
        workers: i32,
        /// Why.
        reason: RebalanceReason,
    },
    /// A rebalance is due but the cooldown after the last one lasts this much longer.
    WaitCooldown(Duration),
    /// Storm is rebalancing, or the snapshot predates the operator's last rebalance.
    WaitRebalancing,
    /// Set the Deployment to this many pods: the rebalance to fewer workers took effect.
    ShrinkDeployment(i32),
    /// Nothing to do until the topology runs.
    WaitForTopology(TopologyWait),
    /// No recent Nimbus snapshot: nothing but growing the Deployment is safe.
    WaitForNimbus,
    /// The pool and the topology's workers agree.
    Steady,
}

impl Step {
    /// Whether a scale is in progress (the `Scaling` condition).
    pub fn is_scaling(&self) -> bool {
        !matches!(
            self,
            Step::Steady | Step::WaitForTopology(_) | Step::WaitForNimbus
        )
    }
}

/// `min(supervisors x slots, max_workers)`, at least 0.
pub fn workers_for(supervisors: i32, slots: i32, max_workers: i32) -> i32 {
    supervisors
        .max(0)
        .saturating_mul(slots.max(1))
        .min(max_workers.max(1))
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

/// The next step for the pool (see the module docs).
pub fn plan(o: &Observed) -> Step {
    let live = match o.deployment_replicas {
        Some(live) if live >= o.desired => live,
        _ => return Step::GrowDeployment(o.desired),
    };
    let Some(snapshot_at) = o.snapshot_at else {
        return Step::WaitForNimbus;
    };
    if o.topology_busy {
        return Step::WaitForTopology(TopologyWait::Busy);
    }
    let Some(storm) = &o.storm else {
        // No workers to move: the Deployment follows the spec directly.
        if live > o.desired {
            return Step::ShrinkDeployment(o.desired);
        }
        return Step::WaitForTopology(TopologyWait::NotRunning);
    };
    let predates = o
        .last_rebalance
        .as_ref()
        .is_some_and(|last| snapshot_at <= last.at);
    if storm.status == REBALANCING || predates {
        return Step::WaitRebalancing;
    }
    if !REBALANCEABLE.contains(&storm.status.as_str()) {
        return Step::WaitForTopology(TopologyWait::Killed);
    }
    let registered = i32::try_from(o.registered_hosts.len()).unwrap_or(i32::MAX);
    let workers =
        |supervisors: i32| workers_for(supervisors, o.slots_per_supervisor, o.max_workers);

    if live > o.desired {
        // Scale-down: fewer workers first, then fewer pods.
        let target = workers(registered.min(o.desired));
        if storm.num_workers <= target || already_requested(o, storm, target) {
            return Step::ShrinkDeployment(o.desired);
        }
        return rebalance_or_cool_down(o, storm, target);
    }

    let all_registered = registered >= o.desired;
    if !all_registered {
        let waited = o
            .waiting_since
            .map_or(Duration::ZERO, |since| elapsed(since, o.now));
        if waited < o.registration_timeout || registered == 0 {
            return Step::WaitForRegistration {
                registered,
                wanted: o.desired,
            };
        }
    }
    let target = workers(registered.min(o.desired));
    let hosts_moved = all_registered && !placed_on_current_hosts(o);
    let satisfied = storm.num_workers == target || already_requested(o, storm, target);
    if satisfied && !hosts_moved {
        return Step::Steady;
    }
    rebalance_or_cool_down(o, storm, target)
}

/// Whether the last rebalance favored every supervisor the pool has now (hosts that have gone
/// since do no harm: the scheduler skips hosts it does not know).
fn placed_on_current_hosts(o: &Observed) -> bool {
    o.last_rebalance.as_ref().is_some_and(|last| {
        o.registered_hosts
            .iter()
            .all(|h| last.hosts.binary_search(h).is_ok())
    })
}

/// Whether the last rebalance already asked this topology for `target` workers on the current
/// hosts: Storm may run fewer (not enough free slots), and asking again would not help.
fn already_requested(o: &Observed, storm: &StormState, target: i32) -> bool {
    placed_on_current_hosts(o)
        && o.last_rebalance.as_ref().is_some_and(|last| {
            last.workers == Some(target) && last.topology_id.as_deref() == Some(storm.id.as_str())
        })
}

fn rebalance_or_cool_down(o: &Observed, storm: &StormState, target: i32) -> Step {
    if let Some(last) = &o.last_rebalance {
        let since = elapsed(last.at, o.now);
        if since < o.cooldown {
            return Step::WaitCooldown(o.cooldown - since);
        }
    }
    let kind = match target.cmp(&storm.num_workers) {
        std::cmp::Ordering::Greater => RebalanceKind::ScaleUp,
        std::cmp::Ordering::Less => RebalanceKind::ScaleDown,
        std::cmp::Ordering::Equal => RebalanceKind::Placement,
    };
    Step::Rebalance {
        workers: target,
        reason: RebalanceReason {
            kind,
            from: storm.num_workers,
            to: target,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(T0 + secs).unwrap()
    }

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("10.0.0.{i}")).collect()
    }

    fn storm(status: &str, workers: i32) -> Option<StormState> {
        Some(StormState {
            id: "wc-1-1".into(),
            status: status.into(),
            num_workers: workers,
        })
    }

    fn last(secs: i64, workers: i32, n_hosts: usize) -> Option<LastRebalance> {
        Some(LastRebalance {
            at: at(secs),
            workers: Some(workers),
            topology_id: Some("wc-1-1".into()),
            hosts: hosts(n_hosts),
        })
    }

    /// A steady pool of 2 supervisors with 2 slots each; the topology runs 4 workers, placed by
    /// the operator at t=0; now is t=1000 (cooldown 120 s, registration timeout 300 s).
    fn steady() -> Observed {
        Observed {
            desired: 2,
            slots_per_supervisor: 2,
            max_workers: 100,
            deployment_replicas: Some(2),
            registered_hosts: hosts(2),
            storm: storm("ACTIVE", 4),
            topology_busy: false,
            snapshot_at: Some(at(999)),
            last_rebalance: last(0, 4, 2),
            waiting_since: None,
            cooldown: Duration::from_secs(120),
            registration_timeout: Duration::from_secs(300),
            now: at(1000),
        }
    }

    fn reason(kind: RebalanceKind, from: i32, to: i32) -> RebalanceReason {
        RebalanceReason { kind, from, to }
    }

    #[test]
    fn a_pool_that_matches_its_topology_is_steady() {
        assert_eq!(plan(&steady()), Step::Steady);
        assert!(!Step::Steady.is_scaling());
    }

    #[test]
    fn a_missing_or_smaller_deployment_grows_to_the_spec() {
        let o = Observed {
            deployment_replicas: None,
            ..steady()
        };
        assert_eq!(plan(&o), Step::GrowDeployment(2));
        let o = Observed {
            desired: 4,
            ..steady()
        };
        assert_eq!(plan(&o), Step::GrowDeployment(4));
        assert!(Step::GrowDeployment(4).is_scaling());
    }

    #[test]
    fn scale_up_waits_for_the_new_supervisors_then_rebalances_onto_all_of_them() {
        let grown = Observed {
            desired: 4,
            deployment_replicas: Some(4),
            ..steady()
        };
        assert_eq!(
            plan(&grown),
            Step::WaitForRegistration {
                registered: 2,
                wanted: 4
            }
        );
        let three = Observed {
            registered_hosts: hosts(3),
            waiting_since: Some(at(990)),
            ..grown.clone()
        };
        assert!(matches!(
            plan(&three),
            Step::WaitForRegistration { registered: 3, .. }
        ));
        let all = Observed {
            registered_hosts: hosts(4),
            ..grown
        };
        assert_eq!(
            plan(&all),
            Step::Rebalance {
                workers: 8,
                reason: reason(RebalanceKind::ScaleUp, 4, 8)
            }
        );
        assert_eq!(
            reason(RebalanceKind::ScaleUp, 4, 8).to_string(),
            "ScaleUp 4->8"
        );
    }

    #[test]
    fn after_the_registration_timeout_the_rebalance_uses_the_supervisors_that_registered() {
        let o = Observed {
            desired: 4,
            deployment_replicas: Some(4),
            registered_hosts: hosts(3),
            waiting_since: Some(at(1000 - 300)),
            ..steady()
        };
        assert_eq!(
            plan(&o),
            Step::Rebalance {
                workers: 6,
                reason: reason(RebalanceKind::ScaleUp, 4, 6)
            }
        );
        // Done: steady with 3 of 4, not rebalanced again and again.
        let done = Observed {
            storm: storm("ACTIVE", 6),
            last_rebalance: last(1000, 6, 3),
            snapshot_at: Some(at(1005)),
            now: at(1010),
            ..o.clone()
        };
        assert_eq!(plan(&done), Step::Steady);
        // Nothing registered at all: keep waiting, a rebalance to 0 workers makes no sense.
        let none = Observed {
            registered_hosts: Vec::new(),
            ..o
        };
        assert!(matches!(
            plan(&none),
            Step::WaitForRegistration { registered: 0, .. }
        ));
    }

    #[test]
    fn workers_are_capped_by_the_topology_spec() {
        let o = Observed {
            desired: 4,
            deployment_replicas: Some(4),
            registered_hosts: hosts(4),
            max_workers: 5,
            ..steady()
        };
        assert_eq!(
            plan(&o),
            Step::Rebalance {
                workers: 5,
                reason: reason(RebalanceKind::ScaleUp, 4, 5)
            }
        );
        assert_eq!(workers_for(3, 2, 100), 6);
        assert_eq!(workers_for(0, 2, 100), 0);
    }

    #[test]
    fn a_rebalance_within_the_cooldown_waits_for_the_rest_of_it() {
        let o = Observed {
            desired: 4,
            deployment_replicas: Some(4),
            registered_hosts: hosts(4),
            last_rebalance: last(950, 4, 2),
            ..steady()
        };
        assert_eq!(plan(&o), Step::WaitCooldown(Duration::from_secs(70)));
        let later = Observed {
            now: at(950 + 120),
            snapshot_at: Some(at(950 + 119)),
            ..o
        };
        assert!(matches!(plan(&later), Step::Rebalance { workers: 8, .. }));
    }

    #[test]
    fn nothing_happens_while_storm_rebalances_or_the_snapshot_is_older_than_our_rebalance() {
        let rebalancing = Observed {
            storm: storm("REBALANCING", 4),
            ..steady()
        };
        assert_eq!(plan(&rebalancing), Step::WaitRebalancing);
        let stale = Observed {
            desired: 4,
            deployment_replicas: Some(4),
            registered_hosts: hosts(4),
            last_rebalance: last(1000, 8, 4),
            snapshot_at: Some(at(999)),
            ..steady()
        };
        assert_eq!(
            plan(&stale),
            Step::WaitRebalancing,
            "the snapshot still shows 4 workers because it was taken before the rebalance"
        );
        let no_snapshot = Observed {
            snapshot_at: None,
            desired: 1,
            ..stale
        };
        assert_eq!(
            plan(&no_snapshot),
            Step::WaitForNimbus,
            "without Nimbus data not even a shrink is safe"
        );
        assert!(!Step::WaitForNimbus.is_scaling());
        let grow = Observed {
            desired: 6,
            ..no_snapshot
        };
        assert_eq!(
            plan(&grow),
            Step::GrowDeployment(6),
            "growing is always safe"
        );
    }

    #[test]
    fn scale_down_rebalances_first_and_shrinks_once_storm_runs_fewer_workers() {
        let o = Observed {
            desired: 1,
            ..steady()
        };
        assert_eq!(
            plan(&o),
            Step::Rebalance {
                workers: 2,
                reason: reason(RebalanceKind::ScaleDown, 4, 2)
            }
        );
        let rebalanced = Observed {
            storm: storm("ACTIVE", 2),
            last_rebalance: last(1000, 2, 2),
            snapshot_at: Some(at(1001)),
            now: at(1002),
            ..o.clone()
        };
        assert_eq!(plan(&rebalanced), Step::ShrinkDeployment(1));
        // The shrink does not wait for the cooldown: the workers already moved.
        let cooling = Observed {
            last_rebalance: last(1000, 2, 2),
            ..rebalanced.clone()
        };
        assert_eq!(plan(&cooling), Step::ShrinkDeployment(1));
        // Shrunk: the removed supervisor's host in the favored list does not call for another
        // rebalance.
        let shrunk = Observed {
            deployment_replicas: Some(1),
            registered_hosts: vec!["10.0.0.2".into()],
            now: at(2000),
            snapshot_at: Some(at(1999)),
            ..rebalanced
        };
        assert_eq!(plan(&shrunk), Step::Steady);
        // But the rebalance itself does.
        let too_soon = Observed {
            last_rebalance: last(990, 4, 2),
            ..o
        };
        assert_eq!(
            plan(&too_soon),
            Step::WaitCooldown(Duration::from_secs(110))
        );
    }

    #[test]
    fn scale_down_of_a_topology_that_is_not_running_shrinks_at_once() {
        let o = Observed {
            desired: 1,
            storm: None,
            ..steady()
        };
        assert_eq!(plan(&o), Step::ShrinkDeployment(1));
        let idle = Observed {
            storm: None,
            ..steady()
        };
        assert_eq!(plan(&idle), Step::WaitForTopology(TopologyWait::NotRunning));
        assert!(!Step::WaitForTopology(TopologyWait::NotRunning).is_scaling());
    }

    #[test]
    fn a_busy_or_killed_topology_is_left_alone() {
        let busy = Observed {
            desired: 4,
            deployment_replicas: Some(4),
            registered_hosts: hosts(4),
            topology_busy: true,
            ..steady()
        };
        assert_eq!(plan(&busy), Step::WaitForTopology(TopologyWait::Busy));
        let killed = Observed {
            storm: storm("KILLED", 4),
            ..busy.clone()
        };
        let killed = Observed {
            topology_busy: false,
            ..killed
        };
        assert_eq!(plan(&killed), Step::WaitForTopology(TopologyWait::Killed));
        let inactive = Observed {
            storm: storm("INACTIVE", 4),
            topology_busy: false,
            ..busy
        };
        assert!(
            matches!(plan(&inactive), Step::Rebalance { workers: 8, .. }),
            "a suspended topology can be rebalanced"
        );
    }

    #[test]
    fn successive_scales_coalesce_into_one_rebalance_to_the_latest_size() {
        // Scaled 2 -> 3 -> 5 while the first new supervisors were still starting.
        let o = Observed {
            desired: 5,
            deployment_replicas: Some(3),
            registered_hosts: hosts(3),
            waiting_since: Some(at(990)),
            ..steady()
        };
        assert_eq!(plan(&o), Step::GrowDeployment(5));
        let grown = Observed {
            deployment_replicas: Some(5),
            ..o
        };
        assert!(matches!(
            plan(&grown),
            Step::WaitForRegistration {
                registered: 3,
                wanted: 5
            }
        ));
        let all = Observed {
            registered_hosts: hosts(5),
            ..grown
        };
        assert_eq!(
            plan(&all),
            Step::Rebalance {
                workers: 10,
                reason: reason(RebalanceKind::ScaleUp, 4, 10)
            }
        );
    }

    #[test]
    fn a_replaced_supervisor_moves_the_workers_onto_the_new_host() {
        let mut moved = hosts(2);
        moved[1] = "10.0.0.9".into();
        moved.sort();
        let o = Observed {
            registered_hosts: moved,
            ..steady()
        };
        assert_eq!(
            plan(&o),
            Step::Rebalance {
                workers: 4,
                reason: reason(RebalanceKind::Placement, 4, 4)
            }
        );
        let never = Observed {
            last_rebalance: None,
            ..steady()
        };
        assert!(
            matches!(
                plan(&never),
                Step::Rebalance {
                    reason: RebalanceReason {
                        kind: RebalanceKind::Placement,
                        ..
                    },
                    ..
                }
            ),
            "a topology the operator never placed gets its favored nodes once"
        );
    }

    #[test]
    fn storm_running_fewer_workers_than_asked_is_not_asked_again() {
        // Asked for 4; Storm found slots for 3 only (shared cluster full).
        let o = Observed {
            storm: storm("ACTIVE", 3),
            ..steady()
        };
        assert_eq!(plan(&o), Step::Steady);
        // A resubmitted topology (new id) is asked again.
        let resubmitted = Observed {
            storm: Some(StormState {
                id: "wc-2-2".into(),
                status: "ACTIVE".into(),
                num_workers: 8,
            }),
            ..steady()
        };
        assert_eq!(
            plan(&resubmitted),
            Step::Rebalance {
                workers: 4,
                reason: reason(RebalanceKind::ScaleDown, 8, 4)
            }
        );
    }
}
