//! storm-controller: a Kubernetes operator for Apache Storm.
pub mod admin;
pub mod cli;
pub mod crd;
pub mod metrics;
pub mod run;
pub mod telemetry;
