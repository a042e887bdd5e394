//! A finding, and how an object field is traced back to the file and line that wrote it.

use std::fmt;

use renderer::{FieldOrigin, RenderedObject};
use serde::Serialize;
use serde_json::Value;

use crate::rules::{Severity, rule};

/// One broken rule at one place. Messages never contain a Secret's or a credential's value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Finding {
    /// Relative to the repository root, `/`-separated.
    pub file: String,
    /// 1-based; 0 when the finding is about the file as a whole.
    pub line: u32,
    pub col: u32,
    pub rule: &'static str,
    pub severity: Severity,
    /// `Kind/name` of the object, when the finding is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn new(rule_id: &'static str, file: &str, line: u32, message: impl Into<String>) -> Self {
        Finding {
            file: file.to_string(),
            line,
            col: 0,
            rule: rule_id,
            severity: rule(rule_id).map_or(Severity::Error, |r| r.severity),
            object: None,
            message: message.into(),
        }
    }

    /// A finding about `path` of a rendered object, located where that field was written.
    pub fn at_field(
        rule_id: &'static str,
        object: &RenderedObject,
        path: &str,
        message: impl Into<String>,
    ) -> Self {
        let (file, line, col) = match locate(object, path) {
            Some(o) => (o.origin.file.to_string(), o.origin.line, o.origin.col),
            None => (String::new(), 0, 0),
        };
        Finding {
            col,
            object: Some(describe(&object.value)),
            ..Finding::new(rule_id, &file, line, message)
        }
    }

    pub fn why(&self) -> &'static str {
        rule(self.rule).map_or("", |r| r.why)
    }

    pub fn fix(&self) -> &'static str {
        rule(self.rule).map_or("", |r| r.fix)
    }

    /// `file:line` (or just the file), as printed and as the agent reports it.
    pub fn location(&self) -> String {
        if self.line > 0 {
            format!("{}:{}", self.file, self.line)
        } else {
            self.file.clone()
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.location(), self.message, self.rule)?;
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        Ok(())
    }
}

/// `Kind/name` of an object.
pub fn describe(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["kind"].as_str().unwrap_or("?"),
        obj["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Where the field at provenance path `path` was written: the field itself, else the first
/// line of anything under it, else its nearest ancestor that has an origin.
pub fn locate<'a>(object: &'a RenderedObject, path: &str) -> Option<&'a FieldOrigin> {
    let prov = object.provenance();
    if path.is_empty() {
        return ["metadata.name", "kind"]
            .iter()
            .find_map(|p| prov.get(*p))
            .or_else(|| prov.values().next());
    }
    if let Some(o) = prov.get(path) {
        return Some(o);
    }
    let under = prov
        .range::<str, _>((std::ops::Bound::Excluded(path), std::ops::Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(path))
        .filter(|(k, _)| matches!(k.as_bytes().get(path.len()), Some(b'.' | b'[')))
        .map(|(_, o)| o)
        .min_by_key(|o| (o.origin.line, o.origin.col));
    if under.is_some() {
        return under;
    }
    let mut parent = path;
    while let Some(cut) = parent.rfind(['.', '[']) {
        parent = &parent[..cut];
        if let Some(o) = prov.get(parent) {
            return Some(o);
        }
    }
    locate(object, "")
}
