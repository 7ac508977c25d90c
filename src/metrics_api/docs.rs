//! Documents built once at startup and served from memory: discovery, `/version`, OpenAPI.

use bytes::Bytes;
use serde_json::json;

use super::provider::ServedResource;
use super::types::{
    ApiGroup, ApiGroupList, ApiResource, ApiResourceList, ApiVersion, GROUP,
    GroupVersionForDiscovery, VERSIONS,
};

/// Pre-serialized documents.
#[derive(Debug, Clone)]
pub(crate) struct Docs {
    pub(crate) index: Bytes,
    pub(crate) api_group_list: Bytes,
    pub(crate) api_group: Bytes,
    pub(crate) resource_list_v1beta2: Bytes,
    pub(crate) resource_list_v1beta1: Bytes,
    pub(crate) version: Bytes,
    pub(crate) openapi_v2: Bytes,
    pub(crate) openapi_v2_etag: String,
    pub(crate) openapi_v3_index: Bytes,
    pub(crate) openapi_v3_v1beta2: Bytes,
    pub(crate) openapi_v3_v1beta1: Bytes,
}

fn gv(v: ApiVersion) -> GroupVersionForDiscovery {
    GroupVersionForDiscovery {
        group_version: v.group_version(),
        version: v.as_str(),
    }
}

/// The APIGroup of `custom.metrics.k8s.io`, both versions listed, v1beta2 preferred.
pub(crate) fn api_group(top_level: bool) -> ApiGroup {
    ApiGroup {
        kind: top_level.then_some("APIGroup"),
        api_version: top_level.then_some("v1"),
        name: GROUP,
        versions: VERSIONS.iter().map(|v| gv(*v)).collect(),
        preferred_version: gv(ApiVersion::V1beta2),
    }
}

/// The APIResourceList of one version: `<groupresource>/<metric>` for every served resource and
/// metric, all namespaced (scope-consistent per parent), never empty.
pub(crate) fn resource_list(v: ApiVersion) -> ApiResourceList {
    let mut resources = Vec::new();
    for r in ServedResource::ALL {
        for m in r.metrics() {
            resources.push(ApiResource {
                name: format!("{}/{}", r.group_resource(), m.as_str()),
                singular_name: "",
                namespaced: true,
                kind: "MetricValueList",
                verbs: ["get"],
            });
        }
    }
    ApiResourceList {
        kind: "APIResourceList",
        api_version: "v1",
        group_version: v.group_version(),
        resources,
    }
}

/// A stable, quoted ETag for a document (FNV-1a 64).
pub(crate) fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016X}\"")
}

fn to_bytes<T: serde::Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

impl Docs {
    pub(crate) fn build() -> Docs {
        let version = env!("CARGO_PKG_VERSION");
        let mut parts = version.split('.');
        let (major, minor) = (parts.next().unwrap_or("0"), parts.next().unwrap_or("0"));
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let version_doc = json!({
            "major": major, "minor": minor, "gitVersion": format!("v{version}"), "gitCommit": "",
            "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "rustc",
            "platform": format!("{}/{arch}", std::env::consts::OS),
        });
        let openapi_v2 = to_bytes(&json!({
            "swagger": "2.0",
            "info": {"title": "storm-metrics", "version": format!("v{version}")},
            "paths": {},
            "definitions": {}
        }));
        let v3_doc = |v: ApiVersion| {
            to_bytes(&json!({
                "openapi": "3.0.0",
                "info": {"title": "storm-metrics", "version": v.as_str()},
                "paths": {},
                "components": {}
            }))
        };
        let (openapi_v3_v1beta2, openapi_v3_v1beta1) =
            (v3_doc(ApiVersion::V1beta2), v3_doc(ApiVersion::V1beta1));
        let hash = |b: &Bytes| etag(b).trim_matches('"').to_owned();
        let openapi_v3_index = to_bytes(&json!({"paths": {
            "apis/custom.metrics.k8s.io/v1beta2": {"serverRelativeURL": format!("/openapi/v3/apis/custom.metrics.k8s.io/v1beta2?hash={}", hash(&openapi_v3_v1beta2))},
            "apis/custom.metrics.k8s.io/v1beta1": {"serverRelativeURL": format!("/openapi/v3/apis/custom.metrics.k8s.io/v1beta1?hash={}", hash(&openapi_v3_v1beta1))},
        }}));
        let index = to_bytes(&json!({"paths": [
            "/apis", "/apis/custom.metrics.k8s.io", "/apis/custom.metrics.k8s.io/v1beta1",
            "/apis/custom.metrics.k8s.io/v1beta2", "/healthz", "/livez", "/openapi/v2", "/openapi/v3",
            "/readyz", "/version"
        ]}));
        Docs {
            index,
            api_group_list: to_bytes(&ApiGroupList {
                kind: "APIGroupList",
                api_version: "v1",
                groups: vec![api_group(false)],
            }),
            api_group: to_bytes(&api_group(true)),
            resource_list_v1beta2: to_bytes(&resource_list(ApiVersion::V1beta2)),
            resource_list_v1beta1: to_bytes(&resource_list(ApiVersion::V1beta1)),
            version: to_bytes(&version_doc),
            openapi_v2_etag: etag(&openapi_v2),
            openapi_v2,
            openapi_v3_index,
            openapi_v3_v1beta2,
            openapi_v3_v1beta1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_shapes() {
        let d = Docs::build();
        let rl: serde_json::Value = serde_json::from_slice(&d.resource_list_v1beta2).unwrap();
        assert_eq!(rl["kind"], "APIResourceList");
        assert_eq!(rl["groupVersion"], "custom.metrics.k8s.io/v1beta2");
        let first = &rl["resources"][0];
        assert_eq!(
            first,
            &json!({"name": "stormtopologies.storm.apache.org/storm_topology_pending_tuples", "singularName": "",
                    "namespaced": true, "kind": "MetricValueList", "verbs": ["get"]})
        );
        assert_eq!(rl["resources"].as_array().unwrap().len(), 18);
        let apis: serde_json::Value = serde_json::from_slice(&d.api_group_list).unwrap();
        assert!(apis["groups"][0].get("kind").is_none());
        assert_eq!(apis["groups"][0]["preferredVersion"]["version"], "v1beta2");
        let g: serde_json::Value = serde_json::from_slice(&d.api_group).unwrap();
        assert_eq!(g["kind"], "APIGroup");
        assert_eq!(g["versions"].as_array().unwrap().len(), 2);
    }
}
