//! API types of the `storm.apache.org` group: the single source of the CRD YAML.
//!
//! The doc comments on the fields are the `kubectl explain` text; the CEL rules
//! (`x-kubernetes-validations`) reject bad input at admission with a message naming the field.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

// `#[kube(printcolumn(name = .., type_ = ..), printcolumn(..))]` repeats keys by design, which
// clippy's duplicated_attributes lint mistakes for a copy-paste slip.
#[allow(clippy::duplicated_attributes)]
pub mod cluster;
pub mod common;
#[allow(clippy::duplicated_attributes)]
pub mod topology;
#[allow(clippy::duplicated_attributes)]
pub mod worker_pool;

pub use cluster::{StormCluster, StormClusterSpec, StormClusterStatus};
pub use topology::{StormTopology, StormTopologySpec, StormTopologyStatus};
pub use worker_pool::{StormWorkerPool, StormWorkerPoolSpec, StormWorkerPoolStatus};

/// API group of every kind this operator serves.
pub const GROUP: &str = "storm.apache.org";
/// API version of the kinds.
pub const VERSION: &str = "v1alpha1";
/// Category that `kubectl get storm` lists.
pub const CATEGORY: &str = "storm";
/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "storm-controller";
/// Finalizer that kills a topology in Storm before its object goes away.
pub const TOPOLOGY_FINALIZER: &str = "storm.apache.org/topology";

/// All CRDs this operator defines, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        StormCluster::crd(),
        StormTopology::crd(),
        StormWorkerPool::crd(),
    ]
}

/// One CRD as YAML, exactly as `crds/<name>.yaml` holds it.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    serde_saphyr::to_string(crd).expect("a CRD serializes to YAML")
}

/// The CRDs as one YAML stream (`---` separated), as `storm-controller crds` prints it.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| format!("---\n{}", crd_yaml(crd)))
        .collect()
}
