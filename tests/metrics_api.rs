//! The metrics API over real TLS sockets on 127.0.0.1: discovery, metric reads in both versions,
//! errors, content negotiation, limits, front-proxy authentication, SubjectAccessReview (against an
//! in-test stub), certificate reload, ALPN and graceful shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use storm_controller::crd::worker_pool::StormMetricName;
use storm_controller::metrics_api::timefmt::rfc3339_seconds;
use storm_controller::metrics_api::{
    AlwaysAllow, Attributes, Authorizer, AuthzError, CachedAuthorizer, CertSource, Decision,
    MetricsApiServer, RequestHeaderConfig, Sample, ServedResource, ServerOptions, StaticProvider,
    SubjectAccessReviewAuthorizer, TrustConfig, TrustStore, UserInfo,
};
use support::tls::NoVerify;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

mod support;

const WAIT: Duration = Duration::from_secs(10);
const V2: &str = "/apis/custom.metrics.k8s.io/v1beta2";
const V1: &str = "/apis/custom.metrics.k8s.io/v1beta1";
const TOPO: &str = "stormtopologies.storm.apache.org";

// ---------- client side ----------

#[derive(Clone)]
struct ClientCert {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

fn client_config(alpn: &[u8], cert: Option<&ClientCert>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)));
    let mut cfg = match cert {
        Some(c) => b
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(cfg)
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    version: Version,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Req<'a> {
    method: Method,
    path: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    cert: Option<&'a ClientCert>,
    alpn: &'a [u8],
}

fn get(path: &str) -> Req<'_> {
    Req {
        method: Method::GET,
        path,
        headers: Vec::new(),
        cert: None,
        alpn: b"http/1.1",
    }
}

impl<'a> Req<'a> {
    fn header(mut self, k: &'a str, v: &'a str) -> Self {
        self.headers.push((k, v));
        self
    }
    fn cert(mut self, c: &'a ClientCert) -> Self {
        self.cert = Some(c);
        self
    }
    fn method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }
    fn h2(mut self) -> Self {
        self.alpn = b"h2";
        self
    }
    async fn send(self, addr: SocketAddr) -> Resp {
        tokio::time::timeout(WAIT, self.send_inner(addr))
            .await
            .expect("request timed out")
    }
    async fn send_inner(self, addr: SocketAddr) -> Resp {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let tls = TlsConnector::from(client_config(self.alpn, self.cert))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake");
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let mut b = Request::builder()
            .method(self.method)
            .uri(format!("https://localhost{}", self.path));
        for (k, v) in &self.headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::new())).unwrap();
        let io = TokioIo::new(tls);
        let res = if h2 {
            let (mut s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(c);
            s.send_request(req).await.unwrap()
        } else {
            let (mut s, c) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(c);
            s.send_request(req).await.unwrap()
        };
        let (parts, body) = res.into_parts();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
            version: parts.version,
        }
    }
}

async fn server_cert(addr: SocketAddr) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(client_config(b"http/1.1", None))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

// ---------- certificates ----------

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

fn client_cert(ca: &Ca, cn: &str) -> ClientCert {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    ClientCert {
        chain: vec![cert.der().clone()],
        key: Arc::new(PrivateKeyDer::try_from(key.serialize_der()).unwrap()),
    }
}

fn front_proxy_trust(ca: &Ca, allowed: &[&str]) -> TrustConfig {
    let certs =
        storm_controller::metrics_api::auth::parse_pem_bundle(ca.pem.as_bytes(), "test").unwrap();
    let mut rh = RequestHeaderConfig::with_defaults(certs);
    rh.allowed_names = allowed.iter().map(|s| s.to_string()).collect();
    TrustConfig {
        request_header: Some(rh),
        client_ca: Vec::new(),
    }
}

// ---------- server side ----------

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("server stops")
            .unwrap();
    }
}

async fn start(
    opts: ServerOptions,
    provider: Arc<StaticProvider>,
    authorizer: Arc<dyn Authorizer>,
    trust: Arc<TrustStore>,
) -> Running {
    let server = MetricsApiServer::bind(opts, provider, authorizer, trust)
        .await
        .unwrap();
    let addr = server.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

fn sample(value: f64, at: SystemTime, labels: &[(&str, &str)]) -> Sample {
    Sample {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
        timestamp: at,
        window_seconds: Some(600),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Topologies wc (app=wc,tier=a), other (app=other,tier=b), old (stale), nan (NaN); pool wc-pool.
fn fixture(t: SystemTime) -> Arc<StaticProvider> {
    let p = Arc::new(StaticProvider::new());
    let st = ServedResource::StormTopologies;
    p.upsert_object(st, "storm", "wc", labels(&[("app", "wc"), ("tier", "a")]));
    p.upsert_object(
        st,
        "storm",
        "other",
        labels(&[("app", "other"), ("tier", "b")]),
    );
    p.upsert_object(st, "storm", "old", labels(&[("app", "old")]));
    p.upsert_object(st, "storm", "nan", labels(&[("app", "nan")]));
    p.upsert_object(st, "storm", "quiet", labels(&[("app", "quiet")]));
    p.set_samples(
        st,
        "storm",
        "wc",
        StormMetricName::PendingTuples,
        vec![sample(1.5, t, &[])],
    );
    p.set_samples(
        st,
        "storm",
        "other",
        StormMetricName::PendingTuples,
        vec![sample(2000.0, t, &[])],
    );
    p.set_samples(
        st,
        "storm",
        "old",
        StormMetricName::PendingTuples,
        vec![sample(7.0, ago(3600), &[])],
    );
    p.set_samples(
        st,
        "storm",
        "nan",
        StormMetricName::PendingTuples,
        vec![sample(f64::NAN, t, &[])],
    );
    p.set_samples(
        st,
        "storm",
        "wc",
        StormMetricName::ComponentCapacity,
        vec![
            sample(0.75, t, &[("component", "split")]),
            sample(0.5, t, &[("component", "count")]),
        ],
    );
    let wp = ServedResource::StormWorkerPools;
    p.upsert_object(wp, "storm", "wc-pool", labels(&[("app", "wc")]));
    p.set_samples(
        wp,
        "storm",
        "wc-pool",
        StormMetricName::Capacity,
        vec![sample(12.345, t, &[])],
    );
    p
}

async fn open_server() -> (Running, SystemTime) {
    let t = ago(5);
    let r = start(
        ServerOptions::local(),
        fixture(t),
        Arc::new(AlwaysAllow),
        TrustStore::new(TrustConfig::default()).unwrap(),
    )
    .await;
    (r, t)
}

// ---------- tests ----------

#[tokio::test]
async fn discovery_documents_in_both_versions() {
    let (srv, _) = open_server().await;
    let a = srv.addr;

    let r = get(V2).send(a).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/json");
    let d = r.json();
    assert_eq!(d["kind"], "APIResourceList");
    assert_eq!(d["apiVersion"], "v1");
    assert_eq!(d["groupVersion"], "custom.metrics.k8s.io/v1beta2");
    let res = d["resources"].as_array().unwrap();
    assert_eq!(res.len(), 18);
    assert!(res.iter().all(|r| r["namespaced"] == true
        && r["singularName"] == ""
        && r["verbs"] == json!(["get"])));
    assert!(
        res.iter()
            .any(|r| r["name"] == "stormworkerpools.storm.apache.org/storm_component_capacity")
    );
    let d1 = get(&format!("{V1}?timeout=32s")).send(a).await.json();
    assert_eq!(d1["groupVersion"], "custom.metrics.k8s.io/v1beta1");
    assert_eq!(d1["resources"].as_array().unwrap().len(), 18);

    let g = get("/apis/custom.metrics.k8s.io").send(a).await.json();
    assert_eq!(
        g,
        json!({"kind":"APIGroup","apiVersion":"v1","name":"custom.metrics.k8s.io",
               "versions":[{"groupVersion":"custom.metrics.k8s.io/v1beta2","version":"v1beta2"},
                           {"groupVersion":"custom.metrics.k8s.io/v1beta1","version":"v1beta1"}],
               "preferredVersion":{"groupVersion":"custom.metrics.k8s.io/v1beta2","version":"v1beta2"}})
    );
    let l = get("/apis").send(a).await.json();
    assert_eq!(l["kind"], "APIGroupList");
    assert!(l["groups"][0].get("kind").is_none());
    assert_eq!(l["groups"][0]["name"], "custom.metrics.k8s.io");

    // Aggregated discovery is not offered: 406, so KAS falls back to the per-version documents.
    let agg = get("/apis")
        .header("accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList")
        .send(a)
        .await;
    assert_eq!(agg.status, 406);
    assert_eq!(agg.headers["content-type"], "application/json");

    let v = get("/version").send(a).await.json();
    for k in [
        "major",
        "minor",
        "gitVersion",
        "gitCommit",
        "gitTreeState",
        "buildDate",
        "goVersion",
        "compiler",
        "platform",
    ] {
        assert!(v[k].is_string(), "{k}");
    }
    let o = get("/openapi/v2").send(a).await;
    assert_eq!(o.status, 200);
    assert_eq!(o.json()["swagger"], "2.0");
    let etag = o.headers["etag"].to_str().unwrap().to_owned();
    let o2 = get("/openapi/v2")
        .header("if-none-match", &etag)
        .send(a)
        .await;
    assert_eq!(o2.status, 304);
    assert!(o2.body.is_empty());
    let v3 = get("/openapi/v3").send(a).await.json();
    let url = v3["paths"]["apis/custom.metrics.k8s.io/v1beta2"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get(&url).send(a).await.json()["openapi"], "3.0.0");
    assert!(get("/").send(a).await.json()["paths"].is_array());

    assert_eq!(
        get("/apis/custom.metrics.k8s.io/v1").send(a).await.status,
        404
    );
    srv.stop().await;
}

#[tokio::test]
async fn single_object_reads_have_exact_shapes() {
    let (srv, t) = open_server().await;
    let a = srv.addr;
    let ts = rfc3339_seconds(t);

    let r = get(&format!(
        "{V2}/namespaces/storm/{TOPO}/wc/storm_topology_pending_tuples"
    ))
    .send(a)
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!(
            r#"{{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta2","metadata":{{}},"items":[{{"describedObject":{{"kind":"StormTopology","namespace":"storm","name":"wc","apiVersion":"storm.apache.org/v1alpha1"}},"metric":{{"name":"storm_topology_pending_tuples","selector":null}},"timestamp":"{ts}","windowSeconds":600,"value":"1500m"}}]}}"#
        )
    );
    let r = get(&format!(
        "{V1}/namespaces/storm/{TOPO}/wc/storm_topology_pending_tuples"
    ))
    .send(a)
    .await;
    assert_eq!(
        r.text(),
        format!(
            r#"{{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta1","metadata":{{}},"items":[{{"describedObject":{{"kind":"StormTopology","namespace":"storm","name":"wc","apiVersion":"storm.apache.org/v1alpha1"}},"metricName":"storm_topology_pending_tuples","timestamp":"{ts}","window":600,"value":"1500m","selector":null}}]}}"#
        )
    );
    // Worker pools are served too.
    let r = get(&format!(
        "{V2}/namespaces/storm/stormworkerpools.storm.apache.org/wc-pool/storm_topology_capacity"
    ))
    .send(a)
    .await
    .json();
    assert_eq!(r["items"][0]["describedObject"]["kind"], "StormWorkerPool");
    assert_eq!(r["items"][0]["value"], "12345m");

    // Per-component metric: metricLabelSelector picks the series and is echoed back.
    let p = format!(
        "{V2}/namespaces/storm/{TOPO}/wc/storm_component_capacity?metricLabelSelector=component%3Dsplit"
    );
    let r = get(&p).send(a).await.json();
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    assert_eq!(r["items"][0]["value"], "750m");
    assert_eq!(
        r["items"][0]["metric"]["selector"],
        json!({"matchLabels": {"component": "split"}})
    );
    let p = format!(
        "{V1}/namespaces/storm/{TOPO}/wc/storm_component_capacity?metricLabelSelector=component+in+%28count%29"
    );
    let r = get(&p).send(a).await.json();
    assert_eq!(r["items"][0]["value"], "500m");
    assert_eq!(
        r["items"][0]["selector"],
        json!({"matchExpressions": [{"key": "component", "operator": "In", "values": ["count"]}]})
    );
    // Without a selector two series match: exactly one item is required, so 400 naming them.
    let r = get(&format!(
        "{V2}/namespaces/storm/{TOPO}/wc/storm_component_capacity"
    ))
    .send(a)
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("component=count")
    );
    srv.stop().await;
}

#[tokio::test]
async fn wildcard_reads_with_label_selectors() {
    let (srv, _) = open_server().await;
    let a = srv.addr;
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["describedObject"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // `*` and `%2A`; stale (old) and NaN (nan) samples are left out; quiet has no value.
    for star in ["*", "%2A"] {
        let r = get(&format!(
            "{V2}/namespaces/storm/{TOPO}/{star}/storm_topology_pending_tuples"
        ))
        .send(a)
        .await;
        assert_eq!(r.status, 200, "{star}");
        assert_eq!(names(&r.json()), vec!["other", "wc"]);
    }
    // `+` as space, unknown parameters ignored, full selector syntax.
    let cases = [
        ("app+in+%28wc%2Cnope%29", vec!["wc"]),
        ("app%3Dwc", vec!["wc"]),
        ("tier%21%3Da", vec!["other"]),
        ("tier+notin+%28a%29", vec!["other"]),
        ("tier", vec!["other", "wc"]),
        ("%21tier", vec![]),
        ("app%3D%3Dother%2Ctier%3Db", vec!["other"]),
        ("", vec!["other", "wc"]),
    ];
    for (sel, want) in cases {
        let p = format!(
            "{V1}/namespaces/storm/{TOPO}/%2A/storm_topology_pending_tuples?labelSelector={sel}&pretty=true&resourceVersion=0&limit=5&watch=false&timeout=32s"
        );
        let r = get(&p).send(a).await;
        assert_eq!(r.status, 200, "{sel}");
        let j = r.json();
        assert_eq!(names(&j), want, "{sel}");
        assert!(j["items"].is_array());
    }
    // An empty list is `items: []`.
    let r = get(&format!(
        "{V2}/namespaces/empty/{TOPO}/*/storm_topology_pending_tuples"
    ))
    .send(a)
    .await
    .json();
    assert_eq!(r["items"], json!([]));
    assert_eq!(r["metadata"], json!({}));
    // metricLabelSelector on a list.
    let r = get(&format!("{V2}/namespaces/storm/{TOPO}/*/storm_component_capacity?metricLabelSelector=component%3Dcount"))
        .send(a)
        .await
        .json();
    assert_eq!(names(&r), vec!["wc"]);
    assert_eq!(
        r["items"][0]["metric"]["selector"]["matchLabels"]["component"],
        "count"
    );
    // Bad selectors are 400 BadRequest.
    for q in [
        "labelSelector=app+in",
        "labelSelector=%3Dx",
        "metricLabelSelector=a%3E%3E1",
        "labelSelector=n%3Ex",
    ] {
        let r = get(&format!(
            "{V2}/namespaces/storm/{TOPO}/*/storm_topology_pending_tuples?{q}"
        ))
        .send(a)
        .await;
        assert_eq!(r.status, 400, "{q}");
        let j = r.json();
        assert_eq!(j["reason"], "BadRequest");
        assert!(
            j["message"]
                .as_str()
                .unwrap()
                .starts_with("unable to parse requirement: "),
            "{j}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn errors_are_status_objects_with_exact_codes() {
    let (srv, _) = open_server().await;
    let a = srv.addr;
    let status = |r: &Resp| {
        let j = r.json();
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(j["kind"], "Status");
        assert_eq!(j["apiVersion"], "v1");
        assert_eq!(j["status"], "Failure");
        assert_eq!(j["metadata"], json!({}));
        assert_eq!(j["code"], r.status.as_u16());
        j
    };
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (
            format!("{V2}/namespaces/storm/{TOPO}/wc/nope"),
            404,
            "NotFound",
            "the server could not find the metric nope for stormtopologies.storm.apache.org",
        ),
        (
            format!("{V2}/namespaces/storm/pods/*/storm_topology_pending_tuples"),
            404,
            "NotFound",
            "the server could not find the metric storm_topology_pending_tuples for pods",
        ),
        (
            format!("{V2}/namespaces/storm/{TOPO}/ghost/storm_topology_pending_tuples"),
            404,
            "NotFound",
            "the server could not find the metric storm_topology_pending_tuples for stormtopologies.storm.apache.org ghost",
        ),
        (
            format!("{V2}/namespaces/storm/{TOPO}/nan/storm_topology_pending_tuples"),
            404,
            "NotFound",
            "the server could not find the metric storm_topology_pending_tuples for stormtopologies.storm.apache.org nan",
        ),
        (
            format!(
                "{V2}/namespaces/storm/{TOPO}/wc/storm_component_capacity?metricLabelSelector=component%3Dx"
            ),
            404,
            "NotFound",
            "the server could not find the metric storm_component_capacity for stormtopologies.storm.apache.org wc with selector component=x",
        ),
        (
            format!("{V2}/namespaces/storm/metrics/storm_topology_pending_tuples"),
            404,
            "NotFound",
            "the server could not find the metric storm_topology_pending_tuples for namespaces",
        ),
        (
            format!("{V2}/namespaces/storm/pods"),
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
        (
            format!("{V2}/namespaces/storm/{TOPO}/wc"),
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
        (
            format!("{V2}/{TOPO}/wc/storm_topology_pending_tuples"),
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
        (
            format!("{V2}/blah"),
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
        (
            format!("{V2}/namespaces/storm/{TOPO}/wc/storm_topology_pending_tuples/extra"),
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
        (
            "/nope".to_owned(),
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    ];
    for (path, code, reason, message) in cases {
        let r = get(&path).send(a).await;
        assert_eq!(r.status.as_u16(), code, "{path}");
        let j = status(&r);
        assert_eq!(j["reason"], reason, "{path}");
        assert_eq!(j["message"], message, "{path}");
    }
    // Stale data for one object: 503 naming the sample time, without Retry-After.
    let r = get(&format!(
        "{V2}/namespaces/storm/{TOPO}/old/storm_topology_pending_tuples"
    ))
    .send(a)
    .await;
    assert_eq!(r.status, 503);
    assert!(r.headers.get("retry-after").is_none());
    let j = status(&r);
    assert_eq!(j["reason"], "ServiceUnavailable");
    assert!(j["message"].as_str().unwrap().contains("is stale"), "{j}");
    // Methods other than GET: 405.
    let r = get(&format!(
        "{V2}/namespaces/storm/{TOPO}/wc/storm_topology_pending_tuples"
    ))
    .method(Method::POST)
    .send(a)
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(status(&r)["reason"], "MethodNotAllowed");
    assert_eq!(get(V2).method(Method::DELETE).send(a).await.status, 405);
    srv.stop().await;
}

#[tokio::test]
async fn content_negotiation() {
    let (srv, _) = open_server().await;
    let a = srv.addr;
    let p = format!("{V2}/namespaces/storm/{TOPO}/wc/storm_topology_pending_tuples");
    for accept in [
        "application/vnd.kubernetes.protobuf, */*",
        "application/json, */*",
        "*/*",
        "application/*",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    ] {
        let r = get(&p).header("accept", accept).send(a).await;
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(r.headers["content-type"], "application/json");
    }
    for accept in [
        "application/vnd.kubernetes.protobuf",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        "text/html",
    ] {
        let r = get(&p).header("accept", accept).send(a).await;
        assert_eq!(r.status, 406, "{accept}");
        let j = r.json();
        assert_eq!(j["reason"], "NotAcceptable");
        assert!(j["message"].as_str().unwrap().contains("application/json"));
    }
    srv.stop().await;
}

#[tokio::test]
async fn health_endpoints_and_readiness() {
    let provider = fixture(ago(1));
    provider.set_ready(false);
    let trust = TrustStore::pending();
    let srv = start(
        ServerOptions::local(),
        provider.clone(),
        Arc::new(Deny),
        trust.clone(),
    )
    .await;
    let a = srv.addr;
    for p in ["/healthz", "/livez", "/livez/ping"] {
        let r = get(p).send(a).await;
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(r.text(), "ok");
        assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
    }
    let r = get("/readyz").send(a).await;
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .contains("[-]authentication-trust failed: reason withheld"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("[-]metrics-snapshot failed"));
    assert!(r.text().ends_with("readyz check failed\n"));
    assert_eq!(
        get("/readyz?exclude=metrics-snapshot&exclude=authentication-trust")
            .send(a)
            .await
            .status,
        200
    );
    trust.set(TrustConfig::default()).unwrap();
    provider.set_ready(true);
    assert_eq!(get("/readyz").send(a).await.text(), "ok");
    let v = get("/readyz?verbose").send(a).await.text();
    assert!(
        v.contains("[+]ping ok") && v.ends_with("readyz check passed\n"),
        "{v}"
    );
    assert_eq!(get("/readyz/shutdown").send(a).await.status, 200);
    srv.stop().await;
}

/// Denies everyone, counting calls.
struct Deny;

#[async_trait]
impl Authorizer for Deny {
    async fn authorize(&self, _u: &UserInfo, _a: &Attributes) -> Result<Decision, AuthzError> {
        Ok(Decision::Deny {
            reason: String::new(),
        })
    }
}

/// Blocks every decision until released, counting the requests that reached it.
struct Gate(tokio::sync::Semaphore, AtomicUsize);

impl Gate {
    fn closed() -> Arc<Gate> {
        Arc::new(Gate(tokio::sync::Semaphore::new(0), AtomicUsize::new(0)))
    }
}

#[async_trait]
impl Authorizer for Gate {
    async fn authorize(&self, _u: &UserInfo, _a: &Attributes) -> Result<Decision, AuthzError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        let _p = self
            .0
            .acquire()
            .await
            .map_err(|e| AuthzError::Request(e.to_string()))?;
        Ok(Decision::Allow)
    }
}

#[tokio::test]
async fn in_flight_limit_answers_429_and_deadline_answers_504() {
    let gate = Gate::closed();
    let opts = ServerOptions {
        max_requests_in_flight: 1,
        request_timeout: Duration::from_secs(8),
        ..ServerOptions::local()
    };
    let srv = start(
        opts,
        fixture(ago(1)),
        gate.clone(),
        TrustStore::new(TrustConfig::default()).unwrap(),
    )
    .await;
    let a = srv.addr;
    let blocked = tokio::spawn(async move { get("/version").send(a).await.status });
    // Wait (bounded) until the first request holds the only slot, inside the authorizer.
    for _ in 0..500 {
        if gate.1.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        gate.1.load(Ordering::SeqCst),
        1,
        "the first request is in flight"
    );
    let metric = format!("{V2}/namespaces/storm/{TOPO}/wc/storm_topology_pending_tuples");
    let r = get(&metric).send(a).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "1");
    let j = r.json();
    assert_eq!(j["reason"], "TooManyRequests");
    assert_eq!(j["message"], "Too many requests, please try again later.");
    assert_eq!(j["details"], json!({"retryAfterSeconds": 1}));
    // Health checks are not limited, nor are discovery documents (the aggregator's probe).
    assert_eq!(get("/livez").send(a).await.status, 200);
    let discovery = tokio::spawn(async move { get(V2).send(a).await.status });
    for _ in 0..500 {
        if gate.1.load(Ordering::SeqCst) > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        gate.1.load(Ordering::SeqCst),
        2,
        "discovery got past the limit to the authorizer"
    );
    gate.0.add_permits(1000);
    assert_eq!(blocked.await.unwrap(), 200);
    assert_eq!(discovery.await.unwrap(), 200);

    // ?timeout= caps the server deadline: an authorizer that never answers gives 504.
    let stuck = Gate::closed();
    let srv2 = start(
        ServerOptions::local(),
        fixture(ago(1)),
        stuck,
        TrustStore::new(TrustConfig::default()).unwrap(),
    )
    .await;
    let r = get(&format!("{V2}?timeout=200ms")).send(srv2.addr).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["reason"], "Timeout");
    srv.stop().await;
    srv2.stop().await;
}

#[tokio::test]
async fn http2_and_http1_are_both_served() {
    let (srv, _) = open_server().await;
    let r = get(V2).h2().send(srv.addr).await;
    assert_eq!((r.status, r.version), (StatusCode::OK, Version::HTTP_2));
    let r = get(&format!(
        "{V2}/namespaces/storm/{TOPO}/%2A/storm_topology_pending_tuples"
    ))
    .h2()
    .send(srv.addr)
    .await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 2);
    let r = get(V2).send(srv.addr).await;
    assert_eq!((r.status, r.version), (StatusCode::OK, Version::HTTP_11));
    srv.stop().await;
}

// ---------- SubjectAccessReview stub ----------

#[derive(Clone, Copy, PartialEq, Eq)]
enum SarMode {
    /// Allow users listed in `allowed`, deny others.
    Script,
    /// Answer 500.
    Error,
    /// Never answer.
    Hang,
}

#[derive(Clone)]
struct SarStub {
    calls: Arc<AtomicUsize>,
    mode: Arc<Mutex<SarMode>>,
    allowed: Arc<Vec<String>>,
    seen: Arc<Mutex<Vec<Value>>>,
}

async fn sar_handler(
    axum::extract::State(s): axum::extract::State<SarStub>,
    axum::Json(mut body): axum::Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    s.calls.fetch_add(1, Ordering::SeqCst);
    s.seen.lock().unwrap().push(body.clone());
    let mode = *s.mode.lock().unwrap();
    match mode {
        SarMode::Hang => {
            futures::future::pending::<()>().await;
            unreachable!()
        }
        SarMode::Error => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"etcd is on fire","reason":"InternalError","code":500})),
        )
            .into_response(),
        SarMode::Script => {
            let user = body["spec"]["user"].as_str().unwrap_or_default().to_owned();
            let allowed = s.allowed.contains(&user);
            body["status"] = json!({"allowed": allowed, "reason": if allowed { "" } else { "RBAC: no" }});
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
    }
}

async fn sar_stub(allowed: &[&str]) -> (SarStub, kube::Client) {
    let stub = SarStub {
        calls: Arc::new(AtomicUsize::new(0)),
        mode: Arc::new(Mutex::new(SarMode::Script)),
        allowed: Arc::new(allowed.iter().map(|s| s.to_string()).collect()),
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let app = axum::Router::new()
        .route(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            axum::routing::post(sar_handler),
        )
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cfg = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    (stub, kube::Client::try_from(cfg).unwrap())
}

fn sar_authorizer(
    client: kube::Client,
    timeout: Duration,
    deny_ttl: Duration,
) -> Arc<CachedAuthorizer> {
    let sar = Arc::new(SubjectAccessReviewAuthorizer::new(client, timeout));
    Arc::new(CachedAuthorizer::new(
        sar,
        Duration::from_secs(30),
        deny_ttl,
    ))
}

#[tokio::test]
async fn front_proxy_authentication() {
    let (stub, client) = sar_stub(&["alice"]).await;
    let proxy_ca = ca("front-proxy-ca");
    let other_ca = ca("some-other-ca");
    let trust = TrustStore::new(front_proxy_trust(&proxy_ca, &["front-proxy-client"])).unwrap();
    let authz = sar_authorizer(client, Duration::from_secs(5), Duration::from_secs(10));
    let srv = start(ServerOptions::local(), fixture(ago(1)), authz, trust).await;
    let a = srv.addr;
    let good = client_cert(&proxy_ca, "front-proxy-client");
    let wrong_cn = client_cert(&proxy_ca, "intruder");
    let foreign = client_cert(&other_ca, "front-proxy-client");
    let p = format!("{V2}/namespaces/storm/{TOPO}/wc/storm_topology_pending_tuples");

    // A verified front proxy: X-Remote-* honoured, every group header value kept, extra read.
    let r = get(&p)
        .cert(&good)
        .header("x-remote-user", "alice")
        .header("x-remote-group", "team-a")
        .header("x-remote-group", "team-b,team-c")
        .header("x-remote-extra-scopes", "s1")
        .send(a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let spec = stub.seen.lock().unwrap().last().unwrap()["spec"].clone();
    assert_eq!(spec["user"], "alice");
    assert_eq!(
        spec["groups"],
        json!(["team-a", "team-b,team-c", "system:authenticated"])
    );
    assert_eq!(spec["extra"], json!({"scopes": ["s1"]}));
    assert_eq!(
        spec["resourceAttributes"],
        json!({"namespace":"storm","verb":"get","group":"custom.metrics.k8s.io","version":"v1beta2",
               "resource":"stormtopologies.storm.apache.org","subresource":"storm_topology_pending_tuples","name":"wc"})
    );

    // A CN that is not allowed: 401.
    let r = get(&p)
        .cert(&wrong_cn)
        .header("x-remote-user", "alice")
        .send(a)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "Unauthorized");
    assert_eq!(r.json()["message"], "Unauthorized");

    // Another CA, or no certificate: the headers are ignored; anonymous is denied by the SAR.
    for cert in [Some(&foreign), None] {
        let mut req = get(&p)
            .header("x-remote-user", "alice")
            .header("x-remote-group", "system:masters");
        if let Some(c) = cert {
            req = req.cert(c);
        }
        let r = req.send(a).await;
        assert_eq!(r.status, 403);
        let j = r.json();
        assert_eq!(j["reason"], "Forbidden");
        assert_eq!(
            j["message"],
            r#"stormtopologies.storm.apache.org.custom.metrics.k8s.io "wc" is forbidden: User "system:anonymous" cannot get resource "stormtopologies.storm.apache.org/storm_topology_pending_tuples" in API group "custom.metrics.k8s.io" in the namespace "storm": RBAC: no"#
        );
        assert_eq!(
            j["details"],
            json!({"name":"wc","group":"custom.metrics.k8s.io","kind":"stormtopologies.storm.apache.org"})
        );
    }
    let anon = stub.seen.lock().unwrap().last().unwrap()["spec"].clone();
    assert_eq!(anon["user"], "system:anonymous");
    assert_eq!(anon["groups"], json!(["system:unauthenticated"]));

    // system:masters through the front proxy bypasses the SAR (the aggregator's probe).
    let before = stub.calls.load(Ordering::SeqCst);
    let r = get(V2)
        .cert(&good)
        .header("x-remote-user", "system:kube-aggregator")
        .header("x-remote-group", "system:masters")
        .send(a)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(stub.calls.load(Ordering::SeqCst), before);

    // Non-resource paths are authorized as such.
    let r = get("/apis").send(a).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        r#"forbidden: User "system:anonymous" cannot get path "/apis": RBAC: no"#
    );
    let nr = stub.seen.lock().unwrap().last().unwrap()["spec"]["nonResourceAttributes"].clone();
    assert_eq!(nr, json!({"path": "/apis", "verb": "get"}));

    // Health is always allowed, even anonymously.
    assert_eq!(get("/readyz").send(a).await.status, 200);
    srv.stop().await;
}

#[tokio::test]
async fn trust_can_be_swapped_at_runtime() {
    let (stub, client) = sar_stub(&["alice"]).await;
    let ca1 = ca("ca-1");
    let ca2 = ca("ca-2");
    let trust = TrustStore::new(front_proxy_trust(&ca1, &[])).unwrap();
    let srv = start(
        ServerOptions::local(),
        fixture(ago(1)),
        sar_authorizer(client, Duration::from_secs(5), Duration::ZERO),
        trust.clone(),
    )
    .await;
    let c1 = client_cert(&ca1, "any-cn");
    let c2 = client_cert(&ca2, "any-cn");
    let addr = srv.addr;
    async fn ask_as(addr: SocketAddr, c: &ClientCert) -> Resp {
        get(V2)
            .cert(c)
            .header("x-remote-user", "alice")
            .send(addr)
            .await
    }
    let ask = |c: &ClientCert| {
        let c = c.clone();
        async move { ask_as(addr, &c).await }
    };
    assert_eq!(ask(&c1).await.status, 200);
    assert_eq!(ask(&c2).await.status, 403);
    // Rotation: a bundle with both CAs (as the ConfigMap holds during rotation), then only the new one.
    let bundle = format!("{}{}", ca1.pem, ca2.pem);
    let data: BTreeMap<String, String> = [
        ("requestheader-client-ca-file".to_owned(), bundle),
        ("requestheader-allowed-names".to_owned(), "[]".to_owned()),
    ]
    .into();
    trust
        .set(storm_controller::metrics_api::trust_from_configmap_data(&data).unwrap())
        .unwrap();
    assert_eq!(ask(&c1).await.status, 200);
    assert_eq!(ask(&c2).await.status, 200);
    trust.set(front_proxy_trust(&ca2, &[])).unwrap();
    assert_eq!(ask(&c1).await.status, 403);
    assert_eq!(ask(&c2).await.status, 200);
    assert!(stub.calls.load(Ordering::SeqCst) >= 1);
    srv.stop().await;
}

#[tokio::test]
async fn subject_access_reviews_are_cached() {
    let (stub, client) = sar_stub(&["alice"]).await;
    let proxy_ca = ca("front-proxy-ca");
    let trust = TrustStore::new(front_proxy_trust(&proxy_ca, &[])).unwrap();
    let authz = sar_authorizer(client, Duration::from_secs(5), Duration::from_millis(200));
    let srv = start(
        ServerOptions::local(),
        fixture(ago(1)),
        authz.clone(),
        trust,
    )
    .await;
    let a = srv.addr;
    let cert = client_cert(&proxy_ca, "front-proxy-client");
    let p = format!("{V2}/namespaces/storm/{TOPO}/wc/storm_topology_pending_tuples");
    let as_alice = || {
        get(&p)
            .cert(&cert)
            .header("x-remote-user", "alice")
            .header("x-remote-group", "g")
    };

    assert_eq!(as_alice().send(a).await.status, 200);
    assert_eq!(as_alice().h2().send(a).await.status, 200);
    assert_eq!(
        stub.calls.load(Ordering::SeqCst),
        1,
        "two identical requests, one SAR"
    );
    // Different groups are a different key.
    assert_eq!(
        get(&p)
            .cert(&cert)
            .header("x-remote-user", "alice")
            .send(a)
            .await
            .status,
        200
    );
    assert_eq!(stub.calls.load(Ordering::SeqCst), 2);

    // Denials are cached too, but for a shorter time.
    assert_eq!(get(&p).send(a).await.status, 403);
    assert_eq!(get(&p).send(a).await.status, 403);
    assert_eq!(stub.calls.load(Ordering::SeqCst), 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(&p).send(a).await.status, 403);
    assert_eq!(stub.calls.load(Ordering::SeqCst), 4, "the denial expired");
    assert_eq!(as_alice().send(a).await.status, 200);
    assert_eq!(stub.calls.load(Ordering::SeqCst), 4, "the allow did not");
    let (hits, misses) = authz.stats();
    assert_eq!(misses, 4);
    assert!(hits >= 3);
    srv.stop().await;
}

#[tokio::test]
async fn subject_access_review_failures_are_500() {
    let (stub, client) = sar_stub(&["alice"]).await;
    let authz = sar_authorizer(client, Duration::from_millis(300), Duration::ZERO);
    let srv = start(
        ServerOptions::local(),
        fixture(ago(1)),
        authz,
        TrustStore::new(TrustConfig::default()).unwrap(),
    )
    .await;
    let a = srv.addr;
    *stub.mode.lock().unwrap() = SarMode::Error;
    let r = get(V2).send(a).await;
    assert_eq!(r.status, 500);
    let j = r.json();
    assert_eq!(j["reason"], "InternalError");
    let m = j["message"].as_str().unwrap();
    assert!(
        m.starts_with("Internal error occurred: subjectaccessreviews.authorization.k8s.io"),
        "{m}"
    );
    assert!(m.contains("etcd is on fire"), "{m}");
    assert!(j["details"]["causes"][0]["message"].is_string());

    // A hanging SAR is bounded by the authorization timeout: 500, not a hang.
    *stub.mode.lock().unwrap() = SarMode::Hang;
    let r = get("/version").send(a).await;
    assert_eq!(r.status, 500);
    assert!(r.json()["message"].as_str().unwrap().contains("timed out"));
    srv.stop().await;
}

fn write_cert(
    dir: &std::path::Path,
    cn: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    CertificateDer<'static>,
) {
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    // Write to temporary names and rename, as kubelet's atomic writer does.
    std::fs::write(dir.join("tls.crt.tmp"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key.tmp"), key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("tls.key.tmp"), &k).unwrap();
    std::fs::rename(dir.join("tls.crt.tmp"), &c).unwrap();
    (c, k, cert.der().clone())
}

#[tokio::test]
async fn serving_certificate_files_are_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, first) = write_cert(dir.path(), "first");
    let opts = ServerOptions {
        cert: CertSource::Files { cert, key },
        ..ServerOptions::local()
    };
    let (srv, _) = (
        start(
            opts,
            fixture(ago(1)),
            Arc::new(AlwaysAllow),
            TrustStore::new(TrustConfig::default()).unwrap(),
        )
        .await,
        (),
    );
    assert_eq!(server_cert(srv.addr).await, first);
    let (_, _, second) = write_cert(dir.path(), "second");
    let mut seen = None;
    for _ in 0..100 {
        let c = server_cert(srv.addr).await;
        if c == second {
            seen = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.is_some(), "the new certificate is served");
    // Broken files keep the last good certificate.
    std::fs::write(dir.path().join("tls.crt"), "garbage").unwrap();
    assert_eq!(server_cert(srv.addr).await, second);
    assert_eq!(get(V2).send(srv.addr).await.status, 200);
    srv.stop().await;
}

#[tokio::test]
async fn self_signed_certificate_names_the_service() {
    let provider = fixture(ago(1));
    let server = MetricsApiServer::bind(
        ServerOptions::local(),
        provider,
        Arc::new(AlwaysAllow),
        TrustStore::new(TrustConfig::default()).unwrap(),
    )
    .await
    .unwrap();
    let pem = server.self_signed_cert_pem().unwrap().to_owned();
    let addr = server.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    // Verify for real against the generated certificate, by the Service DNS name and by localhost.
    let mut roots = rustls::RootCertStore::empty();
    for c in storm_controller::metrics_api::auth::parse_pem_bundle(pem.as_bytes(), "t").unwrap() {
        roots.add(c).unwrap();
    }
    let cfg = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for name in ["storm-metrics-apiserver.storm-system.svc", "localhost"] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let r = TlsConnector::from(cfg.clone())
            .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
            .await;
        assert!(r.is_ok(), "{name}: {:?}", r.err());
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(
        TlsConnector::from(cfg)
            .connect(ServerName::try_from("other.example").unwrap(), tcp)
            .await
            .is_err()
    );
    let _ = tx.send(());
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn graceful_shutdown_fails_readyz_then_closes() {
    let opts = ServerOptions {
        shutdown_delay: Duration::from_millis(600),
        ..ServerOptions::local()
    };
    let mut srv = start(
        opts,
        fixture(ago(1)),
        Arc::new(AlwaysAllow),
        TrustStore::new(TrustConfig::default()).unwrap(),
    )
    .await;
    let a = srv.addr;
    assert_eq!(get("/readyz").send(a).await.status, 200);
    let _ = srv.stop.take().unwrap().send(());
    // During the delay: /readyz fails, requests are still served.
    let mut failing = None;
    for _ in 0..50 {
        let r = get("/readyz").send(a).await;
        if r.status != 200 {
            failing = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = failing.expect("readyz fails during shutdown");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("[-]shutdown failed: reason withheld"));
    assert_eq!(get(V2).send(a).await.status, 200);
    // Then the listener closes and the server task ends.
    tokio::time::timeout(WAIT, &mut srv.task)
        .await
        .expect("server stops")
        .unwrap();
    assert!(TcpStream::connect(a).await.is_err(), "listener closed");
}

/// `kubectl get --raw` against the server, when a kubectl binary is available (KUBECTL, which
/// `.ci/run` sets from `hack/tools.sh install kubectl`).
#[tokio::test]
async fn kubectl_get_raw() {
    let kubectl = std::env::var("KUBECTL")
        .ok()
        .filter(|p| std::path::Path::new(p).exists());
    let Some(kubectl) = kubectl else {
        eprintln!(
            "SKIPPED kubectl_get_raw: no kubectl (set KUBECTL, e.g. KUBECTL=$(hack/tools.sh install kubectl >/dev/null && hack/tools.sh path kubectl))"
        );
        return;
    };
    let (srv, _) = open_server().await;
    let home = tempfile::tempdir().unwrap();
    let server = format!("https://127.0.0.1:{}", srv.addr.port());
    let run = |path: String| {
        let (kubectl, server, home) = (kubectl.clone(), server.clone(), home.path().to_owned());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(kubectl)
                .env("HOME", home)
                .env("KUBECONFIG", "/dev/null")
                .args([
                    "--server",
                    &server,
                    "--insecure-skip-tls-verify",
                    "--token=x",
                    "--request-timeout=10s",
                    "get",
                    "--raw",
                    &path,
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        })
    };
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        run(format!(
            "{V2}/namespaces/storm/{TOPO}/*/storm_topology_pending_tuples"
        )),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        run(format!(
            "{V2}/namespaces/storm/{TOPO}/ghost/storm_topology_pending_tuples"
        )),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    srv.stop().await;
}

#[tokio::test]
async fn prometheus_metrics_count_requests() {
    let metrics = storm_controller::metrics_api::ApiMetrics::new();
    let mut registry = prometheus_client::registry::Registry::with_prefix("storm_controller");
    metrics.register(&mut registry);
    let authz = Arc::new(
        CachedAuthorizer::new(
            Arc::new(AlwaysAllow),
            Duration::from_secs(30),
            Duration::from_secs(10),
        )
        .with_metrics(&metrics),
    );
    let opts = ServerOptions {
        metrics: Some(metrics.clone()),
        ..ServerOptions::local()
    };
    let srv = start(
        opts,
        fixture(ago(1)),
        authz,
        TrustStore::new(TrustConfig::default()).unwrap(),
    )
    .await;
    let p = format!("{V2}/namespaces/storm/{TOPO}/wc/storm_topology_pending_tuples");
    assert_eq!(get(&p).send(srv.addr).await.status, 200);
    assert_eq!(get(&p).send(srv.addr).await.status, 200);
    assert_eq!(
        get(&format!(
            "{V2}/namespaces/storm/{TOPO}/ghost/storm_topology_pending_tuples"
        ))
        .send(srv.addr)
        .await
        .status,
        404
    );
    assert_eq!(get(V2).send(srv.addr).await.status, 200);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    for line in [
        r#"storm_controller_metrics_api_requests_total{code="200",kind="Metric"} 2"#,
        r#"storm_controller_metrics_api_requests_total{code="404",kind="Metric"} 1"#,
        r#"storm_controller_metrics_api_requests_total{code="200",kind="Discovery"} 1"#,
        "storm_controller_metrics_api_authorization_cache_misses_total 3",
        "storm_controller_metrics_api_authorization_cache_hits_total 1",
        "storm_controller_metrics_apiserver_metric_freshness_seconds_count 2",
    ] {
        assert!(out.contains(line), "missing {line} in\n{out}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn client_ca_certificates_name_the_user() {
    let (stub, client) = sar_stub(&["bob"]).await;
    let client_ca = ca("cluster-ca");
    let proxy_ca = ca("front-proxy-ca");
    let mut cfg = front_proxy_trust(&proxy_ca, &["front-proxy-client"]);
    cfg.client_ca =
        storm_controller::metrics_api::auth::parse_pem_bundle(client_ca.pem.as_bytes(), "t")
            .unwrap();
    let srv = start(
        ServerOptions::local(),
        fixture(ago(1)),
        sar_authorizer(client, Duration::from_secs(5), Duration::ZERO),
        TrustStore::new(cfg).unwrap(),
    )
    .await;
    // user = CN, groups = O; X-Remote-* headers are not read for such a certificate.
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "bob");
    p.distinguished_name
        .push(DnType::OrganizationName, "storm-admins");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &client_ca.issuer).unwrap();
    let bob = ClientCert {
        chain: vec![cert.der().clone()],
        key: Arc::new(PrivateKeyDer::try_from(key.serialize_der()).unwrap()),
    };
    let r = get(V2)
        .cert(&bob)
        .header("x-remote-user", "mallory")
        .send(srv.addr)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let spec = stub.seen.lock().unwrap().last().unwrap()["spec"].clone();
    assert_eq!(spec["user"], "bob");
    assert_eq!(
        spec["groups"],
        json!(["storm-admins", "system:authenticated"])
    );
    srv.stop().await;
}
