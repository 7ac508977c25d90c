//! Every replica keeps a Nimbus connection per valid StormCluster, leader or not.

mod support;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, PostParams};
use storm_controller::clusters::{self, ClusterKey, Clusters};
use storm_controller::crd::StormCluster;
use storm_controller::kubesim::KubeSim;
use storm_controller::stats::CollectorConfig;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn connections_follow_the_storm_clusters_in_the_api() {
    let sim = KubeSim::start().await;
    let shutdown = CancellationToken::new();
    let registry = Arc::new(Clusters::thrift(
        CollectorConfig {
            poll_interval: Duration::from_secs(3600),
            concurrency: 1,
        },
        shutdown.child_token(),
    ));
    let api: Api<StormCluster> = Api::namespaced(sim.client(), "storm");
    let external: StormCluster = serde_json::from_value(support::read_yaml(
        "docs/samples/stormcluster-external.yaml",
    ))
    .unwrap();
    api.create(&PostParams::default(), &external).await.unwrap();
    let task = tokio::spawn(clusters::follow(
        sim.client(),
        Arc::clone(&registry),
        shutdown.clone(),
    ));
    let legacy = ClusterKey::new("storm", "legacy");
    support::fixtures::wait_until("a connection for the listed cluster", || {
        registry.get(&legacy).is_some()
    })
    .await;

    let managed: StormCluster =
        serde_json::from_value(support::read_yaml("docs/samples/stormcluster-managed.yaml"))
            .unwrap();
    api.create(&PostParams::default(), &managed).await.unwrap();
    support::fixtures::wait_until("a connection for the new cluster", || {
        registry.get(&ClusterKey::new("storm", "storm")).is_some()
    })
    .await;

    let mut invalid = managed.clone();
    invalid.metadata.name = Some("broken".into());
    invalid.spec.zookeeper = None;
    api.create(&PostParams::default(), &invalid).await.unwrap();

    api.delete("legacy", &DeleteParams::default())
        .await
        .unwrap();
    support::fixtures::wait_until("the deleted cluster's connection gone", || {
        registry.get(&legacy).is_none()
    })
    .await;
    assert!(
        registry.get(&ClusterKey::new("storm", "broken")).is_none(),
        "an invalid cluster gets no connection"
    );
    assert_eq!(registry.snapshots().len(), 1);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("follow stops on shutdown")
        .unwrap();
}
