//! JSON pointers (RFC 6901) with one extension: a `*` segment matches every key or index, so an
//! ignore rule can name `/spec/template/spec/containers/*/image` without knowing the order.

use serde_json::Value;

/// Escapes one segment (`~` → `~0`, `/` → `~1`).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The unescaped segments of `pointer`; `None` unless it starts with `/` (the whole document is
/// never a valid target for ignoring or stripping).
pub fn segments(pointer: &str) -> Option<Vec<String>> {
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// Joins unescaped segments into a pointer.
pub fn join<S: AsRef<str>>(segments: &[S]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", escape(s.as_ref())))
        .collect()
}

/// Every concrete pointer in `value` that `pattern` (possibly with `*`) matches.
pub fn expand(value: &Value, pattern: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    expand_into(value, pattern, &mut Vec::new(), &mut out);
    out
}

fn expand_into(value: &Value, pattern: &[String], at: &mut Vec<String>, out: &mut Vec<String>) {
    let Some((head, tail)) = pattern.split_first() else {
        out.push(join(at));
        return;
    };
    let mut visit = |key: String, child: &Value, at: &mut Vec<String>| {
        at.push(key);
        expand_into(child, tail, at, out);
        at.pop();
    };
    match value {
        Value::Object(map) if head == "*" => {
            for (k, child) in map {
                visit(k.clone(), child, at);
            }
        }
        Value::Object(map) => {
            if let Some(child) = map.get(head) {
                visit(head.clone(), child, at);
            }
        }
        Value::Array(items) if head == "*" => {
            for (i, child) in items.iter().enumerate() {
                visit(i.to_string(), child, at);
            }
        }
        Value::Array(items) => {
            if let Some(child) = head.parse::<usize>().ok().and_then(|i| items.get(i)) {
                visit(head.clone(), child, at);
            }
        }
        _ => {}
    }
}

/// Removes what the concrete pointer names. Array elements are removed (shifting the rest), so
/// callers removing several elements of one array go from the highest index down.
pub fn remove(value: &mut Value, pointer: &str) -> Option<Value> {
    let segs = segments(pointer)?;
    let (last, parents) = segs.split_last()?;
    let mut cur = value;
    for seg in parents {
        cur = match cur {
            Value::Object(map) => map.get_mut(seg)?,
            Value::Array(items) => items.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match cur {
        Value::Object(map) => map.shift_remove(last),
        Value::Array(items) => {
            let i = last.parse::<usize>().ok()?;
            (i < items.len()).then(|| items.remove(i))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escape_round_trips() {
        let p = join(&["metadata", "annotations", "example.com/a~b"]);
        assert_eq!(p, "/metadata/annotations/example.com~1a~0b");
        assert_eq!(
            segments(&p).unwrap(),
            ["metadata", "annotations", "example.com/a~b"]
        );
        assert_eq!(segments("spec"), None);
    }

    #[test]
    fn wildcard_expands_over_arrays_and_maps() {
        let v = json!({"c": [{"image": "a"}, {"name": "x"}, {"image": "b"}]});
        let pat = segments("/c/*/image").unwrap();
        assert_eq!(expand(&v, &pat), ["/c/0/image", "/c/2/image"]);
        assert_eq!(
            expand(&v, &segments("/nope").unwrap()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn remove_from_objects_and_arrays() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2, 3]});
        assert_eq!(remove(&mut v, "/a/b"), Some(json!(1)));
        assert_eq!(remove(&mut v, "/l/1"), Some(json!(2)));
        assert_eq!(remove(&mut v, "/l/9"), None);
        assert_eq!(v, json!({"a": {"c": 2}, "l": [1, 3]}));
    }
}
