//! storm-controller: a Kubernetes operator for Apache Storm.
pub mod crd;
pub mod metrics_api;
