//! Pure text and JSON edits for `backfill`: change one value on the line where Git sets it,
//! build a strategic-merge patch for fields no overlay patch sets, and list that patch in a
//! kustomization. No I/O, so each rule is unit tested.

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{file}:{line}: no such line")]
    NoLine { file: String, line: u32 },
    #[error("{file}:{line}: expected `{key}: <value>` on this line, found {found:?}")]
    NotAScalarLine {
        file: String,
        line: u32,
        key: String,
        found: String,
    },
    #[error("{value} is not a scalar; only scalar values are edited in place")]
    NotScalar { value: String },
}

/// A scalar as YAML writes it, quoted when a plain scalar would be read back differently.
pub fn scalar_yaml(value: &Value) -> Result<String, EditError> {
    match value {
        Value::Object(_) | Value::Array(_) => Err(EditError::NotScalar {
            value: value.to_string(),
        }),
        _ => Ok(renderer::yaml::to_yaml(value).trim_end().to_string()),
    }
}

/// Replaces the value of `key` on 1-based `line` of `text`, keeping indentation, a `- `
/// list marker and a trailing comment, so the diff is one line.
pub fn edit_line_value(
    file: &str,
    text: &str,
    line: u32,
    key: &str,
    value: &Value,
) -> Result<String, EditError> {
    let new_value = scalar_yaml(value)?;
    let index = (line as usize)
        .checked_sub(1)
        .ok_or_else(|| EditError::NoLine {
            file: file.to_string(),
            line,
        })?;
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let original = *lines.get(index).ok_or_else(|| EditError::NoLine {
        file: file.to_string(),
        line,
    })?;
    let not_scalar = || EditError::NotAScalarLine {
        file: file.to_string(),
        line,
        key: key.to_string(),
        found: original.trim_end().to_string(),
    };
    let body = original.trim_end_matches(['\n', '\r']);
    let ending = &original[body.len()..];
    let indent_len = body.len() - body.trim_start_matches([' ', '-']).len();
    let (indent, rest) = body.split_at(indent_len);
    let after_key = rest
        .strip_prefix(key)
        .and_then(|r| r.strip_prefix(':'))
        .filter(|r| r.is_empty() || r.starts_with(' '))
        .ok_or_else(not_scalar)?;
    let old = after_key.trim_start();
    if old.is_empty() || old.starts_with(['|', '>', '&', '*', '[', '{']) {
        return Err(not_scalar());
    }
    let comment = comment_of(old).unwrap_or("");
    let edited = format!(
        "{indent}{key}: {new_value}{}{ending}",
        if comment.is_empty() {
            String::new()
        } else {
            format!(" {comment}")
        }
    );
    lines[index] = &edited;
    Ok(lines.concat())
}

/// The `# …` comment after a plain or quoted scalar, if any.
fn comment_of(scalar: &str) -> Option<&str> {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in scalar.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') if i == 0 => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev == ' ' => return Some(&scalar[i..]),
            _ => {}
        }
        prev = c;
    }
    None
}

/// An image reference split as kustomize's `images:` transformer reads it: the name, then an
/// optional `:tag` (a colon after the last `/`, so a registry port is not a tag), then an
/// optional `@digest`.
fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

/// The live tag, when `live` is `desired` with only another tag: what an `images:` entry's
/// `newTag` can say. `None` for a new name or a digest, which a `newTag` cannot express.
pub fn tag_only_change(desired: &str, live: &str) -> Option<String> {
    let (d_name, d_tag, d_digest) = split_image(desired);
    let (l_name, l_tag, l_digest) = split_image(live);
    (d_name == l_name
        && d_digest.is_none()
        && l_digest.is_none()
        && l_tag.is_some()
        && d_tag != l_tag)
        .then(|| l_tag.unwrap_or_default().to_string())
}

/// One field to bring into Git: where it is in the live object, and its live value.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    /// JSON pointer into the live object.
    pub pointer: String,
    pub value: Value,
}

/// A strategic-merge patch setting `leaves`, addressed like kustomize patches are: by
/// `apiVersion`, `kind` and `metadata.name`, list items of named objects by `name`. A list
/// without names cannot be merged, so it is copied whole from `live`.
pub fn patch_document(live: &Value, leaves: &[Leaf]) -> Value {
    let mut patch = json!({
        "apiVersion": live["apiVersion"],
        "kind": live["kind"],
        "metadata": {"name": live["metadata"]["name"]},
    });
    for leaf in leaves {
        let Some(segments) = renderer::drift::pointer::segments(&leaf.pointer) else {
            continue;
        };
        insert(&mut patch, live, &segments, &leaf.value);
    }
    patch
}

fn insert(patch: &mut Value, live: &Value, segments: &[String], value: &Value) {
    let Some((first, rest)) = segments.split_first() else {
        *patch = value.clone();
        return;
    };
    if let Value::Array(items) = live {
        let Ok(index) = first.parse::<usize>() else {
            return;
        };
        let Some(name) = items.get(index).and_then(|i| i["name"].as_str()) else {
            *patch = live.clone();
            return;
        };
        if !patch.is_array() {
            *patch = Value::Array(Vec::new());
        }
        let list = patch.as_array_mut().expect("made an array above");
        let pos = match list.iter().position(|i| i["name"] == name) {
            Some(p) => p,
            None => {
                list.push(json!({ "name": name }));
                list.len() - 1
            }
        };
        insert(&mut list[pos], &items[index], rest, value);
        return;
    }
    if !patch.is_object() {
        *patch = Value::Object(Map::new());
    }
    let slot = patch
        .as_object_mut()
        .expect("made an object above")
        .entry(first.clone())
        .or_insert(Value::Null);
    insert(slot, &live[first.as_str()], rest, value);
}

/// `kustomization.yaml` with `- path: FILE` added to its `patches:` list (created at the end
/// when absent). The rest of the file is left byte for byte.
pub fn add_patch_entry(kustomization: &str, file: &str) -> String {
    let entry = format!("- path: {file}\n");
    let lines: Vec<&str> = kustomization.split_inclusive('\n').collect();
    let Some(start) = lines
        .iter()
        .position(|l| l.trim_end() == "patches:" || l.starts_with("patches: "))
    else {
        let mut out = kustomization.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("patches:\n");
        out.push_str(&entry);
        return out;
    };
    if lines[start].trim_end() == "patches: []" {
        let mut out: String = lines[..start].concat();
        out.push_str("patches:\n");
        out.push_str(&entry);
        out.push_str(&lines[start + 1..].concat());
        return out;
    }
    // The block ends at the next line that starts another top-level key.
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            let t = l.trim_end();
            !t.is_empty() && !l.starts_with([' ', '-', '#', '\t'])
        })
        .map_or(lines.len(), |i| start + 1 + i);
    let indent = lines[start + 1..end]
        .iter()
        .find(|l| l.trim_start().starts_with('-'))
        .map_or("", |l| &l[..l.len() - l.trim_start().len()]);
    let mut out: String = lines[..end].concat();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(indent);
    out.push_str(&entry);
    out.push_str(&lines[end..].concat());
    out
}

/// `backfill/<kind>-<name>-<timestamp>`, lower case, safe as a Git ref.
pub fn branch_name(kind: &str, name: &str, stamp: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("backfill/{}-{}-{}", clean(kind), clean(name), clean(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: catalog-api
spec:
  replicas: 3 # prod runs three
  template:
    spec:
      containers:
      - name: api
        resources:
          limits:
            cpu: \"1\"
";

    #[test]
    fn edits_one_line_keeping_comment_and_indent() {
        let out = edit_line_value("p.yaml", PATCH, 6, "replicas", &json!(5)).unwrap();
        assert_eq!(out, PATCH.replace("replicas: 3 #", "replicas: 5 #"));
        let out = edit_line_value("p.yaml", PATCH, 13, "cpu", &json!("2")).unwrap();
        assert_eq!(out, PATCH.replace("cpu: \"1\"", "cpu: \"2\""));
        let out = edit_line_value("p.yaml", PATCH, 10, "name", &json!("web")).unwrap();
        assert!(out.contains("      - name: web\n"), "{out}");
    }

    #[test]
    fn strings_that_look_like_other_types_are_quoted() {
        assert_eq!(scalar_yaml(&json!("1")).unwrap(), "\"1\"");
        assert_eq!(scalar_yaml(&json!("true")).unwrap(), "\"true\"");
        assert_eq!(scalar_yaml(&json!("debug")).unwrap(), "debug");
        assert_eq!(scalar_yaml(&json!(5)).unwrap(), "5");
        assert!(scalar_yaml(&json!({"a": 1})).is_err());
    }

    #[test]
    fn refuses_lines_that_do_not_hold_the_key() {
        let err = edit_line_value("p.yaml", PATCH, 7, "replicas", &json!(5)).unwrap_err();
        assert!(err.to_string().starts_with("p.yaml:7:"), "{err}");
        assert!(edit_line_value("p.yaml", PATCH, 99, "replicas", &json!(5)).is_err());
        // `template:` holds a mapping, not a scalar.
        assert!(edit_line_value("p.yaml", PATCH, 7, "template", &json!(5)).is_err());
        assert!(edit_line_value("p.yaml", "a: |\n  x\n", 1, "a", &json!("y")).is_err());
    }

    #[test]
    fn comments_are_found_outside_quotes_only() {
        assert_eq!(comment_of("3 # x"), Some("# x"));
        assert_eq!(comment_of("\"a # b\""), None);
        assert_eq!(comment_of("a#b"), None);
    }

    fn live() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "catalog-api", "namespace": "shop"},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "s"},
                {"name": "api", "image": "a", "env": [
                    {"name": "A", "value": "1"}, {"name": "LOG_LEVEL", "value": "debug"}],
                 "args": ["--x", "--y"]}]}}}})
    }

    #[test]
    fn patch_addresses_list_items_by_name() {
        let leaves = [
            Leaf {
                pointer: "/spec/template/spec/containers/1/env/1/value".into(),
                value: json!("debug"),
            },
            Leaf {
                pointer: "/spec/replicas".into(),
                value: json!(5),
            },
            Leaf {
                pointer: "/spec/template/spec/containers/1/args/1".into(),
                value: json!("--y"),
            },
        ];
        assert_eq!(
            patch_document(&live(), &leaves),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "catalog-api"},
                "spec": {"replicas": 5, "template": {"spec": {"containers": [
                    {"name": "api",
                     "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                     "args": ["--x", "--y"]}]}}}})
        );
    }

    #[test]
    fn patch_entry_is_appended_to_the_existing_list() {
        let k = "resources:\n- ../../base\npatches:\n- path: deployment-prod.yaml\n- target:\n    kind: Service\n  patch: |-\n    - op: add\nimages:\n- name: x\n";
        assert_eq!(
            add_patch_entry(k, "backfill.yaml"),
            k.replace("images:", "- path: backfill.yaml\nimages:")
        );
        let indented = "patches:\n  - path: a.yaml\n";
        assert_eq!(
            add_patch_entry(indented, "b.yaml"),
            "patches:\n  - path: a.yaml\n  - path: b.yaml\n"
        );
        assert_eq!(
            add_patch_entry("resources:\n- a.yaml", "b.yaml"),
            "resources:\n- a.yaml\npatches:\n- path: b.yaml\n"
        );
        assert_eq!(
            add_patch_entry("patches: []\nresources: []\n", "b.yaml"),
            "patches:\n- path: b.yaml\nresources: []\n"
        );
    }

    #[test]
    fn only_a_new_tag_is_a_tag_change() {
        let d = "registry.example.com/catalog-api:1.4.2";
        assert_eq!(
            tag_only_change(d, "registry.example.com/catalog-api:1.4.3").as_deref(),
            Some("1.4.3")
        );
        assert_eq!(tag_only_change(d, d), None);
        assert_eq!(tag_only_change(d, "registry.example.com/other:1.4.3"), None);
        assert_eq!(
            tag_only_change(d, "registry.example.com/catalog-api@sha256:ab"),
            None
        );
        assert_eq!(tag_only_change(d, "registry.example.com/catalog-api"), None);
        assert_eq!(
            tag_only_change("localhost:5000/api:1", "localhost:5000/api:2").as_deref(),
            Some("2")
        );
        assert_eq!(
            tag_only_change("localhost:5000/api", "localhost:5001/api"),
            None
        );
    }

    #[test]
    fn branch_names_are_ref_safe() {
        assert_eq!(
            branch_name("Deployment", "catalog-api", "20261126T120000Z"),
            "backfill/deployment-catalog-api-20261126t120000z"
        );
        assert_eq!(branch_name("X", "a.b", "1"), "backfill/x-a-b-1");
    }
}
