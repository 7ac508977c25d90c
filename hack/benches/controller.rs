//! StormCluster reconciler under load: the real `storm-controller run` binary against the Kubernetes
//! API double (kubesim) holding 1, 100 and 1000 managed StormClusters.
//!
//! For each size it prints how long the operator takes to converge every cluster (first
//! reconciles, with all children applied and status written) and the resulting reconcile rate,
//! then watches one steady-state resync window and prints the reconciles made, the writes sent
//! (expected 0) and the operator's RSS (VmRSS now, VmHWM peak) read from /proc.
//!
//! `cargo bench --bench controller` (add `-- --quick` for 1 and 100 only).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use storm_controller::crd::StormCluster;
use storm_controller::kubesim::KubeSim;

const NS: &str = "bench";
const RESYNC: Duration = Duration::from_secs(10);

fn cluster(i: usize) -> StormCluster {
    let yaml = format!(
        "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {{name: storm-{i}, namespace: {NS}}}\nspec:\n  image: apache/storm:2.8.1\n  zookeeper: {{servers: [zk-0.zk.zookeeper.svc]}}\n  nimbus: {{replicas: 2}}\n  supervisors: {{replicas: 3}}\n  ui: {{}}\n"
    );
    serde_saphyr::from_str(&yaml).expect("bench cluster parses")
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Operator {
    child: Child,
    admin: String,
}

impl Operator {
    fn start(kubeconfig: &std::path::Path) -> Operator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_storm-controller"))
            .args([
                "run",
                "--admin-address",
                "127.0.0.1:0",
                "--leader-elect=false",
                "--log-level",
                "warn,storm_controller::run=info",
            ])
            .args(["--resync-interval", &format!("{}s", RESYNC.as_secs())])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the operator starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("BENCH_VERBOSE").is_some()
                    || line.contains("WARN")
                    || line.contains("ERROR")
                {
                    eprintln!("  operator: {line}");
                }
                if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("address="))
                {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let admin = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the operator logs its admin address");
        Operator { child, admin }
    }

    fn reconciles(&self) -> f64 {
        let body = http_get(&self.admin, "/metrics");
        body.lines()
            .filter(|l| {
                l.starts_with("storm_controller_reconcile_total{") && l.contains("stormcluster")
            })
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: Vec<usize> = match std::env::var("BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect(),
        Err(_) if quick => vec![1, 100],
        Err(_) => vec![1, 100, 1000],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "StormCluster reconciler, real binary against kubesim (resync {} s)",
        RESYNC.as_secs()
    );
    for &n in &sizes {
        runtime.block_on(run(n));
    }
}

async fn run(n: usize) {
    let sim = KubeSim::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_json::to_string(&sim.kubeconfig()).expect("kubeconfig serializes"),
    )
    .expect("write kubeconfig");
    let api: Api<StormCluster> = Api::namespaced(sim.client(), NS);
    for i in 0..n {
        api.create(&PostParams::default(), &cluster(i))
            .await
            .expect("create cluster");
    }

    let started = Instant::now();
    let operator = Operator::start(&kubeconfig);
    let deadline = Instant::now() + Duration::from_secs(600);
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        eprintln!("  waiting for {n} clusters");
    }
    let mut polls = 0u64;
    loop {
        polls += 1;
        let done = sim
            .list::<StormCluster>(Some(NS))
            .iter()
            .filter(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .is_some()
            })
            .count();
        if done == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done}/{n} clusters converged in 600 s"
        );
        if std::env::var_os("BENCH_VERBOSE").is_some() && polls.is_multiple_of(100) {
            let reqs = sim.requests();
            eprintln!(
                "  {done}/{n} converged, {} requests, last: {:?}",
                reqs.len(),
                reqs.last()
                    .map(|r| format!("{} {}?{} -> {}", r.method, r.path, r.query, r.status))
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let converge = started.elapsed();
    let first_reconciles = operator.reconciles();
    // Steady state: every cluster has seen its first Nimbus poll end (here every Nimbus is
    // unreachable, as the pods do not exist), so Available has left WaitingForNimbus and the
    // transition's status write and Event are behind us.
    let settle_deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let waiting = sim
            .list::<StormCluster>(Some(NS))
            .iter()
            .filter(|c| {
                c.status.as_ref().is_none_or(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Available" && c.reason == "WaitingForNimbus")
                })
            })
            .count();
        if waiting == 0 || Instant::now() > settle_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    sim.clear_requests();
    let before = operator.reconciles();
    tokio::time::sleep(RESYNC + Duration::from_secs(2)).await;
    let steady = operator.reconciles() - before;
    let writes: Vec<String> = sim
        .writes()
        .iter()
        .filter(|w| !w.path.contains("/leases/"))
        .map(|w| format!("{} {}", w.method, w.path))
        .collect();
    let (rss, hwm) = rss_kib(operator.child.id());
    println!(
        "clusters={n:<5} converged in {:>7.2} s ({:>7.1} clusters/s, {first_reconciles:.0} reconciles)  steady window: {steady:.0} reconciles, {} writes ({:.3} per reconcile)  RSS {:.1} MiB (peak {:.1} MiB)",
        converge.as_secs_f64(),
        n as f64 / converge.as_secs_f64(),
        writes.len(),
        if steady > 0.0 {
            writes.len() as f64 / steady
        } else {
            0.0
        },
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    if !writes.is_empty() {
        let mut by_kind: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        for w in &writes {
            let kind = w
                .split('/')
                .rev()
                .nth(if w.ends_with("/status") { 2 } else { 1 })
                .unwrap_or("?");
            *by_kind
                .entry(format!("{} {kind}", w.split(' ').next().unwrap_or("?")))
                .or_default() += 1;
        }
        println!("  writes by kind: {by_kind:?}");
        let events: Vec<k8s_openapi::api::events::v1::Event> = sim.list(Some(NS));
        let mut reasons: std::collections::BTreeMap<String, i32> =
            std::collections::BTreeMap::new();
        for e in &events {
            let count = e.series.as_ref().map(|s| s.count).unwrap_or(1);
            *reasons
                .entry(e.reason.clone().unwrap_or_default())
                .or_default() += count;
        }
        println!("  events by reason (with repeats): {reasons:?}");
    }
    drop(operator);
    sim.shutdown().await;
}
