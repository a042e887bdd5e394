//! Secret values never reach the terminal or a log. Anything the plugin or the agent prints
//! that may contain a Secret (rendered and live objects, diffs, drift, status) goes through here.
//!
//! A value becomes `*** (N bytes)`: enough to see that a key exists and roughly how big it
//! is, nothing that helps guess it. For diffs, [`redact_pair`] additionally marks values
//! that changed, so a rotated password still shows up as a difference.

use base64::Engine;
use serde_json::{Map, Value};

/// Secret fields whose values are never printed.
const SECRET_VALUE_FIELDS: [&str; 2] = ["data", "stringData"];
/// `kubectl apply` copies the whole object, Secret values included, into this annotation.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Prefix of the marker that replaces a Secret value in a whole object.
pub const REDACTED_MARKER: &str = "***";
/// What one drifted Secret field shows instead of its value: a field-level report has no
/// room for sizes, and both sides of a drift must read the same.
pub const REDACTED: &str = "<redacted>";

/// Redacts one object in place; objects that are not Secrets are left alone. `List`s are
/// redacted item by item.
pub fn redact(object: &mut Value) {
    if let Some(items) = list_items(object) {
        items.iter_mut().for_each(redact);
        return;
    }
    if !is_secret(object) {
        return;
    }
    for field in SECRET_VALUE_FIELDS {
        if let Some(Value::Object(values)) = object.get_mut(field) {
            for (_, value) in values.iter_mut() {
                *value = Value::String(marker(byte_len(field, value), None));
            }
        }
    }
    redact_last_applied(object);
}

/// Redacts the two sides of a diff of the same Secret. Values equal on both sides get the
/// same marker; values that differ get `before`/`after` markers so the diff still shows them.
pub fn redact_pair(before: &mut Value, after: &mut Value) {
    if !is_secret(before) && !is_secret(after) {
        return;
    }
    for field in SECRET_VALUE_FIELDS {
        let original_before = before
            .get(field)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let original_after = after
            .get(field)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        redact_side(before, field, &original_after, "before");
        redact_side(after, field, &original_before, "after");
    }
    redact_last_applied(before);
    redact_last_applied(after);
}

fn redact_side(object: &mut Value, field: &str, other: &Map<String, Value>, side: &str) {
    let Some(Value::Object(values)) = object.get_mut(field) else {
        return;
    };
    for (key, value) in values.iter_mut() {
        let changed = other.get(key).is_some_and(|o| o != value);
        *value = Value::String(marker(byte_len(field, value), changed.then_some(side)));
    }
}

/// The annotation holds a JSON copy of the object, values and all.
fn redact_last_applied(object: &mut Value) {
    let Some(annotation) = object.pointer_mut(&format!(
        "/metadata/annotations/{}",
        LAST_APPLIED_ANNOTATION
            .replace('~', "~0")
            .replace('/', "~1")
    )) else {
        return;
    };
    let redacted = match annotation.as_str().map(serde_json::from_str::<Value>) {
        Some(Ok(mut applied)) => {
            redact(&mut applied);
            applied.to_string()
        }
        // Unparsable: it may still contain the secret verbatim, so drop it entirely.
        _ => marker(annotation.as_str().map_or(0, str::len), None),
    };
    *annotation = Value::String(redacted);
}

fn marker(len: usize, side: Option<&str>) -> String {
    let unit = if len == 1 { "byte" } else { "bytes" };
    match side {
        Some(side) => format!("{REDACTED_MARKER} ({len} {unit}, {side})"),
        None => format!("{REDACTED_MARKER} ({len} {unit})"),
    }
}

/// `data` is base64: report the decoded size, which is what the user put in.
fn byte_len(field: &str, value: &Value) -> usize {
    let text = match value {
        Value::String(s) => s.as_str(),
        Value::Null => return 0,
        other => return other.to_string().len(),
    };
    if field == "data"
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(text.trim())
    {
        return decoded.len();
    }
    text.len()
}

/// A core/v1 Secret (a missing `apiVersion` counts: redacting too much is the safe side).
pub fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(|v| v == "v1")
}

/// Whether the field at `pointer` of a Secret holds a value (or a map of values) to redact.
pub fn is_secret_value(object: &Value, pointer: &str) -> bool {
    is_secret(object)
        && [
            "/data",
            "/stringData",
            "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
        ]
        .iter()
        .any(|p| pointer == *p || pointer.starts_with(&format!("{p}/")))
}

fn list_items(object: &mut Value) -> Option<&mut Vec<Value>> {
    let is_list = object
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    if !is_list {
        return None;
    }
    object.get_mut("items").and_then(Value::as_array_mut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(data: Value, string_data: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "type": "Opaque",
            "data": data,
            "stringData": string_data,
        })
    }

    #[test]
    fn replaces_data_and_string_data_with_sizes() {
        // "hunter2" is 7 bytes; its base64 is 12 characters.
        let mut s = secret(
            json!({"password": "aHVudGVyMg=="}),
            json!({"user": "admin"}),
        );
        redact(&mut s);
        assert_eq!(s["data"]["password"], "*** (7 bytes)");
        assert_eq!(s["stringData"]["user"], "*** (5 bytes)");
        assert_eq!(s["metadata"]["name"], "db");
        assert_eq!(s["type"], "Opaque");
        assert!(!s.to_string().contains("aHVudGVyMg"));
    }

    #[test]
    fn invalid_base64_counts_raw_length() {
        let mut s = secret(json!({"k": "not base64!"}), json!({}));
        redact(&mut s);
        assert_eq!(s["data"]["k"], "*** (11 bytes)");
    }

    #[test]
    fn other_kinds_are_untouched() {
        let original = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "visible"}});
        let mut cm = original.clone();
        redact(&mut cm);
        assert_eq!(cm, original);
        // A CRD that happens to be called Secret in another group is not a core Secret.
        let original =
            json!({"apiVersion": "example.com/v1", "kind": "Secret", "data": {"k": "v"}});
        let mut crd = original.clone();
        redact(&mut crd);
        assert_eq!(crd, original);
    }

    #[test]
    fn lists_are_redacted_item_by_item() {
        let mut list = json!({"apiVersion": "v1", "kind": "List", "items": [
            secret(json!({"a": "YWJj"}), json!(null)),
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "abc"}},
        ]});
        redact(&mut list);
        assert_eq!(list["items"][0]["data"]["a"], "*** (3 bytes)");
        assert_eq!(list["items"][1]["data"]["a"], "abc");
    }

    #[test]
    fn last_applied_annotation_is_redacted_too() {
        let mut s = secret(json!({"password": "aHVudGVyMg=="}), json!(null));
        let applied = s.to_string();
        s["metadata"]["annotations"] = json!({ LAST_APPLIED_ANNOTATION: applied });
        redact(&mut s);
        let annotation = s["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
            .as_str()
            .unwrap();
        assert!(!annotation.contains("aHVudGVyMg"), "{annotation}");
        assert!(annotation.contains("*** (7 bytes)"), "{annotation}");
    }

    #[test]
    fn unparsable_last_applied_is_replaced_whole() {
        let mut s = secret(json!({}), json!(null));
        s["metadata"]["annotations"] = json!({ LAST_APPLIED_ANNOTATION: "{broken hunter2" });
        redact(&mut s);
        assert_eq!(
            s["metadata"]["annotations"][LAST_APPLIED_ANNOTATION],
            "*** (15 bytes)"
        );
    }

    #[test]
    fn pairs_mark_changed_values_and_keep_equal_ones_equal() {
        let mut live = secret(json!({"same": "YQ==", "rotated": "b2xk"}), json!(null));
        let mut git = secret(
            json!({"same": "YQ==", "rotated": "bmV3ZXI=", "added": "eA=="}),
            json!(null),
        );
        redact_pair(&mut live, &mut git);
        assert_eq!(live["data"]["same"], git["data"]["same"]);
        assert_eq!(live["data"]["rotated"], "*** (3 bytes, before)");
        assert_eq!(git["data"]["rotated"], "*** (5 bytes, after)");
        assert_eq!(git["data"]["added"], "*** (1 byte)");
        assert!(!live.to_string().contains("b2xk") && !git.to_string().contains("bmV3ZXI"));
    }

    #[test]
    fn pairs_redact_when_only_one_side_is_a_secret() {
        let mut missing = Value::Null;
        let mut git = secret(json!({"k": "YQ=="}), json!(null));
        redact_pair(&mut missing, &mut git);
        assert_eq!(git["data"]["k"], "*** (1 byte)");
    }

    #[test]
    fn secret_value_paths() {
        let s = json!({"apiVersion": "v1", "kind": "Secret"});
        assert!(is_secret_value(&s, "/data/password"));
        assert!(is_secret_value(&s, "/stringData"));
        assert!(is_secret_value(
            &s,
            "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"
        ));
        assert!(!is_secret_value(&s, "/metadata/labels/app"));
        assert!(!is_secret_value(&s, "/database"));
        assert!(!is_secret_value(
            &json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            "/data/a"
        ));
    }
}
