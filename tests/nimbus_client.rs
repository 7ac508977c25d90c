//! The Thrift client against the fake Nimbus over real TCP on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use storm_controller::nimbus::fake::{
    FakeCluster, FakeComponent, FakeComponentStats, FakeNimbus, FakeTopology, Fault, FaultKind,
};
use storm_controller::nimbus::storm::{SubmitOptions, TopologyInitialStatus};
use storm_controller::nimbus::{Nimbus, NimbusConfig, NimbusError, RebalanceRequest, ThriftNimbus};

fn word_count() -> FakeTopology {
    let spout = FakeComponentStats {
        emitted: 12_000,
        transferred: 12_000,
        acked: 6_000,
        failed: 60,
        complete_latency_ms: 25.0,
        ..Default::default()
    };
    let split = FakeComponentStats {
        emitted: 48_000,
        transferred: 48_000,
        acked: 12_000,
        executed: 12_000,
        execute_latency_ms: 1.5,
        capacity: 0.42,
        ..Default::default()
    };
    FakeTopology::new("wordcount")
        .with_spout("sentences", FakeComponent::new(2, 4, spout))
        .with_bolt("split", FakeComponent::new(4, 8, split))
        .with_bolt(
            "__acker",
            FakeComponent::new(1, 1, FakeComponentStats::default()),
        )
        .with_conf("topology.version", serde_json::json!("v7"))
        .with_conf("topology.message.timeout.secs", serde_json::json!(30))
}

fn client_for(seeds: &[&str]) -> ThriftNimbus {
    let mut cfg = NimbusConfig::new(seeds.iter().map(|s| s.to_string()).collect());
    cfg.retry_backoff = Duration::from_millis(5);
    ThriftNimbus::new(cfg).expect("client")
}

async fn started() -> (FakeNimbus, ThriftNimbus) {
    let fake = FakeNimbus::start().await.expect("fake nimbus");
    fake.cluster().put_topology(word_count());
    let client = client_for(&[&fake.endpoint()]);
    (fake, client)
}

/// An address on 127.0.0.1 where nothing listens.
async fn dead_endpoint() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

#[tokio::test]
async fn reads_cluster_and_topology_views() {
    let (fake, nimbus) = started().await;
    let leader = nimbus.leader().await.unwrap();
    assert!(leader.is_leader);
    assert_eq!(format!("{}:{}", leader.host, leader.port), fake.endpoint());

    let cluster = nimbus.cluster_summary().await.unwrap();
    assert_eq!(cluster.supervisors.len(), 1);
    assert_eq!(cluster.nimbuses.len(), 1);
    assert_eq!(cluster.topologies.len(), 1);
    assert_eq!(cluster.topologies[0].name, "wordcount");

    let list = nimbus.topologies().await.unwrap();
    assert_eq!(
        list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["wordcount"]
    );

    let summary = nimbus.topology_summary("wordcount").await.unwrap();
    assert_eq!(summary.id, "wordcount-1-1700000000");
    assert_eq!(summary.num_executors, 7);
    assert_eq!(summary.topology_version.as_deref(), Some("v7"));

    let info = nimbus.topology_info("wordcount").await.unwrap();
    assert_eq!(info.id, summary.id);
    assert_eq!(info.status, "ACTIVE");

    let page = nimbus.topology_page_info(&summary.id, "600").await.unwrap();
    let bolts = page.id_to_bolt_agg_stats.as_ref().unwrap();
    assert!(bolts.contains_key("split"));
    assert!(
        !bolts.contains_key("__acker"),
        "system components are excluded"
    );
    let by_name = nimbus
        .topology_page_info_by_name("wordcount", "600")
        .await
        .unwrap();
    assert_eq!(by_name, page);

    let conf = nimbus.topology_conf(&summary.id).await.unwrap();
    assert_eq!(conf.version(), Some("v7"));
    assert_eq!(conf.message_timeout_secs(), 30.0);

    match nimbus.topology_summary("nope").await {
        Err(NimbusError::NotAlive(m)) => assert_eq!(m, "nope is not alive"),
        other => panic!("unexpected {other:?}"),
    }
    match nimbus.topology_page_info("nope-1-1", "600").await {
        Err(NimbusError::NotAlive(m)) => assert_eq!(m, "nope-1-1"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn activate_deactivate_follow_storms_transitions() {
    let (fake, nimbus) = started().await;
    let status = || fake.cluster().topology("wordcount").unwrap().status;
    nimbus.deactivate("wordcount").await.unwrap();
    assert_eq!(status(), "INACTIVE");
    nimbus.activate("wordcount").await.unwrap();
    assert_eq!(status(), "ACTIVE");
    assert!(matches!(
        nimbus.activate("ghost").await,
        Err(NimbusError::NotAlive(_))
    ));

    fake.cluster()
        .update_topology("wordcount", |t| t.status = "REBALANCING".into());
    match nimbus.deactivate("wordcount").await {
        Err(NimbusError::Internal(m)) => assert_eq!(m, "Internal error processing deactivate"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn rebalance_applies_workers_executors_and_conf() {
    let (fake, nimbus) = started().await;
    let mut req = RebalanceRequest {
        wait_secs: Some(3600),
        num_workers: Some(3),
        ..Default::default()
    };
    req.num_executors.insert("split".into(), 6);
    let mut overrides = serde_json::Map::new();
    overrides.insert("topology.max.spout.pending".into(), serde_json::json!(500));
    req.conf_overrides = Some(overrides);
    nimbus.rebalance("wordcount", &req).await.unwrap();
    let t = fake.cluster().topology("wordcount").unwrap();
    assert_eq!(t.status, "REBALANCING");
    assert_eq!(t.num_workers, 3);
    assert_eq!(t.bolts["split"].executors, 6);
    assert_eq!(t.conf["topology.max.spout.pending"], serde_json::json!(500));

    // While REBALANCING, Storm has no transition for another rebalance.
    assert!(matches!(
        nimbus.rebalance("wordcount", &req).await,
        Err(NimbusError::Internal(_))
    ));

    // A zero wait completes immediately and restores the previous status.
    fake.cluster()
        .update_topology("wordcount", |t| t.status = "INACTIVE".into());
    let zero = RebalanceRequest {
        wait_secs: Some(0),
        ..Default::default()
    };
    nimbus.rebalance("wordcount", &zero).await.unwrap();
    assert_eq!(
        fake.cluster().topology("wordcount").unwrap().status,
        "INACTIVE"
    );

    let mut bad = RebalanceRequest::default();
    bad.num_executors.insert("nosuch".into(), 2);
    match nimbus.rebalance("wordcount", &bad).await {
        Err(NimbusError::InvalidTopology(m)) => assert_eq!(
            m,
            "Invalid component nosuch for topology wordcount, valid values are sentences,__acker,split"
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn kill_waits_then_removes() {
    let (fake, nimbus) = started().await;
    nimbus.kill("wordcount", Some(3600)).await.unwrap();
    assert_eq!(
        fake.cluster().topology("wordcount").unwrap().status,
        "KILLED"
    );
    // KILLED topologies are still listed until removal.
    assert_eq!(nimbus.topologies().await.unwrap().len(), 1);

    fake.cluster().put_topology(FakeTopology::new("short"));
    nimbus.kill("short", Some(0)).await.unwrap();
    assert!(fake.cluster().topology("short").is_none());
    match nimbus.kill("short", None).await {
        Err(NimbusError::NotAlive(m)) => assert_eq!(m, "short is not alive"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn uploads_in_chunks_and_submits() {
    let (fake, nimbus) = started().await;
    let jar: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let location = nimbus.upload_jar(&mut jar.as_slice()).await.unwrap();
    let (stored, finished) = fake.cluster().upload(&location).unwrap();
    assert!(finished);
    assert_eq!(stored, jar);
    assert_eq!(
        fake.call_count("uploadChunk"),
        3,
        "300 KiB chunks: 307200 + 307200 + 85600"
    );

    let mut conf = serde_json::Map::new();
    conf.insert("topology.version".into(), serde_json::json!("v1"));
    let topology = storm_controller::nimbus::fake::empty_storm_topology();
    let opts = SubmitOptions::new(TopologyInitialStatus::INACTIVE, None);
    nimbus
        .submit("fresh", &location, &conf, &topology, &opts)
        .await
        .unwrap();
    let summary = nimbus.topology_summary("fresh").await.unwrap();
    assert_eq!(summary.status, "INACTIVE");
    assert_eq!(summary.topology_version.as_deref(), Some("v1"));

    match nimbus
        .submit("fresh", &location, &conf, &topology, &opts)
        .await
    {
        Err(NimbusError::AlreadyAlive(m)) => assert_eq!(m, "fresh is already alive"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn dead_first_seed_fails_over_to_the_next() {
    let fake = FakeNimbus::start().await.unwrap();
    fake.cluster().put_topology(word_count());
    let dead = dead_endpoint().await;
    let nimbus = client_for(&[&dead, &fake.endpoint()]);
    nimbus.activate("wordcount").await.unwrap();
    assert_eq!(nimbus.cached_leader(), Some(fake.endpoint()));
    assert_eq!(fake.call_count("activate"), 1);
}

#[tokio::test]
async fn non_leader_seed_points_to_the_leader() {
    let cluster = FakeCluster::new();
    let leader = FakeNimbus::start_in(&cluster).await.unwrap();
    let follower = FakeNimbus::start_in(&cluster).await.unwrap();
    assert_eq!(cluster.leader(), Some(leader.endpoint()));
    cluster.put_topology(word_count());

    let nimbus = client_for(&[&follower.endpoint(), &leader.endpoint()]);
    nimbus.deactivate("wordcount").await.unwrap();
    assert_eq!(follower.calls(), ["getLeader"]);
    assert_eq!(leader.calls(), ["deactivate"]);
}

#[tokio::test]
async fn leader_change_is_rediscovered_for_writes() {
    let cluster = FakeCluster::new();
    let a = FakeNimbus::start_in(&cluster).await.unwrap();
    let b = FakeNimbus::start_in(&cluster).await.unwrap();
    cluster.put_topology(word_count());
    let nimbus = client_for(&[&a.endpoint(), &b.endpoint()]);
    nimbus.deactivate("wordcount").await.unwrap();
    assert_eq!(nimbus.cached_leader(), Some(a.endpoint()));

    b.make_leader();
    // `a` now rejects the write with INTERNAL_ERROR; the client asks the seeds, finds `b`, resends.
    nimbus.activate("wordcount").await.unwrap();
    assert_eq!(nimbus.cached_leader(), Some(b.endpoint()));
    assert_eq!(a.call_count("activate"), 1);
    assert_eq!(b.call_count("activate"), 1);
    assert_eq!(cluster.topology("wordcount").unwrap().status, "ACTIVE");

    // A real INTERNAL_ERROR on the leader is not resent forever: one rediscovery, then the error.
    b.add_fault(Fault::on("deactivate", FaultKind::InternalError));
    assert!(matches!(
        nimbus.deactivate("wordcount").await,
        Err(NimbusError::Internal(_))
    ));
    assert_eq!(b.call_count("deactivate"), 1);
}

#[tokio::test]
async fn leader_node_dying_fails_over() {
    let cluster = FakeCluster::new();
    let a = FakeNimbus::start_in(&cluster).await.unwrap();
    let b = FakeNimbus::start_in(&cluster).await.unwrap();
    cluster.put_topology(word_count());
    let nimbus = client_for(&[&a.endpoint(), &b.endpoint()]);
    assert_eq!(nimbus.topologies().await.unwrap().len(), 1);
    b.make_leader();
    a.shutdown().await;
    // Reads retry: the dead leader is forgotten and `b` is found through the remaining seed.
    assert_eq!(nimbus.cluster_summary().await.unwrap().topologies.len(), 1);
    assert_eq!(nimbus.cached_leader(), Some(b.endpoint()));
}

#[tokio::test]
async fn no_leader_is_a_typed_error() {
    let (fake, nimbus) = started().await;
    fake.cluster().set_leader(None);
    match nimbus.cluster_summary().await {
        Err(NimbusError::NoLeader(m)) => assert!(m.contains(&fake.endpoint()), "{m}"),
        other => panic!("unexpected {other:?}"),
    }
    let dead = client_for(&[&dead_endpoint().await]);
    assert!(matches!(dead.leader().await, Err(NimbusError::NoLeader(_))));
}

#[tokio::test]
async fn deadline_expires_against_a_slow_peer() {
    let (fake, _) = started().await;
    let mut cfg = NimbusConfig::new(vec![fake.endpoint()]);
    cfg.call_timeout = Duration::from_millis(200);
    let nimbus = ThriftNimbus::new(cfg).unwrap();
    nimbus.leader().await.unwrap();
    fake.add_fault(Fault::on(
        "getClusterInfo",
        FaultKind::Delay(Duration::from_secs(30)),
    ));
    match nimbus.cluster_summary().await {
        Err(NimbusError::Timeout { method, after }) => {
            assert_eq!(method, "getClusterInfo");
            assert_eq!(after, Duration::from_millis(200));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The timed-out connection is not reused for the next call.
    fake.clear_faults();
    assert_eq!(nimbus.cluster_summary().await.unwrap().topologies.len(), 1);
}

#[tokio::test]
async fn oversized_response_is_refused_without_allocating() {
    let (fake, nimbus) = started().await;
    nimbus.leader().await.unwrap();
    fake.add_fault(Fault::on(
        "getClusterInfo",
        FaultKind::OversizedFrame(2_000_000_000),
    ));
    match nimbus.cluster_summary().await {
        Err(NimbusError::FrameTooLarge { size, limit }) => {
            assert_eq!(size, 2_000_000_000);
            assert_eq!(limit, 64 * 1024 * 1024);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The cap is configurable: a small cap refuses a normal page-info reply.
    let mut cfg = NimbusConfig::new(vec![fake.endpoint()]);
    cfg.max_response_bytes = 256;
    let small = ThriftNimbus::new(cfg).unwrap();
    fake.clear_faults();
    assert!(matches!(
        small
            .topology_page_info("wordcount-1-1700000000", "600")
            .await,
        Err(NimbusError::FrameTooLarge { limit: 256, .. })
    ));
}

#[tokio::test]
async fn peer_closing_mid_frame() {
    let (fake, nimbus) = started().await;
    nimbus.leader().await.unwrap();
    // A write is never resent once it may have reached Nimbus.
    fake.add_fault(Fault::on("activate", FaultKind::CloseMidFrame));
    match nimbus.activate("wordcount").await {
        Err(NimbusError::Transport { message, .. }) => {
            assert!(message.contains("mid-frame"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fake.call_count("activate"), 1);

    // A read is retried (bounded) and succeeds once the fault is gone.
    fake.add_fault(Fault::on("getClusterInfo", FaultKind::CloseMidFrame).times(1));
    assert_eq!(nimbus.cluster_summary().await.unwrap().topologies.len(), 1);
    assert_eq!(fake.call_count("getClusterInfo"), 2);

    // ...but not forever.
    fake.add_fault(Fault::on("getClusterInfo", FaultKind::Disconnect));
    assert!(matches!(
        nimbus.cluster_summary().await,
        Err(NimbusError::Transport { .. })
    ));
    assert_eq!(
        fake.call_count("getClusterInfo"),
        2 + 3,
        "1 try + 2 retries"
    );
}

#[tokio::test]
async fn hostile_length_inside_a_frame_is_a_protocol_error() {
    let (fake, nimbus) = started().await;
    nimbus.leader().await.unwrap();
    fake.add_fault(Fault::on("getClusterInfo", FaultKind::HostileLength));
    assert!(matches!(
        nimbus.cluster_summary().await,
        Err(NimbusError::Protocol(_))
    ));
}

#[tokio::test]
async fn by_name_falls_back_on_unknown_method() {
    let (fake, nimbus) = started().await;
    for m in [
        "getTopologySummaryByName",
        "getTopologyInfoByName",
        "getTopologySummaries",
    ] {
        fake.add_fault(Fault::on(m, FaultKind::UnknownMethod));
    }
    let s = nimbus.topology_summary("wordcount").await.unwrap();
    assert_eq!(s.id, "wordcount-1-1700000000");
    let info = nimbus.topology_info("wordcount").await.unwrap();
    assert_eq!(info.id, s.id);
    assert_eq!(nimbus.topologies().await.unwrap().len(), 1);
    // After the first UNKNOWN_METHOD the client stops asking for *ByName.
    assert_eq!(fake.call_count("getTopologySummaryByName"), 1);
    assert_eq!(fake.call_count("getTopologyInfoByName"), 0);
    assert_eq!(fake.call_count("getTopologyInfo"), 1);
    assert!(matches!(
        nimbus.topology_info("ghost").await,
        Err(NimbusError::NotAlive(m)) if m == "ghost is not alive"
    ));
}

#[tokio::test]
async fn connections_are_reused() {
    let (fake, nimbus) = started().await;
    for _ in 0..20 {
        nimbus.topology_summary("wordcount").await.unwrap();
    }
    assert_eq!(fake.connections_accepted(), 1);
}

#[tokio::test]
async fn concurrent_callers_get_their_own_answers() {
    let (fake, nimbus) = started().await;
    for i in 0..16 {
        fake.cluster().put_topology(FakeTopology {
            id: format!("t{i}-1-1"),
            num_workers: i + 1,
            ..FakeTopology::new(&format!("t{i}"))
        });
    }
    let nimbus = Arc::new(nimbus);
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..4 {
        for i in 0..16 {
            let n = nimbus.clone();
            tasks.spawn(async move {
                let p = n
                    .topology_page_info(&format!("t{i}-1-1"), "600")
                    .await
                    .unwrap();
                assert_eq!(p.name.as_deref(), Some(format!("t{i}").as_str()));
                assert_eq!(p.num_workers, Some(i + 1));
                round
            });
        }
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
        done += 1;
    }
    assert_eq!(done, 64);
    assert_eq!(fake.call_count("getTopologyPageInfo"), 64);
    assert!(fake.connections_accepted() <= 64 + 1);
}

#[tokio::test]
async fn black_holed_first_seed_does_not_eat_the_deadline() {
    let fake = FakeNimbus::start().await.unwrap();
    fake.cluster().put_topology(word_count());
    // Accepts TCP connections (kernel backlog) but never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = NimbusConfig::new(vec![
        hole.local_addr().unwrap().to_string(),
        fake.endpoint(),
    ]);
    cfg.connect_timeout = Duration::from_millis(200);
    let nimbus = ThriftNimbus::new(cfg).unwrap();
    let conf = nimbus.topology_conf_by_name("wordcount").await.unwrap();
    assert_eq!(conf.version(), Some("v7"));
    assert_eq!(nimbus.cached_leader(), Some(fake.endpoint()));
    drop(hole);
}

#[tokio::test]
async fn fake_shuts_down_cleanly() {
    use tokio::io::AsyncReadExt;
    let fake = FakeNimbus::start().await.unwrap();
    let endpoint = fake.endpoint();
    let mut open = tokio::net::TcpStream::connect(&endpoint).await.unwrap();
    // Make sure the server has accepted it before shutting down.
    let nimbus = client_for(&[&endpoint]);
    nimbus.leader().await.unwrap();
    fake.shutdown().await;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), open.read(&mut buf))
        .await
        .expect("connection closed promptly");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "connection was closed: {read:?}"
    );
    assert!(tokio::net::TcpStream::connect(&endpoint).await.is_err());
}

fn with_many_executors(n: i32) -> FakeTopology {
    use storm_controller::nimbus::storm::{ExecutorInfo, ExecutorSummary};
    let mut t = word_count();
    t.executors = (0..n)
        .map(|i| {
            ExecutorSummary::new(
                ExecutorInfo::new(i, i),
                format!("component-{}", i % 50),
                "worker-host-0.storm.svc".to_string(),
                6700 + i % 4,
                3600,
                None,
            )
        })
        .collect();
    t
}

async fn large_info_roundtrip() {
    let fake = FakeNimbus::start().await.unwrap();
    fake.cluster().put_topology(with_many_executors(40_000));
    let nimbus = client_for(&[&fake.endpoint()]);
    // Well above Storm's 1 MiB default client buffer, below our 64 MiB cap.
    let info = nimbus.topology_info("wordcount").await.unwrap();
    assert_eq!(info.executors.len(), 40_000);
    assert_eq!(info.executors[39_999].executor_info.task_start, 39_999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_response_on_a_multi_thread_runtime() {
    large_info_roundtrip().await;
}

#[tokio::test]
async fn large_response_on_a_current_thread_runtime() {
    large_info_roundtrip().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_survive_a_leader_failover() {
    let cluster = FakeCluster::new();
    let a = FakeNimbus::start_in(&cluster).await.unwrap();
    let b = FakeNimbus::start_in(&cluster).await.unwrap();
    cluster.put_topology(word_count());
    let nimbus = Arc::new(client_for(&[&a.endpoint(), &b.endpoint()]));
    nimbus.leader().await.unwrap();

    let (go, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let n = nimbus.clone();
        let mut started = go.subscribe();
        tasks.spawn(async move {
            let _ = started.recv().await;
            for _ in 0..10 {
                let s = n
                    .topology_summary("wordcount")
                    .await
                    .expect("read survives failover");
                assert_eq!(s.name, "wordcount");
            }
        });
    }
    // The cached leader dies and `b` takes over; then 16 callers hit the stale cache at once.
    b.make_leader();
    a.shutdown().await;
    go.send(()).unwrap();
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(nimbus.cached_leader(), Some(b.endpoint()));
    assert!(b.call_count("getTopologySummaryByName") > 0);
}
