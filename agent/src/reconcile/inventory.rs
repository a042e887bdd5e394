//! The ApplySet parent is read again at the start of every cycle, before anything is written.
//!
//! It holds the set's kinds, which decide where members of kinds Git dropped are looked for.
//! A failed read skips the cycle (writing the parent then would replace the kinds with only
//! those Git declares now, and members of a dropped kind would never be pruned); a parent
//! deleted is written again with the kinds of the members still live; a kinds annotation edited
//! by hand is put back, keeping every kind either side knows of; and a parent another tool made
//! (`kubectl apply --applyset=…` computes the same ID) stops the agent from applying, pruning or
//! writing status at all.

use std::collections::BTreeSet;

use kube::api::ListParams;
use kube::discovery::{Discovery, Scope, verbs};
use renderer::protocol::{APPLYSET_TOOLING_ANNOTATION, GroupKind, PARENT_NAME};

use super::cluster::ApiError;
use super::{Agent, Inner, SyncError};
use crate::applyset;

impl Agent {
    /// Re-reads the parent and settles the set's kinds; refuses a parent of other tooling.
    pub(super) async fn refresh_inventory(&self, inner: &mut Inner) -> Result<(), SyncError> {
        if !inner.status.loaded() {
            inner.status.load().await?;
        }
        let live = inner.status.get_parent().await?;
        let recorded = match &live {
            Some(parent) => {
                if let Some(tooling) = applyset::foreign_tooling(parent) {
                    inner.status.foreign_parent = Some(tooling.clone());
                    return Err(SyncError::Refused(format!(
                        "ConfigMap {PARENT_NAME} in namespace {} is an ApplySet parent made by {tooling} ({APPLYSET_TOOLING_ANNOTATION}), not by this agent; its set has the agent's ID, so nothing is applied, pruned or written until it is removed",
                        self.namespace
                    )));
                }
                inner.status.foreign_parent = None;
                applyset::group_kinds_of(parent)
            }
            None => {
                let kinds = self.live_member_kinds().await?;
                if inner.status.status.last_applied_revision.is_some() || !kinds.is_empty() {
                    tracing::warn!(kinds = ?kinds, "the ApplySet parent is gone; writing it again with the kinds of the live members");
                }
                kinds
            }
        };
        if live.is_none() || recorded != inner.status.group_kinds {
            if live.is_some() {
                tracing::warn!(
                    live = ?recorded,
                    known = ?inner.status.group_kinds,
                    "the parent's kinds were changed by someone else; keeping every kind either side knows of"
                );
            }
            inner.status.group_kinds.extend(recorded);
            inner.status.forget_written();
        }
        Ok(())
    }

    /// The kinds that have members of this set in the namespace, found by listing every
    /// namespaced kind the agent may list with the set's label (kinds it may not list are
    /// skipped: it could not have applied them either).
    async fn live_member_kinds(&self) -> Result<BTreeSet<GroupKind>, SyncError> {
        let client = self.cluster.client();
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .map_err(|e| ApiError::new("discovery", &e))?;
        let selector = self.set.selector();
        let mut kinds = BTreeSet::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                    continue;
                }
                let api: kube::Api<kube::api::DynamicObject> =
                    kube::Api::namespaced_with(client.clone(), &self.namespace, &ar);
                match api
                    .list_metadata(&ListParams::default().labels(&selector).limit(1))
                    .await
                {
                    Ok(list) if !list.items.is_empty() => {
                        kinds.insert(GroupKind::new(ar.group.clone(), ar.kind.clone()));
                    }
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if (403..=405).contains(&s.code) => {}
                    Err(e) => {
                        return Err(ApiError::new(
                            format!("list {} in {}", ar.kind, self.namespace),
                            &e,
                        )
                        .into());
                    }
                }
            }
        }
        Ok(kinds)
    }
}
