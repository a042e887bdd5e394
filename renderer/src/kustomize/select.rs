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
