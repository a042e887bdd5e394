//! Following a field spec path without creating anything (kustomize's fieldspec filter with
//! `create: false`): lists are entered element by element, missing fields end the walk.

use serde_json::Value;

type Found = Vec<(String, String)>;

/// Calls `set` on every node the `/`-separated `path` reaches (with its JSON pointer) and
/// returns what `set` collected.
/// `path` is split by [`split_path`].
pub(super) fn collect(
    root: &Value,
    path: &[String],
    set: &mut dyn FnMut(&Value, &str, &mut Found) -> Result<(), String>,
) -> Result<Found, String> {
    let mut out = Vec::new();
    visit(root, path, &mut String::new(), set, &mut out)?;
    Ok(out)
}

fn visit(
    node: &Value,
    path: &[String],
    pointer: &mut String,
    set: &mut dyn FnMut(&Value, &str, &mut Found) -> Result<(), String>,
    out: &mut Found,
) -> Result<(), String> {
    use std::fmt::Write as _;
    let Some((first, rest)) = path.split_first() else {
        return set(node, pointer, out);
    };
    let len = pointer.len();
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let _ = write!(pointer, "/{i}");
                visit(item, path, pointer, set, out)?;
                pointer.truncate(len);
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
                Some(v) => {
                    pointer.push('/');
                    pointer.push_str(&crate::yaml::escape_pointer(field));
                    visit(v, rest, pointer, set, out)?;
                    pointer.truncate(len);
                    Ok(())
                }
            }
        }
        _ => Err("expected sequence or mapping node".into()),
    }
}

/// kustomize `PathSplitter`: `/`-separated, `\/` is a literal slash.
pub(super) fn split_path(path: &str) -> Vec<String> {
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
        let path = |p: &str| split_path(p);
        collect(&doc, &path("spec/volumes/configMap/name"), &mut rec).unwrap();
        collect(&doc, &path("metadata/annotations/x.io\\/secret"), &mut rec).unwrap();
        collect(&doc, &path("spec/missing/name"), &mut rec).unwrap();
        assert!(collect(&json!({"spec": "x"}), &path("spec/a"), &mut rec).is_err());
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
