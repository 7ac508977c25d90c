//! JSON shapes of the `custom.metrics.k8s.io` documents, with Go's key names, key order and
//! emission rules (contract §1.3, §1.7).

use serde::Serialize;

use super::selector::LabelSelectorJson;

/// The API group served.
pub const GROUP: &str = "custom.metrics.k8s.io";
/// The versions served, preferred first.
pub const VERSIONS: [ApiVersion; 2] = [ApiVersion::V1beta2, ApiVersion::V1beta1];

/// A served version of `custom.metrics.k8s.io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// `v1beta2` (preferred).
    V1beta2,
    /// `v1beta1`.
    V1beta1,
}

impl ApiVersion {
    /// `v1beta2` or `v1beta1`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1beta2 => "v1beta2",
            ApiVersion::V1beta1 => "v1beta1",
        }
    }

    /// `custom.metrics.k8s.io/<version>`.
    pub fn group_version(self) -> &'static str {
        match self {
            ApiVersion::V1beta2 => "custom.metrics.k8s.io/v1beta2",
            ApiVersion::V1beta1 => "custom.metrics.k8s.io/v1beta1",
        }
    }

    /// Parses a URL version segment.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        VERSIONS.into_iter().find(|v| v.as_str() == s)
    }
}

/// `metav1.APIResourceList`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceList {
    /// `APIResourceList`.
    pub kind: &'static str,
    /// `v1`.
    pub api_version: &'static str,
    /// `custom.metrics.k8s.io/<v>`.
    pub group_version: &'static str,
    /// Never empty.
    pub resources: Vec<ApiResource>,
}

/// `metav1.APIResource` (empty optional fields omitted, required ones always present).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// `<groupresource>/<metric>`.
    pub name: String,
    /// Always `""`.
    pub singular_name: &'static str,
    /// Scope of the parent resource.
    pub namespaced: bool,
    /// `MetricValueList`.
    pub kind: &'static str,
    /// `["get"]`.
    pub verbs: [&'static str; 1],
}

/// `metav1.GroupVersionForDiscovery`.
#[derive(Debug, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionForDiscovery {
    /// `custom.metrics.k8s.io/<v>`.
    pub group_version: &'static str,
    /// `<v>`.
    pub version: &'static str,
}

/// `metav1.APIGroup`; `kind`/`apiVersion` are omitted inside an `APIGroupList`.
#[derive(Debug, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroup {
    /// `APIGroup` when top-level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// `v1` when top-level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    /// `custom.metrics.k8s.io`.
    pub name: &'static str,
    /// Both versions, preferred first.
    pub versions: Vec<GroupVersionForDiscovery>,
    /// v1beta2.
    pub preferred_version: GroupVersionForDiscovery,
}

/// `metav1.APIGroupList`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroupList {
    /// `APIGroupList`.
    pub kind: &'static str,
    /// `v1`.
    pub api_version: &'static str,
    /// The one group.
    pub groups: Vec<ApiGroup>,
}

/// `corev1.ObjectReference` as used in `describedObject` (empty fields omitted).
#[derive(Debug, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribedObject<'a> {
    /// Kind of the object.
    pub kind: &'a str,
    /// Namespace of the object.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub namespace: &'a str,
    /// Name of the object.
    pub name: &'a str,
    /// apiVersion of the object.
    pub api_version: &'a str,
}

/// `metav1.ListMeta`, always `{}`.
#[derive(Debug, Serialize, Default)]
pub struct EmptyMeta {}

/// `v1beta2.MetricValueList`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueListV1beta2<'a> {
    /// `MetricValueList`.
    pub kind: &'static str,
    /// `custom.metrics.k8s.io/v1beta2`.
    pub api_version: &'static str,
    /// `{}`.
    pub metadata: EmptyMeta,
    /// Always an array.
    pub items: Vec<MetricValueV1beta2<'a>>,
}

/// `v1beta2.MetricValue`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueV1beta2<'a> {
    /// The object described.
    pub described_object: DescribedObject<'a>,
    /// Metric name and selector.
    pub metric: MetricIdentifier<'a>,
    /// Sample time.
    pub timestamp: String,
    /// Window, omitted when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<i64>,
    /// Canonical quantity.
    pub value: String,
}

/// `v1beta2.MetricIdentifier`: `selector` is always present (`null` when unset).
#[derive(Debug, Serialize)]
pub struct MetricIdentifier<'a> {
    /// The metric name.
    pub name: &'a str,
    /// The metricLabelSelector, or `null`.
    pub selector: Option<&'a LabelSelectorJson>,
}

/// `v1beta1.MetricValueList`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueListV1beta1<'a> {
    /// `MetricValueList`.
    pub kind: &'static str,
    /// `custom.metrics.k8s.io/v1beta1`.
    pub api_version: &'static str,
    /// `{}`.
    pub metadata: EmptyMeta,
    /// Always an array.
    pub items: Vec<MetricValueV1beta1<'a>>,
}

/// `v1beta1.MetricValue`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueV1beta1<'a> {
    /// The object described.
    pub described_object: DescribedObject<'a>,
    /// The metric name.
    pub metric_name: &'a str,
    /// Sample time.
    pub timestamp: String,
    /// Window, omitted when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    /// Canonical quantity.
    pub value: String,
    /// The metricLabelSelector, or `null`.
    pub selector: Option<&'a LabelSelectorJson>,
}
