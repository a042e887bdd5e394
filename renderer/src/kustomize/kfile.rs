//! Reading one kustomization file: finding it, checking its fields, positions of its values.

use std::sync::Arc;

use serde_json::Value;

use super::error::{ErrorKind, RenderError};
use super::kschema;
use crate::source::Source;
use crate::yaml::{Duplicates, Pos, Positions, escape_pointer, parse_documents_with};

/// The file names kustomize looks for, in its order.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

const UNSUPPORTED_FIELDS: &[&str] = &["helmGlobals", "helmCharts", "helmChartInflationGenerator"];

/// A parsed kustomization (or component) file.
#[derive(Debug)]
pub struct KFile {
    /// Path of the file relative to the source root.
    pub path: Arc<str>,
    /// Its directory (`""` for the root).
    pub dir: String,
    pub doc: serde_json::Map<String, Value>,
    pub positions: Positions,
    /// Plain scalars YAML 1.1 types as non-strings (see `Document::raw_scalars`).
    pub raw: crate::yaml::FxHashMap<String, String>,
    pub is_component: bool,
}

impl KFile {
    /// Line and column of the value at a JSON pointer, falling back to the nearest ancestor.
    pub fn pos(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    pub fn pos_of(&self, field: &str) -> Pos {
        self.pos(&format!("/{}", escape_pointer(field)))
    }

    pub fn error(&self, kind: ErrorKind, pointer: &str, message: impl Into<String>) -> RenderError {
        let p = self.pos(pointer);
        RenderError::new(kind, &self.path, p.line, message).at(p.line, p.col)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.doc.get(field).filter(|v| !v.is_null())
    }

    /// A list-of-strings field such as `resources`.
    pub fn strings(&self, field: &str) -> Result<Vec<(String, Pos)>, RenderError> {
        let Some(v) = self.get(field) else {
            return Ok(vec![]);
        };
        let ptr = format!("/{field}");
        let Value::Array(items) = v else {
            return Err(self.error(ErrorKind::Yaml, &ptr, format!("{field} must be a list")));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let p = format!("{ptr}/{i}");
                match it {
                    Value::String(s) => Ok((s.clone(), self.pos(&p))),
                    _ => Err(self.error(
                        ErrorKind::Yaml,
                        &p,
                        format!("{field} entries must be strings"),
                    )),
                }
            })
            .collect()
    }

    /// A string field such as `namePrefix`.
    pub fn string(&self, field: &str) -> Result<Option<String>, RenderError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => self.go_string(&format!("/{field}"), v, field).map(Some),
        }
    }

    /// kustomize decodes kustomization files with YAML 1.1 typing into Go structs, so a
    /// string field holding `1`, `true` or `yes` is an error.
    pub fn go_string(&self, pointer: &str, v: &Value, field: &str) -> Result<String, RenderError> {
        let go_type = match v {
            Value::String(s) if !self.raw.contains_key(pointer) => return Ok(s.clone()),
            Value::String(_) | Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::Null => return Ok(String::new()),
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let go_type = match self.raw.get(pointer).map(String::as_str) {
            Some("~" | "null" | "Null" | "NULL" | "") => return Ok(String::new()),
            Some(t) if crate::yaml::scalar::resolve_plain(t).is_number() => "number",
            Some(_) => "bool",
            None => go_type,
        };
        Err(self.error(
            ErrorKind::Yaml,
            pointer,
            format!(
                "invalid Kustomization: json: cannot unmarshal {go_type} into Go struct field Kustomization.{field} of type string"
            ),
        ))
    }
}

/// Finds and parses the kustomization file of `dir`; `Ok(None)` when the directory has none.
pub fn load(source: &dyn Source, dir: &str) -> Result<Option<KFile>, RenderError> {
    // One directory listing instead of probing each name.
    let names = source.list(dir).unwrap_or_default();
    let mut found = Vec::new();
    for name in FILE_NAMES {
        if names.iter().any(|n| n == name) {
            found.push(join(dir, name));
        }
    }
    let path = match found.len() {
        0 => return Ok(None),
        1 => found.remove(0),
        _ => {
            return Err(RenderError::new(
                ErrorKind::Invalid,
                dir,
                0,
                format!("found multiple kustomization files: {}", found.join(", ")),
            ));
        }
    };
    let text = read_text(source, &path)?;
    let mut docs = parse_documents_with(&text, Duplicates::LastWins).map_err(|e| {
        RenderError::new(ErrorKind::Yaml, &path, e.line, e.message).at(e.line, e.col)
    })?;
    docs.retain(|d| !d.value.is_null());
    if docs.len() > 1 {
        let p = docs[1].start;
        return Err(RenderError::new(
            ErrorKind::Yaml,
            &path,
            p.line,
            "a kustomization file must hold a single YAML document",
        ));
    }
    let (doc, positions, raw) = match docs.pop() {
        None => (
            serde_json::Map::new(),
            Positions::default(),
            Default::default(),
        ),
        Some(d) => match d.value {
            Value::Object(m) => (m, d.positions, d.raw_scalars),
            _ => {
                return Err(RenderError::new(
                    ErrorKind::Yaml,
                    &path,
                    d.start.line,
                    "a kustomization must be a mapping",
                ));
            }
        },
    };
    let mut k = KFile {
        path: Arc::from(path.as_str()),
        dir: dir.to_string(),
        doc,
        positions,
        raw,
        is_component: false,
    };
    let mut doc = Value::Object(std::mem::take(&mut k.doc));
    match kschema::canonicalize(&mut doc, &kschema::KUSTOMIZATION, true) {
        Ok(renames) => {
            for (from, to) in renames {
                k.positions.rename(&from, &to);
                crate::yaml::rename_pointers(&mut k.raw, &from, &to);
            }
        }
        Err(unknown) => {
            return Err(k.error(
                ErrorKind::UnknownField,
                &unknown.pointer,
                format!(
                    "invalid Kustomization: json: unknown field {:?}",
                    unknown.key
                ),
            ));
        }
    }
    // String fields and `map[string]string` values: a plain scalar YAML 1.1 types as a
    // bool or number (`y`, `on`, `1`) fails kubectl's decoding.
    for (ptr, field) in kschema::go_strings(&doc, &kschema::KUSTOMIZATION) {
        if let Some(v) = doc.pointer(&ptr) {
            k.go_string(&ptr, v, field)?;
        }
    }
    if let Value::Object(doc) = doc {
        k.doc = doc;
    }
    for key in k.doc.keys() {
        if UNSUPPORTED_FIELDS.contains(&key.as_str()) {
            return Err(k.error(
                ErrorKind::NotSupported,
                &format!("/{}", escape_pointer(key)),
                format!("{key} is not supported"),
            ));
        }
    }
    match k.get("kind").and_then(Value::as_str) {
        None | Some("Kustomization") => {}
        Some("Component") => k.is_component = true,
        Some(other) => {
            return Err(k.error(
                ErrorKind::Invalid,
                "/kind",
                format!("unsupported kustomization kind {other:?}"),
            ));
        }
    }
    Ok(Some(k))
}

pub fn read_text(source: &dyn Source, path: &str) -> Result<String, RenderError> {
    let bytes = source.read(path).map_err(|e| source_error(path, e))?;
    String::from_utf8(bytes)
        .map_err(|_| RenderError::new(ErrorKind::Yaml, path, 0, "file is not valid UTF-8"))
}

pub fn source_error(path: &str, e: crate::source::SourceError) -> RenderError {
    use crate::source::SourceError;
    let kind = match e {
        SourceError::NotFound { .. } => ErrorKind::Missing,
        SourceError::EscapesRoot { .. } => ErrorKind::OutsideRoot,
        SourceError::Other { .. } => ErrorKind::Invalid,
    };
    RenderError::new(kind, path, 0, e.to_string())
}

pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Resolves `rel` against `dir`, refusing to climb above the source root.
pub fn resolve(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = if rel.starts_with('/') {
        return None;
    } else {
        dir.split('/').filter(|s| !s.is_empty()).collect()
    };
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// Whether `path` is `dir` or below it.
pub fn is_within(dir: &str, path: &str) -> bool {
    dir.is_empty() || path == dir || path.starts_with(&format!("{dir}/"))
}

/// Remote targets kustomize would fetch (git URLs, http); we never fetch.
pub fn is_remote(s: &str) -> bool {
    s.contains("://")
        || s.starts_with("git@")
        || s.starts_with("github.com/")
        || s.starts_with("gitlab.com/")
        || s.starts_with("bitbucket.org/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_paths() {
        assert_eq!(resolve("a/b", "../c").as_deref(), Some("a/c"));
        assert_eq!(resolve("a", "../../c"), None);
        assert_eq!(resolve("", "./x/y.yaml").as_deref(), Some("x/y.yaml"));
        assert!(is_within("a/b", "a/b/c"));
        assert!(!is_within("a/b", "a/bc"));
    }
}
