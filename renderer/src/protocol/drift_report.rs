//! What the agent publishes about drift besides its status counters: foreign additions it
//! sees (in [`super::SyncStatus::foreign`]).

use serde::{Deserialize, Serialize};

use crate::drift::foreign::ForeignField;

/// One foreign addition on a managed object, as the agent saw it at its last sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForeignEntry {
    pub kind: String,
    pub name: String,
    /// JSON pointer into the live object.
    pub pointer: String,
    pub manager: String,
    #[serde(default)]
    pub time: Option<String>,
    /// Why it matters for security; empty when it does not.
    #[serde(default)]
    pub sensitive: Vec<String>,
    /// Whether the agent removed it (`--remove-foreign` or the per-object annotation).
    #[serde(default)]
    pub removed: bool,
}

impl ForeignEntry {
    pub fn new(kind: &str, name: &str, f: &ForeignField, removed: bool) -> Self {
        Self {
            kind: kind.to_string(),
            name: name.to_string(),
            pointer: f.pointer.clone(),
            manager: f.manager.clone(),
            time: f.time.clone(),
            sensitive: f.sensitive.clone(),
            removed,
        }
    }
}
