//! The Kubernetes API double, driven through an unchanged `kube::Client` over real HTTP.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use storm_controller::crd::{StormCluster, StormTopology, StormWorkerPool};
use storm_controller::kubesim::{AccessRule, KubeSim, KubeSimOptions, ReviewFault};

/// Bounds every test: a hang is a failure, not a stuck CI job.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test finished within 20 s")
}

/// Polls `check` until it holds (each poll is a real request or a store read).
async fn eventually(mut check: impl FnMut() -> bool) {
    while !check() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "storm"}},
        "data": data,
    }))
    .expect("configmap")
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }))
    .expect("deployment")
}

fn topology(name: &str, cluster: &str) -> StormTopology {
    serde_json::from_value(json!({
        "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormTopology",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "clusterRef": {"name": cluster},
            "jar": {"image": "registry.example.com/t:1", "path": "/opt/t.jar"},
            "mainClass": "com.example.Main",
            "workers": 2,
        },
    }))
    .expect("topology")
}

fn cluster(name: &str) -> StormCluster {
    serde_json::from_value(json!({
        "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormCluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"external": {"nimbusSeeds": ["nimbus:6627"]}},
    }))
    .expect("cluster")
}

fn api_code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    owner
        .controller_owner_ref(&())
        .expect("owner has name and uid")
}

#[tokio::test]
async fn configmap_crud_and_all_patch_types() {
    within(async {
        let sim = KubeSim::start().await;
        let api: Api<ConfigMap> = Api::default_namespaced(sim.client());

        let created = api.create(&PostParams::default(), &cm("a", json!({"k": "v"}))).await.expect("create");
        assert_eq!(created.namespace().as_deref(), Some("default"));
        assert!(created.uid().is_some());
        assert_eq!(created.meta().generation, Some(1));
        assert!(created.meta().creation_timestamp.is_some());
        let (code, reason) = api_code(api.create(&PostParams::default(), &cm("a", json!({}))).await);
        assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

        let mut generated = cm("", json!({}));
        generated.metadata.generate_name = Some("gen-".into());
        let generated = api.create(&PostParams::default(), &generated).await.expect("generateName");
        assert!(generated.name_any().starts_with("gen-") && generated.name_any().len() == 9);

        let got = api.get("a").await.expect("get");
        assert_eq!(got.data.as_ref().and_then(|d| d.get("k")).map(String::as_str), Some("v"));
        assert_eq!(api.list(&ListParams::default()).await.expect("list").items.len(), 2);

        let mut replaced = got.clone();
        replaced.data = Some([("k".to_string(), "w".to_string())].into());
        let replaced = api.replace("a", &PostParams::default(), &replaced).await.expect("replace");
        assert_ne!(replaced.resource_version(), got.resource_version());

        let pp = PatchParams::default();
        let merged = api.patch("a", &pp, &Patch::Merge(json!({"data": {"m": "1"}}))).await.expect("merge");
        let strategic = api.patch("a", &pp, &Patch::Strategic(json!({"data": {"s": "1"}}))).await.expect("strategic");
        let jp: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/data/k", "value": "w"},
            {"op": "replace", "path": "/data/k", "value": "j"},
        ]))
        .expect("json patch");
        let jsonp = api.patch("a", &pp, &Patch::Json::<()>(jp)).await.expect("json patch");
        let bad: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/data/k", "value": "nope"}])).expect("json patch");
        assert_eq!(api_code(api.patch("a", &pp, &Patch::Json::<()>(bad)).await).0, 422);
        let applied = api
            .patch("a", &PatchParams::apply("tester").force(), &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"ssa": "1"},
            })))
            .await
            .expect("apply");
        let data = applied.data.clone().unwrap_or_default();
        assert_eq!(data.get("m").map(String::as_str), Some("1"));
        assert_eq!(data.get("s").map(String::as_str), Some("1"));
        assert_eq!(data.get("k").map(String::as_str), Some("j"));
        assert_eq!(data.get("ssa").map(String::as_str), Some("1"));
        let managers: Vec<_> = applied.managed_fields().iter().filter_map(|m| m.manager.clone()).collect();
        assert!(managers.contains(&"tester".to_string()), "{managers:?}");
        assert!(merged.data.as_ref().is_some_and(|d| d.contains_key("m")));
        assert!(strategic.data.as_ref().is_some_and(|d| d.contains_key("s") && d.contains_key("m")));
        assert_eq!(jsonp.data.as_ref().and_then(|d| d.get("k")).map(String::as_str), Some("j"));

        // SSA creates when absent.
        let new = api
            .patch("b", &PatchParams::apply("tester"), &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"x": "y"},
            })))
            .await
            .expect("apply creates");
        assert_eq!(new.meta().generation, Some(1));
        assert_eq!(api_code(api.patch("zz", &pp, &Patch::Merge(json!({}))).await).0, 404);

        let deleted = api.delete("a", &DeleteParams::default()).await.expect("delete");
        assert!(deleted.is_right(), "removed objects answer with a Status");
        assert_eq!(api_code(api.get("a").await), (404, "NotFound".to_string()));
        assert!(sim.get::<ConfigMap>("default", "a").is_none());
        assert!(sim.get::<ConfigMap>("default", "b").is_some());
    })
    .await;
}

#[tokio::test]
async fn stale_resource_version_conflicts_and_noop_writes_keep_it() {
    within(async {
        let sim = KubeSim::start().await;
        let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
        let first = api
            .create(&PostParams::default(), &cm("c", json!({"a": "1"})))
            .await
            .expect("create");
        let mut second = first.clone();
        second.data = Some([("a".to_string(), "2".to_string())].into());
        let second = api
            .replace("c", &PostParams::default(), &second)
            .await
            .expect("replace");
        let mut stale = first.clone();
        stale.data = Some([("a".to_string(), "3".to_string())].into());
        assert_eq!(
            api_code(api.replace("c", &PostParams::default(), &stale).await),
            (409, "Conflict".to_string())
        );
        // An identical write is a no-op: same resourceVersion, no event.
        let same = api
            .replace("c", &PostParams::default(), &second)
            .await
            .expect("no-op replace");
        assert_eq!(same.resource_version(), second.resource_version());
        let rv = sim.resource_version();
        let applied = api
            .patch(
                "c",
                &PatchParams::apply("m"),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "2"}})),
            )
            .await
            .expect("apply");
        // The first apply by a new manager records it; repeating it changes nothing.
        let again = api
            .patch(
                "c",
                &PatchParams::apply("m"),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "2"}})),
            )
            .await
            .expect("apply again");
        assert_eq!(again.resource_version(), applied.resource_version());
        assert!(sim.resource_version() <= rv + 1);
    })
    .await;
}

#[tokio::test]
async fn generation_status_and_scale_of_a_deployment() {
    within(async {
        let sim = KubeSim::start().await;
        let api: Api<Deployment> = Api::default_namespaced(sim.client());
        let mut d = deployment("web", 2);
        d.status = Some(serde_json::from_value(json!({"readyReplicas": 9})).expect("status"));
        let d = api
            .create(&PostParams::default(), &d)
            .await
            .expect("create");
        assert_eq!(d.meta().generation, Some(1));
        assert!(
            d.status.is_none(),
            "create ignores .status for kinds with /status"
        );

        let labelled = api
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await
            .expect("label");
        assert_eq!(
            labelled.meta().generation,
            Some(1),
            "metadata changes keep the generation"
        );

        let spec = api
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"minReadySeconds": 5}, "status": {"replicas": 7}})),
            )
            .await
            .expect("spec");
        assert_eq!(spec.meta().generation, Some(2));
        assert!(spec.status.is_none(), "main-resource writes ignore .status");

        // Play the deployment controller.
        let st: Deployment = sim
            .apply_status("default", "web", json!({"replicas": 2, "readyReplicas": 2}))
            .expect("status");
        assert_eq!(st.status.as_ref().and_then(|s| s.ready_replicas), Some(2));
        assert_eq!(
            st.meta().generation,
            Some(2),
            "status writes keep the generation"
        );

        let via_api = api
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": {"observedGeneration": 2}, "spec": {"replicas": 50}}),
                ),
            )
            .await
            .expect("patch status");
        assert_eq!(
            via_api.spec.as_ref().and_then(|s| s.replicas),
            Some(2),
            "/status writes change only .status"
        );
        assert_eq!(
            via_api.status.as_ref().and_then(|s| s.observed_generation),
            Some(2)
        );

        let scale = api.get_scale("web").await.expect("get scale");
        assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(2));
        let status = scale.status.expect("scale status");
        assert_eq!(status.replicas, 2);
        assert_eq!(status.selector.as_deref(), Some("app=web"));
        let scaled = api
            .patch_scale(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 5}})),
            )
            .await
            .expect("patch scale");
        assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(5));
        let d = api.get("web").await.expect("get");
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(5));
        assert_eq!(d.meta().generation, Some(3), "scaling is a spec change");
        let mut put = api.get_scale("web").await.expect("scale");
        put.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec { replicas: Some(1) });
        let put = api
            .replace_scale("web", &PostParams::default(), &put)
            .await
            .expect("replace scale");
        assert_eq!(put.spec.and_then(|s| s.replicas), Some(1));
    })
    .await;
}

#[tokio::test]
async fn storm_custom_resources_status_and_worker_pool_scale() {
    within(async {
        let sim = KubeSim::start().await;
        let topologies: Api<StormTopology> = Api::default_namespaced(sim.client());
        let t = topologies
            .create(&PostParams::default(), &topology("t1", "c1"))
            .await
            .expect("create");
        assert!(t.status.is_none());
        let t = topologies
            .patch_status(
                "t1",
                &PatchParams::apply("storm-controller"),
                &Patch::Apply(json!({
                    "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormTopology",
                    "status": {"observedGeneration": 1},
                })),
            )
            .await
            .expect("status apply");
        assert_eq!(
            t.status.as_ref().and_then(|s| s.observed_generation),
            Some(1)
        );
        let mut changed = t.clone();
        changed.spec.workers = 3;
        changed.status = None;
        let mut unconditional = changed.clone();
        unconditional.metadata.resource_version = None;
        assert_eq!(
            api_code(
                topologies
                    .replace("t1", &PostParams::default(), &unconditional)
                    .await
            )
            .0,
            422,
            "custom resources need a resourceVersion on PUT"
        );
        let changed = topologies
            .replace("t1", &PostParams::default(), &changed)
            .await
            .expect("replace");
        assert_eq!(changed.meta().generation, Some(2));
        assert_eq!(
            changed.status.and_then(|s| s.observed_generation),
            Some(1),
            "replace keeps .status"
        );
        // Merge, JSON and apply patches work on custom resources; strategic merge does not.
        let pp = PatchParams::default();
        let merged = topologies
            .patch("t1", &pp, &Patch::Merge(json!({"spec": {"args": ["a"]}})))
            .await
            .expect("merge");
        assert_eq!(merged.spec.args, ["a"]);
        let jp: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/spec/workers", "value": 3},
            {"op": "replace", "path": "/spec/workers", "value": 4},
        ]))
        .expect("json patch");
        let patched = topologies
            .patch("t1", &pp, &Patch::Json::<()>(jp))
            .await
            .expect("json patch");
        assert_eq!(patched.spec.workers, 4);
        let applied = topologies
            .patch(
                "t1",
                &PatchParams::apply("storm-controller"),
                &Patch::Apply(json!({
                    "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormTopology",
                    "spec": {"mainClass": "com.example.Other"},
                })),
            )
            .await
            .expect("apply");
        assert_eq!(applied.spec.main_class, "com.example.Other");
        assert_eq!(applied.meta().generation, Some(5));
        let smp = topologies
            .patch(
                "t1",
                &pp,
                &Patch::Strategic(json!({"spec": {"workers": 5}})),
            )
            .await;
        assert_eq!(api_code(smp), (415, "UnsupportedMediaType".to_string()));
        // selectableFields from the CRD work as field selectors.
        topologies
            .create(&PostParams::default(), &topology("t2", "c2"))
            .await
            .expect("create");
        let on_c2 = topologies
            .list(&ListParams::default().fields("spec.clusterRef.name=c2"))
            .await
            .expect("list");
        assert_eq!(
            on_c2.items.iter().map(|t| t.name_any()).collect::<Vec<_>>(),
            vec!["t2"]
        );
        assert_eq!(
            api_code(
                topologies
                    .list(&ListParams::default().fields("spec.workers=2"))
                    .await
            )
            .0,
            400
        );

        let pools: Api<StormWorkerPool> = Api::default_namespaced(sim.client());
        let pool: StormWorkerPool = serde_json::from_value(json!({
            "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormWorkerPool",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"topologyRef": {"name": "t1"}, "replicas": 3},
        }))
        .expect("pool");
        pools
            .create(&PostParams::default(), &pool)
            .await
            .expect("create pool");
        sim.apply_status::<StormWorkerPool>(
            "default",
            "p",
            json!({"replicas": 2, "readyReplicas": 2, "selector": "app=p"}),
        )
        .expect("status");
        let scale = pools.get_scale("p").await.expect("scale");
        assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
        let st = scale.status.expect("status");
        assert_eq!((st.replicas, st.selector.as_deref()), (2, Some("app=p")));
        pools
            .patch_scale(
                "p",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 6}})),
            )
            .await
            .expect("scale");
        let p = sim.get::<StormWorkerPool>("default", "p").expect("stored");
        assert_eq!(p.spec.template.replicas, 6);
        assert_eq!(p.status.map(|s| s.replicas), Some(2));
        let gone = topologies
            .delete("t2", &DeleteParams::default())
            .await
            .expect("delete");
        assert!(gone.is_right());
        assert!(sim.get::<StormTopology>("default", "t2").is_none());
    })
    .await;
}

#[tokio::test]
async fn label_selectors_and_pagination() {
    within(async {
        let sim = KubeSim::start().await;
        let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
        for (name, tier) in [("a", "ui"), ("b", "nimbus"), ("c", "supervisor")] {
            let mut m = cm(name, json!({}));
            m.labels_mut().insert("tier".into(), tier.into());
            api.create(&PostParams::default(), &m)
                .await
                .expect("create");
        }
        let names = |l: kube::core::ObjectList<ConfigMap>| {
            l.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
        };
        let q = |s: &str| ListParams::default().labels(s);
        assert_eq!(names(api.list(&q("tier=ui")).await.expect("eq")), ["a"]);
        assert_eq!(
            names(api.list(&q("tier!=ui")).await.expect("ne")),
            ["b", "c"]
        );
        assert_eq!(
            names(api.list(&q("tier in (ui,nimbus)")).await.expect("in")),
            ["a", "b"]
        );
        assert_eq!(
            names(api.list(&q("tier notin (ui,nimbus)")).await.expect("notin")),
            ["c"]
        );
        assert_eq!(
            names(api.list(&q("app,tier")).await.expect("exists")).len(),
            3
        );
        assert!(names(api.list(&q("!tier")).await.expect("not exists")).is_empty());
        assert_eq!(api_code(api.list(&q("tier in ui")).await).0, 400);

        let page = api
            .list(&ListParams::default().limit(2))
            .await
            .expect("page 1");
        assert_eq!(names(page.clone()), ["a", "b"]);
        let token = page.metadata.continue_.clone().expect("continue token");
        let rest = api
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .expect("page 2");
        assert_eq!(names(rest.clone()), ["c"]);
        assert!(rest.metadata.continue_.is_none());

        // All namespaces, and a namespaced object elsewhere.
        let other: Api<ConfigMap> = Api::namespaced(sim.client(), "other");
        other
            .create(&PostParams::default(), &cm("a", json!({})))
            .await
            .expect("other ns");
        let all: Api<ConfigMap> = Api::all(sim.client());
        assert_eq!(
            all.list(&ListParams::default())
                .await
                .expect("all")
                .items
                .len(),
            4
        );
        let named = all
            .list(&ListParams::default().fields("metadata.namespace=other"))
            .await
            .expect("by ns");
        assert_eq!(named.items.len(), 1);
        let ns: Api<Namespace> = Api::all(sim.client());
        assert!(
            ns.get("default").await.is_ok(),
            "cluster-scoped kinds and seeded namespaces"
        );
    })
    .await;
}

#[tokio::test]
async fn watch_resumes_and_expired_resource_version_is_410() {
    within(async {
        let options = KubeSimOptions {
            history_capacity: 8,
            ..KubeSimOptions::default()
        };
        let sim = KubeSim::start_with(options).await.expect("start");
        let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
        let a = api
            .create(&PostParams::default(), &cm("w", json!({})))
            .await
            .expect("create");
        let from = a.resource_version().expect("rv");
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": "1"}})),
        )
        .await
        .expect("patch");
        api.delete("w", &DeleteParams::default())
            .await
            .expect("delete");

        let wp = WatchParams::default().timeout(5);
        let mut stream = api.watch(&wp, &from).await.expect("watch").boxed();
        match stream.try_next().await.expect("event") {
            Some(WatchEvent::Modified(o)) => assert_eq!(
                o.data.and_then(|d| d.get("x").cloned()).as_deref(),
                Some("1")
            ),
            other => panic!("expected MODIFIED, got {other:?}"),
        }
        assert!(matches!(
            stream.try_next().await.expect("event"),
            Some(WatchEvent::Deleted(_))
        ));
        drop(stream);
        // The same history through an all-namespaces watch.
        let all: Api<ConfigMap> = Api::all(sim.client());
        let seen: Vec<_> = all
            .watch(&WatchParams::default().timeout(1), &from)
            .await
            .expect("watch all")
            .try_filter(|e| std::future::ready(!matches!(e, WatchEvent::Bookmark(_))))
            .try_collect()
            .await
            .expect("events");
        assert!(
            matches!(
                seen.as_slice(),
                [WatchEvent::Modified(_), WatchEvent::Deleted(_)]
            ),
            "{seen:?}"
        );

        // Push the first events out of the history.
        for i in 0..10 {
            api.create(&PostParams::default(), &cm(&format!("f{i}"), json!({})))
                .await
                .expect("create");
        }
        let mut stream = api.watch(&wp, &from).await.expect("watch").boxed();
        match stream.try_next().await.expect("event") {
            Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
            other => panic!("expected a 410 ERROR event, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn watcher_and_reflector_see_added_modified_deleted() {
    within(async {
        let sim = KubeSim::start().await;
        let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
        api.create(&PostParams::default(), &cm("before", json!({})))
            .await
            .expect("create");
        let (reader, writer) = reflector::store::<ConfigMap>();
        let cfg = watcher::Config::default().labels("app=storm").timeout(2);
        let events = reflector(writer, watcher(api.clone(), cfg)).applied_objects();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(ev) = events.next().await {
                if let Ok(o) = ev {
                    let _ = tx.send(o.name_any());
                }
            }
        });
        reader.wait_until_ready().await.expect("initial list");
        assert_eq!(reader.state().len(), 1);
        api.create(&PostParams::default(), &cm("live", json!({})))
            .await
            .expect("create");
        api.patch(
            "live",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .expect("patch");
        eventually(|| {
            reader
                .get(&reflector::ObjectRef::new("live").within("default"))
                .is_some_and(|o| o.data.as_ref().is_some_and(|d| d.contains_key("v")))
        })
        .await;
        // Moving out of the label selection reads as a deletion.
        api.patch(
            "before",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": null}}})),
        )
        .await
        .expect("unlabel");
        api.delete("live", &DeleteParams::default())
            .await
            .expect("delete");
        eventually(|| reader.state().is_empty()).await;
        // Watch timeouts (2 s) end watches; the watcher resumes and still sees new objects.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        api.create(&PostParams::default(), &cm("after-resume", json!({})))
            .await
            .expect("create");
        eventually(|| {
            reader
                .state()
                .iter()
                .any(|o| o.name_any() == "after-resume")
        })
        .await;
        // The applied objects the watcher yielded include the live one and the one after the resume.
        let mut seen = Vec::new();
        while !(seen.iter().any(|n| n == "live") && seen.iter().any(|n| n == "after-resume")) {
            seen.push(
                rx.recv()
                    .await
                    .expect("the watcher stream is still running"),
            );
        }
        // The watcher re-watches after each server-side timeout.
        eventually(|| sim.requests().iter().filter(|r| r.is_watch()).count() >= 2).await;
        task.abort();
    })
    .await;
}

#[derive(Debug, thiserror::Error)]
#[error("cleanup failed")]
struct Never;

#[tokio::test]
async fn finalizer_helper_flow() {
    within(async {
        let sim = KubeSim::start().await;
        let api: Api<StormTopology> = Api::default_namespaced(sim.client());
        api.create(&PostParams::default(), &topology("fin", "c"))
            .await
            .expect("create");
        let cleaned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let run = |obj: StormTopology| {
            let api = api.clone();
            let cleaned = cleaned.clone();
            async move {
                finalizer(
                    &api,
                    "storm.apache.org/topology",
                    Arc::new(obj),
                    |ev| async move {
                        if let FinalizerEvent::Cleanup(_) = ev {
                            cleaned.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                        Ok::<_, Never>(Action::await_change())
                    },
                )
                .await
                .expect("finalizer step")
            }
        };
        // First pass adds the finalizer.
        run(api.get("fin").await.expect("get")).await;
        let obj = api.get("fin").await.expect("get");
        assert_eq!(obj.finalizers(), ["storm.apache.org/topology"]);
        // Delete: the object stays with a deletionTimestamp.
        let pending = api
            .delete("fin", &DeleteParams::default())
            .await
            .expect("delete");
        let pending = pending.left().expect("still there: the object is returned");
        assert!(pending.meta().deletion_timestamp.is_some());
        assert!(api.get("fin").await.is_ok());
        // Second pass runs cleanup and removes the finalizer: the object goes.
        run(api.get("fin").await.expect("get")).await;
        assert!(cleaned.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(api_code(api.get("fin").await).0, 404);
    })
    .await;
}

#[tokio::test]
async fn owner_reference_cascade() {
    within(async {
        let sim = KubeSim::start().await;
        let client = sim.client();
        let clusters: Api<StormCluster> = Api::default_namespaced(client.clone());
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let deployments: Api<Deployment> = Api::default_namespaced(client.clone());

        // Background (default): dependents go, a dependent's finalizer is honoured.
        let owner = clusters
            .create(&PostParams::default(), &cluster("bg"))
            .await
            .expect("owner");
        let mut child = cm("bg-config", json!({}));
        child.owner_references_mut().push(owner_ref(&owner));
        cms.create(&PostParams::default(), &child)
            .await
            .expect("child");
        let mut held = deployment("bg-held", 1);
        held.owner_references_mut().push(owner_ref(&owner));
        held.finalizers_mut().push("example.com/hold".into());
        deployments
            .create(&PostParams::default(), &held)
            .await
            .expect("held child");
        clusters
            .delete("bg", &DeleteParams::default())
            .await
            .expect("delete");
        assert!(sim.get::<StormCluster>("default", "bg").is_none());
        assert!(sim.get::<ConfigMap>("default", "bg-config").is_none());
        let held = deployments
            .get("bg-held")
            .await
            .expect("held by its finalizer");
        assert!(held.meta().deletion_timestamp.is_some());
        let more = Patch::Merge(
            json!({"metadata": {"finalizers": ["example.com/hold", "example.com/late"]}}),
        );
        assert_eq!(
            api_code(
                deployments
                    .patch("bg-held", &PatchParams::default(), &more)
                    .await
            )
            .0,
            422,
            "no new finalizers while deleting"
        );
        deployments
            .patch(
                "bg-held",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .expect("release");
        assert!(sim.get::<Deployment>("default", "bg-held").is_none());

        // Foreground: the owner waits for its dependents.
        let owner = clusters
            .create(&PostParams::default(), &cluster("fg"))
            .await
            .expect("owner");
        let mut child = cm("fg-child", json!({}));
        child.owner_references_mut().push(owner_ref(&owner));
        child.finalizers_mut().push("example.com/hold".into());
        cms.create(&PostParams::default(), &child)
            .await
            .expect("child");
        clusters
            .delete("fg", &DeleteParams::foreground())
            .await
            .expect("delete");
        let waiting = clusters.get("fg").await.expect("owner waits");
        assert!(
            waiting
                .finalizers()
                .contains(&"foregroundDeletion".to_string())
        );
        cms.patch(
            "fg-child",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("release");
        assert!(sim.get::<ConfigMap>("default", "fg-child").is_none());
        assert!(sim.get::<StormCluster>("default", "fg").is_none());

        // Orphan: dependents stay without the owner reference.
        let owner = clusters
            .create(&PostParams::default(), &cluster("or"))
            .await
            .expect("owner");
        let mut child = cm("or-child", json!({}));
        child.owner_references_mut().push(owner_ref(&owner));
        cms.create(&PostParams::default(), &child)
            .await
            .expect("child");
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..DeleteParams::default()
        };
        clusters.delete("or", &dp).await.expect("delete");
        let kept = cms.get("or-child").await.expect("orphaned child stays");
        assert!(kept.owner_references().is_empty());
    })
    .await;
}

#[tokio::test]
async fn controller_reconciles_configmap_from_custom_resource() {
    use kube::runtime::controller::Error as CtrlError;

    #[derive(Debug, thiserror::Error)]
    #[error(transparent)]
    struct ReconcileError(#[from] kube::Error);

    async fn reconcile(
        obj: Arc<StormCluster>,
        client: Arc<kube::Client>,
    ) -> Result<Action, ReconcileError> {
        let ns = obj.namespace().unwrap_or_default();
        let cms: Api<ConfigMap> = Api::namespaced((*client).clone(), &ns);
        let mut child = cm(
            &format!("{}-config", obj.name_any()),
            json!({"seeds": "nimbus:6627"}),
        );
        child.metadata.namespace = Some(ns);
        child
            .owner_references_mut()
            .push(obj.controller_owner_ref(&()).expect("owner ref"));
        cms.patch(
            &child.name_any(),
            &PatchParams::apply("storm-controller").force(),
            &Patch::Apply(&child),
        )
        .await?;
        Ok(Action::requeue(Duration::from_secs(300)))
    }

    within(async {
        let sim = KubeSim::start().await;
        let client = sim.client();
        let clusters: Api<StormCluster> = Api::default_namespaced(client.clone());
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let controller = Controller::new(clusters.clone(), watcher::Config::default())
            .owns(cms.clone(), watcher::Config::default())
            .graceful_shutdown_on(async move {
                let _ = stop_rx.await;
            })
            .run(
                reconcile,
                |_, _: &ReconcileError, _| Action::requeue(Duration::from_secs(1)),
                Arc::new(client.clone()),
            )
            .for_each(|r| async move {
                if let Err(e) = r
                    && !matches!(e, CtrlError::ObjectNotFound(_))
                {
                    eprintln!("reconcile error: {e}");
                }
            });
        let handle = tokio::spawn(controller);

        clusters
            .create(&PostParams::default(), &cluster("main"))
            .await
            .expect("create");
        eventually(|| sim.get::<ConfigMap>("default", "main-config").is_some()).await;
        let child = cms.get("main-config").await.expect("child");
        assert_eq!(
            child.owner_references().first().map(|o| o.kind.as_str()),
            Some("StormCluster")
        );
        assert!(
            child
                .managed_fields()
                .iter()
                .any(|m| m.manager.as_deref() == Some("storm-controller"))
        );

        // Someone edits the child: the controller (it owns ConfigMaps) puts it back.
        cms.patch(
            "main-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"seeds": "wrong"}})),
        )
        .await
        .expect("edit");
        eventually(|| {
            sim.get::<ConfigMap>("default", "main-config")
                .and_then(|c| c.data)
                .is_some_and(|d| d.get("seeds").map(String::as_str) == Some("nimbus:6627"))
        })
        .await;

        // Steady state: a reconcile of an unchanged cluster sends its apply, which changes nothing.
        let child_rv = cms
            .get("main-config")
            .await
            .expect("child")
            .metadata
            .resource_version;
        sim.clear_requests();
        clusters
            .patch(
                "main",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"poke": "1"}}})),
            )
            .await
            .expect("poke");
        let rv_after_poke = sim.resource_version();
        eventually(|| {
            sim.requests().iter().any(|r| {
                r.method == http::Method::PATCH && r.path.ends_with("/configmaps/main-config")
            })
        })
        .await;
        assert_eq!(
            cms.get("main-config")
                .await
                .expect("child")
                .metadata
                .resource_version,
            child_rv
        );
        assert_eq!(
            sim.resource_version(),
            rv_after_poke,
            "the no-op apply bumped no resourceVersion"
        );

        // Deleting the cluster garbage-collects the child.
        clusters
            .delete("main", &DeleteParams::default())
            .await
            .expect("delete");
        eventually(|| sim.get::<ConfigMap>("default", "main-config").is_none()).await;
        let _ = stop_tx.send(());
        handle.await.expect("controller stopped");
    })
    .await;
}

#[tokio::test]
async fn token_and_subject_access_reviews_are_scripted() {
    within(async {
        let sim = KubeSim::start().await;
        let client = sim.client();
        sim.add_token(
            "good",
            UserInfo {
                username: Some("alice".into()),
                groups: Some(vec!["dev".into()]),
                ..Default::default()
            },
        );
        sim.allow("alice", "get", "custom.metrics.k8s.io", "*");
        sim.add_access_rule(AccessRule {
            user: "bob".into(),
            verb: "*".into(),
            group: "*".into(),
            resource: "*".into(),
            allowed: false,
        });

        let trs: Api<TokenReview> = Api::all(client.clone());
        let review = |token: &str| TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let ok = trs
            .create(&PostParams::default(), &review("good"))
            .await
            .expect("token review");
        let st = ok.status.expect("status");
        assert_eq!(st.authenticated, Some(true));
        assert_eq!(st.user.and_then(|u| u.username).as_deref(), Some("alice"));
        let bad = trs
            .create(&PostParams::default(), &review("bad"))
            .await
            .expect("token review");
        assert_eq!(bad.status.and_then(|s| s.authenticated), Some(false));

        let sars: Api<SubjectAccessReview> = Api::all(client.clone());
        let sar = |user: &str| SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.into()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some("get".into()),
                    group: Some("custom.metrics.k8s.io".into()),
                    resource: Some("pods".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = |r: SubjectAccessReview| r.status.map(|s| s.allowed);
        assert_eq!(
            allowed(
                sars.create(&PostParams::default(), &sar("alice"))
                    .await
                    .expect("sar")
            ),
            Some(true)
        );
        assert_eq!(
            allowed(
                sars.create(&PostParams::default(), &sar("bob"))
                    .await
                    .expect("sar")
            ),
            Some(false)
        );
        assert_eq!(
            allowed(
                sars.create(&PostParams::default(), &sar("carol"))
                    .await
                    .expect("sar")
            ),
            Some(false)
        );
        assert_eq!(
            (sim.token_review_count(), sim.subject_access_review_count()),
            (2, 3)
        );

        sim.set_review_fault(ReviewFault::Fail(500));
        assert_eq!(
            api_code(sars.create(&PostParams::default(), &sar("alice")).await).0,
            500
        );
        sim.set_review_fault(ReviewFault::Delay(Duration::from_millis(50)));
        sim.on_subject_access_review(|spec| {
            k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus {
                allowed: spec.user.as_deref() == Some("carol"),
                ..Default::default()
            }
        });
        assert_eq!(
            allowed(
                sars.create(&PostParams::default(), &sar("carol"))
                    .await
                    .expect("sar")
            ),
            Some(true)
        );
        assert_eq!(sim.subject_access_review_count(), 5);
        // Reviews are create-only and leave no writes in the log.
        assert_eq!(api_code(sars.list(&ListParams::default()).await).0, 405);
        assert!(sim.writes().is_empty());
    })
    .await;
}

#[tokio::test]
async fn fault_injection_and_request_log() {
    within(async {
        let sim = KubeSim::start().await;
        let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
        api.create(&PostParams::default(), &cm("f", json!({})))
            .await
            .expect("create");
        sim.fail_next(
            2,
            Some(http::Method::GET),
            "/api/v1/namespaces/default/configmaps/f",
            500,
        );
        assert_eq!(
            api_code(api.get("f").await),
            (500, "InternalError".to_string())
        );
        assert_eq!(api_code(api.get("f").await).0, 500);
        assert!(api.get("f").await.is_ok(), "the fault is used up");
        sim.fail_next(1, Some(http::Method::PATCH), "/api/v1", 409);
        assert_eq!(
            api_code(
                api.patch("f", &PatchParams::default(), &Patch::Merge(json!({})))
                    .await
            )
            .1,
            "Conflict"
        );

        assert!(
            sim.requests().iter().any(|r| r.status == 409),
            "injected faults are logged with their code"
        );
        sim.clear_requests();
        api.get("f").await.expect("get");
        api.list(&ListParams::default()).await.expect("list");
        assert!(sim.writes().is_empty(), "reads write nothing");
        api.patch(
            "f",
            &PatchParams::apply("x"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}})),
        )
        .await
        .expect("apply");
        let writes = sim.writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(
            writes[0].content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert!(writes[0].query.contains("fieldManager=x"));
        assert_eq!(writes[0].status, 200);
        assert!(writes[0].body.contains("\"a\":\"b\""));
    })
    .await;
}

#[tokio::test]
async fn errors_discovery_and_raw_requests() {
    within(async {
        let sim = KubeSim::start().await;
        let client = sim.client();
        let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let (code, reason) = api_code(api.create(&PostParams::default(), &cm("Bad_Name", json!({}))).await);
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        assert_eq!(api_code(api.create(&PostParams::default(), &cm("", json!({}))).await).0, 422);

        let discovery = kube::discovery::Discovery::new(client.clone()).run().await.expect("discovery");
        let (ar, caps) = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.kind == "StormWorkerPool")
            .expect("storm kinds are discoverable");
        assert_eq!(ar.plural, "stormworkerpools");
        let subs: Vec<_> = caps.subresources.iter().map(|(s, _)| s.plural.clone()).collect();
        assert!(subs.contains(&"status".to_string()) && subs.contains(&"scale".to_string()), "{subs:?}");
        assert!(discovery.has_group("apps") && discovery.has_group("coordination.k8s.io"));
        let version = client.apiserver_version().await.expect("version");
        assert_eq!(version.major, "1");

        // kubectl sends apply patches as YAML.
        let req = http::Request::patch("/api/v1/namespaces/default/configmaps/yaml?fieldManager=kubectl")
            .header("content-type", "application/apply-patch+yaml")
            .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\ndata:\n  a: b\n".to_vec())
            .expect("request");
        let created: ConfigMap = client.request(req).await.expect("yaml apply");
        assert_eq!(created.data.and_then(|d| d.get("a").cloned()).as_deref(), Some("b"));
        let req = http::Request::patch("/api/v1/namespaces/default/configmaps/yaml")
            .header("content-type", "text/plain")
            .body(b"{}".to_vec())
            .expect("request");
        assert_eq!(api_code(client.request::<ConfigMap>(req).await).0, 415);
        let req = http::Request::post("/api/v1/namespaces/default/configmaps")
            .header("content-type", "application/json")
            .body(b"{not json".to_vec())
            .expect("request");
        assert_eq!(api_code(client.request::<ConfigMap>(req).await).0, 400);
        let req = http::Request::post("/api/v1/namespaces/default/configmaps")
            .header("content-type", "application/vnd.kubernetes.protobuf")
            .body(b"k8s\0".to_vec())
            .expect("request");
        assert_eq!(api_code(client.request::<ConfigMap>(req).await).0, 415);
        let req = http::Request::get("/api/v1/nothings").body(Vec::new()).expect("request");
        assert_eq!(api_code(client.request::<Value>(req).await).0, 404);

        // CRDs created through the API are served at once.
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "spec": {
                    "group": "example.com", "scope": "Namespaced",
                    "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                                  "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
                },
            }))
            .expect("crd");
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &crd).await.expect("create crd");
        let established = crds.get("widgets.example.com").await.expect("crd");
        assert!(established.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Established" && c.status == "True"));
        let ar = kube::discovery::ApiResource::from_gvk_with_plural(&kube::api::GroupVersionKind::gvk("example.com", "v1", "Widget"), "widgets");
        let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
        let mut w = kube::api::DynamicObject::new("w1", &ar);
        w.data = json!({"spec": {"size": 3}});
        widgets.create(&PostParams::default(), &w).await.expect("create widget");
        assert_eq!(widgets.get("w1").await.expect("get").data["spec"]["size"], 3);
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    within(async {
        let sim = KubeSim::start().await;
        let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
        let mut stream = api
            .watch(&WatchParams::default(), "0")
            .await
            .expect("watch")
            .boxed();
        sim.shutdown().await;
        // The stream ends (or errors) instead of hanging.
        while let Ok(Some(_)) = stream.try_next().await {}
    })
    .await;
}

#[tokio::test]
async fn bookmarks_and_streaming_lists() {
    within(async {
        let options = KubeSimOptions {
            bookmark_interval: Duration::from_millis(100),
            ..KubeSimOptions::default()
        };
        let sim = KubeSim::start_with(options).await.expect("start");
        let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
        api.create(&PostParams::default(), &cm("s1", json!({})))
            .await
            .expect("create");
        let rv = sim.resource_version().to_string();
        let wp = WatchParams::default().timeout(10);
        let mut stream = api.watch(&wp, &rv).await.expect("watch").boxed();
        match stream.try_next().await.expect("event") {
            Some(WatchEvent::Bookmark(b)) => assert_eq!(b.metadata.resource_version, rv),
            other => panic!("expected a BOOKMARK, got {other:?}"),
        }
        drop(stream);

        // kube's streaming-list watcher: initial ADDED events, then the initial-events-end bookmark.
        let cfg = watcher::Config::default().streaming_lists();
        let mut events = watcher(api.clone(), cfg).boxed();
        let mut initial = Vec::new();
        loop {
            match events.try_next().await.expect("watcher") {
                Some(watcher::Event::InitApply(o)) => initial.push(o.name_any()),
                Some(watcher::Event::InitDone) => break,
                Some(_) => {}
                None => panic!("watcher ended"),
            }
        }
        assert_eq!(initial, ["s1"]);
        let streamed = sim
            .requests()
            .into_iter()
            .any(|r| r.query.contains("sendInitialEvents=true"));
        assert!(streamed, "the watcher used a streaming list");
    })
    .await;
}

#[tokio::test]
async fn event_recorder_publishes_through_events_k8s_io() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    within(async {
        let sim = KubeSim::start().await;
        let client = sim.client();
        let clusters: Api<StormCluster> = Api::default_namespaced(client.clone());
        let c = clusters
            .create(&PostParams::default(), &cluster("ev"))
            .await
            .expect("create");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "storm-controller".into(),
                instance: None,
            },
        );
        let ev = Event {
            type_: EventType::Warning,
            reason: "InvalidSpec".into(),
            note: Some("bad".into()),
            action: "Reconcile".into(),
            secondary: None,
        };
        recorder
            .publish(&ev, &c.object_ref(&()))
            .await
            .expect("publish");
        recorder
            .publish(&ev, &c.object_ref(&()))
            .await
            .expect("publish again (series patch)");
        let events: Vec<k8s_openapi::api::events::v1::Event> = sim.list(Some("default"));
        assert_eq!(events.len(), 1, "the repeat became a series on one Event");
        assert_eq!(events[0].reason.as_deref(), Some("InvalidSpec"));
        assert_eq!(
            events[0].regarding.as_ref().and_then(|r| r.name.as_deref()),
            Some("ev")
        );
    })
    .await;
}

#[tokio::test]
async fn namespaces_collections_and_dry_run() {
    within(async {
        let sim = KubeSim::start().await;
        let client = sim.client();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "temp"}})).expect("ns");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("create ns");
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "temp");
        for n in ["a", "b", "c"] {
            cms.create(&PostParams::default(), &cm(n, json!({})))
                .await
                .expect("create");
        }
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        cms.create(&dry, &cm("d", json!({})))
            .await
            .expect("dry-run create");
        assert!(
            sim.get::<ConfigMap>("temp", "d").is_none(),
            "dry run stores nothing"
        );

        let lp = ListParams::default().fields("metadata.name!=a");
        cms.delete_collection(&DeleteParams::default(), &lp)
            .await
            .expect("delete collection");
        let left: Vec<_> = sim
            .list::<ConfigMap>(Some("temp"))
            .iter()
            .map(|c| c.name_any())
            .collect();
        assert_eq!(left, ["a"]);

        namespaces
            .delete("temp", &DeleteParams::default())
            .await
            .expect("delete ns");
        assert!(
            sim.list::<ConfigMap>(Some("temp")).is_empty(),
            "a namespace takes its contents"
        );
        assert!(sim.get::<Namespace>("", "default").is_some());
    })
    .await;
}

#[tokio::test]
async fn server_side_apply_removes_fields_the_manager_stopped_applying() {
    within(async {
        let sim = KubeSim::start().await;
        let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
        let pp = PatchParams::apply("storm-controller").force();
        let apply = |data: Value, labels: Value| {
            Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cfg", "labels": labels}, "data": data,
            }))
        };
        api.patch(
            "cfg",
            &pp,
            &apply(
                json!({"a": "1", "b": "2"}),
                json!({"app": "storm", "old": "x"}),
            ),
        )
        .await
        .expect("first apply");
        // Another writer adds its own key and label.
        api.patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"user": "y"}}, "data": {"user": "u"}})),
        )
        .await
        .expect("user edit");
        let out = api
            .patch(
                "cfg",
                &pp,
                &apply(json!({"a": "1"}), json!({"app": "storm"})),
            )
            .await
            .expect("second apply");
        let data = out.data.clone().unwrap_or_default();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["a", "user"]);
        let labels = out.labels().clone();
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["app", "user"]);
        let entry = out
            .managed_fields()
            .iter()
            .find(|m| m.manager.as_deref() == Some("storm-controller"))
            .expect("manager entry");
        assert_eq!(entry.operation.as_deref(), Some("Apply"));
        let fields = serde_json::to_value(&entry.fields_v1).expect("fields");
        assert_eq!(fields["f:data"], json!({"f:a": {}}));
        // Re-applying the same configuration is a no-op.
        let again = api
            .patch(
                "cfg",
                &pp,
                &apply(json!({"a": "1"}), json!({"app": "storm"})),
            )
            .await
            .expect("third apply");
        assert_eq!(again.resource_version(), out.resource_version());
        // Dropping all labels from the configuration removes only the manager's own.
        let bare = api
            .patch(
                "cfg",
                &pp,
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}})),
            )
            .await
            .expect("fourth apply");
        assert_eq!(bare.name_any(), "cfg");
        assert_eq!(bare.labels().keys().collect::<Vec<_>>(), ["user"]);
    })
    .await;
}

#[tokio::test]
async fn without_storm_crds_the_paths_are_missing_until_installed() {
    within(async {
        let options = KubeSimOptions {
            install_storm_crds: false,
            ..KubeSimOptions::default()
        };
        let sim = KubeSim::start_with(options).await.expect("start");
        let client = sim.client();
        let clusters: Api<StormCluster> = Api::default_namespaced(client.clone());
        assert_eq!(api_code(clusters.list(&ListParams::default()).await).0, 404);
        type Crd = k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let crds: Api<Crd> = Api::all(client.clone());
        assert!(crds.get_opt("stormclusters.storm.apache.org").await.expect("get").is_none());
        for crd in storm_controller::crd::crds() {
            crds.create(&PostParams::default(), &crd).await.expect("install crd");
        }
        let established = kube::runtime::wait::await_condition(
            crds.clone(),
            "stormclusters.storm.apache.org",
            kube::runtime::wait::conditions::is_crd_established(),
        );
        established.await.expect("established");
        clusters.create(&PostParams::default(), &cluster("late")).await.expect("served now");

        // Namespaces created through the API are Active; the handle is shareable.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "fresh"}})).expect("ns");
        let ns = namespaces.create(&PostParams::default(), &ns).await.expect("create");
        assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
        fn shareable<T: Send + Sync + 'static>(_: &T) {}
        shareable(&sim);
    })
    .await;
}
