//! The generated CRDs: `crds/` is in sync with the Rust types, and the CRDs carry the names,
//! subresources, printer columns and rules that kubectl users rely on.

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use storm_controller::crd;

fn crd_named(name: &str) -> CustomResourceDefinition {
    crd::crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no CRD {name}"))
}

#[test]
fn crds_dir_matches_the_rust_types() {
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let mut stale = Vec::new();
    for c in crd::crds() {
        let name = c.metadata.name.clone().expect("CRDs are named");
        let path = support::repo_path(&format!("crds/{name}.yaml"));
        let want = crd::crd_yaml(&c);
        if update {
            std::fs::write(&path, &want).expect("write crds/");
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD files {stale:?}: regenerate them with `hack/gen-crds.sh` (UPDATE_CRDS=1 cargo test --test crds)"
    );
    let files = std::fs::read_dir(support::repo_path("crds"))
        .expect("crds/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .count();
    assert_eq!(
        files,
        crd::crds().len(),
        "crds/ holds one file per CRD and nothing else"
    );
}

#[test]
fn yaml_stream_holds_each_crd_once_and_parses_back() {
    let stream = crd::crds_yaml();
    let docs: Vec<&str> = stream
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .collect();
    assert_eq!(docs.len(), 3);
    for (doc, want) in docs.iter().zip(crd::crds()) {
        let parsed: CustomResourceDefinition =
            serde_saphyr::from_str(doc).expect("each document is a CRD");
        assert_eq!(parsed, want);
    }
}

#[test]
fn names_short_names_and_category() {
    for (name, kind, plural, short) in [
        (
            "stormclusters.storm.apache.org",
            "StormCluster",
            "stormclusters",
            "stormc",
        ),
        (
            "stormtopologies.storm.apache.org",
            "StormTopology",
            "stormtopologies",
            "stormt",
        ),
        (
            "stormworkerpools.storm.apache.org",
            "StormWorkerPool",
            "stormworkerpools",
            "stormwp",
        ),
    ] {
        let c = crd_named(name);
        assert_eq!(c.spec.group, crd::GROUP);
        assert_eq!(c.spec.scope, "Namespaced");
        assert_eq!(c.spec.names.kind, kind);
        assert_eq!(c.spec.names.plural, plural);
        assert_eq!(
            c.spec.names.short_names.as_deref(),
            Some(&[short.to_string()][..])
        );
        assert_eq!(
            c.spec.names.categories.as_deref(),
            Some(&[crd::CATEGORY.to_string()][..])
        );
        assert_eq!(c.spec.versions.len(), 1);
        let v = &c.spec.versions[0];
        assert_eq!(v.name, crd::VERSION);
        assert!(v.served && v.storage);
        let sub = v.subresources.as_ref().expect("subresources");
        assert!(sub.status.is_some(), "{name} has a status subresource");
    }
}

#[test]
fn worker_pool_scale_subresource_points_at_replicas_and_selector() {
    let c = crd_named("stormworkerpools.storm.apache.org");
    let scale = c.spec.versions[0]
        .subresources
        .as_ref()
        .and_then(|s| s.scale.as_ref())
        .expect("scale");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    for other in [
        "stormclusters.storm.apache.org",
        "stormtopologies.storm.apache.org",
    ] {
        let c = crd_named(other);
        assert!(
            c.spec.versions[0]
                .subresources
                .as_ref()
                .and_then(|s| s.scale.as_ref())
                .is_none()
        );
    }
}

#[test]
fn references_are_selectable_fields() {
    for (name, path) in [
        ("stormtopologies.storm.apache.org", ".spec.clusterRef.name"),
        (
            "stormworkerpools.storm.apache.org",
            ".spec.topologyRef.name",
        ),
    ] {
        let fields = crd_named(name).spec.versions[0]
            .selectable_fields
            .clone()
            .unwrap_or_default();
        assert_eq!(
            fields
                .iter()
                .map(|f| f.json_path.as_str())
                .collect::<Vec<_>>(),
            [path],
            "{name}"
        );
    }
}

#[test]
fn printer_columns_point_at_fields_that_exist() {
    for c in crd::crds() {
        let name = c.metadata.name.clone().unwrap_or_default();
        let schema = support::openapi::crd_schema(&c);
        let columns = c.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let names: Vec<&str> = columns.iter().map(|col| col.name.as_str()).collect();
        assert_eq!(names.last(), Some(&"Age"), "{name}: Age is the last column");
        for col in &columns {
            if col.json_path == ".metadata.creationTimestamp" {
                continue;
            }
            let mut node = &schema;
            for part in col.json_path.trim_start_matches('.').split('.') {
                node = node
                    .get("properties")
                    .and_then(|p| p.get(part))
                    .unwrap_or_else(|| {
                        panic!(
                            "{name}: column {} path {} is not in the schema",
                            col.name, col.json_path
                        )
                    });
            }
            let ty = node
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or_default();
            let ok = match col.type_.as_str() {
                "integer" => ty == "integer",
                "number" => ty == "number" || ty == "integer",
                "date" | "string" => ty == "string",
                other => panic!("{name}: unexpected column type {other}"),
            };
            assert!(
                ok,
                "{name}: column {} is {} but the field is {ty}",
                col.name, col.type_
            );
        }
    }
    let cols = |n: &str| -> Vec<String> {
        crd_named(n).spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(
        cols("stormtopologies.storm.apache.org"),
        ["Phase", "Workers", "Pending", "Latency(ms)", "Age"]
    );
    assert_eq!(
        cols("stormworkerpools.storm.apache.org"),
        ["Topology", "Desired", "Ready", "Workers", "Age"]
    );
    assert_eq!(
        cols("stormclusters.storm.apache.org"),
        [
            "Phase",
            "Leader",
            "Supervisors",
            "Free Slots",
            "Topologies",
            "Age"
        ]
    );
}

/// Every object node of the schema has a description (the `kubectl explain` text), except the
/// ones Kubernetes types bring.
#[test]
fn every_field_of_our_types_is_documented() {
    fn walk(node: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        let Some(props) = node.get("properties").and_then(|p| p.as_object()) else {
            return;
        };
        for (key, field) in props {
            let at = format!("{path}.{key}");
            if field
                .get("description")
                .and_then(|d| d.as_str())
                .is_none_or(|d| d.trim().is_empty())
            {
                missing.push(at.clone());
            }
            // Kubernetes types (resources, affinity, tolerations, HPA behavior, conditions)
            // carry upstream descriptions; only walk into our own.
            let upstream = [
                "resources",
                "affinity",
                "tolerations",
                "topologySpreadConstraints",
                "behavior",
                "conditions",
                "imagePullSecrets",
            ];
            if upstream.contains(&key.as_str()) {
                continue;
            }
            walk(field, &at, missing);
            if let Some(items) = field.get("items") {
                walk(items, &format!("{at}[]"), missing);
            }
        }
    }
    for c in crd::crds() {
        let schema = support::openapi::crd_schema(&c);
        let mut missing = Vec::new();
        for part in ["spec", "status"] {
            walk(&schema["properties"][part], part, &mut missing);
        }
        assert!(
            missing.is_empty(),
            "{:?}: undocumented fields {missing:?}",
            c.metadata.name
        );
    }
}

#[test]
fn every_cel_rule_compiles() {
    for c in crd::crds() {
        let schema = support::openapi::crd_schema(&c);
        let compiled = kube::core::cel::compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{:?}: {:?}",
            c.metadata.name,
            compiled.compilation_errors()
        );
    }
}

#[test]
fn the_structural_checker_rejects_what_the_apiserver_rejects() {
    let c = crd_named("stormclusters.storm.apache.org");
    let ok = serde_json::json!({"apiVersion": "storm.apache.org/v1alpha1", "kind": "StormCluster",
        "metadata": {"name": "s"}, "spec": {"external": {"nimbusSeeds": ["n:6627"]}}});
    assert_eq!(
        support::openapi::validate_object(&c, &ok),
        Vec::<String>::new()
    );
    let cases = [
        (
            serde_json::json!({"external": {"nimbusSeeds": ["n"]}, "bogus": 1}),
            "spec.bogus: unknown field",
        ),
        (
            serde_json::json!({"external": {}}),
            "spec.external.nimbusSeeds: required field is missing",
        ),
        (
            serde_json::json!({"external": {"nimbusSeeds": []}}),
            "spec.external.nimbusSeeds: at least 1 items",
        ),
        (
            serde_json::json!({"imagePullPolicy": "Sometimes"}),
            "spec.imagePullPolicy: unsupported value",
        ),
        (
            serde_json::json!({"nimbus": {"replicas": "two"}}),
            "spec.nimbus.replicas: must be an integer",
        ),
        (
            serde_json::json!({"nimbus": {"replicas": 6}}),
            "spec.nimbus.replicas: must be at most 5",
        ),
    ];
    for (spec, want) in cases {
        let mut obj = ok.clone();
        obj["spec"] = spec;
        let errors = support::openapi::validate_object(&c, &obj);
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "want {want:?} in {errors:?}"
        );
    }
}
