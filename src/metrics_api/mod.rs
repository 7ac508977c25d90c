//! The aggregated `custom.metrics.k8s.io` API server (contract: `reference/custom-metrics-contract.md`).
//!
//! HTTPS with rustls (ring, TLS 1.2+, ALPN h2 and http/1.1) on `--bind-address:--secure-port`:
//! discovery for v1beta2 (preferred) and v1beta1, `/apis`, OpenAPI, `/version`, health, and the metric
//! reads of Storm objects from a [`MetricsProvider`]. Requests are authenticated by the front-proxy
//! certificate ([`auth`]) and authorized by a cached SubjectAccessReview ([`authz`]).
//!
//! Wiring (in `run`): build a [`TrustStore`] ([`TrustStore::new`] from [`trust_from_args`], or
//! [`TrustStore::pending`] fed by the ConfigMap watch through [`trust_from_configmap_data`] and
//! [`TrustStore::set`]), an authorizer with [`authorizer_from_args`], a [`MetricsProvider`], then
//! [`serve`] (or [`MetricsApiServer::bind`] + [`MetricsApiServer::run`], which also reports the bound
//! port and accepts [`ApiMetrics`] through [`ServerOptions::metrics`]).
//!
//! Freshness rule: a sample older than the max age is left out of `*` lists; for one named object
//! the answer is 503 ServiceUnavailable naming the sample time when every matching series is stale
//! (the choice; the HPA treats 404 and 503 alike, people reading Events see why), and 404
//! when the object has no value at all.

pub mod args;
pub mod auth;
pub mod authz;
mod docs;
mod http;
pub mod kube_trust;
pub mod provider;
pub mod quantity;
pub mod selector;
pub mod status;
pub mod telemetry;
pub mod timefmt;
pub mod tls;
pub mod types;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::server::ResolvesServerCert;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub use args::{AuthorizationMode, MetricsApiArgs};
pub use auth::{
    RequestHeaderConfig, TrustConfig, TrustError, TrustStore, UserInfo, trust_from_configmap_data,
};
pub use authz::{
    AlwaysAllow, Attributes, Authorizer, AuthzError, CachedAuthorizer, Decision,
    SubjectAccessReviewAuthorizer,
};
pub use provider::{MetricsProvider, ObjectInfo, Sample, ServedResource, StaticProvider};
pub use telemetry::ApiMetrics;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Trust material could not be loaded.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The listener could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The flags are inconsistent.
    #[error("{0}")]
    Config(String),
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files, reloaded when they change.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A self-signed certificate generated at startup for `<service>.<namespace>.svc`.
    SelfSigned {
        /// Service name.
        service: String,
        /// Service namespace.
        namespace: String,
    },
}

/// Settings of a server (built from [`MetricsApiArgs`] or by hand in tests).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Prometheus metrics to update, if any.
    pub metrics: Option<ApiMetrics>,
    /// Listen address (port 0 picks one; see [`MetricsApiServer::local_addr`]).
    pub bind: SocketAddr,
    /// Serving certificate.
    pub cert: CertSource,
    /// Samples older than this are not served.
    pub metrics_max_age: Duration,
    /// Requests served at once before 429.
    pub max_requests_in_flight: usize,
    /// Server-side deadline per request.
    pub request_timeout: Duration,
    /// How long `/readyz` fails before the listener closes on shutdown.
    pub shutdown_delay: Duration,
    /// How long connections may drain after that.
    pub shutdown_grace: Duration,
}

impl ServerOptions {
    /// Options from the flags; `metrics_max_age` is the resolved max age (see
    /// [`MetricsApiArgs::metrics_max_age_or`]).
    pub fn from_args(args: &MetricsApiArgs, metrics_max_age: Duration) -> ServerOptions {
        let cert = match (&args.tls_cert_file, &args.tls_private_key_file) {
            (Some(cert), Some(key)) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => CertSource::SelfSigned {
                service: args.service_name.clone(),
                namespace: args.service_namespace.clone(),
            },
        };
        ServerOptions {
            metrics: None,
            bind: SocketAddr::new(args.bind_address, args.secure_port),
            cert,
            metrics_max_age,
            max_requests_in_flight: args.max_requests_in_flight.max(1),
            request_timeout: args.request_timeout,
            shutdown_delay: args.shutdown_delay,
            shutdown_grace: args.shutdown_grace,
        }
    }

    /// Loopback-friendly options for tests and the sandbox: 127.0.0.1:0, self-signed, 1 minute max age.
    pub fn local() -> ServerOptions {
        ServerOptions {
            metrics: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert: CertSource::SelfSigned {
                service: "storm-metrics-apiserver".into(),
                namespace: "storm-system".into(),
            },
            metrics_max_age: Duration::from_secs(60),
            max_requests_in_flight: 400,
            request_timeout: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The authorizer the flags ask for: a cached SubjectAccessReview authorizer over `client`, or
/// always-allow, which is refused unless the bind address is loopback.
pub fn authorizer_from_args(
    args: &MetricsApiArgs,
    client: Option<kube::Client>,
    metrics: Option<&ApiMetrics>,
) -> Result<Arc<dyn Authorizer>, ServeError> {
    match args.authorization_mode {
        AuthorizationMode::AlwaysAllow => {
            if !args.bind_address.is_loopback() {
                return Err(ServeError::Config(format!(
                    "--authorization-mode always-allow is refused on {}: it is allowed only on a loopback --bind-address",
                    args.bind_address
                )));
            }
            tracing::warn!(
                "authorization is off (--authorization-mode always-allow); serving on loopback only"
            );
            Ok(Arc::new(AlwaysAllow))
        }
        AuthorizationMode::SubjectAccessReview => {
            let client = client.ok_or_else(|| {
                ServeError::Config(
                    "--authorization-mode subjectaccessreview needs a Kubernetes client".into(),
                )
            })?;
            let sar = Arc::new(SubjectAccessReviewAuthorizer::new(
                client,
                args.authorization_timeout,
            ));
            let mut cached = CachedAuthorizer::new(
                sar,
                args.authorization_cache_ttl,
                args.authorization_deny_cache_ttl,
            );
            if let Some(m) = metrics {
                cached = cached.with_metrics(m);
            }
            Ok(Arc::new(cached))
        }
    }
}

/// Trust material from the flags when `--requestheader-client-ca-file` is given (with
/// `--client-ca-file`, if any, and the header flags). `None` means: read and watch the
/// `kube-system/extension-apiserver-authentication` ConfigMap ([`trust_from_configmap_data`]),
/// which also carries the client CA.
pub fn trust_from_args(args: &MetricsApiArgs) -> Result<Option<TrustConfig>, TrustError> {
    if args.requestheader_client_ca_file.is_none() {
        return Ok(None);
    }
    let read = |p: &Path,
                what: &str|
     -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TrustError> {
        let pem = std::fs::read(p).map_err(|source| TrustError::Read {
            path: p.display().to_string(),
            source,
        })?;
        auth::parse_pem_bundle(&pem, what)
    };
    let request_header = match &args.requestheader_client_ca_file {
        Some(p) => Some(RequestHeaderConfig {
            client_ca: read(p, "--requestheader-client-ca-file")?,
            allowed_names: args
                .requestheader_allowed_names
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            username_headers: args.requestheader_username_headers.clone(),
            uid_headers: args.requestheader_uid_headers.clone(),
            group_headers: args.requestheader_group_headers.clone(),
            extra_headers_prefixes: args.requestheader_extra_headers_prefix.clone(),
        }),
        None => None,
    };
    let client_ca = match &args.client_ca_file {
        Some(p) => read(p, "--client-ca-file")?,
        None => Vec::new(),
    };
    Ok(Some(TrustConfig {
        request_header,
        client_ca,
    }))
}

/// Re-reads the CA files of the flags every `period` and updates `store` when they changed
/// (rotation without restart). Runs until aborted.
pub async fn watch_trust_files(args: MetricsApiArgs, store: Arc<TrustStore>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        match trust_from_args(&args) {
            Ok(Some(cfg)) => {
                if let Err(e) = store.set(cfg) {
                    tracing::warn!(error = %e, "new CA files are unusable; keeping the previous trust material");
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading the CA files failed; keeping the previous trust material")
            }
        }
    }
}

/// TLS acceptor rebuilt when the trust material (advertised CA names) changes.
struct Acceptors {
    resolver: Arc<dyn ResolvesServerCert>,
    trust: Arc<TrustStore>,
    current: ArcSwap<(u64, TlsAcceptor)>,
}

impl Acceptors {
    fn new(
        resolver: Arc<dyn ResolvesServerCert>,
        trust: Arc<TrustStore>,
    ) -> Result<Acceptors, tls::TlsError> {
        let generation = trust.generation();
        let cfg = tls::server_config(resolver.clone(), trust.current().hints.clone())?;
        Ok(Acceptors {
            resolver,
            trust,
            current: ArcSwap::from_pointee((generation, TlsAcceptor::from(cfg))),
        })
    }

    fn get(&self) -> TlsAcceptor {
        let generation = self.trust.generation();
        let cur = self.current.load();
        if cur.0 == generation {
            return cur.1.clone();
        }
        match tls::server_config(self.resolver.clone(), self.trust.current().hints.clone()) {
            Ok(cfg) => {
                let acceptor = TlsAcceptor::from(cfg);
                self.current.store(Arc::new((generation, acceptor.clone())));
                acceptor
            }
            Err(e) => {
                tracing::warn!(error = %e, "rebuilding the TLS configuration failed; keeping the previous one");
                cur.1.clone()
            }
        }
    }
}

/// A bound, not yet running server.
pub struct MetricsApiServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<http::State>,
    acceptors: Arc<Acceptors>,
    options: ServerOptions,
    self_signed_pem: Option<String>,
}

impl std::fmt::Debug for MetricsApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsApiServer")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl MetricsApiServer {
    /// Prepares TLS and binds the listener.
    pub async fn bind(
        options: ServerOptions,
        provider: Arc<dyn MetricsProvider>,
        authorizer: Arc<dyn Authorizer>,
        trust: Arc<TrustStore>,
    ) -> Result<MetricsApiServer, ServeError> {
        let (resolver, self_signed_pem): (Arc<dyn ResolvesServerCert>, _) = match &options.cert {
            CertSource::Files { cert, key } => {
                (Arc::new(tls::ReloadingCertResolver::new(cert, key)?), None)
            }
            CertSource::SelfSigned { service, namespace } => {
                let s = tls::self_signed(service, namespace)?;
                tracing::warn!(
                    dns = %format!("{service}.{namespace}.svc"),
                    "no --tls-cert-file given: serving a self-signed certificate generated in memory; \
                     the APIService needs insecureSkipTLSVerify or this certificate as caBundle"
                );
                (Arc::new(tls::FixedCertResolver(s.key)), Some(s.cert_pem))
            }
        };
        let acceptors = Arc::new(Acceptors::new(resolver, trust.clone())?);
        let listener =
            TcpListener::bind(options.bind)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: options.bind,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: options.bind,
            source,
        })?;
        let state = Arc::new(http::State {
            provider,
            authorizer,
            trust,
            docs: docs::Docs::build(),
            max_age: options.metrics_max_age,
            request_timeout: options.request_timeout,
            in_flight: Arc::new(Semaphore::new(options.max_requests_in_flight.max(1))),
            shutting_down: Default::default(),
            metrics: options.metrics.clone(),
        });
        Ok(MetricsApiServer {
            listener,
            local_addr,
            state,
            acceptors,
            options,
            self_signed_pem,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The generated certificate in PEM, when serving a self-signed one.
    pub fn self_signed_cert_pem(&self) -> Option<&str> {
        self.self_signed_pem.as_deref()
    }

    /// Serves until `shutdown` completes, then fails `/readyz` for the shutdown delay while still
    /// serving, closes the listener, and lets open connections drain for the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let MetricsApiServer {
            listener,
            local_addr,
            state,
            acceptors,
            options,
            ..
        } = self;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(250)
            .max_pending_accept_reset_streams(50);
        let builder = Arc::new(builder);
        let graceful = GracefulShutdown::new();
        tracing::info!(%local_addr, "metrics API server listening");

        tokio::pin!(shutdown);
        let mut stop_at: Option<Instant> = None;
        loop {
            let accepted = match stop_at {
                None => tokio::select! {
                    _ = &mut shutdown => {
                        state.shutting_down.store(true, Ordering::SeqCst);
                        tracing::info!(delay = ?options.shutdown_delay, "shutting down: /readyz fails from now on");
                        stop_at = Some(Instant::now() + options.shutdown_delay);
                        continue;
                    }
                    a = listener.accept() => a,
                },
                Some(t) => tokio::select! {
                    _ = tokio::time::sleep_until(t.into()) => break,
                    a = listener.accept() => a,
                },
            };
            let (tcp, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptors.get();
            let state = state.clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote, "TLS handshake timed out");
                        return;
                    }
                };
                let chain = tls.get_ref().1.peer_certificates().map(|c| c.to_vec());
                let conn = Arc::new(http::ConnInfo::new(chain));
                let service = service_fn(move |req| {
                    let (state, conn) = (state.clone(), conn.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(http::handle(state, conn, req).await)
                    }
                });
                let connection = builder.serve_connection(TokioIo::new(tls), service);
                if let Err(e) = watcher.watch(connection).await {
                    // Client cancellations and resets are normal (KAS cancels parallel probes).
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        tracing::info!("listener closed; draining connections");
        if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::info!("connections still open after the grace period; closing them");
        }
        Ok(())
    }
}

/// Binds and runs the server with the flags until `shutdown` completes.
pub async fn serve(
    args: &MetricsApiArgs,
    metrics_max_age: Duration,
    provider: Arc<dyn MetricsProvider>,
    authorizer: Arc<dyn Authorizer>,
    trust: Arc<TrustStore>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if args.authorization_mode == AuthorizationMode::AlwaysAllow && !args.bind_address.is_loopback()
    {
        return Err(ServeError::Config(
            "--authorization-mode always-allow needs a loopback --bind-address".into(),
        ));
    }
    let server = MetricsApiServer::bind(
        ServerOptions::from_args(args, metrics_max_age),
        provider,
        authorizer,
        trust,
    )
    .await?;
    server.run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: MetricsApiArgs,
    }

    #[test]
    fn always_allow_only_on_loopback() {
        let open = Cli::parse_from(["x", "--authorization-mode", "always-allow"]).api;
        let err = authorizer_from_args(&open, None, None)
            .err()
            .expect("refused on 0.0.0.0");
        assert!(err.to_string().contains("loopback"), "{err}");
        let local = Cli::parse_from([
            "x",
            "--authorization-mode",
            "always-allow",
            "--bind-address",
            "127.0.0.1",
        ])
        .api;
        assert!(authorizer_from_args(&local, None, None).is_ok());
        let v6 = Cli::parse_from([
            "x",
            "--authorization-mode",
            "always-allow",
            "--bind-address",
            "::1",
        ])
        .api;
        assert!(authorizer_from_args(&v6, None, None).is_ok());
        let sar = Cli::parse_from(["x"]).api;
        assert!(
            authorizer_from_args(&sar, None, None).is_err(),
            "SAR mode needs a client"
        );
    }

    #[test]
    fn trust_from_flag_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = p
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let f = dir.path().join("ca.crt");
        std::fs::write(&f, pem).unwrap();
        let none = Cli::parse_from(["x"]).api;
        assert!(trust_from_args(&none).unwrap().is_none());
        let args = Cli::parse_from([
            "x",
            "--requestheader-client-ca-file",
            f.to_str().unwrap(),
            "--requestheader-allowed-names",
            "front-proxy-client",
            "--requestheader-group-headers",
            "X-Remote-Group,X-Other-Group",
        ])
        .api;
        let t = trust_from_args(&args).unwrap().unwrap();
        let rh = t.request_header.unwrap();
        assert_eq!(rh.client_ca.len(), 1);
        assert_eq!(rh.allowed_names, vec!["front-proxy-client"]);
        assert_eq!(rh.group_headers, vec!["X-Remote-Group", "X-Other-Group"]);
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: MetricsApiArgs,
    }

    fn ca_pem() -> String {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem()
    }

    #[tokio::test]
    async fn ca_files_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("front-proxy-ca.crt");
        std::fs::write(&f, ca_pem()).unwrap();
        let args =
            Cli::parse_from(["x", "--requestheader-client-ca-file", f.to_str().unwrap()]).api;
        let store = TrustStore::new(trust_from_args(&args).unwrap().unwrap()).unwrap();
        let g0 = store.generation();
        let task = tokio::spawn(watch_trust_files(
            args,
            store.clone(),
            Duration::from_millis(20),
        ));
        // An unusable file keeps the old material; a new CA replaces it.
        std::fs::write(&f, "not a certificate").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.generation(), g0);
        std::fs::write(&f, ca_pem()).unwrap();
        let changed = async {
            while store.generation() == g0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), changed)
            .await
            .expect("the new CA is loaded");
        task.abort();
    }
}
