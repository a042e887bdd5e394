//! Patch and replacement target selection (kustomize's `types.Selector`).
//!
//! Local to the engine until `patch` provides selection; semantics follow kustomize's
//! `resWrangler.Select`: name and namespace match the original or the current id, all
//! fields are anchored regular expressions, and empty fields match anything.

use regex::Regex;
use serde_json::Value;

use super::resource::{ResId, Resource};

#[derive(Debug, Default)]
pub struct Selector {
    group: Option<Regex>,
    version: Option<Regex>,
    kind: Option<Regex>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Option<String>,
    annotations: Option<String>,
}

impl Selector {
    /// From a `target:`/`select:` mapping. Err carries a message about the bad field.
    pub fn from_value(v: &Value) -> Result<Selector, String> {
        let re = |f: &str| -> Result<Option<Regex>, String> {
            match v.get(f).and_then(super::kfile::scalar_text) {
                Some(s) if !s.is_empty() => Regex::new(&format!("^(?:{s})$"))
                    .map(Some)
                    .map_err(|e| format!("invalid {f} pattern {s:?}: {e}")),
                _ => Ok(None),
            }
        };
        let text = |f: &str| {
            v.get(f)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(Selector {
            group: re("group")?,
            version: re("version")?,
            kind: re("kind")?,
            name: re("name")?,
            namespace: re("namespace")?,
            labels: text("labelSelector"),
            annotations: text("annotationSelector"),
        })
    }

    pub fn matches(&self, r: &Resource) -> bool {
        let org = r.original_id();
        let cur = r.id();
        let hit = |re: &Option<Regex>, a: &str, b: &str| {
            re.as_ref()
                .is_none_or(|re| re.is_match(a) || re.is_match(b))
        };
        if !hit(&self.namespace, &effective_ns(&org), &effective_ns(&cur)) {
            return false;
        }
        if !hit(&self.name, &org.name, &cur.name) {
            return false;
        }
        if !hit(&self.group, &cur.group, &cur.group)
            || !hit(&self.version, &cur.version, &cur.version)
            || !hit(&self.kind, &cur.kind, &cur.kind)
        {
            return false;
        }
        let meta = |f: &str| {
            r.value
                .pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_object)
        };
        self.labels
            .as_ref()
            .is_none_or(|s| label_selector_matches(s, meta("labels")))
            && self
                .annotations
                .as_ref()
                .is_none_or(|s| label_selector_matches(s, meta("annotations")))
    }
}

fn effective_ns(id: &ResId) -> String {
    if !super::transform::is_namespaceable(&id.kind) {
        "_non_namespaceable_".into()
    } else if id.namespace.is_empty() {
        "default".into()
    } else {
        id.namespace.clone()
    }
}

/// Kubernetes label selector text: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`,
/// `a`, `!a`, joined by commas.
pub fn label_selector_matches(sel: &str, labels: Option<&serde_json::Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|m| m.get(k)).and_then(Value::as_str);
    split_terms(sel).iter().all(|term| {
        let t = term.trim();
        if t.is_empty() {
            return true;
        }
        if let Some(k) = t.strip_prefix('!') {
            return get(k.trim()).is_none();
        }
        if let Some((k, v)) = t.split_once("!=") {
            return get(k.trim()) != Some(v.trim());
        }
        if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            return get(k.trim()) == Some(v.trim());
        }
        for (op, want) in [(" notin ", false), (" in ", true)] {
            if let Some((k, set)) = t.split_once(op) {
                let set = set.trim().trim_start_matches('(').trim_end_matches(')');
                let found = get(k.trim()).is_some_and(|v| set.split(',').any(|x| x.trim() == v));
                return if want { found } else { !found };
            }
        }
        get(t).is_some()
    })
}

/// Splits on commas outside parentheses.
fn split_terms(sel: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in sel.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&sel[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&sel[start..]);
    out
}
