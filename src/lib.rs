//! storm-controller: a Kubernetes operator for Apache Storm.
pub mod admin;
pub mod cli;
pub mod clusters;
pub mod controller;
pub mod crd;
pub mod dev;
pub mod kubesim;
pub mod metrics;
pub mod metrics_api;
pub mod nimbus;
pub mod render;
pub mod run;
pub mod stats;
pub mod storm_provider;
pub mod telemetry;
