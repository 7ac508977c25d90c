//! Fixtures shared by tests: a fake Storm topology with known numbers, and a bounded wait.

use std::time::Duration;

use storm_controller::nimbus::fake::{FakeComponent, FakeComponentStats, FakeTopology};

/// A word count topology whose 600 s window has 100 acked/s at 20 ms complete latency, a `split`
/// bolt at capacity 0.4 and a `count` bolt at capacity 0.9.
pub fn word_count() -> FakeTopology {
    let spout = FakeComponentStats {
        emitted: 60_000,
        acked: 60_000,
        complete_latency_ms: 20.0,
        ..Default::default()
    };
    let split = FakeComponentStats {
        emitted: 120_000,
        executed: 60_000,
        execute_latency_ms: 2.0,
        capacity: 0.4,
        ..Default::default()
    };
    let count = FakeComponentStats {
        executed: 120_000,
        execute_latency_ms: 1.0,
        capacity: 0.9,
        ..Default::default()
    };
    FakeTopology::new("wordcount")
        .with_spout("spout", FakeComponent::new(2, 2, spout))
        .with_bolt("split", FakeComponent::new(4, 8, split))
        .with_bolt("count", FakeComponent::new(4, 8, count))
}

/// Polls `check` every 25 ms for at most 10 s; panics naming `what` when it never holds.
pub async fn wait_until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A StormTopology `ns/name` on the StormCluster `storm`: storm-starter's word count from a jar
/// URL, version 1.0.0, 2 workers, no kill wait; each key of `spec` (a JSON object) replaces the
/// spec field of that name.
pub fn topology(
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> storm_controller::crd::StormTopology {
    let mut value = serde_json::json!({
        "apiVersion": "storm.apache.org/v1alpha1",
        "kind": "StormTopology",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "clusterRef": {"name": "storm"},
            "jar": {"url": "https://repo.example.com/wc.jar"},
            "mainClass": "org.apache.storm.starter.WordCountTopology",
            "args": ["$(STORM_TOPOLOGY_NAME)"],
            "workers": 2,
            "version": "1.0.0",
            "killWaitSeconds": 0,
        }
    });
    if let serde_json::Value::Object(spec) = spec {
        for (k, v) in spec {
            value["spec"][k] = v;
        }
    }
    serde_json::from_value(value).unwrap()
}

/// The managed StormCluster sample (`storm/storm`).
pub fn managed_cluster() -> storm_controller::crd::StormCluster {
    serde_json::from_value(super::read_yaml("docs/samples/stormcluster-managed.yaml")).unwrap()
}
