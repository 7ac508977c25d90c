//! `StormTopology`: a topology submitted from a jar and then run, suspended, rebalanced, updated
//! and killed declaratively.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{self, ClusterReference, StormConfig};
use super::worker_pool::WorkerPoolTemplate;

/// Desired state of a Storm topology.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "storm.apache.org",
    version = "v1alpha1",
    kind = "StormTopology",
    plural = "stormtopologies",
    singular = "stormtopology",
    shortname = "stormt",
    category = "storm",
    namespaced,
    status = "StormTopologyStatus",
    derive = "PartialEq",
    selectable = ".spec.clusterRef.name",
    doc = "A Storm topology: submitted from a jar to the StormCluster in spec.clusterRef, then \
           activated, deactivated, rebalanced, updated and killed to follow this spec.",
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63").message(
        "metadata.name must be a DNS label (lowercase letters, digits and '-', at most 63 characters); set spec.stormName for a Storm name that is not one"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Pending, Submitting, Running, Suspended, Rebalancing, Updating, Killing or Failed"),
    printcolumn(name = "Workers", type_ = "integer", json_path = ".status.workers", description = "Workers Storm runs for the topology"),
    printcolumn(name = "Pending", type_ = "number", json_path = ".status.metrics.pendingTuples", description = "Tuples in flight (acked/s x complete latency), over the last 10 minutes"),
    printcolumn(name = "Latency(ms)", type_ = "number", json_path = ".status.metrics.completeLatencyMs", description = "Complete latency in milliseconds, over the last 10 minutes"),
    printcolumn(name = "Capacity", type_ = "number", json_path = ".status.metrics.capacity", description = "Highest bolt capacity (1 = saturated)", priority = 1),
    printcolumn(name = "Acked/s", type_ = "number", json_path = ".status.metrics.ackedPerSecond", description = "Acked tuples per second", priority = 1),
    printcolumn(name = "Storm Status", type_ = "string", json_path = ".status.stormStatus", description = "ACTIVE, INACTIVE, REBALANCING or KILLED", priority = 1),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.runningVersion", description = "topology.version of the running topology", priority = 1),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef.name", description = "The StormCluster", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
)]
#[x_kube(validation = Rule::new("has(self.stormName) == has(oldSelf.stormName)").message(
    "spec.stormName is immutable: it cannot be added or removed after creation"
))]
#[serde(rename_all = "camelCase")]
pub struct StormTopologySpec {
    /// The StormCluster that runs the topology. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.clusterRef is immutable: delete and recreate the topology to move it"))]
    pub cluster_ref: ClusterReference,
    /// Name of the topology in Storm. Defaults to metadata.name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(validation = Rule::new(r"self.matches('^[^/.:\\\\]+$')").message(
        r"spec.stormName must not contain '/', '.', ':' or '\' (Storm rejects such topology names)"
    ))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.stormName is immutable"))]
    pub storm_name: Option<String>,
    /// Where the topology jar comes from: exactly one of `url` or `image`.
    pub jar: JarSource,
    /// The class whose `main` builds and submits the topology (`storm jar JAR MAINCLASS ARGS...`).
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z_$][A-Za-z0-9_$]*([.][A-Za-z_$][A-Za-z0-9_$]*)*$')").message(
        "spec.mainClass must be a fully qualified Java class name, for example org.apache.storm.starter.WordCountTopology"
    ))]
    pub main_class: String,
    /// Arguments passed to the main class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 4096)))]
    pub args: Vec<String>,
    /// Topology configuration passed to `storm jar` as `-c key=value` (for example
    /// `topology.max.spout.pending: 1000`, or keys the topology reads itself). Changing it updates
    /// the topology by spec.updateStrategy.
    #[schemars(schema_with = "common::topology_config_schema")]
    #[serde(default, skip_serializing_if = "StormConfig::is_empty")]
    pub config: StormConfig,
    /// Number of worker JVMs (`topology.workers`). A change rebalances the running topology in place.
    /// With a worker pool this is the most the pool's autoscaling rebalances to.
    #[serde(default = "default_workers")]
    #[schemars(range(min = 1, max = 10000))]
    pub workers: i32,
    /// Executors per component (spout or bolt id). A change rebalances in place. Storm cannot run
    /// more executors than the component has tasks; such a change is reported in a condition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    #[x_kube(validation = Rule::new("self.all(c, self[c] >= 1)").message("spec.parallelism: every component needs at least 1 executor"))]
    pub parallelism: BTreeMap<String, i32>,
    /// Deactivate the topology (spouts stop emitting; workers keep running). Setting it back to
    /// false activates it.
    #[serde(default)]
    pub suspend: bool,
    /// Version label of the topology, set as `topology.version` on submission and read back from
    /// Nimbus to tell which version runs. A change updates the topology by spec.updateStrategy.
    /// When unset, a hash of the submitted spec is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub version: Option<String>,
    /// How a change of jar, main class, args, config or version reaches Storm.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,
    /// Seconds Storm waits between deactivating the spouts and killing the workers, when the
    /// topology is killed (on deletion or a Recreate update), so that tuples in flight can finish.
    #[serde(default = "default_kill_wait")]
    #[schemars(range(min = 0, max = 3600))]
    pub kill_wait_seconds: i32,
    /// A pool of supervisor pods dedicated to this topology, created and owned by this topology
    /// as a StormWorkerPool named after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_pool: Option<WorkerPoolTemplate>,
}

fn default_workers() -> i32 {
    1
}

fn default_kill_wait() -> i32 {
    30
}

/// Where the topology jar comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.url) != has(self.image)").message(
    "spec.jar needs exactly one source: url, or image with path"
))]
#[x_kube(validation = Rule::new("has(self.image) == has(self.path)").message(
    "spec.jar.path is required with spec.jar.image, and only with it"
))]
#[x_kube(validation = Rule::new("!has(self.sha256) || has(self.url)").message(
    "spec.jar.sha256 verifies a downloaded jar: it needs spec.jar.url"
))]
#[serde(rename_all = "camelCase")]
pub struct JarSource {
    /// HTTP(S) URL the submit Job downloads the jar from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message(
        "spec.jar.url must be an http:// or https:// URL"
    ))]
    pub url: Option<String>,
    /// Expected SHA-256 of the jar at `url`, as 64 hexadecimal characters. The submit Job fails
    /// when the download does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-fA-F]{64}$')").message(
        "spec.jar.sha256 must be exactly 64 hexadecimal characters (the SHA-256 of the jar)"
    ))]
    pub sha256: Option<String>,
    /// Container image that holds the jar; the submit Job copies it out of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Absolute path of the jar inside `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1024))]
    #[x_kube(validation = Rule::new("self.startsWith('/') && self.endsWith('.jar')").message(
        "spec.jar.path must be an absolute path to a .jar file inside spec.jar.image"
    ))]
    pub path: Option<String>,
}

/// How the operator replaces a running topology with a new version.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// `Recreate` kills the running topology (waiting killWaitSeconds), waits until Storm no
    /// longer lists it, then submits the new version: no overlap, but a processing gap.
    /// `BlueGreen` submits the new version under a second Storm name, waits until it is active,
    /// then kills the old one: no gap, but both versions run (and may both consume) for a while and
    /// need slots for both.
    #[serde(default, rename = "type")]
    pub type_: UpdateStrategyType,
    /// Seconds a BlueGreen update waits for the new version to become active before it gives
    /// up, kills the new version and keeps the old one.
    #[serde(default = "default_activation_timeout")]
    #[schemars(range(min = 10, max = 3600))]
    pub activation_timeout_seconds: i32,
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        Self {
            type_: UpdateStrategyType::default(),
            activation_timeout_seconds: default_activation_timeout(),
        }
    }
}

fn default_activation_timeout() -> i32 {
    300
}

/// Update strategies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpdateStrategyType {
    /// Kill, wait until gone, resubmit.
    #[default]
    Recreate,
    /// Submit the new version beside the old one, then kill the old one.
    BlueGreen,
}

/// Observed state of a Storm topology.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StormTopologyStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TopologyPhase>,
    /// Name of the topology in Storm that this object currently runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_name: Option<String>,
    /// Storm's topology id (`name-N-timestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_id: Option<String>,
    /// Status Nimbus reports: ACTIVE, INACTIVE, REBALANCING or KILLED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_status: Option<String>,
    /// `topology.version` of the running topology, read back from Nimbus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_version: Option<String>,
    /// The version the operator last submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_version: Option<String>,
    /// Name of the last submit Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_job: Option<String>,
    /// Workers Storm runs for the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<i32>,
    /// Executors Storm runs for the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executors: Option<i32>,
    /// Tasks of the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<i32>,
    /// When Storm launched the running topology (RFC 3339, from its id). A time rather than an
    /// uptime, so that the status does not change on every poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_time: Option<String>,
    /// Workers the operator last asked Storm for (at submission or by a rebalance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_workers: Option<i32>,
    /// Executors per component the operator last asked Storm for by a rebalance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requested_parallelism: BTreeMap<String, i32>,
    /// When the topology was last rebalanced by the operator (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rebalance_time: Option<String>,
    /// Storm statistics over the last 10 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSummary>,
    /// Name of the StormWorkerPool created from spec.workerPool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_pool: Option<String>,
    /// Conditions `Submitted`, `Ready` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "common::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a topology.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TopologyPhase {
    /// Waiting for the cluster or for the first reconcile.
    Pending,
    /// The submit Job runs.
    Submitting,
    /// Active in Storm.
    Running,
    /// Deactivated by spec.suspend.
    Suspended,
    /// Storm redistributes workers and executors.
    Rebalancing,
    /// A new version replaces the running one.
    Updating,
    /// Being killed (deletion or Recreate update).
    Killing,
    /// Submission failed or Storm lost the topology; see the conditions.
    Failed,
}

/// Storm statistics of a topology, as the metrics API serves them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSummary {
    /// Tuples in flight, by Little's law.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_tuples: Option<f64>,
    /// Average complete latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_latency_ms: Option<f64>,
    /// Highest bolt capacity (fraction of time busy; 1 means saturated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
    /// Acked tuples per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_per_second: Option<f64>,
    /// Failed tuples per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_per_second: Option<f64>,
    /// When Nimbus sampled these numbers (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_time: Option<String>,
}

/// Condition types of a StormTopology.
pub mod condition {
    /// Storm accepted the topology (it is listed by Nimbus).
    pub const SUBMITTED: &str = "Submitted";
    /// The topology runs as the spec says (active or suspended as asked, version and workers).
    pub const READY: &str = "Ready";
    /// The topology runs, but not as well as asked (failed tuples, missing workers, a rebalance
    /// that Storm refused).
    pub const DEGRADED: &str = "Degraded";
}
