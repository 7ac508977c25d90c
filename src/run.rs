//! `storm-controller run`: the long-running process.
//!
//! Structure of [`run`] (signal handlers, then [`serve`], which `storm-controller dev` also calls with
//! its sandbox's client and its own stop condition):
//! 1. signal handlers, crypto provider, build info log, [`Metrics`], [`Readiness`];
//! 2. the admin server, bound before anything else starts and stopped last, so probes answer during the drain;
//! 3. the components (controllers, metrics API, Nimbus collector: added by later work), each a task in one
//!    `JoinSet` that gets a child of the `shutdown` token and returns `anyhow::Result<()>`;
//! 4. wait for SIGTERM/SIGINT (the `stop` future of [`serve`]) or for a component (or the admin
//!    server) to end on its own;
//! 5. `/readyz` turns 503, `shutdown` is cancelled, components drain (bounded by [`DRAIN_TIMEOUT`]), then the
//!    admin server stops. The exit code is 0 after a signal with a clean drain, 1 otherwise.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::admin::{self, AdminState, Readiness};
use crate::cli::RunArgs;
use crate::metrics::{BuildInfo, Metrics};

/// How long components get to finish after the shutdown signal (below Kubernetes' default 30 s grace period).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// What every component task returns: its name and how it ended.
type ComponentResult = (&'static str, anyhow::Result<()>);

/// Entry point of `run` from the CLI: logging, a tokio runtime, [`run`], and the exit code.
pub fn main(args: RunArgs) -> ExitCode {
    let log = args.log.clone();
    entry_point("storm-controller", &log, move || run(args))
}

/// Initializes logging, runs the future `make` returns on a multi-threaded tokio runtime, and
/// turns its outcome into the process exit code; `name` prefixes the messages.
pub fn entry_point<F, Fut>(name: &str, log: &crate::cli::LogArgs, make: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if let Err(error) = crate::telemetry::init(log) {
        eprintln!("{name}: {error:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            error!(%error, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(make()) {
        Ok(()) => {
            info!("{name} stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            error!(error = format!("{error:#}"), "{name} failed");
            ExitCode::FAILURE
        }
    }
}

/// Runs the process until SIGTERM/SIGINT, then shuts it down cleanly (see the module docs).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Installed first: a signal that arrives once the server answers must start a clean shutdown, not kill us.
    let mut signals = Signals::new().context("installing SIGTERM/SIGINT handlers")?;
    serve(
        args,
        Embedding::default(),
        async move { signals.recv().await },
    )
    .await
}

/// What [`serve`] takes from its caller instead of from the environment. [`run`] passes the default
/// (infer the client, report nothing); the `dev` sandbox passes its in-memory API's client.
#[derive(Default)]
pub struct Embedding {
    /// The Kubernetes client to use; `None` infers one (KUBECONFIG, `~/.kube/config`, in-cluster)
    /// when a part that runs needs it.
    pub client: Option<kube::Client>,
    /// Told the address of each server once it listens (ports 0 pick free ones).
    pub listening: Option<mpsc::UnboundedSender<Listening>>,
}

/// A server of [`serve`] that started listening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listening {
    /// The plain-HTTP admin server (`/livez`, `/readyz`, `/metrics`).
    Admin(SocketAddr),
    /// The HTTPS custom metrics API.
    MetricsApi(SocketAddr),
}

/// The body of [`run`]: serves until `stop` resolves (to the name of what stopped it, for the log),
/// or until a component ends on its own, then drains. See the module docs for the steps.
pub async fn serve(
    args: RunArgs,
    embedding: Embedding,
    stop: impl Future<Output = &'static str>,
) -> anyhow::Result<()> {
    install_crypto_provider();

    let build = BuildInfo::current();
    info!(version = %build.version, git_sha = %build.git_sha, "starting storm-controller");
    let metrics = Arc::new(Metrics::new(&build));
    let readiness = Readiness::new();

    let listener = TcpListener::bind(args.admin.admin_address)
        .await
        .with_context(|| format!("binding the admin server to {}", args.admin.admin_address))?;
    let admin_address = listener.local_addr().context("admin server address")?;
    let admin_stop = CancellationToken::new();
    let router = admin::router(AdminState {
        metrics: Arc::clone(&metrics),
        readiness: readiness.clone(),
    });
    let mut admin_task = tokio::spawn(admin::serve(
        listener,
        router,
        admin_stop.clone().cancelled_owned(),
    ));
    info!(address = %admin_address, "admin server listening");
    if let Some(listening) = &embedding.listening {
        let _ = listening.send(Listening::Admin(admin_address));
    }

    let shutdown = CancellationToken::new();
    let mut components: JoinSet<ComponentResult> = JoinSet::new();
    let standalone = args.serve.standalone_nimbus.is_some();
    let run_controllers = !args.controllers.no_controllers && !standalone;
    if standalone && !args.controllers.no_controllers {
        info!("standalone mode: the controllers do not run");
    }
    let run_metrics_api = !args.serve.no_metrics_api;
    let needs_kube = run_controllers
        || (run_metrics_api
            && (!standalone
                || args.metrics_api.authorization_mode
                    == crate::metrics_api::AuthorizationMode::SubjectAccessReview
                || args.metrics_api.requestheader_client_ca_file.is_none()));
    let clusters = Arc::new(crate::clusters::Clusters::thrift(
        (&args.collector).into(),
        shutdown.child_token(),
    ));
    let client = match (embedding.client, needs_kube) {
        (Some(client), _) => Some(client),
        (None, true) => Some(infer_client().await?),
        (None, false) => None,
    };
    // Snapshot age and poll failures per cluster on /metrics, refreshed every few seconds.
    tokio::spawn({
        let (clusters, metrics, stop) = (
            Arc::clone(&clusters),
            Arc::clone(&metrics),
            shutdown.child_token(),
        );
        async move {
            loop {
                metrics
                    .nimbus
                    .observe(&clusters.snapshots(), k8s_openapi::jiff::Timestamp::now());
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    });
    if let (true, Some(client)) = (run_controllers, &client) {
        components.spawn(named(
            "controllers",
            controllers(
                client.clone(),
                args.controllers.clone(),
                Arc::clone(&clusters),
                Arc::clone(&metrics),
                shutdown.child_token(),
            ),
        ));
    }
    if run_metrics_api {
        let api = metrics_api(
            &args,
            client.clone(),
            Arc::clone(&clusters),
            Arc::clone(&metrics),
            embedding.listening.clone(),
            shutdown.child_token(),
        )?;
        components.spawn(named("metrics-api", api));
    }

    let mut failed = false;
    tokio::pin!(stop);
    tokio::select! {
        name = &mut stop => info!(signal = name, "shutting down"),
        Some(joined) = components.join_next(), if !components.is_empty() => {
            failed = true;
            log_component_end(joined, "ended before shutdown");
        }
        ended = &mut admin_task => {
            admin_stop.cancel();
            readiness.shutdown();
            shutdown.cancel();
            drain(&mut components).await;
            return Err(match ended {
                Ok(Ok(())) => anyhow!("admin server stopped unexpectedly"),
                Ok(Err(error)) => anyhow::Error::new(error).context("admin server failed"),
                Err(join_error) => anyhow::Error::new(join_error).context("admin server task failed"),
            });
        }
    }

    readiness.shutdown();
    shutdown.cancel();
    failed |= !drain(&mut components).await;
    admin_stop.cancel();
    match admin_task.await {
        Ok(Ok(())) => debug!("admin server stopped"),
        Ok(Err(error)) => return Err(anyhow::Error::new(error).context("admin server failed")),
        Err(join_error) => {
            return Err(anyhow::Error::new(join_error).context("admin server task failed"));
        }
    }
    if failed {
        Err(anyhow!("a component failed; see the log above"))
    } else {
        Ok(())
    }
}

/// The controllers: leader election, then the reconcilers while leading.
async fn controllers(
    client: kube::Client,
    args: crate::cli::ControllerArgs,
    clusters: Arc<crate::clusters::Clusters>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let identity = std::env::var("POD_NAME")
        .ok()
        .or_else(hostname)
        .unwrap_or_else(|| "storm-controller".into());
    let settings = crate::controller::Settings {
        resync: args.resync_interval,
        finalizer_timeout: args.finalizer_timeout,
        ..Default::default()
    };
    let ctx = Arc::new(crate::controller::Context::new(
        client.clone(),
        clusters,
        metrics,
        Some(identity.clone()),
        settings,
    ));
    let (leading, election) = if args.leader_elect {
        let namespace = args
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let config = crate::controller::leader::LeaseConfig::new(
            namespace,
            args.leader_election_id.clone(),
            identity,
        );
        let (rx, task) = crate::controller::leader::spawn(client, config, shutdown.child_token());
        (rx, Some(task))
    } else {
        (tokio::sync::watch::channel(true).1, None)
    };
    // Without an election the sender is gone at once; `controller::run` reads that as "leading
    // for good".
    let result = crate::controller::run(ctx, leading, shutdown.clone()).await;
    shutdown.cancel();
    if let Some(task) = election {
        let _ = task.await;
    }
    result
}

/// The custom metrics API on every replica: its provider (the Storm objects' caches and the
/// collectors, or standalone Nimbus seeds), trust (CA files or the extension-apiserver-authentication
/// ConfigMap), authorization, then the HTTPS server until shutdown. Configuration errors fail
/// at once, before anything is spawned.
fn metrics_api(
    args: &RunArgs,
    client: Option<kube::Client>,
    clusters: Arc<crate::clusters::Clusters>,
    metrics: Arc<Metrics>,
    listening: Option<mpsc::UnboundedSender<Listening>>,
    shutdown: CancellationToken,
) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + use<>> {
    use crate::metrics_api::{self as api, MetricsProvider};
    let api_args = args.metrics_api.clone();
    let authorizer = api::authorizer_from_args(&api_args, client.clone(), Some(&metrics.api))
        .context("metrics API authorization")?;
    let trust = match api::trust_from_args(&api_args)
        .context("metrics API trust (--requestheader-client-ca-file)")?
    {
        Some(config) => {
            let store = api::TrustStore::new(config).context("metrics API trust")?;
            tokio::spawn(api::watch_trust_files(
                api_args.clone(),
                Arc::clone(&store),
                Duration::from_secs(10),
            ));
            store
        }
        None => {
            let store = api::TrustStore::pending();
            let client = client.clone().context("reading the front-proxy CA from the extension-apiserver-authentication ConfigMap needs a Kubernetes client")?;
            tokio::spawn(api::kube_trust::watch(
                client,
                Arc::clone(&store),
                shutdown.child_token(),
            ));
            store
        }
    };
    let provider: Arc<dyn MetricsProvider> = match (
        &args.serve.standalone_nimbus,
        &args.serve.standalone_namespace,
    ) {
        (Some(seeds), Some(namespace)) => {
            let seeds: Vec<String> = seeds
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let key = crate::clusters::ClusterKey::new(namespace, "standalone");
            let target = crate::clusters::NimbusTarget::new(seeds);
            let connection = clusters
                .ensure_from(&key, &target, crate::clusters::Origin::Standalone)
                .context("--standalone-nimbus")?;
            info!(namespace = %namespace, seeds = ?target.seeds, "standalone mode: serving one Storm cluster's topologies");
            Arc::new(crate::storm_provider::StandaloneProvider::new(
                namespace.clone(),
                connection,
            ))
        }
        _ => {
            let client = client
                .context("the metrics API needs a Kubernetes client outside standalone mode")?;
            // Every replica connects to every cluster, leader or not, so each serves the same data.
            tokio::spawn(crate::clusters::follow(
                client.clone(),
                Arc::clone(&clusters),
                shutdown.child_token(),
            ));
            Arc::new(crate::storm_provider::StormProvider::watch(
                client,
                clusters,
                shutdown.child_token(),
            ))
        }
    };
    let max_age = api_args.metrics_max_age_or(args.collector.poll_interval);
    let mut options = api::ServerOptions::from_args(&api_args, max_age);
    options.metrics = Some(metrics.api.clone());
    if api_args.authorization_mode == api::AuthorizationMode::AlwaysAllow
        && !api_args.bind_address.is_loopback()
    {
        anyhow::bail!("--authorization-mode always-allow needs a loopback --bind-address");
    }
    Ok(async move {
        let server = api::MetricsApiServer::bind(options, provider, authorizer, trust)
            .await
            .context("binding the metrics API")?;
        info!(address = %server.local_addr(), "metrics API listening");
        if let Some(listening) = listening {
            let _ = listening.send(Listening::MetricsApi(server.local_addr()));
        }
        server
            .run(shutdown.cancelled_owned())
            .await
            .context("metrics API")?;
        Ok(())
    })
}

/// The client from KUBECONFIG, `~/.kube/config` or the pod's service account. Without any of them
/// this fails and names `storm-controller dev`: the operator never falls back to the in-memory
/// sandbox on its own, so a pod with a broken service account fails loudly instead of serving a
/// fake cluster.
async fn infer_client() -> anyhow::Result<kube::Client> {
    match kube::Client::try_default().await {
        Ok(client) => Ok(client),
        Err(kube::Error::InferConfig(error)) => Err(anyhow::Error::new(error).context(
            "no Kubernetes cluster: set KUBECONFIG or run in a pod; without a cluster, \
             `storm-controller dev` runs the operator against an embedded sandbox \
             (or pass --no-controllers --no-metrics-api)",
        )),
        Err(error) => Err(anyhow::Error::new(error).context("building the Kubernetes client")),
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Wraps a component future so that its name travels with its result through the `JoinSet`.
pub async fn named<F>(name: &'static str, component: F) -> ComponentResult
where
    F: Future<Output = anyhow::Result<()>>,
{
    (name, component.await)
}

/// Waits for every component to finish, at most [`DRAIN_TIMEOUT`]; returns whether all ended cleanly in time.
async fn drain(components: &mut JoinSet<ComponentResult>) -> bool {
    let mut clean = true;
    let all = async {
        while let Some(joined) = components.join_next().await {
            clean &= log_component_end(joined, "stopped");
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, all).await.is_err() {
        warn!(
            remaining = components.len(),
            timeout = ?DRAIN_TIMEOUT,
            "components did not stop in time; aborting them"
        );
        components.abort_all();
        clean = false;
    }
    clean
}

/// Logs how a component task ended; returns whether it ended cleanly.
fn log_component_end(joined: Result<ComponentResult, tokio::task::JoinError>, how: &str) -> bool {
    match joined {
        Ok((name, Ok(()))) => {
            info!(component = name, "component {how}");
            true
        }
        Ok((name, Err(error))) => {
            error!(
                component = name,
                error = format!("{error:#}"),
                "component failed"
            );
            false
        }
        Err(join_error) => {
            error!(error = %join_error, "component task panicked or was cancelled");
            false
        }
    }
}

/// Selects ring as the process-wide rustls provider (the build has no other; installing it makes that explicit).
fn install_crypto_provider() {
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        debug!("a rustls crypto provider was already installed");
    }
}

/// SIGTERM and SIGINT, registered together.
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and returns its name.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
