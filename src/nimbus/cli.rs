//! `storm-controller nimbus ...`: a Storm command line over the same client the operator uses.
//!
//! Wiring (in `main.rs`): add a variant `Nimbus(storm_controller::nimbus::cli::NimbusCommand)` to the
//! top-level subcommand enum and call `storm_controller::nimbus::cli::run(cmd).await` for it; `run`
//! prints the result and returns exit code 1 with a one-line error when a call fails.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::storm::{ClusterSummary, ComponentAggregateStats, TopologyPageInfo, TopologySummary};
use super::{
    Nimbus, NimbusConfig, NimbusError, RebalanceRequest, ThriftNimbus, WINDOW_10_MIN, parse_seeds,
};
use crate::stats::{TopologyMetrics, topology_metrics};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// JSON with stable camelCase field names.
    Json,
}

/// `storm-controller nimbus`: talk to a Storm cluster's Nimbus over Thrift.
#[derive(Args, Debug, Clone)]
pub struct NimbusCommand {
    /// Nimbus seeds, `host:port[,host:port]` (port defaults to 6627).
    #[arg(long, env = "STORM_CONTROLLER_NIMBUS", value_name = "HOST:PORT[,..]")]
    pub nimbus: String,
    /// Output format.
    #[arg(short = 'o', long, env = "STORM_CONTROLLER_NIMBUS_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Deadline of one Nimbus call, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, env = "STORM_CONTROLLER_NIMBUS_CALL_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub call_timeout: Duration,
    /// Largest Nimbus response accepted, in bytes.
    #[arg(long, env = "STORM_CONTROLLER_NIMBUS_MAX_RESPONSE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// What to do.
    #[command(subcommand)]
    pub command: NimbusSubcommand,
}

/// The `nimbus` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum NimbusSubcommand {
    /// Nimbus nodes, supervisors and topologies.
    Cluster,
    /// All topologies.
    Topologies,
    /// One topology with its components (10-minute window).
    Topology {
        /// Topology name.
        name: String,
    },
    /// Derived metrics of one topology (pending tuples, latency, capacity, rates).
    Metrics {
        /// Topology name.
        name: String,
    },
    /// Resume a topology's spouts.
    Activate {
        /// Topology name.
        name: String,
    },
    /// Pause a topology's spouts.
    Deactivate {
        /// Topology name.
        name: String,
    },
    /// Kill a topology.
    Kill {
        /// Topology name.
        name: String,
        /// Seconds to wait before killing (default: the topology's message timeout).
        #[arg(long)]
        wait: Option<u32>,
    },
    /// Change workers or executors of a running topology.
    Rebalance {
        /// Topology name.
        name: String,
        /// New number of workers.
        #[arg(long)]
        workers: Option<u32>,
        /// New executor count of a component, `component=N`; repeatable.
        #[arg(long = "executors", value_name = "COMPONENT=N", value_parser = parse_executors)]
        executors: Vec<(String, u32)>,
        /// Seconds to wait before rebalancing (default: the topology's message timeout).
        #[arg(long)]
        wait: Option<u32>,
    },
}

/// Parses `500ms`, `10s`, `2m` or a plain number of seconds (for clap `value_parser`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

fn parse_executors(s: &str) -> Result<(String, u32), String> {
    let (comp, n) = s
        .split_once('=')
        .ok_or_else(|| format!("expected COMPONENT=N, got {s:?}"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("bad executor count in {s:?}"))?;
    if comp.trim().is_empty() || n == 0 {
        return Err(format!("expected COMPONENT=N with N > 0, got {s:?}"));
    }
    Ok((comp.trim().to_string(), n))
}

/// One topology as printed by `topologies` and `topology`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TopologyView {
    id: String,
    name: String,
    status: String,
    workers: i32,
    executors: i32,
    tasks: i32,
    uptime_secs: i32,
    storm_version: Option<String>,
    topology_version: Option<String>,
}

impl From<&TopologySummary> for TopologyView {
    fn from(t: &TopologySummary) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            status: t.status.clone(),
            workers: t.num_workers,
            executors: t.num_executors,
            tasks: t.num_tasks,
            uptime_secs: t.uptime_secs,
            storm_version: t.storm_version.clone(),
            topology_version: t.topology_version.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NimbusView {
    host: String,
    port: i32,
    is_leader: bool,
    version: String,
    uptime_secs: i32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SupervisorView {
    id: String,
    host: String,
    slots: i32,
    used_slots: i32,
    uptime_secs: i32,
    version: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterView {
    nimbuses: Vec<NimbusView>,
    supervisors: Vec<SupervisorView>,
    topologies: Vec<TopologyView>,
}

impl From<&ClusterSummary> for ClusterView {
    fn from(c: &ClusterSummary) -> Self {
        Self {
            nimbuses: c
                .nimbuses
                .iter()
                .map(|n| NimbusView {
                    host: n.host.clone(),
                    port: n.port,
                    is_leader: n.is_leader,
                    version: n.version.clone(),
                    uptime_secs: n.uptime_secs,
                })
                .collect(),
            supervisors: c
                .supervisors
                .iter()
                .map(|s| SupervisorView {
                    id: s.supervisor_id.clone(),
                    host: s.host.clone(),
                    slots: s.num_workers,
                    used_slots: s.num_used_workers,
                    uptime_secs: s.uptime_secs,
                    version: s.version.clone(),
                })
                .collect(),
            topologies: c.topologies.iter().map(TopologyView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentView {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    executors: i32,
    tasks: i32,
    emitted: i64,
    acked: i64,
    failed: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TopologyDetailView {
    #[serde(flatten)]
    topology: TopologyView,
    window: String,
    components: Vec<ComponentView>,
}

fn components(page: &TopologyPageInfo) -> Vec<ComponentView> {
    let view = |kind, (id, c): (&String, &ComponentAggregateStats)| {
        let s = c.common_stats.clone().unwrap_or_default();
        ComponentView {
            id: id.clone(),
            kind,
            executors: s.num_executors.unwrap_or(0),
            tasks: s.num_tasks.unwrap_or(0),
            emitted: s.emitted.unwrap_or(0),
            acked: s.acked.unwrap_or(0),
            failed: s.failed.unwrap_or(0),
        }
    };
    let spouts = page
        .id_to_spout_agg_stats
        .iter()
        .flatten()
        .map(|c| view("spout", c));
    let bolts = page
        .id_to_bolt_agg_stats
        .iter()
        .flatten()
        .map(|c| view("bolt", c));
    spouts.chain(bolts).collect()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionView<'a> {
    topology: &'a str,
    action: &'a str,
    ok: bool,
}

/// Prints rows as aligned columns.
fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn io_err(e: std::io::Error) -> NimbusError {
    NimbusError::InvalidArgument(format!("writing output: {e}"))
}

fn json(out: &mut dyn Write, v: &impl Serialize) -> Result<(), NimbusError> {
    serde_json::to_writer_pretty(&mut *out, v)
        .map_err(|e| NimbusError::InvalidArgument(e.to_string()))?;
    writeln!(out).map_err(io_err)
}

fn topology_rows(ts: &[TopologyView]) -> Vec<Vec<String>> {
    ts.iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.id.clone(),
                t.status.clone(),
                t.workers.to_string(),
                t.executors.to_string(),
                t.tasks.to_string(),
                t.uptime_secs.to_string(),
                t.topology_version.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

const TOPOLOGY_HEADER: [&str; 8] = [
    "NAME",
    "ID",
    "STATUS",
    "WORKERS",
    "EXECUTORS",
    "TASKS",
    "UPTIME(S)",
    "VERSION",
];

fn fmt_f(v: f64) -> String {
    format!("{v:.3}")
}

/// The client described by the command's flags.
pub fn client(cmd: &NimbusCommand) -> Result<ThriftNimbus, NimbusError> {
    let mut config = NimbusConfig::new(parse_seeds(&cmd.nimbus)?);
    config.call_timeout = cmd.call_timeout;
    config.max_response_bytes = cmd.max_response_bytes;
    ThriftNimbus::new(config)
}

/// Runs the command against a fresh client and writes the result to `out`.
pub async fn execute(cmd: &NimbusCommand, out: &mut dyn Write) -> Result<(), NimbusError> {
    let nimbus = client(cmd)?;
    execute_with(&nimbus, cmd, out).await
}

/// Runs the command against `nimbus` and writes the result to `out`.
pub async fn execute_with(
    nimbus: &dyn Nimbus,
    cmd: &NimbusCommand,
    out: &mut dyn Write,
) -> Result<(), NimbusError> {
    let as_json = cmd.output == OutputFormat::Json;
    match &cmd.command {
        NimbusSubcommand::Cluster => {
            let view = ClusterView::from(&nimbus.cluster_summary().await?);
            if as_json {
                return json(out, &view);
            }
            let nimbus_rows: Vec<Vec<String>> = view
                .nimbuses
                .iter()
                .map(|n| {
                    vec![
                        n.host.clone(),
                        n.port.to_string(),
                        if n.is_leader {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        n.version.clone(),
                        n.uptime_secs.to_string(),
                    ]
                })
                .collect();
            table(
                out,
                &["NIMBUS", "PORT", "LEADER", "VERSION", "UPTIME(S)"],
                &nimbus_rows,
            )
            .map_err(io_err)?;
            writeln!(out).map_err(io_err)?;
            let sup_rows: Vec<Vec<String>> = view
                .supervisors
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        s.host.clone(),
                        s.slots.to_string(),
                        s.used_slots.to_string(),
                        s.uptime_secs.to_string(),
                    ]
                })
                .collect();
            table(
                out,
                &["SUPERVISOR", "HOST", "SLOTS", "USED", "UPTIME(S)"],
                &sup_rows,
            )
            .map_err(io_err)?;
            writeln!(out).map_err(io_err)?;
            table(out, &TOPOLOGY_HEADER, &topology_rows(&view.topologies)).map_err(io_err)
        }
        NimbusSubcommand::Topologies => {
            let ts: Vec<TopologyView> = nimbus
                .topologies()
                .await?
                .iter()
                .map(TopologyView::from)
                .collect();
            if as_json {
                return json(out, &ts);
            }
            table(out, &TOPOLOGY_HEADER, &topology_rows(&ts)).map_err(io_err)
        }
        NimbusSubcommand::Topology { name } => {
            let summary = nimbus.topology_summary(name).await?;
            let page = nimbus
                .topology_page_info(&summary.id, WINDOW_10_MIN)
                .await?;
            let view = TopologyDetailView {
                topology: TopologyView::from(&summary),
                window: WINDOW_10_MIN.to_string(),
                components: components(&page),
            };
            if as_json {
                return json(out, &view);
            }
            table(
                out,
                &TOPOLOGY_HEADER,
                &topology_rows(std::slice::from_ref(&view.topology)),
            )
            .map_err(io_err)?;
            writeln!(out).map_err(io_err)?;
            let rows: Vec<Vec<String>> = view
                .components
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.kind.to_string(),
                        c.executors.to_string(),
                        c.tasks.to_string(),
                        c.emitted.to_string(),
                        c.acked.to_string(),
                        c.failed.to_string(),
                    ]
                })
                .collect();
            table(
                out,
                &[
                    "COMPONENT",
                    "TYPE",
                    "EXECUTORS",
                    "TASKS",
                    "EMITTED(10M)",
                    "ACKED(10M)",
                    "FAILED(10M)",
                ],
                &rows,
            )
            .map_err(io_err)
        }
        NimbusSubcommand::Metrics { name } => {
            let summary = nimbus.topology_summary(name).await?;
            let page = nimbus
                .topology_page_info(&summary.id, WINDOW_10_MIN)
                .await?;
            let m: TopologyMetrics = topology_metrics(&page, Timestamp::now());
            if as_json {
                return json(out, &m);
            }
            let rows = vec![
                vec![
                    "topology".into(),
                    format!("{} ({})", m.topology_name, m.topology_id),
                ],
                vec!["status".into(), m.status.clone()],
                vec!["sampleTime".into(), m.sample_time.to_string()],
                vec!["windowSecs".into(), m.window_secs.to_string()],
                vec!["pendingTuples".into(), fmt_f(m.pending_tuples)],
                vec![
                    "spoutPendingRatio".into(),
                    m.spout_pending_ratio
                        .map(fmt_f)
                        .unwrap_or_else(|| "-".into()),
                ],
                vec!["completeLatencyMs".into(), fmt_f(m.complete_latency_ms)],
                vec!["capacity".into(), fmt_f(m.capacity)],
                vec!["ackedPerSecond".into(), fmt_f(m.acked_per_second)],
                vec!["failedPerSecond".into(), fmt_f(m.failed_per_second)],
                vec!["emittedPerSecond".into(), fmt_f(m.emitted_per_second)],
            ];
            table(out, &["METRIC", "VALUE"], &rows).map_err(io_err)?;
            writeln!(out).map_err(io_err)?;
            let rows: Vec<Vec<String>> = m
                .components
                .iter()
                .map(|c| vec![c.id.clone(), fmt_f(c.capacity), fmt_f(c.execute_latency_ms)])
                .collect();
            table(out, &["BOLT", "CAPACITY", "EXECUTE-LATENCY(MS)"], &rows).map_err(io_err)
        }
        NimbusSubcommand::Activate { name } => {
            nimbus.activate(name).await?;
            action(out, as_json, name, "activate", "activated")
        }
        NimbusSubcommand::Deactivate { name } => {
            nimbus.deactivate(name).await?;
            action(out, as_json, name, "deactivate", "deactivated")
        }
        NimbusSubcommand::Kill { name, wait } => {
            nimbus.kill(name, *wait).await?;
            action(out, as_json, name, "kill", "killed")
        }
        NimbusSubcommand::Rebalance {
            name,
            workers,
            executors,
            wait,
        } => {
            let request = RebalanceRequest {
                wait_secs: *wait,
                num_workers: *workers,
                num_executors: executors.iter().cloned().collect(),
                conf_overrides: None,
            };
            nimbus.rebalance(name, &request).await?;
            action(out, as_json, name, "rebalance", "rebalancing")
        }
    }
}

fn action(
    out: &mut dyn Write,
    as_json: bool,
    name: &str,
    action: &str,
    done: &str,
) -> Result<(), NimbusError> {
    if as_json {
        return json(
            out,
            &ActionView {
                topology: name,
                action,
                ok: true,
            },
        );
    }
    writeln!(out, "topology {name} {done}").map_err(io_err)
}

/// Runs the command, printing to stdout; on failure prints `error: ...` on one line to stderr and
/// returns exit code 1.
pub async fn run(cmd: NimbusCommand) -> ExitCode {
    let mut buf = Vec::new();
    match execute(&cmd, &mut buf).await {
        Ok(()) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(&buf).and_then(|_| stdout.flush()).is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_executors_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert_eq!(parse_executors("split=4"), Ok(("split".into(), 4)));
        assert!(parse_executors("split").is_err());
        assert!(parse_executors("split=0").is_err());
    }
}
