//! Plays the ReplicaSet controller, the kubelet and Storm's supervisor registration for a worker
//! pool whose Deployment the operator manages, in tests that run the real reconcilers.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use storm_controller::kubesim::KubeSim;
use storm_controller::nimbus::fake::{FakeNimbus, fake_supervisor};

/// Makes the pods of Deployment `ns/deployment` match its replicas (running, with IPs
/// `10.0.0.<i+1>`, the highest names removed first), sets its status, and registers one
/// supervisor of one slot per pod in the fake Nimbus, the first `topology`'s workers busy.
pub fn play_pool(sim: &KubeSim, fake: &FakeNimbus, ns: &str, deployment: &str, topology: &str) {
    let Some(live) = sim.get::<Deployment>(ns, deployment) else {
        return;
    };
    let spec = live.spec.clone().unwrap_or_default();
    let want = usize::try_from(spec.replicas.unwrap_or(0)).unwrap_or(0);
    let labels = spec.selector.match_labels.unwrap_or_default();
    let mut pods: Vec<Pod> = sim
        .list::<Pod>(Some(ns))
        .into_iter()
        .filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&format!("{deployment}-")))
        })
        .collect();
    pods.sort_by_key(|p| p.metadata.name.clone());
    while pods.len() > want {
        let gone = pods.pop().unwrap();
        sim.delete::<Pod>(ns, gone.metadata.name.as_deref().unwrap())
            .unwrap();
    }
    for i in pods.len()..want {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{deployment}-{i}"), "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "supervisor", "image": "apache/storm:2.8.1"}]},
            "status": {"phase": "Running", "podIP": format!("10.0.0.{}", i + 1)},
        }))
        .unwrap();
        sim.put(&pod).unwrap();
    }
    sim.apply_status::<Deployment>(
        ns,
        deployment,
        json!({"replicas": want, "readyReplicas": want, "updatedReplicas": want}),
    )
    .unwrap();
    let workers = fake
        .cluster()
        .topology(topology)
        .map_or(0, |t| t.num_workers);
    fake.cluster().set_supervisors(
        (0..want)
            .map(|i| {
                let busy = i32::from(i32::try_from(i).unwrap_or(i32::MAX) < workers);
                fake_supervisor(&format!("10.0.0.{}", i + 1), 1, busy)
            })
            .collect(),
    );
}
