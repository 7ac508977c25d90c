//! StormCluster: validate the spec, build Nimbus, supervisors, UI and storm.yaml.

pub mod build;
pub mod validate;
