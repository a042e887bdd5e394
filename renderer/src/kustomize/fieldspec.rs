//! Walking the places a field spec (`schema::FieldSpec`) addresses in an object.

use serde_json::{Map, Value};

use crate::provenance::{element_segment, push_key, push_segment};
pub use crate::schema::FieldSpec;

/// The callback of [`visit`]: parent map, final key, field path text.
pub type Visitor<'a> = dyn FnMut(&mut Map<String, Value>, &str, &str) + 'a;

/// Calls `f(parent, key, field_path)` for each place `spec` addresses in `obj`, creating
/// missing maps on the way when the spec says `create`. `f` decides what to do with the
/// (possibly missing) final field.
pub fn visit(obj: &mut Value, spec: &FieldSpec, f: &mut Visitor<'_>) {
    let segs: Vec<&str> = spec.path.split('/').filter(|s| !s.is_empty()).collect();
    let mut path = String::new();
    step(obj, &segs, spec.create, &mut path, f);
}

fn step(node: &mut Value, segs: &[&str], create: bool, path: &mut String, f: &mut Visitor<'_>) {
    if let Value::Array(items) = node {
        let snapshot: Vec<_> = (0..items.len())
            .map(|i| element_segment(items, i))
            .collect();
        for (i, item) in items.iter_mut().enumerate() {
            let len = path.len();
            push_segment(path, &snapshot[i]);
            step(item, segs, create, path, f);
            path.truncate(len);
        }
        return;
    }
    let Some((&first, rest)) = segs.split_first() else {
        return;
    };
    let Value::Object(map) = node else { return };
    let key = first.strip_suffix("[]").unwrap_or(first);
    let len = path.len();
    if rest.is_empty() {
        push_key(path, key, path.is_empty());
        f(map, key, path);
        path.truncate(len);
        return;
    }
    if !map.contains_key(key) || map[key].is_null() {
        if !create {
            return;
        }
        let empty = if first.ends_with("[]") {
            Value::Array(vec![])
        } else {
            Value::Object(Map::new())
        };
        map.insert(key.to_string(), empty);
    }
    push_key(path, key, path.is_empty());
    if let Some(child) = map.get_mut(key) {
        step(child, rest, create, path, f);
    }
    path.truncate(len);
}
