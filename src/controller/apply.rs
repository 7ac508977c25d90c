//! Writing children: server-side apply with one field manager, skipped when the live object
//! already says everything the desired one says, so a steady-state reconcile writes nothing.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::FIELD_MANAGER;

/// Whether every field of `desired` is present with the same value in `live`. Fields that
/// only `live` has (defaults, status, fields of other managers) do not matter. Lists must have
/// the same length and match item by item.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().all(|(key, value)| match have.get(key) {
                Some(live_value) => is_subset(value, live_value),
                None => value.is_null(),
            })
        }
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => desired == live,
    }
}

/// Annotation with a hash of everything the operator last applied to an object. A field the
/// operator stops setting is invisible to [`is_subset`] (the live object still has it); the hash
/// changes, so the apply goes out and server-side apply removes the field.
pub const APPLIED_HASH_ANNOTATION: &str = "storm.apache.org/applied-hash";

/// JSON with object keys sorted at every level, whatever map type serde_json uses.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let sorted: std::collections::BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            let entries: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect();
            format!("{{{}}}", entries.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// `desired` as JSON with [`APPLIED_HASH_ANNOTATION`] set to the hash of the rest of it.
pub fn stamped<K: Serialize>(desired: &K) -> Value {
    let mut value = serde_json::to_value(desired).unwrap_or(Value::Null);
    if let Some(annotations) = value
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(APPLIED_HASH_ANNOTATION);
    }
    let hash = crate::controller::cluster::build::short_hash(&canonical_json(&value));
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !annotations.is_object() {
            *annotations = Value::Object(serde_json::Map::new());
        }
        if let Some(map) = annotations.as_object_mut() {
            map.insert(APPLIED_HASH_ANNOTATION.into(), Value::String(hash));
        }
    }
    value
}

/// Whether applying `desired` over `live` would change anything we own: a field of ours that
/// differs, or a change in what we apply (the hash annotation). Metadata that the API server
/// manages (uid, resourceVersion, timestamps, managedFields) is not compared.
pub fn needs_apply<K: Serialize>(desired: &K, live: Option<&K>) -> bool {
    let Some(live) = live else {
        return true;
    };
    let desired = stamped(desired);
    let live = serde_json::to_value(live).unwrap_or(Value::Null);
    !is_subset(&desired, &live)
}

/// What [`apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The object was written.
    Written,
    /// The live object already matched; nothing was sent.
    Unchanged,
}

/// Server-side applies `desired` (namespaced) with the operator's field manager, forcing
/// ownership of the fields it sets, unless `live` already matches it.
pub async fn apply<K>(
    client: &Client,
    desired: &K,
    live: Option<&K>,
) -> Result<Applied, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    if !needs_apply(desired, live) {
        return Ok(Applied::Unchanged);
    }
    let ns = desired.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(
        &desired.name_any(),
        &params,
        &Patch::Apply(stamped(desired)),
    )
    .await?;
    Ok(Applied::Written)
}

/// Reads the live object, `None` when it does not exist.
pub async fn get_opt<K>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
}

/// Deletes the objects of kind `K` in `namespace` that match `selector`, are controlled by the
/// owner with `owner_uid`, and are not named in `keep`: the children a spec no longer wants.
/// Returns the names it deleted.
pub async fn delete_orphans<K>(
    client: &Client,
    namespace: &str,
    selector: &str,
    owner_uid: &str,
    keep: &[String],
) -> Result<Vec<String>, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut deleted = Vec::new();
    for object in api.list(&ListParams::default().labels(selector)).await? {
        let owned = object
            .owner_references()
            .iter()
            .any(|o| o.uid == owner_uid && o.controller == Some(true));
        let name = object.name_any();
        if owned && !keep.contains(&name) && object.meta().deletion_timestamp.is_none() {
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(name),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_extra_fields_on_the_live_object_do_not_matter() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let live = json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10, "template": {"spec": {"containers": [{"name": "a", "image": "x", "terminationMessagePath": "/dev/termination-log"}], "dnsPolicy": "ClusterFirst"}}}, "status": {"replicas": 2}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn a_changed_or_missing_field_or_list_length_matters() {
        let desired = json!({"spec": {"replicas": 3, "ports": [1, 2]}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": [1, 2]}})
        ));
        assert!(!is_subset(&desired, &json!({"spec": {"ports": [1, 2]}})));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": [1]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": [1, 2, 3]}})
        ));
        assert!(
            is_subset(&json!({"a": 1}), &json!({"a": 1.0})),
            "numbers compare by value"
        );
        assert!(
            is_subset(&json!({"a": null}), &json!({})),
            "an unset optional field is absent"
        );
    }

    #[test]
    fn needs_apply_when_absent_or_different() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("c".into());
        cm.data = Some([("k".to_string(), "v".to_string())].into());
        assert!(needs_apply(&cm, None));
        // What the API server stores after the apply: the stamped object plus its own fields.
        let mut live: ConfigMap = serde_json::from_value(stamped(&cm)).unwrap();
        live.metadata.resource_version = Some("7".into());
        live.metadata.uid = Some("u".into());
        assert!(!needs_apply(&cm, Some(&live)));
        live.data = Some([("k".to_string(), "other".to_string())].into());
        assert!(needs_apply(&cm, Some(&live)));
    }

    #[test]
    fn a_field_we_stop_setting_is_applied_away() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("c".into());
        cm.data = Some(
            [
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
            ]
            .into(),
        );
        let live: ConfigMap = serde_json::from_value(stamped(&cm)).unwrap();
        assert!(!needs_apply(&cm, Some(&live)));
        cm.data = Some([("a".to_string(), "1".to_string())].into());
        assert!(
            needs_apply(&cm, Some(&live)),
            "the live object still has b, yet the apply must go out to remove it"
        );
        assert_eq!(
            stamped(&cm)["metadata"]["annotations"][APPLIED_HASH_ANNOTATION],
            stamped(&cm.clone())["metadata"]["annotations"][APPLIED_HASH_ANNOTATION],
            "the hash is a function of the object"
        );
    }
}
