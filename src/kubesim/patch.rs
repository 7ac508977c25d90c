//! The four patch types, applied to JSON values.
//!
//! Simplifications, documented for tests that rely on them: strategic merge patch and server-side
//! apply both use JSON merge-patch semantics (maps merge recursively, lists are replaced whole,
//! `null` deletes); `$patch` directives are not interpreted and apply never removes fields that a
//! manager stopped applying.

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
