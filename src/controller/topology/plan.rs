//! The pure decision at the heart of the StormTopology reconciler: given what Nimbus lists under
//! the topology's two Storm names and the spec, what is the next step?
//!
//! The decision reads Nimbus, never the operator's own status, for anything destructive: after an
//! operator restart, a lost status or a second replica, the same Nimbus state gives the same step,
//! so nothing is submitted twice and the version the spec asks for is never the one killed.
//!
//! A topology has two Storm names ("slots"): its primary name (`spec.stormName` or
//! `metadata.name`) and an alternate `<primary>-green`. `Recreate` always uses the slot the
//! topology already runs in; `BlueGreen` submits the new version into the free slot, waits until
//! it runs, then kills the old one.

use std::collections::BTreeMap;

use crate::crd::topology::UpdateStrategyType;
use crate::nimbus::storm::TopologySummary;

/// Suffix of the alternate Storm name a BlueGreen update submits into.
pub const ALTERNATE_SUFFIX: &str = "-green";

/// The alternate Storm name of `primary`.
pub fn alternate_name(primary: &str) -> String {
    format!("{primary}{ALTERNATE_SUFFIX}")
}

/// What Nimbus lists under one of the topology's Storm names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Storm name.
    pub name: String,
    /// Storm id (`name-N-epoch`).
    pub id: String,
    /// ACTIVE, INACTIVE, REBALANCING or KILLED.
    pub status: String,
    /// `topology.version`, when the topology has one.
    pub version: Option<String>,
    /// Workers Storm assigned.
    pub workers: i32,
    /// Executors.
    pub executors: i32,
    /// Tasks.
    pub tasks: i32,
    /// Seconds since submission.
    pub uptime_secs: i32,
}

impl Listed {
    /// From a Nimbus summary.
    pub fn from_summary(s: &TopologySummary) -> Self {
        Self {
            name: s.name.clone(),
            id: s.id.clone(),
            status: s.status.clone(),
            version: s.topology_version.clone(),
            workers: s.num_workers,
            executors: s.num_executors,
            tasks: s.num_tasks,
            uptime_secs: s.uptime_secs,
        }
    }

    /// Not being killed.
    pub fn alive(&self) -> bool {
        self.status != "KILLED"
    }
}

/// Everything the decision depends on.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// The version the spec asks for.
    pub desired_version: &'a str,
    /// `spec.suspend`.
    pub suspend: bool,
    /// `spec.updateStrategy.type`.
    pub strategy: UpdateStrategyType,
    /// `spec.updateStrategy.activationTimeoutSeconds`.
    pub activation_timeout_secs: i32,
    /// The primary Storm name.
    pub primary: &'a str,
    /// The Storm name the status says the topology runs under, if any.
    pub current: Option<&'a str>,
    /// What Nimbus lists under the primary and the alternate name.
    pub listed: &'a [Listed],
    /// A BlueGreen update to `desired_version` timed out before: keep the old version.
    pub update_abandoned: bool,
}

/// Why a topology is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// `Recreate` update: the old version goes first.
    Recreate,
    /// `BlueGreen` update: the new version runs, the old one goes.
    Replaced,
    /// `BlueGreen` update: the new version did not become active in time.
    ActivationTimeout,
    /// More than one outdated copy runs; the one the status does not name goes.
    Duplicate,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing runs the desired version: submit it under `storm_name`.
    Submit {
        /// Storm name to submit under.
        storm_name: String,
        /// An update replaces a running topology (as opposed to a first submission).
        update: bool,
    },
    /// A killed topology is still listed under `storm_name`: wait until Nimbus removes it.
    WaitGone {
        /// The Storm name.
        storm_name: String,
    },
    /// Kill `storm_name`.
    Kill {
        /// The Storm name.
        storm_name: String,
        /// Its version.
        version: Option<String>,
        /// Why.
        reason: KillReason,
    },
    /// BlueGreen: the new version under `storm_name` runs beside the old one but is not active
    /// yet (no workers assigned).
    WaitActive {
        /// The new version's Storm name.
        storm_name: String,
        /// Seconds left before giving up.
        remaining_secs: i32,
    },
    /// One topology runs under `storm_name`: bring suspend, workers and parallelism in line.
    Converge {
        /// The Storm name.
        storm_name: String,
        /// It runs another version than the spec asks for (an abandoned BlueGreen update).
        outdated: bool,
    },
}

/// Whether a freshly submitted topology counts as running: active (or inactive when suspended)
/// with workers assigned.
fn running(listed: &Listed, suspend: bool) -> bool {
    let status_ok = listed.status == "ACTIVE" || (suspend && listed.status == "INACTIVE");
    status_ok && listed.workers > 0
}

/// The next step for `input`.
pub fn decide(input: &Input<'_>) -> Step {
    let alternate = alternate_name(input.primary);
    let ours = |l: &&Listed| l.name == input.primary || l.name == alternate;
    let alive: Vec<&Listed> = input
        .listed
        .iter()
        .filter(ours)
        .filter(|l| l.alive())
        .collect();
    let killed: Vec<&Listed> = input
        .listed
        .iter()
        .filter(ours)
        .filter(|l| !l.alive())
        .collect();
    let (desired, outdated): (Vec<&Listed>, Vec<&Listed>) = alive
        .iter()
        .partition(|l| l.version.as_deref() == Some(input.desired_version));

    if let Some(new) = desired.first() {
        if outdated.is_empty() {
            return Step::Converge {
                storm_name: new.name.clone(),
                outdated: false,
            };
        }
        let old = outdated[0];
        if running(new, input.suspend) {
            return Step::Kill {
                storm_name: old.name.clone(),
                version: old.version.clone(),
                reason: KillReason::Replaced,
            };
        }
        let remaining = input.activation_timeout_secs - new.uptime_secs;
        if remaining <= 0 {
            return Step::Kill {
                storm_name: new.name.clone(),
                version: new.version.clone(),
                reason: KillReason::ActivationTimeout,
            };
        }
        return Step::WaitActive {
            storm_name: new.name.clone(),
            remaining_secs: remaining,
        };
    }

    match outdated.as_slice() {
        [] => match killed.first() {
            // A Recreate kill (or an out-of-band one) is in progress: the name is not free yet.
            Some(k) => Step::WaitGone {
                storm_name: k.name.clone(),
            },
            None => Step::Submit {
                storm_name: input.current.unwrap_or(input.primary).to_string(),
                update: false,
            },
        },
        [old] => {
            if input.update_abandoned {
                return Step::Converge {
                    storm_name: old.name.clone(),
                    outdated: true,
                };
            }
            match input.strategy {
                UpdateStrategyType::Recreate => Step::Kill {
                    storm_name: old.name.clone(),
                    version: old.version.clone(),
                    reason: KillReason::Recreate,
                },
                UpdateStrategyType::BlueGreen => {
                    let free = if old.name == input.primary {
                        alternate.clone()
                    } else {
                        input.primary.to_string()
                    };
                    match killed.iter().find(|k| k.name == free) {
                        Some(k) => Step::WaitGone {
                            storm_name: k.name.clone(),
                        },
                        None => Step::Submit {
                            storm_name: free,
                            update: true,
                        },
                    }
                }
            }
        }
        [first, second, ..] => {
            // Two outdated copies (a spec change in the middle of a BlueGreen update): keep the
            // one the status names, kill the other, then update as usual.
            let extra = if input.current == Some(first.name.as_str()) {
                second
            } else {
                first
            };
            Step::Kill {
                storm_name: extra.name.clone(),
                version: extra.version.clone(),
                reason: KillReason::Duplicate,
            }
        }
    }
}

/// What a running topology should be changed to in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InPlace {
    /// Deactivate (`Some(false)`) or activate (`Some(true)`).
    pub activate: Option<bool>,
    /// New worker count.
    pub workers: Option<i32>,
    /// New executor counts (the whole of spec.parallelism).
    pub executors: BTreeMap<String, i32>,
}

impl InPlace {
    /// Whether a rebalance is needed.
    pub fn rebalance(&self) -> bool {
        self.workers.is_some() || !self.executors.is_empty()
    }
}

/// Why spec.parallelism cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParallelismError {
    /// The topology has no such component.
    #[error(
        "spec.parallelism names component {component}, which the topology does not have (it has {valid})"
    )]
    UnknownComponent {
        /// The component.
        component: String,
        /// The components it has.
        valid: String,
    },
    /// More executors than tasks.
    #[error(
        "spec.parallelism asks for {executors} executors of {component}, but it has {tasks} tasks (fixed at submission; Storm runs at most one executor per task): submit it with more tasks (setNumTasks) to scale it further"
    )]
    AboveTasks {
        /// The component.
        component: String,
        /// Executors asked for.
        executors: i32,
        /// Its tasks.
        tasks: i32,
    },
}

impl ParallelismError {
    /// Condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ParallelismError::UnknownComponent { .. } => "UnknownComponent",
            ParallelismError::AboveTasks { .. } => "ExecutorsAboveTasks",
        }
    }
}

/// Checks spec.parallelism against the components' tasks, when Nimbus's numbers are known.
pub fn check_parallelism(
    wanted: &BTreeMap<String, i32>,
    components: &BTreeMap<String, crate::stats::Parallelism>,
) -> Result<(), ParallelismError> {
    if components.is_empty() {
        return Ok(());
    }
    for (component, executors) in wanted {
        match components.get(component) {
            None => {
                return Err(ParallelismError::UnknownComponent {
                    component: component.clone(),
                    valid: components.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
            Some(p) if *executors > p.tasks => {
                return Err(ParallelismError::AboveTasks {
                    component: component.clone(),
                    executors: *executors,
                    tasks: p.tasks,
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The in-place changes for a running topology: suspend, and workers/executors compared with
/// what the operator last asked for (`requested_*`), or with what runs when that is unknown.
/// `pool_owns_workers` leaves the worker count to the topology's StormWorkerPool.
pub struct Shape<'a> {
    /// What Nimbus lists.
    pub listed: &'a Listed,
    /// `spec.suspend`.
    pub suspend: bool,
    /// `spec.workers`.
    pub workers: i32,
    /// `spec.parallelism`.
    pub parallelism: &'a BTreeMap<String, i32>,
    /// Workers last asked for.
    pub requested_workers: Option<i32>,
    /// Executors last asked for.
    pub requested_parallelism: &'a BTreeMap<String, i32>,
    /// Executors per component that run now, when known.
    pub running_parallelism: &'a BTreeMap<String, crate::stats::Parallelism>,
    /// A StormWorkerPool sizes the topology.
    pub pool_owns_workers: bool,
}

/// The in-place changes [`Shape`] calls for.
pub fn in_place(shape: &Shape<'_>) -> InPlace {
    let activate = match (shape.suspend, shape.listed.status.as_str()) {
        (true, "ACTIVE") => Some(false),
        (false, "INACTIVE") => Some(true),
        _ => None,
    };
    let asked_workers = shape.requested_workers.unwrap_or(shape.listed.workers);
    let workers =
        (!shape.pool_owns_workers && shape.workers != asked_workers).then_some(shape.workers);
    let differs = shape.parallelism.iter().any(|(component, n)| {
        match shape.requested_parallelism.get(component) {
            Some(asked) => asked != n,
            None => shape
                .running_parallelism
                .get(component)
                .is_none_or(|p| p.executors != *n),
        }
    });
    let executors = if differs {
        shape.parallelism.clone()
    } else {
        BTreeMap::new()
    };
    InPlace {
        activate,
        workers,
        executors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, status: &str, version: &str, workers: i32, uptime: i32) -> Listed {
        Listed {
            name: name.into(),
            id: format!("{name}-1-1700000000"),
            status: status.into(),
            version: Some(version.into()),
            workers,
            executors: 4,
            tasks: 4,
            uptime_secs: uptime,
        }
    }

    fn input<'a>(listed: &'a [Listed], strategy: UpdateStrategyType) -> Input<'a> {
        Input {
            desired_version: "v2",
            suspend: false,
            strategy,
            activation_timeout_secs: 300,
            primary: "wc",
            current: Some("wc"),
            listed,
            update_abandoned: false,
        }
    }

    #[test]
    fn nothing_listed_submits_under_the_current_name() {
        let step = decide(&input(&[], UpdateStrategyType::Recreate));
        assert_eq!(
            step,
            Step::Submit {
                storm_name: "wc".into(),
                update: false
            }
        );
        let mut i = input(&[], UpdateStrategyType::BlueGreen);
        i.current = Some("wc-green");
        assert_eq!(
            decide(&i),
            Step::Submit {
                storm_name: "wc-green".into(),
                update: false
            }
        );
    }

    #[test]
    fn the_desired_version_alone_converges() {
        let l = [listed("wc", "ACTIVE", "v2", 2, 100)];
        assert_eq!(
            decide(&input(&l, UpdateStrategyType::Recreate)),
            Step::Converge {
                storm_name: "wc".into(),
                outdated: false
            }
        );
    }

    #[test]
    fn recreate_kills_the_old_version_then_waits_then_submits() {
        let l = [listed("wc", "ACTIVE", "v1", 2, 100)];
        assert!(matches!(
            decide(&input(&l, UpdateStrategyType::Recreate)),
            Step::Kill { ref storm_name, reason: KillReason::Recreate, .. } if storm_name == "wc"
        ));
        let l = [listed("wc", "KILLED", "v1", 2, 100)];
        assert_eq!(
            decide(&input(&l, UpdateStrategyType::Recreate)),
            Step::WaitGone {
                storm_name: "wc".into()
            }
        );
    }

    #[test]
    fn blue_green_submits_beside_waits_for_activity_then_kills_the_old() {
        let old = listed("wc", "ACTIVE", "v1", 2, 1000);
        assert_eq!(
            decide(&input(
                std::slice::from_ref(&old),
                UpdateStrategyType::BlueGreen
            )),
            Step::Submit {
                storm_name: "wc-green".into(),
                update: true
            }
        );
        let starting = [old.clone(), listed("wc-green", "ACTIVE", "v2", 0, 20)];
        assert_eq!(
            decide(&input(&starting, UpdateStrategyType::BlueGreen)),
            Step::WaitActive {
                storm_name: "wc-green".into(),
                remaining_secs: 280
            }
        );
        let running = [old.clone(), listed("wc-green", "ACTIVE", "v2", 2, 40)];
        assert!(matches!(
            decide(&input(&running, UpdateStrategyType::BlueGreen)),
            Step::Kill { ref storm_name, reason: KillReason::Replaced, .. } if storm_name == "wc"
        ));
        let stuck = [old, listed("wc-green", "ACTIVE", "v2", 0, 301)];
        assert!(matches!(
            decide(&input(&stuck, UpdateStrategyType::BlueGreen)),
            Step::Kill { ref storm_name, reason: KillReason::ActivationTimeout, .. } if storm_name == "wc-green"
        ));
    }

    #[test]
    fn blue_green_from_the_alternate_slot_goes_back_to_the_primary() {
        let l = [listed("wc-green", "ACTIVE", "v1", 2, 1000)];
        let mut i = input(&l, UpdateStrategyType::BlueGreen);
        i.current = Some("wc-green");
        assert_eq!(
            decide(&i),
            Step::Submit {
                storm_name: "wc".into(),
                update: true
            }
        );
        let l = [
            listed("wc-green", "ACTIVE", "v1", 2, 1000),
            listed("wc", "KILLED", "v0", 2, 1000),
        ];
        let mut i = input(&l, UpdateStrategyType::BlueGreen);
        i.current = Some("wc-green");
        assert_eq!(
            decide(&i),
            Step::WaitGone {
                storm_name: "wc".into()
            }
        );
    }

    #[test]
    fn an_abandoned_update_keeps_the_old_version() {
        let l = [listed("wc", "ACTIVE", "v1", 2, 1000)];
        let mut i = input(&l, UpdateStrategyType::BlueGreen);
        i.update_abandoned = true;
        assert_eq!(
            decide(&i),
            Step::Converge {
                storm_name: "wc".into(),
                outdated: true
            }
        );
    }

    #[test]
    fn two_outdated_copies_lose_the_one_the_status_does_not_name() {
        let l = [
            listed("wc", "ACTIVE", "v1", 2, 1000),
            listed("wc-green", "ACTIVE", "v1b", 0, 10),
        ];
        assert!(matches!(
            decide(&input(&l, UpdateStrategyType::BlueGreen)),
            Step::Kill { ref storm_name, reason: KillReason::Duplicate, .. } if storm_name == "wc-green"
        ));
    }

    #[test]
    fn other_storm_names_are_ignored() {
        let l = [listed("other", "ACTIVE", "v2", 2, 1000)];
        assert!(matches!(
            decide(&input(&l, UpdateStrategyType::Recreate)),
            Step::Submit { .. }
        ));
    }

    fn shape<'a>(
        l: &'a Listed,
        p: &'a BTreeMap<String, i32>,
        asked: &'a BTreeMap<String, i32>,
        running: &'a BTreeMap<String, crate::stats::Parallelism>,
    ) -> Shape<'a> {
        Shape {
            listed: l,
            suspend: false,
            workers: 2,
            parallelism: p,
            requested_workers: Some(2),
            requested_parallelism: asked,
            running_parallelism: running,
            pool_owns_workers: false,
        }
    }

    #[test]
    fn in_place_changes_follow_the_spec() {
        let l = listed("wc", "ACTIVE", "v2", 2, 100);
        let empty = BTreeMap::new();
        let running = BTreeMap::new();
        assert_eq!(
            in_place(&shape(&l, &empty, &empty, &running)),
            InPlace::default()
        );
        let mut s = shape(&l, &empty, &empty, &running);
        s.suspend = true;
        assert_eq!(in_place(&s).activate, Some(false));
        s.workers = 4;
        assert_eq!(in_place(&s).workers, Some(4));
        s.pool_owns_workers = true;
        assert_eq!(in_place(&s).workers, None, "the pool sizes the workers");

        let p = BTreeMap::from([("split".to_string(), 4)]);
        let asked = BTreeMap::from([("split".to_string(), 4)]);
        assert!(!in_place(&shape(&l, &p, &asked, &running)).rebalance());
        let running = BTreeMap::from([(
            "split".to_string(),
            crate::stats::Parallelism {
                executors: 2,
                tasks: 8,
            },
        )]);
        let change = in_place(&shape(&l, &p, &empty, &running));
        assert_eq!(
            change.executors, p,
            "unknown request: compared with what runs"
        );
    }

    #[test]
    fn workers_are_compared_with_the_request_not_with_what_storm_could_place() {
        // Storm placed 3 of the 4 workers asked for (no free slots): no rebalance loop.
        let l = listed("wc", "ACTIVE", "v2", 3, 100);
        let empty = BTreeMap::new();
        let none = BTreeMap::new();
        let mut s = shape(&l, &empty, &empty, &none);
        s.workers = 4;
        s.requested_workers = Some(4);
        assert_eq!(in_place(&s).workers, None);
        s.requested_workers = None;
        assert_eq!(
            in_place(&s).workers,
            Some(4),
            "a lost status: compared with what runs"
        );
    }

    #[test]
    fn parallelism_is_checked_against_tasks() {
        let comps = BTreeMap::from([(
            "split".to_string(),
            crate::stats::Parallelism {
                executors: 2,
                tasks: 4,
            },
        )]);
        assert!(check_parallelism(&BTreeMap::from([("split".into(), 4)]), &comps).is_ok());
        let e = check_parallelism(&BTreeMap::from([("split".into(), 5)]), &comps).unwrap_err();
        assert_eq!(e.reason(), "ExecutorsAboveTasks");
        assert!(e.to_string().contains("4 tasks"), "{e}");
        let e = check_parallelism(&BTreeMap::from([("count".into(), 1)]), &comps).unwrap_err();
        assert_eq!(e.reason(), "UnknownComponent");
        assert!(
            check_parallelism(&BTreeMap::from([("x".into(), 9)]), &BTreeMap::new()).is_ok(),
            "unknown components: left to Storm"
        );
    }
}
