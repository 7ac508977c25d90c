//! Labels, names and owner references shared by every child object the operator creates.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

/// `app.kubernetes.io/name` of every child.
pub const APP_NAME: &str = "storm";
/// `app.kubernetes.io/managed-by` of every child; also the field manager.
pub const MANAGED_BY: &str = crate::crd::FIELD_MANAGER;
/// Label with the name of the StormCluster a child belongs to.
pub const CLUSTER_LABEL: &str = "storm.apache.org/cluster";
/// Label with the name of the StormTopology a child belongs to.
pub const TOPOLOGY_LABEL: &str = "storm.apache.org/topology";
/// Label with the name of the StormWorkerPool a child belongs to.
pub const POOL_LABEL: &str = "storm.apache.org/worker-pool";
/// Pod-template annotation with the hash of the rendered configuration: a change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "storm.apache.org/config-hash";

/// The role of a child's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// Nimbus daemons.
    Nimbus,
    /// Supervisors of the shared pool.
    Supervisor,
    /// The Storm UI.
    Ui,
    /// Supervisors of a dedicated worker pool.
    WorkerPool,
    /// A topology submit Job.
    Submitter,
    /// Objects of the whole cluster (the storm.yaml ConfigMap).
    Config,
}

impl Component {
    /// The `app.kubernetes.io/component` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Nimbus => "nimbus",
            Component::Supervisor => "supervisor",
            Component::Ui => "ui",
            Component::WorkerPool => "worker-pool",
            Component::Submitter => "submitter",
            Component::Config => "config",
        }
    }
}

/// Labels that select the pods of one component of one instance. They never change after
/// creation (Deployment and StatefulSet selectors are immutable).
pub fn selector_labels(instance: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            instance.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.as_str().to_string(),
        ),
    ])
}

/// All labels of a child: the selector labels, `managed-by`, `part-of` and the owning cluster.
pub fn labels(instance: &str, cluster: &str, component: Component) -> BTreeMap<String, String> {
    let mut labels = selector_labels(instance, component);
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    labels.insert("app.kubernetes.io/part-of".into(), "storm".into());
    labels.insert(CLUSTER_LABEL.into(), cluster.into());
    labels
}

/// A selector matching `labels` exactly.
pub fn label_selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        match_expressions: None,
    }
}

/// The selector string form (`a=b,c=d`) used by `/scale` and label-selector queries.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Metadata of a child of `owner`: name, the owner's namespace, labels and a controller owner
/// reference so that Kubernetes garbage-collects it with the owner.
pub fn child_meta<K>(owner: &K, name: String, labels: BTreeMap<String, String>) -> ObjectMeta
where
    K: Resource<DynamicType = ()>,
{
    ObjectMeta {
        name: Some(name),
        namespace: owner.namespace(),
        labels: Some(labels),
        owner_references: owner_reference(owner).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The controller owner reference to `owner`, when it has a uid (objects read from the API do).
pub fn owner_reference<K>(owner: &K) -> Option<OwnerReference>
where
    K: Resource<DynamicType = ()>,
{
    owner.controller_owner_ref(&())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_string_is_sorted_and_comma_joined() {
        let labels = selector_labels("wc", Component::WorkerPool);
        assert_eq!(
            selector_string(&labels),
            "app.kubernetes.io/component=worker-pool,app.kubernetes.io/instance=wc,app.kubernetes.io/name=storm"
        );
    }

    #[test]
    fn labels_extend_the_selector() {
        let all = labels("s", "s", Component::Nimbus);
        for (k, v) in selector_labels("s", Component::Nimbus) {
            assert_eq!(all.get(&k), Some(&v));
        }
        assert_eq!(all.get(CLUSTER_LABEL).map(String::as_str), Some("s"));
        assert_eq!(
            all.get("app.kubernetes.io/managed-by").map(String::as_str),
            Some("storm-controller")
        );
    }
}
