//! StormTopology reconciler in steady state: Nimbus calls and Kubernetes API writes per minute
//! with 1, 100 and 1000 topologies.
//!
//! In one process: kubesim as the Kubernetes API, a fake Nimbus (real Thrift on 127.0.0.1) that
//! runs N topologies, an external StormCluster pointing at it, N StormTopology objects whose
//! version matches what runs, and the controllers of `storm-controller run` with the production
//! defaults (resync 30 s, Nimbus poll 30 s). After every topology reports Running, it counts over
//! one measured window: Nimbus calls by method (the collector's `getClusterInfo` +
//! `getTopologyPageInfo`, anything else is the reconciler's own), Kubernetes writes by kind, and
//! reconciles.
//!
//! `cargo bench --bench topology` (`BENCH_SIZES=1,100`, `BENCH_WINDOW_SECS=60`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use storm_controller::clusters::Clusters;
use storm_controller::controller::{self, Context, Settings};
use storm_controller::crd::topology::TopologyPhase;
use storm_controller::crd::{StormCluster, StormTopology};
use storm_controller::kubesim::KubeSim;
use storm_controller::metrics::{BuildInfo, Metrics};
use storm_controller::nimbus::fake::{FakeComponent, FakeComponentStats, FakeNimbus, FakeTopology};
use storm_controller::stats::CollectorConfig;
use tokio_util::sync::CancellationToken;

const NS: &str = "bench";

fn stats() -> FakeComponentStats {
    FakeComponentStats {
        emitted: 600_000,
        acked: 600_000,
        complete_latency_ms: 12.0,
        capacity: 0.4,
        executed: 600_000,
        ..FakeComponentStats::default()
    }
}

fn topology(i: usize) -> StormTopology {
    let yaml = format!(
        "apiVersion: storm.apache.org/v1alpha1\nkind: StormTopology\nmetadata: {{name: t-{i}, namespace: {NS}}}\nspec:\n  clusterRef: {{name: storm}}\n  jar: {{url: 'https://repo.example.com/t.jar'}}\n  mainClass: com.example.T\n  workers: 2\n  version: '1.0.0'\n"
    );
    serde_saphyr::from_str(&yaml).expect("bench topology parses")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1, 100, 1000]);
    let window = Duration::from_secs(
        std::env::var("BENCH_WINDOW_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "StormTopology reconciler, steady state (resync 30 s, Nimbus poll 30 s, window {} s)",
        window.as_secs()
    );
    println!(
        "| topologies | converged in | Nimbus calls/min (collector) | Nimbus calls/min (reconciler) | API writes/min | reconciles/min |"
    );
    println!("|---|---|---|---|---|---|");
    for &n in &sizes {
        runtime.block_on(run(n, window));
    }
}

async fn run(n: usize, window: Duration) {
    let sim = KubeSim::start().await;
    let fake = FakeNimbus::start().await.expect("fake nimbus");
    for i in 0..n {
        let mut t = FakeTopology::new(&format!("t-{i}"))
            .with_spout("spout", FakeComponent::new(2, 4, stats()))
            .with_bolt("split", FakeComponent::new(4, 8, stats()))
            .with_conf("topology.version", serde_json::json!("1.0.0"));
        t.num_workers = 2;
        t.id = format!("t-{i}-{}-1700000000", i + 1);
        fake.cluster().put_topology(t);
    }
    let cluster_yaml = format!(
        "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {{name: storm, namespace: {NS}}}\nspec:\n  image: apache/storm:2.8.1\n  external: {{nimbusSeeds: ['{}']}}\n",
        fake.endpoint()
    );
    let cluster: StormCluster = serde_saphyr::from_str(&cluster_yaml).expect("cluster parses");
    Api::<StormCluster>::namespaced(sim.client(), NS)
        .create(&PostParams::default(), &cluster)
        .await
        .expect("create cluster");
    let topologies: Api<StormTopology> = Api::namespaced(sim.client(), NS);
    for i in 0..n {
        topologies
            .create(&PostParams::default(), &topology(i))
            .await
            .expect("create topology");
    }

    let shutdown = CancellationToken::new();
    let clusters = Arc::new(Clusters::thrift(
        CollectorConfig::default(),
        shutdown.child_token(),
    ));
    let metrics = Arc::new(Metrics::new(&BuildInfo::current()));
    let ctx = Arc::new(Context::new(
        sim.client(),
        clusters,
        Arc::clone(&metrics),
        Some("bench".into()),
        Settings::default(),
    ));
    let (_, leading) = tokio::sync::watch::channel(true);
    let started = Instant::now();
    let task = tokio::spawn(controller::run(Arc::clone(&ctx), leading, shutdown.clone()));

    let deadline = started + Duration::from_secs(600);
    loop {
        let running = sim
            .list::<StormTopology>(Some(NS))
            .iter()
            .filter(|t| {
                t.status.as_ref().and_then(|s| s.phase) == Some(TopologyPhase::Running)
                    && t.status.as_ref().is_some_and(|s| s.metrics.is_some())
            })
            .count();
        if running == n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let converged = started.elapsed();
    // One more poll and resync so that everything written at convergence has settled.
    tokio::time::sleep(Duration::from_secs(35)).await;

    sim.clear_requests();
    fake.clear_calls();
    let reconciles_before = reconciles(&metrics);
    tokio::time::sleep(window).await;
    let per_min = |count: usize| count as f64 * 60.0 / window.as_secs_f64();
    let calls = fake.calls();
    let mut by_method: BTreeMap<String, usize> = BTreeMap::new();
    for c in &calls {
        *by_method.entry(c.clone()).or_default() += 1;
    }
    let collector: usize = ["getClusterInfo", "getTopologyPageInfo"]
        .iter()
        .map(|m| by_method.get(*m).copied().unwrap_or(0))
        .sum();
    let own = calls.len() - collector;
    let writes = sim.writes();
    let reconciles = reconciles(&metrics) - reconciles_before;
    println!(
        "| {n} | {:.1} s | {:.0} | {:.0} | {:.0} | {:.0} |",
        converged.as_secs_f64(),
        per_min(collector),
        per_min(own),
        per_min(writes.len()),
        per_min(reconciles as usize),
    );
    if std::env::var("BENCH_VERBOSE").is_ok() {
        println!("  Nimbus calls by method: {by_method:?}");
        for w in writes.iter().take(20) {
            println!("  write: {} {}", w.method, w.path);
        }
    }
    shutdown.cancel();
    let _ = task.await;
    fake.shutdown().await;
    sim.shutdown().await;
}

/// Reconciles of the StormTopology controller so far, from the process metrics.
fn reconciles(metrics: &Metrics) -> u64 {
    let text = metrics.encode().unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("storm_controller_reconcile_total")
                && l.contains("controller=\"stormtopology\"")
        })
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
