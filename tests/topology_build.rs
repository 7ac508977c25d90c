//! Builders of a StormTopology's children (submit Job, inline pool), from YAML fixtures.

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Container;
use serde_json::{Value, json};
use storm_controller::controller::cluster::validate::{ClusterPlan, validate};
use storm_controller::controller::labels;
use storm_controller::controller::topology::build::{
    self, DEFAULT_FETCH_IMAGE, REASON_CHECKSUM_MISMATCH, REASON_JAR_COPY_FAILED,
    REASON_JAR_DOWNLOAD_FAILED, SubmitBuildError,
};
use storm_controller::crd::{StormCluster, StormTopology};

const TOPOLOGY_UID: &str = "7a1c2d3e-0000-4000-8000-000000000007";

fn with_uid(mut value: Value, uid: &str) -> Value {
    value["metadata"]["uid"] = uid.into();
    value
}

/// The url-jar sample with a uid, edited by `edit`.
fn topology_with(edit: impl FnOnce(&mut Value)) -> StormTopology {
    let mut value = with_uid(
        support::read_yaml("docs/samples/stormtopology-autoscaled.yaml"),
        TOPOLOGY_UID,
    );
    edit(&mut value);
    serde_json::from_value(value).expect("a StormTopology")
}

fn topology() -> StormTopology {
    topology_with(|_| {})
}

fn image_topology() -> StormTopology {
    let value = with_uid(
        support::read_yaml("docs/samples/stormtopology-image-jar.yaml"),
        TOPOLOGY_UID,
    );
    serde_json::from_value(value).expect("a StormTopology")
}

fn cluster(rel: &str) -> (StormCluster, ClusterPlan) {
    let value = with_uid(
        support::read_yaml(rel),
        "0b1c2d3e-0000-4000-8000-000000000001",
    );
    let cluster: StormCluster = serde_json::from_value(value).expect("a StormCluster");
    let plan = validate(&cluster).expect("valid cluster");
    (cluster, plan)
}

fn managed() -> (StormCluster, ClusterPlan) {
    cluster("docs/samples/stormcluster-managed.yaml")
}

/// The external sample with a Storm image and a thrift port of its own.
fn external() -> (StormCluster, ClusterPlan) {
    let mut value = support::read_yaml("docs/samples/stormcluster-external.yaml");
    value["spec"]["image"] = "apache/storm:2.6.4".into();
    value["spec"]["thrift"]["port"] = 7627.into();
    let cluster: StormCluster = serde_json::from_value(value).expect("a StormCluster");
    let plan = validate(&cluster).expect("valid cluster");
    (cluster, plan)
}

fn job(topology: &StormTopology, (cluster, plan): &(StormCluster, ClusterPlan)) -> Job {
    let version = build::desired_version(topology);
    build::submit_job(
        topology,
        cluster,
        plan,
        "wordcount",
        &version,
        DEFAULT_FETCH_IMAGE,
    )
    .expect("a Job")
}

fn pod(job: &Job) -> &k8s_openapi::api::core::v1::PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn fetch(job: &Job) -> &Container {
    &pod(job).init_containers.as_ref().unwrap()[0]
}

fn submit(job: &Job) -> &Container {
    &pod(job).containers[0]
}

fn env_of(container: &Container) -> Vec<(String, String)> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

fn unversioned(edit: impl FnOnce(&mut Value)) -> StormTopology {
    topology_with(|v| {
        v["spec"].as_object_mut().unwrap().remove("version");
        edit(v);
    })
}

#[test]
fn version_is_the_specs_when_set() {
    assert_eq!(build::desired_version(&topology()), "1.0.0");
}

#[test]
fn hashed_version_is_stable_and_follows_what_is_submitted() {
    let base = build::desired_version(&unversioned(|_| {}));
    assert!(base.starts_with('h') && base.len() == 17, "{base}");
    assert_eq!(base, build::desired_version(&unversioned(|_| {})));
    let changed = [
        unversioned(|v| v["spec"]["jar"]["url"] = "https://example.com/other.jar".into()),
        unversioned(|v| v["spec"]["args"] = json!(["other"])),
        unversioned(|v| v["spec"]["config"]["topology.max.spout.pending"] = 2000.into()),
        unversioned(|v| v["spec"]["mainClass"] = "org.example.Other".into()),
    ];
    for topology in &changed {
        assert_ne!(build::desired_version(topology), base);
    }
    let same = [
        unversioned(|v| v["spec"]["workers"] = 3.into()),
        unversioned(|v| v["spec"]["suspend"] = true.into()),
        unversioned(|v| v["spec"]["parallelism"]["spout"] = 1.into()),
    ];
    for topology in &same {
        assert_eq!(build::desired_version(topology), base);
    }
}

#[test]
fn job_name_is_deterministic_and_a_dns_label() {
    let t = topology();
    let name = build::submit_job_name(&t, "wordcount", "1.0.0");
    assert_eq!(name, build::submit_job_name(&t, "wordcount", "1.0.0"));
    assert!(
        name.starts_with("wordcount-submit-") && name.len() == 25,
        "{name}"
    );
    assert_ne!(name, build::submit_job_name(&t, "wordcount", "1.0.1"));
    assert_ne!(
        name,
        build::submit_job_name(&t, "wordcount-green", "1.0.0"),
        "a BlueGreen submission of the same version under the other name is another Job"
    );

    let long = topology_with(|v| v["metadata"]["name"] = format!("{}-x", "a".repeat(45)).into());
    let name = build::submit_job_name(&long, "wordcount", "1.0.0");
    assert!(name.len() <= 63, "{name}");
    assert!(!name.contains("--"), "{name}");
    let dns = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    assert!(dns(&name), "{name}");
    let longest = topology_with(|v| v["metadata"]["name"] = "b".repeat(63).into());
    let name = build::submit_job_name(&longest, "wordcount", "1.0.0");
    assert_eq!(name.len(), 63);
    assert!(dns(&name));
}

fn config_topology() -> StormTopology {
    topology_with(|v| {
        v["spec"]["config"] = json!({
            "topology.max.spout.pending": 1000,
            "my.name": "fast",
            "my.list": ["a", 1],
        });
        v["spec"]["args"] = json!(["$(STORM_TOPOLOGY_NAME)", "--fast"]);
    })
}

#[test]
fn argv_for_a_managed_cluster() {
    let job = job(&config_topology(), &managed());
    let c = submit(&job);
    assert_eq!(c.image.as_deref(), Some("apache/storm:2.8.1"));
    assert_eq!(c.command, None);
    let seeds = r#"["storm-nimbus-0.storm-nimbus-headless.storm.svc","storm-nimbus-1.storm-nimbus-headless.storm.svc"]"#;
    assert_eq!(
        c.args.clone().unwrap(),
        [
            "storm",
            "jar",
            "-c",
            &format!("nimbus.seeds={seeds}"),
            "-c",
            "nimbus.thrift.port=6627",
            "-c",
            r#"topology.version="1.0.0""#,
            "-c",
            &format!(r#"storm.kubernetes.owner.uid="{TOPOLOGY_UID}""#),
            "-c",
            r#"my.list=["a",1]"#,
            "-c",
            r#"my.name="fast""#,
            "-c",
            "topology.max.spout.pending=1000",
            "-c",
            "topology.workers=8",
            "/jar/topology.jar",
            "org.apache.storm.starter.WordCountTopology",
            "$(STORM_TOPOLOGY_NAME)",
            "--fast",
        ]
    );
    assert_eq!(
        env_of(c),
        [("STORM_TOPOLOGY_NAME".to_string(), "wordcount".to_string())]
    );
}

#[test]
fn argv_for_an_external_cluster() {
    let job = job(&config_topology(), &external());
    let c = submit(&job);
    assert_eq!(c.image.as_deref(), Some("apache/storm:2.6.4"));
    let args = c.args.clone().unwrap();
    assert_eq!(
        args[..8],
        [
            "storm",
            "jar",
            "-c",
            r#"nimbus.seeds=["nimbus-a.storm.example.internal","nimbus-b.storm.example.internal"]"#,
            "-c",
            "nimbus.thrift.port=7627",
            "-c",
            r#"topology.version="1.0.0""#,
        ]
    );
    let jar = args.iter().position(|a| a == "/jar/topology.jar").unwrap();
    assert_eq!(args[jar - 1], "topology.workers=8");
}

#[test]
fn external_cluster_without_image_says_what_to_set() {
    let (cluster, plan) = cluster("docs/samples/stormcluster-external.yaml");
    let error =
        build::submit_job(&topology(), &cluster, &plan, "wordcount", "1", "curl").unwrap_err();
    assert!(matches!(error, SubmitBuildError::NoImage { .. }));
    let message = error.to_string();
    assert!(message.contains("legacy"), "{message}");
    assert!(message.contains("spec.image"), "{message}");
    assert!(
        message.contains("external cluster's Storm version"),
        "{message}"
    );
}

#[test]
fn url_jar_is_downloaded_and_checked() {
    let job = job(&topology(), &managed());
    let f = fetch(&job);
    assert_eq!(f.name, "fetch-jar");
    assert_eq!(f.image.as_deref(), Some(DEFAULT_FETCH_IMAGE));
    assert_eq!(
        env_of(f),
        [
            (
                "JAR_URL".to_string(),
                "https://artifacts.example.com/storm-starter-2.8.1.jar".to_string()
            ),
            (
                "JAR_SHA256".to_string(),
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_string()
            ),
        ]
    );
    let command = f.command.clone().unwrap();
    assert_eq!(command[..2], ["sh", "-c"]);
    let script = &command[2];
    assert!(
        script.contains(r#"curl -fsSL --retry 3 --max-time 600 -o /jar/topology.jar "$JAR_URL""#)
    );
    assert!(script.contains(&format!("{REASON_JAR_DOWNLOAD_FAILED}: ")));
    assert!(script.contains(&format!(
        "{REASON_CHECKSUM_MISMATCH}: expected $expected, got $got"
    )));
    assert!(script.contains("sha256sum"));
    assert!(script.contains("exit 2") && script.contains("exit 3"));

    let unchecked = topology_with(|v| {
        v["spec"]["jar"].as_object_mut().unwrap().remove("sha256");
    });
    let job = self::job(&unchecked, &managed());
    assert_eq!(
        env_of(fetch(&job))[1],
        ("JAR_SHA256".to_string(), String::new())
    );
}

#[test]
fn image_jar_is_copied_out_of_the_image() {
    let job = job(&image_topology(), &managed());
    let f = fetch(&job);
    assert_eq!(
        f.image.as_deref(),
        Some("registry.example.com/enrich-topology:3.2.0")
    );
    assert_eq!(
        env_of(f),
        [(
            "JAR_PATH".to_string(),
            "/opt/topology/enrich-3.2.0.jar".to_string()
        )]
    );
    let command = f.command.clone().unwrap();
    assert_eq!(command[..2], ["sh", "-c"]);
    assert!(command[2].starts_with(r#"cp "$JAR_PATH" /jar/topology.jar || "#));
    assert!(command[2].contains(&format!("{REASON_JAR_COPY_FAILED}: ")));
    assert!(!env_of(f).iter().any(|(k, _)| k == "JAR_SHA256"));
}

#[test]
fn job_has_owner_labels_limits_and_a_locked_down_pod() {
    let t = topology();
    let job = job(&t, &managed());
    let meta = &job.metadata;
    assert_eq!(
        meta.name.as_deref(),
        Some(build::submit_job_name(&t, "wordcount", "1.0.0").as_str())
    );
    assert_eq!(meta.namespace.as_deref(), Some("storm"));
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("StormTopology", "wordcount", TOPOLOGY_UID)
    );
    assert_eq!(owner.controller, Some(true));
    let l = meta.labels.as_ref().unwrap();
    assert_eq!(l["app.kubernetes.io/component"], "submitter");
    assert_eq!(l["app.kubernetes.io/instance"], "wordcount");
    assert_eq!(l[labels::CLUSTER_LABEL], "storm");
    assert_eq!(l[labels::TOPOLOGY_LABEL], "wordcount");
    assert_eq!(
        meta.annotations.as_ref().unwrap()[build::VERSION_ANNOTATION],
        "1.0.0"
    );
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(2));
    assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
    assert_eq!(spec.active_deadline_seconds, Some(900));
    let p = pod(&job);
    assert_eq!(p.restart_policy.as_deref(), Some("Never"));
    let security = p.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(1000));
    let volume = &p.volumes.as_ref().unwrap()[0];
    assert_eq!(volume.name, "jar");
    assert!(volume.empty_dir.is_some());
    for c in [fetch(&job), submit(&job)] {
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError"),
            "{}",
            c.name
        );
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, "/jar");
        let s = c.security_context.as_ref().unwrap();
        assert_eq!(s.allow_privilege_escalation, Some(false));
    }
    let resources = submit(&job).resources.clone().unwrap();
    assert_eq!(resources.limits.unwrap()["memory"].0, "1Gi");
}

#[test]
fn inline_pool_is_owned_and_points_back() {
    let t = topology();
    let pool = build::inline_worker_pool(&t).expect("the sample has a workerPool");
    assert_eq!(pool.metadata.name.as_deref(), Some("wordcount"));
    assert_eq!(pool.metadata.namespace.as_deref(), Some("storm"));
    let owner = &pool.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("StormTopology", TOPOLOGY_UID)
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(
        pool.metadata.labels.as_ref().unwrap()[labels::TOPOLOGY_LABEL],
        "wordcount"
    );
    assert_eq!(pool.spec.topology_ref.name, "wordcount");
    assert_eq!(Some(pool.spec.template), t.spec.worker_pool);
    assert!(build::inline_worker_pool(&image_topology()).is_none());
}
