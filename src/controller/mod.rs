//! The reconcilers. Each CRD has a pipeline: fetch, validate (pure), build (pure), apply, status.
//!
//! [`run`] waits for the CRDs, then runs the controllers while this replica holds the leader
//! Lease; every replica keeps serving metrics either way.

pub mod apply;
pub mod cluster;
pub mod conditions;
pub mod context;
pub mod labels;
pub mod leader;
pub mod topology;
pub mod worker_pool;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

pub use context::{Context, Error, Settings};

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;

use crate::crd::{StormCluster, StormTopology, StormWorkerPool};

/// Label selector of every child the operator manages; owned-object watches use it so the
/// operator caches only its own objects, not every Deployment of the cluster.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=storm-controller";

/// Checks that the CRDs are installed and established; the error says how to install them.
pub async fn check_crds(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::crd::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        match api.get_opt(&name).await {
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!(
                "the CRD {name} is not installed: install the CRDs with `storm-controller crds | kubectl apply --server-side -f -` (or `kubectl apply -f crds/`)"
            ),
            Err(error) => anyhow::bail!(
                "cannot read the CRD {name} (does the operator's RBAC allow get on customresourcedefinitions?): {error}"
            ),
        }
    }
    Ok(())
}

/// Runs the controllers whenever `leading` is true, until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    mut leading: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    check_crds(&ctx.client).await?;
    ctx.metrics.reconcile.declare(cluster::CONTROLLER);
    ctx.metrics.reconcile.declare(topology::CONTROLLER);
    ctx.metrics.reconcile.declare(worker_pool::CONTROLLER);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            changed = leading.wait_for(|l| *l) => if changed.is_err() { return Ok(()) },
        }
        tracing::info!("leading: starting the controllers");
        let term = shutdown.child_token();
        let stop = term.clone();
        let mut watch_leading = leading.clone();
        let lost = tokio::spawn(async move {
            // A closed channel means nobody will change the answer any more (no election): keep
            // running until shutdown. The election task itself publishes `false` before it ends.
            if watch_leading.wait_for(|l| !*l).await.is_ok() {
                stop.cancel();
            }
        });
        run_controllers(Arc::clone(&ctx), term).await;
        lost.abort();
        if shutdown.is_cancelled() {
            return Ok(());
        }
        tracing::warn!("lost leadership: controllers stopped");
    }
}

async fn run_controllers(ctx: Arc<Context>, term: CancellationToken) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(MANAGED_SELECTOR);
    let controller = Controller::new(
        Api::<DeserializeGuard<StormCluster>>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    );
    // Connections of deleted clusters go away at the next resync (no finalizer for in-memory state).
    let sweeper = tokio::spawn(sweep_deleted(
        controller.store(),
        Arc::clone(&ctx),
        term.clone(),
    ));
    let clusters = controller
        .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
        .owns(Api::<Deployment>::all(client.clone()), owned.clone())
        .owns(Api::<Service>::all(client.clone()), owned.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
        .graceful_shutdown_on(term.clone().cancelled_owned())
        .run(reconcile_cluster, error_policy_cluster, Arc::clone(&ctx))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "stormcluster controller");
            }
        });
    let topologies = Controller::new(
        Api::<DeserializeGuard<StormTopology>>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    );
    let store = topologies.store();
    let topologies = topologies
        .owns(Api::<Job>::all(client.clone()), owned.clone())
        .owns(Api::<StormWorkerPool>::all(client.clone()), owned.clone())
        // A StormCluster that appears or changes wakes the topologies that run on it.
        .watches(
            Api::<DeserializeGuard<StormCluster>>::all(client.clone()),
            watcher::Config::default(),
            move |cluster| {
                let namespace = cluster.namespace();
                let name = cluster.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|t| {
                        t.namespace() == namespace
                            && t.0.as_ref().is_ok_and(|t| t.spec.cluster_ref.name == name)
                    })
                    .map(|t| ObjectRef::from_obj(t.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(term.clone().cancelled_owned())
        .run(reconcile_topology, error_policy_topology, Arc::clone(&ctx))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "stormtopology controller");
            }
        });
    let pools = Controller::new(
        Api::<DeserializeGuard<StormWorkerPool>>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    );
    let pool_store = pools.store();
    let pool_pods = watcher::Config::default().labels(&format!(
        "{MANAGED_SELECTOR},app.kubernetes.io/component={}",
        labels::Component::WorkerPool.as_str()
    ));
    let pools = pools
        .owns(Api::<Deployment>::all(client.clone()), owned.clone())
        .owns(Api::<HorizontalPodAutoscaler>::all(client.clone()), owned)
        // Supervisor pods becoming ready move a scale along.
        .watches(Api::<Pod>::all(client.clone()), pool_pods, |pod: Pod| {
            let pool = pod.labels().get(labels::POOL_LABEL)?.clone();
            Some(ObjectRef::new(&pool).within(&pod.namespace()?))
        })
        // A topology change (new Storm id, status) wakes the pools that run it.
        .watches(
            Api::<DeserializeGuard<StormTopology>>::all(client.clone()),
            watcher::Config::default(),
            move |topology| {
                let namespace = topology.namespace();
                let name = topology.name_any();
                pool_store
                    .state()
                    .into_iter()
                    .filter(|p| {
                        p.namespace() == namespace
                            && p.0.as_ref().is_ok_and(|p| p.spec.topology_ref.name == name)
                    })
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(term.clone().cancelled_owned())
        .run(reconcile_pool, error_policy_pool, Arc::clone(&ctx))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "stormworkerpool controller");
            }
        });
    futures::join!(clusters, topologies, pools);
    sweeper.abort();
}

async fn sweep_deleted(
    store: kube::runtime::reflector::Store<DeserializeGuard<StormCluster>>,
    ctx: Arc<Context>,
    term: CancellationToken,
) {
    loop {
        tokio::select! {
            () = term.cancelled() => return,
            () = tokio::time::sleep(ctx.settings.resync) => {}
        }
        let live: std::collections::HashSet<crate::clusters::ClusterKey> = store
            .state()
            .iter()
            .map(|c| {
                crate::clusters::ClusterKey::new(c.namespace().unwrap_or_default(), c.name_any())
            })
            .collect();
        ctx.clusters.sweep(|k| live.contains(k));
    }
}

/// Runs `reconcile` on an object that deserialized, or reports one that did not; counts,
/// times and reports failures the same way for every controller.
async fn reconcile_guarded<K, F, Fut>(
    object: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    controller: &'static str,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>>,
{
    let _timer = ctx.metrics.reconcile.start(controller);
    let key = format!(
        "{controller}/{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    let typed = match &object.0 {
        Ok(typed) => Arc::new(typed.clone()),
        Err(invalid) => {
            // The object does not match the types (stored before a CRD upgrade, or written with
            // validation bypassed): say so on the object and wait for a change.
            ctx.metrics.reconcile.failed(controller, "InvalidObject");
            let reference = object.object_ref(&());
            ctx.event(
                &reference,
                EventType::Warning,
                "InvalidObject",
                "Validate",
                format!("the object cannot be read: {}", invalid.error),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    let span = tracing::info_span!("reconcile", controller, object = %key);
    let result =
        tracing::Instrument::instrument(reconcile(Arc::clone(&typed), Arc::clone(&ctx)), span)
            .await;
    match result {
        Ok(action) => {
            ctx.backoff.reset(&key);
            Ok(action)
        }
        Err(error) => {
            ctx.metrics.reconcile.failed(controller, error.category());
            ctx.event(
                &typed.object_ref(&()),
                EventType::Warning,
                error.category(),
                "Reconcile",
                error.chain(),
            )
            .await;
            Err(error)
        }
    }
}

async fn reconcile_cluster(
    object: Arc<DeserializeGuard<StormCluster>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    reconcile_guarded(object, ctx, cluster::CONTROLLER, cluster::reconcile).await
}

async fn reconcile_pool(
    object: Arc<DeserializeGuard<StormWorkerPool>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    reconcile_guarded(object, ctx, worker_pool::CONTROLLER, worker_pool::reconcile).await
}

async fn reconcile_topology(
    object: Arc<DeserializeGuard<StormTopology>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    reconcile_guarded(object, ctx, topology::CONTROLLER, topology::reconcile).await
}

fn error_policy<K: Resource<DynamicType = ()>>(
    controller: &'static str,
    object: &K,
    error: &Error,
    ctx: &Context,
) -> Action {
    let key = format!(
        "{controller}/{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    let delay: Duration = ctx.backoff.next(&key);
    tracing::warn!(object = %key, category = error.category(), error = %error.chain(), retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn error_policy_cluster(
    object: Arc<DeserializeGuard<StormCluster>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    error_policy(cluster::CONTROLLER, object.as_ref(), error, &ctx)
}

fn error_policy_pool(
    object: Arc<DeserializeGuard<StormWorkerPool>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    error_policy(worker_pool::CONTROLLER, object.as_ref(), error, &ctx)
}

fn error_policy_topology(
    object: Arc<DeserializeGuard<StormTopology>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    error_policy(topology::CONTROLLER, object.as_ref(), error, &ctx)
}
