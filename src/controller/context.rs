//! What every reconciler shares: the client, the Storm cluster registry, metrics, the event
//! recorder, per-object retry backoff, and the error type whose category names Events and metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::clusters::Clusters;
use crate::metrics::Metrics;
use crate::nimbus::NimbusError;

/// Timing of the reconcilers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Requeue after a successful reconcile: the safety net, and how often status follows Nimbus.
    pub resync: Duration,
    /// First retry after a transient error; doubled per failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Nimbus data older than this counts as unreachable.
    pub max_data_age: Duration,
    /// Requeue while something is in progress (a submit Job, a kill, a rebalance).
    pub progress: Duration,
    /// A deleted StormTopology whose Storm cluster stays unreachable this long loses its
    /// finalizer (with a Warning Event) instead of blocking the delete forever.
    pub finalizer_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_data_age: Duration::from_secs(90),
            progress: Duration::from_secs(5),
            finalizer_timeout: Duration::from_secs(600),
        }
    }
}

/// The reconcilers' shared state.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Connections to Storm clusters.
    pub clusters: Arc<Clusters>,
    /// Process metrics (reconcile counters and durations).
    pub metrics: Arc<Metrics>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Timing.
    pub settings: Settings,
    /// Retry delays of failing objects.
    pub backoff: Backoff,
    /// The status each object was last given, for reconciles that run on a cache older than
    /// the operator's own last write.
    pub written: WrittenStatus,
}

/// The last status the operator wrote per object (by uid), trusted for a short while.
///
/// A reconcile reads its object from the watch cache, which can lag behind the operator's own
/// status write (seconds under load). Comparing with that stale copy would write the same status
/// again and repeat its Events; comparing with what we wrote ourselves does not. After `ttl`
/// the cache is trusted again, so a status changed by someone else is corrected.
#[derive(Debug)]
pub struct WrittenStatus {
    ttl: Duration,
    entries: Mutex<HashMap<String, (serde_json::Value, std::time::Instant)>>,
}

impl WrittenStatus {
    /// Remembers writes for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The status to compare a new one with: our recent write if any, else the cached one.
    pub fn previous<S: serde::de::DeserializeOwned + Clone>(
        &self,
        uid: Option<&str>,
        cached: Option<&S>,
    ) -> Option<S> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        uid.and_then(|uid| entries.get(uid))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .and_then(|(value, _)| serde_json::from_value(value.clone()).ok())
            .or_else(|| cached.cloned())
    }

    /// Records that `status` was written for `uid`.
    pub fn record<S: serde::Serialize>(&self, uid: Option<&str>, status: &S) {
        let (Some(uid), Ok(value)) = (uid, serde_json::to_value(status)) else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        entries.insert(uid.to_string(), (value, std::time::Instant::now()));
    }
}

/// Per-object exponential retry delays.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Delays from `base`, doubling per failure, never above `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before retrying `key` after another failure.
    pub fn next(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        let delay = self
            .base
            .saturating_mul(2u32.saturating_pow(*n))
            .min(self.max);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets `key`'s failures after a success.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

impl Context {
    /// A context; Events are reported as `storm-controller` from `instance` (the pod name).
    pub fn new(
        client: Client,
        clusters: Arc<Clusters>,
        metrics: Arc<Metrics>,
        instance: Option<String>,
        settings: Settings,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::crd::FIELD_MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            clusters,
            metrics,
            backoff: Backoff::new(settings.backoff_base, settings.backoff_max),
            written: WrittenStatus::new(settings.resync.saturating_mul(3)),
            settings,
        }
    }

    /// Publishes an Event about `object`; a failure to publish is logged, never fatal.
    pub async fn event(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(crate::controller::conditions::truncate(&note.into(), 1024)),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, object).await {
            tracing::warn!(%error, reason, "publishing an event failed");
        }
    }
}

impl Context {
    /// Writes `status` to `object`'s status subresource (server-side apply, the operator's field
    /// manager) unless it equals the last status written for the object, or `cached` (the status
    /// the watch cache has) when nothing was written recently: a steady state writes nothing.
    pub async fn write_status<K, S>(
        &self,
        object: &K,
        cached: Option<&S>,
        status: S,
    ) -> Result<(), Error>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned,
        S: serde::Serialize + serde::de::DeserializeOwned + Clone + PartialEq,
    {
        let meta = object.meta();
        let uid = meta.uid.as_deref();
        if self.written.previous(uid, cached).as_ref() == Some(&status) {
            return Ok(());
        }
        let api: kube::Api<K> = kube::Api::namespaced(
            self.client.clone(),
            meta.namespace.as_deref().unwrap_or_default(),
        );
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(
            meta.name.as_deref().unwrap_or_default(),
            &kube::api::PatchParams::apply(crate::crd::FIELD_MANAGER).force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await?;
        self.written.record(uid, &status);
        Ok(())
    }
}

/// A reconcile failure. The category names the Event reason and the metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A Nimbus call failed.
    #[error("Nimbus: {0}")]
    Nimbus(#[from] NimbusError),
    /// The object has no namespace or name (never from a real API server).
    #[error("the object has no {0}")]
    MissingField(&'static str),
}

impl Error {
    /// CamelCase category: Event reason and `error` label of `storm_controller_reconcile_errors_total`.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => "Conflict",
            Error::Kube(_) => "KubeApiError",
            Error::Nimbus(_) => "NimbusUnreachable",
            Error::MissingField(_) => "InvalidObject",
        }
    }

    /// The error and its sources, joined, for an Event note.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let next = s.to_string();
            if !text.contains(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = s.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<u64> = (0..5).map(|_| backoff.next("a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        assert_eq!(backoff.next("b").as_secs(), 1, "keys are independent");
        backoff.reset("a");
        assert_eq!(backoff.next("a").as_secs(), 1);
    }

    #[test]
    fn a_recent_write_wins_over_a_stale_cache_until_it_expires() {
        let memo = WrittenStatus::new(Duration::from_millis(200));
        let cached = serde_json::json!({"phase": "Progressing"});
        assert_eq!(
            memo.previous(Some("u"), Some(&cached)),
            Some(cached.clone()),
            "nothing written yet"
        );
        memo.record(Some("u"), &serde_json::json!({"phase": "Unreachable"}));
        assert_eq!(
            memo.previous(Some("u"), Some(&cached)),
            Some(serde_json::json!({"phase": "Unreachable"}))
        );
        assert_eq!(
            memo.previous(Some("other"), Some(&cached)),
            Some(cached.clone())
        );
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            memo.previous(Some("u"), Some(&cached)),
            Some(cached),
            "the cache is trusted again"
        );
    }

    #[test]
    fn categories_name_the_failure() {
        let conflict = kube::Error::Api(
            kube::core::Status::failure("conflict", "Conflict")
                .with_code(409)
                .boxed(),
        );
        assert_eq!(Error::from(conflict).category(), "Conflict");
        let gone = kube::Error::Api(
            kube::core::Status::failure("gone", "NotFound")
                .with_code(404)
                .boxed(),
        );
        assert_eq!(Error::from(gone).category(), "KubeApiError");
        assert_eq!(Error::MissingField("namespace").category(), "InvalidObject");
    }
}
