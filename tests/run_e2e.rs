//! The real `storm-controller run` binary end to end on 127.0.0.1: against the Kubernetes API double
//! and a fake Nimbus it serves a StormTopology's Storm metrics through the custom metrics API over
//! TLS, with the front-proxy CA from the extension-apiserver-authentication ConfigMap and
//! authorization by SubjectAccessReview; and in standalone mode with no Kubernetes at all.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use storm_controller::crd::{StormCluster, StormTopology};
use storm_controller::kubesim::KubeSim;
use storm_controller::nimbus::fake::FakeNimbus;
use support::fixtures::word_count;

const BIN: &str = env!("CARGO_BIN_EXE_storm-controller");
const BOUND: Duration = Duration::from_secs(30);

struct Operator {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Operator {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Operator {
        let mut cmd = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("STORM_CONTROLLER_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Operator { child, log }
    }

    /// The address a log line `<message> ... address=<addr>` names (bounded wait).
    async fn address(&self, message: &str) -> SocketAddr {
        for _ in 0..(BOUND.as_millis() / 50) {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(message))
                .cloned();
            if let Some(line) = found {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("address="))
                    .expect("address in the line");
                return addr.parse().expect("a socket address");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {message:?} line in {:#?}", self.log.lock().unwrap());
    }

    fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        for _ in 0..(BOUND.as_millis() / 50) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!(
            "the operator did not stop within {BOUND:?}: {:#?}",
            self.log.lock().unwrap()
        );
    }
}

fn ca_pem() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "front-proxy-ca");
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// Polls `path` until it answers 200 (bounded) and returns the JSON body.
async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let mut last = (0, String::new());
    for _ in 0..(BOUND.as_millis() / 100) {
        if let Ok((status, body)) = support::tls::get(addr, path).await {
            if status == 200 {
                return serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
            }
            last = (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered 200; last answer {last:?}");
}

#[tokio::test]
async fn run_serves_storm_metrics_to_the_hpa_path_and_stops_cleanly() {
    let sim = KubeSim::start().await;
    let fake = FakeNimbus::start().await.unwrap();
    fake.cluster().put_topology(word_count());
    let reviews = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&reviews);
    sim.on_subject_access_review(move |spec| {
        seen.lock().unwrap().push(spec.clone());
        SubjectAccessReviewStatus {
            allowed: true,
            ..Default::default()
        }
    });
    let config_maps: Api<ConfigMap> = Api::namespaced(sim.client(), "kube-system");
    let data = BTreeMap::from([
        ("requestheader-client-ca-file".to_string(), ca_pem()),
        (
            "requestheader-allowed-names".to_string(),
            r#"["front-proxy-client"]"#.to_string(),
        ),
        (
            "requestheader-username-headers".to_string(),
            r#"["X-Remote-User"]"#.to_string(),
        ),
        (
            "requestheader-group-headers".to_string(),
            r#"["X-Remote-Group"]"#.to_string(),
        ),
        (
            "requestheader-extra-headers-prefix".to_string(),
            r#"["X-Remote-Extra-"]"#.to_string(),
        ),
    ]);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("extension-apiserver-authentication".into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    let clusters: Api<StormCluster> = Api::namespaced(sim.client(), "storm");
    let mut cluster: StormCluster = serde_json::from_value(support::read_yaml(
        "docs/samples/stormcluster-external.yaml",
    ))
    .unwrap();
    cluster.metadata.name = Some("storm".into());
    cluster.spec.external.as_mut().unwrap().nimbus_seeds = vec![fake.endpoint()];
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    let topologies: Api<StormTopology> = Api::namespaced(sim.client(), "storm");
    let topology: StormTopology = serde_json::from_value(serde_json::json!({
        "apiVersion": "storm.apache.org/v1alpha1", "kind": "StormTopology",
        "metadata": {"name": "wc", "namespace": "storm", "labels": {"app": "words"}},
        "spec": {"clusterRef": {"name": "storm"}, "jar": {"url": "https://x/t.jar"}, "mainClass": "a.B", "stormName": "wordcount"}
    }))
    .unwrap();
    topologies
        .create(&PostParams::default(), &topology)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_json::to_string(&sim.kubeconfig()).unwrap(),
    )
    .unwrap();
    let operator = Operator::start(
        &[
            "run",
            "--admin-address",
            "127.0.0.1:0",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            "0",
            "--leader-elect=false",
            "--nimbus-poll-interval",
            "1s",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let api = operator.address("metrics API listening").await;

    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/storm/stormtopologies.storm.apache.org/wc/storm_topology_capacity";
    let list = get_json(api, path).await;
    assert_eq!(list["kind"], "MetricValueList");
    assert_eq!(list["items"][0]["describedObject"]["kind"], "StormTopology");
    assert_eq!(list["items"][0]["describedObject"]["name"], "wc");
    assert_eq!(list["items"][0]["value"], "900m", "{list}");
    let wildcard = get_json(api, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/storm/stormtopologies.storm.apache.org/%2A/storm_component_capacity?labelSelector=app%3Dwords&metricLabelSelector=component%3Dsplit").await;
    assert_eq!(wildcard["items"][0]["value"], "400m", "{wildcard}");
    // The request was anonymous (no front-proxy certificate): authorization asked Kubernetes.
    let sars = reviews.lock().unwrap().clone();
    let resource = sars
        .iter()
        .find_map(|s| s.resource_attributes.clone())
        .expect("a resource SubjectAccessReview");
    assert_eq!(
        resource.resource.as_deref(),
        Some("stormtopologies.storm.apache.org")
    );
    assert_eq!(sars[0].user.as_deref(), Some("system:anonymous"));
    // The StormCluster reconciler runs in the same process and reports from the same collector.
    let mut leader = None;
    for _ in 0..(BOUND.as_millis() / 100) {
        leader = clusters
            .get("storm")
            .await
            .unwrap()
            .status
            .and_then(|s| s.leader);
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(leader.as_deref(), Some(fake.endpoint().as_str()));

    // The admin port exports the API's request counts and each cluster's snapshot age.
    let admin = operator.address("admin server listening").await;
    let mut metrics = String::new();
    for _ in 0..(BOUND.as_millis() / 200) {
        metrics = admin_get(admin, "/metrics");
        if metrics.contains("storm_controller_nimbus_snapshot_age_seconds{cluster=\"storm/storm\"}")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        metrics.contains("storm_controller_nimbus_snapshot_age_seconds{cluster=\"storm/storm\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("storm_controller_metrics_api_requests_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("storm_controller_metrics_api_authorization_cache_misses_total"),
        "{metrics}"
    );

    let status = operator.stop();
    assert!(status.success(), "{status:?}");
}

fn admin_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

#[tokio::test]
async fn standalone_mode_needs_no_kubernetes() {
    let fake = FakeNimbus::start().await.unwrap();
    fake.cluster().put_topology(word_count());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("front-proxy-ca.pem");
    std::fs::write(&ca, ca_pem()).unwrap();
    let operator = Operator::start(
        &[
            "run",
            "--admin-address",
            "127.0.0.1:0",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            "0",
            "--standalone-nimbus",
            &fake.endpoint(),
            "--standalone-namespace",
            "apps",
            "--authorization-mode",
            "always-allow",
            "--requestheader-client-ca-file",
            ca.to_str().unwrap(),
            "--nimbus-poll-interval",
            "1s",
        ],
        &[(
            "KUBECONFIG",
            dir.path().join("no-kubeconfig").to_str().unwrap(),
        )],
    );
    let api = operator.address("metrics API listening").await;
    let list = get_json(api, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/apps/stormtopologies.storm.apache.org/wordcount/storm_topology_pending_tuples").await;
    let value = list["items"][0]["value"].as_str().unwrap().to_string();
    assert!(value != "0" && !value.is_empty(), "{list}");
    let (status, _) = support::tls::get(api, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/other/stormtopologies.storm.apache.org/wordcount/storm_topology_pending_tuples").await.unwrap();
    assert_eq!(status, 404, "only the standalone namespace is served");
    let status = operator.stop();
    assert!(status.success(), "{status:?}");
}
