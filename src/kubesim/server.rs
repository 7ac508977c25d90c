//! HTTP routing: discovery, then one generic handler per verb for every registered kind.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::error::ApiError;
use super::kinds::{ResourceKind, Review};
use super::patch::{self, PatchKind};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{DeleteOpts, Deleted, Part, Propagation, WriteCtx, applied_fields_of};
use super::watch::{self, WatchRequest};
use super::{RecordedRequest, ReviewFault, Shared, lock};

/// Largest request body accepted.
const MAX_BODY: usize = 32 << 20;

type Query = HashMap<String, String>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// Objects every cluster has: the usual namespaces and the Storm CRDs (Established).
pub(crate) fn seed(shared: &Shared) {
    let mut store = shared.lock_store();
    let ctx = WriteCtx::default();
    if let Some(ns) = store.kind("", "v1", "namespaces") {
        for name in ["default", "kube-system", "kube-public"] {
            let obj = json!({"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            let _ = store.create(&ns, "", obj, true, ctx);
        }
    }
    if !shared.options.install_storm_crds {
        return;
    }
    if let Some(crd_kind) = store.kind("apiextensions.k8s.io", "v1", "customresourcedefinitions") {
        for crd in crate::crd::crds() {
            if let Ok(mut v) = serde_json::to_value(&crd) {
                v["status"] = established(&crd);
                let _ = store.create(&crd_kind, "", v, true, ctx);
            }
        }
    }
}

fn established(crd: &CustomResourceDefinition) -> Value {
    let now = super::store::now();
    json!({
        "acceptedNames": crd.spec.names,
        "storedVersions": crd.spec.versions.iter().filter(|v| v.storage).map(|v| v.name.clone()).collect::<Vec<_>>(),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    })
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(413, "RequestEntityTooLarge", e.to_string()).into_response();
        }
    };
    let path = parts.uri.path().to_string();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut record = RecordedRequest {
        method: parts.method.clone(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or("").to_string(),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        status: 0,
    };
    let resp = match shared.take_fault(&parts.method, &path) {
        Some(err) => err.into_response(),
        None => match axum::extract::Query::<Query>::try_from_uri(&parts.uri) {
            Err(e) => ApiError::bad_request(format!("invalid query: {e}")).into_response(),
            Ok(q) => {
                let req = Req {
                    method: parts.method,
                    query: q.0,
                    content_type,
                    body: bytes,
                };
                route(&shared, &path, &req)
                    .await
                    .unwrap_or_else(IntoResponse::into_response)
            }
        },
    };
    // Logged once answered (a watch: once its stream starts), so a test that sees a request in
    // the log also sees its effect on the store.
    record.status = resp.status().as_u16();
    shared.record(record);
    resp
}

struct Req {
    method: Method,
    query: Query,
    content_type: Option<String>,
    body: Bytes,
}

impl Req {
    fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.q("dryRun").is_some_and(|v| v == "All")
    }
}

async fn route(shared: &Arc<Shared>, path: &str, req: &Req) -> Result<Response, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Ok(ok(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-kubesim", "gitCommit": "kubesim",
            "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "none",
            "compiler": "kubesim", "platform": "linux/amd64",
        }))),
        ["healthz" | "livez" | "readyz"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => Ok(ok(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}],
        }))),
        ["apis"] => Ok(ok(
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups(shared)}),
        )),
        ["apis", g] => groups(shared)
            .into_iter()
            .find(|x| x["name"] == *g)
            .map(|mut x| {
                x["kind"] = json!("APIGroup");
                x["apiVersion"] = json!("v1");
                ok(x)
            })
            .ok_or_else(not_found_path),
        ["api", v] => resource_list(shared, "", v),
        ["apis", g, v] => resource_list(shared, g, v),
        ["api", v, rest @ ..] => resource(shared, "", v, rest, req).await,
        ["apis", g, v, rest @ ..] => resource(shared, g, v, rest, req).await,
        _ => Err(not_found_path()),
    }
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

/// `/apis` groups with their versions (core excluded).
fn groups(shared: &Shared) -> Vec<Value> {
    let store = shared.lock_store();
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in store.kinds().filter(|k| !k.group.is_empty()) {
        let versions = by_group.entry(k.group.clone()).or_default();
        if !versions.contains(&k.version) {
            versions.push(k.version.clone());
        }
    }
    by_group
        .into_iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0].clone()})
        })
        .collect()
}

fn resource_list(shared: &Shared, group: &str, version: &str) -> Result<Response, ApiError> {
    let store = shared.lock_store();
    let kinds: Vec<_> = store
        .kinds()
        .filter(|k| k.group == group && k.version == version)
        .cloned()
        .collect();
    if kinds.is_empty() {
        return Err(not_found_path());
    }
    let mut resources = Vec::new();
    for k in &kinds {
        let mut r = json!({
            "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": k.verbs,
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        if !k.categories.is_empty() {
            r["categories"] = json!(k.categories);
        }
        resources.push(r);
        if k.status {
            resources.push(json!({
                "name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced,
                "kind": k.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if k.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", k.plural), "singularName": "", "namespaced": k.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    ))
}

/// A parsed resource path.
struct Target<'a> {
    kind: Arc<ResourceKind>,
    ns: String,
    all_namespaces: bool,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

fn parse_target<'a>(
    shared: &Shared,
    group: &str,
    version: &str,
    rest: &[&'a str],
) -> Result<Target<'a>, ApiError> {
    let store = shared.lock_store();
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if store.kind(group, version, plural).is_some() => {
            (Some(*ns), [&[*plural][..], tail].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(not_found_path()),
    };
    let kind = store
        .kind(group, version, plural)
        .ok_or_else(not_found_path)?;
    if !kind.namespaced && ns.is_some() {
        return Err(not_found_path());
    }
    if kind.namespaced && ns.is_none() && name.is_some() {
        return Err(not_found_path());
    }
    Ok(Target {
        all_namespaces: kind.namespaced && ns.is_none(),
        ns: ns.unwrap_or("").to_string(),
        kind,
        name,
        sub,
    })
}

async fn resource(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    req: &Req,
) -> Result<Response, ApiError> {
    let t = parse_target(shared, group, version, rest)?;
    let kind = t.kind.clone();
    let verb = match (&req.method, t.name, t.sub) {
        (&Method::GET, None, _) if req.flag("watch") => "watch",
        (&Method::GET, None, _) => "list",
        (&Method::POST, None, _) => "create",
        (&Method::DELETE, None, _) => "deletecollection",
        (&Method::GET, Some(_), _) => "get",
        (&Method::PUT, Some(_), _) => "update",
        (&Method::PATCH, Some(_), _) => "patch",
        (&Method::DELETE, Some(_), None) => "delete",
        _ => {
            return Err(ApiError::method_not_allowed(
                req.method.as_str(),
                &kind.plural,
            ));
        }
    };
    match t.sub {
        None => {}
        Some("status") if kind.status && matches!(verb, "get" | "update" | "patch") => {}
        Some("scale") if kind.scale.is_some() && matches!(verb, "get" | "update" | "patch") => {}
        Some(_) => return Err(not_found_path()),
    }
    if !kind.supports(verb) {
        return Err(ApiError::method_not_allowed(verb, &kind.plural));
    }
    if t.all_namespaces && !matches!(verb, "list" | "watch") {
        return Err(not_found_path());
    }
    let name = t.name.unwrap_or("");
    match (verb, t.sub) {
        ("watch", _) => watch::start(
            shared.clone(),
            WatchRequest {
                labels: labels(req)?,
                fields: fields(req, &kind)?,
                namespace: (!t.all_namespaces && kind.namespaced).then(|| t.ns.clone()),
                resource_version: req.q("resourceVersion").map(str::to_string),
                bookmarks: req.flag("allowWatchBookmarks"),
                send_initial_events: req.flag("sendInitialEvents"),
                timeout: req
                    .q("timeoutSeconds")
                    .and_then(|s| s.parse::<u64>().ok())
                    // 0 means "the server's default", which here is no timeout.
                    .filter(|&t| t > 0)
                    .map(std::time::Duration::from_secs),
                kind,
            },
        ),
        ("list", _) => list(shared, &t, req),
        ("create", _) => match kind.review {
            Some(review) => answer_review(shared, review, req).await,
            None => create(shared, &t, req),
        },
        ("deletecollection", _) => delete_collection(shared, &t, req),
        ("get", Some("scale")) => {
            let store = shared.lock_store();
            let obj = store
                .get(&kind, &t.ns, name)
                .ok_or_else(|| ApiError::not_found(&kind.plural, name))?;
            Ok(ok(scale_of(&kind, obj)))
        }
        ("get", _) => {
            let store = shared.lock_store();
            let obj = store
                .get(&kind, &t.ns, name)
                .ok_or_else(|| ApiError::not_found(&kind.plural, name))?;
            Ok(ok(obj.clone()))
        }
        ("update", Some("scale")) | ("patch", Some("scale")) => write_scale(shared, &t, req),
        ("update", sub) => {
            let body = object_body(req)?;
            let rv = body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str);
            if kind.custom && rv.is_none_or(str::is_empty) {
                return Err(ApiError::invalid(format!(
                    "{} \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                    kind.kind
                )));
            }
            let part = if sub == Some("status") {
                Part::Status
            } else {
                Part::Main
            };
            let out = {
                let mut store = shared.lock_store();
                store.update(&kind, &t.ns, name, body, part, ctx(req, false))?
            };
            after_write(shared, req, &kind, &out);
            Ok(ok(out))
        }
        ("patch", sub) => patch_object(shared, &t, req, sub == Some("status")),
        ("delete", _) => delete(shared, &t, req),
        _ => Err(ApiError::method_not_allowed(verb, &kind.plural)),
    }
}

/// The object in a POST or PUT body: JSON or YAML. Protobuf and CBOR (kubectl's typed commands
/// send protobuf for built-in kinds) get 415, as from a server that does not speak them.
fn object_body(req: &Req) -> Result<Value, ApiError> {
    let ct = req.content_type.as_deref().unwrap_or("application/json");
    match ct.split(';').next().unwrap_or("").trim() {
        "" | "application/json" | "*/*" => patch::parse_body(None, &req.body),
        "application/yaml" => patch::parse_body(Some(PatchKind::Apply), &req.body),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: application/json, application/yaml"
            ),
        )),
    }
}

fn ctx(req: &Req, apply: bool) -> WriteCtx<'_> {
    WriteCtx {
        manager: req.q("fieldManager"),
        apply,
        dry_run: req.dry_run(),
        fields: None,
    }
}

fn labels(req: &Req) -> Result<LabelSelector, ApiError> {
    LabelSelector::parse(req.q("labelSelector").unwrap_or("")).map_err(ApiError::bad_request)
}

fn fields(req: &Req, kind: &ResourceKind) -> Result<FieldSelector, ApiError> {
    FieldSelector::parse(
        req.q("fieldSelector").unwrap_or(""),
        &kind.selectable_fields,
    )
    .map_err(ApiError::bad_request)
}

/// Registers the kinds of a CRD written through the API.
fn after_write(shared: &Shared, req: &Req, kind: &ResourceKind, obj: &Value) {
    if !req.dry_run()
        && kind.group == "apiextensions.k8s.io"
        && kind.plural == "customresourcedefinitions"
        && let Ok(crd) = serde_json::from_value::<CustomResourceDefinition>(obj.clone())
    {
        let mut store = shared.lock_store();
        for k in ResourceKind::from_crd(&crd) {
            store.register(k);
        }
    }
}

fn list(shared: &Shared, t: &Target<'_>, req: &Req) -> Result<Response, ApiError> {
    let labels = labels(req)?;
    let fields = fields(req, &t.kind)?;
    let limit = match req.q("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let cont = req.q("continue").filter(|c| !c.is_empty());
    let after = match cont {
        Some(c) => Some(
            c.split_once('/')
                .ok_or_else(|| ApiError::bad_request("invalid continue token"))?,
        ),
        None => None,
    };
    let ns = (!t.all_namespaces && t.kind.namespaced).then_some(t.ns.as_str());
    let store = shared.lock_store();
    let mut items = Vec::new();
    let mut next = None;
    for obj in store.list(&t.kind, ns, after) {
        if !(labels.matches(obj) && fields.matches(obj)) {
            continue;
        }
        if limit > 0 && items.len() == limit {
            next = Some(());
            break;
        }
        items.push(obj.clone());
    }
    let mut metadata = json!({"resourceVersion": store.rv().to_string()});
    if next.is_some()
        && let Some(last) = items.last()
    {
        let m = &last["metadata"];
        let token = format!(
            "{}/{}",
            m["namespace"].as_str().unwrap_or(""),
            m["name"].as_str().unwrap_or("")
        );
        metadata["continue"] = json!(token);
    }
    Ok(ok(json!({
        "kind": format!("{}List", t.kind.kind), "apiVersion": t.kind.api_version(),
        "metadata": metadata, "items": items,
    })))
}

fn create(shared: &Shared, t: &Target<'_>, req: &Req) -> Result<Response, ApiError> {
    let mut body = object_body(req)?;
    // The status the apiserver gives new namespaces (Active) and CRDs (Established at once).
    let server_status = if !body.is_object() {
        None
    } else if t.kind.group.is_empty() && t.kind.plural == "namespaces" {
        Some(json!({"phase": "Active"}))
    } else if t.kind.group == "apiextensions.k8s.io" && t.kind.plural == "customresourcedefinitions"
    {
        serde_json::from_value::<CustomResourceDefinition>(body.clone())
            .ok()
            .map(|crd| established(&crd))
    } else {
        None
    };
    let keep_status = server_status.is_some();
    if let (Some(status), Some(m)) = (server_status, body.as_object_mut()) {
        m.insert("status".into(), status);
    }
    let out = shared
        .lock_store()
        .create(&t.kind, &t.ns, body, keep_status, ctx(req, false))?;
    after_write(shared, req, &t.kind, &out);
    Ok(created(out))
}

fn patch_object(
    shared: &Shared,
    t: &Target<'_>,
    req: &Req,
    status: bool,
) -> Result<Response, ApiError> {
    let name = t.name.unwrap_or("");
    let ct = req.content_type.as_deref().unwrap_or("");
    // Custom resources have no strategic-merge schema: the apiserver refuses that patch type.
    let pk = PatchKind::from_content_type(ct)
        .filter(|pk| !(t.kind.custom && *pk == PatchKind::Strategic))
        .ok_or_else(|| {
            let strategic = if t.kind.custom { "" } else { ", application/strategic-merge-patch+json" };
            ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{strategic} (got {ct:?})"),
            )
        })?;
    let body = patch::parse_body(Some(pk), &req.body)?;
    let apply = pk == PatchKind::Apply;
    if apply && req.q("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let part = if status { Part::Status } else { Part::Main };
    let sub = status.then_some("status");
    let fields = apply.then(|| patch::applied_fields(&body, status));
    let wctx = WriteCtx {
        fields: fields.as_ref(),
        ..ctx(req, apply)
    };
    let (out, was_created) = {
        let mut store = shared.lock_store();
        match store.get(&t.kind, &t.ns, name).cloned() {
            Some(current) => {
                let mut base = current.clone();
                if let (Some(manager), Some(new_fields)) = (wctx.manager.filter(|_| apply), &fields)
                    && let Some(old_fields) = applied_fields_of(&current, manager, sub)
                {
                    patch::prune(&mut base, &old_fields, new_fields);
                }
                let patched = patch::apply(pk, &base, &body)?;
                (
                    store.update(&t.kind, &t.ns, name, patched, part, wctx)?,
                    false,
                )
            }
            None if apply && !status => {
                let mut obj = body;
                let meta = obj
                    .as_object_mut()
                    .ok_or_else(|| ApiError::bad_request("an apply patch must be an object"))?
                    .entry("metadata")
                    .or_insert_with(|| json!({}));
                if meta.is_null() {
                    *meta = json!({});
                }
                let meta = meta
                    .as_object_mut()
                    .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
                match meta.get("name").and_then(Value::as_str) {
                    Some(n) if n != name => {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({n}) does not match the name on the URL ({name})"
                        )));
                    }
                    _ => {
                        meta.insert("name".into(), json!(name));
                    }
                }
                (store.create(&t.kind, &t.ns, obj, false, wctx)?, true)
            }
            None => return Err(ApiError::not_found(&t.kind.plural, name)),
        }
    };
    after_write(shared, req, &t.kind, &out);
    Ok(if was_created { created(out) } else { ok(out) })
}

fn delete_opts(req: &Req) -> Result<DeleteOpts, ApiError> {
    let body: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        patch::parse_body(None, &req.body)?
    };
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(req.q("propagationPolicy"));
    let propagation = match policy {
        None => None,
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid propagationPolicy {other:?}"
            )));
        }
    };
    let orphan = body.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let dry = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == "All"));
    let pre = body.get("preconditions");
    Ok(DeleteOpts {
        propagation: propagation.or(orphan.then_some(Propagation::Orphan)),
        uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run: dry || req.dry_run(),
    })
}

fn success_status(kind: &ResourceKind, obj: &Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {
            "name": obj["metadata"]["name"], "group": kind.group, "kind": kind.plural,
            "uid": obj["metadata"]["uid"],
        },
    })
}

fn delete(shared: &Shared, t: &Target<'_>, req: &Req) -> Result<Response, ApiError> {
    let opts = delete_opts(req)?;
    let name = t.name.unwrap_or("");
    let outcome = shared.lock_store().delete(&t.kind, &t.ns, name, &opts)?;
    Ok(match outcome {
        Deleted::Pending(obj) => ok(obj),
        Deleted::Removed(obj) => ok(success_status(&t.kind, &obj)),
    })
}

fn delete_collection(shared: &Shared, t: &Target<'_>, req: &Req) -> Result<Response, ApiError> {
    let opts = delete_opts(req)?;
    let labels = labels(req)?;
    let fields = fields(req, &t.kind)?;
    let ns = (!t.all_namespaces && t.kind.namespaced).then_some(t.ns.as_str());
    let mut store = shared.lock_store();
    let names: Vec<(String, String)> = store
        .list(&t.kind, ns, None)
        .filter(|o| labels.matches(o) && fields.matches(o))
        .map(|o| {
            let m = &o["metadata"];
            (
                m["namespace"].as_str().unwrap_or("").to_string(),
                m["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut items = Vec::new();
    for (ns, name) in names {
        match store.delete(&t.kind, &ns, &name, &opts) {
            Ok(Deleted::Pending(o) | Deleted::Removed(o)) => items.push(o),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ok(json!({
        "kind": format!("{}List", t.kind.kind), "apiVersion": t.kind.api_version(),
        "metadata": {"resourceVersion": store.rv().to_string()}, "items": items,
    })))
}

fn path_segments(path: &str) -> Vec<&str> {
    path.split('.').filter(|s| !s.is_empty()).collect()
}

fn read_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path_segments(path)
        .iter()
        .try_fold(obj, |cur, seg| cur.get(seg))
}

fn write_path(obj: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let segs = path_segments(path);
    let Some((last, parents)) = segs.split_last() else {
        return Err(ApiError::invalid("empty scale path"));
    };
    let mut cur = obj;
    for seg in parents {
        if !cur.get(*seg).is_some_and(Value::is_object) {
            cur[*seg] = json!({});
        }
        cur = &mut cur[*seg];
    }
    cur[*last] = value;
    Ok(())
}

/// A `LabelSelector` object (matchLabels/matchExpressions) in the string syntax.
fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e["operator"].as_str().unwrap_or("") {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// The autoscaling/v1 `Scale` view of an object.
fn scale_of(kind: &ResourceKind, obj: &Value) -> Value {
    let Some(paths) = &kind.scale else {
        return Value::Null;
    };
    let spec = read_path(obj, &paths.spec_replicas)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status = read_path(obj, &paths.status_replicas)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = match paths
        .label_selector
        .as_deref()
        .and_then(|p| read_path(obj, p))
    {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => selector_string(v),
        _ => String::new(),
    };
    let m = &obj["metadata"];
    let mut meta = json!({
        "name": m["name"], "uid": m["uid"], "resourceVersion": m["resourceVersion"],
        "creationTimestamp": m["creationTimestamp"],
    });
    if kind.namespaced {
        meta["namespace"] = m["namespace"].clone();
    }
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta,
        "spec": {"replicas": spec}, "status": {"replicas": status, "selector": selector},
    })
}

/// PUT or PATCH on `/scale`: the new `spec.replicas` lands at the kind's spec-replicas path.
fn write_scale(shared: &Shared, t: &Target<'_>, req: &Req) -> Result<Response, ApiError> {
    let name = t.name.unwrap_or("");
    let kind = &t.kind;
    let Some(paths) = &kind.scale else {
        return Err(not_found_path());
    };
    let pk = if req.method == Method::PATCH {
        let ct = req.content_type.as_deref().unwrap_or("");
        Some(PatchKind::from_content_type(ct).ok_or_else(|| {
            ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("unknown patch type {ct:?}"),
            )
        })?)
    } else {
        None
    };
    let body = patch::parse_body(pk, &req.body)?;
    let mut store = shared.lock_store();
    let current = store
        .get(kind, &t.ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&kind.plural, name))?;
    let scale = match pk {
        Some(pk) => patch::apply(pk, &scale_of(kind, &current), &body)?,
        None => body,
    };
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| {
            ApiError::invalid("Scale.autoscaling \"\" is invalid: spec.replicas: Required value")
        })?;
    if replicas < 0 {
        return Err(ApiError::invalid(format!(
            "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
        )));
    }
    let mut obj = current.clone();
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        obj["metadata"]["resourceVersion"] = json!(rv);
    }
    write_path(&mut obj, &paths.spec_replicas, json!(replicas))?;
    let out = store.update(
        kind,
        &t.ns,
        name,
        obj,
        Part::Main,
        ctx(req, pk == Some(PatchKind::Apply)),
    )?;
    Ok(ok(scale_of(kind, &out)))
}

/// TokenReview / SubjectAccessReview: counted, optionally delayed or failed, then answered.
async fn answer_review(shared: &Shared, review: Review, req: &Req) -> Result<Response, ApiError> {
    let counter = match review {
        Review::Token => &shared.token_reviews,
        Review::SubjectAccess => &shared.access_reviews,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    // Hooks are user code: call them on a copy, with no lock held.
    let hooks = lock(&shared.reviews).clone();
    match hooks.fault {
        ReviewFault::None => {}
        ReviewFault::Delay(d) => tokio::time::sleep(d).await,
        ReviewFault::Fail(code) => return Err(ApiError::from_code(code, "kubesim review fault")),
    }
    let bad = |e: serde_json::Error| ApiError::bad_request(format!("invalid review: {e}"));
    let out = match review {
        Review::Token => {
            let mut tr: TokenReview = serde_json::from_slice(&req.body).map_err(bad)?;
            tr.status = Some(hooks.token_review(&tr.spec));
            serde_json::to_value(tr)
        }
        Review::SubjectAccess => {
            let mut sar: SubjectAccessReview = serde_json::from_slice(&req.body).map_err(bad)?;
            sar.status = Some(hooks.access_review(&sar.spec));
            serde_json::to_value(sar)
        }
    };
    let out = out.map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    Ok(created(out))
}
