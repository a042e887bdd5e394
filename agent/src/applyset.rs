//! The ApplySet parent (KEP-3659): a ConfigMap named `kubectl-gitops` in the managed namespace.
//!
//! kubectl and the plugin find the set through it; its `contains-group-kinds` annotation tells
//! which kinds to list when looking for members to prune, and its data holds the sync status.

use std::collections::{BTreeMap, BTreeSet};

use renderer::protocol::{
    APPLYSET_GROUP_KINDS_ANNOTATION, APPLYSET_ID_LABEL, APPLYSET_PART_OF_LABEL,
    APPLYSET_TOOLING_ANNOTATION, GroupKind, PARENT_NAME, RESULT_LABEL, STATUS_DATA_KEY, SyncStatus,
    TOOLING_NAME, TOOLING_PREFIX, applyset_id, format_group_kinds, parse_group_kinds,
};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySet {
    pub namespace: String,
    pub id: String,
}

impl ApplySet {
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            id: applyset_id(PARENT_NAME, namespace, "ConfigMap", ""),
        }
    }

    /// Label selector for the members.
    pub fn selector(&self) -> String {
        format!("{APPLYSET_PART_OF_LABEL}={}", self.id)
    }

    /// The full parent as the agent applies it: every field the agent owns on it.
    pub fn parent(&self, group_kinds: &BTreeSet<GroupKind>, status: &SyncStatus) -> Value {
        let labels = BTreeMap::from([
            (APPLYSET_ID_LABEL, self.id.clone()),
            (RESULT_LABEL, status.result.as_str().to_string()),
        ]);
        let annotations = BTreeMap::from([
            (
                APPLYSET_TOOLING_ANNOTATION,
                format!("{TOOLING_NAME}/v{}", env!("CARGO_PKG_VERSION")),
            ),
            (
                APPLYSET_GROUP_KINDS_ANNOTATION,
                format_group_kinds(group_kinds),
            ),
        ]);
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": PARENT_NAME,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "data": { STATUS_DATA_KEY: status.to_json() },
        })
    }
}

/// The group-kinds a live parent declares (empty when absent).
pub fn group_kinds_of(parent: &Value) -> BTreeSet<GroupKind> {
    parent["metadata"]["annotations"][APPLYSET_GROUP_KINDS_ANNOTATION]
        .as_str()
        .map(|v| parse_group_kinds(v).into_iter().collect())
        .unwrap_or_default()
}

/// The tooling annotation of a live parent that this project did not write (`<none>` when it
/// has none): `kubectl apply --applyset=configmap/kubectl-gitops` makes a parent with the same
/// ID, whose members the agent would otherwise prune as its own.
pub fn foreign_tooling(parent: &Value) -> Option<String> {
    match parent["metadata"]["annotations"][APPLYSET_TOOLING_ANNOTATION].as_str() {
        Some(t) if t.starts_with(TOOLING_PREFIX) => None,
        Some(t) => Some(t.to_string()),
        None => Some("<none>".to_string()),
    }
}

/// The status a live parent holds, if readable.
pub fn status_of(parent: &Value) -> Option<SyncStatus> {
    SyncStatus::from_json(parent["data"][STATUS_DATA_KEY].as_str()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_carries_id_tooling_kinds_and_status() {
        let set = ApplySet::new("team-a");
        assert_eq!(
            set.id,
            applyset_id("kubectl-gitops", "team-a", "ConfigMap", "")
        );
        let kinds = BTreeSet::from([
            GroupKind::new("apps", "Deployment"),
            GroupKind::new("", "Service"),
        ]);
        let status = SyncStatus {
            message: "ok".into(),
            ..Default::default()
        };
        let parent = set.parent(&kinds, &status);
        assert_eq!(
            parent["metadata"]["labels"][APPLYSET_ID_LABEL],
            set.id.as_str()
        );
        assert_eq!(
            parent["metadata"]["annotations"][APPLYSET_GROUP_KINDS_ANNOTATION],
            "Deployment.apps,Service"
        );
        assert!(
            parent["metadata"]["annotations"][APPLYSET_TOOLING_ANNOTATION]
                .as_str()
                .unwrap()
                .starts_with("kubectl-gitops/v")
        );
        assert_eq!(group_kinds_of(&parent), kinds);
        assert_eq!(foreign_tooling(&parent), None);
        assert_eq!(status_of(&parent), Some(status));
        assert_eq!(
            set.selector(),
            format!("{APPLYSET_PART_OF_LABEL}={}", set.id)
        );
    }

    #[test]
    fn parents_of_other_tooling_are_told_apart() {
        let mut parent = ApplySet::new("a").parent(&BTreeSet::new(), &SyncStatus::default());
        parent["metadata"]["annotations"][APPLYSET_TOOLING_ANNOTATION] = json!("kubectl/v1.36.0");
        assert_eq!(foreign_tooling(&parent).as_deref(), Some("kubectl/v1.36.0"));
        parent["metadata"]["annotations"][APPLYSET_TOOLING_ANNOTATION] =
            json!("kubectl-gitopsx/v1");
        assert!(foreign_tooling(&parent).is_some());
        parent["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(APPLYSET_TOOLING_ANNOTATION);
        assert_eq!(foreign_tooling(&parent).as_deref(), Some("<none>"));
    }
}
