//! Pure builders of a StormTopology's children: the submit Job that runs `storm jar`, and the
//! StormWorkerPool created from an inline `spec.workerPool`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, LocalObjectReference, PodSpec, PodTemplateSpec,
    ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde_json::json;

use crate::controller::apply::canonical_json;
use crate::controller::cluster::build::{
    NIMBUS_PORT, container_security_context, nimbus_seeds, pod_security_context, short_hash,
};
use crate::controller::cluster::validate::ClusterPlan;
use crate::controller::labels::{self, Component};
use crate::crd::common::TopologyReference;
use crate::crd::worker_pool::StormWorkerPoolSpec;
use crate::crd::{StormCluster, StormTopology, StormWorkerPool};

/// Image of the `fetch-jar` init container for `jar.url`: it has `curl`, `sh` and `sha256sum`.
pub const DEFAULT_FETCH_IMAGE: &str = "curlimages/curl:8.11.1";
/// Annotation on the submit Job with the `topology.version` it submits.
pub const VERSION_ANNOTATION: &str = "storm.apache.org/topology-version";
/// Where the jar volume is mounted in both containers.
pub const JAR_DIR: &str = "/jar";
/// Path of the jar `storm jar` submits.
pub const JAR_FILE: &str = "/jar/topology.jar";
/// Topology configuration key with the uid of the StormTopology that submitted the topology:
/// the operator kills only topologies that carry its own uid.
pub const OWNER_CONF_KEY: &str = "storm.kubernetes.owner.uid";
/// Environment variable of the `submit` container with the Storm name of the topology; write
/// `$(STORM_TOPOLOGY_NAME)` in `spec.args` and Kubernetes expands it.
pub const STORM_NAME_ENV: &str = "STORM_TOPOLOGY_NAME";
/// Termination-message reason: the jar could not be downloaded from `jar.url`.
pub const REASON_JAR_DOWNLOAD_FAILED: &str = "JarDownloadFailed";
/// Termination-message reason: the downloaded jar does not match `jar.sha256`.
pub const REASON_CHECKSUM_MISMATCH: &str = "ChecksumMismatch";
/// Termination-message reason: the jar could not be copied out of `jar.image`.
pub const REASON_JAR_COPY_FAILED: &str = "JarCopyFailed";
/// Exit code of `fetch-jar` when the download (or the copy out of an image) fails.
pub const EXIT_JAR_FETCH_FAILED: i32 = 2;
/// Exit code of `fetch-jar` when the checksum does not match.
pub const EXIT_CHECKSUM_MISMATCH: i32 = 3;

/// Why a submit Job cannot be built.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SubmitBuildError {
    /// The cluster names no Storm image (an external cluster without `spec.image`).
    #[error(
        "StormCluster {cluster} has no spec.image: set spec.image of the StormCluster to a Storm image matching the external cluster's Storm version; the submit Job runs `storm jar` with it"
    )]
    NoImage {
        /// Name of the StormCluster.
        cluster: String,
    },
    /// The topology names neither `jar.url` nor `jar.image` with `jar.path`.
    #[error("spec.jar needs exactly one source: url, or image with path")]
    NoJarSource,
}

impl SubmitBuildError {
    /// The Event and condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            SubmitBuildError::NoImage { .. } => "NoImage",
            SubmitBuildError::NoJarSource => "NoJarSource",
        }
    }
}

/// The version the operator submits: `spec.version` when set, else `h` followed by a hash of
/// the canonical JSON of jar, main class, args and config. Workers, parallelism and suspend are
/// left out: they change in place (rebalance, activate/deactivate) without a new version.
pub fn desired_version(topology: &StormTopology) -> String {
    if let Some(version) = &topology.spec.version {
        return version.clone();
    }
    let spec = &topology.spec;
    let submitted = json!({
        "jar": spec.jar,
        "mainClass": spec.main_class,
        "args": spec.args,
        "config": spec.config,
    });
    format!("h{}", short_hash(&canonical_json(&submitted)))
}

/// The name of the Job that submits `version` of `topology` under `storm_name`:
/// `<name>-submit-<8 hex>`, the name part shortened so that the whole is a DNS label of at most
/// 63 characters. The same topology, Storm name and version always give the same name, so a
/// retried reconcile finds the Job it created instead of creating a second one.
pub fn submit_job_name(topology: &StormTopology, storm_name: &str, version: &str) -> String {
    let hash = short_hash(&format!("{storm_name}/{version}"));
    let suffix = format!("-submit-{}", &hash[..8]);
    let name = topology.name_any();
    let room = 63 - suffix.len();
    let mut base: String = name.chars().take(room).collect();
    while base.ends_with('-') {
        base.pop();
    }
    format!("{base}{suffix}")
}

/// The Job that submits `version` of `topology` to `cluster` with `storm jar`.
///
/// An init container `fetch-jar` puts the jar at `/jar/topology.jar`: downloaded from `jar.url`
/// with `fetch_image` (curl, checked against `jar.sha256` when given), or copied out of
/// `jar.image` from `jar.path` (that image needs `sh` and `cp`). On failure it writes
/// `<Reason>: <detail>` (see the `REASON_*` constants) to its termination message.
///
/// The container `submit` runs, with the cluster's Storm image,
/// `storm jar -c nimbus.seeds=[..] -c nimbus.thrift.port=P -c topology.version="V"
/// [-c key=<JSON value>]... -c topology.workers=N /jar/topology.jar MAIN ARGS...`.
/// The `-c` options come before the jar so they never mix with the user's arguments.
///
/// The main class chooses the name the topology gets in Storm, so the arguments must carry it:
/// the container has `STORM_TOPOLOGY_NAME=<storm_name>`, and `$(STORM_TOPOLOGY_NAME)` in
/// `spec.args` is expanded by Kubernetes.
pub fn submit_job(
    topology: &StormTopology,
    cluster: &StormCluster,
    cluster_plan: &ClusterPlan,
    storm_name: &str,
    version: &str,
    fetch_image: &str,
) -> Result<Job, SubmitBuildError> {
    let cluster_name = cluster.name_any();
    let (image, seeds, port) = match cluster_plan {
        ClusterPlan::Managed(plan) => (Some(plan.image.clone()), nimbus_seeds(plan), NIMBUS_PORT),
        ClusterPlan::External { seeds } => (
            cluster.spec.image.clone(),
            seeds.iter().map(|(host, _)| host.clone()).collect(),
            cluster.spec.thrift.port,
        ),
    };
    let image = image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| SubmitBuildError::NoImage {
            cluster: cluster_name.clone(),
        })?;
    let pull_policy = cluster.spec.image_pull_policy.as_str().to_string();
    let name = topology.name_any();
    let mut job_labels = labels::labels(&name, &cluster_name, Component::Submitter);
    job_labels.insert(labels::TOPOLOGY_LABEL.into(), name.clone());

    let fetch = fetch_container(topology, fetch_image)?;
    let submit = Container {
        name: "submit".into(),
        image: Some(image),
        image_pull_policy: Some(pull_policy),
        args: Some(storm_jar_args(topology, &seeds, port, version)),
        env: Some(vec![env(STORM_NAME_ENV, storm_name)]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("100m".into())),
                ("memory".to_string(), Quantity("512Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("1Gi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(vec![jar_mount()]),
        security_context: Some(container_security_context()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };

    let mut meta = labels::child_meta(
        topology,
        submit_job_name(topology, storm_name, version),
        job_labels.clone(),
    );
    meta.annotations = Some(BTreeMap::from([(
        VERSION_ANNOTATION.to_string(),
        version.to_string(),
    )]));
    let pull_secrets: &[LocalObjectReference] = &cluster.spec.image_pull_secrets;
    Ok(Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(2),
            ttl_seconds_after_finished: Some(3600),
            active_deadline_seconds: Some(900),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    init_containers: Some(vec![fetch]),
                    containers: vec![submit],
                    volumes: Some(vec![Volume {
                        name: "jar".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    image_pull_secrets: (!pull_secrets.is_empty()).then(|| pull_secrets.to_vec()),
                    security_context: Some(pod_security_context()),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

/// The argv of the `submit` container: `storm jar`, the `-c` options, the jar, the main class
/// and the user's arguments.
fn storm_jar_args(
    topology: &StormTopology,
    seeds: &[String],
    port: i32,
    version: &str,
) -> Vec<String> {
    let spec = &topology.spec;
    let mut options: Vec<String> = vec![
        format!("nimbus.seeds={}", json!(seeds)),
        format!("nimbus.thrift.port={port}"),
        format!("topology.version={}", json!(version)),
    ];
    if let Some(uid) = topology.uid() {
        options.push(format!("{OWNER_CONF_KEY}={}", json!(uid)));
    }
    // Storm parses each `-c` value as JSON and falls back to a string: JSON keeps types.
    options.extend(
        spec.config
            .iter()
            .map(|(key, value)| format!("{key}={}", canonical_json(value))),
    );
    options.push(format!("topology.workers={}", spec.workers));
    let mut args = vec!["storm".to_string(), "jar".to_string()];
    for option in options {
        args.push("-c".into());
        args.push(option);
    }
    args.push(JAR_FILE.into());
    args.push(spec.main_class.clone());
    args.extend(spec.args.iter().cloned());
    args
}

fn fetch_container(
    topology: &StormTopology,
    fetch_image: &str,
) -> Result<Container, SubmitBuildError> {
    let jar = &topology.spec.jar;
    let (image, env_vars, script) = match (&jar.url, &jar.image, &jar.path) {
        (Some(url), None, _) => (
            fetch_image.to_string(),
            vec![
                env("JAR_URL", url),
                env("JAR_SHA256", jar.sha256.as_deref().unwrap_or_default()),
            ],
            download_script(),
        ),
        (None, Some(image), Some(path)) => (
            image.clone(),
            vec![env("JAR_PATH", path)],
            format!(
                "cp \"$JAR_PATH\" {JAR_FILE} || {{ echo \"{REASON_JAR_COPY_FAILED}: cannot copy $JAR_PATH out of the image\" > /dev/termination-log; exit {EXIT_JAR_FETCH_FAILED}; }}"
            ),
        ),
        _ => return Err(SubmitBuildError::NoJarSource),
    };
    Ok(Container {
        name: "fetch-jar".into(),
        image: Some(image),
        command: Some(vec!["sh".into(), "-c".into(), script]),
        env: Some(env_vars),
        volume_mounts: Some(vec![jar_mount()]),
        security_context: Some(container_security_context()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    })
}

fn download_script() -> String {
    format!(
        r#"set -u
if ! err=$(curl -fsSL --retry 3 --max-time 600 -o {JAR_FILE} "$JAR_URL" 2>&1); then
  echo "{REASON_JAR_DOWNLOAD_FAILED}: $(echo "$err" | tail -n 1 | cut -c 1-200)" > /dev/termination-log
  exit {EXIT_JAR_FETCH_FAILED}
fi
if [ -n "$JAR_SHA256" ]; then
  expected=$(echo "$JAR_SHA256" | tr 'A-F' 'a-f')
  got=$(sha256sum {JAR_FILE} | cut -d ' ' -f 1 | tr 'A-F' 'a-f')
  if [ "$got" != "$expected" ]; then
    echo "{REASON_CHECKSUM_MISMATCH}: expected $expected, got $got" > /dev/termination-log
    exit {EXIT_CHECKSUM_MISMATCH}
  fi
fi
"#
    )
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn jar_mount() -> VolumeMount {
    VolumeMount {
        name: "jar".into(),
        mount_path: JAR_DIR.into(),
        ..VolumeMount::default()
    }
}

/// The StormWorkerPool of an inline `spec.workerPool`: named after the topology, in its
/// namespace, owned by it and pointing back at it. `None` without `spec.workerPool`.
pub fn inline_worker_pool(topology: &StormTopology) -> Option<StormWorkerPool> {
    let template = topology.spec.worker_pool.clone()?;
    let name = topology.name_any();
    let mut pool_labels = labels::labels(
        &name,
        &topology.spec.cluster_ref.name,
        Component::WorkerPool,
    );
    pool_labels.insert(labels::TOPOLOGY_LABEL.into(), name.clone());
    let mut pool = StormWorkerPool::new(
        &name,
        StormWorkerPoolSpec {
            topology_ref: TopologyReference { name: name.clone() },
            template,
        },
    );
    pool.metadata = labels::child_meta(topology, name, pool_labels);
    Some(pool)
}
