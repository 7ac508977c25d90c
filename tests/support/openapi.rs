//! A structural validator for the OpenAPI v3 schemas of CRDs: what kube-apiserver checks of a
//! custom resource before CEL runs (types, required fields, enums, bounds, patterns, and, with
//! strict field validation, unknown fields). Tests use it to check samples and built objects
//! against the generated CRDs without a cluster.

use serde_json::{Map, Value};

/// Validates `value` against `schema` and returns every violation as `path: message`.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    walk(schema, value, "", &mut errors);
    errors
}

/// Validates a whole custom resource against the openAPIV3Schema of the CRD's first version.
pub fn validate_object(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    object: &Value,
) -> Vec<String> {
    // The apiserver checks apiVersion, kind and metadata itself; the CRD schema leaves them out.
    let mut object = object.clone();
    if let Some(fields) = object.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            fields.remove(key);
        }
    }
    validate(&crd_schema(crd), &object)
}

/// The openAPIV3Schema of the CRD's first version, as JSON.
pub fn crd_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has a schema");
    serde_json::to_value(schema).expect("a schema serializes")
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn flag(schema: &Map<String, Value>, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn walk(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if value.is_null() {
        if !flag(schema, "nullable") {
            errors.push(format!("{path}: null is not allowed"));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!(
                "{path}: must be an integer or a string, got {value}"
            ));
        }
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!(
            "{path}: unsupported value {value}, must be one of {allowed:?}"
        ));
    }
    let preserve_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields");
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => object(schema, value, path, preserve_unknown, errors),
        Some("array") => array(schema, value, path, errors),
        Some("string") => string(schema, value, path, errors),
        Some("integer") => {
            if value.is_i64() || value.is_u64() {
                bounds(schema, value.as_f64().unwrap_or_default(), path, errors);
            } else {
                errors.push(format!("{path}: must be an integer, got {value}"));
            }
        }
        Some("number") => match value.as_f64() {
            Some(n) => bounds(schema, n, path, errors),
            None => errors.push(format!("{path}: must be a number, got {value}")),
        },
        Some("boolean") => {
            if !value.is_boolean() {
                errors.push(format!("{path}: must be a boolean, got {value}"));
            }
        }
        Some(other) => errors.push(format!("{path}: schema has an unknown type {other}")),
        None if preserve_unknown => {}
        None => errors.push(format!("{path}: schema has no type (not structural)")),
    }
}

fn object(
    schema: &Map<String, Value>,
    value: &Value,
    path: &str,
    preserve_unknown: bool,
    errors: &mut Vec<String>,
) {
    let Some(fields) = value.as_object() else {
        errors.push(format!("{path}: must be an object, got {value}"));
        return;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (key, field) in fields {
        let at = child(path, key);
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(field_schema), _) => walk(field_schema, field, &at, errors),
            (None, Some(Value::Bool(true))) => {}
            (None, Some(extra @ Value::Object(_))) => walk(extra, field, &at, errors),
            (None, _) if preserve_unknown => {}
            (None, _) => errors.push(format!("{at}: unknown field")),
        }
    }
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = required.as_str()
            && !fields.contains_key(name)
        {
            errors.push(format!("{}: required field is missing", child(path, name)));
        }
    }
    let count = fields.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        errors.push(format!("{path}: at most {max} entries, got {count}"));
    }
}

fn array(schema: &Map<String, Value>, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(items) = value.as_array() else {
        errors.push(format!("{path}: must be an array, got {value}"));
        return;
    };
    let count = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && count < min
    {
        errors.push(format!("{path}: at least {min} items, got {count}"));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && count > max
    {
        errors.push(format!("{path}: at most {max} items, got {count}"));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            walk(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
}

fn string(schema: &Map<String, Value>, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(text) = value.as_str() else {
        errors.push(format!("{path}: must be a string, got {value}"));
        return;
    };
    let len = text.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(format!("{path}: at least {min} characters, got {len}"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errors.push(format!("{path}: at most {max} characters, got {len}"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let re = regex::Regex::new(pattern).expect("schema patterns are valid regular expressions");
        if !re.is_match(text) {
            errors.push(format!("{path}: {text:?} does not match {pattern}"));
        }
    }
}

fn bounds(schema: &Map<String, Value>, n: f64, path: &str, errors: &mut Vec<String>) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        errors.push(format!("{path}: must be at least {min}, got {n}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        errors.push(format!("{path}: must be at most {max}, got {n}"));
    }
}
