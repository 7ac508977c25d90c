//! The controllers' RBAC (`charts/manifests/rbac.yaml`) against what the controllers really do.
//!
//! The leader election and the three controllers run against the Kubernetes API double through a
//! whole lifecycle: a managed cluster whose UI is switched off, a topology with an autoscaled
//! inline pool that gets supervisors, is scaled down (pod deletion costs, then a smaller
//! Deployment), loses its HPA and then its pool, a second topology whose submit Job fails, and
//! the deletion of both. Every request is mapped to its RBAC verb and resource and must be allowed;
//! every rule must have been used, so the manifest stays least-privilege as the code changes.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use storm_controller::controller::leader::{self, LeaseConfig};
use storm_controller::controller::{self, worker_pool::build};
use storm_controller::crd::topology::TopologyPhase;
use storm_controller::crd::{StormCluster, StormTopology, StormWorkerPool};
use storm_controller::kubesim::{KubeSim, RecordedRequest};
use storm_controller::nimbus::fake::FakeNimbus;
use support::fixtures::wait_until;
use tokio_util::sync::CancellationToken;

const NS: &str = "storm";
const OPERATOR_NS: &str = "storm-system";

/// One RBAC permission: verb, API group, resource (with `/subresource`), and the namespace of a
/// Role (None for a ClusterRole).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Permission {
    verb: String,
    group: String,
    resource: String,
    namespace: Option<String>,
}

/// The permissions the manifest grants, one per verb × group × resource.
fn granted() -> BTreeSet<Permission> {
    let text = std::fs::read_to_string(support::repo_path("charts/manifests/rbac.yaml")).unwrap();
    let mut out = BTreeSet::new();
    for doc in text.split("\n---") {
        let doc: Value = serde_saphyr::from_str(doc).unwrap();
        let namespace = match doc["kind"].as_str() {
            Some("ClusterRole") => None,
            Some("Role") => Some(doc["metadata"]["namespace"].as_str().unwrap().to_string()),
            _ => continue,
        };
        for rule in doc["rules"].as_array().unwrap() {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            for verb in strings("verbs") {
                for group in strings("apiGroups") {
                    for resource in strings("resources") {
                        out.insert(Permission {
                            verb: verb.clone(),
                            group: group.clone(),
                            resource,
                            namespace: namespace.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// The verb and resource of a request, as the apiserver's RBAC authorizer sees it.
fn permission(request: &RecordedRequest) -> Option<(Permission, Option<String>)> {
    let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let verb = match (request.method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if request.is_watch() => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((
        Permission {
            verb: verb.into(),
            group,
            resource,
            namespace: None,
        },
        namespace,
    ))
}

fn allowed(granted: &BTreeSet<Permission>, p: &Permission, namespace: Option<&str>) -> bool {
    granted.contains(p)
        || namespace.is_some_and(|ns| {
            granted.contains(&Permission {
                namespace: Some(ns.to_string()),
                ..p.clone()
            })
        })
}

fn topology(name: &str, spec: Value) -> StormTopology {
    let mut topology = support::fixtures::topology(NS, name, spec);
    topology.spec.workers = 4;
    topology
}

/// Plays a submit Job whose `fetch-jar` cannot download the jar.
fn fail_job(sim: &KubeSim, job: &Job) {
    let name = job.metadata.name.clone().unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{name}-p"), "namespace": NS, "labels": {"job-name": name}},
        "spec": {"containers": [{"name": "submit", "image": "x"}]},
    }))
    .unwrap();
    sim.put(&pod).unwrap();
    sim.apply_status::<Pod>(NS, &format!("{name}-p"), json!({"phase": "Failed",
        "initContainerStatuses": [{"name": "fetch-jar", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 2, "message": "JarDownloadFailed: 404"}}}]}))
        .unwrap();
    sim.apply_status::<Job>(
        NS,
        &name,
        json!({"failed": 3, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}),
    )
    .unwrap();
}

/// Changes an object in the store (not through the API: the request log stays the operator's).
fn edit<K>(sim: &KubeSim, name: &str, change: impl FnOnce(&mut Value))
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
{
    let object: K = sim.get(NS, name).unwrap();
    let mut value = serde_json::to_value(&object).unwrap();
    change(&mut value);
    sim.put(&serde_json::from_value::<K>(value).unwrap())
        .unwrap();
}

fn phase(sim: &KubeSim, name: &str) -> Option<TopologyPhase> {
    sim.get::<StormTopology>(NS, name)?.status?.phase
}

#[tokio::test]
async fn every_request_of_the_controllers_is_granted_and_every_grant_is_used() {
    let sim = KubeSim::start().await;
    let fake = FakeNimbus::start().await.unwrap();
    let shutdown = CancellationToken::new();
    let ctx = support::controller_ctx::test_context(
        &sim,
        fake.endpoint(),
        Duration::from_millis(50),
        &shutdown,
    );
    let mut lease = LeaseConfig::new(OPERATOR_NS, "storm-controller", "rbac-test");
    lease.renew_interval = Duration::from_millis(100);
    let (leading, election) = leader::spawn(sim.client(), lease, shutdown.clone());
    let controllers = tokio::spawn(controller::run(ctx, leading, shutdown.clone()));

    // The test acts on the store directly, so that the request log holds only the operator's.
    sim.put(&support::fixtures::managed_cluster()).unwrap();
    sim.put(&topology(
        "wc",
        json!({"workerPool": {"replicas": 2, "slotsPerSupervisor": 1,
        "rebalance": {"cooldownSeconds": 0, "waitSeconds": 0, "registrationTimeoutSeconds": 10},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "metrics": [{"type": "Storm",
            "storm": {"metric": "storm_topology_pending_tuples", "averageValue": "100"}}]}}}),
    ))
    .unwrap();
    sim.put(&topology("broken", json!({}))).unwrap();

    // Submit both: wc runs, broken's Job fails in fetch-jar.
    wait_until("two submit Jobs", || sim.list::<Job>(Some(NS)).len() == 2).await;
    for job in sim.list::<Job>(Some(NS)) {
        let name = job.metadata.name.clone().unwrap();
        if name.starts_with("wc-") {
            storm_controller::dev::play_submit_job(&sim, &fake.cluster(), &job).unwrap();
        } else {
            fail_job(&sim, &job);
        }
    }
    wait_until("wc running, broken failed", || {
        phase(&sim, "wc") == Some(TopologyPhase::Running)
            && phase(&sim, "broken") == Some(TopologyPhase::Failed)
    })
    .await;
    // A person deletes the failed Job to retry; it fails the same way again, and the repeated
    // Warning joins the first one's Event series (an Event patch).
    let failed = sim
        .list::<Job>(Some(NS))
        .into_iter()
        .find(|j| j.metadata.name.as_deref().unwrap().starts_with("broken-"))
        .unwrap();
    sim.delete::<Job>(NS, failed.metadata.name.as_deref().unwrap())
        .unwrap();
    wait_until("broken resubmitted", || {
        phase(&sim, "broken") == Some(TopologyPhase::Submitting)
            && sim
                .get::<Job>(NS, failed.metadata.name.as_deref().unwrap())
                .is_some()
    })
    .await;
    fail_job(
        &sim,
        &sim.get::<Job>(NS, failed.metadata.name.as_deref().unwrap())
            .unwrap(),
    );
    wait_until("broken failed again", || {
        phase(&sim, "broken") == Some(TopologyPhase::Failed)
    })
    .await;

    // The pool gets its supervisors, then is scaled down to one (rebalance, deletion costs, shrink).
    wait_until("the pool's Deployment", || {
        sim.get::<Deployment>(NS, "wc-pool").is_some()
    })
    .await;
    for _ in 0..200 {
        support::kubelet::play_pool(&sim, &fake, NS, "wc-pool", "wc");
        if fake.call_count("rebalance") >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fake.call_count("rebalance") >= 1,
        "the pool placed the topology"
    );
    // As the HPA would, through /scale.
    edit::<StormWorkerPool>(&sim, "wc", |v| v["spec"]["replicas"] = json!(1));
    for _ in 0..200 {
        support::kubelet::play_pool(&sim, &fake, NS, "wc-pool", "wc");
        let replicas = sim
            .get::<Deployment>(NS, "wc-pool")
            .and_then(|d| d.spec?.replicas);
        if replicas == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pool = sim.get::<StormWorkerPool>(NS, "wc").unwrap();
    assert_eq!(
        sim.get::<Deployment>(NS, &build::deployment_name(&pool))
            .and_then(|d| d.spec?.replicas),
        Some(1),
        "scaled down"
    );

    // No autoscaling: the HPA goes; no workerPool: the pool goes; no UI: its children go.
    edit::<StormTopology>(&sim, "wc", |v| {
        v["spec"]["workerPool"]["autoscaling"] = Value::Null;
    });
    wait_until("the HPA deleted", || {
        sim.get::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(NS, "wc")
            .is_none()
    })
    .await;
    edit::<StormTopology>(&sim, "wc", |v| v["spec"]["workerPool"] = Value::Null);
    wait_until("the pool deleted", || {
        sim.get::<StormWorkerPool>(NS, "wc").is_none()
    })
    .await;
    edit::<StormCluster>(&sim, "storm", |v| {
        v["spec"]["ui"] = json!({"enabled": false});
    });
    wait_until("the UI deleted", || {
        sim.get::<Deployment>(NS, "storm-ui").is_none()
    })
    .await;

    // Deletion: Jobs, kill, finalizer.
    for name in ["wc", "broken"] {
        sim.delete::<StormTopology>(NS, name).unwrap();
    }
    wait_until("both topologies gone", || {
        sim.list::<StormTopology>(Some(NS)).is_empty()
    })
    .await;
    shutdown.cancel();
    controllers.await.unwrap().unwrap();
    election.await.unwrap();

    let granted = granted();
    let mut used = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for request in sim.requests() {
        let Some((p, namespace)) = permission(&request) else {
            continue;
        };
        if allowed(&granted, &p, namespace.as_deref()) {
            used.insert(p.clone());
            used.insert(Permission { namespace, ..p });
        } else {
            denied.insert((p.verb, p.group, p.resource, namespace));
        }
    }
    assert!(
        denied.is_empty(),
        "requests the RBAC manifest does not allow: {denied:#?}"
    );
    let unused: Vec<&Permission> = granted.iter().filter(|p| !used.contains(p)).collect();
    assert!(
        unused.is_empty(),
        "grants no request used (least privilege): {unused:#?}"
    );
}
