//! Pure builders: the children of a managed StormCluster, as the operator applies them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, LocalObjectReference,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::validate::Managed;
use crate::controller::labels::{self, Component};
use crate::crd::StormCluster;
use crate::crd::common::{PodSettings, StormConfig};

/// Port of Nimbus's Thrift server inside the pods.
pub const NIMBUS_PORT: i32 = 6627;
/// Port of each supervisor's Thrift server (Storm 2.x pushes assignments there).
pub const SUPERVISOR_THRIFT_PORT: i32 = 6628;
/// First worker slot port.
pub const FIRST_SLOT_PORT: i32 = 6700;
/// Port of the Storm UI.
pub const UI_PORT: i32 = 8080;
/// Where storm.yaml is mounted (the official image's `STORM_CONF_DIR`).
pub const CONF_DIR: &str = "/conf";
/// `storm.local.dir` inside the pods.
pub const DATA_DIR: &str = "/data";
/// Storm's log directory inside the pods.
pub const LOG_DIR: &str = "/logs";
/// User and group id of the official Storm image's `storm` user.
pub const STORM_UID: i64 = 1000;

/// Everything a managed StormCluster consists of.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterChildren {
    /// storm.yaml.
    pub config_map: ConfigMap,
    /// Hash of storm.yaml, stamped on every pod template so a change rolls the pods.
    pub config_hash: String,
    /// Headless Service giving each Nimbus pod a stable DNS name (the `nimbus.seeds`).
    pub nimbus_headless: Service,
    /// Client Service for Thrift on 6627.
    pub nimbus_service: Service,
    /// The Nimbus daemons.
    pub nimbus: StatefulSet,
    /// Keeps at most one Nimbus down during voluntary disruptions.
    pub nimbus_pdb: PodDisruptionBudget,
    /// The shared supervisor pool.
    pub supervisors: Deployment,
    /// The UI Deployment and its Service, when enabled.
    pub ui: Option<(Deployment, Service)>,
}

/// Child names, derived from the cluster name (at most 40 characters, so every name fits).
pub mod names {
    /// The storm.yaml ConfigMap.
    pub fn config(cluster: &str) -> String {
        format!("{cluster}-config")
    }
    /// The Nimbus StatefulSet, its client Service and its PodDisruptionBudget.
    pub fn nimbus(cluster: &str) -> String {
        format!("{cluster}-nimbus")
    }
    /// The headless Service of the Nimbus pods.
    pub fn nimbus_headless(cluster: &str) -> String {
        format!("{cluster}-nimbus-headless")
    }
    /// The shared supervisor Deployment.
    pub fn supervisors(cluster: &str) -> String {
        format!("{cluster}-supervisor")
    }
    /// The UI Deployment and Service.
    pub fn ui(cluster: &str) -> String {
        format!("{cluster}-ui")
    }
}

/// The stable DNS names of the Nimbus pods, as `nimbus.seeds` lists them.
pub fn nimbus_seeds(plan: &Managed) -> Vec<String> {
    (0..plan.nimbus.replicas.max(1))
        .map(|i| nimbus_pod_host(plan, &format!("{}-{i}", names::nimbus(&plan.name))))
        .collect()
}

fn nimbus_pod_host(plan: &Managed, pod: &str) -> String {
    format!(
        "{pod}.{}.{}.svc",
        names::nimbus_headless(&plan.name),
        plan.namespace
    )
}

/// The ZooKeeper root of the cluster: the spec's, or `/storm/<namespace>/<name>`.
pub fn zookeeper_root(plan: &Managed) -> String {
    plan.zookeeper
        .root
        .clone()
        .unwrap_or_else(|| format!("/storm/{}/{}", plan.namespace, plan.name))
}

/// The slot ports of a supervisor with `slots` slots.
pub fn slot_ports(slots: i32) -> Vec<i32> {
    (0..slots.max(0)).map(|i| FIRST_SLOT_PORT + i).collect()
}

/// storm.yaml: the user's entries, then the keys the operator owns (they always win).
pub fn storm_config(plan: &Managed, user: &StormConfig) -> StormConfig {
    let mut config = user.clone();
    let owned: [(&str, Value); 9] = [
        ("storm.zookeeper.servers", json!(plan.zookeeper.servers)),
        ("storm.zookeeper.port", json!(plan.zookeeper.port)),
        ("storm.zookeeper.root", json!(zookeeper_root(plan))),
        ("nimbus.seeds", json!(nimbus_seeds(plan))),
        ("nimbus.thrift.port", json!(NIMBUS_PORT)),
        ("storm.local.dir", json!(DATA_DIR)),
        (
            "supervisor.slots.ports",
            json!(slot_ports(plan.supervisors.slots_per_supervisor)),
        ),
        ("supervisor.thrift.port", json!(SUPERVISOR_THRIFT_PORT)),
        ("ui.port", json!(UI_PORT)),
    ];
    for (key, value) in owned {
        config.insert(key.to_string(), value);
    }
    let childopts = [
        ("nimbus.childopts", &plan.nimbus.pod),
        ("supervisor.childopts", &plan.supervisors.pod),
    ];
    for (key, pod) in childopts {
        if let Some(opts) = &pod.jvm_opts {
            config.insert(key.to_string(), json!(opts));
        }
    }
    if let Some(opts) = plan.ui.as_ref().and_then(|ui| ui.pod.jvm_opts.as_ref()) {
        config.insert("ui.childopts".to_string(), json!(opts));
    }
    config
}

/// Renders storm.yaml as YAML text.
pub fn render_storm_yaml(config: &StormConfig) -> String {
    serde_saphyr::to_string(config).expect("a map of JSON values serializes to YAML")
}

/// First 16 hex digits of the SHA-256 of `text`.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Hash of the cluster's storm.yaml, as stamped on every pod template that mounts it (the
/// cluster's own pods and its worker pools'), so that a change of storm.yaml rolls them all.
pub fn config_hash(cluster: &StormCluster, plan: &Managed) -> String {
    short_hash(&render_storm_yaml(&storm_config(
        plan,
        &cluster.spec.config,
    )))
}

/// Builds every child of a managed cluster.
pub fn build(cluster: &StormCluster, plan: &Managed) -> ClusterChildren {
    let storm_yaml = render_storm_yaml(&storm_config(plan, &cluster.spec.config));
    let config_hash = short_hash(&storm_yaml);
    let config_map = ConfigMap {
        metadata: labels::child_meta(
            cluster,
            names::config(&plan.name),
            labels::labels(&plan.name, &plan.name, Component::Config),
        ),
        data: Some(BTreeMap::from([("storm.yaml".to_string(), storm_yaml)])),
        ..ConfigMap::default()
    };
    let ctx = Ctx {
        cluster,
        plan,
        config_hash: &config_hash,
    };
    ClusterChildren {
        nimbus_headless: ctx.nimbus_headless(),
        nimbus_service: ctx.nimbus_service(),
        nimbus: ctx.nimbus(),
        nimbus_pdb: ctx.nimbus_pdb(),
        supervisors: ctx.supervisors(),
        ui: plan
            .ui
            .as_ref()
            .map(|_| (ctx.ui_deployment(), ctx.ui_service())),
        config_map,
        config_hash,
    }
}

struct Ctx<'a> {
    cluster: &'a StormCluster,
    plan: &'a Managed,
    config_hash: &'a str,
}

impl Ctx<'_> {
    fn meta(&self, name: String, component: Component) -> ObjectMeta {
        labels::child_meta(
            self.cluster,
            name,
            labels::labels(&self.plan.name, &self.plan.name, component),
        )
    }

    fn selector(&self, component: Component) -> BTreeMap<String, String> {
        labels::selector_labels(&self.plan.name, component)
    }

    fn nimbus_headless(&self) -> Service {
        Service {
            metadata: self.meta(names::nimbus_headless(&self.plan.name), Component::Nimbus),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                // Seeds must resolve before Nimbus is ready: the leader election needs them.
                publish_not_ready_addresses: Some(true),
                selector: Some(self.selector(Component::Nimbus)),
                ports: Some(vec![tcp_port("thrift", NIMBUS_PORT)]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn nimbus_service(&self) -> Service {
        Service {
            metadata: self.meta(names::nimbus(&self.plan.name), Component::Nimbus),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(self.selector(Component::Nimbus)),
                ports: Some(vec![tcp_port("thrift", NIMBUS_PORT)]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn nimbus(&self) -> StatefulSet {
        let plan = self.plan;
        let hostname = format!(
            "storm.local.hostname=$(POD_NAME).{}.{}.svc",
            names::nimbus_headless(&plan.name),
            plan.namespace
        );
        let container = Container {
            args: Some(vec!["storm".into(), "nimbus".into(), "-c".into(), hostname]),
            ports: Some(vec![container_port("thrift", NIMBUS_PORT)]),
            startup_probe: Some(tcp_probe(NIMBUS_PORT, 10, 30)),
            readiness_probe: Some(tcp_probe(NIMBUS_PORT, 10, 3)),
            liveness_probe: Some(tcp_probe(NIMBUS_PORT, 20, 6)),
            volume_mounts: Some(vec![
                mount("config", CONF_DIR, true),
                mount("data", DATA_DIR, false),
                mount("logs", LOG_DIR, false),
            ]),
            ..self.container("nimbus", &plan.nimbus.pod)
        };
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".into()),
                labels: Some(self.selector(Component::Nimbus)),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: plan.nimbus.persistence.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        plan.nimbus.persistence.size.clone(),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        };
        let anti_affinity = Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![
                    self.spread_term(Component::Nimbus),
                ]),
                ..PodAntiAffinity::default()
            }),
            ..Affinity::default()
        };
        let pod = self.pod_template(
            Component::Nimbus,
            &plan.nimbus.pod,
            container,
            anti_affinity,
            vec![config_volume(&plan.name), empty_dir("logs")],
            30,
        );
        StatefulSet {
            metadata: self.meta(names::nimbus(&plan.name), Component::Nimbus),
            spec: Some(StatefulSetSpec {
                replicas: Some(plan.nimbus.replicas),
                service_name: Some(names::nimbus_headless(&plan.name)),
                // All Nimbus pods start together (leader election sorts them out); rolling
                // updates still replace one pod at a time, waiting for each to be ready.
                pod_management_policy: Some("Parallel".into()),
                selector: labels::label_selector(&self.selector(Component::Nimbus)),
                template: pod,
                volume_claim_templates: Some(vec![claim]),
                ..StatefulSetSpec::default()
            }),
            ..StatefulSet::default()
        }
    }

    fn nimbus_pdb(&self) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: self.meta(names::nimbus(&self.plan.name), Component::Nimbus),
            spec: Some(PodDisruptionBudgetSpec {
                // maxUnavailable rather than minAvailable: a single Nimbus can still be drained.
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(labels::label_selector(&self.selector(Component::Nimbus))),
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        }
    }

    fn supervisors(&self) -> Deployment {
        let plan = self.plan;
        let selector = self.selector(Component::Supervisor);
        let container = supervisor_container(
            self.cluster,
            plan,
            &plan.supervisors.pod,
            plan.supervisors.slots_per_supervisor,
            Vec::new(),
        );
        // Workers get time to finish tuples and write their state before the pod goes.
        let pod = pod_template(
            self.cluster,
            &plan.supervisors.pod,
            PodParts {
                labels: labels::labels(&plan.name, &plan.name, Component::Supervisor),
                config_hash: self.config_hash,
                container,
                default_affinity: spread_across_nodes(&selector),
                volumes: supervisor_volumes(&plan.name),
                grace_seconds: 60,
            },
        );
        Deployment {
            metadata: self.meta(names::supervisors(&plan.name), Component::Supervisor),
            spec: Some(DeploymentSpec {
                replicas: Some(plan.supervisors.replicas),
                selector: labels::label_selector(&selector),
                template: pod,
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    }

    fn ui_deployment(&self) -> Deployment {
        let plan = self.plan;
        let pod_settings = plan
            .ui
            .as_ref()
            .map(|ui| ui.pod.clone())
            .unwrap_or_default();
        let http = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/".into()),
                port: IntOrString::String("http".into()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            failure_threshold: Some(3),
            ..Probe::default()
        };
        let container = Container {
            args: Some(vec!["storm".into(), "ui".into()]),
            ports: Some(vec![container_port("http", UI_PORT)]),
            startup_probe: Some(Probe {
                failure_threshold: Some(30),
                ..http.clone()
            }),
            readiness_probe: Some(http.clone()),
            liveness_probe: Some(Probe {
                period_seconds: Some(20),
                failure_threshold: Some(6),
                ..http
            }),
            volume_mounts: Some(vec![
                mount("config", CONF_DIR, true),
                mount("logs", LOG_DIR, false),
            ]),
            ..self.container("ui", &pod_settings)
        };
        let pod = self.pod_template(
            Component::Ui,
            &pod_settings,
            container,
            Affinity::default(),
            vec![config_volume(&plan.name), empty_dir("logs")],
            30,
        );
        Deployment {
            metadata: self.meta(names::ui(&plan.name), Component::Ui),
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                selector: labels::label_selector(&self.selector(Component::Ui)),
                template: pod,
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    }

    fn ui_service(&self) -> Service {
        let service_type = self
            .plan
            .ui
            .as_ref()
            .map(|ui| ui.service_type)
            .unwrap_or_default()
            .as_str();
        Service {
            metadata: self.meta(names::ui(&self.plan.name), Component::Ui),
            spec: Some(ServiceSpec {
                type_: Some(service_type.into()),
                selector: Some(self.selector(Component::Ui)),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: UI_PORT,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn container(&self, name: &str, pod: &PodSettings) -> Container {
        storm_container(self.cluster, self.plan, name, pod)
    }

    fn spread_term(&self, component: Component) -> PodAffinityTerm {
        spread_term(&self.selector(component))
    }

    fn pod_template(
        &self,
        component: Component,
        settings: &PodSettings,
        container: Container,
        default_affinity: Affinity,
        volumes: Vec<Volume>,
        grace_seconds: i64,
    ) -> PodTemplateSpec {
        pod_template(
            self.cluster,
            settings,
            PodParts {
                labels: labels::labels(&self.plan.name, &self.plan.name, component),
                config_hash: self.config_hash,
                container,
                default_affinity,
                volumes,
                grace_seconds,
            },
        )
    }
}

/// A container running a Storm daemon with the cluster's image: pull policy, the `POD_NAME` and
/// `POD_IP` variables, resources and the restricted security context.
fn storm_container(
    cluster: &StormCluster,
    plan: &Managed,
    name: &str,
    pod: &PodSettings,
) -> Container {
    Container {
        name: name.into(),
        image: Some(plan.image.clone()),
        image_pull_policy: Some(cluster.spec.image_pull_policy.as_str().into()),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_IP", "status.podIP"),
        ]),
        resources: pod.resources.clone(),
        security_context: Some(container_security_context()),
        ..Container::default()
    }
}

/// The `supervisor` container of a supervisor pod with `slots` worker ports: its host in Nimbus
/// is the pod IP, storm.yaml comes from the cluster's ConfigMap, and each of `extra_conf`
/// (`key=<JSON value>`) is passed as one more `-c` option, overriding storm.yaml.
pub(crate) fn supervisor_container(
    cluster: &StormCluster,
    plan: &Managed,
    pod: &PodSettings,
    slots: i32,
    extra_conf: Vec<String>,
) -> Container {
    let mut ports = vec![container_port("thrift", SUPERVISOR_THRIFT_PORT)];
    ports.extend(
        slot_ports(slots)
            .into_iter()
            .enumerate()
            .map(|(i, p)| container_port(&format!("slot-{i}"), p)),
    );
    // Supervisors have no stable DNS name; workers reach each other by pod IP.
    let mut args: Vec<String> = vec![
        "storm".into(),
        "supervisor".into(),
        "-c".into(),
        "storm.local.hostname=$(POD_IP)".into(),
    ];
    for option in extra_conf {
        args.push("-c".into());
        args.push(option);
    }
    Container {
        args: Some(args),
        ports: Some(ports),
        startup_probe: Some(tcp_probe(SUPERVISOR_THRIFT_PORT, 10, 30)),
        readiness_probe: Some(tcp_probe(SUPERVISOR_THRIFT_PORT, 10, 3)),
        liveness_probe: Some(tcp_probe(SUPERVISOR_THRIFT_PORT, 20, 6)),
        volume_mounts: Some(vec![
            mount("config", CONF_DIR, true),
            mount("data", DATA_DIR, false),
            mount("logs", LOG_DIR, false),
        ]),
        ..storm_container(cluster, plan, "supervisor", pod)
    }
}

/// The volumes of a supervisor pod: the cluster's storm.yaml and scratch space for its data and
/// logs.
pub(crate) fn supervisor_volumes(cluster: &str) -> Vec<Volume> {
    vec![config_volume(cluster), empty_dir("data"), empty_dir("logs")]
}

/// A preferred pod anti-affinity that spreads the pods matching `selector` across nodes.
pub(crate) fn spread_across_nodes(selector: &BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: spread_term(selector),
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

fn spread_term(selector: &BTreeMap<String, String>) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(labels::label_selector(selector)),
        topology_key: "kubernetes.io/hostname".into(),
        ..PodAffinityTerm::default()
    }
}

/// What a pod template is made of besides the user's [`PodSettings`].
pub(crate) struct PodParts<'a> {
    /// Pod labels; they win over `settings.pod_labels`.
    pub labels: BTreeMap<String, String>,
    /// Hash of the storm.yaml the pod mounts.
    pub config_hash: &'a str,
    /// The one container.
    pub container: Container,
    /// Affinity when the settings have none.
    pub default_affinity: Affinity,
    /// Volumes.
    pub volumes: Vec<Volume>,
    /// `terminationGracePeriodSeconds`.
    pub grace_seconds: i64,
}

/// A pod template of the cluster: the user's scheduling settings, labels and annotations, the
/// config-hash annotation, the cluster's pull secrets and the restricted security context.
pub(crate) fn pod_template(
    cluster: &StormCluster,
    settings: &PodSettings,
    parts: PodParts<'_>,
) -> PodTemplateSpec {
    let mut pod_labels = settings.pod_labels.clone();
    pod_labels.extend(parts.labels);
    let mut annotations = settings.pod_annotations.clone();
    annotations.insert(
        labels::CONFIG_HASH_ANNOTATION.into(),
        parts.config_hash.into(),
    );
    let pull_secrets = &cluster.spec.image_pull_secrets;
    let affinity = settings.affinity.clone().unwrap_or(parts.default_affinity);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![parts.container],
            volumes: Some(parts.volumes),
            affinity: (affinity != Affinity::default()).then_some(affinity),
            node_selector: non_empty_map(&settings.node_selector),
            tolerations: non_empty(&settings.tolerations),
            topology_spread_constraints: non_empty(&settings.topology_spread_constraints),
            priority_class_name: settings.priority_class_name.clone(),
            image_pull_secrets: non_empty::<LocalObjectReference>(pull_secrets),
            termination_grace_period_seconds: Some(parts.grace_seconds),
            security_context: Some(pod_security_context()),
            ..PodSpec::default()
        }),
    }
}

/// The pod security context of every pod the operator runs: the Storm image's non-root user,
/// the runtime's default seccomp profile.
pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(STORM_UID),
        run_as_group: Some(STORM_UID),
        fs_group: Some(STORM_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The container security context of every container the operator runs: no privilege
/// escalation, no capabilities.
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

fn non_empty<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    (!items.is_empty()).then(|| items.to_vec())
}

fn non_empty_map(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

fn tcp_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn tcp_probe(port: i32, period: i32, failures: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn config_volume(cluster: &str) -> Volume {
    Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: names::config(cluster),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}
