//! The StormTopology pipeline. So far: the pure builders of its children.

pub mod build;
