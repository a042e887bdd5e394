//! No Secret value is ever printed or logged: every path to output goes through here.

use serde_json::Value;

/// What a Secret value is replaced with.
pub const REDACTED: &str = "<redacted>";
/// kubectl's client-side-apply annotation carries a full copy of the object, values included.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub fn is_secret(obj: &Value) -> bool {
    obj["kind"] == "Secret" && obj["apiVersion"] == "v1"
}

/// Replaces every `data`/`stringData` value of a Secret (or of each Secret in a `List`) with
/// [`REDACTED`], keeping the keys so a diff still says which key changed.
pub fn redact_secret(obj: &mut Value) {
    if obj["kind"] == "List" {
        if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
            items.iter_mut().for_each(redact_secret);
        }
        return;
    }
    if !is_secret(obj) {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(map) = obj.get_mut(field).and_then(Value::as_object_mut) {
            for v in map.values_mut() {
                *v = Value::String(REDACTED.to_string());
            }
        }
    }
    if let Some(ann) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        && let Some(v) = ann.get_mut(LAST_APPLIED_ANNOTATION)
    {
        *v = Value::String(REDACTED.to_string());
    }
}

/// Whether the field at `pointer` of a Secret holds a value (or a map of values) to redact.
pub fn is_secret_value(obj: &Value, pointer: &str) -> bool {
    is_secret(obj)
        && [
            "/data",
            "/stringData",
            "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
        ]
        .iter()
        .any(|p| pointer == *p || pointer.starts_with(&format!("{p}/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_are_replaced_keys_kept() {
        let mut s = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "annotations": {LAST_APPLIED_ANNOTATION: "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"token": "hunter2"}
        });
        redact_secret(&mut s);
        let text = s.to_string();
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(s["data"]["password"], REDACTED);
        assert_eq!(s["stringData"]["token"], REDACTED);
    }

    #[test]
    fn other_kinds_are_untouched_and_lists_are_walked() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
        let mut list = json!({"apiVersion": "v1", "kind": "List", "items": [
            cm.clone(),
            {"apiVersion": "v1", "kind": "Secret", "data": {"k": "c2VjcmV0"}}
        ]});
        redact_secret(&mut list);
        assert_eq!(list["items"][0], cm);
        assert_eq!(list["items"][1]["data"]["k"], REDACTED);
    }

    #[test]
    fn secret_value_paths() {
        let s = json!({"apiVersion": "v1", "kind": "Secret"});
        assert!(is_secret_value(&s, "/data/password"));
        assert!(is_secret_value(&s, "/stringData"));
        assert!(!is_secret_value(&s, "/metadata/labels/app"));
        assert!(!is_secret_value(
            &json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            "/data/a"
        ));
    }
}
