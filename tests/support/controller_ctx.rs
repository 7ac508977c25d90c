//! The reconcilers' context for controller tests: every cluster's Nimbus seeds lead to one fake
//! Nimbus (the DNS names of Nimbus pods do not resolve here), the collector polls fast, and the
//! timings are short.

use std::sync::Arc;
use std::time::Duration;

use storm_controller::clusters::{Clusters, NimbusFactory, NimbusTarget};
use storm_controller::controller::{Context, Settings};
use storm_controller::kubesim::KubeSim;
use storm_controller::metrics::{BuildInfo, Metrics};
use storm_controller::nimbus::{Nimbus, NimbusConfig, ThriftNimbus};
use storm_controller::stats::CollectorConfig;
use tokio_util::sync::CancellationToken;

/// The short timings of controller tests.
pub fn test_settings() -> Settings {
    Settings {
        resync: Duration::from_millis(300),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        max_data_age: Duration::from_secs(30),
        progress: Duration::from_millis(50),
        ..Settings::default()
    }
}

/// A context over `sim` whose Nimbus clients all reach `endpoint`; the collectors poll every
/// `poll_interval` and stop with `shutdown`.
pub fn test_context(
    sim: &KubeSim,
    endpoint: String,
    poll_interval: Duration,
    shutdown: &CancellationToken,
) -> Arc<Context> {
    context_with(sim, endpoint, poll_interval, test_settings(), shutdown)
}

/// Like [`test_context`] with the given timings: each call is a fresh operator process (its own
/// connections, collectors and memory of written status).
pub fn context_with(
    sim: &KubeSim,
    endpoint: String,
    poll_interval: Duration,
    settings: Settings,
    shutdown: &CancellationToken,
) -> Arc<Context> {
    let factory: NimbusFactory = Arc::new(move |target: &NimbusTarget| {
        let mut config = NimbusConfig::new(vec![endpoint.clone()]);
        config.call_timeout = target.call_timeout.min(Duration::from_secs(2));
        Ok(Arc::new(ThriftNimbus::new(config)?) as Arc<dyn Nimbus>)
    });
    let collector = CollectorConfig {
        poll_interval,
        concurrency: 2,
    };
    let clusters = Arc::new(Clusters::new(factory, collector, shutdown.child_token()));
    Arc::new(Context::new(
        sim.client(),
        clusters,
        Arc::new(Metrics::new(&BuildInfo::current())),
        Some("test".into()),
        settings,
    ))
}
