//! The source of metric values, behind a small trait so that the request path never does I/O.
//!
//! The running operator implements [`MetricsProvider`] over the collector's snapshots (values) and a
//! watch cache of the Storm objects (names and labels). [`StaticProvider`] is an in-memory
//! implementation for tests and the `dev` sandbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::crd::worker_pool::StormMetricName;

/// The API group of the Storm custom resources.
pub const STORM_GROUP: &str = "storm.apache.org";
/// The served version of the Storm custom resources (`describedObject.apiVersion`).
pub const STORM_API_VERSION: &str = "storm.apache.org/v1alpha1";

/// A resource whose objects have metrics in this API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServedResource {
    /// `stormtopologies.storm.apache.org`, kind `StormTopology`.
    StormTopologies,
    /// `stormworkerpools.storm.apache.org`, kind `StormWorkerPool`.
    StormWorkerPools,
}

impl ServedResource {
    /// Every served resource.
    pub const ALL: [ServedResource; 2] = [
        ServedResource::StormTopologies,
        ServedResource::StormWorkerPools,
    ];

    /// The `<plural>.<group>` form used in URLs and discovery.
    pub fn group_resource(self) -> &'static str {
        match self {
            ServedResource::StormTopologies => "stormtopologies.storm.apache.org",
            ServedResource::StormWorkerPools => "stormworkerpools.storm.apache.org",
        }
    }

    /// The Kind of the objects.
    pub fn kind(self) -> &'static str {
        match self {
            ServedResource::StormTopologies => "StormTopology",
            ServedResource::StormWorkerPools => "StormWorkerPool",
        }
    }

    /// The `describedObject.apiVersion` of the objects.
    pub fn api_version(self) -> &'static str {
        STORM_API_VERSION
    }

    /// Looks a resource up by its `<plural>.<group>` URL segment (plural form only, as the HPA sends).
    pub fn from_group_resource(s: &str) -> Option<ServedResource> {
        ServedResource::ALL
            .into_iter()
            .find(|r| r.group_resource() == s)
    }

    /// The metrics served for this resource (discovery lists exactly these).
    pub fn metrics(self) -> &'static [StormMetricName] {
        &StormMetricName::ALL
    }
}

/// An object of a served resource, as the watch cache knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`, matched against `labelSelector`.
    pub labels: BTreeMap<String, String>,
}

/// One sample of one series of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series labels, matched against `metricLabelSelector` (e.g. `component=split`). Empty for
    /// topology-wide metrics.
    pub labels: BTreeMap<String, String>,
    /// The value; NaN and infinities are never served.
    pub value: f64,
    /// When the source measured the value (for Storm: when Nimbus was polled).
    pub timestamp: SystemTime,
    /// The window the value covers, in seconds (Storm's 600 s window), if any.
    pub window_seconds: Option<i64>,
}

/// The source of objects and metric values. Implementations answer from memory: these methods are
/// called on the request path, must not block on I/O, and should be cheap.
///
/// Freshness is the server's job: it drops samples older than `--metrics-max-age`, so a provider
/// keeps serving its last snapshot and reports real sample times.
pub trait MetricsProvider: Send + Sync + 'static {
    /// The objects of `resource` in `namespace` with their labels (for `*` reads with a
    /// `labelSelector`). Order does not matter; the server sorts by name.
    fn list_objects(&self, resource: ServedResource, namespace: &str) -> Vec<ObjectInfo>;

    /// Every series of `metric` for one object: empty when the object is unknown or has no value.
    fn samples(
        &self,
        resource: ServedResource,
        namespace: &str,
        name: &str,
        metric: StormMetricName,
    ) -> Vec<Sample>;

    /// Whether the provider has loaded its first snapshot; `/readyz` fails until then.
    fn is_ready(&self) -> bool {
        true
    }
}

type ObjectKey = (ServedResource, String, String);

#[derive(Debug, Default)]
struct StaticObject {
    labels: BTreeMap<String, String>,
    samples: HashMap<StormMetricName, Vec<Sample>>,
}

/// An in-memory [`MetricsProvider`] whose objects and samples are set by hand.
#[derive(Debug)]
pub struct StaticProvider {
    objects: RwLock<BTreeMap<ObjectKey, StaticObject>>,
    ready: AtomicBool,
}

impl Default for StaticProvider {
    fn default() -> Self {
        StaticProvider::new()
    }
}

impl StaticProvider {
    /// An empty provider that reports itself ready.
    pub fn new() -> StaticProvider {
        StaticProvider {
            objects: RwLock::new(BTreeMap::new()),
            ready: AtomicBool::new(true),
        }
    }

    /// Sets whether `/readyz` may pass.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Adds or replaces an object's labels (its samples are kept).
    pub fn upsert_object(
        &self,
        resource: ServedResource,
        namespace: &str,
        name: &str,
        labels: BTreeMap<String, String>,
    ) {
        let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
        objects
            .entry((resource, namespace.to_owned(), name.to_owned()))
            .or_default()
            .labels = labels;
    }

    /// Replaces the series of one metric of one object, creating the object (without labels) if needed.
    pub fn set_samples(
        &self,
        resource: ServedResource,
        namespace: &str,
        name: &str,
        metric: StormMetricName,
        samples: Vec<Sample>,
    ) {
        let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
        objects
            .entry((resource, namespace.to_owned(), name.to_owned()))
            .or_default()
            .samples
            .insert(metric, samples);
    }

    /// Removes an object and its samples.
    pub fn remove_object(&self, resource: ServedResource, namespace: &str, name: &str) {
        let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
        objects.remove(&(resource, namespace.to_owned(), name.to_owned()));
    }
}

impl MetricsProvider for StaticProvider {
    fn list_objects(&self, resource: ServedResource, namespace: &str) -> Vec<ObjectInfo> {
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        objects
            .iter()
            .filter(|((r, ns, _), _)| *r == resource && ns == namespace)
            .map(|((_, _, name), o)| ObjectInfo {
                name: name.clone(),
                labels: o.labels.clone(),
            })
            .collect()
    }

    fn samples(
        &self,
        resource: ServedResource,
        namespace: &str,
        name: &str,
        metric: StormMetricName,
    ) -> Vec<Sample> {
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        objects
            .get(&(resource, namespace.to_owned(), name.to_owned()))
            .and_then(|o| o.samples.get(&metric))
            .cloned()
            .unwrap_or_default()
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_provider_round_trip() {
        let p = StaticProvider::new();
        let labels: BTreeMap<_, _> = [("app".to_owned(), "wc".to_owned())].into();
        p.upsert_object(
            ServedResource::StormTopologies,
            "storm",
            "wc",
            labels.clone(),
        );
        let s = Sample {
            labels: BTreeMap::new(),
            value: 1.5,
            timestamp: SystemTime::now(),
            window_seconds: Some(600),
        };
        p.set_samples(
            ServedResource::StormTopologies,
            "storm",
            "wc",
            StormMetricName::PendingTuples,
            vec![s.clone()],
        );
        assert_eq!(
            p.list_objects(ServedResource::StormTopologies, "storm"),
            vec![ObjectInfo {
                name: "wc".into(),
                labels
            }]
        );
        assert!(
            p.list_objects(ServedResource::StormWorkerPools, "storm")
                .is_empty()
        );
        assert_eq!(
            p.samples(
                ServedResource::StormTopologies,
                "storm",
                "wc",
                StormMetricName::PendingTuples
            ),
            vec![s]
        );
        assert!(
            p.samples(
                ServedResource::StormTopologies,
                "other",
                "wc",
                StormMetricName::PendingTuples
            )
            .is_empty()
        );
        p.remove_object(ServedResource::StormTopologies, "storm", "wc");
        assert!(
            p.list_objects(ServedResource::StormTopologies, "storm")
                .is_empty()
        );
        assert_eq!(
            ServedResource::from_group_resource("stormworkerpools.storm.apache.org"),
            Some(ServedResource::StormWorkerPools)
        );
        assert_eq!(ServedResource::from_group_resource("pods"), None);
    }
}
