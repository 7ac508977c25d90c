//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod controller_ctx;
pub mod fixtures;
pub mod kubelet;
pub mod openapi;
pub mod pool_env;
pub mod tls;

use std::path::PathBuf;

/// A path relative to the repository root.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Reads a YAML file of the repository into JSON.
pub fn read_yaml(rel: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {rel}: {e}"))
}
