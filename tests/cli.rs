//! The built `storm-controller` binary: subcommands, exit codes, env vars, and a clean shutdown on signals.

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

const BIN: &str = env!("CARGO_BIN_EXE_storm-controller");
/// Upper bound for the binary to start serving, and for it to exit after a signal.
const BOUND: Duration = Duration::from_secs(30);

/// The binary with no `STORM_CONTROLLER_*` variables from the test's own environment.
fn command() -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STORM_CONTROLLER_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null());
    command
}

fn output(args: &[&str]) -> Output {
    command().args(args).output().expect("the binary runs")
}

#[test]
fn crds_prints_the_library_crds_as_a_yaml_stream() {
    let out = output(&["crds"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 YAML");
    assert_eq!(stdout, storm_controller::crd::crds_yaml());
    let parsed: Vec<CustomResourceDefinition> =
        serde_saphyr::from_multiple(&stdout).expect("a stream of CRDs");
    let names = |crds: &[CustomResourceDefinition]| -> Vec<Option<String>> {
        crds.iter().map(|crd| crd.metadata.name.clone()).collect()
    };
    assert_eq!(names(&parsed), names(&storm_controller::crd::crds()));
}

#[test]
fn run_without_a_cluster_says_so_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Running::spawn(
        command()
            .args(["run", "--admin-address", "127.0.0.1:0"])
            .env("KUBECONFIG", dir.path().join("missing-kubeconfig"))
            .env("HOME", dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST"),
    );
    let status = child.wait_exit();
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log = child.log_so_far();
    assert!(
        log.iter().any(|l| l.contains("no Kubernetes cluster")),
        "{log:#?}"
    );
    // It points a person without a cluster to the sandbox instead of starting one on its own.
    assert!(
        log.iter().any(|l| l.contains("storm-controller dev")),
        "{log:#?}"
    );
}

#[test]
fn nimbus_without_a_reachable_nimbus_fails_with_one_line_and_exit_1() {
    // A port nothing listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = output(&[
        "nimbus",
        "--nimbus",
        &format!("127.0.0.1:{port}"),
        "--call-timeout",
        "2s",
        "topologies",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}

#[test]
fn nimbus_talks_to_a_fake_nimbus_over_thrift() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime
        .block_on(storm_controller::nimbus::fake::FakeNimbus::start())
        .unwrap();
    let out = output(&[
        "nimbus",
        "--nimbus",
        &fake.endpoint(),
        "-o",
        "json",
        "cluster",
    ]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(json.is_object(), "{json}");
    assert!(fake.call_count("getClusterInfo") >= 1, "{:?}", fake.calls());
}

#[test]
fn render_prints_children_of_a_sample_and_fails_on_bad_input() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/samples/stormcluster-managed.yaml"
    );
    let out = output(&["render", "-f", sample]);
    assert!(out.status.success(), "{out:?}");
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert!(docs.iter().any(|d| d["kind"] == "StatefulSet"), "{docs:?}");
    let json = output(&["render", "-f", sample, "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(docs.len()));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: a}\nspec: {image: x}\n").unwrap();
    let out = output(&["render", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.zookeeper.servers is required"),
        "{out:?}"
    );
}

#[test]
fn bad_flag_value_is_a_usage_error() {
    let out = output(&["run", "--log-format", "xml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--log-format"),
        "{out:?}"
    );
}

#[test]
fn run_fails_with_exit_1_when_the_admin_address_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut child = Running::spawn(command().args([
        "run",
        "--no-controllers",
        "--no-metrics-api",
        "--admin-address",
        &address,
    ]));
    let status = child.wait_exit();
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log = child.log_so_far();
    assert!(
        log.iter()
            .any(|line| line.contains("binding the admin server")),
        "{log:#?}"
    );
}

#[test]
fn run_serves_admin_and_exits_0_on_sigterm() {
    let mut child = Running::spawn(command().args([
        "run",
        "--no-controllers",
        "--no-metrics-api",
        "--admin-address",
        "127.0.0.1:0",
        "--log-level",
        "debug",
    ]));
    // Text log line: `... admin server listening address=127.0.0.1:PORT`.
    let line = child.wait_for_line(|line| line.contains("admin server listening"));
    let address: SocketAddr = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("address="))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .parse()
        .unwrap();
    assert!(address.ip().is_loopback(), "{address}");

    let livez = common::get(address, "/livez").unwrap();
    assert_eq!(livez.status, 200, "{livez:?}");
    assert_eq!(common::get(address, "/readyz").unwrap().status, 200);
    let metrics = common::get(address, "/metrics").unwrap();
    assert!(
        metrics.body.contains("storm_controller_build_info{"),
        "{metrics:?}"
    );

    child.signal("TERM");
    let status = child.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}\n{:#?}",
        child.log_so_far()
    );
    child.wait_for_line(|line| line.contains("shutting down") && line.contains("SIGTERM"));
}

#[test]
fn run_reads_flags_from_env_and_exits_0_on_sigint() {
    let mut child = Running::spawn(
        command()
            .arg("run")
            .env("STORM_CONTROLLER_ADMIN_ADDRESS", "127.0.0.1:0")
            .env("STORM_CONTROLLER_NO_CONTROLLERS", "true")
            .env("STORM_CONTROLLER_NO_METRICS_API", "true")
            .env("STORM_CONTROLLER_LOG_FORMAT", "json"),
    );
    // JSON log: proves STORM_CONTROLLER_LOG_FORMAT was read; a loopback address proves the admin address was.
    let event = child.wait_for_json(|event| event["message"] == "admin server listening");
    let address: SocketAddr = event["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {event}"))
        .parse()
        .unwrap();
    assert!(address.ip().is_loopback(), "{address}");
    assert_eq!(common::get(address, "/livez").unwrap().status, 200);

    child.signal("INT");
    let status = child.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}\n{:#?}",
        child.log_so_far()
    );
    child.wait_for_json(|event| event["message"] == "shutting down" && event["signal"] == "SIGINT");
}

/// A spawned binary whose stderr lines arrive on a channel; killed on drop if still running.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (already seen or arriving within [`BOUND`]) that matches.
    fn wait_for_line(&mut self, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|line| matches(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(error) => panic!("no matching log line ({error}); log: {:#?}", self.seen),
            }
        }
    }

    fn wait_for_json(&mut self, matches: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let line = self.wait_for_line(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|event| matches(&event))
        });
        serde_json::from_str(&line).unwrap()
    }

    /// Every line received so far.
    fn log_so_far(&mut self) -> Vec<String> {
        self.seen.extend(self.lines.try_iter());
        self.seen.clone()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name}: {status:?}");
    }

    /// Waits at most [`BOUND`] for the process to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit within {BOUND:?}; log: {:#?}",
                self.log_so_far()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
