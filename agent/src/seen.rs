//! The resourceVersion of every member as the watches last saw it.
//!
//! A resync of an unchanged commit skips the dry-run of a member whose version here is the one
//! the agent last confirmed (its own write, or a dry-run that changed nothing): nothing touched
//! it since. Only kinds whose watch has finished its initial list count as seen.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use renderer::protocol::GroupKind;

use crate::reconcile::plan::ObjectKey;

#[derive(Default)]
pub struct SeenVersions {
    inner: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    versions: HashMap<ObjectKey, String>,
    /// Kinds whose watch has listed everything and is following changes.
    ready: HashSet<GroupKind>,
}

impl SeenVersions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, key: ObjectKey, resource_version: String) {
        self.lock().versions.insert(key, resource_version);
    }

    pub fn forget(&self, key: &ObjectKey) {
        self.lock().versions.remove(key);
    }

    /// A watch (re)starts listing `gk`: until it is done, nothing of that kind counts as seen.
    pub fn restart(&self, gk: &GroupKind) {
        let mut seen = self.lock();
        seen.ready.remove(gk);
        seen.versions.retain(|k, _| k.group_kind != *gk);
    }

    pub fn listed(&self, gk: &GroupKind) {
        self.lock().ready.insert(gk.clone());
    }

    /// The version the watch of `key`'s kind last saw, when that watch is following changes.
    pub fn version(&self, key: &ObjectKey) -> Option<String> {
        let seen = self.lock();
        if !seen.ready.contains(&key.group_kind) {
            return None;
        }
        seen.versions.get(key).cloned()
    }

    /// Whether every kind in `kinds` is watched and listed.
    pub fn covers<'a>(&self, mut kinds: impl Iterator<Item = &'a GroupKind>) -> bool {
        let seen = self.lock();
        kinds.all(|gk| seen.ready.contains(gk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group_kind: GroupKind::new("", kind),
            name: name.into(),
        }
    }

    #[test]
    fn a_kind_counts_only_once_listed_and_a_restart_forgets_it() {
        let seen = SeenVersions::default();
        let svc = GroupKind::new("", "Service");
        seen.record(key("Service", "a"), "5".into());
        assert_eq!(seen.version(&key("Service", "a")), None);
        assert!(!seen.covers([&svc].into_iter()));
        seen.listed(&svc);
        assert_eq!(seen.version(&key("Service", "a")).as_deref(), Some("5"));
        assert!(seen.covers([&svc].into_iter()));
        seen.forget(&key("Service", "a"));
        assert_eq!(seen.version(&key("Service", "a")), None);
        seen.record(key("Service", "b"), "7".into());
        seen.restart(&svc);
        assert_eq!(seen.version(&key("Service", "b")), None);
        assert!(!seen.covers([&svc].into_iter()));
    }
}
