//! The mass-prune guard: one sync never deletes more than `--prune-limit` of the set, unless
//! `kubectl gitops prune --approve` named that exact revision on the parent. A bad merge that
//! drops most of an overlay then holds instead of emptying the namespace.

use kube::runtime::events::EventType;
use renderer::protocol::{
    APPLYSET_PART_OF_LABEL, PARENT_NAME, PRUNE_APPROVED_ANNOTATION, PruneCandidate, PruneHold,
    event_reason,
};
use serde_json::json;

use super::cluster::ApiError;
use super::plan::{Desired, LiveMember, Prunes};
use super::{Agent, Inner};

/// How many members the set has now (what the share is taken of).
pub fn inventory(members: &[LiveMember], set_id: &str) -> u64 {
    members
        .iter()
        .filter(|m| m.labels.get(APPLYSET_PART_OF_LABEL).map(String::as_str) == Some(set_id))
        .count() as u64
}

/// Whether pruning `prunes` of `inventory` members goes beyond `limit_percent`.
pub fn over_limit(prunes: usize, inventory: u64, limit_percent: u8) -> bool {
    prunes as u64 * 100 > inventory * u64::from(limit_percent)
}

/// `plan` with its prunes held back when they are over the limit and `approved` is not
/// `revision`; the held objects stay members (their kinds stay on the parent).
pub fn hold(
    mut plan: Prunes,
    inventory: u64,
    limit_percent: u8,
    revision: &str,
    approved: Option<&str>,
) -> (Prunes, Option<PruneHold>) {
    if !over_limit(plan.prunes.len(), inventory, limit_percent) || approved == Some(revision) {
        return (plan, None);
    }
    let reason = format!("over --prune-limit {limit_percent}%: awaiting approval");
    let objects = plan
        .prunes
        .drain(..)
        .map(|m| {
            plan.group_kinds.insert(m.key.group_kind.clone());
            PruneCandidate {
                api_version: m.api_version,
                kind: m.key.group_kind.kind,
                name: m.key.name,
                reason: reason.clone(),
            }
        })
        .collect();
    let hold = PruneHold {
        revision: revision.to_string(),
        inventory,
        limit_percent,
        objects,
    };
    (plan, Some(hold))
}

impl Agent {
    /// Applies the guard to a sync's prunes, records the hold in status, and says so once in
    /// an Event. The parent is read only when the prune is over the limit.
    pub(super) async fn guard_prunes(
        &self,
        inner: &mut Inner,
        plan: Prunes,
        inventory: u64,
        revision: &str,
    ) -> Result<Prunes, ApiError> {
        let limit = self.config.prune_limit;
        let approved = if over_limit(plan.prunes.len(), inventory, limit) {
            self.approved_prune().await?
        } else {
            None
        };
        let (plan, held) = hold(plan, inventory, limit, revision, approved.as_deref());
        if let Some(h) = &held
            && inner.status.status.prune_held.as_ref() != Some(h)
        {
            let note = h.describe();
            tracing::warn!("{note}");
            let parent = inner.status.parent_ref();
            inner
                .status
                .event(EventType::Warning, event_reason::PRUNE_HELD, &note, &parent)
                .await;
        }
        if held.is_none() && approved.as_deref() == Some(revision) {
            tracing::info!(%revision, "mass prune approved on the parent");
        }
        inner.status.status.prune_held = held;
        Ok(plan)
    }

    /// The revision the plugin approved a mass prune for, from the live parent.
    async fn approved_prune(&self) -> Result<Option<String>, ApiError> {
        let parent = Desired::from_object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": PARENT_NAME}}),
            None,
        )
        .expect("the parent has an identity");
        Ok(self.cluster.get(&parent).await?.and_then(|p| {
            p["metadata"]["annotations"][PRUNE_APPROVED_ANNOTATION]
                .as_str()
                .map(str::to_string)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use renderer::protocol::GroupKind;

    use super::*;
    use crate::reconcile::plan::ObjectKey;

    const SET: &str = "applyset-x-v1";

    fn member(name: &str) -> LiveMember {
        LiveMember {
            key: ObjectKey {
                group_kind: GroupKind::new("", "ConfigMap"),
                name: name.into(),
            },
            api_version: "v1".into(),
            uid: None,
            labels: BTreeMap::from([(APPLYSET_PART_OF_LABEL.to_string(), SET.to_string())]),
            annotations: BTreeMap::new(),
        }
    }

    fn plan(n: usize) -> Prunes {
        Prunes {
            prunes: (0..n).map(|i| member(&format!("cm-{i}"))).collect(),
            prune_skipped: vec![],
            group_kinds: BTreeSet::new(),
        }
    }

    #[test]
    fn inventory_counts_only_members_of_the_set() {
        let mut stranger = member("other");
        stranger.labels.clear();
        assert_eq!(inventory(&[member("a"), member("b"), stranger], SET), 2);
    }

    #[test]
    fn the_limit_is_a_strict_share() {
        assert!(!over_limit(5, 10, 50), "exactly half is allowed at 50%");
        assert!(over_limit(6, 10, 50));
        assert!(over_limit(1, 10, 0), "0% holds every prune");
        assert!(!over_limit(10, 10, 100), "100% never holds");
        assert!(!over_limit(0, 0, 50));
    }

    #[test]
    fn over_the_limit_everything_is_held_and_named() {
        let (p, held) = hold(plan(8), 10, 50, "c0ffee", None);
        assert!(p.prunes.is_empty());
        assert_eq!(
            p.group_kinds,
            BTreeSet::from([GroupKind::new("", "ConfigMap")])
        );
        let held = held.expect("held");
        assert_eq!(held.revision, "c0ffee");
        assert_eq!((held.inventory, held.limit_percent), (10, 50));
        assert_eq!(held.objects.len(), 8);
        assert_eq!(held.objects[0].name, "cm-0");
        let text = held.describe();
        assert!(
            text.starts_with("prune held: 8 of 10 members (80%)")
                && text.contains("ConfigMap/cm-0, ConfigMap/cm-1")
                && text.contains("and 3 more")
                && text.contains("kubectl gitops prune --approve c0ffee"),
            "{text}"
        );
    }

    #[test]
    fn approval_is_for_one_exact_revision() {
        let (p, held) = hold(plan(8), 10, 50, "c0ffee", Some("c0ffee"));
        assert_eq!((p.prunes.len(), held), (8, None));
        let (p, held) = hold(plan(8), 10, 50, "c0ffee", Some("beef"));
        assert!(
            p.prunes.is_empty() && held.is_some(),
            "another revision's approval"
        );
        let (p, held) = hold(plan(4), 10, 50, "c0ffee", None);
        assert_eq!((p.prunes.len(), held), (4, None), "under the limit");
    }
}
