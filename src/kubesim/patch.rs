//! The four patch types, applied to JSON values.
//!
//! Simplifications, documented for tests that rely on them: strategic merge patch uses JSON
//! merge-patch semantics (maps merge recursively, lists are replaced whole, `null` deletes) and
//! `$patch` directives are not interpreted. Server-side apply is a merge patch plus field pruning:
//! the manager's field set (`fieldsV1`: `f:<key>` for map keys, lists and scalars are leaves) is
//! remembered, and map keys it applied last time but not this time are removed first. Lists are
//! atomic, and fields are never shared between managers (no apply conflicts).

use serde_json::Value;

use super::error::ApiError;

/// A patch type, from the request's `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`, treated as a merge patch.
    Strategic,
    /// `application/json-patch+json` (RFC 6902, including `test`).
    Json,
    /// `application/apply-patch+yaml`: server-side apply, merge semantics, creates when absent.
    Apply,
}

impl PatchKind {
    /// Maps a `Content-Type` header value (parameters ignored) to a patch type.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Parses a request body as JSON, or as YAML for apply patches (kubectl sends YAML).
pub fn parse_body(kind: Option<PatchKind>, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) if kind == Some(PatchKind::Apply) => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
            serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("body is neither JSON ({json_err}) nor YAML ({e})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "body is not valid JSON: {e}"
        ))),
    }
}

/// Applies a parsed patch to `target`, returning the patched copy.
pub fn apply(kind: PatchKind, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut out = target.clone();
    match kind {
        PatchKind::Merge | PatchKind::Strategic | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut out, patch);
        }
        PatchKind::Json => {
            let ops = patch
                .as_array()
                .ok_or_else(|| ApiError::bad_request("a JSON patch must be an array"))?;
            for op in ops {
                // Like the apiserver (evanphx/json-patch), `test` for null passes on a missing
                // path: kube-runtime's finalizer() tests `/metadata/finalizers` against null.
                let path = op.get("path").and_then(Value::as_str).unwrap_or("");
                if op.get("op").and_then(Value::as_str) == Some("test")
                    && op.get("value").is_some_and(Value::is_null)
                    && out.pointer(path).is_none()
                {
                    continue;
                }
                let one: json_patch::Patch = serde_json::from_value(Value::Array(vec![op.clone()]))
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(&mut out, &one)
                    .map_err(|e| ApiError::invalid(format!("the JSON patch failed: {e}")))?;
            }
        }
    }
    Ok(out)
}

/// Metadata fields an applied configuration can own; the rest are the server's.
const OWNABLE_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The field set (`fieldsV1`) of an applied configuration: `.status` only for the status
/// subresource, everything but `.status` otherwise; `apiVersion`, `kind` and server-owned
/// metadata are never owned.
pub fn applied_fields(config: &Value, status: bool) -> Value {
    let mut owned = serde_json::Map::new();
    if let Some(m) = config.as_object() {
        for (k, v) in m {
            let keep = match k.as_str() {
                "apiVersion" | "kind" => false,
                "status" => status,
                _ => !status,
            };
            if !keep {
                continue;
            }
            if k == "metadata" {
                let meta: serde_json::Map<String, Value> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(mk, _)| OWNABLE_METADATA.contains(&mk.as_str()))
                    .map(|(mk, mv)| (mk.clone(), mv.clone()))
                    .collect();
                if !meta.is_empty() {
                    owned.insert(k.clone(), Value::Object(meta));
                }
            } else {
                owned.insert(k.clone(), v.clone());
            }
        }
    }
    field_set(&Value::Object(owned))
}

fn field_set(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (format!("f:{k}"), field_set(v)))
                .collect(),
        ),
        _ => Value::Object(serde_json::Map::new()),
    }
}

/// Removes from `target` the fields of `old` (a field set) that `new` no longer has: leaves go,
/// maps keep the keys the manager never owned.
pub fn prune(target: &mut Value, old: &Value, new: &Value) {
    let (Some(t), Some(o)) = (target.as_object_mut(), old.as_object()) else {
        return;
    };
    for (fk, old_sub) in o {
        let Some(k) = fk.strip_prefix("f:") else {
            continue;
        };
        let container = old_sub.as_object().is_some_and(|m| !m.is_empty());
        match new.get(fk) {
            // A map the manager no longer applies loses only the keys it owned, and goes
            // with them when nothing else is left in it (as a real apiserver removes a field
            // nobody owns any more).
            None if container => {
                if let Some(t_sub) = t.get_mut(k) {
                    prune(t_sub, old_sub, &Value::Object(serde_json::Map::new()));
                    if t_sub.as_object().is_some_and(serde_json::Map::is_empty) {
                        t.remove(k);
                    }
                }
            }
            None => {
                t.remove(k);
            }
            Some(new_sub) => {
                if let Some(t_sub) = t.get_mut(k) {
                    prune(t_sub, old_sub, new_sub);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_map_left_empty_by_pruning_goes_with_its_keys() {
        let applied = json!({"spec": {"autoscaling": {"min": 1, "max": 4}, "replicas": 2}});
        let mut live = json!({"spec": {"autoscaling": {"min": 1, "max": 4}, "replicas": 3}});
        let old = field_set(&applied);
        prune(
            &mut live,
            &old,
            &field_set(&json!({"spec": {"replicas": 2}})),
        );
        assert_eq!(live, json!({"spec": {"replicas": 3}}));
        // A map that still holds keys of another manager stays.
        let mut live = json!({"spec": {"autoscaling": {"min": 1, "max": 4, "other": true}}});
        prune(
            &mut live,
            &old,
            &field_set(&json!({"spec": {"replicas": 2}})),
        );
        assert_eq!(live, json!({"spec": {"autoscaling": {"other": true}}}));
    }

    #[test]
    fn apply_prunes_what_the_manager_stopped_applying() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"a": "1", "b": "2"}, "status": {"s": 1}});
        let fields = applied_fields(&first, false);
        assert_eq!(
            fields,
            json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:data": {"f:a": {}, "f:b": {}}})
        );
        let second = json!({"metadata": {"name": "a"}, "data": {"a": "1"}});
        let mut stored = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "other": "y"}}, "data": {"a": "1", "b": "2", "c": "mine"}});
        prune(&mut stored, &fields, &applied_fields(&second, false));
        assert_eq!(
            stored,
            json!({"metadata": {"name": "a", "uid": "u", "labels": {"other": "y"}}, "data": {"a": "1", "c": "mine"}})
        );
        assert_eq!(
            applied_fields(&first, true),
            json!({"f:status": {"f:s": {}}})
        );
    }

    #[test]
    fn merge_json_and_yaml() {
        let base = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        let merged = apply(
            PatchKind::Merge,
            &base,
            &json!({"a": {"c": [3]}, "d": null}),
        )
        .expect("merge");
        assert_eq!(merged, json!({"a": {"b": 1, "c": [3]}}));
        let test_fails = json!([{"op": "test", "path": "/d", "value": 2}]);
        assert_eq!(
            apply(PatchKind::Json, &base, &test_fails).map_err(|e| e.code),
            Err(422)
        );
        let yaml = parse_body(Some(PatchKind::Apply), b"a:\n  b: 2\n").expect("yaml");
        assert_eq!(yaml, json!({"a": {"b": 2}}));
        assert!(parse_body(None, b"a: 1").is_err());
        let add_first = json!([
            {"op": "test", "path": "/f", "value": null},
            {"op": "add", "path": "/f", "value": ["x"]},
        ]);
        assert_eq!(
            apply(PatchKind::Json, &base, &add_first).expect("null test")["f"],
            json!(["x"])
        );
    }
}
