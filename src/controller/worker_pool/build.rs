//! Pure builders of a StormWorkerPool's children: the supervisor Deployment and the HPA, plus the
//! topology configuration a rebalance sends to place the workers on the pool (`docs/placement.md`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
    MetricIdentifier, MetricSpec, MetricTarget as HpaMetricTarget, ObjectMetricSource,
    ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use serde_json::{Map, Value, json};

use crate::controller::cluster::build::{
    PodParts, config_hash, pod_template, slot_ports, spread_across_nodes, supervisor_container,
    supervisor_volumes,
};
use crate::controller::cluster::validate::Managed;
use crate::controller::labels::{self, Component};
use crate::crd::worker_pool::{MetricTarget, ResourceName, StormMetricTarget};
use crate::crd::{StormCluster, StormWorkerPool};
use crate::metrics_api::quantity::parse_quantity;

/// API version of the Storm kinds, as references to them spell it.
pub const STORM_API_VERSION: &str = "storm.apache.org/v1alpha1";
/// Topology configuration key: hosts the resource-aware scheduler tries first.
pub const FAVORED_NODES: &str = "topology.scheduler.favored.nodes";
/// Topology configuration key: hosts the resource-aware scheduler tries last.
pub const UNFAVORED_NODES: &str = "topology.scheduler.unfavored.nodes";
/// Label of a per-component Storm metric series (the HPA's `metric.selector`).
pub const COMPONENT_LABEL: &str = "component";
/// Longest pool name: it is a label value on the pods.
pub const MAX_NAME_LEN: usize = 63;

/// Why a pool cannot be acted on. Each variant's name is its Event and condition reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum InvalidPool {
    /// The name does not fit in a label value.
    #[error(
        "metadata.name is {0} characters; a StormWorkerPool name is a label value of at most 63"
    )]
    NameTooLong(usize),
    /// `autoscaling.minReplicas` above `autoscaling.maxReplicas`.
    #[error(
        "spec.autoscaling.minReplicas ({min}) is greater than spec.autoscaling.maxReplicas ({max})"
    )]
    MinAboveMax {
        /// minReplicas.
        min: i32,
        /// maxReplicas.
        max: i32,
    },
    /// A Storm metric target that names the wrong combination of fields.
    #[error("spec.autoscaling.metrics[{0}]: {1}")]
    BadMetric(usize, &'static str),
}

impl InvalidPool {
    /// The Event and condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            InvalidPool::NameTooLong(_) => "NameTooLong",
            InvalidPool::MinAboveMax { .. } => "MinAboveMax",
            InvalidPool::BadMetric(..) => "BadMetric",
        }
    }
}

/// Checks again what the CEL rules check (objects stored before a CRD upgrade, or written with
/// validation bypassed), so the builders can trust the spec.
pub fn validate(pool: &StormWorkerPool) -> Result<(), InvalidPool> {
    let name = pool.name_any();
    if name.len() > MAX_NAME_LEN {
        return Err(InvalidPool::NameTooLong(name.len()));
    }
    let Some(autoscaling) = &pool.spec.template.autoscaling else {
        return Ok(());
    };
    if autoscaling.min_replicas > autoscaling.max_replicas {
        return Err(InvalidPool::MinAboveMax {
            min: autoscaling.min_replicas,
            max: autoscaling.max_replicas,
        });
    }
    for (i, target) in autoscaling.metrics.iter().enumerate() {
        match (&target.storm, &target.resource) {
            (Some(storm), None) => {
                if storm.metric.per_component() != storm.component.is_some() {
                    return Err(InvalidPool::BadMetric(
                        i,
                        "storm.component is required for storm_component_* metrics and only for them",
                    ));
                }
                if storm.value.is_some() == storm.average_value.is_some() {
                    return Err(InvalidPool::BadMetric(
                        i,
                        "a Storm metric target needs exactly one of value or averageValue",
                    ));
                }
            }
            (None, Some(_)) => {}
            _ => {
                return Err(InvalidPool::BadMetric(
                    i,
                    "a metric needs exactly one of storm or resource",
                ));
            }
        }
    }
    Ok(())
}

/// Name of the pool's supervisor Deployment: `<pool>-pool`.
pub fn deployment_name(pool: &StormWorkerPool) -> String {
    format!("{}-pool", pool.name_any())
}

/// Name of the pool's HorizontalPodAutoscaler: the pool's name.
pub fn hpa_name(pool: &StormWorkerPool) -> String {
    pool.name_any()
}

/// Labels that select the pool's supervisor pods: the standard selector labels (component
/// `worker-pool`, instance = the pool) plus the pool, its topology and the topology's cluster,
/// so each can be found with a label query. They never change (the references are immutable).
pub fn pod_selector(pool: &StormWorkerPool, cluster: &str) -> BTreeMap<String, String> {
    let mut selector = labels::selector_labels(&pool.name_any(), Component::WorkerPool);
    selector.insert(labels::CLUSTER_LABEL.into(), cluster.into());
    selector.insert(labels::POOL_LABEL.into(), pool.name_any());
    selector.insert(
        labels::TOPOLOGY_LABEL.into(),
        pool.spec.topology_ref.name.clone(),
    );
    selector
}

/// All labels of the pool's children: the pod selector plus `managed-by` and `part-of`.
fn child_labels(pool: &StormWorkerPool, cluster: &str) -> BTreeMap<String, String> {
    let mut all = labels::labels(&pool.name_any(), cluster, Component::WorkerPool);
    all.extend(pod_selector(pool, cluster));
    all
}

/// The `-c key=<JSON>` options that make a pool supervisor differ from the cluster's storm.yaml:
/// its slot ports, its JVM options, and the memory and CPU capacity the resource-aware scheduler
/// may use, taken from the container's limits (else requests; 1 CPU = 100 points).
pub fn supervisor_conf(pool: &StormWorkerPool) -> Vec<String> {
    let template = &pool.spec.template;
    let mut conf = vec![format!(
        "supervisor.slots.ports={}",
        json!(slot_ports(template.slots_per_supervisor))
    )];
    if let Some(opts) = &template.pod.jvm_opts {
        conf.push(format!("supervisor.childopts={}", json!(opts)));
    }
    let resource = |name: &str| -> Option<f64> {
        let resources = template.pod.resources.as_ref()?;
        [&resources.limits, &resources.requests]
            .into_iter()
            .find_map(|m| m.as_ref()?.get(name).and_then(|q| parse_quantity(&q.0)))
    };
    if let Some(bytes) = resource("memory") {
        let mb = (bytes / (1024.0 * 1024.0)).floor() as i64;
        conf.push(format!("supervisor.memory.capacity.mb={mb}"));
    }
    if let Some(cores) = resource("cpu") {
        let points = (cores * 100.0).round() as i64;
        conf.push(format!("supervisor.cpu.capacity={points}"));
    }
    conf
}

/// The pool's supervisor Deployment with `replicas` pods (the reconciler decides the count: it
/// stays above `spec.replicas` until a scale-down's rebalance is done). The pods run the cluster's
/// image and storm.yaml with the pool's slots, resources and scheduling; without an affinity in the
/// spec they prefer distinct nodes. Owned by the pool.
pub fn deployment(
    pool: &StormWorkerPool,
    cluster: &StormCluster,
    plan: &Managed,
    replicas: i32,
) -> Deployment {
    let template = &pool.spec.template;
    let selector = pod_selector(pool, &plan.name);
    let container = supervisor_container(
        cluster,
        plan,
        &template.pod,
        template.slots_per_supervisor,
        supervisor_conf(pool),
    );
    let hash = config_hash(cluster, plan);
    let pod = pod_template(
        cluster,
        &template.pod,
        PodParts {
            labels: child_labels(pool, &plan.name),
            config_hash: &hash,
            container,
            default_affinity: spread_across_nodes(&selector),
            volumes: supervisor_volumes(&plan.name),
            grace_seconds: template.termination_grace_period_seconds,
        },
    );
    Deployment {
        metadata: labels::child_meta(pool, deployment_name(pool), child_labels(pool, &plan.name)),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: labels::label_selector(&selector),
            template: pod,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The HPA of `spec.autoscaling`, or `None` without it. It scales the StormWorkerPool through
/// its `/scale` subresource (not the Deployment: the operator orders Deployment changes with
/// rebalances). Storm metrics are Object metrics of the pool's StormTopology, served by this
/// operator's custom metrics API; per-component ones select their series with `component=ID`.
pub fn hpa(pool: &StormWorkerPool, cluster: &str) -> Option<HorizontalPodAutoscaler> {
    let autoscaling = pool.spec.template.autoscaling.as_ref()?;
    let topology = &pool.spec.topology_ref.name;
    let metrics = autoscaling
        .metrics
        .iter()
        .filter_map(|m| metric_spec(m, topology))
        .collect();
    Some(HorizontalPodAutoscaler {
        metadata: labels::child_meta(pool, hpa_name(pool), child_labels(pool, cluster)),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some(STORM_API_VERSION.into()),
                kind: "StormWorkerPool".into(),
                name: pool.name_any(),
            },
            min_replicas: Some(autoscaling.min_replicas),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(metrics),
            behavior: autoscaling.behavior.clone(),
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

fn metric_spec(target: &MetricTarget, topology: &str) -> Option<MetricSpec> {
    if let Some(storm) = &target.storm {
        return Some(MetricSpec {
            type_: "Object".into(),
            object: Some(ObjectMetricSource {
                described_object: CrossVersionObjectReference {
                    api_version: Some(STORM_API_VERSION.into()),
                    kind: "StormTopology".into(),
                    name: topology.into(),
                },
                metric: MetricIdentifier {
                    name: storm.metric.as_str().into(),
                    selector: component_selector(storm),
                },
                target: storm_target(storm),
            }),
            ..MetricSpec::default()
        });
    }
    let resource = target.resource.as_ref()?;
    let name = match resource.name {
        ResourceName::Cpu => "cpu",
        ResourceName::Memory => "memory",
    };
    Some(MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: name.into(),
            target: HpaMetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(resource.average_utilization),
                ..HpaMetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    })
}

fn component_selector(storm: &StormMetricTarget) -> Option<LabelSelector> {
    let component = storm.component.as_ref()?;
    Some(labels::label_selector(&BTreeMap::from([(
        COMPONENT_LABEL.to_string(),
        component.clone(),
    )])))
}

fn storm_target(storm: &StormMetricTarget) -> HpaMetricTarget {
    match (&storm.value, &storm.average_value) {
        (_, Some(average)) => HpaMetricTarget {
            type_: "AverageValue".into(),
            average_value: Some(average.clone()),
            ..HpaMetricTarget::default()
        },
        (value, None) => HpaMetricTarget {
            type_: "Value".into(),
            value: value.clone(),
            ..HpaMetricTarget::default()
        },
    }
}

/// The `topology_conf_overrides` a rebalance sends so that the resource-aware scheduler puts the
/// topology's workers on the pool: its supervisors' hosts favored, every other supervisor host
/// unfavored. Both lists are sorted and always present, so an override replaces an older one
/// (Nimbus merges overrides into the stored configuration). See `docs/placement.md`.
pub fn placement_conf(pool_hosts: &[String], other_hosts: &[String]) -> Map<String, Value> {
    let mut favored: Vec<&String> = pool_hosts.iter().collect();
    favored.sort();
    favored.dedup();
    let mut unfavored: Vec<&String> = other_hosts
        .iter()
        .filter(|h| !pool_hosts.contains(h))
        .collect();
    unfavored.sort();
    unfavored.dedup();
    let mut conf = Map::new();
    conf.insert(FAVORED_NODES.into(), json!(favored));
    conf.insert(UNFAVORED_NODES.into(), json!(unfavored));
    conf
}
