//! Benchmark: a single-object v1beta2 metric read through the full metrics API stack (TLS, routing,
//! authentication, cached authorization, provider lookup, JSON) against a bare rustls + hyper
//! server returning a fixed JSON body of the same size. Same process, same client, same
//! concurrency; HTTP/1.1 keep-alive and h2. Prints requests/s, p50/p99 and the ratio, plus the
//! discovery latency and the process RSS with 1000 topologies in the provider.
//!
//! `cargo bench --bench metrics_api` (env: BENCH_CONNS, default 64; BENCH_SECS per run, default 2;
//! BENCH_ROUNDS, default 3).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use storm_controller::crd::worker_pool::StormMetricName;
use storm_controller::metrics_api::tls;
use storm_controller::metrics_api::{
    Attributes, Authorizer, AuthzError, CachedAuthorizer, Decision, MetricsApiServer, Sample,
    ServedResource, ServerOptions, StaticProvider, TrustConfig, TrustStore, UserInfo,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/storm/stormtopologies.storm.apache.org/topo-0500/storm_topology_pending_tuples";
const DISCOVERY: &str = "/apis/custom.metrics.k8s.io/v1beta2";

// The trust-any-server verifier the TLS tests use.
#[allow(dead_code)]
#[path = "../../tests/support/tls.rs"]
mod test_tls;
use test_tls::NoVerify;

/// A stand-in for the SubjectAccessReview behind the cache: allows everything (only cache hits are measured).
struct Allow;

#[async_trait]
impl Authorizer for Allow {
    async fn authorize(&self, _u: &UserInfo, _a: &Attributes) -> Result<Decision, AuthzError> {
        Ok(Decision::Allow)
    }
}

fn client_config(alpn: &[u8]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(cfg)
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(addr: SocketAddr, h2: bool) -> Sender {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
    let tls = TlsConnector::from(client_config(alpn))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let io = TokioIo::new(tls);
    if h2 {
        let (s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(c);
        Sender::H2(s)
    } else {
        let (s, c) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(c);
        Sender::H1(s)
    }
}

async fn once(sender: &mut Sender, path: &str) -> (u16, Bytes) {
    let req = Request::get(format!("https://localhost{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = match sender {
        Sender::H1(s) => {
            s.ready().await.unwrap();
            s.send_request(req).await.unwrap()
        }
        Sender::H2(s) => {
            s.ready().await.unwrap();
            s.send_request(req).await.unwrap()
        }
    };
    let status = res.status().as_u16();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// Averages request rates and takes the median of the percentiles of several runs.
fn merge(runs: &[Stats]) -> Stats {
    let mut p50: Vec<_> = runs.iter().map(|s| s.p50).collect();
    let mut p99: Vec<_> = runs.iter().map(|s| s.p99).collect();
    p50.sort();
    p99.sort();
    Stats {
        rps: runs.iter().map(|s| s.rps).sum::<f64>() / runs.len() as f64,
        p50: p50[p50.len() / 2],
        p99: p99[p99.len() / 2],
    }
}

/// `conns` connections, each sending one request after the other for `secs`.
async fn load(addr: SocketAddr, h2: bool, conns: usize, secs: f64, path: &'static str) -> Stats {
    let mut senders = Vec::new();
    for _ in 0..conns {
        senders.push(connect(addr, h2).await);
    }
    // Warm up.
    for s in &mut senders {
        assert_eq!(once(s, path).await.0, 200);
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(100_000);
                // Bounded: stops at `end`, and at 10 million requests per connection at the latest.
                while Instant::now() < end && lat.len() < 10_000_000 {
                    let t = Instant::now();
                    let (code, _) = once(&mut s, path).await;
                    assert_eq!(code, 200);
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p) as usize];
    Stats {
        rps: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

/// The baseline: rustls + hyper auto (h1/h2), a fixed JSON body, nothing else.
async fn bare_server(body: Bytes) -> SocketAddr {
    let key = tls::self_signed("bare", "bench").unwrap().key;
    let mut cfg = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(tls::FixedCertResolver(key)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let builder = Arc::new(hyper_util::server::conn::auto::Builder::new(
            TokioExecutor::new(),
        ));
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.set_nodelay(true);
            let (acceptor, builder, body) = (acceptor.clone(), builder.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        let mut r = http::Response::new(Full::new(body));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    addr
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo nextest run --all-targets` lists every target with `--list`: a benchmark has no
    // tests and must not run while being listed.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let conns: usize = std::env::var("BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let rss_start = rss_kib();
        let provider = Arc::new(StaticProvider::new());
        let now = SystemTime::now();
        for i in 0..1000 {
            let name = format!("topo-{i:04}");
            let labels: BTreeMap<String, String> = [("app".to_owned(), name.clone())].into();
            provider.upsert_object(ServedResource::StormTopologies, "storm", &name, labels);
            for m in StormMetricName::ALL {
                let samples = if m.per_component() {
                    ["spout", "split", "count"]
                        .iter()
                        .map(|c| Sample { labels: [("component".to_owned(), (*c).to_owned())].into(), value: 0.5, timestamp: now, window_seconds: Some(600) })
                        .collect()
                } else {
                    vec![Sample { labels: BTreeMap::new(), value: i as f64 * 1.5, timestamp: now, window_seconds: Some(600) }]
                };
                provider.set_samples(ServedResource::StormTopologies, "storm", &name, m, samples);
            }
        }
        let cached = Arc::new(CachedAuthorizer::new(Arc::new(Allow), Duration::from_secs(300), Duration::from_secs(10)));
        // BENCH_AUTHZ=always-allow measures without the authorization cache.
        let always = std::env::var("BENCH_AUTHZ").is_ok_and(|v| v == "always-allow");
        let authz: Arc<dyn Authorizer> = if always { Arc::new(storm_controller::metrics_api::AlwaysAllow) } else { cached.clone() };
        println!("authorization: {}", if always { "always-allow" } else { "cached SubjectAccessReview stand-in (moka)" });
        let opts = ServerOptions { metrics_max_age: Duration::from_secs(3600), max_requests_in_flight: 10_000, ..ServerOptions::local() };
        let server = MetricsApiServer::bind(opts, provider, authz, TrustStore::new(TrustConfig::default()).unwrap()).await.unwrap();
        let ours = server.local_addr();
        tokio::spawn(server.run(std::future::pending()));

        let mut probe = connect(ours, false).await;
        let (code, body) = once(&mut probe, PATH).await;
        assert_eq!(code, 200);
        println!("single-object v1beta2 body: {} bytes", body.len());
        let bare = bare_server(body).await;

        println!("{conns} connections, {rounds} alternating rounds of {secs} s per server, {} worker threads", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        println!("{:<8} {:>14} {:>10} {:>10} {:>14} {:>10} {:>10} {:>7}", "proto", "ours req/s", "p50", "p99", "bare req/s", "p50", "p99", "ratio");
        for h2 in [false, true] {
            // Alternate the two servers over several rounds so that load from other processes
            // on the machine hits both alike; report the totals and the median ratio.
            let (mut o_all, mut b_all, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                let o = load(ours, h2, conns, secs, PATH).await;
                let b = load(bare, h2, conns, secs, PATH).await;
                ratios.push(o.rps / b.rps);
                o_all.push(o);
                b_all.push(b);
            }
            ratios.sort_by(f64::total_cmp);
            let (o, b) = (merge(&o_all), merge(&b_all));
            println!(
                "{:<8} {:>14.0} {:>10.2?} {:>10.2?} {:>14.0} {:>10.2?} {:>10.2?} {:>6.2}x  (rounds: {})",
                if h2 { "h2" } else { "http/1.1" },
                o.rps,
                o.p50,
                o.p99,
                b.rps,
                b.p50,
                b.p99,
                ratios[ratios.len() / 2],
                ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" ")
            );
        }
        let d = load(ours, false, 1, 1.0, DISCOVERY).await;
        println!("discovery {DISCOVERY}, 1 connection: {:.0} req/s, p50 {:.2?}, p99 {:.2?}", d.rps, d.p50, d.p99);
        let (hits, misses) = cached.stats();
        println!("authorization cache: {hits} hits, {misses} misses");
        println!("process RSS: {} KiB at start, {} KiB with 1000 topologies (9 metrics each) after the runs", rss_start, rss_kib());
    });
}
