//! Builders of a StormWorkerPool's children (supervisor Deployment, HPA, placement conf), from
//! the YAML samples.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::{Value, json};
use storm_controller::controller::cluster::validate::{ClusterPlan, Managed, validate};
use storm_controller::controller::labels;
use storm_controller::controller::topology::build::inline_worker_pool;
use storm_controller::controller::worker_pool::build::{
    self, FAVORED_NODES, InvalidPool, UNFAVORED_NODES,
};
use storm_controller::crd::worker_pool::StormMetricName;
use storm_controller::crd::{StormCluster, StormTopology, StormWorkerPool};

const POOL_UID: &str = "5a1c2d3e-0000-4000-8000-000000000005";

fn cluster() -> (StormCluster, Managed) {
    let cluster: StormCluster =
        serde_json::from_value(support::read_yaml("docs/samples/stormcluster-managed.yaml"))
            .unwrap();
    match validate(&cluster).unwrap() {
        ClusterPlan::Managed(plan) => (cluster, *plan),
        other => panic!("managed sample, got {other:?}"),
    }
}

/// The standalone sample with a uid, edited by `edit`.
fn pool_with(edit: impl FnOnce(&mut Value)) -> StormWorkerPool {
    let mut value = support::read_yaml("docs/samples/stormworkerpool-standalone.yaml");
    value["metadata"]["uid"] = POOL_UID.into();
    edit(&mut value);
    serde_json::from_value(value).unwrap()
}

fn pool() -> StormWorkerPool {
    pool_with(|_| {})
}

/// The pool a StormTopology sample declares inline.
fn inline_pool() -> StormWorkerPool {
    let topology: StormTopology = serde_json::from_value(support::read_yaml(
        "docs/samples/stormtopology-autoscaled.yaml",
    ))
    .unwrap();
    inline_worker_pool(&topology).expect("the sample has a workerPool")
}

fn pod_spec(deploy: &Deployment) -> &PodSpec {
    deploy
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

fn container(deploy: &Deployment) -> &Container {
    &pod_spec(deploy).containers[0]
}

fn args(deploy: &Deployment) -> Vec<String> {
    container(deploy).args.clone().unwrap()
}

/// The value of `-c key=...` in the supervisor's arguments.
fn conf_option(deploy: &Deployment, key: &str) -> Option<String> {
    let args = args(deploy);
    args.windows(2)
        .filter(|w| w[0] == "-c")
        .find_map(|w| w[1].strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn names_and_selector_find_the_pool_its_topology_and_cluster() {
    let pool = pool();
    assert_eq!(build::deployment_name(&pool), "enrich-workers-pool");
    assert_eq!(build::hpa_name(&pool), "enrich-workers");
    let selector = build::pod_selector(&pool, "storm");
    assert_eq!(selector[labels::POOL_LABEL], "enrich-workers");
    assert_eq!(selector[labels::TOPOLOGY_LABEL], "enrich");
    assert_eq!(selector[labels::CLUSTER_LABEL], "storm");
    assert_eq!(selector["app.kubernetes.io/component"], "worker-pool");
    assert_eq!(
        labels::selector_string(&selector),
        "app.kubernetes.io/component=worker-pool,app.kubernetes.io/instance=enrich-workers,\
         app.kubernetes.io/name=storm,storm.apache.org/cluster=storm,\
         storm.apache.org/topology=enrich,storm.apache.org/worker-pool=enrich-workers"
    );
}

#[test]
fn deployment_runs_supervisors_with_the_pools_slots_and_the_clusters_image_and_config() {
    let (cluster, plan) = cluster();
    let pool = pool();
    let deploy = build::deployment(&pool, &cluster, &plan, 4);
    assert_eq!(deploy.metadata.name.as_deref(), Some("enrich-workers-pool"));
    assert_eq!(deploy.metadata.namespace.as_deref(), Some("storm"));
    let owner = &deploy.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("StormWorkerPool", POOL_UID)
    );
    assert_eq!(owner.controller, Some(true));
    let spec = deploy.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(4));
    let selector = build::pod_selector(&pool, "storm");
    assert_eq!(
        spec.selector.match_labels.as_ref(),
        Some(&selector),
        "the Deployment selects exactly the pool's pods"
    );
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    for (k, v) in &selector {
        assert_eq!(template_labels.get(k), Some(v), "pod label {k}");
    }
    let c = container(&deploy);
    assert_eq!(c.image.as_deref(), Some("apache/storm:2.8.1"));
    assert_eq!(
        args(&deploy)[..4],
        [
            "storm",
            "supervisor",
            "-c",
            "storm.local.hostname=$(POD_IP)"
        ],
        "a supervisor's host in Nimbus is its pod IP"
    );
    assert_eq!(
        conf_option(&deploy, "supervisor.slots.ports").as_deref(),
        Some("[6700,6701]"),
        "slotsPerSupervisor: 2 overrides the cluster's four slots"
    );
    let ports: Vec<(String, i32)> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("thrift".to_string(), 6628),
            ("slot-0".to_string(), 6700),
            ("slot-1".to_string(), 6701)
        ]
    );
    // The storm.yaml of the cluster, and its hash so a config change rolls the pool too.
    let pod = pod_spec(&deploy);
    let volumes = pod.volumes.as_ref().unwrap();
    assert_eq!(
        volumes[0].config_map.as_ref().unwrap().name,
        "storm-config",
        "mounts the cluster's storm.yaml"
    );
    let cluster_children = storm_controller::controller::cluster::build::build(&cluster, &plan);
    let annotations = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(
        annotations[labels::CONFIG_HASH_ANNOTATION],
        cluster_children.config_hash
    );
    // Resources become the capacity the resource-aware scheduler sees.
    assert_eq!(
        conf_option(&deploy, "supervisor.memory.capacity.mb").as_deref(),
        Some("4096")
    );
    assert_eq!(
        conf_option(&deploy, "supervisor.cpu.capacity").as_deref(),
        Some("200")
    );
    assert_eq!(
        c.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0,
        "4Gi"
    );
}

#[test]
fn pod_scheduling_follows_the_spec_with_anti_affinity_by_default() {
    let (cluster, plan) = cluster();
    let deploy = build::deployment(&pool(), &cluster, &plan, 4);
    let pod = pod_spec(&deploy);
    assert_eq!(pod.node_selector.as_ref().unwrap()["workload"], "storm");
    assert_eq!(
        pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(60),
        "the default grace period lets workers stop"
    );
    let anti = pod
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap();
    let preferred = &anti
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        preferred.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    assert_eq!(
        preferred
            .pod_affinity_term
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref(),
        Some(&build::pod_selector(&pool(), "storm")),
        "spreads this pool's pods, not the cluster's"
    );
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );

    // What the user sets wins: their affinity, priority class, spread, grace period, JVM options.
    let custom = pool_with(|v| {
        v["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}});
        v["spec"]["priorityClassName"] = "storm-high".into();
        v["spec"]["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}]);
        v["spec"]["terminationGracePeriodSeconds"] = 180.into();
        v["spec"]["jvmOpts"] = "-Xmx512m -XX:+UseG1GC".into();
        v["spec"]["podLabels"] =
            json!({"team": "enrich", "storm.apache.org/worker-pool": "spoofed"});
    });
    let deploy = build::deployment(&custom, &cluster, &plan, 2);
    let pod = pod_spec(&deploy);
    let affinity = pod.affinity.as_ref().unwrap();
    assert!(affinity.node_affinity.is_some() && affinity.pod_anti_affinity.is_none());
    assert_eq!(pod.priority_class_name.as_deref(), Some("storm-high"));
    assert_eq!(pod.topology_spread_constraints.as_ref().unwrap().len(), 1);
    assert_eq!(pod.termination_grace_period_seconds, Some(180));
    assert_eq!(
        conf_option(&deploy, "supervisor.childopts").as_deref(),
        Some(r#""-Xmx512m -XX:+UseG1GC""#),
        "JVM options are the supervisor's childopts, as a JSON string"
    );
    let template_labels = deploy
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(template_labels["team"], "enrich");
    assert_eq!(
        template_labels[labels::POOL_LABEL],
        "enrich-workers",
        "the operator's labels win over podLabels"
    );
}

#[test]
fn a_pool_without_resources_leaves_storms_capacity_defaults() {
    let (cluster, plan) = cluster();
    let bare = pool_with(|v| {
        v["spec"].as_object_mut().unwrap().remove("resources");
    });
    let deploy = build::deployment(&bare, &cluster, &plan, 1);
    assert_eq!(conf_option(&deploy, "supervisor.memory.capacity.mb"), None);
    assert_eq!(conf_option(&deploy, "supervisor.cpu.capacity"), None);
}

#[test]
fn hpa_scales_the_pool_on_object_metrics_of_its_topology() {
    let pool = inline_pool();
    let hpa = build::hpa(&pool, "storm").expect("autoscaling is set");
    assert_eq!(hpa.metadata.name.as_deref(), Some("wordcount"));
    let spec = hpa.spec.as_ref().unwrap();
    let target = &spec.scale_target_ref;
    assert_eq!(
        (
            target.api_version.as_deref(),
            target.kind.as_str(),
            target.name.as_str()
        ),
        (
            Some("storm.apache.org/v1alpha1"),
            "StormWorkerPool",
            "wordcount"
        ),
        "the HPA acts on the pool's /scale, never on the Deployment"
    );
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 8));
    assert_eq!(
        spec.behavior
            .as_ref()
            .unwrap()
            .scale_down
            .as_ref()
            .unwrap()
            .stabilization_window_seconds,
        Some(300)
    );
    let value = serde_json::to_value(spec.metrics.as_ref().unwrap()).unwrap();
    assert_eq!(
        value,
        json!([
            {"type": "Object", "object": {
                "describedObject": {"apiVersion": "storm.apache.org/v1alpha1", "kind": "StormTopology", "name": "wordcount"},
                "metric": {"name": "storm_topology_pending_tuples"},
                "target": {"type": "AverageValue", "averageValue": "1000"}}},
            {"type": "Object", "object": {
                "describedObject": {"apiVersion": "storm.apache.org/v1alpha1", "kind": "StormTopology", "name": "wordcount"},
                "metric": {"name": "storm_topology_capacity"},
                "target": {"type": "Value", "value": "800m"}}},
        ])
    );
}

#[test]
fn hpa_selects_a_components_series_and_adds_resource_targets() {
    let hpa = build::hpa(&pool(), "storm").unwrap();
    let metrics = serde_json::to_value(hpa.spec.unwrap().metrics.unwrap()).unwrap();
    assert_eq!(
        metrics[0]["object"]["metric"],
        json!({"name": StormMetricName::ComponentCapacity.as_str(), "selector": {"matchLabels": {"component": "enrich"}}})
    );
    assert_eq!(
        metrics[1],
        json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 75}}})
    );
    let memory = pool_with(|v| {
        v["spec"]["autoscaling"]["metrics"] =
            json!([{"type": "Resource", "resource": {"name": "memory", "averageUtilization": 80}}]);
    });
    let metrics =
        serde_json::to_value(build::hpa(&memory, "storm").unwrap().spec.unwrap().metrics).unwrap();
    assert_eq!(metrics[0]["resource"]["name"], "memory");
}

#[test]
fn no_autoscaling_means_no_hpa() {
    let manual = pool_with(|v| {
        v["spec"].as_object_mut().unwrap().remove("autoscaling");
    });
    assert!(build::hpa(&manual, "storm").is_none());
}

#[test]
fn placement_favors_the_pools_hosts_and_disfavors_the_others() {
    let pool_hosts = vec!["10.0.0.7".to_string(), "10.0.0.3".to_string()];
    let all = vec![
        "10.0.0.3".to_string(),
        "10.0.9.1".to_string(),
        "10.0.0.7".to_string(),
        "10.0.9.0".to_string(),
    ];
    let conf = build::placement_conf(&pool_hosts, &all);
    assert_eq!(conf[FAVORED_NODES], json!(["10.0.0.3", "10.0.0.7"]));
    assert_eq!(
        conf[UNFAVORED_NODES],
        json!(["10.0.9.0", "10.0.9.1"]),
        "a host is never both"
    );
    let alone = build::placement_conf(&pool_hosts, &pool_hosts);
    assert_eq!(
        alone[UNFAVORED_NODES],
        json!([]),
        "an empty list still replaces an older one"
    );
}

#[test]
fn validate_rejects_what_the_cel_rules_reject() {
    assert_eq!(build::validate(&pool()), Ok(()));
    let long = pool_with(|v| v["metadata"]["name"] = "p".repeat(64).into());
    assert_eq!(build::validate(&long), Err(InvalidPool::NameTooLong(64)));
    let inverted = pool_with(|v| v["spec"]["autoscaling"]["minReplicas"] = 20.into());
    assert_eq!(
        build::validate(&inverted).unwrap_err().reason(),
        "MinAboveMax"
    );
    let no_component = pool_with(|v| {
        v["spec"]["autoscaling"]["metrics"][0]["storm"]
            .as_object_mut()
            .unwrap()
            .remove("component");
    });
    let err = build::validate(&no_component).unwrap_err();
    assert!(matches!(err, InvalidPool::BadMetric(0, _)), "{err}");
}
