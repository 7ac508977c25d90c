//! End to end on a real Kubernetes cluster: the one of the current kubeconfig, prepared by
//! `hack/e2e-kind.sh` (CRDs, RBAC, the metrics APIService and the operator installed; ZooKeeper and
//! the StormCluster of `hack/e2e/` applied). The tests that need the cluster are `#[ignore]`d, and
//! the script runs them with `cargo test --test e2e_kind -- --ignored`.
//!
//! NOT RUN against a real cluster on the project's CI machine: it has no Docker and no cluster, so
//! there `cargo nextest run --all-targets` only compiles them (and skips them as ignored). The one
//! test here that needs no cluster checks that their defaults match the manifests of `hack/e2e/`.
//! A dry run of their logic needs no cluster either: against the `dev` sandbox (in-memory API, fake
//! Nimbus that plays the submit Jobs, an external StormCluster `dev`),
//! `storm-controller dev --kubeconfig /tmp/k` and then
//! `KUBECONFIG=/tmp/k STORM_E2E_CLUSTER=dev cargo test --test e2e_kind -- --ignored`.
//!
//! Environment: `STORM_E2E_NAMESPACE` (default `storm`), `STORM_E2E_CLUSTER` (default `storm`),
//! `STORM_E2E_JAR_URL` (default: the storm-starter jar of `hack/e2e/stormtopology.yaml`).

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use storm_controller::crd::{self, StormCluster, StormTopology};

const DEFAULT_NAMESPACE: &str = "storm";
const DEFAULT_CLUSTER: &str = "storm";
/// Storm's own examples jar, the same Storm version as the cluster image `apache/storm:2.8.1`.
const STARTER_JAR: &str =
    "https://repo1.maven.org/maven2/org/apache/storm/storm-starter/2.8.1/storm-starter-2.8.1.jar";
/// Pure Java, takes the topology name from `args[0]`, acks its tuples.
const MAIN_CLASS: &str = "org.apache.storm.starter.StatefulTopology";
/// Not the script's topology (`e2e`): both run side by side on the one supervisor.
const TOPOLOGY: &str = "e2e-rust";
const VERSION: &str = "e2e-rust-1";

/// Image pulls (apache/storm, curl) and the jar download happen inside these bounds.
const CLUSTER_BOUND: Duration = Duration::from_secs(600);
const SUBMIT_BOUND: Duration = Duration::from_secs(600);
/// A deactivate, a kill with `killWaitSeconds: 5`, a finalizer release.
const STEP_BOUND: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_secs(3);

fn namespace() -> String {
    std::env::var("STORM_E2E_NAMESPACE").unwrap_or_else(|_| DEFAULT_NAMESPACE.into())
}

fn cluster_name() -> String {
    std::env::var("STORM_E2E_CLUSTER").unwrap_or_else(|_| DEFAULT_CLUSTER.into())
}

fn jar_url() -> String {
    std::env::var("STORM_E2E_JAR_URL").unwrap_or_else(|_| STARTER_JAR.into())
}

async fn client() -> kube::Client {
    // rustls is built with ring only; install it as the process default before kube needs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    kube::Client::try_default().await.unwrap_or_else(|e| {
        panic!("no Kubernetes cluster in the current kubeconfig ({e}); run hack/e2e-kind.sh")
    })
}

/// Polls `probe` until it returns `Ok`, or panics after `bound` with `what` and the last state
/// the probe described in its `Err`.
async fn eventually<T, F, Fut>(what: &str, bound: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + bound;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {bound:?} waiting for {what}; last seen: {state}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

fn condition_is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Waits until the StormCluster under test reports `Available=True` for its current generation.
async fn available_cluster(client: &kube::Client) -> StormCluster {
    let (ns, name) = (namespace(), cluster_name());
    let clusters: Api<StormCluster> = Api::namespaced(client.clone(), &ns);
    eventually(
        &format!("StormCluster {ns}/{name} to be Available"),
        CLUSTER_BOUND,
        || async {
            let cluster = clusters
                .get_opt(&name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no StormCluster {ns}/{name}: apply hack/e2e/"))?;
            let status = cluster.status.clone().unwrap_or_default();
            let current = status.observed_generation == cluster.metadata.generation;
            if current && condition_is_true(&status.conditions, crd::cluster::condition::AVAILABLE)
            {
                Ok(cluster)
            } else {
                Err(format!("{status:?}"))
            }
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs a real cluster: hack/e2e-kind.sh runs it"]
async fn the_crds_are_established_and_match_this_build() {
    let crds: Api<CustomResourceDefinition> = Api::all(client().await);
    for ours in crd::crds() {
        let name = ours.metadata.name.clone().expect("CRDs are named");
        let live = crds
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name} is not installed ({e}): apply crds/"));
        let conditions = live
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for wanted in ["Established", "NamesAccepted"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c.type_ == wanted && c.status == "True"),
                "CRD {name} is not {wanted}: {conditions:?}"
            );
        }
        assert_eq!(live.spec.names.kind, ours.spec.names.kind, "{name}");
        let versions = |c: &CustomResourceDefinition| {
            c.spec
                .versions
                .iter()
                .map(|v| (v.name.clone(), v.served, v.storage))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            versions(&live),
            versions(&ours),
            "CRD {name}: the cluster has other versions than this build (stale crds/?)"
        );
    }
}

#[tokio::test]
#[ignore = "needs a real cluster: hack/e2e-kind.sh runs it"]
async fn the_sample_cluster_becomes_available_with_a_leader_and_a_supervisor() {
    let cluster = available_cluster(&client().await).await;
    let status = cluster.status.expect("an Available cluster has a status");
    let leader = status
        .leader
        .expect("an Available cluster names its leader");
    assert!(
        status.supervisors_registered.unwrap_or(0) >= 1,
        "no supervisor registered in Nimbus: {:?}",
        status.supervisors_registered
    );
    // hack/e2e/ applies a managed cluster; an external one (the `dev` sandbox's, for a dry run of
    // these tests) has neither the operator's Nimbus pods nor necessarily an image.
    if cluster.spec.external.is_none() {
        assert!(
            leader.starts_with(&format!("{}-nimbus-0.", cluster_name()))
                && leader.ends_with(":6627"),
            "leader {leader:?} is not the Nimbus pod of the operator's StatefulSet"
        );
        let image = cluster.spec.image.expect("a managed cluster has an image");
        let tag = image.rsplit(':').next().expect("the image has a tag");
        let version = status.storm_version.unwrap_or_default();
        assert!(
            version.starts_with(tag),
            "Nimbus reports Storm {version:?}, the image is {image}"
        );
    }
}

#[tokio::test]
#[ignore = "needs a real cluster: hack/e2e-kind.sh runs it"]
async fn a_topology_runs_is_suspended_and_is_killed_on_deletion() {
    let client = client().await;
    available_cluster(&client).await;
    let ns = namespace();
    let topologies: Api<StormTopology> = Api::namespaced(client.clone(), &ns);

    // A leftover of an earlier run would make this one prove nothing.
    if topologies.get_opt(TOPOLOGY).await.expect("get").is_some() {
        let _ = topologies.delete(TOPOLOGY, &DeleteParams::default()).await;
        gone(&topologies, "the leftover from an earlier run").await;
    }

    let topology: StormTopology = serde_json::from_value(json!({
        "apiVersion": "storm.apache.org/v1alpha1",
        "kind": "StormTopology",
        "metadata": { "name": TOPOLOGY, "namespace": ns },
        "spec": {
            "clusterRef": { "name": cluster_name() },
            "jar": { "url": jar_url() },
            "mainClass": MAIN_CLASS,
            "args": ["$(STORM_TOPOLOGY_NAME)"],
            "config": { "topology.component.resources.onheap.memory.mb": 64 },
            "workers": 1,
            "version": VERSION,
            "killWaitSeconds": 5,
        },
    }))
    .expect("a valid StormTopology");
    topologies
        .create(&PostParams::default(), &topology)
        .await
        .expect("create the StormTopology");

    // Submitted by the Job, then read back from Nimbus.
    let running = eventually(
        "the topology to run: phase Running, Storm status ACTIVE, the spec's version",
        SUBMIT_BOUND,
        || async {
            let t = topologies.get(TOPOLOGY).await.map_err(|e| e.to_string())?;
            let s = t.status.clone().unwrap_or_default();
            let phase = s.phase.map(|p| format!("{p:?}"));
            // A failed submission is not retried until the spec changes: no point waiting.
            assert_ne!(
                phase.as_deref(),
                Some("Failed"),
                "the topology failed: {s:?}"
            );
            if phase.as_deref() == Some("Running")
                && s.storm_status.as_deref() == Some("ACTIVE")
                && s.running_version.as_deref() == Some(VERSION)
            {
                Ok(t)
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await;
    let status = running.status.clone().expect("status");
    assert_eq!(status.storm_name.as_deref(), Some(TOPOLOGY));
    let id = status.topology_id.unwrap_or_default();
    assert!(
        id.starts_with(&format!("{TOPOLOGY}-")),
        "Storm's topology id {id:?} is not of {TOPOLOGY}"
    );
    assert!(
        running
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == crd::TOPOLOGY_FINALIZER),
        "a submitted topology carries the finalizer {}",
        crd::TOPOLOGY_FINALIZER
    );

    // spec.suspend deactivates it in Storm.
    topologies
        .patch(
            TOPOLOGY,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "suspend": true } })),
        )
        .await
        .expect("patch spec.suspend");
    eventually(
        "the topology to be suspended: phase Suspended, Storm status INACTIVE",
        STEP_BOUND,
        || async {
            let s = topologies
                .get(TOPOLOGY)
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            let phase = s.phase.map(|p| format!("{p:?}"));
            if phase.as_deref() == Some("Suspended")
                && s.storm_status.as_deref() == Some("INACTIVE")
            {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await;

    // Deletion: the finalizer holds the object until Storm no longer lists the topology.
    topologies
        .delete(TOPOLOGY, &DeleteParams::default())
        .await
        .expect("delete the StormTopology");
    gone(&topologies, "the deleted topology (finalizer released)").await;
}

/// Waits until the test's StormTopology no longer exists.
async fn gone(topologies: &Api<StormTopology>, what: &str) {
    eventually(what, STEP_BOUND, || async {
        match topologies.get_opt(TOPOLOGY).await {
            Ok(None) => Ok(()),
            Ok(Some(t)) => Err(format!(
                "still there: finalizers {:?}, status {:?}",
                t.metadata.finalizers, t.status
            )),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
}

/// Runs here, without a cluster: the defaults above are the objects of `hack/e2e/` that the script
/// applies, and the jar is Storm's own storm-starter of the cluster image's Storm version.
#[test]
fn the_defaults_match_the_manifests_of_hack_e2e() {
    let cluster = support::read_yaml("hack/e2e/stormcluster.yaml");
    assert_eq!(cluster["kind"], "StormCluster");
    assert_eq!(cluster["metadata"]["name"], DEFAULT_CLUSTER);
    assert_eq!(cluster["metadata"]["namespace"], DEFAULT_NAMESPACE);

    let topology = support::read_yaml("hack/e2e/stormtopology.yaml");
    assert_eq!(topology["kind"], "StormTopology");
    assert_eq!(topology["metadata"]["namespace"], DEFAULT_NAMESPACE);
    assert_ne!(
        topology["metadata"]["name"], TOPOLOGY,
        "the script's topology and this test's must not collide"
    );
    assert_eq!(topology["spec"]["clusterRef"]["name"], DEFAULT_CLUSTER);
    assert_eq!(topology["spec"]["jar"]["url"], STARTER_JAR);
    assert_eq!(topology["spec"]["mainClass"], MAIN_CLASS);
    assert_eq!(
        topology["spec"]["args"],
        json!(["$(STORM_TOPOLOGY_NAME)"]),
        "StatefulTopology takes its Storm name from args[0]"
    );

    let image = cluster["spec"]["image"].as_str().expect("spec.image");
    let (repo, storm_version) = image.rsplit_once(':').expect("a tagged image");
    assert_eq!(repo, "apache/storm");
    assert_eq!(
        STARTER_JAR,
        format!(
            "https://repo1.maven.org/maven2/org/apache/storm/storm-starter/{storm_version}/storm-starter-{storm_version}.jar"
        ),
        "the jar is org.apache.storm:storm-starter:{storm_version} in Maven Central's layout"
    );
    assert!(
        cluster["spec"]["supervisors"]["slotsPerSupervisor"]
            .as_i64()
            .unwrap_or(0)
            >= 2,
        "two topologies of one worker each run at once on the supervisors"
    );
}
