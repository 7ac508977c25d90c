//! Builders of a managed StormCluster's children, from YAML fixtures.

mod support;

use storm_controller::controller::cluster::build::{self, names};
use storm_controller::controller::cluster::validate::{ClusterPlan, Managed, validate};
use storm_controller::controller::labels;
use storm_controller::crd::StormCluster;

fn sample() -> StormCluster {
    let mut value = support::read_yaml("docs/samples/stormcluster-managed.yaml");
    value["metadata"]["uid"] = "0b1c2d3e-0000-4000-8000-000000000001".into();
    serde_json::from_value(value).expect("sample is a StormCluster")
}

fn plan(cluster: &StormCluster) -> Managed {
    match validate(cluster).expect("valid") {
        ClusterPlan::Managed(m) => *m,
        other => panic!("expected a managed plan, got {other:?}"),
    }
}

fn storm_yaml(children: &build::ClusterChildren) -> serde_json::Value {
    let text = &children.config_map.data.as_ref().unwrap()["storm.yaml"];
    serde_saphyr::from_str(text).expect("storm.yaml is YAML")
}

#[test]
fn storm_yaml_has_the_owned_keys_and_the_users_entries() {
    let cluster = sample();
    let children = build::build(&cluster, &plan(&cluster));
    let conf = storm_yaml(&children);
    assert_eq!(
        conf["nimbus.seeds"],
        serde_json::json!([
            "storm-nimbus-0.storm-nimbus-headless.storm.svc",
            "storm-nimbus-1.storm-nimbus-headless.storm.svc"
        ])
    );
    assert_eq!(
        conf["storm.zookeeper.servers"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(conf["storm.zookeeper.port"], 2181);
    assert_eq!(conf["storm.zookeeper.root"], "/storm/prod");
    assert_eq!(
        conf["supervisor.slots.ports"],
        serde_json::json!([6700, 6701, 6702, 6703])
    );
    assert_eq!(conf["nimbus.thrift.port"], 6627);
    assert_eq!(conf["storm.local.dir"], "/data");
    assert_eq!(
        conf["topology.message.timeout.secs"], 60,
        "user entries are kept"
    );
    assert_eq!(
        conf["nimbus.childopts"], "-Xmx768m",
        "jvmOpts become the daemon's childopts"
    );
    assert!(conf.get("supervisor.childopts").is_none());
}

#[test]
fn default_zookeeper_root_is_per_namespace_and_name() {
    let mut cluster = sample();
    cluster.spec.zookeeper.as_mut().unwrap().root = None;
    let children = build::build(&cluster, &plan(&cluster));
    assert_eq!(
        storm_yaml(&children)["storm.zookeeper.root"],
        "/storm/storm/storm"
    );
}

#[test]
fn config_hash_is_stable_and_rolls_every_pod_template_on_change() {
    let cluster = sample();
    let a = build::build(&cluster, &plan(&cluster));
    let b = build::build(&cluster, &plan(&cluster));
    assert_eq!(a, b, "building is deterministic");
    let mut changed = cluster.clone();
    changed
        .spec
        .config
        .insert("topology.message.timeout.secs".into(), 90.into());
    let c = build::build(&changed, &plan(&changed));
    assert_ne!(a.config_hash, c.config_hash);
    let hash_of = |t: &k8s_openapi::api::core::v1::PodTemplateSpec| {
        t.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[labels::CONFIG_HASH_ANNOTATION]
            .clone()
    };
    for children in [&a, &c] {
        let want = &children.config_hash;
        assert_eq!(
            &hash_of(&children.nimbus.spec.as_ref().unwrap().template),
            want
        );
        assert_eq!(
            &hash_of(&children.supervisors.spec.as_ref().unwrap().template),
            want
        );
        assert_eq!(
            &hash_of(
                &children
                    .ui
                    .as_ref()
                    .unwrap()
                    .0
                    .spec
                    .as_ref()
                    .unwrap()
                    .template
            ),
            want
        );
    }
}

#[test]
fn nimbus_statefulset_is_stable_persistent_spread_and_probed() {
    let cluster = sample();
    let children = build::build(&cluster, &plan(&cluster));
    let sts = children.nimbus.spec.as_ref().unwrap();
    assert_eq!(
        children.nimbus.metadata.name.as_deref(),
        Some("storm-nimbus")
    );
    assert_eq!(sts.replicas, Some(2));
    assert_eq!(sts.service_name.as_deref(), Some("storm-nimbus-headless"));
    let claim = &sts.volume_claim_templates.as_ref().unwrap()[0];
    let size = &claim
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"];
    assert_eq!(size.0, "20Gi");
    let pod = sts.template.spec.as_ref().unwrap();
    let anti = pod
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap();
    let required = anti
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap();
    assert_eq!(required[0].topology_key, "kubernetes.io/hostname");
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("apache/storm:2.8.1"));
    let args = container.args.as_ref().unwrap();
    assert_eq!(&args[..2], ["storm", "nimbus"]);
    assert_eq!(
        args[3],
        "storm.local.hostname=$(POD_NAME).storm-nimbus-headless.storm.svc"
    );
    for probe in [
        &container.readiness_probe,
        &container.liveness_probe,
        &container.startup_probe,
    ] {
        let port = &probe.as_ref().unwrap().tcp_socket.as_ref().unwrap().port;
        assert_eq!(
            *port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(6627)
        );
    }
    let security = pod.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(
        container
            .security_context
            .as_ref()
            .unwrap()
            .allow_privilege_escalation,
        Some(false)
    );
    let pdb = children.nimbus_pdb.spec.as_ref().unwrap();
    assert_eq!(
        pdb.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    let headless = children.nimbus_headless.spec.as_ref().unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.publish_not_ready_addresses, Some(true));
}

#[test]
fn supervisors_expose_one_port_per_slot() {
    let cluster = sample();
    let children = build::build(&cluster, &plan(&cluster));
    let spec = children.supervisors.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let container = &spec.template.spec.as_ref().unwrap().containers[0];
    let ports: Vec<(String, i32)> = container
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("thrift", 6628),
            ("slot-0", 6700),
            ("slot-1", 6701),
            ("slot-2", 6702),
            ("slot-3", 6703)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    assert_eq!(
        container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()["memory"]
            .0,
        "6Gi"
    );
    let anti = spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap();
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none()
    );
    assert_eq!(
        anti.preferred_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()[0]
            .weight,
        100
    );
}

#[test]
fn every_child_is_owned_labelled_and_selects_its_own_pods() {
    let cluster = sample();
    let children = build::build(&cluster, &plan(&cluster));
    let metas = [
        &children.config_map.metadata,
        &children.nimbus_headless.metadata,
        &children.nimbus_service.metadata,
        &children.nimbus.metadata,
        &children.nimbus_pdb.metadata,
        &children.supervisors.metadata,
        &children.ui.as_ref().unwrap().0.metadata,
        &children.ui.as_ref().unwrap().1.metadata,
    ];
    for meta in metas {
        let owner = &meta.owner_references.as_ref().expect("owned")[0];
        assert_eq!(owner.kind, "StormCluster");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("storm"));
        assert_eq!(
            meta.labels.as_ref().unwrap()[labels::CLUSTER_LABEL],
            "storm"
        );
    }
    let sts = children.nimbus.spec.as_ref().unwrap();
    let selector = sts.selector.match_labels.as_ref().unwrap();
    let pod_labels = sts
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    for (k, v) in selector {
        assert_eq!(pod_labels.get(k), Some(v));
    }
    let svc_selector = children
        .nimbus_service
        .spec
        .as_ref()
        .unwrap()
        .selector
        .as_ref()
        .unwrap();
    assert_eq!(svc_selector, selector);
}

#[test]
fn user_pod_settings_apply_but_never_override_operator_labels() {
    let mut cluster = sample();
    let pod = &mut cluster.spec.supervisors.as_mut().unwrap().pod;
    pod.pod_labels.insert("team".into(), "data".into());
    pod.pod_labels
        .insert("app.kubernetes.io/component".into(), "hijack".into());
    pod.affinity = Some(Default::default());
    pod.node_selector.insert("pool".into(), "storm".into());
    let children = build::build(&cluster, &plan(&cluster));
    let template = &children.supervisors.spec.as_ref().unwrap().template;
    let pod_labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert_eq!(pod_labels["team"], "data");
    assert_eq!(pod_labels["app.kubernetes.io/component"], "supervisor");
    let spec = template.spec.as_ref().unwrap();
    assert!(
        spec.affinity.is_none(),
        "an explicit empty affinity turns the default off"
    );
    assert_eq!(spec.node_selector.as_ref().unwrap()["pool"], "storm");
}

#[test]
fn ui_follows_the_spec() {
    let mut cluster = sample();
    let children = build::build(&cluster, &plan(&cluster));
    let (deploy, svc) = children.ui.expect("ui enabled");
    assert_eq!(
        deploy.metadata.name.as_deref(),
        Some(names::ui("storm").as_str())
    );
    assert_eq!(
        svc.spec.as_ref().unwrap().type_.as_deref(),
        Some("ClusterIP")
    );
    cluster.spec.ui.as_mut().unwrap().enabled = false;
    assert!(build::build(&cluster, &plan(&cluster)).ui.is_none());
    cluster.spec.ui = None;
    assert!(build::build(&cluster, &plan(&cluster)).ui.is_none());
}
