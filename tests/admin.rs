//! The admin server over real HTTP on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use storm_controller::admin::{self, AdminState, Readiness};
use storm_controller::metrics::{BuildInfo, Metrics};
use tokio_util::sync::CancellationToken;

/// An admin server on 127.0.0.1 with its own runtime; stopped on drop.
struct Server {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let metrics = Arc::new(Metrics::new(&BuildInfo::current()));
        let readiness = Readiness::new();
        let stop = CancellationToken::new();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let router = admin::router(AdminState {
            metrics: Arc::clone(&metrics),
            readiness: readiness.clone(),
        });
        let task = runtime.spawn(admin::serve(
            listener,
            router,
            stop.clone().cancelled_owned(),
        ));
        Self {
            addr,
            metrics,
            readiness,
            stop,
            task: Some(task),
            runtime,
        }
    }

    fn get(&self, path: &str) -> common::Response {
        common::get(self.addr, path).unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    /// Stops the server and waits (bounded) for `serve` to return; returns its result.
    fn shutdown(mut self) -> std::io::Result<()> {
        self.stop.cancel();
        let task = self.task.take().unwrap();
        self.runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await })
            .expect("serve returns after the shutdown signal")
            .expect("serve task does not panic")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[test]
fn livez_is_ok() {
    let server = Server::start();
    let response = server.get("/livez");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, "ok\n");
}

#[test]
fn readyz_follows_gates_and_shutdown() {
    let server = Server::start();
    assert_eq!(server.get("/readyz").status, 200);

    let gate = server.readiness.gate("controllers");
    let response = server.get("/readyz");
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.body, "not ready: controllers not ready\n");

    gate.set(true);
    assert_eq!(server.get("/readyz").status, 200);

    server.readiness.shutdown();
    let response = server.get("/readyz");
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.body, "not ready: shutting down\n");
    // Liveness is unaffected by readiness.
    assert_eq!(server.get("/livez").status, 200);
}

#[test]
fn metrics_are_openmetrics_text_with_build_info_and_reconciles() {
    let server = Server::start();
    drop(server.metrics.reconcile.start("stormtopology"));
    server
        .metrics
        .reconcile
        .failed("stormtopology", "SubmitFailed");

    let response = server.get("/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    let content_type = response.header("content-type").expect("a content type");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let body = &response.body;
    let build_info = format!(
        r#"storm_controller_build_info{{version="{}",git_sha=""#,
        env!("CARGO_PKG_VERSION")
    );
    assert!(body.contains(&build_info), "no {build_info:?} in\n{body}");
    assert!(
        body.contains(r#"storm_controller_reconcile_total{controller="stormtopology"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(
            r#"storm_controller_reconcile_errors_total{controller="stormtopology",error="SubmitFailed"} 1"#
        ),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
}

#[test]
fn unknown_paths_are_404() {
    let server = Server::start();
    assert_eq!(server.get("/nope").status, 404);
}

#[test]
fn serve_returns_ok_after_shutdown_signal() {
    let server = Server::start();
    assert_eq!(server.get("/livez").status, 200);
    let addr = server.addr;
    server.shutdown().expect("serve ends cleanly");
    assert!(
        common::get(addr, "/livez").is_err(),
        "the listener is closed after shutdown"
    );
}
