//! A fake Nimbus: a real framed-binary Thrift server on 127.0.0.1 built on the same generated code, with
//! scriptable state, a call log and injectable faults. Tests and the `dev` sandbox use it.
//!
//! - [`FakeCluster`] holds the shared Storm state (topologies, supervisors, uploads, who leads).
//! - [`FakeNimbus`] is one Nimbus node serving that state on its own port; start several in one cluster
//!   to test leader discovery. Writes on a non-leader fail with `INTERNAL_ERROR` like Storm's
//!   `assertIsLeader`.
//! - [`Fault`]s act on the wire: delay, internal error, unknown method, disconnect, oversized frame,
//!   close mid-frame, hostile in-frame length.
//!
//! The server runs as tokio tasks; dropping or [`FakeNimbus::shutdown`] aborts all of them, so no thread
//! outlives a test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thrift::protocol::{TBinaryOutputProtocol, TMessageIdentifier, TMessageType, TOutputProtocol};
use thrift::server::TProcessor;
use thrift::{ApplicationError, ApplicationErrorKind};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::codec::{self, MAX_REQUEST_FRAME, SliceInputProtocol};
use super::generated::storm::*;
use super::{WINDOW_10_MIN, WINDOW_ALL_TIME};

/// Aggregated stats of one component in one window, as `getTopologyPageInfo` reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FakeComponentStats {
    /// Tuples emitted on non-system streams.
    pub emitted: i64,
    /// Tuples transferred.
    pub transferred: i64,
    /// Spout: tuple trees completed; bolt: tuples acked.
    pub acked: i64,
    /// Spout: tuple trees failed; bolt: tuples failed.
    pub failed: i64,
    /// Spout only: complete latency (ms).
    pub complete_latency_ms: f64,
    /// Bolt only: execute latency (ms).
    pub execute_latency_ms: f64,
    /// Bolt only: process latency (ms).
    pub process_latency_ms: f64,
    /// Bolt only: tuples executed.
    pub executed: i64,
    /// Bolt only: capacity (always from the 600 s window in Storm).
    pub capacity: f64,
}

/// One spout or bolt of a fake topology.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FakeComponent {
    /// Executors (threads).
    pub executors: i32,
    /// Tasks (fixed at submit; caps executors on rebalance).
    pub tasks: i32,
    /// Stats per window key (`"600"`, `":all-time"`, ...).
    pub windows: BTreeMap<String, FakeComponentStats>,
}

impl FakeComponent {
    /// A component with the same stats in the 600 s and all-time windows.
    pub fn new(executors: i32, tasks: i32, stats: FakeComponentStats) -> Self {
        let mut windows = BTreeMap::new();
        windows.insert(WINDOW_10_MIN.to_string(), stats.clone());
        windows.insert(WINDOW_ALL_TIME.to_string(), stats);
        Self {
            executors,
            tasks,
            windows,
        }
    }
}

/// A topology in the fake cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTopology {
    /// `<name>-<n>-<epoch>`.
    pub id: String,
    /// Topology name.
    pub name: String,
    /// `ACTIVE`, `INACTIVE`, `REBALANCING` or `KILLED`.
    pub status: String,
    /// Workers.
    pub num_workers: i32,
    /// Topology uptime.
    pub uptime_secs: i32,
    /// Uptime reported for every worker (defaults to the topology uptime).
    pub worker_uptime_secs: Option<i32>,
    /// Effective configuration (`getTopologyConf`, `TopologyPageInfo.topology_conf`).
    pub conf: serde_json::Map<String, serde_json::Value>,
    /// Storm version.
    pub storm_version: String,
    /// Spouts by id (ids starting with `__` are system components).
    pub spouts: BTreeMap<String, FakeComponent>,
    /// Bolts by id (ids starting with `__` are system components).
    pub bolts: BTreeMap<String, FakeComponent>,
    /// Raw executors returned by `getTopologyInfo` (empty unless a test sets them).
    pub executors: Vec<ExecutorSummary>,
    /// Exact page infos per window, overriding the one derived from `spouts`/`bolts`.
    pub pages: BTreeMap<String, TopologyPageInfo>,
}

impl FakeTopology {
    /// An ACTIVE topology with one worker, no components and an empty conf.
    pub fn new(name: &str) -> Self {
        Self {
            id: format!("{name}-1-1700000000"),
            name: name.to_string(),
            status: "ACTIVE".into(),
            num_workers: 1,
            uptime_secs: 3600,
            worker_uptime_secs: None,
            conf: serde_json::Map::new(),
            storm_version: "2.8.8".into(),
            spouts: BTreeMap::new(),
            bolts: BTreeMap::new(),
            executors: Vec::new(),
            pages: BTreeMap::new(),
        }
    }

    /// Adds a spout.
    pub fn with_spout(mut self, id: &str, component: FakeComponent) -> Self {
        self.spouts.insert(id.to_string(), component);
        self
    }

    /// Adds a bolt.
    pub fn with_bolt(mut self, id: &str, component: FakeComponent) -> Self {
        self.bolts.insert(id.to_string(), component);
        self
    }

    /// Sets a configuration entry.
    pub fn with_conf(mut self, key: &str, value: serde_json::Value) -> Self {
        self.conf.insert(key.to_string(), value);
        self
    }

    fn num_executors(&self) -> i32 {
        self.spouts
            .values()
            .chain(self.bolts.values())
            .map(|c| c.executors)
            .sum()
    }

    fn num_tasks(&self) -> i32 {
        self.spouts
            .values()
            .chain(self.bolts.values())
            .map(|c| c.tasks)
            .sum()
    }

    fn version(&self) -> Option<String> {
        self.conf
            .get("topology.version")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// The `TopologySummary` Nimbus would report.
    pub fn summary(&self) -> TopologySummary {
        TopologySummary {
            id: self.id.clone(),
            name: self.name.clone(),
            num_tasks: self.num_tasks(),
            num_executors: self.num_executors(),
            num_workers: self.num_workers,
            uptime_secs: self.uptime_secs,
            status: self.status.clone(),
            storm_version: Some(self.storm_version.clone()),
            topology_version: self.version(),
            sched_status: None,
            owner: Some("storm".into()),
            replication_count: Some(1),
            requested_memonheap: None,
            requested_memoffheap: None,
            requested_cpu: None,
            assigned_memonheap: None,
            assigned_memoffheap: None,
            assigned_cpu: None,
            requested_generic_resources: None,
            assigned_generic_resources: None,
        }
    }

    /// The `TopologyInfo` Nimbus would report.
    pub fn info(&self) -> TopologyInfo {
        TopologyInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            uptime_secs: self.uptime_secs,
            executors: self.executors.clone(),
            status: self.status.clone(),
            errors: BTreeMap::new(),
            component_debug: None,
            storm_version: Some(self.storm_version.clone()),
            sched_status: None,
            owner: Some("storm".into()),
            replication_count: Some(1),
            requested_memonheap: None,
            requested_memoffheap: None,
            requested_cpu: None,
            assigned_memonheap: None,
            assigned_memoffheap: None,
            assigned_cpu: None,
        }
    }

    /// The `TopologyPageInfo` for `window`, derived from the components unless [`FakeTopology::pages`]
    /// has one.
    pub fn page_info(&self, window: &str, include_sys: bool) -> TopologyPageInfo {
        if let Some(p) = self.pages.get(window) {
            return p.clone();
        }
        let keep = |id: &String| include_sys || !id.starts_with("__");
        let agg = |comps: &BTreeMap<String, FakeComponent>, spout: bool| {
            comps
                .iter()
                .filter(|(id, _)| keep(id))
                .map(|(id, c)| {
                    let s = c.windows.get(window).cloned().unwrap_or_default();
                    (id.clone(), component_aggregate(c, &s, spout))
                })
                .collect::<BTreeMap<_, _>>()
        };
        let mut stats = TopologyStats::default();
        let windows: std::collections::BTreeSet<&String> = self
            .spouts
            .values()
            .chain(self.bolts.values())
            .flat_map(|c| c.windows.keys())
            .collect();
        let mut emitted = BTreeMap::new();
        let mut transferred = BTreeMap::new();
        let mut acked = BTreeMap::new();
        let mut failed = BTreeMap::new();
        let mut latency = BTreeMap::new();
        for w in windows {
            let all = self
                .spouts
                .iter()
                .chain(self.bolts.iter())
                .filter(|(id, _)| keep(id))
                .filter_map(|(_, c)| c.windows.get(w));
            let spouts: Vec<&FakeComponentStats> = self
                .spouts
                .iter()
                .filter(|(id, _)| keep(id))
                .filter_map(|(_, c)| c.windows.get(w))
                .collect();
            let (e, t) = all.fold((0, 0), |(e, t), s| (e + s.emitted, t + s.transferred));
            let a: i64 = spouts.iter().map(|s| s.acked).sum();
            let weighted: f64 = spouts
                .iter()
                .map(|s| s.complete_latency_ms * s.acked as f64)
                .sum();
            emitted.insert(w.clone(), e);
            transferred.insert(w.clone(), t);
            acked.insert(w.clone(), a);
            failed.insert(w.clone(), spouts.iter().map(|s| s.failed).sum());
            latency.insert(
                w.clone(),
                (if a > 0 { weighted / a as f64 } else { 0.0 }).into(),
            );
        }
        stats.window_to_emitted = Some(emitted);
        stats.window_to_transferred = Some(transferred);
        stats.window_to_acked = Some(acked);
        stats.window_to_failed = Some(failed);
        stats.window_to_complete_latencies_ms = Some(latency);
        let worker_uptime = self.worker_uptime_secs.unwrap_or(self.uptime_secs);
        let workers = (0..self.num_workers)
            .map(|i| WorkerSummary {
                supervisor_id: Some("fake-supervisor-0".into()),
                host: Some("127.0.0.1".into()),
                port: Some(6700 + i),
                topology_id: Some(self.id.clone()),
                topology_name: Some(self.name.clone()),
                uptime_secs: Some(worker_uptime),
                ..WorkerSummary::default()
            })
            .collect();
        TopologyPageInfo {
            id: self.id.clone(),
            name: Some(self.name.clone()),
            uptime_secs: Some(self.uptime_secs),
            status: Some(self.status.clone()),
            num_tasks: Some(self.num_tasks()),
            num_workers: Some(self.num_workers),
            num_executors: Some(self.num_executors()),
            topology_conf: Some(serde_json::Value::Object(self.conf.clone()).to_string()),
            id_to_spout_agg_stats: Some(agg(&self.spouts, true)),
            id_to_bolt_agg_stats: Some(agg(&self.bolts, false)),
            sched_status: None,
            topology_stats: Some(stats),
            owner: Some("storm".into()),
            debug_options: None,
            replication_count: Some(1),
            workers: Some(workers),
            storm_version: Some(self.storm_version.clone()),
            topology_version: self.version(),
            requested_memonheap: None,
            requested_memoffheap: None,
            requested_cpu: None,
            assigned_memonheap: None,
            assigned_memoffheap: None,
            assigned_cpu: None,
            requested_regular_on_heap_memory: None,
            requested_shared_on_heap_memory: None,
            requested_regular_off_heap_memory: None,
            requested_shared_off_heap_memory: None,
            assigned_regular_on_heap_memory: None,
            assigned_shared_on_heap_memory: None,
            assigned_regular_off_heap_memory: None,
            assigned_shared_off_heap_memory: None,
            requested_generic_resources: None,
            assigned_generic_resources: None,
        }
    }
}

fn component_aggregate(
    c: &FakeComponent,
    s: &FakeComponentStats,
    spout: bool,
) -> ComponentAggregateStats {
    let common = CommonAggregateStats {
        num_executors: Some(c.executors),
        num_tasks: Some(c.tasks),
        emitted: Some(s.emitted),
        transferred: Some(s.transferred),
        acked: Some(s.acked),
        failed: Some(s.failed),
        resources_map: None,
    };
    let (kind, specific) = if spout {
        (
            ComponentType::SPOUT,
            SpecificAggregateStats::Spout(SpoutAggregateStats {
                complete_latency_ms: Some(s.complete_latency_ms.into()),
            }),
        )
    } else {
        (
            ComponentType::BOLT,
            SpecificAggregateStats::Bolt(BoltAggregateStats {
                execute_latency_ms: Some(s.execute_latency_ms.into()),
                process_latency_ms: Some(s.process_latency_ms.into()),
                executed: Some(s.executed),
                capacity: Some(s.capacity.into()),
            }),
        )
    };
    ComponentAggregateStats {
        type_: Some(kind),
        common_stats: Some(common),
        specific_stats: Some(specific),
        last_error: None,
    }
}

#[derive(Debug)]
struct Pending {
    at: Instant,
    action: PendingAction,
}

#[derive(Debug)]
enum PendingAction {
    Remove,
    FinishRebalance { previous: String },
}

#[derive(Debug, Default)]
struct ClusterState {
    topologies: BTreeMap<String, FakeTopology>,
    pending: BTreeMap<String, Pending>,
    leader: Option<String>,
    nodes: Vec<String>,
    supervisors: Vec<SupervisorSummary>,
    uploads: BTreeMap<String, (Vec<u8>, bool)>,
    counter: u64,
}

impl ClusterState {
    /// Applies delayed kills and rebalances whose wait has passed.
    fn advance(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let Some(p) = self.pending.remove(&name) else {
                continue;
            };
            match p.action {
                PendingAction::Remove => {
                    self.topologies.remove(&name);
                }
                PendingAction::FinishRebalance { previous } => {
                    if let Some(t) = self.topologies.get_mut(&name) {
                        t.status = previous;
                    }
                }
            }
        }
    }
}

/// A `StormTopology` with no components: what the fake answers to `getTopology`, and a submit
/// payload for tests (the fake does not look inside it).
pub fn empty_storm_topology() -> StormTopology {
    StormTopology::new(
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )
}

/// A registered supervisor at `host` with `slots` worker slots, `used` of them busy (id
/// `sup-<host>`, up for a minute).
pub fn fake_supervisor(host: &str, slots: i32, used: i32) -> SupervisorSummary {
    SupervisorSummary {
        host: host.into(),
        uptime_secs: 60,
        num_workers: slots,
        num_used_workers: used,
        supervisor_id: format!("sup-{host}"),
        version: Some("2.8.8".into()),
        total_resources: None,
        used_mem: None,
        used_cpu: None,
        fragmented_mem: None,
        fragmented_cpu: None,
        blacklisted: None,
        used_generic_resources: None,
    }
}

/// The shared state of a fake Storm cluster; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FakeCluster {
    state: Arc<Mutex<ClusterState>>,
}

impl FakeCluster {
    /// An empty cluster with one supervisor of four slots.
    pub fn new() -> Self {
        let c = Self::default();
        let mut supervisor = fake_supervisor("127.0.0.1", 4, 0);
        supervisor.uptime_secs = 3600;
        supervisor.supervisor_id = "fake-supervisor-0".into();
        c.lock().supervisors = vec![supervisor];
        c
    }

    fn lock(&self) -> MutexGuard<'_, ClusterState> {
        let mut g = self.state.lock().expect("fake cluster lock");
        g.advance();
        g
    }

    /// Adds or replaces a topology (keyed by name).
    pub fn put_topology(&self, topology: FakeTopology) {
        self.lock()
            .topologies
            .insert(topology.name.clone(), topology);
    }

    /// A copy of a topology.
    pub fn topology(&self, name: &str) -> Option<FakeTopology> {
        self.lock().topologies.get(name).cloned()
    }

    /// Changes a topology in place; returns false if it does not exist.
    pub fn update_topology(&self, name: &str, f: impl FnOnce(&mut FakeTopology)) -> bool {
        match self.lock().topologies.get_mut(name) {
            Some(t) => {
                f(t);
                true
            }
            None => false,
        }
    }

    /// Names of all topologies (including KILLED ones not yet removed).
    pub fn topology_names(&self) -> Vec<String> {
        self.lock().topologies.keys().cloned().collect()
    }

    /// Replaces the supervisors.
    pub fn set_supervisors(&self, supervisors: Vec<SupervisorSummary>) {
        self.lock().supervisors = supervisors;
    }

    /// Makes the node at `endpoint` (`host:port`) the leader; `None` means no leader is elected.
    pub fn set_leader(&self, endpoint: Option<&str>) {
        self.lock().leader = endpoint.map(str::to_string);
    }

    /// The leader's endpoint.
    pub fn leader(&self) -> Option<String> {
        self.lock().leader.clone()
    }

    /// The bytes uploaded to `location`, and whether `finishFileUpload` was called.
    pub fn upload(&self, location: &str) -> Option<(Vec<u8>, bool)> {
        self.lock().uploads.get(location).cloned()
    }
}

/// What a [`Fault`] does to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Wait before answering normally.
    Delay(Duration),
    /// Answer `TApplicationException(INTERNAL_ERROR)`.
    InternalError,
    /// Answer `TApplicationException(UNKNOWN_METHOD)` (a Storm older than the method).
    UnknownMethod,
    /// Close the connection without answering.
    Disconnect,
    /// Announce a reply frame of this many bytes, then close.
    OversizedFrame(u32),
    /// Send the frame header and half the reply, then close.
    CloseMidFrame,
    /// Send a reply whose method-name length prefix claims ~2 GiB inside a small frame.
    HostileLength,
}

/// A fault injected on one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Method it applies to; `None` for every method.
    pub method: Option<String>,
    /// What happens.
    pub kind: FaultKind,
    /// How many requests it hits before it expires; `None` for ever.
    pub times: Option<u32>,
}

impl Fault {
    /// A fault on every call of `method`.
    pub fn on(method: &str, kind: FaultKind) -> Self {
        Self {
            method: Some(method.to_string()),
            kind,
            times: None,
        }
    }

    /// A fault on every call.
    pub fn always(kind: FaultKind) -> Self {
        Self {
            method: None,
            kind,
            times: None,
        }
    }

    /// Limits the fault to the next `n` matching calls.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

#[derive(Debug, Default)]
struct NodeState {
    faults: Vec<Fault>,
    calls: Vec<String>,
    connections: usize,
}

#[derive(Debug)]
struct Node {
    endpoint: String,
    cluster: FakeCluster,
    state: Mutex<NodeState>,
}

impl Node {
    fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().expect("fake node lock")
    }

    fn take_fault(&self, method: &str) -> Option<FaultKind> {
        let mut st = self.lock();
        let idx = st
            .faults
            .iter()
            .position(|f| f.method.as_deref().is_none_or(|m| m == method))?;
        let f = &mut st.faults[idx];
        let kind = f.kind.clone();
        if let Some(n) = f.times.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.faults.remove(idx);
            }
        }
        Some(kind)
    }
}

/// One fake Nimbus node serving a [`FakeCluster`] on 127.0.0.1.
#[derive(Debug)]
pub struct FakeNimbus {
    addr: SocketAddr,
    node: Arc<Node>,
    task: JoinHandle<()>,
}

impl FakeNimbus {
    /// Starts a node in a new cluster and makes it the leader.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(0).await
    }

    /// Starts a node in a new cluster on 127.0.0.1:`port` (0 picks a free one) and makes it the leader.
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let cluster = FakeCluster::new();
        let n = Self::start_in_on(&cluster, port).await?;
        cluster.set_leader(Some(&n.endpoint()));
        Ok(n)
    }

    /// Starts a node in `cluster`; it leads only if the cluster had no leader yet.
    pub async fn start_in(cluster: &FakeCluster) -> std::io::Result<Self> {
        Self::start_in_on(cluster, 0).await
    }

    /// [`FakeNimbus::start_in`] on 127.0.0.1:`port` (0 picks a free one).
    pub async fn start_in_on(cluster: &FakeCluster, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let endpoint = addr.to_string();
        {
            let mut st = cluster.lock();
            st.nodes.push(endpoint.clone());
            if st.leader.is_none() {
                st.leader = Some(endpoint.clone());
            }
        }
        let node = Arc::new(Node {
            endpoint,
            cluster: cluster.clone(),
            state: Mutex::new(NodeState::default()),
        });
        let processor = Arc::new(NimbusSyncProcessor::new(Handler { node: node.clone() }));
        let task = tokio::spawn(accept_loop(listener, node.clone(), processor));
        Ok(Self { addr, node, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:port`, the form Nimbus reports in `getLeader`.
    pub fn endpoint(&self) -> String {
        self.node.endpoint.clone()
    }

    /// The cluster this node serves.
    pub fn cluster(&self) -> FakeCluster {
        self.node.cluster.clone()
    }

    /// Makes this node the leader.
    pub fn make_leader(&self) {
        self.node.cluster.set_leader(Some(&self.node.endpoint));
    }

    /// Adds a fault; the first matching fault wins.
    pub fn add_fault(&self, fault: Fault) {
        self.node.lock().faults.push(fault);
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.node.lock().faults.clear();
    }

    /// Method names of the requests received, in order.
    pub fn calls(&self) -> Vec<String> {
        self.node.lock().calls.clone()
    }

    /// How many requests for `method` were received.
    pub fn call_count(&self, method: &str) -> usize {
        self.node
            .lock()
            .calls
            .iter()
            .filter(|c| *c == method)
            .count()
    }

    /// Forgets the call log.
    pub fn clear_calls(&self) {
        self.node.lock().calls.clear();
    }

    /// TCP connections accepted so far (to observe connection reuse).
    pub fn connections_accepted(&self) -> usize {
        self.node.lock().connections
    }

    /// Stops the server and all its connections.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for FakeNimbus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Processor = NimbusSyncProcessor<Handler>;

async fn accept_loop(listener: TcpListener, node: Arc<Node>, processor: Arc<Processor>) {
    // Connection tasks live in this JoinSet: aborting the accept loop drops it and aborts them all.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                node.lock().connections += 1;
                conns.spawn(serve(sock, node.clone(), processor.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn exception_reply(name: &str, seq: i32, kind: ApplicationErrorKind, message: String) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    {
        let mut o = TBinaryOutputProtocol::new(&mut out, true);
        let _ = o.write_message_begin(&TMessageIdentifier::new(name, TMessageType::Exception, seq));
        let _ = thrift::Error::write_application_error_to_out_protocol(
            &ApplicationError::new(kind, message),
            &mut o,
        );
        let _ = o.write_message_end();
    }
    set_len(&mut out);
    out
}

fn set_len(out: &mut [u8]) {
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
}

async fn serve(mut sock: TcpStream, node: Arc<Node>, processor: Arc<Processor>) {
    let _ = sock.set_nodelay(true);
    loop {
        // Like Storm's THsHaServer: frames above max_buffer_size close the connection.
        let Ok(frame) = codec::read_frame(&mut sock, MAX_REQUEST_FRAME, "client").await else {
            return;
        };
        let Some(msg) = codec::peek_message(&frame) else {
            return;
        };
        node.lock().calls.push(msg.name.clone());
        let reply = match node.take_fault(&msg.name) {
            Some(FaultKind::Delay(d)) => {
                tokio::time::sleep(d).await;
                process(&processor, &frame)
            }
            Some(FaultKind::InternalError) => exception_reply(
                &msg.name,
                msg.sequence_number,
                ApplicationErrorKind::InternalError,
                format!("Internal error processing {}", msg.name),
            ),
            Some(FaultKind::UnknownMethod) => exception_reply(
                &msg.name,
                msg.sequence_number,
                ApplicationErrorKind::UnknownMethod,
                format!("Invalid method name: '{}'", msg.name),
            ),
            Some(FaultKind::Disconnect) => return,
            Some(FaultKind::OversizedFrame(n)) => {
                let _ = sock.write_all(&n.to_be_bytes()).await;
                let _ = sock.write_all(&[0u8; 64]).await;
                return;
            }
            Some(FaultKind::CloseMidFrame) => {
                let full = process(&processor, &frame);
                let _ = sock.write_all(&full[..4 + (full.len() - 4) / 2]).await;
                return;
            }
            Some(FaultKind::HostileLength) => {
                let mut out = vec![0u8; 4];
                out.extend_from_slice(&(0x8001_0000u32 | 2).to_be_bytes());
                out.extend_from_slice(&i32::MAX.to_be_bytes());
                out.extend_from_slice(b"getLeader");
                set_len(&mut out);
                out
            }
            None => process(&processor, &frame),
        };
        if sock.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn process(processor: &Processor, frame: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    {
        let mut i = SliceInputProtocol::new(frame);
        let mut o = TBinaryOutputProtocol::new(&mut out, true);
        let _ = processor.process(&mut i, &mut o);
    }
    set_len(&mut out);
    out
}

struct Handler {
    node: Arc<Node>,
}

fn internal(method: &str) -> thrift::Error {
    thrift::Error::Application(ApplicationError::new(
        ApplicationErrorKind::InternalError,
        format!("Internal error processing {method}"),
    ))
}

fn not_alive(msg: String) -> thrift::Error {
    thrift::Error::User(Box::new(NotAliveException { msg }))
}

fn invalid(msg: String) -> thrift::Error {
    thrift::Error::User(Box::new(InvalidTopologyException { msg }))
}

impl Handler {
    fn cluster(&self) -> MutexGuard<'_, ClusterState> {
        self.node.cluster.lock()
    }

    /// Storm's `assertIsLeader`: a RuntimeException, i.e. INTERNAL_ERROR on the wire.
    fn leader_state(&self, method: &str) -> thrift::Result<MutexGuard<'_, ClusterState>> {
        let st = self.cluster();
        if st.leader.as_deref() != Some(self.node.endpoint.as_str()) {
            return Err(internal(method));
        }
        Ok(st)
    }

    fn by_id<T>(&self, id: &str, f: impl FnOnce(&FakeTopology) -> T) -> thrift::Result<T> {
        let st = self.cluster();
        st.topologies
            .values()
            .find(|t| t.id == id)
            .map(f)
            .ok_or_else(|| not_alive(id.to_string()))
    }

    fn by_name<T>(&self, name: &str, f: impl FnOnce(&FakeTopology) -> T) -> thrift::Result<T> {
        let st = self.cluster();
        st.topologies
            .get(name)
            .map(f)
            .ok_or_else(|| not_alive(format!("{name} is not alive")))
    }

    fn transition(&self, method: &str, name: &str, to: &str) -> thrift::Result<()> {
        let mut st = self.leader_state(method)?;
        let t = st
            .topologies
            .get_mut(name)
            .ok_or_else(|| not_alive(format!("{name} is not alive")))?;
        match t.status.as_str() {
            "ACTIVE" | "INACTIVE" => {
                t.status = to.to_string();
                Ok(())
            }
            _ => Err(internal(method)),
        }
    }

    fn wait_or_timeout(t: &FakeTopology, wait: Option<i32>) -> Duration {
        let secs = wait.map(f64::from).unwrap_or_else(|| {
            t.conf
                .get("topology.message.timeout.secs")
                .and_then(|v| v.as_f64())
                .unwrap_or(30.0)
        });
        Duration::from_secs_f64(secs.max(0.0))
    }

    fn submit(
        &self,
        name: String,
        location: String,
        json_conf: String,
        opts: Option<SubmitOptions>,
    ) -> thrift::Result<()> {
        let mut st = self.leader_state("submitTopologyWithOpts")?;
        if st.topologies.contains_key(&name) {
            return Err(thrift::Error::User(Box::new(AlreadyAliveException {
                msg: format!("{name} is already alive"),
            })));
        }
        if name.is_empty() || name.contains(['/', '.', ':', '\\']) {
            return Err(invalid(format!("Topology name {name} is not valid")));
        }
        let conf = match serde_json::from_str::<serde_json::Value>(&json_conf) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(invalid("Topology conf is not json-serializable".into())),
        };
        if !matches!(st.uploads.get(&location), Some((_, true))) {
            return Err(internal("submitTopologyWithOpts"));
        }
        st.counter += 1;
        let mut t = FakeTopology::new(&name);
        t.id = format!("{name}-{}-1700000000", st.counter);
        t.uptime_secs = 0;
        t.conf = conf;
        if opts.is_some_and(|o| o.initial_status == TopologyInitialStatus::INACTIVE) {
            t.status = "INACTIVE".into();
        }
        st.topologies.insert(name, t);
        Ok(())
    }
}

impl NimbusSyncHandler for Handler {
    fn handle_submit_topology(
        &self,
        name: String,
        loc: String,
        conf: String,
        _t: StormTopology,
    ) -> thrift::Result<()> {
        self.submit(name, loc, conf, None)
    }

    fn handle_submit_topology_with_opts(
        &self,
        name: String,
        loc: String,
        conf: String,
        _t: StormTopology,
        options: SubmitOptions,
    ) -> thrift::Result<()> {
        self.submit(name, loc, conf, Some(options))
    }

    fn handle_kill_topology(&self, name: String) -> thrift::Result<()> {
        self.handle_kill_topology_with_opts(name, KillOptions::default())
    }

    fn handle_kill_topology_with_opts(
        &self,
        name: String,
        options: KillOptions,
    ) -> thrift::Result<()> {
        let mut st = self.leader_state("killTopologyWithOpts")?;
        let t = st
            .topologies
            .get_mut(&name)
            .ok_or_else(|| not_alive(format!("{name} is not alive")))?;
        let wait = Self::wait_or_timeout(t, options.wait_secs);
        t.status = "KILLED".into();
        st.pending.insert(
            name,
            Pending {
                at: Instant::now() + wait,
                action: PendingAction::Remove,
            },
        );
        st.advance();
        Ok(())
    }

    fn handle_activate(&self, name: String) -> thrift::Result<()> {
        self.transition("activate", &name, "ACTIVE")
    }

    fn handle_deactivate(&self, name: String) -> thrift::Result<()> {
        self.transition("deactivate", &name, "INACTIVE")
    }

    fn handle_rebalance(&self, name: String, options: RebalanceOptions) -> thrift::Result<()> {
        let mut st = self.leader_state("rebalance")?;
        let t = st
            .topologies
            .get_mut(&name)
            .ok_or_else(|| not_alive(format!("{name} is not alive")))?;
        if !matches!(t.status.as_str(), "ACTIVE" | "INACTIVE") {
            return Err(internal("rebalance"));
        }
        let executors = options.num_executors.clone().unwrap_or_default();
        for (comp, n) in &executors {
            if !t.spouts.contains_key(comp) && !t.bolts.contains_key(comp) {
                let valid: Vec<&String> = t.spouts.keys().chain(t.bolts.keys()).collect();
                return Err(invalid(format!(
                    "Invalid component {comp} for topology {name}, valid values are {}",
                    valid
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                )));
            }
            if *n <= 0 {
                return Err(invalid("Number of executors must be greater than 0".into()));
            }
        }
        if let Some(json) = &options.topology_conf_overrides {
            match serde_json::from_str::<serde_json::Value>(json) {
                Ok(serde_json::Value::Object(m)) => t.conf.extend(m),
                _ => return Err(internal("rebalance")),
            }
        }
        if let Some(w) = options.num_workers {
            t.num_workers = w;
        }
        for (comp, n) in executors {
            if let Some(c) = t.spouts.get_mut(&comp).or_else(|| t.bolts.get_mut(&comp)) {
                c.executors = n.min(c.tasks.max(1));
            }
        }
        let wait = Self::wait_or_timeout(t, options.wait_secs);
        let previous = std::mem::replace(&mut t.status, "REBALANCING".into());
        st.pending.insert(
            name,
            Pending {
                at: Instant::now() + wait,
                action: PendingAction::FinishRebalance { previous },
            },
        );
        st.advance();
        Ok(())
    }

    fn handle_begin_file_upload(&self) -> thrift::Result<String> {
        let mut st = self.leader_state("beginFileUpload")?;
        st.counter += 1;
        let loc = format!("/storm/nimbus/inbox/stormjar-{}.jar", st.counter);
        st.uploads.insert(loc.clone(), (Vec::new(), false));
        Ok(loc)
    }

    fn handle_upload_chunk(&self, location: String, chunk: Vec<u8>) -> thrift::Result<()> {
        let mut st = self.cluster();
        match st.uploads.get_mut(&location) {
            Some((data, false)) => {
                data.extend_from_slice(&chunk);
                Ok(())
            }
            _ => Err(internal("uploadChunk")),
        }
    }

    fn handle_finish_file_upload(&self, location: String) -> thrift::Result<()> {
        let mut st = self.cluster();
        match st.uploads.get_mut(&location) {
            Some((_, done @ false)) => {
                *done = true;
                Ok(())
            }
            _ => Err(internal("finishFileUpload")),
        }
    }

    fn handle_get_nimbus_conf(&self) -> thrift::Result<String> {
        Ok(r#"{"nimbus.thrift.port":6627,"nimbus.thrift.max_buffer_size":1048576}"#.into())
    }

    fn handle_get_cluster_info(&self) -> thrift::Result<ClusterSummary> {
        let st = self.cluster();
        let nimbuses = st
            .nodes
            .iter()
            .map(|n| {
                let (host, port) = n.rsplit_once(':').unwrap_or((n, "0"));
                NimbusSummary::new(
                    host.to_string(),
                    port.parse().unwrap_or(0),
                    3600,
                    st.leader.as_deref() == Some(n.as_str()),
                    "2.8.8".to_string(),
                    None,
                )
            })
            .collect();
        Ok(ClusterSummary::new(
            st.supervisors.clone(),
            st.topologies.values().map(FakeTopology::summary).collect(),
            nimbuses,
        ))
    }

    fn handle_get_topology_summaries(&self) -> thrift::Result<Vec<TopologySummary>> {
        Ok(self
            .cluster()
            .topologies
            .values()
            .map(FakeTopology::summary)
            .collect())
    }

    fn handle_get_topology_summary_by_name(&self, name: String) -> thrift::Result<TopologySummary> {
        self.by_name(&name, FakeTopology::summary)
    }

    fn handle_get_topology_summary(&self, id: String) -> thrift::Result<TopologySummary> {
        self.by_id(&id, FakeTopology::summary)
            .map_err(|_| not_alive(format!("{id} is not alive")))
    }

    fn handle_get_leader(&self) -> thrift::Result<NimbusSummary> {
        let st = self.cluster();
        let Some(leader) = st.leader.clone() else {
            return Err(thrift::Error::Application(ApplicationError::new(
                ApplicationErrorKind::MissingResult,
                "getLeader failed: unknown result",
            )));
        };
        let (host, port) = leader.rsplit_once(':').unwrap_or((&leader, "0"));
        Ok(NimbusSummary::new(
            host.to_string(),
            port.parse().unwrap_or(0),
            3600,
            true,
            "2.8.8".to_string(),
            None,
        ))
    }

    fn handle_is_topology_name_allowed(&self, name: String) -> thrift::Result<bool> {
        Ok(!name.is_empty()
            && !name.contains(['/', '.', ':', '\\'])
            && !self.cluster().topologies.contains_key(&name))
    }

    fn handle_get_topology_info_by_name(&self, name: String) -> thrift::Result<TopologyInfo> {
        self.by_name(&name, FakeTopology::info)
    }

    fn handle_get_topology_info(&self, id: String) -> thrift::Result<TopologyInfo> {
        self.by_id(&id, FakeTopology::info)
    }

    fn handle_get_topology_info_by_name_with_opts(
        &self,
        name: String,
        _o: GetInfoOptions,
    ) -> thrift::Result<TopologyInfo> {
        self.by_name(&name, FakeTopology::info)
    }

    fn handle_get_topology_info_with_opts(
        &self,
        id: String,
        _o: GetInfoOptions,
    ) -> thrift::Result<TopologyInfo> {
        self.by_id(&id, FakeTopology::info)
    }

    fn handle_get_topology_page_info(
        &self,
        id: String,
        window: String,
        sys: bool,
    ) -> thrift::Result<TopologyPageInfo> {
        self.by_id(&id, |t| t.page_info(&window, sys))
    }

    fn handle_get_component_page_info(
        &self,
        topology_id: String,
        component_id: String,
        window: String,
        _sys: bool,
    ) -> thrift::Result<ComponentPageInfo> {
        self.by_id(&topology_id, |t| {
            let spout = t.spouts.contains_key(&component_id);
            let comp = t
                .spouts
                .get(&component_id)
                .or_else(|| t.bolts.get(&component_id));
            let mut p = ComponentPageInfo::new(
                component_id.clone(),
                if spout {
                    ComponentType::SPOUT
                } else {
                    ComponentType::BOLT
                },
                t.id.clone(),
                t.name.clone(),
                comp.map(|c| c.executors),
                comp.map(|c| c.tasks),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                t.status.clone(),
                None,
            );
            if let Some(c) = comp {
                let s = c.windows.get(&window).cloned().unwrap_or_default();
                p.window_to_stats =
                    Some([(window.clone(), component_aggregate(c, &s, spout))].into());
            }
            p
        })
    }

    fn handle_get_topology_conf(&self, id: String) -> thrift::Result<String> {
        self.by_id(&id, |t| {
            serde_json::Value::Object(t.conf.clone()).to_string()
        })
    }

    fn handle_get_topology(&self, id: String) -> thrift::Result<StormTopology> {
        self.by_id(&id, |_| empty_storm_topology())
    }

    fn handle_get_user_topology(&self, id: String) -> thrift::Result<StormTopology> {
        self.handle_get_topology(id)
    }
}
