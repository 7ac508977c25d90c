//! `render` turns samples into the objects the operator would apply.

mod support;

use storm_controller::render::{Format, RenderError, render};

fn sample(rel: &str) -> String {
    std::fs::read_to_string(support::repo_path(rel)).unwrap()
}

fn kinds(yaml: &str) -> Vec<String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).unwrap();
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn managed_cluster_renders_every_child_with_kind_and_api_version() {
    let out = render(
        &sample("docs/samples/stormcluster-managed.yaml"),
        "default",
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(
        kinds(&out),
        [
            "ConfigMap/storm-config",
            "Service/storm-nimbus-headless",
            "Service/storm-nimbus",
            "StatefulSet/storm-nimbus",
            "PodDisruptionBudget/storm-nimbus",
            "Deployment/storm-supervisor",
            "Deployment/storm-ui",
            "Service/storm-ui",
        ]
    );
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
    assert!(docs.iter().all(|d| d["apiVersion"].is_string()));
    assert!(docs.iter().all(|d| d["metadata"]["namespace"] == "storm"));
}

#[test]
fn external_cluster_renders_nothing_and_json_is_a_list() {
    let out = render(
        &sample("docs/samples/stormcluster-external.yaml"),
        "default",
        Format::Json,
    )
    .unwrap();
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"], serde_json::json!([]));
}

#[test]
fn a_multi_document_file_renders_each_object_and_defaults_the_namespace() {
    let input = "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: a}\nspec: {image: 'apache/storm:2.8.1', zookeeper: {servers: [zk]}}\n---\napiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: b, namespace: x}\nspec: {external: {nimbusSeeds: [nimbus-0]}}\n";
    let out = render(input, "dev", Format::Yaml).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
    assert_eq!(
        docs.len(),
        6,
        "a managed cluster without ui gets six children; an external one none"
    );
    assert!(docs.iter().all(|d| d["metadata"]["namespace"] == "dev"));
}

#[test]
fn bad_input_names_the_document_and_the_problem() {
    let bad = "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: a}\nspec: {zookeeper: {servers: [zk]}}\n";
    let err = render(bad, "default", Format::Yaml).unwrap_err();
    assert!(matches!(err, RenderError::Document { index: 1, .. }));
    assert!(err.to_string().contains("spec.image is required"), "{err}");
    let wrong_kind =
        "apiVersion: storm.apache.org/v1alpha1\nkind: StormThing\nmetadata: {name: a}\n";
    assert!(
        render(wrong_kind, "default", Format::Yaml)
            .unwrap_err()
            .to_string()
            .contains("StormThing")
    );
    let wrong_version = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
    assert!(
        render(wrong_version, "default", Format::Yaml)
            .unwrap_err()
            .to_string()
            .contains("storm.apache.org/v1alpha1")
    );
}

#[test]
fn a_topology_renders_its_submit_job_and_pool_with_its_cluster() {
    let input = format!(
        "{}\n---\n{}",
        sample("docs/samples/stormtopology-autoscaled.yaml"),
        sample("docs/samples/stormcluster-managed.yaml")
    );
    let out = render(&input, "default", Format::Yaml).unwrap();
    let kinds = kinds(&out);
    let job = storm_controller::controller::topology::build::submit_job_name(
        &serde_saphyr::from_str(&sample("docs/samples/stormtopology-autoscaled.yaml")).unwrap(),
        "wordcount",
        "1.0.0",
    );
    assert_eq!(
        kinds[..2],
        [
            format!("Job/{job}"),
            "StormWorkerPool/wordcount".to_string()
        ]
    );
    assert_eq!(
        kinds[2..4],
        [
            "Deployment/wordcount-pool".to_string(),
            "HorizontalPodAutoscaler/wordcount".to_string()
        ],
        "the inline pool renders its supervisors and HPA"
    );
    assert_eq!(kinds.len(), 12, "{kinds:?}");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
    let args = &docs[0]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args[0], "storm");
    assert!(
        args.as_array()
            .unwrap()
            .iter()
            .any(|a| a == r#"topology.version="1.0.0""#),
        "{args}"
    );
    assert_eq!(docs[1]["apiVersion"], "storm.apache.org/v1alpha1");
    assert_eq!(docs[1]["spec"]["topologyRef"]["name"], "wordcount");
}

#[test]
fn a_topology_without_its_cluster_is_an_error_naming_the_cluster() {
    let topology = sample("docs/samples/stormtopology-autoscaled.yaml");
    let err = render(&topology, "default", Format::Yaml).unwrap_err();
    assert!(
        matches!(err, RenderError::Document { index: 1, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("StormCluster storm"), "{message}");
    assert!(message.contains("wordcount"), "{message}");
    // A cluster of the same name in another namespace is not the topology's.
    let elsewhere = sample("docs/samples/stormcluster-managed.yaml")
        .replace("namespace: storm", "namespace: other");
    let err = render(
        &format!("{topology}\n---\n{elsewhere}"),
        "default",
        Format::Yaml,
    )
    .unwrap_err();
    assert!(err.to_string().contains("StormCluster storm"), "{err}");
}

#[test]
fn a_standalone_pool_renders_its_deployment_and_hpa_with_its_topology_and_cluster() {
    let input = format!(
        "{}\n---\n{}\n---\n{}",
        sample("docs/samples/stormworkerpool-standalone.yaml"),
        sample("docs/samples/stormtopology-image-jar.yaml"),
        sample("docs/samples/stormcluster-managed.yaml")
    );
    let out = render(&input, "default", Format::Yaml).unwrap();
    let kinds = kinds(&out);
    assert_eq!(
        kinds[..2],
        [
            "Deployment/enrich-workers-pool".to_string(),
            "HorizontalPodAutoscaler/enrich-workers".to_string()
        ]
    );
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
    assert_eq!(docs[0]["spec"]["replicas"], 4);
    assert_eq!(
        docs[0]["metadata"]["labels"]["storm.apache.org/topology"],
        "enrich"
    );
    assert_eq!(docs[1]["spec"]["scaleTargetRef"]["kind"], "StormWorkerPool");
    assert_eq!(docs[1]["apiVersion"], "autoscaling/v2");
}

#[test]
fn a_pool_without_its_topology_or_on_an_external_cluster_is_an_error() {
    let pool = sample("docs/samples/stormworkerpool-standalone.yaml");
    let err = render(&pool, "default", Format::Yaml).unwrap_err();
    assert!(err.to_string().contains("StormTopology enrich"), "{err}");
    let on_external = format!(
        "{pool}\n---\n{}\n---\n{}",
        sample("docs/samples/stormtopology-image-jar.yaml").replace("name: storm", "name: legacy"),
        sample("docs/samples/stormcluster-external.yaml")
    );
    let err = render(&on_external, "default", Format::Yaml).unwrap_err();
    assert!(
        err.to_string()
            .contains("needs a cluster the operator runs"),
        "{err}"
    );
}
