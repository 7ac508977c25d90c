//! The request path: health, in-flight limit, deadline, authentication, authorization, routing,
//! content negotiation and the metric reads. No I/O here except the (cached) authorizer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use rustls::pki_types::CertificateDer;
use tokio::sync::Semaphore;

use super::auth::{CertIdentity, TrustStore, UserInfo, authenticate, classify};
use super::authz::{Attributes, Authorizer, Decision};
use super::docs::Docs;
use super::provider::{MetricsProvider, Sample, ServedResource};
use super::quantity::format_quantity;
use super::selector::{LabelSelectorJson, Selector};
use super::status::ApiError;
use super::telemetry::PathKind;
use super::timefmt::{parse_go_duration, rfc3339_seconds};
use super::types::{
    ApiVersion, DescribedObject, EmptyMeta, GROUP, MetricIdentifier, MetricValueListV1beta1,
    MetricValueListV1beta2, MetricValueV1beta1, MetricValueV1beta2,
};
use crate::crd::worker_pool::StormMetricName;

/// The response body type.
pub(crate) type Body = Full<Bytes>;

/// Shared state of the request path.
pub(crate) struct State {
    pub(crate) provider: Arc<dyn MetricsProvider>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) trust: Arc<TrustStore>,
    pub(crate) docs: Docs,
    pub(crate) max_age: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) metrics: Option<super::telemetry::ApiMetrics>,
}

/// Per-connection facts: the client's certificate chain and its classification, cached per trust
/// generation.
pub(crate) struct ConnInfo {
    pub(crate) chain: Option<Vec<CertificateDer<'static>>>,
    identity: Mutex<Option<(u64, CertIdentity)>>,
}

impl ConnInfo {
    pub(crate) fn new(chain: Option<Vec<CertificateDer<'static>>>) -> ConnInfo {
        ConnInfo {
            chain,
            identity: Mutex::new(None),
        }
    }

    fn identity(&self, trust: &TrustStore) -> (Arc<super::auth::CompiledTrust>, CertIdentity) {
        let compiled = trust.current();
        let Some(chain) = &self.chain else {
            return (compiled, CertIdentity::None);
        };
        let generation = trust.generation();
        let mut cached = self.identity.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, id)) = &*cached
            && *g == generation
        {
            return (compiled, id.clone());
        }
        let id = classify(&compiled, chain);
        *cached = Some((generation, id.clone()));
        (compiled, id)
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(
        StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.to_body(),
    );
    if matches!(e, ApiError::TooManyRequests) {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn text_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Splits and percent-decodes the path; `None` for segments that are empty, `.`, `..` or hold `/`.
fn segments(path: &str) -> Option<Vec<String>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    trimmed
        .split('/')
        .map(|s| {
            let d = percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()?
                .into_owned();
            (!d.is_empty() && d != "." && d != ".." && !d.contains('/')).then_some(d)
        })
        .collect()
}

/// Query parameters we read; everything else is ignored.
#[derive(Default)]
struct Query {
    label_selector: Option<String>,
    metric_label_selector: Option<String>,
    timeout: Option<Duration>,
    verbose: bool,
    exclude: Vec<String>,
}

fn parse_query(q: Option<&str>) -> Query {
    let mut out = Query::default();
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "labelSelector" => out.label_selector = Some(v.into_owned()),
            "metricLabelSelector" => out.metric_label_selector = Some(v.into_owned()),
            "timeout" => out.timeout = parse_go_duration(&v).ok().filter(|d| !d.is_zero()),
            "verbose" => out.verbose = true,
            "exclude" => out.exclude.push(v.into_owned()),
            _ => {}
        }
    }
    out
}

/// Whether the `Accept` header allows plain JSON (contract §1.10): missing, `*/*`, `application/*`
/// or `application/json`, skipping ranges that ask for a conversion (`;as=...`) or have `q=0`.
pub(crate) fn accepts_json(headers: &HeaderMap) -> bool {
    let mut any = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(v) = value.to_str() else { continue };
        for range in v.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            if media.is_empty() {
                continue;
            }
            any = true;
            let mut skip = false;
            for p in parts {
                let (k, val) = p.split_once('=').unwrap_or((p, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "as" => skip = true,
                    "q" => skip |= val.trim().parse::<f32>().is_ok_and(|q| q <= 0.0),
                    _ => {}
                }
            }
            if skip {
                continue;
            }
            let media = media.to_ascii_lowercase();
            if media == "*/*" || media == "application/*" || media == "application/json" {
                return true;
            }
        }
    }
    !any
}

/// Kubernetes `RequestInfo` attributes for a decoded path (contract §3.3).
pub(crate) fn attributes(method: &Method, path: &str, segs: &[String]) -> Attributes {
    let verb = match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    };
    let non_resource = || Attributes::NonResource {
        verb: if *method == Method::HEAD {
            "get".to_owned()
        } else {
            method.as_str().to_ascii_lowercase()
        },
        path: path.to_owned(),
    };
    if segs.first().map(String::as_str) != Some("apis") || segs.len() < 4 {
        return non_resource();
    }
    let group = segs[1].clone();
    let version = segs[2].clone();
    let mut parts = &segs[3..];
    let mut namespace = String::new();
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = parts[1].clone();
        if parts.len() > 2 && parts[2] != "status" && parts[2] != "finalize" {
            parts = &parts[2..];
        }
    }
    let resource = parts.first().cloned().unwrap_or_default();
    let name = parts.get(1).cloned().unwrap_or_default();
    let subresource = parts.get(2).cloned().unwrap_or_default();
    let mut verb = verb.to_owned();
    if name.is_empty() && verb == "get" {
        verb = "list".into();
    }
    Attributes::Resource {
        verb,
        namespace,
        group,
        version,
        resource,
        subresource,
        name,
    }
}

fn forbidden(user: &UserInfo, attrs: &Attributes, reason: &str) -> ApiError {
    let suffix = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    match attrs {
        Attributes::NonResource { verb, path } => ApiError::Forbidden {
            message: format!(
                "forbidden: User {:?} cannot {verb} path {path:?}{suffix}",
                user.name
            ),
            details: None,
        },
        Attributes::Resource {
            verb,
            namespace,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let res = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_owned()
            } else {
                format!("in the namespace {namespace:?}")
            };
            let inner = format!(
                "User {:?} cannot {verb} resource {res:?} in API group {group:?} {scope}{suffix}",
                user.name
            );
            let qualified = if group.is_empty() {
                resource.clone()
            } else {
                format!("{resource}.{group}")
            };
            let message = if name.is_empty() {
                format!("{qualified} is forbidden: {inner}")
            } else {
                format!("{qualified} {name:?} is forbidden: {inner}")
            };
            ApiError::Forbidden {
                message,
                details: Some((name.clone(), group.clone(), resource.clone())),
            }
        }
    }
}

fn is_health(segs: &[String]) -> bool {
    matches!(
        segs.first().map(String::as_str),
        Some("healthz" | "livez" | "readyz")
    ) && segs.len() <= 2
}

fn health(state: &State, segs: &[String], query: &Query) -> Response<Body> {
    let endpoint = segs[0].as_str();
    let mut checks: Vec<(&str, Result<(), &str>)> = vec![("ping", Ok(()))];
    if endpoint == "readyz" {
        checks.push((
            "shutdown",
            if state.shutting_down.load(Ordering::SeqCst) {
                Err("shutting down")
            } else {
                Ok(())
            },
        ));
        checks.push((
            "authentication-trust",
            if state.trust.is_loaded() {
                Ok(())
            } else {
                Err("not loaded")
            },
        ));
        checks.push((
            "metrics-snapshot",
            if state.provider.is_ready() {
                Ok(())
            } else {
                Err("no snapshot yet")
            },
        ));
    }
    if let Some(single) = segs.get(1) {
        return match checks.iter().find(|(n, _)| n == single) {
            Some((_, Ok(()))) => text_response(StatusCode::OK, "ok".into()),
            Some((n, Err(_))) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {n} failed: reason withheld\n"),
            ),
            None => text_response(StatusCode::NOT_FOUND, "404 page not found\n".into()),
        };
    }
    checks.retain(|(n, _)| !query.exclude.iter().any(|e| e == n));
    let failed = checks.iter().any(|(_, r)| r.is_err());
    let mut lines = String::new();
    for (n, r) in &checks {
        match r {
            Ok(()) => lines.push_str(&format!("[+]{n} ok\n")),
            Err(_) => lines.push_str(&format!("[-]{n} failed: reason withheld\n")),
        }
    }
    if failed {
        text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{lines}{endpoint} check failed\n"),
        )
    } else if query.verbose {
        text_response(StatusCode::OK, format!("{lines}{endpoint} check passed\n"))
    } else {
        text_response(StatusCode::OK, "ok".into())
    }
}

fn path_kind(segs: &[String]) -> PathKind {
    match segs.first().map(String::as_str) {
        Some("apis") if segs.len() <= 3 => PathKind::Discovery,
        Some("apis") => PathKind::Metric,
        Some("openapi") => PathKind::Openapi,
        Some("healthz" | "livez" | "readyz") => PathKind::Health,
        _ => PathKind::Other,
    }
}

/// Handles one request. Never fails: every error is a response.
pub(crate) async fn handle<B>(
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    req: Request<B>,
) -> Response<Body> {
    let Some(metrics) = state.metrics.clone() else {
        return handle_inner(&state, &conn, req).await;
    };
    let started = Instant::now();
    let kind = segments(req.uri().path()).map_or(PathKind::Other, |s| path_kind(&s));
    let response = handle_inner(&state, &conn, req).await;
    metrics.observe_request(
        kind,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn handle_inner<B>(state: &State, conn: &Arc<ConnInfo>, req: Request<B>) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let Some(segs) = segments(&path) else {
        return error_response(&ApiError::route_not_found());
    };
    let query = parse_query(req.uri().query());
    if is_health(&segs) {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return error_response(&ApiError::MethodNotAllowed);
        }
        return health(state, &segs, &query);
    }
    // Discovery documents are exempt from the limit: a 429 to the aggregator's availability probe
    // would mark the whole APIService unavailable, and they are answered from memory.
    let discovery = segs.first().map(String::as_str) == Some("apis") && segs.len() <= 3;
    let _permit = if discovery {
        None
    } else {
        match state.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                tracing::debug!(path, "too many requests in flight");
                return error_response(&ApiError::TooManyRequests);
            }
        }
    };
    let deadline = query
        .timeout
        .map_or(state.request_timeout, |t| t.min(state.request_timeout));
    let method = req.method().clone();
    let result = tokio::time::timeout(
        deadline,
        serve(state, conn, &method, req.headers(), &path, &segs, &query),
    )
    .await;
    let response = match result {
        Ok(Ok((status, body))) => {
            let mut r = json_response(status, body);
            if segs.len() <= 3 && segs.first().map(String::as_str) == Some("apis") {
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache, private"),
                );
            }
            r
        }
        Ok(Err(Reply::NotModified(etag))) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            if let Ok(v) = HeaderValue::from_str(&etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        Ok(Err(Reply::Etag(body, etag))) => {
            let mut r = json_response(StatusCode::OK, body);
            if let Ok(v) = HeaderValue::from_str(&etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        Ok(Err(Reply::Error(e))) => error_response(&e),
        Err(_) => error_response(&ApiError::Timeout),
    };
    tracing::debug!(method = %method, path, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

enum Reply {
    Error(ApiError),
    NotModified(String),
    Etag(Bytes, String),
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply::Error(e)
    }
}

async fn serve(
    state: &State,
    conn: &ConnInfo,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    segs: &[String],
    query: &Query,
) -> Result<(StatusCode, Bytes), Reply> {
    // Authentication.
    let (trust, identity) = conn.identity(&state.trust);
    let user = authenticate(&trust, &identity, headers).map_err(|why| {
        tracing::info!(reason = %why, "authentication failed");
        ApiError::Unauthorized
    })?;
    // Authorization.
    let attrs = attributes(method, path, segs);
    if !user.is_master() {
        match state.authorizer.authorize(&user, &attrs).await {
            Ok(Decision::Allow) => {}
            Ok(Decision::Deny { reason }) => {
                tracing::debug!(user = %user.name, path, "forbidden");
                return Err(forbidden(&user, &attrs, &reason).into());
            }
            Err(e) => {
                tracing::warn!(error = %e, "authorization failed");
                return Err(ApiError::Internal(e.to_string()).into());
            }
        }
    }
    // Routing.
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    enum Route<'a> {
        Doc(&'a Bytes),
        OpenApiV2,
        Metric(ApiVersion, &'a [&'a str]),
    }
    let docs = &state.docs;
    let route = match s.as_slice() {
        [] => Route::Doc(&docs.index),
        ["apis"] => Route::Doc(&docs.api_group_list),
        ["apis", g] if *g == GROUP => Route::Doc(&docs.api_group),
        ["apis", g, v, rest @ ..] if *g == GROUP => match (ApiVersion::parse(v), rest.is_empty()) {
            (Some(ApiVersion::V1beta2), true) => Route::Doc(&docs.resource_list_v1beta2),
            (Some(ApiVersion::V1beta1), true) => Route::Doc(&docs.resource_list_v1beta1),
            (Some(version), false) => Route::Metric(version, rest),
            (None, _) => return Err(ApiError::route_not_found().into()),
        },
        ["version"] => Route::Doc(&docs.version),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::Doc(&docs.openapi_v3_index),
        ["openapi", "v3", "apis", g, "v1beta2"] if *g == GROUP => {
            Route::Doc(&docs.openapi_v3_v1beta2)
        }
        ["openapi", "v3", "apis", g, "v1beta1"] if *g == GROUP => {
            Route::Doc(&docs.openapi_v3_v1beta1)
        }
        _ => return Err(ApiError::route_not_found().into()),
    };
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed.into());
    }
    if !accepts_json(headers) {
        return Err(ApiError::NotAcceptable.into());
    }
    match route {
        Route::Doc(b) => Ok((StatusCode::OK, b.clone())),
        Route::OpenApiV2 => {
            let etag = &docs.openapi_v2_etag;
            let matches = headers
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim() == etag || t.trim() == "*");
            if matches {
                Err(Reply::NotModified(etag.clone()))
            } else {
                Err(Reply::Etag(docs.openapi_v2.clone(), etag.clone()))
            }
        }
        Route::Metric(version, rest) => read_metric(state, version, rest, query)
            .map(|b| (StatusCode::OK, b))
            .map_err(Reply::Error),
    }
}

fn metric_not_found(metric: &str, group_resource: &str) -> ApiError {
    ApiError::not_found(format!(
        "the server could not find the metric {metric} for {group_resource}"
    ))
}

/// A metric route after `/apis/custom.metrics.k8s.io/<v>/`.
fn read_metric(
    state: &State,
    version: ApiVersion,
    rest: &[&str],
    query: &Query,
) -> Result<Bytes, ApiError> {
    let (namespace, resource, name, metric) = match rest {
        ["namespaces", _ns, "metrics", metric] => {
            return Err(metric_not_found(metric, "namespaces"));
        }
        ["namespaces", ns, resource, name, metric] => (*ns, *resource, *name, *metric),
        [resource, _name, metric] => {
            return Err(
                if *resource == "namespaces"
                    || ServedResource::from_group_resource(resource).is_some()
                {
                    ApiError::route_not_found()
                } else {
                    metric_not_found(metric, resource)
                },
            );
        }
        _ => return Err(ApiError::route_not_found()),
    };
    let Some(served) = ServedResource::from_group_resource(resource) else {
        return Err(metric_not_found(metric, resource));
    };
    let Some(metric_name) = served
        .metrics()
        .iter()
        .copied()
        .find(|m| m.as_str() == metric)
    else {
        return Err(metric_not_found(metric, resource));
    };
    let metric_selector = match query
        .metric_label_selector
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(Selector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?),
        None => None,
    };
    let selector_json = metric_selector.as_ref().map(Selector::to_label_selector);
    let now = SystemTime::now();
    let fresh = |s: &Sample| {
        now.duration_since(s.timestamp)
            .map_or(true, |age| age <= state.max_age)
    };
    let selected = |s: &Sample| {
        s.value.is_finite()
            && metric_selector
                .as_ref()
                .is_none_or(|sel| sel.matches(&s.labels))
    };

    let mut rows: Vec<(String, Sample)> = Vec::new();
    if name == "*" {
        let object_selector = match query
            .label_selector
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) => Some(Selector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?),
            None => None,
        };
        let mut objects = state.provider.list_objects(served, namespace);
        objects.retain(|o| {
            object_selector
                .as_ref()
                .is_none_or(|sel| sel.matches(&o.labels))
        });
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        for o in objects {
            for s in state
                .provider
                .samples(served, namespace, &o.name, metric_name)
            {
                if selected(&s) && fresh(&s) {
                    rows.push((o.name.clone(), s));
                }
            }
        }
    } else {
        let all = state.provider.samples(served, namespace, name, metric_name);
        if all.iter().all(|s| !s.value.is_finite()) {
            return Err(ApiError::not_found(format!(
                "the server could not find the metric {metric} for {resource} {name}"
            )));
        }
        let matching: Vec<Sample> = all.into_iter().filter(|s| selected(s)).collect();
        if matching.is_empty() {
            let sel = metric_selector
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(ApiError::not_found(format!(
                "the server could not find the metric {metric} for {resource} {name} with selector {sel}"
            )));
        }
        let newest = matching.iter().map(|s| s.timestamp).max().unwrap_or(now);
        let current: Vec<Sample> = matching.into_iter().filter(|s| fresh(s)).collect();
        if current.is_empty() {
            let age = now.duration_since(newest).unwrap_or_default().as_secs();
            return Err(ApiError::ServiceUnavailable(format!(
                "the metric {metric} for {resource} {name} is stale: the newest sample is from {} ({age}s ago), older than the maximum age of {}s",
                rfc3339_seconds(newest),
                state.max_age.as_secs()
            )));
        }
        if current.len() > 1 {
            let series: Vec<String> = current.iter().map(|s| describe_labels(&s.labels)).collect();
            return Err(ApiError::BadRequest(format!(
                "the metric {metric} for {resource} {name} has {} series ({}); select one with metricLabelSelector",
                current.len(),
                series.join("; ")
            )));
        }
        rows.extend(current.into_iter().map(|s| (name.to_owned(), s)));
    }
    if let Some(m) = &state.metrics {
        for (_, s) in &rows {
            m.observe_freshness(
                now.duration_since(s.timestamp)
                    .unwrap_or_default()
                    .as_secs_f64(),
            );
        }
    }
    Ok(render(
        version,
        served,
        namespace,
        metric_name,
        selector_json.as_ref(),
        &rows,
    ))
}

fn describe_labels(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn render(
    version: ApiVersion,
    served: ServedResource,
    namespace: &str,
    metric: StormMetricName,
    selector: Option<&LabelSelectorJson>,
    rows: &[(String, Sample)],
) -> Bytes {
    fn described<'a>(
        served: ServedResource,
        namespace: &'a str,
        name: &'a str,
    ) -> DescribedObject<'a> {
        DescribedObject {
            kind: served.kind(),
            namespace,
            name,
            api_version: served.api_version(),
        }
    }
    let value = |s: &Sample| format_quantity(s.value).unwrap_or_else(|| "0".into());
    let out = match version {
        ApiVersion::V1beta2 => serde_json::to_vec(&MetricValueListV1beta2 {
            kind: "MetricValueList",
            api_version: version.group_version(),
            metadata: EmptyMeta {},
            items: rows
                .iter()
                .map(|(name, s)| MetricValueV1beta2 {
                    described_object: described(served, namespace, name),
                    metric: MetricIdentifier {
                        name: metric.as_str(),
                        selector,
                    },
                    timestamp: rfc3339_seconds(s.timestamp),
                    window_seconds: s.window_seconds,
                    value: value(s),
                })
                .collect(),
        }),
        ApiVersion::V1beta1 => serde_json::to_vec(&MetricValueListV1beta1 {
            kind: "MetricValueList",
            api_version: version.group_version(),
            metadata: EmptyMeta {},
            items: rows
                .iter()
                .map(|(name, s)| MetricValueV1beta1 {
                    described_object: described(served, namespace, name),
                    metric_name: metric.as_str(),
                    timestamp: rfc3339_seconds(s.timestamp),
                    window: s.window_seconds,
                    value: value(s),
                    selector,
                })
                .collect(),
        }),
    };
    Bytes::from(out.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        segments(p).unwrap()
    }

    #[test]
    fn path_decoding() {
        assert_eq!(segs("/apis/x/%2A/m"), vec!["apis", "x", "*", "m"]);
        assert_eq!(segs("/"), Vec::<String>::new());
        assert!(segments("/apis//x").is_none());
        assert!(segments("/apis/%2F/x").is_none());
        assert!(segments("/apis/../x").is_none());
    }

    #[test]
    fn request_info_attributes() {
        let a = |p: &str| attributes(&Method::GET, p, &segs(p));
        let res = |ns: &str, r: &str, sub: &str, name: &str, verb: &str| Attributes::Resource {
            verb: verb.into(),
            namespace: ns.into(),
            group: "custom.metrics.k8s.io".into(),
            version: "v1beta2".into(),
            resource: r.into(),
            subresource: sub.into(),
            name: name.into(),
        };
        let p = "/apis/custom.metrics.k8s.io/v1beta2";
        assert_eq!(
            a(p),
            Attributes::NonResource {
                verb: "get".into(),
                path: p.into()
            }
        );
        assert_eq!(
            a("/version"),
            Attributes::NonResource {
                verb: "get".into(),
                path: "/version".into()
            }
        );
        assert_eq!(
            a(&format!("{p}/namespaces/storm/pods/%2A/m")),
            res("storm", "pods", "m", "*", "get")
        );
        assert_eq!(
            a(&format!("{p}/namespaces/storm/pods/worker-0/m")),
            res("storm", "pods", "m", "worker-0", "get")
        );
        assert_eq!(
            a(&format!(
                "{p}/namespaces/storm/stormtopologies.storm.apache.org/wc/m"
            )),
            res(
                "storm",
                "stormtopologies.storm.apache.org",
                "m",
                "wc",
                "get"
            )
        );
        assert_eq!(
            a(&format!("{p}/nodes/node-a/m")),
            res("", "nodes", "m", "node-a", "get")
        );
        assert_eq!(
            a(&format!("{p}/namespaces/storm/metrics/m")),
            res("storm", "metrics", "", "m", "get")
        );
        assert_eq!(a(&format!("{p}/blah")), res("", "blah", "", "", "list"));
        let post = attributes(&Method::POST, "/apis", &segs("/apis"));
        assert_eq!(
            post,
            Attributes::NonResource {
                verb: "post".into(),
                path: "/apis".into()
            }
        );
    }

    #[test]
    fn content_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(accepts_json(&HeaderMap::new()));
        assert!(accepts_json(&h("*/*")));
        assert!(accepts_json(&h("application/json")));
        assert!(accepts_json(&h("application/*")));
        assert!(accepts_json(&h("application/vnd.kubernetes.protobuf, */*")));
        assert!(accepts_json(&h(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        )));
        assert!(accepts_json(&h("application/json, */*")));
        assert!(!accepts_json(&h("application/vnd.kubernetes.protobuf")));
        assert!(!accepts_json(&h(
            "application/json;as=Table;v=v1;g=meta.k8s.io"
        )));
        assert!(!accepts_json(&h(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        )));
        assert!(!accepts_json(&h("application/json;q=0")));
        assert!(!accepts_json(&h("text/html")));
    }

    #[test]
    fn forbidden_messages() {
        let u = UserInfo::anonymous();
        let attrs = Attributes::Resource {
            verb: "get".into(),
            namespace: "storm".into(),
            group: "custom.metrics.k8s.io".into(),
            version: "v1beta2".into(),
            resource: "pods".into(),
            subresource: "m".into(),
            name: "*".into(),
        };
        assert_eq!(
            forbidden(&u, &attrs, "").to_string(),
            r#"pods.custom.metrics.k8s.io "*" is forbidden: User "system:anonymous" cannot get resource "pods/m" in API group "custom.metrics.k8s.io" in the namespace "storm""#
        );
        let nr = Attributes::NonResource {
            verb: "get".into(),
            path: "/apis".into(),
        };
        assert_eq!(
            forbidden(&u, &nr, "no").to_string(),
            r#"forbidden: User "system:anonymous" cannot get path "/apis": no"#
        );
    }

    #[test]
    fn query_plus_is_space() {
        let q = parse_query(Some(
            "labelSelector=app+in+%28a%2Cb%29&timeout=32s&pretty=true&metricLabelSelector=component%3Dsplit",
        ));
        assert_eq!(q.label_selector.as_deref(), Some("app in (a,b)"));
        assert_eq!(q.metric_label_selector.as_deref(), Some("component=split"));
        assert_eq!(q.timeout, Some(Duration::from_secs(32)));
    }
}
