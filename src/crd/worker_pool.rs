//! `StormWorkerPool`: supervisor pods dedicated to one topology, scaled through `/scale` (by an HPA
//! on Storm metrics or `kubectl scale`), with the topology rebalanced onto them after each scale.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{self, PodSettings, TopologyReference};

/// Desired state of a worker pool.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "storm.apache.org",
    version = "v1alpha1",
    kind = "StormWorkerPool",
    plural = "stormworkerpools",
    singular = "stormworkerpool",
    shortname = "stormwp",
    category = "storm",
    namespaced,
    status = "StormWorkerPoolStatus",
    derive = "PartialEq",
    selectable = ".spec.topologyRef.name",
    doc = "A pool of Storm supervisor pods dedicated to one StormTopology. Its /scale subresource is \
           the pool size: an HPA on Storm metrics or `kubectl scale` resizes it, and the operator \
           rebalances the topology onto the new supervisors.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Topology",
        type_ = "string",
        json_path = ".spec.topologyRef.name",
        description = "The StormTopology this pool runs"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Supervisor pods wanted"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Supervisor pods ready"
    ),
    printcolumn(
        name = "Workers",
        type_ = "integer",
        json_path = ".status.workersAssigned",
        description = "Workers Nimbus placed on this pool"
    ),
    printcolumn(
        name = "Slots",
        type_ = "integer",
        json_path = ".status.slots",
        description = "Worker slots of the ready supervisors",
        priority = 1
    ),
    printcolumn(
        name = "Last Rebalance",
        type_ = "date",
        json_path = ".status.lastRebalanceTime",
        description = "When the operator last rebalanced the topology onto this pool",
        priority = 1
    ),
    printcolumn(
        name = "HPA",
        type_ = "string",
        json_path = ".status.hpaName",
        description = "The generated HorizontalPodAutoscaler",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct StormWorkerPoolSpec {
    /// The StormTopology whose workers run on this pool. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.topologyRef is immutable: create another pool for another topology"))]
    pub topology_ref: TopologyReference,
    /// The pool's supervisors, scaling and rebalancing.
    #[serde(flatten)]
    pub template: WorkerPoolTemplate,
}

/// A worker pool as written inline in a StormTopology (everything but the topology reference).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPoolTemplate {
    /// Number of supervisor pods. The HPA (spec.autoscaling) and `kubectl scale` change it
    /// through the /scale subresource.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// Worker slots (worker JVMs) per supervisor pod. With 1, each pod added by the HPA is one
    /// more worker.
    #[serde(default = "default_slots")]
    #[schemars(range(min = 1, max = 64))]
    pub slots_per_supervisor: i32,
    /// Resources, JVM options and scheduling of the supervisor pods. Size memory for the supervisor
    /// plus its worker JVMs.
    #[serde(default, flatten)]
    pub pod: PodSettings,
    /// Seconds a supervisor pod gets to stop its workers when it is removed.
    #[serde(default = "default_grace")]
    #[schemars(range(min = 10, max = 3600))]
    pub termination_grace_period_seconds: i64,
    /// A HorizontalPodAutoscaler on Storm metrics that sizes the pool. Without it no HPA exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// How the operator rebalances the topology after the pool changes size.
    #[serde(default)]
    pub rebalance: RebalanceSpec,
}

fn default_replicas() -> i32 {
    1
}

fn default_slots() -> i32 {
    1
}

fn default_grace() -> i64 {
    60
}

/// The HPA generated for the pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message(
    "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas"
))]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Fewest supervisor pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most supervisor pods.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// What the HPA scales on. The HPA takes the largest replica count any metric asks for.
    #[schemars(length(min = 1, max = 8))]
    pub metrics: Vec<MetricTarget>,
    /// Scale-up and scale-down behavior of the HPA (stabilization windows, rate policies). A
    /// scale-down stabilization of a few minutes suits Storm, whose statistics reset on rebalance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// One metric the HPA scales on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.type == 'Storm' ? has(self.storm) && !has(self.resource) : has(self.resource) && !has(self.storm)").message(
    "a metric of type Storm needs the storm field only; a metric of type Resource needs the resource field only"
))]
#[serde(rename_all = "camelCase")]
pub struct MetricTarget {
    /// `Storm` for a Storm statistic served by this operator's metrics API; `Resource` for CPU
    /// or memory of the supervisor pods.
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    /// A Storm metric of the topology, served by the operator's custom metrics API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm: Option<StormMetricTarget>,
    /// CPU or memory utilization of the supervisor pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricTarget>,
}

/// Kinds of metric targets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MetricSourceType {
    /// A Storm metric.
    Storm,
    /// Pod CPU or memory.
    Resource,
}

/// A Storm metric target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.metric.startsWith('storm_component_') == has(self.component)").message(
    "storm.component is required for storm_component_* metrics and not allowed for storm_topology_* metrics"
))]
#[x_kube(validation = Rule::new("has(self.value) != has(self.averageValue)").message(
    "a Storm metric target needs exactly one of value or averageValue"
))]
#[serde(rename_all = "camelCase")]
pub struct StormMetricTarget {
    /// The metric.
    pub metric: StormMetricName,
    /// Spout or bolt id, for the per-component metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub component: Option<String>,
    /// Target for the topology's value: the HPA sizes the pool so that the metric stays near it
    /// (replicas x current / target). Suits ratios and latencies, e.g. capacity `800m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    /// Target per supervisor pod: the HPA sizes the pool to metric / averageValue. Suits totals,
    /// e.g. pending tuples `1000` per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
}

/// The Storm metrics the operator serves.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum StormMetricName {
    /// Tuples in flight (acked/s x complete latency + failed/s x message timeout).
    #[serde(rename = "storm_topology_pending_tuples")]
    PendingTuples,
    /// Tuples in flight / (topology.max.spout.pending x spout tasks).
    #[serde(rename = "storm_topology_spout_pending_ratio")]
    SpoutPendingRatio,
    /// Average complete latency, milliseconds.
    #[serde(rename = "storm_topology_complete_latency_ms")]
    CompleteLatencyMs,
    /// Highest bolt capacity.
    #[serde(rename = "storm_topology_capacity")]
    Capacity,
    /// Acked tuples per second.
    #[serde(rename = "storm_topology_acked_per_second")]
    AckedPerSecond,
    /// Failed tuples per second.
    #[serde(rename = "storm_topology_failed_per_second")]
    FailedPerSecond,
    /// Emitted tuples per second.
    #[serde(rename = "storm_topology_emitted_per_second")]
    EmittedPerSecond,
    /// Capacity of one component.
    #[serde(rename = "storm_component_capacity")]
    ComponentCapacity,
    /// Execute latency of one component, milliseconds.
    #[serde(rename = "storm_component_execute_latency_ms")]
    ComponentExecuteLatencyMs,
}

impl StormMetricName {
    /// Every metric, in a stable order.
    pub const ALL: [StormMetricName; 9] = [
        StormMetricName::PendingTuples,
        StormMetricName::SpoutPendingRatio,
        StormMetricName::CompleteLatencyMs,
        StormMetricName::Capacity,
        StormMetricName::AckedPerSecond,
        StormMetricName::FailedPerSecond,
        StormMetricName::EmittedPerSecond,
        StormMetricName::ComponentCapacity,
        StormMetricName::ComponentExecuteLatencyMs,
    ];

    /// The metric's name in the custom metrics API.
    pub fn as_str(self) -> &'static str {
        match self {
            StormMetricName::PendingTuples => "storm_topology_pending_tuples",
            StormMetricName::SpoutPendingRatio => "storm_topology_spout_pending_ratio",
            StormMetricName::CompleteLatencyMs => "storm_topology_complete_latency_ms",
            StormMetricName::Capacity => "storm_topology_capacity",
            StormMetricName::AckedPerSecond => "storm_topology_acked_per_second",
            StormMetricName::FailedPerSecond => "storm_topology_failed_per_second",
            StormMetricName::EmittedPerSecond => "storm_topology_emitted_per_second",
            StormMetricName::ComponentCapacity => "storm_component_capacity",
            StormMetricName::ComponentExecuteLatencyMs => "storm_component_execute_latency_ms",
        }
    }

    /// Whether the metric has one series per component (selected with `component=ID`).
    pub fn per_component(self) -> bool {
        self.as_str().starts_with("storm_component_")
    }
}

/// A CPU or memory target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricTarget {
    /// `cpu` or `memory`.
    pub name: ResourceName,
    /// Target average utilization, percent of the pods' requests.
    #[schemars(range(min = 1, max = 1000))]
    pub average_utilization: i32,
}

/// Pod resources an HPA can target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceName {
    /// CPU.
    Cpu,
    /// Memory.
    Memory,
}

/// Rebalance settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Seconds after a rebalance during which no other rebalance starts. Storm resets its
    /// statistics on rebalance, so the HPA needs time to see new numbers.
    #[serde(default = "default_cooldown")]
    #[schemars(range(min = 0, max = 3600))]
    pub cooldown_seconds: i32,
    /// Seconds Storm waits before it redistributes the workers (the rebalance `wait_secs`).
    #[serde(default = "default_rebalance_wait")]
    #[schemars(range(min = 0, max = 600))]
    pub wait_seconds: i32,
    /// Seconds to wait for new supervisors to register in Nimbus before rebalancing onto the
    /// ones that did.
    #[serde(default = "default_registration_timeout")]
    #[schemars(range(min = 10, max = 3600))]
    pub registration_timeout_seconds: i32,
}

impl Default for RebalanceSpec {
    fn default() -> Self {
        Self {
            cooldown_seconds: default_cooldown(),
            wait_seconds: default_rebalance_wait(),
            registration_timeout_seconds: default_registration_timeout(),
        }
    }
}

fn default_cooldown() -> i32 {
    120
}

fn default_rebalance_wait() -> i32 {
    10
}

fn default_registration_timeout() -> i32 {
    300
}

/// Observed state of a worker pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StormWorkerPoolStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Supervisor pods that exist (the /scale status).
    #[serde(default)]
    pub replicas: i32,
    /// Supervisor pods ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the supervisor pods, in string form (the /scale selector the HPA uses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Supervisors of this pool registered in Nimbus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisors_registered: Option<i32>,
    /// Worker slots of the registered supervisors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<i32>,
    /// Workers of the topology that Nimbus placed on this pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers_assigned: Option<i32>,
    /// When the operator last rebalanced the topology for this pool (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rebalance_time: Option<String>,
    /// Why: for example `ScaleUp 2->4` (workers before and after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rebalance_reason: Option<String>,
    /// Workers the last rebalance asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rebalance_workers: Option<i32>,
    /// Storm topology id the last rebalance went to (a resubmitted topology gets a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rebalance_topology_id: Option<String>,
    /// Hosts of the pool's supervisors that the last rebalance favored
    /// (`topology.scheduler.favored.nodes`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub placement_hosts: Vec<String>,
    /// Name of the generated HorizontalPodAutoscaler, when spec.autoscaling is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_name: Option<String>,
    /// Conditions `Ready`, `Scaling` and `RebalanceFailed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "common::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Condition types of a StormWorkerPool.
pub mod condition {
    /// The supervisors are ready and registered, and the topology's workers run on them.
    pub const READY: &str = "Ready";
    /// A scale is in progress (pods starting, waiting for registration, rebalancing).
    pub const SCALING: &str = "Scaling";
    /// The last rebalance failed; it is retried.
    pub const REBALANCE_FAILED: &str = "RebalanceFailed";
}
