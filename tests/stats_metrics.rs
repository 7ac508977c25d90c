//! `stats::topology_metrics` against hand-computed values (formulas in storm-thrift.md §4).

use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use storm_controller::nimbus::fake::{FakeComponent, FakeComponentStats, FakeTopology};
use storm_controller::nimbus::storm::TopologyPageInfo;
use storm_controller::stats::{elapsed_secs, topology_metrics};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {
        assert!(
            close($a, $b),
            "{} = {} but expected {}",
            stringify!($a),
            $a,
            $b
        )
    };
}

fn spout(acked: i64, failed: i64, emitted: i64, latency: f64) -> FakeComponentStats {
    FakeComponentStats {
        acked,
        failed,
        emitted,
        transferred: emitted,
        complete_latency_ms: latency,
        ..Default::default()
    }
}

fn bolt(emitted: i64, capacity: f64, execute_latency_ms: f64) -> FakeComponentStats {
    FakeComponentStats {
        emitted,
        transferred: emitted,
        capacity,
        execute_latency_ms,
        executed: 1000,
        ..Default::default()
    }
}

/// Two spouts, two bolts and a system bolt that must be ignored; page info includes system components.
fn topology() -> FakeTopology {
    FakeTopology::new("wc")
        .with_spout(
            "sentences",
            FakeComponent::new(2, 4, spout(6000, 60, 12_000, 25.0)),
        )
        .with_spout(
            "words",
            FakeComponent::new(1, 2, spout(3000, 0, 6000, 10.0)),
        )
        .with_bolt("split", FakeComponent::new(4, 8, bolt(48_000, 0.42, 1.5)))
        .with_bolt("count", FakeComponent::new(4, 8, bolt(0, 0.9, 3.0)))
        .with_bolt("__acker", FakeComponent::new(1, 1, bolt(999, 5.0, 100.0)))
        .with_conf("topology.message.timeout.secs", json!(30))
        .with_conf("topology.max.spout.pending", json!(1000))
}

fn page(t: &FakeTopology) -> TopologyPageInfo {
    t.page_info("600", true)
}

fn at() -> Timestamp {
    "2026-11-26T01:00:00Z".parse().unwrap()
}

#[test]
fn steady_state_topology() {
    let m = topology_metrics(&page(&topology()), at());
    // uptime 3600 s -> E = 600 s.
    assert_eq!(m.window_secs, 600);
    // (6000 + 3000) / 600
    assert_close!(m.acked_per_second, 15.0);
    assert_close!(m.failed_per_second, 0.1);
    // (12000 + 6000 + 48000 + 0) / 600; the acker's 999 is excluded.
    assert_close!(m.emitted_per_second, 110.0);
    // sentences: 10/s * 0.025 s + 0.1/s * 30 s = 3.25; words: 5/s * 0.010 s = 0.05
    assert_close!(m.pending_tuples, 3.3);
    // 3.3 / (1000 * (4 + 2) spout tasks)
    assert_close!(m.spout_pending_ratio.unwrap(), 0.00055);
    // (25 * 6000 + 10 * 3000) / 9000
    assert_close!(m.complete_latency_ms, 20.0);
    // max(0.42, 0.9); the acker's 5.0 is excluded.
    assert_close!(m.capacity, 0.9);
    let ids: Vec<&str> = m.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["count", "split"]);
    assert_close!(m.components[1].capacity, 0.42);
    assert_close!(m.components[1].execute_latency_ms, 1.5);
    assert_eq!(m.topology_name, "wc");
    assert_eq!(m.sample_time, at());
}

#[test]
fn zero_uptime_gives_zero_rates_not_nan() {
    let mut t = topology();
    t.uptime_secs = 0;
    let m = topology_metrics(&page(&t), at());
    assert_eq!(m.window_secs, 0);
    assert_eq!(m.acked_per_second, 0.0);
    assert_eq!(m.emitted_per_second, 0.0);
    assert_eq!(m.pending_tuples, 0.0);
    assert_eq!(m.spout_pending_ratio, Some(0.0));
    assert!(m.complete_latency_ms.is_finite());
}

#[test]
fn no_acks_means_zero_latency_and_pending() {
    let t = FakeTopology::new("idle")
        .with_spout("s", FakeComponent::new(1, 1, spout(0, 0, 0, 0.0)))
        .with_conf("topology.max.spout.pending", json!(10));
    let m = topology_metrics(&page(&t), at());
    assert_eq!(m.complete_latency_ms, 0.0);
    assert_eq!(m.pending_tuples, 0.0);
    assert_eq!(m.spout_pending_ratio, Some(0.0));
    assert_eq!(m.capacity, 0.0);
}

#[test]
fn no_ackers_tracks_no_tuple_trees() {
    let t = topology().with_conf("topology.acker.executors", json!(0));
    let m = topology_metrics(&page(&t), at());
    assert_eq!(m.pending_tuples, 0.0);
    assert_eq!(m.spout_pending_ratio, None);
    // Rates still come from the counters.
    assert_close!(m.acked_per_second, 15.0);
}

#[test]
fn ratio_is_absent_without_max_spout_pending() {
    let mut t = topology();
    t.conf.remove("topology.max.spout.pending");
    let m = topology_metrics(&page(&t), at());
    assert_eq!(m.spout_pending_ratio, None);
    assert_close!(m.pending_tuples, 3.3);
}

#[test]
fn rebalanced_topology_uses_the_restarted_workers_uptime() {
    // The topology has run for 2 h, but a rebalance restarted every worker 120 s ago: the 600 s counters
    // only cover 120 s.
    let mut t = FakeTopology::new("r")
        .with_spout("s", FakeComponent::new(1, 1, spout(2400, 12, 2400, 50.0)))
        .with_conf("topology.message.timeout.secs", json!(10));
    t.uptime_secs = 7200;
    t.worker_uptime_secs = Some(120);
    let p = page(&t);
    assert_eq!(elapsed_secs(&p), 120);
    let m = topology_metrics(&p, at());
    assert_close!(m.acked_per_second, 20.0);
    assert_close!(m.failed_per_second, 0.1);
    // 20/s * 0.05 s + 0.1/s * 10 s
    assert_close!(m.pending_tuples, 2.0);

    // Freshly reset counters: nothing yet.
    let mut fresh = t.clone();
    fresh.worker_uptime_secs = Some(0);
    fresh
        .spouts
        .insert("s".into(), FakeComponent::new(1, 1, spout(0, 0, 0, 0.0)));
    let m = topology_metrics(&page(&fresh), at());
    assert_eq!(
        (m.window_secs, m.acked_per_second, m.pending_tuples),
        (0, 0.0, 0.0)
    );
}

#[test]
fn young_topology_without_workers_uses_its_uptime() {
    let mut t =
        FakeTopology::new("y").with_spout("s", FakeComponent::new(1, 1, spout(300, 0, 300, 0.0)));
    t.uptime_secs = 300;
    t.num_workers = 0;
    let m = topology_metrics(&page(&t), at());
    assert_eq!(m.window_secs, 300);
    assert_close!(m.acked_per_second, 1.0);
}

#[test]
fn serializes_with_stable_camel_case_names() {
    let m = topology_metrics(&page(&topology()), at());
    let v = serde_json::to_value(&m).unwrap();
    for key in [
        "topologyId",
        "topologyName",
        "status",
        "sampleTime",
        "windowSecs",
        "pendingTuples",
        "spoutPendingRatio",
        "completeLatencyMs",
        "capacity",
        "ackedPerSecond",
        "failedPerSecond",
        "emittedPerSecond",
        "components",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["sampleTime"], "2026-11-26T01:00:00Z");
    assert_eq!(
        v["components"][0],
        json!({"id": "count", "capacity": 0.9, "executeLatencyMs": 3.0})
    );
}
