//! Everything that speaks Thrift to Storm's Nimbus.
//!
//! - [`Nimbus`]: the async trait the reconcilers, the collector and the CLI use (`Arc<dyn Nimbus>`).
//! - [`ThriftNimbus`]: the implementation over framed binary Thrift with leader discovery, pooling,
//!   deadlines and bounded retries.
//! - [`fake`]: a fake Nimbus that is a real Thrift server on 127.0.0.1, for tests and the `dev` sandbox.
//! - [`generated::storm`]: the generated Thrift types (subset of Storm's `storm.thrift`).

pub mod cli;
mod client;
pub mod codec;
mod error;
pub mod fake;
pub mod generated;

pub use client::{NimbusConfig, ThriftNimbus, parse_seeds};
pub use error::{NimbusError, Result};
pub use generated::storm;

use async_trait::async_trait;
use std::collections::BTreeMap;
use tokio::io::AsyncRead;

use storm::{
    ClusterSummary, NimbusSummary, StormTopology, SubmitOptions, TopologyInfo, TopologyPageInfo,
    TopologySummary,
};

/// Nimbus's default Thrift port.
pub const DEFAULT_PORT: u16 = 6627;
/// Storm's upload chunk size (`StormSubmitter.THRIFT_CHUNK_SIZE_BYTES`).
pub const UPLOAD_CHUNK_BYTES: usize = 307_200;
/// The stats window operators should use (10 minutes).
pub const WINDOW_10_MIN: &str = "600";
/// Storm's all-time stats window key.
pub const WINDOW_ALL_TIME: &str = ":all-time";

/// What a rebalance should change (`RebalanceOptions`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RebalanceRequest {
    /// Seconds Nimbus waits before rebalancing (default: the topology's message timeout).
    pub wait_secs: Option<u32>,
    /// New number of workers.
    pub num_workers: Option<u32>,
    /// New executor counts per component (capped by Storm at the component's task count).
    pub num_executors: BTreeMap<String, u32>,
    /// Topology configuration overrides, sent as JSON (`topology_conf_overrides`).
    pub conf_overrides: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A topology's configuration as Nimbus returns it (`getTopologyConf`, JSON).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopologyConf(pub serde_json::Map<String, serde_json::Value>);

impl TopologyConf {
    /// Parses Nimbus's JSON; anything but an object is an error.
    pub fn parse(json: &str) -> Result<Self> {
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(serde_json::Value::Object(m)) => Ok(Self(m)),
            Ok(_) => Err(NimbusError::Protocol(
                "topology conf is not a JSON object".into(),
            )),
            Err(e) => Err(NimbusError::Protocol(format!(
                "topology conf is not JSON: {e}"
            ))),
        }
    }

    /// A numeric setting (integers and floats, also numbers written as strings).
    pub fn number(&self, key: &str) -> Option<f64> {
        match self.0.get(key)? {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A string setting.
    pub fn string(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.as_str()
    }

    /// `topology.version`, which the operator uses to tell submitted versions apart.
    pub fn version(&self) -> Option<&str> {
        self.string("topology.version")
    }

    /// `topology.message.timeout.secs` (Storm's default is 30).
    pub fn message_timeout_secs(&self) -> f64 {
        self.number("topology.message.timeout.secs").unwrap_or(30.0)
    }

    /// `topology.max.spout.pending`, if set and positive.
    pub fn max_spout_pending(&self) -> Option<f64> {
        self.number("topology.max.spout.pending")
            .filter(|v| *v > 0.0)
    }

    /// `topology.acker.executors`; `None` means "one per worker" (Storm's default).
    pub fn acker_executors(&self) -> Option<f64> {
        self.number("topology.acker.executors")
    }
}

/// The Nimbus operations storm-controller needs. Topology methods take the **name** except
/// [`Nimbus::topology_page_info`] and [`Nimbus::topology_conf`], which take the id like Storm does.
#[async_trait]
pub trait Nimbus: Send + Sync {
    /// The current leader (`getLeader`).
    async fn leader(&self) -> Result<NimbusSummary>;
    /// Supervisors, Nimbus nodes and topologies (`getClusterInfo`).
    async fn cluster_summary(&self) -> Result<ClusterSummary>;
    /// All topologies (`getTopologySummaries`, falling back to `getClusterInfo` before Storm 2.3).
    async fn topologies(&self) -> Result<Vec<TopologySummary>>;
    /// One topology by name (`getTopologySummaryByName`, with the same fallback).
    async fn topology_summary(&self, name: &str) -> Result<TopologySummary>;
    /// Executors, errors and raw stats by name (`getTopologyInfoByName`, fallback by id).
    async fn topology_info(&self, name: &str) -> Result<TopologyInfo>;
    /// Aggregated stats for one window, by topology **id** (`getTopologyPageInfo(id, window, false)`).
    async fn topology_page_info(&self, id: &str, window: &str) -> Result<TopologyPageInfo>;
    /// The topology's effective configuration, by topology **id** (`getTopologyConf`).
    async fn topology_conf(&self, id: &str) -> Result<TopologyConf>;
    /// Resumes spouts (`activate`).
    async fn activate(&self, name: &str) -> Result<()>;
    /// Pauses spouts (`deactivate`).
    async fn deactivate(&self, name: &str) -> Result<()>;
    /// Changes workers/executors/conf (`rebalance`).
    async fn rebalance(&self, name: &str, request: &RebalanceRequest) -> Result<()>;
    /// Kills the topology after `wait_secs` (`killTopologyWithOpts`; `None` = message timeout).
    async fn kill(&self, name: &str, wait_secs: Option<u32>) -> Result<()>;
    /// Uploads a topology jar in 300 KiB chunks (`beginFileUpload`/`uploadChunk`/`finishFileUpload`) and
    /// returns the location to pass to [`Nimbus::submit`].
    async fn upload_jar(&self, jar: &mut (dyn AsyncRead + Send + Unpin)) -> Result<String>;
    /// Submits a topology (`submitTopologyWithOpts`).
    async fn submit(
        &self,
        name: &str,
        uploaded_jar_location: &str,
        conf: &serde_json::Map<String, serde_json::Value>,
        topology: &StormTopology,
        options: &SubmitOptions,
    ) -> Result<()>;

    /// The configuration of a topology by name: resolves the id with [`Nimbus::topology_summary`] first.
    async fn topology_conf_by_name(&self, name: &str) -> Result<TopologyConf> {
        let summary = self.topology_summary(name).await?;
        self.topology_conf(&summary.id).await
    }

    /// Page info by topology name: resolves the id with [`Nimbus::topology_summary`] first.
    async fn topology_page_info_by_name(
        &self,
        name: &str,
        window: &str,
    ) -> Result<TopologyPageInfo> {
        let summary = self.topology_summary(name).await?;
        self.topology_page_info(&summary.id, window).await
    }
}
