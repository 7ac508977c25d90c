//! `StormCluster`: a Storm cluster the operator runs (Nimbus, supervisors, UI, storm.yaml) or one
//! that already runs elsewhere and is only reached through its Nimbus seeds.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::common::{self, PodSettings, PullPolicy, StormConfig};

/// Desired state of a Storm cluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "storm.apache.org",
    version = "v1alpha1",
    kind = "StormCluster",
    plural = "stormclusters",
    singular = "stormcluster",
    shortname = "stormc",
    category = "storm",
    namespaced,
    status = "StormClusterStatus",
    derive = "PartialEq",
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40").message(
        "metadata.name must be a DNS label of at most 40 characters (it prefixes the names of the Nimbus StatefulSet, its pods and Services)"
    ),
    doc = "A Storm cluster: Nimbus, supervisors, UI and storm.yaml run by the operator, or an \
           existing cluster reached through its Nimbus seeds (spec.external).",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Running, Progressing, Degraded or Unreachable"
    ),
    printcolumn(
        name = "Leader",
        type_ = "string",
        json_path = ".status.leader",
        description = "The leader Nimbus (host:port)"
    ),
    printcolumn(
        name = "Supervisors",
        type_ = "string",
        json_path = ".status.supervisorsSummary",
        description = "Supervisors registered in Nimbus / desired"
    ),
    printcolumn(
        name = "Free Slots",
        type_ = "integer",
        json_path = ".status.slots.free",
        description = "Worker slots not used by any topology"
    ),
    printcolumn(
        name = "Topologies",
        type_ = "integer",
        json_path = ".status.topologies",
        description = "Topologies running in Storm"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.stormVersion",
        description = "Storm version Nimbus reports",
        priority = 1
    ),
    printcolumn(
        name = "Used Slots",
        type_ = "integer",
        json_path = ".status.slots.used",
        description = "Worker slots in use",
        priority = 1
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.image",
        description = "Storm image",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "has(self.external) ? !has(self.zookeeper) && !has(self.nimbus) && !has(self.supervisors) && !has(self.ui) : true"
).message("spec.external excludes the managed parts: remove spec.zookeeper, spec.nimbus, spec.supervisors and spec.ui, or remove spec.external").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("has(self.external) || has(self.zookeeper)").message(
    "spec.zookeeper.servers is required for a cluster the operator runs (or set spec.external.nimbusSeeds to use an existing Storm cluster)"
).reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("has(self.external) || has(self.image)").message(
    "spec.image is required for a cluster the operator runs (for example apache/storm:2.8.1)"
).reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct StormClusterSpec {
    /// Storm container image of Nimbus, supervisors, UI and submit Jobs, for example
    /// `apache/storm:2.8.1`. Required unless spec.external is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// When to pull the image.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Secrets for pulling the image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// The ZooKeeper ensemble Storm coordinates through. The operator does not run ZooKeeper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper: Option<ZooKeeperSpec>,
    /// The Nimbus daemons (a StatefulSet; more than one replica gives a standby leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nimbus: Option<NimbusSpec>,
    /// The shared supervisor pool (a Deployment) that runs workers of topologies without a
    /// dedicated worker pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisors: Option<SupervisorsSpec>,
    /// The Storm UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<UiSpec>,
    /// How the operator and Storm clients reach Nimbus over Thrift.
    #[serde(default)]
    pub thrift: ThriftSpec,
    /// Entries of storm.yaml, merged over the operator's defaults (for example
    /// `topology.message.timeout.secs: 60`). Keys the operator owns are rejected with the field to
    /// use instead.
    #[schemars(schema_with = "common::cluster_config_schema")]
    #[serde(default, skip_serializing_if = "StormConfig::is_empty")]
    pub config: StormConfig,
    /// An existing Storm cluster that the operator does not run: it only connects to these Nimbus
    /// seeds. Excludes zookeeper, nimbus, supervisors and ui.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSpec>,
}

/// The ZooKeeper ensemble of the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZooKeeperSpec {
    /// ZooKeeper hosts, without ports (for example `zk-0.zk-headless.zookeeper.svc`).
    #[schemars(schema_with = "zookeeper_servers_schema")]
    pub servers: Vec<ZooKeeperHost>,
    /// ZooKeeper client port.
    #[serde(default = "default_zookeeper_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// ZooKeeper path under which this cluster keeps its state. Defaults to `/storm/<namespace>/<name>`
    /// so that several clusters can share one ensemble.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/') && !self.endsWith('/')").message(
        "spec.zookeeper.root must be an absolute ZooKeeper path without a trailing slash, for example /storm/prod"
    ))]
    #[schemars(length(min = 2, max = 256))]
    pub root: Option<String>,
}

/// A ZooKeeper host name or address.
pub type ZooKeeperHost = String;

fn zookeeper_servers_schema(_: &mut SchemaGenerator) -> Schema {
    common::host_list_schema(
        r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$",
        "spec.zookeeper.servers must be host names or IP addresses without ports; set the port in spec.zookeeper.port",
    )
}

fn default_zookeeper_port() -> i32 {
    2181
}

/// The Nimbus daemons.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NimbusSpec {
    /// Number of Nimbus pods: one leader, the others standby. Odd numbers are not required (leader
    /// election goes through ZooKeeper).
    #[serde(default = "default_nimbus_replicas")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: i32,
    /// The volume behind `storm.local.dir` (topology jars and the blob store).
    #[serde(default)]
    pub persistence: PersistenceSpec,
    /// Resources, JVM options and scheduling of the Nimbus pods.
    #[serde(default, flatten)]
    pub pod: PodSettings,
}

fn default_nimbus_replicas() -> i32 {
    1
}

/// A persistent volume claim template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    /// Size of each Nimbus pod's volume.
    #[serde(default = "default_persistence_size")]
    pub size: Quantity,
    /// StorageClass of the volumes; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for PersistenceSpec {
    fn default() -> Self {
        Self {
            size: default_persistence_size(),
            storage_class_name: None,
        }
    }
}

fn default_persistence_size() -> Quantity {
    Quantity("10Gi".into())
}

/// The shared supervisor pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorsSpec {
    /// Number of supervisor pods.
    #[serde(default = "default_supervisor_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Worker slots (worker JVMs, ports 6700 and up) per supervisor.
    #[serde(default = "default_slots")]
    #[schemars(range(min = 1, max = 64))]
    pub slots_per_supervisor: i32,
    /// Resources, JVM options and scheduling of the supervisor pods. Size memory for the supervisor
    /// plus all its worker JVMs.
    #[serde(default, flatten)]
    pub pod: PodSettings,
}

fn default_supervisor_replicas() -> i32 {
    1
}

fn default_slots() -> i32 {
    4
}

/// The Storm UI.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UiSpec {
    /// Whether the UI runs.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Type of the UI Service.
    #[serde(default)]
    pub service_type: UiServiceType,
    /// Resources, JVM options and scheduling of the UI pod.
    #[serde(default, flatten)]
    pub pod: PodSettings,
}

fn default_true() -> bool {
    true
}

/// Type of the UI Service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UiServiceType {
    /// Reachable inside the cluster only (use `kubectl port-forward`).
    #[default]
    ClusterIP,
    /// Reachable on a port of every node.
    NodePort,
    /// Reachable through a cloud load balancer.
    LoadBalancer,
}

impl UiServiceType {
    /// The Service `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            UiServiceType::ClusterIP => "ClusterIP",
            UiServiceType::NodePort => "NodePort",
            UiServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Nimbus Thrift settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThriftSpec {
    /// Nimbus Thrift port (`nimbus.thrift.port`).
    #[serde(default = "default_thrift_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Largest Thrift response the operator accepts from Nimbus, in bytes. Large clusters with
    /// many executors need more.
    #[serde(default = "default_max_response_bytes")]
    #[schemars(range(min = 1048576, max = 1073741824))]
    pub max_response_bytes: i64,
    /// Per-call deadline of the operator's Nimbus calls, in seconds.
    #[serde(default = "default_call_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub call_timeout_seconds: i32,
}

impl Default for ThriftSpec {
    fn default() -> Self {
        Self {
            port: default_thrift_port(),
            max_response_bytes: default_max_response_bytes(),
            call_timeout_seconds: default_call_timeout(),
        }
    }
}

fn default_thrift_port() -> i32 {
    6627
}

fn default_max_response_bytes() -> i64 {
    64 * 1024 * 1024
}

fn default_call_timeout() -> i32 {
    10
}

/// A Storm cluster outside the operator's control.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSpec {
    /// Nimbus addresses as `host:port` (port defaults to spec.thrift.port when omitted). The
    /// operator finds the leader among them.
    #[schemars(schema_with = "nimbus_seeds_schema")]
    pub nimbus_seeds: Vec<NimbusSeed>,
}

/// A Nimbus address, `host` or `host:port`.
pub type NimbusSeed = String;

fn nimbus_seeds_schema(_: &mut SchemaGenerator) -> Schema {
    common::host_list_schema(
        r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?$",
        "spec.external.nimbusSeeds must be host or host:port entries, for example nimbus-0.storm.svc:6627",
    )
}

/// Observed state of a Storm cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StormClusterStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One-word summary: Running, Progressing, Degraded or Unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    /// The leader Nimbus as `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The Nimbus daemons Storm knows of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nimbuses: Vec<NimbusStatus>,
    /// Supervisors registered in Nimbus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisors_registered: Option<i32>,
    /// Supervisor pods ready in the shared pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisors_ready: Option<i32>,
    /// Supervisor pods desired in the shared pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisors_desired: Option<i32>,
    /// `registered/desired`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisors_summary: Option<String>,
    /// Worker slots over all supervisors, including dedicated worker pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<SlotsStatus>,
    /// Topologies Storm runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topologies: Option<i32>,
    /// Storm version the leader Nimbus reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_version: Option<String>,
    /// Hash of the rendered storm.yaml the pods run with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Conditions `Available`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "common::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// One-word summary of a cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    /// Nimbus has a leader and the supervisors are registered.
    Running,
    /// Workloads are being created or rolled.
    Progressing,
    /// Running with less than desired (no standby Nimbus, missing supervisors).
    Degraded,
    /// Nimbus cannot be reached.
    Unreachable,
}

/// A Nimbus daemon as Storm reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NimbusStatus {
    /// `host:port`.
    pub address: String,
    /// Whether it is the leader.
    pub leader: bool,
    /// Storm version it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Worker slots.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotsStatus {
    /// All slots.
    pub total: i32,
    /// Slots running a worker.
    pub used: i32,
    /// Slots free.
    pub free: i32,
}

/// Condition types of a StormCluster.
pub mod condition {
    /// Nimbus has a leader and accepts Thrift calls.
    pub const AVAILABLE: &str = "Available";
    /// The workloads are being created or rolled to a new spec.
    pub const PROGRESSING: &str = "Progressing";
    /// The cluster runs below its desired state.
    pub const DEGRADED: &str = "Degraded";
}
