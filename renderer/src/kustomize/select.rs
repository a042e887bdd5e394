//! Target selection for patches and replacements, on top of `patch::Target`.

use serde_json::Value;

use super::resource::Resource;
use crate::patch::{OriginalId, Target, TargetMatcher};

#[derive(Debug)]
pub struct Selector(TargetMatcher);

impl Selector {
    /// From a `target:`/`select:` mapping; Err is a message about the bad field.
    pub fn from_value(v: &Value) -> Result<Selector, String> {
        let t: Target =
            serde_json::from_value(v.clone()).map_err(|e| format!("invalid target: {e}"))?;
        t.compile().map(Selector).map_err(|e| e.to_string())
    }

    /// kustomize `resWrangler.Select`: name and namespace may match the original id.
    pub fn matches(&self, r: &Resource) -> bool {
        let org = r.original_id();
        let original = OriginalId {
            name: &org.name,
            namespace: &org.namespace,
        };
        self.0.matches(&r.value, Some(original))
    }
}

/// Kubernetes label selector text (`a=b,c!=d,e in (x,y),!f`) against a label map.
pub fn label_selector_matches(sel: &str, labels: Option<&serde_json::Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|m| m.get(k)).and_then(Value::as_str);
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in sel.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&sel[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&sel[start..]);
    terms.iter().all(|term| {
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
                return found == want;
            }
        }
        get(t).is_some()
    })
}
