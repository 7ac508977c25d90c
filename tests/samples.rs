//! The samples in `docs/samples/` are what users copy first: each parses into the Rust types,
//! passes the CRD's structural schema (no unknown fields, right types, required fields, enums,
//! bounds), and survives a round trip through the types without gaining fields the schema lacks.

mod support;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use storm_controller::crd::{self, StormCluster, StormTopology, StormWorkerPool};

const SAMPLES: &[&str] = &[
    "docs/samples/stormcluster-managed.yaml",
    "docs/samples/stormcluster-external.yaml",
    "docs/samples/stormtopology-autoscaled.yaml",
    "docs/samples/stormtopology-image-jar.yaml",
    "docs/samples/stormworkerpool-standalone.yaml",
];

fn crd_of(
    kind: &str,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    crd::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("known kind")
}

fn round_trip<K: Serialize + DeserializeOwned>(rel: &str) -> Value {
    let text = std::fs::read_to_string(support::repo_path(rel)).expect("sample exists");
    let typed: K =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel} does not parse: {e}"));
    serde_json::to_value(&typed).expect("serializes")
}

#[test]
fn every_sample_is_listed_here() {
    let mut on_disk: Vec<String> = std::fs::read_dir(support::repo_path("docs/samples"))
        .expect("docs/samples exists")
        .filter_map(|e| e.ok())
        .map(|e| format!("docs/samples/{}", e.file_name().to_string_lossy()))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = SAMPLES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn samples_pass_the_structural_schema_as_written_and_after_a_round_trip() {
    for rel in SAMPLES {
        let raw = support::read_yaml(rel);
        let kind = raw["kind"].as_str().expect("kind").to_string();
        assert_eq!(raw["apiVersion"], "storm.apache.org/v1alpha1", "{rel}");
        let c = crd_of(&kind);
        let errors = support::openapi::validate_object(&c, &raw);
        assert!(errors.is_empty(), "{rel}: {errors:?}");
        let typed = match kind.as_str() {
            "StormCluster" => round_trip::<StormCluster>(rel),
            "StormTopology" => round_trip::<StormTopology>(rel),
            "StormWorkerPool" => round_trip::<StormWorkerPool>(rel),
            other => panic!("{rel}: unknown kind {other}"),
        };
        let errors = support::openapi::validate_object(&c, &typed);
        assert!(errors.is_empty(), "{rel} after a round trip: {errors:?}");
    }
}

#[test]
fn samples_say_what_the_issue_asks_for() {
    let managed: StormCluster =
        serde_saphyr::from_str(&std::fs::read_to_string(support::repo_path(SAMPLES[0])).unwrap())
            .unwrap();
    assert!(managed.spec.external.is_none() && managed.spec.nimbus.is_some());
    let external: StormCluster =
        serde_saphyr::from_str(&std::fs::read_to_string(support::repo_path(SAMPLES[1])).unwrap())
            .unwrap();
    assert_eq!(
        external.spec.external.map(|e| e.nimbus_seeds.len()),
        Some(2)
    );
    let topo: StormTopology =
        serde_saphyr::from_str(&std::fs::read_to_string(support::repo_path(SAMPLES[2])).unwrap())
            .unwrap();
    let pool = topo.spec.worker_pool.expect("inline worker pool");
    let metrics = pool.autoscaling.expect("autoscaling").metrics;
    assert!(metrics.iter().any(|m| {
        m.storm
            .as_ref()
            .is_some_and(|s| s.metric.as_str() == "storm_topology_pending_tuples")
    }));
    let standalone: StormWorkerPool =
        serde_saphyr::from_str(&std::fs::read_to_string(support::repo_path(SAMPLES[4])).unwrap())
            .unwrap();
    assert_eq!(standalone.spec.topology_ref.name, "enrich");
}

/// A minimal object gets the same defaults from serde (what the operator reads) as from the
/// schema (what the apiserver stores), so the operator never acts on a default the user can't see.
#[test]
fn defaults_in_the_types_match_defaults_in_the_schema() {
    let minimal = [
        (
            "StormCluster",
            "spec: {image: 'apache/storm:2.8.1', zookeeper: {servers: [zk]}, nimbus: {}, supervisors: {}, ui: {}}",
        ),
        (
            "StormTopology",
            "spec: {clusterRef: {name: c}, jar: {url: 'https://x/t.jar'}, mainClass: a.B, workerPool: {autoscaling: {maxReplicas: 3, metrics: []}}}",
        ),
        (
            "StormWorkerPool",
            "spec: {topologyRef: {name: t}, autoscaling: {maxReplicas: 3, metrics: []}}",
        ),
    ];
    for (kind, spec) in minimal {
        let yaml = format!(
            "apiVersion: storm.apache.org/v1alpha1\nkind: {kind}\nmetadata: {{name: x}}\n{spec}\n"
        );
        let raw: Value = serde_saphyr::from_str(&yaml).unwrap();
        let schema = support::openapi::crd_schema(&crd_of(kind));
        let by_apiserver = kube::core::cel::apply_defaults(&schema, &raw);
        let by_serde = match kind {
            "StormCluster" => {
                serde_json::to_value(serde_json::from_value::<StormCluster>(raw).unwrap())
            }
            "StormTopology" => {
                serde_json::to_value(serde_json::from_value::<StormTopology>(raw).unwrap())
            }
            _ => serde_json::to_value(serde_json::from_value::<StormWorkerPool>(raw).unwrap()),
        }
        .unwrap();
        assert_eq!(by_apiserver["spec"], by_serde["spec"], "{kind}");
    }
}
