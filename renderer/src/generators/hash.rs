//! kustomize's name hash (api/hasher): sha256 of a Go `encoding/json` encoding of selected
//! fields, first 10 hex digits, with 0,1,3,a,e swapped for letters so no suffix looks like a
//! number or contains a vowel-made word.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::GeneratorError;

/// The suffix kustomize appends (`name-<hash>`) to a generated ConfigMap or Secret, computed
/// from the object as it is at the end of the build (data, binaryData, type, stringData).
///
/// The name does not contribute: kustomize looks it up as a single field literally called
/// `metadata/name`, which never exists, so `"name"` is always `""` in the hashed JSON.
pub fn name_hash(obj: &Value) -> Result<String, GeneratorError> {
    let field = |p: &str| match obj.get(p) {
        None => Value::String(String::new()),
        Some(v @ (Value::Object(_) | Value::Array(_))) => v.clone(),
        Some(Value::Null) => Value::String("null".into()),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(v) => Value::String(v.to_string()),
    };
    let mut m = serde_json::Map::new();
    match obj.get("kind").and_then(Value::as_str) {
        Some("ConfigMap") => {
            m.insert("kind".into(), "ConfigMap".into());
            m.insert("name".into(), field("metadata/name"));
            m.insert("data".into(), field("data"));
            if obj.get("binaryData").is_some_and(Value::is_object) {
                m.insert("binaryData".into(), field("binaryData"));
            }
        }
        Some("Secret") => {
            m.insert("kind".into(), "Secret".into());
            m.insert("type".into(), field("type"));
            m.insert("name".into(), field("metadata/name"));
            m.insert("data".into(), field("data"));
            if obj.get("stringData").is_some_and(Value::is_object) {
                m.insert("stringData".into(), field("stringData"));
            }
        }
        other => {
            return Err(GeneratorError::Hash {
                what: other.unwrap_or("object without kind").to_string(),
                message: "only ConfigMaps and Secrets get a name hash".into(),
            });
        }
    }
    let mut json = String::new();
    go_json(&Value::Object(m), &mut json);
    Ok(encode_hash(&hex(&Sha256::digest(json.as_bytes()))))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The letter swap kustomize applies to the first 10 hex digits.
pub fn encode_hash(hex: &str) -> String {
    hex.chars()
        .take(10)
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// Go `json.Marshal` of decoded JSON: map keys sorted, HTML-safe string escapes.
fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(k, out);
                out.push(':');
                go_json(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(x, out);
            }
            out.push(']');
        }
        Value::String(s) => go_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

/// Go's `encoding/json` string escaping (Go >= 1.22: HTML-safe, `\b` and `\f` short forms), as
/// kustomize hashes generated objects and as `sops` writes JSON files.
pub(crate) fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
