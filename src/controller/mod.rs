//! The reconcilers. Each CRD has a pipeline: fetch, validate (pure), build (pure), apply, status.

pub mod apply;
pub mod cluster;
pub mod conditions;
pub mod labels;
pub mod leader;
