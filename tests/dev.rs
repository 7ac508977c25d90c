//! The real `storm-controller dev` binary: the operator against its embedded sandbox on 127.0.0.1
//! submits the sample topology to the fake Nimbus, reports it Running, serves its Storm metrics
//! through the custom metrics API, and stops cleanly on SIGTERM or after `--for`.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use storm_controller::crd::topology::TopologyPhase;
use storm_controller::crd::{StormCluster, StormTopology};

const BIN: &str = env!("CARGO_BIN_EXE_storm-controller");
/// Upper bound of every wait: start, convergence, exit.
const BOUND: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// A running `storm-controller dev` with its stdout (the banner) and stderr (the log) collected.
struct Dev {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl Dev {
    fn start(args: &[&str]) -> Dev {
        let mut cmd = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("STORM_CONTROLLER_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .arg("dev")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Dev {
            child,
            stdout,
            stderr,
        }
    }

    /// The value after `<label>:` on a banner line (bounded wait for the banner).
    fn banner(&self, label: &str) -> String {
        let prefix = format!("{label}:");
        for _ in 0..(BOUND.as_millis() / POLL.as_millis()) {
            let found = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.trim().strip_prefix(&prefix).map(|v| v.trim().to_string()));
            if let Some(value) = found {
                return value;
            }
            std::thread::sleep(POLL);
        }
        panic!("no banner line {label:?}: {}", self.output());
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed: {status:?}");
    }

    /// Waits (bounded) for the process to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        for _ in 0..(BOUND.as_millis() / POLL.as_millis()) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        panic!("dev did not exit within {BOUND:?}: {}", self.output());
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // A failed assertion must not leave the sandbox running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(kubeconfig: &str) -> kube::Client {
    let config = Kubeconfig::read_from(kubeconfig).expect("the printed kubeconfig reads");
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .expect("the printed kubeconfig is usable");
    assert_eq!(config.default_namespace, "storm");
    assert_eq!(config.cluster_url.host(), Some("127.0.0.1"));
    kube::Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_the_operator_on_the_sandbox_and_stops_on_sigterm() {
    // `--for` only bounds the process should the test die; SIGTERM stops it first.
    let mut dev = Dev::start(&["--for", "20s"]);
    let kubeconfig = dev.banner("kubeconfig");
    let metrics_api: SocketAddr = dev
        .banner("custom metrics API")
        .strip_prefix("https://")
        .expect("an https URL")
        .parse()
        .expect("a socket address");
    let nimbus = dev.banner("fake Nimbus");
    assert!(metrics_api.ip().is_loopback() && nimbus.starts_with("127.0.0.1:"));
    let client = client(&kubeconfig).await;

    // The operator submits the sample through a Job the fake Nimbus plays, and reports it Running.
    let topologies: Api<StormTopology> = Api::default_namespaced(client.clone());
    let mut phase = None;
    for _ in 0..(BOUND.as_millis() / POLL.as_millis()) {
        phase = topologies
            .get_opt("wordcount")
            .await
            .unwrap()
            .and_then(|t| t.status)
            .and_then(|s| s.phase);
        if phase == Some(TopologyPhase::Running) {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(phase, Some(TopologyPhase::Running), "{}", dev.output());
    let cluster = Api::<StormCluster>::default_namespaced(client.clone())
        .get("dev")
        .await
        .unwrap();
    assert_eq!(
        cluster.spec.external.unwrap().nimbus_seeds,
        vec![nimbus.clone()]
    );

    // The HPA's path: the topology's acked rate from the fake Nimbus, anonymous, allowed by the sandbox.
    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/storm/stormtopologies.storm.apache.org/wordcount/storm_topology_acked_per_second";
    let mut last = None;
    for _ in 0..(BOUND.as_millis() / POLL.as_millis()) {
        match support::tls::get(metrics_api, path).await {
            Ok((200, body)) => {
                last = Some((200, body));
                break;
            }
            other => last = other.ok(),
        }
        tokio::time::sleep(POLL).await;
    }
    let (status, body) = last.expect("the metrics API answers");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["items"][0]["describedObject"]["name"], "wordcount");
    let value = list["items"][0]["value"].as_str().unwrap_or_default();
    assert!(!value.is_empty() && value != "0", "{list}");

    // kubectl, where installed, reads the sandbox through the same kubeconfig.
    if let Ok(out) = Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig, "--request-timeout=10s"])
        .args(["get", "stormt", "-o", "name"])
        .output()
    {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("stormtopology.storm.apache.org/wordcount"),
            "{out:?}"
        );
    }

    dev.terminate();
    let status = dev.wait_exit();
    assert!(status.success(), "{status:?}: {}", dev.output());
    assert!(
        !PathBuf::from(&kubeconfig).exists(),
        "the temporary kubeconfig is removed on exit"
    );
}

#[test]
fn dev_stops_by_itself_after_for_and_keeps_a_given_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandbox").join("kubeconfig");
    let mut dev = Dev::start(&[
        "--for",
        "1s",
        "--topologies",
        "0",
        "--kubeconfig",
        path.to_str().unwrap(),
    ]);
    assert_eq!(dev.banner("kubeconfig"), path.to_str().unwrap());
    let status = dev.wait_exit();
    assert!(status.success(), "{status:?}: {}", dev.output());
    let text = std::fs::read_to_string(&path).expect("a given kubeconfig is kept");
    assert!(text.contains("server: http://127.0.0.1:"), "{text}");
}
