//! `kubesim`: an in-memory Kubernetes API server double that an unchanged [`kube::Client`] talks to
//! over plain HTTP on 127.0.0.1.
//!
//! Controller tests, the metrics API server's SubjectAccessReview/TokenReview checks and the
//! `dev` sandbox use it as their Kubernetes API.
//!
//! ```no_run
//! # async fn demo() {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! let sim = storm_controller::kubesim::KubeSim::start().await;
//! let cms: kube::Api<ConfigMap> = kube::Api::default_namespaced(sim.client());
//! # let _ = cms;
//! # }
//! ```
//!
//! # Served
//! Core v1 namespaces, configmaps, secrets, services, pods, events, serviceaccounts; apps/v1
//! deployments and statefulsets (`/status`, `/scale`); policy/v1 poddisruptionbudgets; batch/v1
//! jobs; autoscaling/v2 horizontalpodautoscalers; coordination.k8s.io/v1 leases; events.k8s.io/v1
//! events; apiextensions.k8s.io/v1 customresourcedefinitions (creating one registers its kinds);
//! the Storm CRDs from [`crate::crd::crds`]; and create-only authentication.k8s.io/v1 tokenreviews
//! and authorization.k8s.io/v1 subjectaccessreviews answered by scripted hooks.
//!
//! # Test hooks
//! Direct store access ([`KubeSim::get`], [`KubeSim::list`], [`KubeSim::put`],
//! [`KubeSim::apply_status`], [`KubeSim::delete`]) lets a test play kubelet or a built-in
//! controller; [`KubeSim::requests`]/[`KubeSim::writes`] show what a reconcile sent;
//! [`KubeSim::fail_next`] injects API errors; TokenReview/SubjectAccessReview answers come from
//! tables ([`KubeSim::add_token`], [`KubeSim::allow`]) or closures, with [`ReviewFault`] and
//! call counters.
//!
//! # Simplified compared with a real apiserver
//! - No authentication or authorization of callers: every request is served.
//! - No defaulting (a Deployment keeps exactly the fields it was given) and no built-in
//!   controllers: tests set `.status` themselves.
//! - Strategic merge patch is a JSON merge patch (no `$patch` directives, lists replaced whole).
//!   Server-side apply is a merge patch plus pruning: each manager's applied field set is kept in
//!   `managedFields[].fieldsV1` (`f:<key>` for map keys; lists and scalars are leaves), and map keys
//!   it applied before but not now are removed. Lists are atomic (an apply replaces
//!   `containers`, `finalizers`, `ownerReferences` whole), ownership is never shared, so there
//!   are no apply conflicts (`force` is accepted and ignored). Update entries record manager,
//!   operation, subresource and time with an empty `fieldsV1`.
//! - No schema, CEL or admission validation beyond names, `apiVersion`/`kind` and metadata rules;
//!   namespaces are not required to exist; `metadata.generation` exists on every kind.
//! - `limit`/`continue` page over the current state (no snapshot); continue tokens never expire.
//! - Garbage collection runs synchronously inside the deleting request (deleting a namespace
//!   deletes its contents the same way); pods are removed without a grace period; deleting a CRD
//!   leaves its kinds served and its objects stored.
//! - JSON (and YAML) only: protobuf/CBOR bodies get 415, so kubectl's typed generators
//!   (`kubectl create configmap …`) fail while `kubectl apply/create -f` work; no OpenAPI documents
//!   (use `kubectl apply --validate=false`); no server-side Table printing (kubectl shows NAME/AGE).
//! - Watches that fall behind the broadcast buffer end; the client resumes from its last
//!   resourceVersion (or gets 410 Expired and relists when that left the bounded history).

mod error;
mod kinds;
mod patch;
mod selector;
mod server;
mod store;
mod watch;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReviewSpec, TokenReviewStatus, UserInfo};
use k8s_openapi::api::authorization::v1::{SubjectAccessReviewSpec, SubjectAccessReviewStatus};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{broadcast, watch as signal};
use tokio::task::JoinHandle;

pub use error::ApiError;
pub use kinds::{ResourceKind, Review, ScalePaths};

use patch::PatchKind;
use store::{Part, Store, WriteCtx};

/// Tunables; [`KubeSimOptions::default`] suits tests.
#[derive(Clone, Debug)]
pub struct KubeSimOptions {
    /// Watch events kept for resuming watches; older resourceVersions get 410 Expired.
    pub history_capacity: usize,
    /// Events buffered per watcher before a slow watch is ended.
    pub watch_buffer: usize,
    /// Interval of BOOKMARK events for watches that asked for them.
    pub bookmark_interval: Duration,
    /// Requests kept in the request log (oldest dropped first).
    pub request_log_capacity: usize,
    /// Install the Storm CRDs (stored and Established) at start. Without them the Storm paths
    /// answer 404 like a cluster where nobody installed the CRDs; creating them through the API
    /// (or [`KubeSim::register_crd`]) serves them later.
    pub install_storm_crds: bool,
    /// Port on 127.0.0.1 to listen on; 0 (the default) picks a free one.
    pub port: u16,
}

impl Default for KubeSimOptions {
    fn default() -> Self {
        Self {
            history_capacity: 4096,
            watch_buffer: 4096,
            bookmark_interval: Duration::from_secs(2),
            request_log_capacity: 20_000,
            install_storm_crds: true,
            port: 0,
        }
    }
}

/// One request as the server received it, with the status it was answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Path without the query.
    pub path: String,
    /// Raw query string (empty when none).
    pub query: String,
    /// `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Body as (lossy) UTF-8.
    pub body: String,
    /// HTTP status of the answer (the log records requests once answered).
    pub status: u16,
}

impl RecordedRequest {
    /// Whether the request asks to change stored state (POST/PUT/PATCH/DELETE, except the
    /// create-only TokenReview and SubjectAccessReview calls).
    pub fn is_write(&self) -> bool {
        let mutating = matches!(
            self.method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE
        );
        mutating
            && !self.path.ends_with("/tokenreviews")
            && !self.path.ends_with("/subjectaccessreviews")
    }

    /// Whether this is a watch request.
    pub fn is_watch(&self) -> bool {
        self.query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
    }
}

/// A scripted failure: the next `remaining` requests matching method and path prefix fail.
#[derive(Clone, Debug)]
struct Fault {
    method: Option<http::Method>,
    path_prefix: String,
    code: u16,
    remaining: usize,
}

/// How TokenReview and SubjectAccessReview calls misbehave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ReviewFault {
    /// Answer normally.
    #[default]
    None,
    /// Answer after a delay.
    Delay(Duration),
    /// Fail with this HTTP code and a `metav1.Status`.
    Fail(u16),
}

/// One row of the SubjectAccessReview table; `"*"` matches anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRule {
    /// `spec.user`.
    pub user: String,
    /// `resourceAttributes.verb` or `nonResourceAttributes.verb`.
    pub verb: String,
    /// `resourceAttributes.group` (empty for core; `"*"` for any).
    pub group: String,
    /// `resourceAttributes.resource`, or `nonResourceAttributes.path`.
    pub resource: String,
    /// The answer.
    pub allowed: bool,
}

impl AccessRule {
    fn matches(&self, user: &str, verb: &str, group: &str, resource: &str) -> bool {
        let m = |rule: &str, v: &str| rule == "*" || rule == v;
        m(&self.user, user)
            && m(&self.verb, verb)
            && m(&self.group, group)
            && m(&self.resource, resource)
    }
}

/// Custom TokenReview answer.
pub type TokenReviewHook = Arc<dyn Fn(&TokenReviewSpec) -> TokenReviewStatus + Send + Sync>;
/// Custom SubjectAccessReview answer.
pub type AccessReviewHook =
    Arc<dyn Fn(&SubjectAccessReviewSpec) -> SubjectAccessReviewStatus + Send + Sync>;

#[derive(Clone, Default)]
struct ReviewHooks {
    tokens: HashMap<String, UserInfo>,
    rules: Vec<AccessRule>,
    token_hook: Option<TokenReviewHook>,
    access_hook: Option<AccessReviewHook>,
    fault: ReviewFault,
}

impl ReviewHooks {
    fn token_review(&self, spec: &TokenReviewSpec) -> TokenReviewStatus {
        if let Some(hook) = &self.token_hook {
            return hook(spec);
        }
        match spec.token.as_deref().and_then(|t| self.tokens.get(t)) {
            Some(user) => TokenReviewStatus {
                authenticated: Some(true),
                user: Some(user.clone()),
                audiences: spec.audiences.clone(),
                error: None,
            },
            None => TokenReviewStatus {
                authenticated: Some(false),
                error: Some("token not recognised by kubesim".into()),
                ..Default::default()
            },
        }
    }

    fn access_review(&self, spec: &SubjectAccessReviewSpec) -> SubjectAccessReviewStatus {
        if let Some(hook) = &self.access_hook {
            return hook(spec);
        }
        let user = spec.user.as_deref().unwrap_or("");
        let (verb, group, resource) =
            match (&spec.resource_attributes, &spec.non_resource_attributes) {
                (Some(r), _) => (
                    r.verb.clone().unwrap_or_default(),
                    r.group.clone().unwrap_or_default(),
                    r.resource.clone().unwrap_or_default(),
                ),
                (None, Some(n)) => (
                    n.verb.clone().unwrap_or_default(),
                    String::new(),
                    n.path.clone().unwrap_or_default(),
                ),
                (None, None) => Default::default(),
            };
        match self
            .rules
            .iter()
            .find(|r| r.matches(user, &verb, &group, &resource))
        {
            Some(rule) => SubjectAccessReviewStatus {
                allowed: rule.allowed,
                denied: Some(!rule.allowed),
                reason: Some(format!("kubesim rule for {user} {verb} {group}/{resource}")),
                ..Default::default()
            },
            None => SubjectAccessReviewStatus {
                allowed: false,
                reason: Some(format!(
                    "no kubesim rule allows {user} {verb} {group}/{resource}"
                )),
                ..Default::default()
            },
        }
    }
}

/// State shared by the HTTP handlers and the [`KubeSim`] handle.
pub(crate) struct Shared {
    store: Mutex<Store>,
    options: KubeSimOptions,
    log: Mutex<VecDeque<RecordedRequest>>,
    requests: AtomicU64,
    faults: Mutex<Vec<Fault>>,
    reviews: Mutex<ReviewHooks>,
    token_reviews: AtomicU64,
    access_reviews: AtomicU64,
    shutdown: signal::Receiver<bool>,
    addr: SocketAddr,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for everyone else.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn lock_store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn record(&self, req: RecordedRequest) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut log = lock(&self.log);
        log.push_back(req);
        while log.len() > self.options.request_log_capacity {
            log.pop_front();
        }
    }

    fn take_fault(&self, method: &http::Method, path: &str) -> Option<ApiError> {
        let mut faults = lock(&self.faults);
        let idx = faults.iter().position(|f| {
            f.remaining > 0
                && f.method.as_ref().is_none_or(|m| m == method)
                && path.starts_with(&f.path_prefix)
        })?;
        let fault = &mut faults[idx];
        fault.remaining -= 1;
        let err = ApiError::from_code(
            fault.code,
            format!("kubesim injected fault on {method} {path}"),
        );
        if fault.remaining == 0 {
            faults.remove(idx);
        }
        Some(err)
    }
}

/// A running API double. Dropping it (or [`KubeSim::shutdown`]) stops the server.
pub struct KubeSim {
    shared: Arc<Shared>,
    stop: signal::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KubeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSim").field("url", &self.url()).finish()
    }
}

fn kind_of<K: Resource<DynamicType = ()>>(store: &Store) -> Result<Arc<ResourceKind>, ApiError> {
    store
        .kind(&K::group(&()), &K::version(&()), &K::plural(&()))
        .ok_or_else(|| {
            ApiError::not_found(
                &K::plural(&()),
                &format!("kind {} is not registered", K::kind(&())),
            )
        })
}

fn decode<K: DeserializeOwned>(v: Value) -> Result<K, ApiError> {
    serde_json::from_value(v).map_err(|e| {
        ApiError::new(
            500,
            "InternalError",
            format!("stored object does not decode: {e}"),
        )
    })
}

impl KubeSim {
    /// Starts a server on 127.0.0.1 with an ephemeral port and default options.
    ///
    /// # Panics
    /// When no local port can be bound, which leaves a test nothing to do.
    pub async fn start() -> KubeSim {
        Self::start_with(KubeSimOptions::default())
            .await
            .expect("kubesim: binding 127.0.0.1:0")
    }

    /// Starts a server on 127.0.0.1 (port from the options, ephemeral by default).
    pub async fn start_with(options: KubeSimOptions) -> std::io::Result<KubeSim> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr = listener.local_addr()?;
        let (tx, _) = broadcast::channel(options.watch_buffer.max(16));
        let mut store = Store::new(options.history_capacity, tx);
        for kind in kinds::builtin() {
            store.register(kind);
        }
        if options.install_storm_crds {
            for crd in crate::crd::crds() {
                for kind in ResourceKind::from_crd(&crd) {
                    store.register(kind);
                }
            }
        }
        let (stop, shutdown) = signal::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            options,
            log: Mutex::new(VecDeque::new()),
            requests: AtomicU64::new(0),
            faults: Mutex::new(Vec::new()),
            reviews: Mutex::new(ReviewHooks::default()),
            token_reviews: AtomicU64::new(0),
            access_reviews: AtomicU64::new(0),
            shutdown: shutdown.clone(),
            addr,
        });
        server::seed(&shared);
        let app = server::router(shared.clone());
        let mut until = shutdown;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Either a stop signal or the handle going away ends the server.
                let _ = until.wait_for(|stop| *stop).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "kubesim server stopped with an error");
            }
        });
        Ok(KubeSim {
            shared,
            stop,
            task: Some(task),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A `kube::Config` pointing at the server, default namespace `default`.
    pub fn config(&self) -> kube::Config {
        let uri: http::Uri = self
            .url()
            .parse()
            .expect("an http://127.0.0.1:port URL parses");
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        config
    }

    /// A client for the server, default namespace `default`.
    ///
    /// # Panics
    /// Never for the plain-HTTP config [`KubeSim::config`] builds.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("kubesim: a plain-HTTP kube client builds")
    }

    /// A kubeconfig (cluster, user and context `kubesim`) for kubectl or `kube::Config::from_custom_kubeconfig`.
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubesim", "cluster": {"server": self.url()}}],
            "users": [{"name": "kubesim", "user": {}}],
            "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim", "namespace": "default"}}],
            "current-context": "kubesim",
        });
        serde_json::from_value(doc).expect("a literal kubeconfig deserializes")
    }

    /// Stops the server, ending open watches, and waits (at most 5 s) for it to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    // ---- kinds ----

    /// Serves another kind.
    pub fn register(&self, kind: ResourceKind) {
        self.shared.lock_store().register(kind);
    }

    /// Serves the kinds a CRD defines (creating a CRD through the API does the same).
    pub fn register_crd(&self, crd: &CustomResourceDefinition) {
        let mut store = self.shared.lock_store();
        for kind in ResourceKind::from_crd(crd) {
            store.register(kind);
        }
    }

    // ---- direct store access (plays kubelet or a built-in controller) ----

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock_store().rv()
    }

    /// A stored object; `ns` is ignored for cluster-scoped kinds.
    pub fn get<K>(&self, ns: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let store = self.shared.lock_store();
        let kind = kind_of::<K>(&store).ok()?;
        let v = store.get(&kind, ns, name)?.clone();
        serde_json::from_value(v).ok()
    }

    /// Stored objects of a kind, in one namespace or all; objects that fail to decode are skipped.
    pub fn list<K>(&self, ns: Option<&str>) -> Vec<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let store = self.shared.lock_store();
        let Ok(kind) = kind_of::<K>(&store) else {
            return Vec::new();
        };
        store
            .list(&kind, ns, None)
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect()
    }

    /// Creates or replaces an object as given, `.status` included and without a
    /// resourceVersion check; emits the watch event a real write would.
    pub fn put<K>(&self, obj: &K) -> Result<K, ApiError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let mut v = serde_json::to_value(obj)
            .map_err(|e| ApiError::bad_request(format!("object does not serialize: {e}")))?;
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let ns = obj
            .meta()
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = obj.meta().name.clone().unwrap_or_default();
        let mut store = self.shared.lock_store();
        let kind = kind_of::<K>(&store)?;
        let ctx = WriteCtx::default();
        let out = if store.get(&kind, &ns, &name).is_some() {
            store.update(&kind, &ns, &name, v, Part::All, ctx)?
        } else {
            store.create(&kind, &ns, v, true, ctx)?
        };
        decode(out)
    }

    /// Merges `status` (a JSON merge patch) into an object's `.status`, like a built-in
    /// controller would (e.g. a Deployment's `readyReplicas`).
    pub fn apply_status<K>(&self, ns: &str, name: &str, status: Value) -> Result<K, ApiError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let mut store = self.shared.lock_store();
        let kind = kind_of::<K>(&store)?;
        let current = store
            .get(&kind, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&kind.plural, name))?;
        let patched = patch::apply(
            PatchKind::Merge,
            &current,
            &serde_json::json!({ "status": status }),
        )?;
        let out = store.update(&kind, ns, name, patched, Part::Status, WriteCtx::default())?;
        decode(out)
    }

    /// Deletes an object with the API's semantics (finalizers, owner-reference cascade).
    pub fn delete<K>(&self, ns: &str, name: &str) -> Result<(), ApiError>
    where
        K: Resource<DynamicType = ()>,
    {
        let mut store = self.shared.lock_store();
        let kind = kind_of::<K>(&store)?;
        store
            .delete(&kind, ns, name, &store::DeleteOpts::default())
            .map(|_| ())
    }

    // ---- request log and faults ----

    /// Requests received so far (up to the log capacity, oldest first).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// Requests that asked to change state (see [`RecordedRequest::is_write`]).
    pub fn writes(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.is_write())
            .cloned()
            .collect()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Requests received since start, including those dropped from the log.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Fails the next `n` requests whose method matches (`None`: any) and whose path starts with
    /// `path_prefix`, with HTTP `code` and a matching `Status.reason` (e.g. 409 Conflict, 500 InternalError).
    pub fn fail_next(&self, n: usize, method: Option<http::Method>, path_prefix: &str, code: u16) {
        if n == 0 {
            return;
        }
        lock(&self.shared.faults).push(Fault {
            method,
            path_prefix: path_prefix.to_string(),
            code,
            remaining: n,
        });
    }

    /// Drops all pending faults.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    // ---- TokenReview / SubjectAccessReview ----

    /// Makes TokenReview accept `token` as `user`.
    pub fn add_token(&self, token: &str, user: UserInfo) {
        lock(&self.shared.reviews)
            .tokens
            .insert(token.to_string(), user);
    }

    /// Appends a SubjectAccessReview rule (first match wins; no match is "not allowed").
    pub fn add_access_rule(&self, rule: AccessRule) {
        lock(&self.shared.reviews).rules.push(rule);
    }

    /// Shorthand for an allowing [`AccessRule`].
    pub fn allow(&self, user: &str, verb: &str, group: &str, resource: &str) {
        self.add_access_rule(AccessRule {
            user: user.into(),
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            allowed: true,
        });
    }

    /// Replaces the token table with a closure.
    pub fn on_token_review(
        &self,
        hook: impl Fn(&TokenReviewSpec) -> TokenReviewStatus + Send + Sync + 'static,
    ) {
        lock(&self.shared.reviews).token_hook = Some(Arc::new(hook));
    }

    /// Replaces the rule table with a closure.
    pub fn on_subject_access_review(
        &self,
        hook: impl Fn(&SubjectAccessReviewSpec) -> SubjectAccessReviewStatus + Send + Sync + 'static,
    ) {
        lock(&self.shared.reviews).access_hook = Some(Arc::new(hook));
    }

    /// Makes both review kinds slow or failing (counters still count the calls).
    pub fn set_review_fault(&self, fault: ReviewFault) {
        lock(&self.shared.reviews).fault = fault;
    }

    /// TokenReview calls received.
    pub fn token_review_count(&self) -> u64 {
        self.shared.token_reviews.load(Ordering::Relaxed)
    }

    /// SubjectAccessReview calls received.
    pub fn subject_access_review_count(&self) -> u64 {
        self.shared.access_reviews.load(Ordering::Relaxed)
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        // Graceful: open watches end, idle connections close, the server task finishes on its own.
        let _ = self.stop.send(true);
    }
}
