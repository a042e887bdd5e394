//! Where every rendered field came from.
//!
//! Fields are named by a [`FieldPath`] that stays stable across list reordering: list
//! elements that are mappings with a string `name` are addressed as `[name=api]`, others by
//! index `[0]`. Map keys that contain `.`, `[`, `]`, `=` or `"` are written in brackets with
//! JSON string quoting: `metadata.annotations["example.com/tier"]`. Example:
//! `spec.template.spec.containers[name=api].image`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// Which step of the build set a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetBy {
    /// The resource file itself.
    Resource,
    /// A patch (strategic merge or JSON 6902).
    Patch,
    /// A generator entry (configMapGenerator, secretGenerator).
    Generator,
    /// A built-in transformer field of a kustomization, e.g. `namePrefix`, `images`.
    Transformer(&'static str),
}

/// A position in a source file, and the step that put the value there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
    pub set_by: SetBy,
}

/// The origin of one rendered field, with the kustomization files it passed through
/// (innermost first, ending with the kustomization that was rendered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldOrigin {
    pub origin: Origin,
    /// Shared by all fields of an object that arrived the same way.
    pub chain: Arc<[Arc<str>]>,
}

impl fmt::Display for FieldOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.origin.file, self.origin.line, self.origin.col
        )
    }
}

/// Every leaf field of one rendered object, keyed by its field path text.
pub type Provenance = BTreeMap<String, FieldOrigin>;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
    /// A list element selected by a merge key: `[name=api]`.
    Match(String, String),
}

/// A stable path to a field of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FieldPath(pub Vec<Segment>);

/// The merge key used to address elements of `list`, if every element is a mapping with a
/// distinct string value for it.
pub fn list_merge_key(list: &[Value]) -> Option<&'static str> {
    const KEYS: [&str; 1] = ["name"];
    'keys: for key in KEYS {
        let mut seen = std::collections::HashSet::new();
        for item in list {
            match item.get(key).and_then(Value::as_str) {
                Some(v) if seen.insert(v) => {}
                _ => continue 'keys,
            }
        }
        return Some(key);
    }
    None
}

/// The segment that addresses `list[index]`.
pub fn element_segment(list: &[Value], index: usize) -> Segment {
    element_segment_by(list, list_merge_key(list), index)
}

/// The merge key's value in `list[index]`, empty when there is none.
fn merge_key_value<'a>(list: &'a [Value], key: &str, index: usize) -> &'a str {
    list.get(index)
        .and_then(|e| e.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// [`element_segment`] with the list's merge key already found: walkers visiting every
/// element find it once per list, not once per element.
pub fn element_segment_by(list: &[Value], key: Option<&'static str>, index: usize) -> Segment {
    match key {
        Some(key) => {
            // `index` may be out of bounds (a replacement path's `ports.7`): callers then
            // find no element, and the segment is never used.
            let v = merge_key_value(list, key, index);
            Segment::Match(key.to_string(), v.to_string())
        }
        None => Segment::Index(index),
    }
}

fn needs_quotes(key: &str) -> bool {
    key.is_empty() || key.contains(['.', '[', ']', '=', '"'])
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if needs_quotes(k) => {
                    write!(f, "[{}]", Value::String(k.clone()))?;
                }
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Match(k, v) => write!(f, "[{k}={v}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path {path:?}: {message}")]
pub struct FieldPathError {
    pub path: String,
    pub message: String,
}

impl std::str::FromStr for FieldPath {
    type Err = FieldPathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |m: &str| FieldPathError {
            path: s.to_string(),
            message: m.to_string(),
        };
        let mut segs = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' if i > 0 => i += 1,
                b'[' => {
                    if b.get(i + 1) == Some(&b'"') {
                        let mut de =
                            serde_json::Deserializer::from_str(&s[i + 1..]).into_iter::<String>();
                        let key = de
                            .next()
                            .and_then(Result::ok)
                            .ok_or_else(|| bad("unterminated quoted key"))?;
                        i += 1 + de.byte_offset();
                        if b.get(i) != Some(&b']') {
                            return Err(bad("expected ] after quoted key"));
                        }
                        i += 1;
                        segs.push(Segment::Key(key));
                        continue;
                    }
                    let end = s[i..].find(']').ok_or_else(|| bad("unterminated ["))? + i;
                    let inner = &s[i + 1..end];
                    if let Some((k, v)) = inner.split_once('=') {
                        segs.push(Segment::Match(k.to_string(), v.to_string()));
                    } else {
                        let n = inner.parse().map_err(|_| bad("index is not a number"))?;
                        segs.push(Segment::Index(n));
                    }
                    i = end + 1;
                }
                _ => {
                    let end = s[i..].find(['.', '[']).map_or(s.len(), |e| e + i);
                    if end == i {
                        return Err(bad("empty key"));
                    }
                    segs.push(Segment::Key(s[i..end].to_string()));
                    i = end;
                }
            }
        }
        Ok(FieldPath(segs))
    }
}

/// Calls `f(path, leaf)` for every leaf (scalar, empty map or empty list) of `value`.
pub fn for_each_leaf(value: &Value, f: &mut dyn FnMut(&str, &Value)) {
    let mut path = String::new();
    walk(value, &mut path, true, f);
}

fn walk(value: &Value, path: &mut String, root: bool, f: &mut dyn FnMut(&str, &Value)) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let len = path.len();
                push_key(path, k, root);
                walk(v, path, false, f);
                path.truncate(len);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let key = list_merge_key(a);
            for i in 0..a.len() {
                let len = path.len();
                push_element(path, a, key, i);
                walk(&a[i], path, false, f);
                path.truncate(len);
            }
        }
        _ => f(path, value),
    }
}

/// Appends a key segment to a path text.
pub fn push_key(path: &mut String, key: &str, root: bool) {
    use fmt::Write;
    if needs_quotes(key) {
        let _ = write!(path, "[{}]", Value::String(key.to_string()));
    } else {
        if !root && !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    }
}

/// Appends the segment addressing `list[index]` (see [`element_segment_by`]) without
/// building a [`Segment`].
pub fn push_element(path: &mut String, list: &[Value], key: Option<&'static str>, index: usize) {
    use fmt::Write;
    match key {
        Some(key) => {
            let v = merge_key_value(list, key, index);
            path.push('[');
            path.push_str(key);
            path.push('=');
            path.push_str(v);
            path.push(']');
        }
        None => {
            let _ = write!(path, "[{index}]");
        }
    }
}

pub fn push_segment(path: &mut String, seg: &Segment) {
    use fmt::Write;
    match seg {
        Segment::Key(k) => push_key(path, k, path.is_empty()),
        Segment::Index(n) => {
            let _ = write!(path, "[{n}]");
        }
        Segment::Match(k, v) => {
            let _ = write!(path, "[{k}={v}]");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for p in [
            "spec.template.spec.containers[name=api].image",
            "metadata.annotations[\"example.com/tier\"]",
            "spec.ports[0].port",
        ] {
            let fp: FieldPath = p.parse().unwrap();
            assert_eq!(fp.to_string(), p);
        }
    }

    #[test]
    fn leaves_use_merge_keys() {
        let v = serde_json::json!({"spec": {"containers": [{"name": "a", "image": "x"}],
            "args": ["p", "q"]}, "metadata": {"labels": {"a.b/c": "d"}}});
        let mut seen = Vec::new();
        for_each_leaf(&v, &mut |p, _| seen.push(p.to_string()));
        assert!(
            seen.contains(&"spec.containers[name=a].image".to_string()),
            "{seen:?}"
        );
        assert!(seen.contains(&"spec.args[1]".to_string()), "{seen:?}");
        assert!(
            seen.contains(&"metadata.labels[\"a.b/c\"]".to_string()),
            "{seen:?}"
        );
    }
}
