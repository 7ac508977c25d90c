//! API types of the `storm.apache.org` group: the single source of the CRD YAML.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// API group of every kind this operator serves.
pub const GROUP: &str = "storm.apache.org";
/// API version of the kinds.
pub const VERSION: &str = "v1alpha1";

/// All CRDs this operator defines, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    Vec::new()
}

/// The CRDs as one YAML stream (`---` separated), as `storm-controller crds` prints it.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_saphyr::to_string(crd).expect("a CRD serializes to YAML"))
        .map(|doc| format!("---\n{doc}"))
        .collect()
}
