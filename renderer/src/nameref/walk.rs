//! Following a field spec path without creating anything (kustomize's fieldspec filter with
//! `create: false`): lists are entered element by element, missing fields end the walk.

use serde_json::Value;

type Found = Vec<(String, String)>;

/// Calls `set` on every node the `/`-separated `path` reaches (with its JSON pointer) and
/// returns what `set` collected.
pub(super) fn collect(
    root: &Value,
    path: &str,
    set: &mut dyn FnMut(&Value, &str, &mut Found) -> Result<(), String>,
) -> Result<Found, String> {
    let segments = split_path(path);
    let mut out = Vec::new();
    visit(root, &segments, String::new(), set, &mut out)?;
    Ok(out)
}

fn visit(
    node: &Value,
    path: &[String],
    pointer: String,
    set: &mut dyn FnMut(&Value, &str, &mut Found) -> Result<(), String>,
    out: &mut Found,
) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        return set(node, &pointer, out);
    };
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                visit(item, path, format!("{pointer}/{i}"), set, out)?;
            }
            Ok(())
        }
        Value::Object(m) => {
            let field = first.strip_suffix("[]").unwrap_or(first);
            if field.is_empty() {
                return Err("cannot set or create an empty field name".into());
            }
            match m.get(field) {
                None => Ok(()),
                Some(v) => visit(v, rest, format!("{pointer}/{}", escape(field)), set, out),
            }
        }
        _ => Err("expected sequence or mapping node".into()),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// kustomize `PathSplitter`: `/`-separated, `\/` is a literal slash.
fn split_path(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match out.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('/');
                last.push_str(part);
            }
            _ => out.push(part.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_lists_and_escapes() {
        let doc = json!({"spec": {"volumes": [{"configMap": {"name": "a"}}, {"secret": {}}, {"configMap": {"name": "b"}}]},
            "metadata": {"annotations": {"x.io/secret": "s"}}});
        let mut seen = Vec::new();
        let mut rec = |v: &Value, p: &str, _: &mut Found| {
            seen.push((p.to_string(), v.clone()));
            Ok(())
        };
        collect(&doc, "spec/volumes/configMap/name", &mut rec).unwrap();
        collect(&doc, "metadata/annotations/x.io\\/secret", &mut rec).unwrap();
        collect(&doc, "spec/missing/name", &mut rec).unwrap();
        assert!(collect(&json!({"spec": "x"}), "spec/a", &mut rec).is_err());
        assert_eq!(
            seen,
            vec![
                ("/spec/volumes/0/configMap/name".to_string(), json!("a")),
                ("/spec/volumes/2/configMap/name".to_string(), json!("b")),
                ("/metadata/annotations/x.io~1secret".to_string(), json!("s")),
            ]
        );
    }
}
