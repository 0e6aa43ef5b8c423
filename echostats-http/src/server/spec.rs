//! The OpenAPI document as served, and what the router learns from it.
//!
//! poem-openapi documents an `Option<T>` field as optional but not nullable, while our
//! responses (like EchoStats') write `null` for an unknown value. The served spec marks
//! every optional property `nullable: true`, so that clients generated from it, and
//! schema checkers, accept what the server sends.
//!
//! The path table of the spec also gives the `Allow` header of a 405 answer (RFC 9110
//! requires it), without a second list of routes to keep in step.

use serde_json::{Map, Value};
use std::sync::OnceLock;

/// The served spec (generated once).
pub fn served() -> &'static str {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut spec: Value =
            serde_json::from_str(&crate::app::generated_spec()).expect("poem-openapi writes valid JSON");
        mark_optionals_nullable(&mut spec);
        serde_json::to_string_pretty(&spec).expect("a JSON value serializes")
    })
}

/// Adds `nullable: true` to every property not listed in its object's `required`.
fn mark_optionals_nullable(spec: &mut Value) {
    match spec {
        Value::Object(map) => {
            let required: Vec<String> = match map.get("required") {
                Some(Value::Array(r)) => r.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            };
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                for (name, schema) in props.iter_mut() {
                    if !required.contains(name) {
                        make_nullable(schema);
                    }
                }
            }
            for value in map.values_mut() {
                mark_optionals_nullable(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mark_optionals_nullable),
        _ => {}
    }
}

fn make_nullable(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if map.contains_key("$ref") {
        // OpenAPI 3.0 ignores siblings of `$ref`: wrap it.
        let reference = std::mem::take(map);
        let mut wrapped = Map::new();
        wrapped.insert("allOf".into(), Value::Array(vec![Value::Object(reference)]));
        wrapped.insert("nullable".into(), Value::Bool(true));
        *map = wrapped;
    } else {
        map.insert("nullable".into(), Value::Bool(true));
    }
}

/// The methods the spec documents for `path` (upper case, comma-separated, `OPTIONS`
/// included when any), or `None` when no documented path matches.
pub fn allowed_methods(path: &str) -> Option<String> {
    static TABLE: OnceLock<Vec<(Vec<String>, String)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let spec: Value = serde_json::from_str(served()).expect("served spec is JSON");
        let Some(Value::Object(paths)) = spec.get("paths") else { return Vec::new() };
        paths
            .iter()
            .map(|(template, ops)| {
                let segments = template.split('/').map(str::to_string).collect();
                let mut methods: Vec<String> =
                    ops.as_object().map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect()).unwrap_or_default();
                methods.push("OPTIONS".into());
                (segments, methods.join(", "))
            })
            .collect()
    });
    let wanted: Vec<&str> = path.split('/').collect();
    table
        .iter()
        .find(|(segments, _)| {
            segments.len() == wanted.len()
                && segments.iter().zip(&wanted).all(|(s, w)| s == w || (s.starts_with('{') && !w.is_empty()))
        })
        .map(|(_, methods)| methods.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn optional_properties_become_nullable() {
        let mut spec = json!({"components": {"schemas": {"A": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "features": {"$ref": "#/components/schemas/F"}
            }
        }}}});
        mark_optionals_nullable(&mut spec);
        let props = &spec["components"]["schemas"]["A"]["properties"];
        assert_eq!(props["id"], json!({"type": "string"}));
        assert_eq!(props["name"], json!({"type": "string", "nullable": true}));
        assert_eq!(props["features"], json!({"allOf": [{"$ref": "#/components/schemas/F"}], "nullable": true}));
    }

    #[test]
    fn allow_lists_documented_methods() {
        assert_eq!(allowed_methods("/api/health").as_deref(), Some("GET, OPTIONS"));
        assert!(allowed_methods("/api/v1/tracks/abc").is_some_and(|m| m.contains("GET")));
        assert_eq!(allowed_methods("/nowhere"), None);
    }
}
