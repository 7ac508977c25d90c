//! The collector against the fake Nimbus over TCP.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use storm_controller::nimbus::fake::{
    FakeComponent, FakeComponentStats, FakeNimbus, FakeTopology, Fault, FaultKind,
};
use storm_controller::nimbus::{Nimbus, NimbusConfig, ThriftNimbus};
use storm_controller::stats::{ClusterSnapshot, CollectorConfig, poll_once, spawn_collector};

fn spouting(name: &str, acked: i64) -> FakeTopology {
    let s = FakeComponentStats {
        acked,
        emitted: acked,
        complete_latency_ms: 10.0,
        ..Default::default()
    };
    FakeTopology::new(name).with_spout("s", FakeComponent::new(1, 1, s))
}

async fn setup() -> (FakeNimbus, Arc<dyn Nimbus>) {
    let fake = FakeNimbus::start().await.unwrap();
    let c = fake.cluster();
    c.put_topology(spouting("a", 600));
    c.put_topology(spouting("b", 1200));
    let mut killed = spouting("gone", 5);
    killed.status = "KILLED".into();
    c.put_topology(killed);
    let mut cfg = NimbusConfig::new(vec![fake.endpoint()]);
    cfg.retry_backoff = Duration::from_millis(1);
    let nimbus: Arc<dyn Nimbus> = Arc::new(ThriftNimbus::new(cfg).unwrap());
    nimbus.leader().await.unwrap();
    fake.clear_calls();
    (fake, nimbus)
}

#[tokio::test]
async fn one_cluster_call_plus_one_page_call_per_live_topology() {
    let (fake, nimbus) = setup().await;
    let t0: Timestamp = "2026-11-26T01:00:00Z".parse().unwrap();
    let snap = poll_once(
        nimbus.as_ref(),
        &CollectorConfig::default(),
        &ClusterSnapshot::default(),
        t0,
    )
    .await;
    assert_eq!(fake.call_count("getClusterInfo"), 1);
    assert_eq!(
        fake.call_count("getTopologyPageInfo"),
        2,
        "KILLED topologies are not polled"
    );
    assert_eq!(fake.calls().len(), 3);
    assert_eq!(snap.calls_last_poll, 3);
    assert_eq!(snap.taken_at, Some(t0));
    assert_eq!(snap.topologies.len(), 3);
    let a = snap.topology("a").unwrap().metrics.as_ref().unwrap();
    assert_eq!(a.acked_per_second, 1.0);
    assert_eq!(
        snap.topology("b")
            .unwrap()
            .metrics
            .as_ref()
            .unwrap()
            .acked_per_second,
        2.0
    );
    assert!(snap.topology("gone").unwrap().metrics.is_none());
    assert_eq!(snap.cluster.as_ref().unwrap().supervisors.len(), 1);
}

#[tokio::test]
async fn failed_poll_keeps_the_last_snapshot_and_ages() {
    let (fake, nimbus) = setup().await;
    let cfg = CollectorConfig::default();
    let t0: Timestamp = "2026-11-26T01:00:00Z".parse().unwrap();
    let t1: Timestamp = "2026-11-26T01:00:30Z".parse().unwrap();
    let first = poll_once(nimbus.as_ref(), &cfg, &ClusterSnapshot::default(), t0).await;

    fake.add_fault(Fault::on("getClusterInfo", FaultKind::InternalError));
    let second = poll_once(nimbus.as_ref(), &cfg, &first, t1).await;
    assert!(
        second
            .error
            .as_deref()
            .unwrap()
            .contains("Internal error processing getClusterInfo")
    );
    assert_eq!(second.consecutive_failures, 1);
    assert_eq!(second.taken_at, Some(t0));
    assert_eq!(second.attempted_at, Some(t1));
    assert_eq!(second.topologies, first.topologies);
    assert_eq!(second.age(t1), Some(Duration::from_secs(30)));

    // One topology's page call failing keeps its previous metrics and records the error.
    fake.clear_faults();
    fake.add_fault(Fault::on("getTopologyPageInfo", FaultKind::InternalError).times(1));
    let third = poll_once(nimbus.as_ref(), &cfg, &second, t1).await;
    assert_eq!(third.error, None);
    assert_eq!(third.consecutive_failures, 0);
    let failed: Vec<_> = third
        .topologies
        .values()
        .filter(|t| t.error.is_some())
        .collect();
    assert_eq!(failed.len(), 1);
    let name = &failed[0].summary.name;
    assert_eq!(failed[0].metrics, first.topology(name).unwrap().metrics);
}

#[tokio::test]
async fn spawned_collector_publishes_and_stops_on_shutdown() {
    let (fake, nimbus) = setup().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let cfg = CollectorConfig {
        poll_interval: Duration::from_secs(3600),
        concurrency: 2,
    };
    let (mut handle, task) = spawn_collector(nimbus, cfg, async move {
        let _ = stopped.await;
    });
    assert!(handle.snapshot().taken_at.is_none());
    tokio::time::timeout(Duration::from_secs(10), handle.changed())
        .await
        .expect("first poll within 10 s");
    let snap = handle.snapshot();
    assert_eq!(snap.topologies.len(), 3);
    assert_eq!(fake.call_count("getClusterInfo"), 1);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("collector stops")
        .unwrap();
    assert!(!handle.changed().await, "sender dropped after stop");
}

#[test]
fn collector_flags_default_to_30s() {
    use clap::Parser;
    use storm_controller::stats::CollectorArgs;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        c: CollectorArgs,
    }
    let cfg = CollectorConfig::from(&Cli::try_parse_from(["x"]).unwrap().c);
    assert_eq!(cfg.poll_interval, Duration::from_secs(30));
    let cfg = CollectorConfig::from(
        &Cli::try_parse_from([
            "x",
            "--nimbus-poll-interval",
            "5s",
            "--nimbus-poll-concurrency",
            "0",
        ])
        .unwrap()
        .c,
    );
    assert_eq!(
        (cfg.poll_interval, cfg.concurrency),
        (Duration::from_secs(5), 1)
    );
}
