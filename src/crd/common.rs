//! Fragments shared by the three kinds: references, pod settings, conditions and the schema of
//! Storm configuration maps with the keys the operator owns.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A Storm configuration map (`storm.yaml` or topology configuration): string keys, any YAML value.
pub type StormConfig = BTreeMap<String, Value>;

/// Most entries a configuration map may hold; keeps the CEL cost estimate of the map bounded.
pub const MAX_CONFIG_ENTRIES: u64 = 256;

/// A StormCluster in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReference {
    /// Name of the StormCluster, in the namespace of this object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A StormTopology in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologyReference {
    /// Name of the StormTopology, in the namespace of this object.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// When the kubelet pulls a container image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every container start.
    Always,
    /// Pull only when the image is not on the node.
    #[default]
    IfNotPresent,
    /// Never pull; the image must already be on the node.
    Never,
}

impl PullPolicy {
    /// The value a container's `imagePullPolicy` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Resources, scheduling and metadata of the pods of one role (Nimbus, supervisors, UI, a worker pool).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// CPU and memory requests and limits of the Storm container. Size the memory limit above the
    /// JVM heap (`-Xmx`) plus metaspace and direct buffers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra JVM options of the Storm daemon in these pods (appended to Storm's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub jvm_opts: Option<String>,
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity rules. When unset the operator adds a preferred anti-affinity that spreads the
    /// pods of this role across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How the pods spread across zones or nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Extra annotations on the pods (not on the workload objects).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Extra labels on the pods. Labels the operator sets (`app.kubernetes.io/*`) win.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
}

/// A configuration key that the operator sets itself, and where the user says what they want instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnedKey {
    /// The Storm configuration key.
    pub key: &'static str,
    /// The field (or mechanism) that sets it.
    pub use_instead: &'static str,
}

/// Keys of `StormCluster.spec.config` (storm.yaml) that the operator renders itself.
pub const CLUSTER_OWNED_KEYS: &[OwnedKey] = &[
    OwnedKey {
        key: "nimbus.seeds",
        use_instead: "the operator derives it from the Nimbus pods; for a cluster outside Kubernetes use spec.external.nimbusSeeds",
    },
    OwnedKey {
        key: "nimbus.host",
        use_instead: "the operator derives the Nimbus addresses from the Nimbus pods",
    },
    OwnedKey {
        key: "nimbus.thrift.port",
        use_instead: "use spec.thrift.port",
    },
    OwnedKey {
        key: "storm.zookeeper.servers",
        use_instead: "use spec.zookeeper.servers",
    },
    OwnedKey {
        key: "storm.zookeeper.port",
        use_instead: "use spec.zookeeper.port",
    },
    OwnedKey {
        key: "storm.zookeeper.root",
        use_instead: "use spec.zookeeper.root",
    },
    OwnedKey {
        key: "storm.local.dir",
        use_instead: "the operator mounts it from spec.nimbus.persistence",
    },
    OwnedKey {
        key: "storm.local.hostname",
        use_instead: "the operator sets each pod's stable DNS name",
    },
    OwnedKey {
        key: "supervisor.slots.ports",
        use_instead: "use spec.supervisors.slotsPerSupervisor",
    },
    OwnedKey {
        key: "supervisor.thrift.port",
        use_instead: "the operator serves it on 6628 and probes the supervisors there",
    },
    OwnedKey {
        key: "ui.port",
        use_instead: "the operator serves the UI on port 8080 behind its Service",
    },
];

/// Keys of `StormTopology.spec.config` that the operator sets on submission or rebalance.
pub const TOPOLOGY_OWNED_KEYS: &[OwnedKey] = &[
    OwnedKey {
        key: "topology.name",
        use_instead: "the Storm name is metadata.name or spec.stormName",
    },
    OwnedKey {
        key: "topology.workers",
        use_instead: "use spec.workers",
    },
    OwnedKey {
        key: "topology.version",
        use_instead: "use spec.version",
    },
    OwnedKey {
        key: "topology.scheduler.favored.nodes",
        use_instead: "the operator sets it to the supervisors of spec.workerPool",
    },
    OwnedKey {
        key: "nimbus.seeds",
        use_instead: "it comes from the StormCluster named in spec.clusterRef",
    },
    OwnedKey {
        key: "storm.zookeeper.servers",
        use_instead: "it comes from the StormCluster named in spec.clusterRef",
    },
];

/// The message a CEL rule gives when an owned key appears in a configuration map.
pub fn owned_key_message(owned: &OwnedKey) -> String {
    format!(
        "config key '{}' is set by the operator: {}",
        owned.key, owned.use_instead
    )
}

/// The keys of `config` that the operator owns, each with the message of [`owned_key_message`].
/// The reconcilers call this too, so objects stored before a CRD upgrade get the same answer.
pub fn owned_keys_in<'a>(
    config: &StormConfig,
    owned: &'a [OwnedKey],
) -> Vec<(&'a OwnedKey, String)> {
    owned
        .iter()
        .filter(|o| config.contains_key(o.key))
        .map(|o| (o, owned_key_message(o)))
        .collect()
}

fn config_schema(owned: &[OwnedKey]) -> Schema {
    let rules: Vec<Value> = owned
        .iter()
        .map(|o| {
            json!({
                "rule": format!("!('{}' in self)", o.key),
                "message": owned_key_message(o),
                "reason": "FieldValueForbidden",
            })
        })
        .collect();
    json_schema!({
        "type": "object",
        "maxProperties": MAX_CONFIG_ENTRIES,
        // A map of any YAML values: keys stay visible to CEL, values are kept as written.
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true },
        "x-kubernetes-validations": rules,
    })
}

/// Schema of `StormCluster.spec.config`.
pub fn cluster_config_schema(_: &mut SchemaGenerator) -> Schema {
    config_schema(CLUSTER_OWNED_KEYS)
}

/// Schema of `StormTopology.spec.config`.
pub fn topology_config_schema(_: &mut SchemaGenerator) -> Schema {
    config_schema(TOPOLOGY_OWNED_KEYS)
}

/// Schema of a list of 1 to 16 host names (or `host:port`), each checked by a CEL rule with
/// `pattern` and `message`. Item lengths are bounded so that the apiserver's CEL cost estimate stays
/// small.
pub fn host_list_schema(pattern: &str, message: &str) -> Schema {
    json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 16,
        "items": { "type": "string", "minLength": 1, "maxLength": 260 },
        "x-kubernetes-validations": [{
            "rule": format!("self.all(s, s.matches('{pattern}'))"),
            "message": message,
        }],
    })
}

/// Schema of a `conditions` list: `metav1.Condition` items in a list-map keyed by `type`, so that
/// server-side apply merges conditions by type.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "type": "array",
        "description": "Standard conditions (metav1.Condition), one per type, each with the \
                        generation it was computed for.",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

/// Standard condition statuses.
pub mod condition_status {
    /// The condition holds.
    pub const TRUE: &str = "True";
    /// The condition does not hold.
    pub const FALSE: &str = "False";
    /// The operator cannot tell.
    pub const UNKNOWN: &str = "Unknown";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_keys_in_names_each_owned_key_with_its_replacement() {
        let mut config = StormConfig::new();
        config.insert("nimbus.seeds".into(), json!(["a"]));
        config.insert("topology.message.timeout.secs".into(), json!(30));
        let found = owned_keys_in(&config, CLUSTER_OWNED_KEYS);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.key, "nimbus.seeds");
        assert!(
            found[0].1.contains("spec.external.nimbusSeeds"),
            "{}",
            found[0].1
        );
    }

    #[test]
    fn owned_key_lists_have_no_duplicates() {
        for list in [CLUSTER_OWNED_KEYS, TOPOLOGY_OWNED_KEYS] {
            let mut keys: Vec<_> = list.iter().map(|o| o.key).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), list.len());
        }
    }
}
