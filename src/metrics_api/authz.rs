//! Authorization (contract §3.3): a [`Authorizer`] decides on (user, attributes); the server uses a
//! SubjectAccessReview against the kube-apiserver ([`SubjectAccessReviewAuthorizer`]) behind a cache
//! ([`CachedAuthorizer`]) or, on loopback only, [`AlwaysAllow`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::auth::UserInfo;

/// What a request does, as Kubernetes' `RequestInfo` parsing sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// A request for a resource.
    Resource {
        /// `get`, `list`, `create`, …
        verb: String,
        /// Namespace (empty for cluster scope).
        namespace: String,
        /// API group.
        group: String,
        /// API version.
        version: String,
        /// Resource segment as sent (`stormtopologies.storm.apache.org`, dots included).
        resource: String,
        /// Subresource (the metric name).
        subresource: String,
        /// Object name (`*` for lists).
        name: String,
    },
    /// A request for a non-resource path (`/apis`, `/openapi/v2`, `/version`, …).
    NonResource {
        /// `get`, …
        verb: String,
        /// The path as requested.
        path: String,
    },
}

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied; `reason` (possibly empty) is appended to the 403 message.
    Deny {
        /// Why, as the authorizer said.
        reason: String,
    },
}

/// The authorizer could not decide (answered as 500).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthzError {
    /// The SubjectAccessReview call failed.
    #[error("{0}")]
    Request(String),
    /// The SubjectAccessReview call did not answer in time.
    #[error("SubjectAccessReview timed out after {0:?}")]
    Timeout(Duration),
}

/// Decides whether a user may do something.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Allows or denies; an `Err` means no decision could be made.
    async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
    ) -> Result<Decision, AuthzError>;
}

/// Allows everything (`--authorization-mode always-allow`, loopback only).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysAllow;

#[async_trait]
impl Authorizer for AlwaysAllow {
    async fn authorize(
        &self,
        _user: &UserInfo,
        _attributes: &Attributes,
    ) -> Result<Decision, AuthzError> {
        Ok(Decision::Allow)
    }
}

/// Asks the kube-apiserver with a SubjectAccessReview (`POST /apis/authorization.k8s.io/v1/subjectaccessreviews`).
#[derive(Clone)]
pub struct SubjectAccessReviewAuthorizer {
    client: kube::Client,
    timeout: Duration,
}

impl SubjectAccessReviewAuthorizer {
    /// An authorizer using `client`; each review is bounded by `timeout`.
    pub fn new(client: kube::Client, timeout: Duration) -> SubjectAccessReviewAuthorizer {
        SubjectAccessReviewAuthorizer { client, timeout }
    }

    /// The review sent for (user, attributes).
    pub fn review(user: &UserInfo, attributes: &Attributes) -> SubjectAccessReview {
        let mut spec = SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            groups: Some(user.groups.clone()),
            uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            ..SubjectAccessReviewSpec::default()
        };
        match attributes {
            Attributes::Resource {
                verb,
                namespace,
                group,
                version,
                resource,
                subresource,
                name,
            } => {
                spec.resource_attributes = Some(ResourceAttributes {
                    namespace: Some(namespace.clone()),
                    verb: Some(verb.clone()),
                    group: Some(group.clone()),
                    version: Some(version.clone()),
                    resource: Some(resource.clone()),
                    subresource: Some(subresource.clone()),
                    name: Some(name.clone()),
                    ..ResourceAttributes::default()
                });
            }
            Attributes::NonResource { verb, path } => {
                spec.non_resource_attributes = Some(NonResourceAttributes {
                    path: Some(path.clone()),
                    verb: Some(verb.clone()),
                });
            }
        }
        SubjectAccessReview {
            spec,
            ..SubjectAccessReview::default()
        }
    }
}

#[async_trait]
impl Authorizer for SubjectAccessReviewAuthorizer {
    async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
    ) -> Result<Decision, AuthzError> {
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let review = SubjectAccessReviewAuthorizer::review(user, attributes);
        let answer =
            tokio::time::timeout(self.timeout, api.create(&PostParams::default(), &review))
                .await
                .map_err(|_| AuthzError::Timeout(self.timeout))?
                .map_err(|e| {
                    AuthzError::Request(match e {
                        kube::Error::Api(s) => format!(
                            "subjectaccessreviews.authorization.k8s.io: {} ({})",
                            s.message, s.code
                        ),
                        other => format!("subjectaccessreviews.authorization.k8s.io: {other}"),
                    })
                })?;
        let status = answer.status.unwrap_or_default();
        if status.allowed {
            Ok(Decision::Allow)
        } else {
            Ok(Decision::Deny {
                reason: status.reason.unwrap_or_default(),
            })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    user: UserInfo,
    attributes: Attributes,
}

struct TtlByDecision {
    allow: Duration,
    deny: Duration,
}

impl moka::Expiry<CacheKey, Decision> for TtlByDecision {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Decision,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Decision::Allow => self.allow,
            Decision::Deny { .. } => self.deny,
        })
    }
}

/// A decided entry of the fast lookup table.
struct Decided {
    user: UserInfo,
    attributes: Attributes,
    decision: Decision,
    expires: Instant,
}

/// Entries kept in the fast table before expired ones are swept.
const FAST_CAPACITY: usize = 10_000;

/// Caches another authorizer's decisions by (user, groups, extra, attributes): allows for
/// `allow_ttl`, denials for `deny_ttl`; errors are not cached. Concurrent identical lookups wait for
/// one call (moka's `try_get_with`). Hits are answered from a plain hash table looked up by
/// reference, without cloning the key, which keeps a cached SubjectAccessReview cheap on the
/// request path.
pub struct CachedAuthorizer {
    inner: Arc<dyn Authorizer>,
    cache: moka::future::Cache<CacheKey, Decision>,
    fast: std::sync::RwLock<std::collections::HashMap<u64, Vec<Decided>>>,
    allow_ttl: Duration,
    deny_ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
    metrics: Option<super::telemetry::ApiMetrics>,
}

impl CachedAuthorizer {
    /// Also counts hits and misses in `metrics` (`metrics_api_authorization_cache_{hits,misses}`).
    pub fn with_metrics(mut self, metrics: &super::telemetry::ApiMetrics) -> CachedAuthorizer {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Wraps `inner`.
    pub fn new(
        inner: Arc<dyn Authorizer>,
        allow_ttl: Duration,
        deny_ttl: Duration,
    ) -> CachedAuthorizer {
        let cache = moka::future::Cache::builder()
            .max_capacity(10_000)
            .expire_after(TtlByDecision {
                allow: allow_ttl,
                deny: deny_ttl,
            })
            .build();
        CachedAuthorizer {
            inner,
            cache,
            fast: Default::default(),
            allow_ttl,
            deny_ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            metrics: None,
        }
    }

    fn key_hash(user: &UserInfo, attributes: &Attributes) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        user.hash(&mut h);
        attributes.hash(&mut h);
        h.finish()
    }

    fn fast_get(&self, hash: u64, user: &UserInfo, attributes: &Attributes) -> Option<Decision> {
        let now = Instant::now();
        let table = self.fast.read().unwrap_or_else(|e| e.into_inner());
        table.get(&hash)?.iter().find_map(|d| {
            (d.expires > now && d.user == *user && d.attributes == *attributes)
                .then(|| d.decision.clone())
        })
    }

    fn fast_put(&self, hash: u64, user: &UserInfo, attributes: &Attributes, decision: &Decision) {
        let ttl = match decision {
            Decision::Allow => self.allow_ttl,
            Decision::Deny { .. } => self.deny_ttl,
        };
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut table = self.fast.write().unwrap_or_else(|e| e.into_inner());
        if table.len() >= FAST_CAPACITY {
            table.retain(|_, v| {
                v.retain(|d| d.expires > now);
                !v.is_empty()
            });
            if table.len() >= FAST_CAPACITY {
                table.clear();
            }
        }
        let bucket = table.entry(hash).or_default();
        bucket.retain(|d| d.expires > now && !(d.user == *user && d.attributes == *attributes));
        bucket.push(Decided {
            user: user.clone(),
            attributes: attributes.clone(),
            decision: decision.clone(),
            expires: now + ttl,
        });
    }

    /// (hits, misses) so far; a miss is a call to the inner authorizer.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[async_trait]
impl Authorizer for CachedAuthorizer {
    async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
    ) -> Result<Decision, AuthzError> {
        let hash = CachedAuthorizer::key_hash(user, attributes);
        if let Some(d) = self.fast_get(hash, user, attributes) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = &self.metrics {
                m.authz_hits.inc();
            }
            return Ok(d);
        }
        let key = CacheKey {
            user: user.clone(),
            attributes: attributes.clone(),
        };
        let inner = self.inner.clone();
        let misses = &self.misses;
        let metrics = &self.metrics;
        self.cache
            .try_get_with(key, async move {
                misses.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = metrics {
                    m.authz_misses.inc();
                }
                inner.authorize(user, attributes).await
            })
            .await
            .map_err(|e| (*e).clone())
            .inspect(|d| self.fast_put(hash, user, attributes, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting {
        calls: AtomicU64,
        allow: bool,
    }

    #[async_trait]
    impl Authorizer for Counting {
        async fn authorize(&self, _u: &UserInfo, _a: &Attributes) -> Result<Decision, AuthzError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(if self.allow {
                Decision::Allow
            } else {
                Decision::Deny {
                    reason: String::new(),
                }
            })
        }
    }

    fn attrs(path: &str) -> Attributes {
        Attributes::NonResource {
            verb: "get".into(),
            path: path.into(),
        }
    }

    #[tokio::test]
    async fn caches_and_collapses() {
        let inner = Arc::new(Counting {
            calls: AtomicU64::new(0),
            allow: true,
        });
        let c = CachedAuthorizer::new(
            inner.clone(),
            Duration::from_secs(30),
            Duration::from_secs(10),
        );
        let u = UserInfo::anonymous();
        let a = attrs("/apis");
        let (r1, r2) = tokio::join!(c.authorize(&u, &a), c.authorize(&u, &a));
        assert_eq!(
            (r1.unwrap(), r2.unwrap()),
            (Decision::Allow, Decision::Allow)
        );
        assert_eq!(c.authorize(&u, &a).await.unwrap(), Decision::Allow);
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        c.authorize(&u, &attrs("/version")).await.unwrap();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn denials_expire_sooner() {
        let inner = Arc::new(Counting {
            calls: AtomicU64::new(0),
            allow: false,
        });
        let c = CachedAuthorizer::new(
            inner.clone(),
            Duration::from_secs(30),
            Duration::from_millis(50),
        );
        let u = UserInfo::anonymous();
        let a = attrs("/apis");
        c.authorize(&u, &a).await.unwrap();
        c.authorize(&u, &a).await.unwrap();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(120)).await;
        c.authorize(&u, &a).await.unwrap();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn review_shape() {
        let u = UserInfo {
            name: "u".into(),
            uid: String::new(),
            groups: vec!["g".into()],
            extra: Default::default(),
        };
        let a = Attributes::Resource {
            verb: "get".into(),
            namespace: "storm".into(),
            group: "custom.metrics.k8s.io".into(),
            version: "v1beta2".into(),
            resource: "stormtopologies.storm.apache.org".into(),
            subresource: "m".into(),
            name: "wc".into(),
        };
        let v = serde_json::to_value(SubjectAccessReviewAuthorizer::review(&u, &a)).unwrap();
        assert_eq!(v["apiVersion"], "authorization.k8s.io/v1");
        assert_eq!(v["kind"], "SubjectAccessReview");
        assert_eq!(
            v["spec"]["resourceAttributes"]["resource"],
            "stormtopologies.storm.apache.org"
        );
        assert_eq!(v["spec"]["resourceAttributes"]["subresource"], "m");
        assert_eq!(v["spec"]["groups"], serde_json::json!(["g"]));
    }
}
