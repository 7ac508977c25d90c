//! Every CEL rule of the CRDs, evaluated client-side (kube's `cel` feature) against the generated
//! schema, the way kube-apiserver evaluates it at admission: a valid object passes, and each kind
//! of bad input is rejected with a message that names the field.

mod support;

use serde_json::{Value, json};
use storm_controller::crd::{self, common};

fn crd_for(kind: &str) -> Value {
    let c = crd::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("known kind");
    support::openapi::crd_schema(&c)
}

/// The messages of the rules `object` breaks (`field.path: message`).
fn violations(object: &Value, old: Option<&Value>) -> Vec<String> {
    let kind = object["kind"].as_str().expect("objects have a kind");
    match kube::core::cel::Validator::new().validate(&crd_for(kind), object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// Asserts that `object` breaks a rule whose message contains `want`, and only such rules.
fn rejected(object: &Value, old: Option<&Value>, want: &str) {
    let errors = violations(object, old);
    assert!(
        !errors.is_empty(),
        "expected a rejection with {want:?}, the object passed"
    );
    assert!(
        errors.iter().all(|e| e.contains(want)),
        "expected only {want:?}, got {errors:?}"
    );
}

fn accepted(object: &Value, old: Option<&Value>) {
    assert_eq!(violations(object, old), Vec::<String>::new());
}

fn managed() -> Value {
    support::read_yaml("docs/samples/stormcluster-managed.yaml")
}
fn external() -> Value {
    support::read_yaml("docs/samples/stormcluster-external.yaml")
}
fn topology() -> Value {
    support::read_yaml("docs/samples/stormtopology-autoscaled.yaml")
}
fn pool() -> Value {
    support::read_yaml("docs/samples/stormworkerpool-standalone.yaml")
}

#[test]
fn samples_pass_every_rule_on_create_and_on_an_unchanged_update() {
    for obj in [managed(), external(), topology(), pool()] {
        accepted(&obj, None);
        accepted(&obj, Some(&obj));
    }
    accepted(
        &support::read_yaml("docs/samples/stormtopology-image-jar.yaml"),
        None,
    );
}

#[test]
fn cluster_name_leaves_room_for_child_names() {
    for bad in ["Storm", "storm.prod", &"s".repeat(41)] {
        let mut obj = managed();
        obj["metadata"]["name"] = json!(bad);
        rejected(
            &obj,
            None,
            "metadata.name must be a DNS label of at most 40 characters",
        );
    }
    let mut obj = managed();
    obj["metadata"]["name"] = json!("s".repeat(40));
    accepted(&obj, None);
}

#[test]
fn cluster_external_excludes_managed_parts() {
    for part in ["zookeeper", "nimbus", "supervisors", "ui"] {
        let mut obj = external();
        obj["spec"][part] = managed()["spec"][part].clone();
        rejected(&obj, None, "spec.external excludes the managed parts");
    }
}

#[test]
fn cluster_managed_needs_zookeeper_and_image() {
    let mut obj = managed();
    obj["spec"].as_object_mut().unwrap().remove("zookeeper");
    rejected(&obj, None, "spec.zookeeper.servers is required");
    let mut obj = managed();
    obj["spec"].as_object_mut().unwrap().remove("image");
    rejected(&obj, None, "spec.image is required");
}

#[test]
fn cluster_zookeeper_servers_and_root_are_checked() {
    let mut obj = managed();
    obj["spec"]["zookeeper"]["servers"] = json!(["zk-0:2181"]);
    rejected(
        &obj,
        None,
        "spec.zookeeper.servers must be host names or IP addresses without ports",
    );
    let mut obj = managed();
    obj["spec"]["zookeeper"]["root"] = json!("storm/");
    rejected(
        &obj,
        None,
        "spec.zookeeper.root must be an absolute ZooKeeper path",
    );
}

#[test]
fn cluster_external_seeds_are_host_port() {
    let mut obj = external();
    obj["spec"]["external"]["nimbusSeeds"] = json!(["nimbus-a:6627", "http://nimbus-b:6627"]);
    rejected(
        &obj,
        None,
        "spec.external.nimbusSeeds must be host or host:port entries",
    );
    obj["spec"]["external"]["nimbusSeeds"] = json!(["nimbus-a", "10.0.0.7:6627"]);
    accepted(&obj, None);
}

#[test]
fn cluster_config_rejects_each_owned_key_and_names_the_field_to_use() {
    for owned in common::CLUSTER_OWNED_KEYS {
        let mut obj = managed();
        obj["spec"]["config"][owned.key] = json!("x");
        rejected(
            &obj,
            None,
            &format!(
                "config key '{}' is set by the operator: {}",
                owned.key, owned.use_instead
            ),
        );
    }
}

#[test]
fn topology_config_rejects_each_owned_key_and_names_the_field_to_use() {
    for owned in common::TOPOLOGY_OWNED_KEYS {
        let mut obj = topology();
        obj["spec"]["config"][owned.key] = json!("x");
        rejected(
            &obj,
            None,
            &format!(
                "config key '{}' is set by the operator: {}",
                owned.key, owned.use_instead
            ),
        );
    }
    let mut obj = topology();
    obj["spec"]["config"]["my.app.setting"] = json!({"nested": [1, 2]});
    accepted(&obj, None);
}

#[test]
fn topology_name_must_be_a_dns_label() {
    for bad in ["Word_Count", "word.count", &"a".repeat(64)] {
        let mut obj = topology();
        obj["metadata"]["name"] = json!(bad);
        rejected(&obj, None, "metadata.name must be a DNS label");
    }
}

#[test]
fn topology_storm_name_is_a_valid_storm_name_and_immutable() {
    for bad in ["word.count", "a/b", "a:b", "a\\b"] {
        let mut obj = topology();
        obj["spec"]["stormName"] = json!(bad);
        rejected(&obj, None, "spec.stormName must not contain");
    }
    let mut old = topology();
    old["spec"]["stormName"] = json!("Word_Count");
    accepted(&old, None);
    let mut new = old.clone();
    new["spec"]["stormName"] = json!("Other");
    rejected(&new, Some(&old), "spec.stormName is immutable");
    rejected(
        &topology(),
        Some(&old),
        "spec.stormName is immutable: it cannot be added or removed",
    );
}

#[test]
fn topology_cluster_ref_is_immutable() {
    let old = topology();
    let mut new = old.clone();
    new["spec"]["clusterRef"]["name"] = json!("other");
    rejected(&new, Some(&old), "spec.clusterRef is immutable");
    accepted(&new, None);
}

#[test]
fn topology_jar_needs_exactly_one_source() {
    let mut both = topology();
    both["spec"]["jar"]["image"] = json!("repo/img:1");
    both["spec"]["jar"]["path"] = json!("/t.jar");
    both["spec"]["jar"]
        .as_object_mut()
        .unwrap()
        .remove("sha256");
    rejected(&both, None, "spec.jar needs exactly one source");
    let mut neither = topology();
    neither["spec"]["jar"] = json!({});
    rejected(&neither, None, "spec.jar needs exactly one source");
    let mut image_only = topology();
    image_only["spec"]["jar"] = json!({"image": "repo/img:1"});
    rejected(
        &image_only,
        None,
        "spec.jar.path is required with spec.jar.image",
    );
    let mut path_with_url = topology();
    path_with_url["spec"]["jar"]["path"] = json!("/t.jar");
    rejected(
        &path_with_url,
        None,
        "spec.jar.path is required with spec.jar.image, and only with it",
    );
    let mut sha_with_image = topology();
    sha_with_image["spec"]["jar"] =
        json!({"image": "repo/img:1", "path": "/t.jar", "sha256": "a".repeat(64)});
    rejected(
        &sha_with_image,
        None,
        "spec.jar.sha256 verifies a downloaded jar: it needs spec.jar.url",
    );
}

#[test]
fn topology_jar_fields_are_checked() {
    for bad in ["abc", &"g".repeat(64), &"a".repeat(63)] {
        let mut obj = topology();
        obj["spec"]["jar"]["sha256"] = json!(bad);
        rejected(
            &obj,
            None,
            "spec.jar.sha256 must be exactly 64 hexadecimal characters",
        );
    }
    let mut obj = topology();
    obj["spec"]["jar"]["url"] = json!("ftp://example.com/t.jar");
    rejected(
        &obj,
        None,
        "spec.jar.url must be an http:// or https:// URL",
    );
    let mut obj = support::read_yaml("docs/samples/stormtopology-image-jar.yaml");
    obj["spec"]["jar"]["path"] = json!("topology.jar");
    rejected(
        &obj,
        None,
        "spec.jar.path must be an absolute path to a .jar file",
    );
}

#[test]
fn topology_main_class_and_parallelism_are_checked() {
    let mut obj = topology();
    obj["spec"]["mainClass"] = json!("org.example.Word Count");
    rejected(
        &obj,
        None,
        "spec.mainClass must be a fully qualified Java class name",
    );
    let mut obj = topology();
    obj["spec"]["parallelism"]["split"] = json!(0);
    rejected(
        &obj,
        None,
        "spec.parallelism: every component needs at least 1 executor",
    );
}

#[test]
fn autoscaling_min_must_not_exceed_max_inline_and_standalone() {
    let mut obj = topology();
    obj["spec"]["workerPool"]["autoscaling"]["minReplicas"] = json!(9);
    rejected(
        &obj,
        None,
        "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas",
    );
    let mut obj = pool();
    obj["spec"]["autoscaling"]["minReplicas"] = json!(13);
    rejected(
        &obj,
        None,
        "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas",
    );
}

#[test]
fn metric_targets_are_consistent() {
    let metric = |m: Value| {
        let mut obj = pool();
        obj["spec"]["autoscaling"]["metrics"] = json!([m]);
        obj
    };
    rejected(
        &metric(json!({"type": "Storm", "resource": {"name": "cpu", "averageUtilization": 50}})),
        None,
        "a metric of type Storm needs the storm field only",
    );
    rejected(
        &metric(
            json!({"type": "Resource", "storm": {"metric": "storm_topology_capacity", "value": "1"}}),
        ),
        None,
        "a metric of type Storm needs the storm field only; a metric of type Resource needs the resource field only",
    );
    rejected(
        &metric(
            json!({"type": "Storm", "storm": {"metric": "storm_component_capacity", "value": "1"}}),
        ),
        None,
        "storm.component is required for storm_component_* metrics",
    );
    rejected(
        &metric(
            json!({"type": "Storm", "storm": {"metric": "storm_topology_capacity", "component": "split", "value": "1"}}),
        ),
        None,
        "not allowed for storm_topology_* metrics",
    );
    rejected(
        &metric(
            json!({"type": "Storm", "storm": {"metric": "storm_topology_pending_tuples", "value": "1", "averageValue": "1"}}),
        ),
        None,
        "exactly one of value or averageValue",
    );
    rejected(
        &metric(json!({"type": "Storm", "storm": {"metric": "storm_topology_pending_tuples"}})),
        None,
        "exactly one of value or averageValue",
    );
    accepted(
        &metric(
            json!({"type": "Storm", "storm": {"metric": "storm_topology_pending_tuples", "averageValue": "500"}}),
        ),
        None,
    );
}

#[test]
fn worker_pool_topology_ref_is_immutable() {
    let old = pool();
    let mut new = old.clone();
    new["spec"]["topologyRef"]["name"] = json!("other");
    rejected(&new, Some(&old), "spec.topologyRef is immutable");
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(7);
    accepted(&scaled, Some(&old));
}
