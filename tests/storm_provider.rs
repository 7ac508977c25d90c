//! The operator's metrics source: StormTopology and StormWorkerPool objects from watch caches,
//! their values from the collector of the StormCluster they name; and standalone mode.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use storm_controller::clusters::{ClusterKey, Clusters, NimbusTarget};
use storm_controller::crd::worker_pool::StormMetricName;
use storm_controller::crd::{StormTopology, StormWorkerPool};
use storm_controller::kubesim::KubeSim;
use storm_controller::metrics_api::provider::{MetricsProvider, ServedResource};
use storm_controller::nimbus::fake::FakeNimbus;
use storm_controller::stats::CollectorConfig;
use storm_controller::storm_provider::{StandaloneProvider, StormProvider, samples_of, storm_name};
use support::fixtures::word_count;
use tokio_util::sync::CancellationToken;

const NS: &str = "storm";

#[tokio::test]
async fn topologies_and_pools_are_served_from_their_clusters_collector() {
    let sim = KubeSim::start().await;
    let fake = FakeNimbus::start().await.unwrap();
    fake.cluster().put_topology(word_count());
    let shutdown = CancellationToken::new();
    let clusters = Arc::new(Clusters::thrift(
        CollectorConfig {
            poll_interval: Duration::from_millis(100),
            concurrency: 2,
        },
        shutdown.child_token(),
    ));
    clusters
        .ensure(
            &ClusterKey::new(NS, "storm"),
            &NimbusTarget::new(vec![fake.endpoint()]),
        )
        .unwrap();

    let topologies: Api<StormTopology> = Api::namespaced(sim.client(), NS);
    let mut topo: StormTopology = serde_json::from_value(serde_json::json!({
        "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormTopology",
        "metadata": {"name": "wc", "namespace": NS, "labels": {"app": "words"}},
        "spec": {"clusterRef": {"name": "storm"}, "jar": {"url": "https://x/t.jar"}, "mainClass": "a.B", "stormName": "wordcount"}
    })).unwrap();
    topo = topologies
        .create(&PostParams::default(), &topo)
        .await
        .unwrap();
    assert_eq!(storm_name(&topo), "wordcount");
    let pools: Api<StormWorkerPool> = Api::namespaced(sim.client(), NS);
    let pool: StormWorkerPool = serde_json::from_value(serde_json::json!({
        "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormWorkerPool",
        "metadata": {"name": "wc-pool", "namespace": NS},
        "spec": {"topologyRef": {"name": "wc"}}
    }))
    .unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();

    let (topo_store, topo_writer) = reflector::store();
    let (pool_store, pool_writer) = reflector::store();
    let t = tokio::spawn(
        watcher(
            Api::<StormTopology>::all(sim.client()),
            watcher::Config::default(),
        )
        .reflect(topo_writer)
        .applied_objects()
        .for_each(|_| async {}),
    );
    let p = tokio::spawn(
        watcher(
            Api::<StormWorkerPool>::all(sim.client()),
            watcher::Config::default(),
        )
        .reflect(pool_writer)
        .applied_objects()
        .for_each(|_| async {}),
    );
    let provider = StormProvider::new(Arc::clone(&clusters), topo_store, pool_store);
    support::fixtures::wait_until("caches", || provider.is_ready()).await;
    support::fixtures::wait_until("metrics", || {
        !provider
            .samples(
                ServedResource::StormTopologies,
                NS,
                "wc",
                StormMetricName::Capacity,
            )
            .is_empty()
    })
    .await;

    let objects = provider.list_objects(ServedResource::StormTopologies, NS);
    assert_eq!(objects.len(), 1);
    assert_eq!(
        objects[0].labels.get("app").map(String::as_str),
        Some("words")
    );
    assert!(
        provider
            .list_objects(ServedResource::StormTopologies, "other")
            .is_empty()
    );

    let capacity = provider.samples(
        ServedResource::StormTopologies,
        NS,
        "wc",
        StormMetricName::Capacity,
    );
    assert_eq!(capacity.len(), 1);
    assert!((capacity[0].value - 0.9).abs() < 1e-9, "{capacity:?}");
    assert_eq!(capacity[0].window_seconds, Some(600));
    let per_bolt = provider.samples(
        ServedResource::StormTopologies,
        NS,
        "wc",
        StormMetricName::ComponentCapacity,
    );
    let mut components: Vec<_> = per_bolt
        .iter()
        .map(|s| (s.labels["component"].clone(), s.value))
        .collect();
    components.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        components.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["count", "split"]
    );

    // The pool serves its topology's numbers.
    let via_pool = provider.samples(
        ServedResource::StormWorkerPools,
        NS,
        "wc-pool",
        StormMetricName::Capacity,
    );
    assert_eq!(via_pool, capacity);
    assert!(
        provider
            .samples(
                ServedResource::StormWorkerPools,
                NS,
                "nope",
                StormMetricName::Capacity
            )
            .is_empty()
    );
    // A topology whose cluster has no connection has no values.
    assert!(
        provider
            .samples(
                ServedResource::StormTopologies,
                NS,
                "missing",
                StormMetricName::Capacity
            )
            .is_empty()
    );

    shutdown.cancel();
    t.abort();
    p.abort();
}

#[tokio::test]
async fn standalone_mode_serves_every_topology_of_one_cluster_in_one_namespace() {
    let fake = FakeNimbus::start().await.unwrap();
    fake.cluster().put_topology(word_count());
    let shutdown = CancellationToken::new();
    let clusters = Clusters::thrift(
        CollectorConfig {
            poll_interval: Duration::from_millis(100),
            concurrency: 2,
        },
        shutdown.child_token(),
    );
    let connection = clusters
        .ensure(
            &ClusterKey::new("apps", "standalone"),
            &NimbusTarget::new(vec![fake.endpoint()]),
        )
        .unwrap();
    let provider = StandaloneProvider::new("apps", connection);
    support::fixtures::wait_until("a snapshot", || provider.is_ready()).await;
    let objects = provider.list_objects(ServedResource::StormTopologies, "apps");
    assert_eq!(
        objects.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["wordcount"]
    );
    assert!(
        provider
            .list_objects(ServedResource::StormTopologies, "other")
            .is_empty()
    );
    assert!(
        provider
            .list_objects(ServedResource::StormWorkerPools, "apps")
            .is_empty()
    );
    let pending = provider.samples(
        ServedResource::StormTopologies,
        "apps",
        "wordcount",
        StormMetricName::PendingTuples,
    );
    assert_eq!(pending.len(), 1);
    assert!(pending[0].value > 0.0, "{pending:?}");
    shutdown.cancel();
}

#[test]
fn samples_follow_the_metrics_and_skip_what_is_not_a_number() {
    let metrics = storm_controller::stats::TopologyMetrics {
        topology_id: "t-1".into(),
        topology_name: "t".into(),
        status: "ACTIVE".into(),
        sample_time: k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        window_secs: 600,
        pending_tuples: 12.5,
        spout_pending_ratio: None,
        complete_latency_ms: f64::NAN,
        capacity: 0.5,
        acked_per_second: 1.0,
        failed_per_second: 0.0,
        emitted_per_second: 2.0,
        components: vec![],
        parallelism: Default::default(),
    };
    assert_eq!(
        samples_of(&metrics, StormMetricName::PendingTuples)[0].value,
        12.5
    );
    assert!(
        samples_of(&metrics, StormMetricName::SpoutPendingRatio).is_empty(),
        "no ratio without max spout pending"
    );
    assert!(
        samples_of(&metrics, StormMetricName::CompleteLatencyMs).is_empty(),
        "NaN is never served"
    );
    let t = samples_of(&metrics, StormMetricName::Capacity)[0].timestamp;
    assert_eq!(
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        1_700_000_000
    );
}
