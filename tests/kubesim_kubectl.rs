//! kubectl against the API double, as the `dev` sandbox uses it. Skipped when kubectl is not
//! installed.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use storm_controller::crd::StormWorkerPool;
use storm_controller::kubesim::KubeSim;

/// Runs kubectl with the sim's kubeconfig; returns (success, stdout + stderr).
fn kubectl(kubeconfig: &PathBuf, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--request-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_applies_scales_and_deletes() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("kubectl not installed: skipped");
        return;
    }
    let sim = KubeSim::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, serde_json::to_vec(&sim.kubeconfig()).expect("json")).expect("write");
    let pool = std::fs::read_to_string("docs/samples/stormworkerpool-standalone.yaml")
        .expect("sample")
        .replace("namespace: storm", "namespace: default");
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n";

    let steps = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str], stdin: Option<&str>| {
            let (ok, out) = kubectl(&kc, args, stdin);
            assert!(ok, "kubectl {}: {out}", args.join(" "));
            out
        };
        let ns = run(&["get", "ns"], None);
        assert!(ns.contains("kube-system"), "{ns}");
        let resources = run(&["api-resources"], None);
        assert!(resources.contains("stormworkerpools") && resources.contains("stormwp"));
        // No OpenAPI documents are served, so client-side validation is off.
        run(&["apply", "--validate=false", "-f", "-"], Some(&pool));
        run(
            &["scale", "stormworkerpool/enrich-workers", "--replicas=7"],
            None,
        );
        let storm = run(&["get", "storm"], None);
        assert!(storm.contains("enrich-workers"), "{storm}");
        run(&["create", "--validate=false", "-f", "-"], Some(cm));
        run(&["label", "cm", "x", "k=v"], None);
        let labelled = run(&["get", "cm", "-l", "k=v", "-o", "name"], None);
        assert_eq!(labelled.trim(), "configmap/x");
    });
    tokio::time::timeout(Duration::from_secs(60), steps)
        .await
        .expect("kubectl steps finished")
        .expect("kubectl steps passed");

    let pool = sim
        .get::<StormWorkerPool>("default", "enrich-workers")
        .expect("applied");
    assert_eq!(pool.spec.template.replicas, 7);
    let cm = sim.get::<ConfigMap>("default", "x").expect("created");
    assert_eq!(
        cm.metadata
            .labels
            .and_then(|l| l.get("k").cloned())
            .as_deref(),
        Some("v")
    );
}
