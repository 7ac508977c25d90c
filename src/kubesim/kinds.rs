//! The resource kinds the API double serves: built-ins, the Storm CRDs, and any CRD registered later.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Verbs of an ordinary stored resource.
const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Where a kind keeps the fields its `/scale` subresource exposes (JSON paths like `.spec.replicas`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// Desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// Observed replicas, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// Label selector: a string (CRDs) or a `LabelSelector` object (Deployments), e.g. `.status.selector`.
    pub label_selector: Option<String>,
}

/// A create-only review kind answered by a scripted hook instead of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// `authentication.k8s.io/v1` `TokenReview`.
    Token,
    /// `authorization.k8s.io/v1` `SubjectAccessReview`.
    SubjectAccess,
}

/// One served resource: what discovery lists and what the generic handlers need to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceKind {
    /// API group, empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Plural resource name used in paths, e.g. `configmaps`.
    pub plural: String,
    /// Singular name, e.g. `configmap`.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories for kubectl (`kubectl get storm`).
    pub categories: Vec<String>,
    /// Verbs served.
    pub verbs: Vec<String>,
    /// Whether the kind has a `/status` subresource (main-resource writes then ignore `.status`).
    pub status: bool,
    /// The `/scale` subresource, if any.
    pub scale: Option<ScalePaths>,
    /// Field-selector keys beyond `metadata.name`/`metadata.namespace`, e.g. `spec.clusterRef.name`.
    pub selectable_fields: Vec<String>,
    /// Set for create-only review kinds answered by hooks.
    pub review: Option<Review>,
    /// Defined by a CRD. As in the apiserver, a PUT then needs `metadata.resourceVersion` (422
    /// otherwise) and strategic merge patches get 415.
    pub custom: bool,
}

impl ResourceKind {
    /// A plain stored kind with all verbs and no subresources.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
            status: false,
            scale: None,
            selectable_fields: Vec::new(),
            review: None,
            custom: false,
        }
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Store key of the kind: `group/plural` (version-independent).
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// Whether `verb` is served.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    fn with_scale(mut self, selector: &str) -> Self {
        self.scale = Some(ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(selector.into()),
        });
        self
    }

    fn fields(mut self, fields: &[&str]) -> Self {
        self.selectable_fields = fields.iter().map(|s| s.to_string()).collect();
        self
    }

    fn review(mut self, review: Review) -> Self {
        self.review = Some(review);
        self.verbs = vec!["create".into()];
        self
    }

    /// The kinds a CRD defines, one per served version.
    pub fn from_crd(crd: &CustomResourceDefinition) -> Vec<Self> {
        let spec = &crd.spec;
        let namespaced = spec.scope == "Namespaced";
        spec.versions
            .iter()
            .filter(|v| v.served)
            .map(|v| {
                let mut kind = Self::new(
                    &spec.group,
                    &v.name,
                    &spec.names.kind,
                    &spec.names.plural,
                    namespaced,
                );
                kind.singular = spec
                    .names
                    .singular
                    .clone()
                    .unwrap_or_else(|| spec.names.kind.to_ascii_lowercase());
                kind.custom = true;
                kind.short_names = spec.names.short_names.clone().unwrap_or_default();
                kind.categories = spec.names.categories.clone().unwrap_or_default();
                if let Some(sub) = &v.subresources {
                    kind.status = sub.status.is_some();
                    kind.scale = sub.scale.as_ref().map(|s| ScalePaths {
                        spec_replicas: s.spec_replicas_path.clone(),
                        status_replicas: s.status_replicas_path.clone(),
                        label_selector: s.label_selector_path.clone(),
                    });
                }
                kind.selectable_fields = v
                    .selectable_fields
                    .iter()
                    .flatten()
                    .map(|f| f.json_path.trim_start_matches('.').to_string())
                    .collect();
                kind
            })
            .collect()
    }
}

/// The built-in kinds served from the start (see the module docs of [`crate::kubesim`]); the
/// Storm kinds come from their CRDs.
pub(crate) fn builtin() -> Vec<ResourceKind> {
    use ResourceKind as K;
    vec![
        K::new("", "v1", "Namespace", "namespaces", false)
            .short(&["ns"])
            .with_status()
            .fields(&["status.phase"]),
        K::new("", "v1", "ConfigMap", "configmaps", true).short(&["cm"]),
        K::new("", "v1", "Secret", "secrets", true).fields(&["type"]),
        K::new("", "v1", "Service", "services", true)
            .short(&["svc"])
            .with_status(),
        K::new("", "v1", "Pod", "pods", true)
            .short(&["po"])
            .with_status()
            .fields(&["spec.nodeName", "status.phase"]),
        K::new("", "v1", "Event", "events", true)
            .short(&["ev"])
            .fields(&[
                "involvedObject.kind",
                "involvedObject.name",
                "involvedObject.namespace",
                "involvedObject.uid",
                "reason",
                "type",
            ]),
        K::new("", "v1", "ServiceAccount", "serviceaccounts", true).short(&["sa"]),
        K::new("apps", "v1", "Deployment", "deployments", true)
            .short(&["deploy"])
            .with_status()
            .with_scale(".spec.selector"),
        K::new("apps", "v1", "StatefulSet", "statefulsets", true)
            .short(&["sts"])
            .with_status()
            .with_scale(".spec.selector"),
        K::new(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
        )
        .short(&["pdb"])
        .with_status(),
        K::new("batch", "v1", "Job", "jobs", true).with_status(),
        K::new(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        )
        .short(&["hpa"])
        .with_status(),
        K::new("coordination.k8s.io", "v1", "Lease", "leases", true),
        K::new("events.k8s.io", "v1", "Event", "events", true).short(&["ev"]),
        K::new(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )
        .short(&["crd", "crds"])
        .with_status(),
        K::new(
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            false,
        )
        .review(Review::Token),
        K::new(
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
        )
        .review(Review::SubjectAccess),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_worker_pool_has_scale_and_selectable_fields() {
        let kinds: Vec<_> = crate::crd::crds()
            .iter()
            .flat_map(ResourceKind::from_crd)
            .collect();
        let wp = kinds
            .iter()
            .find(|k| k.plural == "stormworkerpools")
            .expect("registered");
        assert!(wp.status);
        let scale = wp.scale.as_ref().expect("scale subresource");
        assert_eq!(scale.spec_replicas, ".spec.replicas");
        assert_eq!(scale.label_selector.as_deref(), Some(".status.selector"));
        assert_eq!(wp.selectable_fields, vec!["spec.topologyRef.name"]);
        assert_eq!(wp.short_names, vec!["stormwp"]);
    }
}
