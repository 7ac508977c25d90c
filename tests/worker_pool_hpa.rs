//! The HPA a pool generates asks the metrics API for metrics the API serves: every Object metric
//! of the samples' HPAs is read back over TLS from the real server, with its selector, as the HPA
//! controller would ask for it.

mod support;

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use storm_controller::controller::topology::build::inline_worker_pool;
use storm_controller::controller::worker_pool::build;
use storm_controller::crd::worker_pool::StormMetricName;
use storm_controller::crd::{StormTopology, StormWorkerPool};
use storm_controller::metrics_api::quantity::format_quantity;
use storm_controller::metrics_api::{
    AlwaysAllow, MetricsApiServer, ServedResource, ServerOptions, StaticProvider, TrustConfig,
    TrustStore,
};
use storm_controller::nimbus::fake::{FakeComponent, FakeComponentStats};
use storm_controller::storm_provider::samples_of;

const NS: &str = "storm";

fn sample_pools() -> Vec<StormWorkerPool> {
    let topology: StormTopology = serde_json::from_value(support::read_yaml(
        "docs/samples/stormtopology-autoscaled.yaml",
    ))
    .unwrap();
    let standalone: StormWorkerPool = serde_json::from_value(support::read_yaml(
        "docs/samples/stormworkerpool-standalone.yaml",
    ))
    .unwrap();
    vec![inline_worker_pool(&topology).unwrap(), standalone]
}

/// Every `(topology, metric, selector)` the pools' HPAs refer to as Object metrics.
fn object_metrics(pools: &[StormWorkerPool]) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    for pool in pools {
        let hpa = build::hpa(pool, "storm").expect("the samples autoscale");
        for metric in hpa.spec.unwrap().metrics.unwrap() {
            let Some(object) = metric.object else {
                continue;
            };
            assert_eq!(object.described_object.kind, "StormTopology");
            let selector = object.metric.selector.map(|s| {
                let labels = s.match_labels.unwrap_or_default();
                storm_controller::controller::labels::selector_string(&labels)
            });
            out.push((object.described_object.name, object.metric.name, selector));
        }
    }
    out
}

#[tokio::test]
async fn every_object_metric_of_the_generated_hpas_is_served() {
    let pools = sample_pools();
    let wanted = object_metrics(&pools);
    assert_eq!(
        wanted.len(),
        3,
        "pending and capacity of wordcount, enrich's component capacity: {wanted:?}"
    );
    assert!(wanted.contains(&(
        "enrich".to_string(),
        "storm_component_capacity".to_string(),
        Some("component=enrich".to_string())
    )));

    // The provider holds what the collector would derive from Nimbus for both topologies.
    let now = Timestamp::now();
    let wordcount = support::fixtures::word_count().page_info("600", false);
    let enrich_bolt = FakeComponentStats {
        executed: 60_000,
        execute_latency_ms: 7.5,
        capacity: 0.62,
        ..Default::default()
    };
    let enrich = storm_controller::nimbus::fake::FakeTopology::new("enrich")
        .with_bolt("enrich", FakeComponent::new(2, 4, enrich_bolt))
        .page_info("600", false);
    let provider = Arc::new(StaticProvider::new());
    let mut expected = Vec::new();
    for (name, page) in [("wordcount", wordcount), ("enrich", enrich)] {
        let metrics = storm_controller::stats::topology_metrics(&page, now);
        provider.upsert_object(
            ServedResource::StormTopologies,
            NS,
            name,
            Default::default(),
        );
        for metric in StormMetricName::ALL {
            let samples = samples_of(&metrics, metric);
            for s in &samples {
                expected.push((
                    name.to_string(),
                    metric.as_str().to_string(),
                    s.labels.clone(),
                    s.value,
                ));
            }
            provider.set_samples(ServedResource::StormTopologies, NS, name, metric, samples);
        }
    }

    let server = MetricsApiServer::bind(
        ServerOptions::local(),
        provider,
        Arc::new(AlwaysAllow),
        TrustStore::new(TrustConfig::default()).unwrap(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    for (topology, metric, selector) in &wanted {
        let mut path = format!(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{NS}/stormtopologies.storm.apache.org/{topology}/{metric}"
        );
        if let Some(selector) = selector {
            path.push_str(&format!(
                "?metricLabelSelector={}",
                selector.replace('=', "%3D")
            ));
        }
        let (status, body) = support::tls::get(addr, &path).await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        let items = list["items"].as_array().unwrap();
        assert_eq!(
            items.len(),
            1,
            "{path}: exactly one series, as the HPA needs"
        );
        assert_eq!(items[0]["metric"]["name"], metric.as_str());
        assert_eq!(items[0]["describedObject"]["name"], topology.as_str());
        let value = expected
            .iter()
            .find(|(t, m, labels, _)| {
                t == topology
                    && m == metric
                    && selector.as_ref().is_none_or(|s| {
                        s == &storm_controller::controller::labels::selector_string(labels)
                    })
            })
            .map(|(.., v)| *v)
            .unwrap();
        assert_eq!(
            items[0]["value"].as_str(),
            format_quantity(value).as_deref(),
            "{path}"
        );
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
