//! `cargo bench --bench nimbus`: getTopologyPageInfo throughput and latency against the fake Nimbus on
//! loopback (1 and 16 concurrent callers), and the collector's Nimbus calls per poll for 1, 100 and 1000
//! topologies. Plain `main` (no harness); every loop is bounded in count and time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use storm_controller::nimbus::fake::{FakeComponent, FakeComponentStats, FakeNimbus, FakeTopology};
use storm_controller::nimbus::{Nimbus, NimbusConfig, ThriftNimbus};
use storm_controller::stats::{ClusterSnapshot, CollectorConfig, poll_once};

const TIME_CAP: Duration = Duration::from_secs(20);

fn topology(name: &str) -> FakeTopology {
    let spout = FakeComponentStats {
        emitted: 120_000,
        transferred: 120_000,
        acked: 60_000,
        failed: 12,
        complete_latency_ms: 12.5,
        ..Default::default()
    };
    let bolt = FakeComponentStats {
        emitted: 480_000,
        transferred: 480_000,
        acked: 120_000,
        executed: 120_000,
        execute_latency_ms: 0.8,
        process_latency_ms: 0.9,
        capacity: 0.35,
        ..Default::default()
    };
    let mut t = FakeTopology::new(name)
        .with_conf("topology.max.spout.pending", serde_json::json!(1000))
        .with_conf("topology.message.timeout.secs", serde_json::json!(30));
    for i in 0..2 {
        t = t.with_spout(
            &format!("spout-{i}"),
            FakeComponent::new(4, 8, spout.clone()),
        );
    }
    for i in 0..6 {
        t = t.with_bolt(
            &format!("bolt-{i}"),
            FakeComponent::new(8, 16, bolt.clone()),
        );
    }
    t.num_workers = 4;
    t
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn page_info_bench(
    nimbus: Arc<ThriftNimbus>,
    id: String,
    callers: usize,
    calls_per_caller: usize,
) {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let n = nimbus.clone();
        let id = id.clone();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(calls_per_caller);
            for _ in 0..calls_per_caller {
                if start.elapsed() > TIME_CAP {
                    break;
                }
                let t0 = Instant::now();
                n.topology_page_info(&id, "600").await.expect("page info");
                lat.push(t0.elapsed());
            }
            lat
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.expect("bench task"));
    }
    let wall = start.elapsed();
    all.sort();
    println!(
        "getTopologyPageInfo  callers={callers:<2}  calls={:<6}  {:>8.0} calls/s  p50={:>7.1?}  p99={:>7.1?}",
        all.len(),
        all.len() as f64 / wall.as_secs_f64(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
    );
}

async fn collector_calls(topologies: usize) {
    let fake = FakeNimbus::start().await.expect("fake");
    for i in 0..topologies {
        let mut t = topology(&format!("topo-{i}"));
        t.id = format!("topo-{i}-1-1700000000");
        fake.cluster().put_topology(t);
    }
    let nimbus = ThriftNimbus::new(NimbusConfig::new(vec![fake.endpoint()])).expect("client");
    nimbus.leader().await.expect("leader");
    fake.clear_calls();
    let t0 = Instant::now();
    let snap = poll_once(
        &nimbus,
        &CollectorConfig::default(),
        &ClusterSnapshot::default(),
        Timestamp::now(),
    )
    .await;
    let took = t0.elapsed();
    let with_metrics = snap
        .topologies
        .values()
        .filter(|t| t.metrics.is_some())
        .count();
    println!(
        "collector poll  topologies={topologies:<5} nimbus calls={:<5} (getClusterInfo={}, getTopologyPageInfo={})  with metrics={with_metrics}  poll took {:.1?}",
        fake.calls().len(),
        fake.call_count("getClusterInfo"),
        fake.call_count("getTopologyPageInfo"),
        took,
    );
    assert_eq!(fake.calls().len(), snap.calls_last_poll);
}

fn main() {
    // `cargo nextest run --all-targets` lists every target's tests with `--list`: a benchmark has
    // none, and must not run while being listed.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let fake = FakeNimbus::start().await.expect("fake");
        let t = topology("bench");
        let id = t.id.clone();
        fake.cluster().put_topology(t);
        let nimbus =
            Arc::new(ThriftNimbus::new(NimbusConfig::new(vec![fake.endpoint()])).expect("client"));
        let page = nimbus
            .topology_page_info(&id, "600")
            .await
            .expect("warm-up");
        println!(
            "page info reply: {} spouts, {} bolts, {} workers",
            page.id_to_spout_agg_stats.as_ref().map_or(0, |m| m.len()),
            page.id_to_bolt_agg_stats.as_ref().map_or(0, |m| m.len()),
            page.workers.as_ref().map_or(0, |w| w.len()),
        );
        page_info_bench(nimbus.clone(), id.clone(), 1, 300).await;
        page_info_bench(nimbus.clone(), id.clone(), 1, 5_000).await;
        page_info_bench(nimbus.clone(), id.clone(), 16, 1_000).await;
        println!(
            "connections opened by the client: {}",
            fake.connections_accepted()
        );
        for n in [1, 100, 1000] {
            collector_calls(n).await;
        }
    });
}
