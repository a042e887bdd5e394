//! Output order: kustomize's "legacy" kind-based order, or input order ("none"/"fifo").

use std::cmp::Ordering;

use super::resource::{ResId, Resource};

const ORDER_FIRST: [&str; 22] = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const ORDER_LAST: [&str; 2] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Custom first/last lists from `sortOptions.legacySortOptions`.
#[derive(Debug, Clone)]
pub struct LegacyOrder {
    pub first: Vec<String>,
    pub last: Vec<String>,
}

impl Default for LegacyOrder {
    fn default() -> Self {
        LegacyOrder {
            first: ORDER_FIRST.iter().map(|s| s.to_string()).collect(),
            last: ORDER_LAST.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl LegacyOrder {
    /// Position class of a kind: first-list kinds are negative, last-list kinds positive.
    fn rank(&self, kind: &str) -> i64 {
        if let Some(i) = self.first.iter().position(|k| k == kind) {
            return i as i64 - self.first.len() as i64;
        }
        if let Some(i) = self.last.iter().position(|k| k == kind) {
            return 1 + i as i64;
        }
        0
    }
}

/// `group_version_kind` with kustomize's placeholders for empty parts.
fn gvk_string(id: &ResId) -> String {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}_{}_{}",
        or(&id.group, "~G"),
        or(&id.version, "~V"),
        or(&id.kind, "~K")
    )
}

/// kustomize's `IdSlice` order: kind rank, then GVK text, then namespace|name.
pub fn legacy_sort(items: &mut Vec<Resource>, order: &LegacyOrder) {
    // (rank, gvk text, legacy id text, input index, (is a Namespace, in the core group))
    #[allow(clippy::type_complexity)]
    let mut keyed: Vec<(i64, String, String, usize, (bool, bool))> = items
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = r.id();
            let gvk = gvk_string(&id);
            // kustomize's `LegacySortString` uses the namespace as written, `~X` when empty.
            let ns = match r
                .value
                .pointer("/metadata/namespace")
                .and_then(serde_json::Value::as_str)
            {
                Some(ns) if !ns.is_empty() => ns.to_string(),
                _ => "~X".to_string(),
            };
            let legacy = format!("{gvk}|{ns}|{}", id.name);
            let namespace = (id.kind == "Namespace", id.group.is_empty());
            (order.rank(&id.kind), gvk, legacy, i, namespace)
        })
        .collect();
    keyed.sort_by(|a, b| {
        if a.1 != b.1 {
            return match a.0.cmp(&b.0) {
                // kustomize puts the core Namespace kind before any other group's.
                Ordering::Equal if a.4.0 && b.4.0 && (a.4.1 || b.4.1) => b.1.cmp(&a.1),
                Ordering::Equal => a.1.cmp(&b.1),
                o => o,
            };
        }
        a.2.cmp(&b.2)
    });
    let mut taken: Vec<Option<Resource>> = std::mem::take(items).into_iter().map(Some).collect();
    items.extend(keyed.into_iter().filter_map(|k| taken[k.3].take()));
}
