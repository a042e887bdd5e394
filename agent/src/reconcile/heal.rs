//! Self-heal: put objects of the last good revision back when someone else changed or deleted
//! them, without fetching Git again.

use std::collections::BTreeSet;

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::events::EventType;
use renderer::protocol::{GroupKind, SyncResult, event_reason};

use super::object::Prepared;
use super::plan::{Desired, ObjectKey};
use super::{Agent, CONCURRENCY, SyncError};
use crate::drift_history::DriftAction;

/// What woke self-heal up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealRequest {
    /// A watch saw this object change (at this resourceVersion) or disappear (`None`).
    Object(ObjectKey, Option<String>),
    /// Check every object (the agent resumed from its cached render, or a break-glass
    /// expired).
    All,
    /// A watch finished listing this kind: check the members it did not list at the version
    /// the agent last confirmed.
    Listed(GroupKind),
}

impl Agent {
    /// Heals the requested objects (all of them when `keys` is `None`).
    pub async fn heal(&self, keys: Option<BTreeSet<ObjectKey>>) -> Result<(), SyncError> {
        let mut inner = self.inner.lock().await;
        let Some(last_good) = inner.last_good.clone() else {
            return Ok(());
        };
        // Another tool's parent has the set's ID: writing members would join its set.
        if inner.status.foreign_parent.is_some() {
            return Ok(());
        }
        let targets: Vec<_> = last_good
            .applies
            .iter()
            .filter(|d| keys.as_ref().is_none_or(|k| k.contains(&d.key)))
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now();
        let rules = self.rules(&last_good.applies).await?;
        // Several at a time, in order; only whether the object existed is kept of its live state.
        let rules = &rules;
        // Made lazily (at most CONCURRENCY exist), from an index: a closure taking a reference
        // trips up the compiler's Send check of the stream.
        let one = |i: usize| {
            let d: &Desired = targets[i];
            async move {
                let live = self.cluster.get(d).await?;
                // The watches refresh health too: a controller's status update lands here.
                let health = match &live {
                    Some(obj) => self.health.assess(obj).await,
                    None => crate::health::missing(&d.key.group_kind.kind, &d.key.name),
                };
                let prepared = self.prepare(d, live.as_ref(), rules, now).await;
                let rv = live
                    .as_ref()
                    .and_then(|o| o["metadata"]["resourceVersion"].as_str())
                    .map(str::to_string);
                Ok::<_, SyncError>((d, live.is_some(), prepared, rv, health))
            }
        };
        let judged: Vec<_> = futures::stream::iter((0..targets.len()).map(one))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut expired = Vec::new();
        let mut changed = false;
        for j in judged {
            let (d, existed, prepared, rv, health) = j?;
            // Kept in both: a light resync publishes `inner.health`, not what the status holds.
            if inner.health.contains_key(&d.key) {
                inner.health.insert(d.key.clone(), health.clone());
            }
            changed |= crate::health::replace(&mut inner.status.status.health, health);
            let prepared = match prepared {
                Ok(p) => p,
                Err(e) => {
                    // The last good revision no longer applies (e.g. a webhook changed): report.
                    changed |= inner
                        .out_of_sync
                        .insert(d.key.clone(), e.to_string())
                        .is_none();
                    continue;
                }
            };
            if !matches!(prepared, Prepared::Held(_))
                && inner.break_glass.get(&d.key).is_some_and(|e| e.active)
            {
                inner.break_glass.remove(&d.key);
                changed = true;
            }
            match prepared {
                Prepared::UpToDate {
                    expired: bg,
                    ignored,
                } => {
                    if bg.is_none()
                        && let Some(rv) = rv
                    {
                        inner.own_versions.insert(d.key.clone(), rv);
                    }
                    if inner.content_changed.remove(&d.key) {
                        inner
                            .status
                            .members
                            .record(&d.key.to_string(), &last_good.revision);
                        changed = true;
                    }
                    expired.extend(bg.map(|bg| (d.clone(), bg)));
                    if keys.is_some() && !ignored.is_empty() {
                        inner
                            .drift_history
                            .push_new(d, ignored, None, DriftAction::Ignored);
                    }
                    changed |= inner.out_of_sync.remove(&d.key).is_some();
                }
                Prepared::NotAdopted(why) => {
                    changed |= inner.out_of_sync.insert(d.key.clone(), why).is_none();
                }
                Prepared::Held(entry) => {
                    // A light resync records a hold it is the first to see, as a repair does.
                    let new_hold = !inner.break_glass.get(&d.key).is_some_and(|e| e.active);
                    if keys.is_some() || new_hold {
                        inner.drift_history.push_new(
                            d,
                            Vec::new(),
                            None,
                            DriftAction::HeldByBreakGlass,
                        );
                    }
                    changed |=
                        inner.break_glass.insert(d.key.clone(), entry.clone()) != Some(entry);
                }
                Prepared::Apply {
                    body,
                    expired: bg,
                    take_over,
                    legacy_revision,
                    drift,
                } => {
                    if !self.config.self_heal_enabled() && bg.is_none() {
                        let why = "differs from Git (self-heal is off)".to_string();
                        changed |= inner.out_of_sync.insert(d.key.clone(), why).is_none();
                        continue;
                    }
                    // Held since it was judged: the watch reports the hold.
                    let Some(applied) = self.write(d, &body, rv, take_over).await? else {
                        continue;
                    };
                    if let Some(rv) = applied["metadata"]["resourceVersion"].as_str() {
                        inner.own_versions.insert(d.key.clone(), rv.to_string());
                    }
                    // A repair restores content; the commit that last changed it stays, unless
                    // the parent has no record of it yet.
                    let member = d.key.to_string();
                    if inner.content_changed.remove(&d.key) {
                        inner.status.members.record(&member, &last_good.revision);
                    } else if !inner.status.members.contains(&member) {
                        let from = legacy_revision.as_deref().unwrap_or(&last_good.revision);
                        inner.status.members.record(&member, from);
                    }
                    inner.out_of_sync.remove(&d.key);
                    changed = true;
                    if bg.is_some() {
                        expired.extend(bg.map(|bg| (d.clone(), bg)));
                    } else {
                        inner.drift_history.push_new(
                            d,
                            drift.paths,
                            drift.manager,
                            DriftAction::Repaired,
                        );
                        inner.status.status.drift_corrected += 1;
                        inner
                            .status
                            .status
                            .record_drift_correction(Timestamp::now());
                        self.metrics.add_drift_corrected(1);
                        let what = if !existed {
                            "recreated"
                        } else {
                            "reverted changes made outside Git"
                        };
                        let note = format!("{} {what} (revision {})", d.key, last_good.revision);
                        let regarding = inner.status.object_ref(&d.key, &d.api_version);
                        inner
                            .status
                            .event(
                                EventType::Normal,
                                event_reason::DRIFT_CORRECTED,
                                &note,
                                &regarding,
                            )
                            .await;
                        tracing::info!(object = %d.key, "{note}");
                    }
                }
            }
        }
        changed |= !expired.is_empty();
        self.finish_break_glass(&mut inner, expired).await;
        // A failed sync keeps its message; heal only refines Synced/OutOfSync.
        let current = inner.status.status.result;
        if changed && matches!(current, SyncResult::Synced | SyncResult::OutOfSync) {
            self.summarise(&mut inner);
        } else if changed {
            inner.publish_break_glass();
        }
        inner.status.flush().await?;
        if let Err(e) = inner.drift_history.flush(&self.cluster).await {
            tracing::warn!(error = %e, "drift history not written");
        }
        Ok(())
    }

    /// Members of `gk` in the last good revision whose version, as the kind's watch listed it,
    /// is not the one the agent last confirmed: deleted or changed while no watch followed the
    /// kind (before its first list, or while it was down), so no watch event reports them.
    pub async fn unconfirmed(&self, gk: &GroupKind) -> Vec<ObjectKey> {
        let inner = self.inner.lock().await;
        let Some(last_good) = &inner.last_good else {
            return Vec::new();
        };
        last_good
            .applies
            .iter()
            .filter(|d| d.key.group_kind == *gk)
            .filter(|d| self.seen.version(&d.key).as_ref() != inner.own_versions.get(&d.key))
            .map(|d| d.key.clone())
            .collect()
    }

    /// Whether a watch event is just the echo of the agent's own write.
    pub async fn is_own_write(&self, key: &ObjectKey, resource_version: &str) -> bool {
        self.inner
            .lock()
            .await
            .own_versions
            .get(key)
            .is_some_and(|rv| rv == resource_version)
    }
}
