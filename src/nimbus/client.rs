//! [`ThriftNimbus`]: the Thrift implementation of [`Nimbus`].
//!
//! Design: requests are encoded by the generated code into a buffer, written and read with tokio (framed,
//! capped), and decoded from the buffer with the bounds-checked [`SliceInputProtocol`]. Nothing blocks the
//! runtime, a deadline is a plain `tokio::time::timeout`, and a cancelled call simply drops its connection.
//!
//! [`SliceInputProtocol`]: super::codec::SliceInputProtocol

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::codec::{self, Call};
use super::generated::storm::{
    ClusterSummary, KillOptions, NimbusSummary, RebalanceOptions, StormTopology, SubmitOptions,
    TNimbusSyncClient, TopologyInfo, TopologyPageInfo, TopologySummary,
};
use super::{
    DEFAULT_PORT, Nimbus, NimbusError, RebalanceRequest, Result, TopologyConf, UPLOAD_CHUNK_BYTES,
};

/// Settings of a [`ThriftNimbus`].
#[derive(Debug, Clone)]
pub struct NimbusConfig {
    /// `host:port` seeds, tried in order for leader discovery.
    pub seeds: Vec<String>,
    /// Deadline for one logical call, including leader discovery and retries.
    pub call_timeout: Duration,
    /// Largest response frame accepted; larger ones fail with [`NimbusError::FrameTooLarge`].
    pub max_response_bytes: usize,
    /// Extra attempts for idempotent reads after a transport error.
    pub read_retries: u32,
    /// First backoff between read retries (doubled each time).
    pub retry_backoff: Duration,
    /// Idle connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    /// Bound on one TCP connect, and on one seed's `getLeader` answer during discovery, so that a
    /// black-holed seed cannot use up the whole call deadline before the next seed is tried.
    pub connect_timeout: Duration,
}

impl NimbusConfig {
    /// Defaults (10 s deadline, 3 s connect/seed timeout, 64 MiB responses, 2 read retries from 100 ms)
    /// for the given seeds.
    pub fn new(seeds: Vec<String>) -> Self {
        Self {
            seeds,
            call_timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024 * 1024,
            read_retries: 2,
            retry_backoff: Duration::from_millis(100),
            max_idle_per_endpoint: 32,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Parses `host:port[,host:port]...`; a missing port means 6627.
pub fn parse_seeds(s: &str) -> Result<Vec<String>> {
    let seeds: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let has_port = p.rsplit_once(':').is_some_and(|(h, port)| {
                !h.is_empty() && !h.ends_with(':') && port.parse::<u16>().is_ok()
            });
            if has_port {
                Ok(p.to_string())
            } else if p.contains(':') && !p.starts_with('[') {
                Err(NimbusError::InvalidArgument(format!(
                    "bad Nimbus address {p:?}"
                )))
            } else {
                Ok(format!("{p}:{DEFAULT_PORT}"))
            }
        })
        .collect::<Result<_>>()?;
    if seeds.is_empty() {
        return Err(NimbusError::InvalidArgument("no Nimbus seeds given".into()));
    }
    Ok(seeds)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Safe to repeat.
    Read,
    /// Must not be repeated after it may have reached Nimbus.
    Write,
}

/// A Thrift client for a Storm cluster: leader discovery over seeds, a connection pool, per-call deadlines
/// and bounded retries for reads. Cheap to share behind an `Arc`.
pub struct ThriftNimbus {
    config: NimbusConfig,
    leader: Mutex<Option<String>>,
    discovery: tokio::sync::Mutex<()>,
    pool: Mutex<HashMap<String, Vec<TcpStream>>>,
    no_by_name: AtomicBool,
}

impl std::fmt::Debug for ThriftNimbus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThriftNimbus")
            .field("seeds", &self.config.seeds)
            .field("leader", &*self.leader.lock().expect("leader lock"))
            .finish()
    }
}

/// Why an exchange failed, and whether the request may have reached the peer.
struct ExchangeError {
    error: NimbusError,
    sent: bool,
}

impl ThriftNimbus {
    /// A client for the given configuration; connects lazily on the first call.
    pub fn new(config: NimbusConfig) -> Result<Self> {
        if config.seeds.is_empty() {
            return Err(NimbusError::InvalidArgument("no Nimbus seeds given".into()));
        }
        Ok(Self {
            config,
            leader: Mutex::new(None),
            discovery: tokio::sync::Mutex::new(()),
            pool: Mutex::new(HashMap::new()),
            no_by_name: AtomicBool::new(false),
        })
    }

    /// A client with default settings for `host:port[,host:port]`.
    pub fn from_seeds(seeds: &str) -> Result<Self> {
        Self::new(NimbusConfig::new(parse_seeds(seeds)?))
    }

    /// The configuration in use.
    pub fn config(&self) -> &NimbusConfig {
        &self.config
    }

    /// The leader endpoint currently cached, if any.
    pub fn cached_leader(&self) -> Option<String> {
        self.leader.lock().expect("leader lock").clone()
    }

    /// Takes an idle connection, skipping ones the peer has closed (EOF) or that hold stray bytes.
    fn checkout(&self, endpoint: &str) -> Option<TcpStream> {
        let mut pool = self.pool.lock().expect("pool lock");
        let idle = pool.get_mut(endpoint)?;
        while let Some(stream) = idle.pop() {
            let mut probe = [0u8; 1];
            match stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(stream),
                _ => debug!(%endpoint, "dropping a closed pooled connection"),
            }
        }
        None
    }

    fn checkin(&self, endpoint: &str, stream: TcpStream) {
        let mut pool = self.pool.lock().expect("pool lock");
        let idle = pool.entry(endpoint.to_string()).or_default();
        if idle.len() < self.config.max_idle_per_endpoint {
            idle.push(stream);
        }
    }

    fn forget(&self, endpoint: &str) {
        self.pool.lock().expect("pool lock").remove(endpoint);
        let mut leader = self.leader.lock().expect("leader lock");
        if leader.as_deref() == Some(endpoint) {
            *leader = None;
        }
    }

    async fn connect(&self, endpoint: &str) -> Result<TcpStream> {
        let stream =
            tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(endpoint))
                .await
                .map_err(|_| {
                    NimbusError::transport(
                        endpoint,
                        format!("connect timed out after {:?}", self.config.connect_timeout),
                    )
                })?
                .map_err(|e| NimbusError::transport(endpoint, format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Sends one framed request and reads one framed reply, reusing a pooled connection when possible.
    async fn exchange(&self, endpoint: &str, request: &[u8]) -> Result<Vec<u8>, ExchangeError> {
        let mut stream = match self.checkout(endpoint) {
            Some(s) => s,
            None => self
                .connect(endpoint)
                .await
                .map_err(|error| ExchangeError { error, sent: false })?,
        };
        stream.write_all(request).await.map_err(|e| ExchangeError {
            error: NimbusError::transport(endpoint, format!("write: {e}")),
            sent: false,
        })?;
        let frame = codec::read_frame(&mut stream, self.config.max_response_bytes, endpoint)
            .await
            .map_err(|error| ExchangeError { error, sent: true })?;
        self.checkin(endpoint, stream);
        Ok(frame)
    }

    /// One `getLeader` round trip against `endpoint`.
    async fn ask_leader(&self, endpoint: &str) -> Result<NimbusSummary> {
        let call = |c: &mut dyn TNimbusSyncClient| c.get_leader();
        let req = codec::encode_request("getLeader", &call)?;
        let frame = self.exchange(endpoint, &req).await.map_err(|e| e.error)?;
        codec::decode_reply("getLeader", &frame, &call)
    }

    /// Finds the leader like Storm's `NimbusClient`: ask each seed, keep the seed if it is the leader,
    /// otherwise connect to the endpoint it names.
    async fn discover(&self, avoid: Option<&str>) -> Result<String> {
        let _guard = self.discovery.lock().await;
        if let Some(l) = self.cached_leader()
            && Some(l.as_str()) != avoid
        {
            return Ok(l);
        }
        let mut failures = Vec::new();
        for seed in &self.config.seeds {
            let asked = tokio::time::timeout(self.config.connect_timeout, self.ask_leader(seed))
                .await
                .unwrap_or_else(|_| {
                    Err(NimbusError::transport(
                        seed,
                        format!(
                            "no getLeader answer within {:?}",
                            self.config.connect_timeout
                        ),
                    ))
                });
            match asked {
                Ok(leader) => {
                    let endpoint = format!("{}:{}", leader.host, leader.port);
                    if endpoint != *seed {
                        match self.connect(&endpoint).await {
                            Ok(s) => self.checkin(&endpoint, s),
                            Err(e) => {
                                failures.push(format!("{seed} named leader {endpoint}: {e}"));
                                continue;
                            }
                        }
                    }
                    debug!(%seed, leader = %endpoint, "found Nimbus leader");
                    *self.leader.lock().expect("leader lock") = Some(endpoint.clone());
                    return Ok(endpoint);
                }
                Err(e) => {
                    debug!(%seed, error = %e, "seed did not give a leader");
                    self.pool.lock().expect("pool lock").remove(seed);
                    failures.push(format!("{seed}: {e}"));
                }
            }
        }
        Err(NimbusError::NoLeader(failures.join("; ")))
    }

    async fn leader_endpoint(&self) -> Result<String> {
        match self.cached_leader() {
            Some(l) => Ok(l),
            None => self.discover(None).await,
        }
    }

    /// Runs `call` against the leader within the deadline.
    async fn call<T>(&self, method: &'static str, kind: Kind, call: &dyn Call<T>) -> Result<T> {
        let after = self.config.call_timeout;
        match tokio::time::timeout(after, self.call_inner(method, kind, call)).await {
            Ok(r) => r,
            Err(_) => Err(NimbusError::Timeout { method, after }),
        }
    }

    async fn call_inner<T>(
        &self,
        method: &'static str,
        kind: Kind,
        call: &dyn Call<T>,
    ) -> Result<T> {
        let request = codec::encode_request(method, call)?;
        let mut attempt: u32 = 0;
        let mut leader_retried = false;
        loop {
            let endpoint = self.leader_endpoint().await?;
            let err = match self.exchange(&endpoint, &request).await {
                Ok(frame) => match decode(method, &frame, call) {
                    Ok(v) => return Ok(v),
                    Err(e @ NimbusError::Internal(_)) if kind == Kind::Write && !leader_retried => {
                        // Storm answers a write to a non-leader with a generic INTERNAL_ERROR. Ask the
                        // seeds who leads now; if it is someone else, the write never happened: resend.
                        leader_retried = true;
                        match self.discover(Some(&endpoint)).await {
                            Ok(new) if new != endpoint => {
                                warn!(%method, old = %endpoint, new = %new, "Nimbus leader changed; resending write");
                                continue;
                            }
                            _ => return Err(e),
                        }
                    }
                    Err(e) => return Err(e),
                },
                Err(ExchangeError { error, sent }) => {
                    let transport = matches!(error, NimbusError::Transport { .. });
                    if !transport {
                        // FrameTooLarge or a malformed frame: the connection is already dropped.
                        return Err(error);
                    }
                    self.forget(&endpoint);
                    let may_repeat = kind == Kind::Read || !sent;
                    if !may_repeat || attempt >= self.config.read_retries {
                        return Err(error);
                    }
                    error
                }
            };
            attempt += 1;
            let backoff = self.config.retry_backoff * 2u32.saturating_pow(attempt - 1);
            debug!(%method, attempt, error = %err, ?backoff, "retrying Nimbus call");
            tokio::time::sleep(backoff).await;
        }
    }

    fn by_name_supported(&self) -> bool {
        !self.no_by_name.load(Ordering::Relaxed)
    }

    fn mark_no_by_name(&self) {
        if !self.no_by_name.swap(true, Ordering::Relaxed) {
            warn!(
                "Nimbus lacks the *ByName methods (Storm before 2.3); using getClusterInfo + by-id calls"
            );
        }
    }

    async fn summary_from_cluster(&self, name: &str) -> Result<TopologySummary> {
        self.cluster_summary()
            .await?
            .topologies
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| NimbusError::NotAlive(format!("{name} is not alive")))
    }
}

/// Frames above this size are decoded with `block_in_place`, so that a multi-megabyte `TopologyInfo`
/// does not stall the other tasks of a worker thread.
const INLINE_DECODE_LIMIT: usize = 1024 * 1024;

fn decode<T>(method: &str, frame: &[u8], call: &dyn Call<T>) -> Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread = Handle::try_current()
        .map(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
        .unwrap_or(false);
    if frame.len() > INLINE_DECODE_LIMIT && multi_thread {
        tokio::task::block_in_place(|| codec::decode_reply(method, frame, call))
    } else {
        codec::decode_reply(method, frame, call)
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(NimbusError::InvalidArgument("empty topology name".into()));
    }
    Ok(())
}

#[async_trait]
impl Nimbus for ThriftNimbus {
    async fn leader(&self) -> Result<NimbusSummary> {
        self.call("getLeader", Kind::Read, &|c: &mut dyn TNimbusSyncClient| {
            c.get_leader()
        })
        .await
    }

    async fn cluster_summary(&self) -> Result<ClusterSummary> {
        self.call(
            "getClusterInfo",
            Kind::Read,
            &|c: &mut dyn TNimbusSyncClient| c.get_cluster_info(),
        )
        .await
    }

    async fn topologies(&self) -> Result<Vec<TopologySummary>> {
        if self.by_name_supported() {
            match self
                .call(
                    "getTopologySummaries",
                    Kind::Read,
                    &|c: &mut dyn TNimbusSyncClient| c.get_topology_summaries(),
                )
                .await
            {
                Err(NimbusError::UnknownMethod(_)) => self.mark_no_by_name(),
                other => return other,
            }
        }
        Ok(self.cluster_summary().await?.topologies)
    }

    async fn topology_summary(&self, name: &str) -> Result<TopologySummary> {
        check_name(name)?;
        if self.by_name_supported() {
            let call =
                |c: &mut dyn TNimbusSyncClient| c.get_topology_summary_by_name(name.to_string());
            match self
                .call("getTopologySummaryByName", Kind::Read, &call)
                .await
            {
                Err(NimbusError::UnknownMethod(_)) => self.mark_no_by_name(),
                other => return other,
            }
        }
        self.summary_from_cluster(name).await
    }

    async fn topology_info(&self, name: &str) -> Result<TopologyInfo> {
        check_name(name)?;
        if self.by_name_supported() {
            let call =
                |c: &mut dyn TNimbusSyncClient| c.get_topology_info_by_name(name.to_string());
            match self.call("getTopologyInfoByName", Kind::Read, &call).await {
                Err(NimbusError::UnknownMethod(_)) => self.mark_no_by_name(),
                other => return other,
            }
        }
        let id = self.summary_from_cluster(name).await?.id;
        let call = |c: &mut dyn TNimbusSyncClient| c.get_topology_info(id.clone());
        self.call("getTopologyInfo", Kind::Read, &call).await
    }

    async fn topology_page_info(&self, id: &str, window: &str) -> Result<TopologyPageInfo> {
        check_name(id)?;
        let call = |c: &mut dyn TNimbusSyncClient| {
            c.get_topology_page_info(id.to_string(), window.to_string(), false)
        };
        self.call("getTopologyPageInfo", Kind::Read, &call).await
    }

    async fn topology_conf(&self, id: &str) -> Result<TopologyConf> {
        check_name(id)?;
        let call = |c: &mut dyn TNimbusSyncClient| c.get_topology_conf(id.to_string());
        TopologyConf::parse(&self.call("getTopologyConf", Kind::Read, &call).await?)
    }

    async fn activate(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let call = |c: &mut dyn TNimbusSyncClient| c.activate(name.to_string());
        self.call("activate", Kind::Write, &call).await
    }

    async fn deactivate(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let call = |c: &mut dyn TNimbusSyncClient| c.deactivate(name.to_string());
        self.call("deactivate", Kind::Write, &call).await
    }

    async fn rebalance(&self, name: &str, request: &RebalanceRequest) -> Result<()> {
        check_name(name)?;
        let to_i32 = |v: u32, what: &str| {
            i32::try_from(v)
                .map_err(|_| NimbusError::InvalidArgument(format!("{what} {v} is too large")))
        };
        let num_executors = if request.num_executors.is_empty() {
            None
        } else {
            Some(
                request
                    .num_executors
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), to_i32(*v, "executors")?)))
                    .collect::<Result<_>>()?,
            )
        };
        let topology_conf_overrides = request
            .conf_overrides
            .as_ref()
            .map(|conf| {
                serde_json::to_string(conf).map_err(|e| NimbusError::InvalidArgument(e.to_string()))
            })
            .transpose()?;
        let options = RebalanceOptions {
            wait_secs: request
                .wait_secs
                .map(|v| to_i32(v, "wait_secs"))
                .transpose()?,
            num_workers: request
                .num_workers
                .map(|v| to_i32(v, "num_workers"))
                .transpose()?,
            num_executors,
            topology_conf_overrides,
            ..RebalanceOptions::default()
        };
        let call = |c: &mut dyn TNimbusSyncClient| c.rebalance(name.to_string(), options.clone());
        self.call("rebalance", Kind::Write, &call).await
    }

    async fn kill(&self, name: &str, wait_secs: Option<u32>) -> Result<()> {
        check_name(name)?;
        let wait = wait_secs
            .map(|w| {
                i32::try_from(w).map_err(|_| NimbusError::InvalidArgument("wait too large".into()))
            })
            .transpose()?;
        let call = |c: &mut dyn TNimbusSyncClient| {
            c.kill_topology_with_opts(name.to_string(), KillOptions { wait_secs: wait })
        };
        self.call("killTopologyWithOpts", Kind::Write, &call).await
    }

    async fn upload_jar(&self, jar: &mut (dyn AsyncRead + Send + Unpin)) -> Result<String> {
        let location = self
            .call(
                "beginFileUpload",
                Kind::Write,
                &|c: &mut dyn TNimbusSyncClient| c.begin_file_upload(),
            )
            .await?;
        let mut chunk = vec![0u8; UPLOAD_CHUNK_BYTES];
        loop {
            let mut filled = 0;
            while filled < chunk.len() {
                let n = jar
                    .read(&mut chunk[filled..])
                    .await
                    .map_err(|e| NimbusError::InvalidArgument(format!("reading the jar: {e}")))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            let part = chunk[..filled].to_vec();
            let call =
                |c: &mut dyn TNimbusSyncClient| c.upload_chunk(location.clone(), part.clone());
            self.call("uploadChunk", Kind::Write, &call).await?;
            if filled < chunk.len() {
                break;
            }
        }
        let call = |c: &mut dyn TNimbusSyncClient| c.finish_file_upload(location.clone());
        self.call("finishFileUpload", Kind::Write, &call).await?;
        Ok(location)
    }

    async fn submit(
        &self,
        name: &str,
        uploaded_jar_location: &str,
        conf: &serde_json::Map<String, serde_json::Value>,
        topology: &StormTopology,
        options: &SubmitOptions,
    ) -> Result<()> {
        check_name(name)?;
        let json =
            serde_json::to_string(conf).map_err(|e| NimbusError::InvalidArgument(e.to_string()))?;
        let call = |c: &mut dyn TNimbusSyncClient| {
            c.submit_topology_with_opts(
                name.to_string(),
                uploaded_jar_location.to_string(),
                json.clone(),
                topology.clone(),
                options.clone(),
            )
        };
        self.call("submitTopologyWithOpts", Kind::Write, &call)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_get_the_default_port() {
        assert_eq!(
            parse_seeds("a:1, b ,c:6628").unwrap(),
            vec!["a:1".to_string(), "b:6627".into(), "c:6628".into()]
        );
        assert!(parse_seeds(" , ").is_err());
        assert!(parse_seeds("a:notaport").is_err());
    }
}
