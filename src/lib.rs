//! storm-controller: a Kubernetes operator for Apache Storm.
pub mod controller;
pub mod crd;
pub mod nimbus;
pub mod render;
pub mod stats;
