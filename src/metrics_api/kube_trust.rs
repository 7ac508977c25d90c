//! Front-proxy trust from the `kube-system/extension-apiserver-authentication` ConfigMap, kept
//! current with a watch (kubeadm and cloud providers rotate the front-proxy CA in place).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use super::auth::{TrustStore, trust_from_configmap_data};

/// Namespace of the ConfigMap kube-apiserver publishes its client and front-proxy CAs in.
pub const NAMESPACE: &str = "kube-system";
/// Its name.
pub const NAME: &str = "extension-apiserver-authentication";

/// Applies one version of the ConfigMap to `store`; a bad version keeps the previous trust.
pub fn apply(store: &TrustStore, config_map: &ConfigMap) {
    let data = config_map.data.clone().unwrap_or_default();
    match trust_from_configmap_data(&data).map(|config| store.set(config)) {
        Ok(Ok(())) => tracing::info!("front-proxy trust loaded from {NAMESPACE}/{NAME}"),
        Ok(Err(error)) => tracing::warn!(%error, "{NAMESPACE}/{NAME}: keeping the previous trust"),
        Err(error) => tracing::warn!(%error, "{NAMESPACE}/{NAME}: keeping the previous trust"),
    }
}

/// Watches the ConfigMap until `shutdown`, updating `store` on every change. The metrics API's
/// `/readyz` fails until the first version is loaded.
pub async fn watch(client: kube::Client, store: Arc<TrustStore>, shutdown: CancellationToken) {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, NAMESPACE);
    let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            next = events.next() => match next {
                Some(Ok(config_map)) => apply(&store, &config_map),
                Some(Err(error)) => tracing::warn!(%error, "watching {NAMESPACE}/{NAME} (does the operator's RBAC include the extension-apiserver-authentication-reader role?)"),
                None => return,
            },
        }
    }
}
