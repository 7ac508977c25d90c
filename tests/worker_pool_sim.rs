//! The closed loop, simulated: load on a topology rises, its pending tuples rise, the HPA (played
//! here with its own formula, on the metrics the operator serves) raises the pool's `/scale`, the
//! operator grows the supervisors, waits for them to register and rebalances, and pending falls.
//! Then the load drops and the pool shrinks again, rebalancing before it removes supervisors.
//!
//! Storm is modelled per worker: each worker completes at most `CAPACITY` tuples/s; the acked
//! rate is `min(load, workers x CAPACITY)` and the complete latency grows with the utilisation
//! `load / (workers x CAPACITY)` like a queue's (`BASE_LATENCY / (1 - u)`, capped); the busiest
//! bolt's capacity is the utilisation. The fake Nimbus reports those numbers, the collector polls
//! it over Thrift and the project's own derivation (`stats::topology_metrics`, Little's law for
//! pending) turns them into the served metrics.
//!
//! The HPA scales on pending tuples (target 40) and topology capacity (target 800m), as the
//! samples do. Pending alone makes the HPA oscillate: it is throughput x latency, and latency
//! falls steeply once the topology has headroom, so `replicas x pending / target` undershoots;
//! capacity (utilisation) is proportional to `1 / workers` and holds the pool where it belongs.
//!
//! `cargo test --test worker_pool_sim -- --nocapture` (or `hack/pool-sim.sh`) prints the timeline.

mod support;

use std::collections::VecDeque;

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricTarget};
use serde_json::json;
use storm_controller::crd::worker_pool::{StormMetricName, condition};
use storm_controller::metrics_api::quantity::parse_quantity;
use storm_controller::nimbus::fake::{FakeComponent, FakeComponentStats};
use storm_controller::storm_provider::samples_of;
use support::pool_env::{NS, POOL, PoolEnv, TOPOLOGY, pool_spec};

/// Tuples/s one worker completes.
const CAPACITY: f64 = 100.0;
/// Complete latency of an idle topology, ms.
const BASE_LATENCY_MS: f64 = 20.0;
/// Highest complete latency (a saturated topology's queues are full; tuples time out beyond).
const MAX_LATENCY_MS: f64 = 400.0;
/// Seconds of data in Storm's window.
const WINDOW: f64 = 600.0;
/// Ticks of the simulation.
const TICKS: usize = 14;
/// The HPA's tolerance: no change while `|current / target - 1|` is within it.
const TOLERANCE: f64 = 0.1;
/// Ticks of scale-down stabilization (the HPA keeps the highest recommendation of this window).
const STABILIZATION: usize = 3;
/// The last tick of high load.
const PEAK_END: usize = 8;
/// The HPA's target for pending tuples.
const PENDING_TARGET: f64 = 40.0;

/// Load offered in tuples/s at `tick`.
fn load(tick: usize) -> f64 {
    if (2..=PEAK_END).contains(&tick) {
        450.0
    } else {
        150.0
    }
}

/// What Storm does with `load` on `workers` workers: (acked/s, complete latency ms, busiest bolt
/// capacity).
fn storm_model(load: f64, workers: i32) -> (f64, f64, f64) {
    let capacity = f64::from(workers.max(1)) * CAPACITY;
    let utilisation = load / capacity;
    let acked = load.min(capacity);
    let latency = if utilisation >= 1.0 {
        MAX_LATENCY_MS
    } else {
        (BASE_LATENCY_MS / (1.0 - utilisation)).min(MAX_LATENCY_MS)
    };
    (acked, latency, utilisation.min(1.0))
}

/// Puts the model's numbers into the fake topology's 600 s window.
fn set_stats(env: &PoolEnv, load: f64) -> (f64, f64) {
    let workers = env.storm().topology(TOPOLOGY).unwrap().num_workers;
    let (acked, latency, bolt_capacity) = storm_model(load, workers);
    let count = (acked * WINDOW).round() as i64;
    env.storm().update_topology(TOPOLOGY, |t| {
        let spout = FakeComponentStats {
            emitted: count,
            acked: count,
            complete_latency_ms: latency,
            ..Default::default()
        };
        let bolt = FakeComponentStats {
            executed: count,
            execute_latency_ms: 1.0,
            capacity: bolt_capacity,
            ..Default::default()
        };
        t.spouts
            .insert("spout".into(), FakeComponent::new(4, 4, spout));
        t.bolts
            .insert("count".into(), FakeComponent::new(8, 16, bolt));
    });
    (acked, latency)
}

/// The HPA's replica count: per Object metric as Kubernetes' `replica_calculator` computes it
/// (`Value` targets scale the current replicas by `current / target`, `AverageValue` ones divide
/// the metric by the target, nothing changes within the tolerance), the largest over the
/// metrics, bounded by min and max. `served` gives a metric's current value by name.
fn hpa_recommendation(
    hpa: &HorizontalPodAutoscaler,
    replicas: i32,
    served: impl Fn(&str) -> f64,
) -> i32 {
    let spec = hpa.spec.as_ref().unwrap();
    let desired = spec
        .metrics
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| {
            let object = m.object.as_ref().expect("Object metrics only");
            object_recommendation(&object.target, replicas, served(&object.metric.name))
        })
        .max()
        .unwrap();
    desired.clamp(spec.min_replicas.unwrap_or(1), spec.max_replicas)
}

fn object_recommendation(target: &MetricTarget, replicas: i32, current: f64) -> i32 {
    let quantity = |q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
        parse_quantity(&q.as_ref().expect("a target quantity").0).expect("a quantity")
    };
    let (ratio, proposal) = match target.type_.as_str() {
        "Value" => {
            let ratio = current / quantity(&target.value);
            (ratio, (f64::from(replicas) * ratio).ceil())
        }
        "AverageValue" => {
            let per_replica = quantity(&target.average_value);
            (
                current / (per_replica * f64::from(replicas)),
                (current / per_replica).ceil(),
            )
        }
        other => panic!("unexpected target type {other}"),
    };
    if (ratio - 1.0).abs() <= TOLERANCE {
        replicas
    } else {
        proposal as i32
    }
}

#[tokio::test]
async fn load_rises_the_hpa_scales_the_pool_the_operator_rebalances_and_pending_falls() {
    let mut spec = pool_spec(2, 1, 0);
    spec["autoscaling"] = json!({
        "minReplicas": 2, "maxReplicas": 8,
        "metrics": [
            {"type": "Storm", "storm": {"metric": "storm_topology_pending_tuples", "value": "40"}},
            {"type": "Storm", "storm": {"metric": "storm_topology_capacity", "value": "800m"}}
        ]
    });
    let env = PoolEnv::start(spec, 2).await;
    let mut recommendations: VecDeque<i32> = VecDeque::new();
    let mut rows = Vec::new();
    let mut pending_seen = Vec::new();

    for tick in 0..TICKS {
        // The operator and the cluster settle on the current spec (bounded rounds).
        for _ in 0..12 {
            env.reconcile().await.unwrap();
            env.kubelet();
            env.register(env.pods().len(), 1);
            let scaling = env.condition(condition::SCALING).await;
            if scaling.is_some_and(|(status, _)| status == "False") {
                break;
            }
            let workers = env.storm().topology(TOPOLOGY).unwrap().num_workers;
            env.settle(env.pods().len(), "ACTIVE", workers).await;
        }

        // Storm under this tick's load, as the collector sees it.
        let offered = load(tick);
        let (acked, latency) = set_stats(&env, offered);
        let set_at = k8s_openapi::jiff::Timestamp::now();
        let workers = env.storm().topology(TOPOLOGY).unwrap().num_workers;
        env.wait_snapshot("this tick's statistics", |s| {
            s.taken_at.is_some_and(|t| t > set_at)
                && s.topology(TOPOLOGY)
                    .is_some_and(|t| t.summary.num_workers == workers && t.metrics.is_some())
        })
        .await;
        let metrics = env
            .ctx
            .clusters
            .snapshots()
            .into_iter()
            .find_map(|(_, s)| s.topology(TOPOLOGY)?.metrics.clone())
            .unwrap();
        // The values the metrics API serves for the HPA's metrics.
        let value = |metric: StormMetricName| samples_of(&metrics, metric)[0].value;
        let pending = value(StormMetricName::PendingTuples);
        let capacity = value(StormMetricName::Capacity);
        pending_seen.push(pending);

        // The HPA: recommendation, scale-down stabilization, then /scale.
        let hpa: HorizontalPodAutoscaler = env.sim.get(NS, POOL).expect("the operator made an HPA");
        let replicas = env.pool().await.spec.template.replicas;
        recommendations.push_back(hpa_recommendation(&hpa, replicas, |name| {
            let metric = StormMetricName::ALL
                .into_iter()
                .find(|m| m.as_str() == name)
                .expect("one of our metrics");
            value(metric)
        }));
        if recommendations.len() > STABILIZATION {
            recommendations.pop_front();
        }
        let recommended = *recommendations.back().unwrap();
        let desired = if recommended >= replicas {
            recommended
        } else {
            (*recommendations.iter().max().unwrap()).min(replicas)
        };
        if desired != replicas {
            env.scale(desired).await;
        }
        let status = env.pool().await.status.unwrap_or_default();
        rows.push(format!(
            "{tick:>4} {offered:>6.0} {workers:>7} {acked:>7.0} {latency:>8.1} {pending:>8.1} {capacity:>8.3} {replicas:>8} -> {desired:<3} {}",
            status.last_rebalance_reason.unwrap_or_else(|| "-".into())
        ));
    }

    println!(
        "\nStormWorkerPool closed loop: {CAPACITY}/s per worker, 1 slot per supervisor; HPA targets pending {PENDING_TARGET}, capacity 800m"
    );
    println!("tick   load workers acked/s  lat(ms)  pending capacity replicas    last rebalance");
    for row in &rows {
        println!("{row}");
    }
    let rebalances: Vec<String> = env
        .events()
        .into_iter()
        .filter(|(reason, ..)| reason == "Rebalanced")
        .map(|(.., note)| note)
        .collect();
    println!("rebalances, in order:");
    for note in &rebalances {
        println!("  {note}");
    }

    let before = pending_seen[1];
    let peak = pending_seen[..=PEAK_END]
        .iter()
        .copied()
        .fold(0.0, f64::max);
    let end_of_peak = pending_seen[PEAK_END];
    assert!(
        peak > 2.0 * before,
        "pending rises with the load: {pending_seen:?}"
    );
    assert!(
        end_of_peak < peak / 2.0 && end_of_peak <= PENDING_TARGET * (1.0 + TOLERANCE),
        "pending falls under the target after the rebalance: {pending_seen:?}"
    );
    assert!(
        rebalances.iter().any(|n| n.contains("ScaleUp")),
        "{rebalances:?}"
    );
    assert!(
        rebalances.iter().any(|n| n.contains("ScaleDown")),
        "the load dropped and the pool shrank: {rebalances:?}"
    );
    assert_eq!(
        env.deployment_replicas(),
        Some(2),
        "back to the minimum once the load is gone"
    );
}
