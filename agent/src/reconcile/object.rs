//! Per-object steps shared by the full sync and self-heal: break-glass, ignores, dry-run.

use jiff::{SignedDuration, Timestamp};
use kube::runtime::events::EventType;
use renderer::drift::IgnoreRules;
use renderer::protocol::{
    BREAK_GLASS_REJECTED_MAX, BreakGlass, BreakGlassEntry, BreakGlassRejected, REVISION_ANNOTATION,
    event_reason,
};
use serde_json::Value;

use super::cluster::ApiError;
use super::plan::Desired;
use super::policy::{
    BreakGlassState, Honoured, break_glass_state, mask_ignored, take_over_break_glass_fields,
    would_change,
};
use super::{Agent, Inner};
use crate::drift_history::DriftSeen;

/// How many times one write is tried on a fresh read of an object others keep writing.
const WRITE_ATTEMPTS: u32 = 5;

/// `expired`: a break-glass that is over (or was not honoured), to be finished once the object
/// is back to Git.
pub enum Prepared {
    /// Applying would change nothing. `ignored`: fields left to someone else by an ignore rule
    /// whose live value differs from Git's (for the drift history).
    UpToDate {
        expired: Option<BreakGlassEnd>,
        ignored: Vec<String>,
    },
    /// Applying `body` (compact JSON: a first sync holds one for every object) changes the live
    /// object.
    Apply {
        body: Box<str>,
        expired: Option<BreakGlassEnd>,
        take_over: Option<TakeOver>,
        /// Only the per-object revision annotation of older agents differs (its value: the
        /// commit the content came from); applying removes it.
        legacy_revision: Option<String>,
        /// What the apply changes and who wrote it (for the drift history).
        drift: DriftSeen,
    },
    /// Break-glass is active: left as the operator set it.
    Held(BreakGlassEntry),
    /// Someone else's object of the same name: never applied (so never a member, never pruned).
    /// Says whose and how to opt in.
    NotAdopted(String),
}

/// Why the break-glass annotations of an object reconciled to Git are removed.
pub enum BreakGlassEnd {
    Expired(Honoured),
    /// Not honoured: malformed, or starting in the future.
    Rejected(String),
}

/// The old per-object revision annotation, when it is all that sets `live` apart from the
/// dry-run of Git's object.
fn legacy_revision_only(live: &Value, dry_run: &Value) -> Option<String> {
    let revision = live["metadata"]["annotations"][REVISION_ANNOTATION]
        .as_str()?
        .to_string();
    let mut without = live.clone();
    let annotations = without["metadata"]["annotations"].as_object_mut()?;
    annotations.remove(REVISION_ANNOTATION);
    if annotations.is_empty() {
        without["metadata"].as_object_mut()?.remove("annotations");
    }
    (!would_change(Some(&without), dry_run)).then_some(revision)
}

/// A break-glass is over: its manager's fields become the agent's before the apply, so the
/// apply removes those Git does not declare.
pub struct TakeOver {
    resource_version: String,
    managed_fields: Vec<Value>,
}

impl TakeOver {
    /// The break-glass fields of `live` to take over, if it has any.
    fn of(live: &Value) -> Option<Self> {
        Some(Self {
            managed_fields: take_over_break_glass_fields(live)?,
            resource_version: live["metadata"]["resourceVersion"].as_str()?.to_string(),
        })
    }
}

impl Agent {
    /// Decides what one object needs, with a server-side dry-run as the judge of "changed".
    pub(super) async fn prepare(
        &self,
        d: &Desired,
        live: Option<&Value>,
        rules: &IgnoreRules,
        now: Timestamp,
    ) -> Result<Prepared, ApiError> {
        if let Some(why) = renderer::protocol::adoption(live, &self.set.id).refusal() {
            return Ok(Prepared::NotAdopted(why));
        }
        let expired = match break_glass_state(live, now, self.break_glass_max()) {
            BreakGlassState::Active(h) => {
                return Ok(Prepared::Held(BreakGlassEntry {
                    kind: d.key.group_kind.kind.clone(),
                    name: d.key.name.clone(),
                    break_glass: h.break_glass,
                    active: true,
                    requested_until: h.requested_until,
                }));
            }
            BreakGlassState::Rejected(why) => Some(BreakGlassEnd::Rejected(why)),
            BreakGlassState::Expired(h) => Some(BreakGlassEnd::Expired(h)),
            BreakGlassState::None => None,
        };
        let mut body = d.body();
        let git = body.clone();
        let masked = mask_ignored(rules, &mut body, live);
        let dry_run = self.cluster.apply(d, &body, true).await?;
        let take_over = live.and_then(TakeOver::of);
        Ok(if take_over.is_some() || would_change(live, &dry_run) {
            let legacy_revision = match live {
                Some(live) if take_over.is_none() => legacy_revision_only(live, &dry_run),
                _ => None,
            };
            Prepared::Apply {
                body: body.to_string().into_boxed_str(),
                expired,
                take_over,
                legacy_revision,
                drift: live.map(|l| DriftSeen::of(l, &dry_run)).unwrap_or_default(),
            }
        } else {
            let ignored = live.map_or_else(Vec::new, |l| {
                masked
                    .into_iter()
                    .filter(|p| git.pointer(p) != l.pointer(p))
                    .collect()
            });
            Prepared::UpToDate { expired, ignored }
        })
    }

    /// The apply itself (after taking over break-glass fields, when there are some), made only
    /// on the version of the object it was judged on (`judged_at`): a forced apply must never
    /// land on a break-glass that began after the judgement. When someone else wrote the object
    /// in between, it is read again and written on that version, unless it is now held or no
    /// longer ours to write; `None` then says it was left alone.
    pub(super) async fn write(
        &self,
        d: &Desired,
        body: &str,
        mut judged_at: Option<String>,
        mut take_over: Option<TakeOver>,
    ) -> Result<Option<Value>, ApiError> {
        let mut body: Value =
            serde_json::from_str(body).expect("serialised from a Value by prepare");
        let mut attempt = 1;
        loop {
            // An object deleted since is created again: the precondition guards updates only.
            let written = self
                .write_at(d, &mut body, judged_at.take(), take_over.take())
                .await;
            match written {
                Err(e) if e.is_conflict() && attempt < WRITE_ATTEMPTS => {
                    attempt += 1;
                    let live = self.cluster.get(d).await?;
                    if let Some(why) = self.left_alone(live.as_ref()) {
                        tracing::info!(object = %d.key, "not written: {why}");
                        return Ok(None);
                    }
                    judged_at = live
                        .as_ref()
                        .and_then(|l| l["metadata"]["resourceVersion"].as_str())
                        .map(str::to_string);
                    take_over = live.as_ref().and_then(TakeOver::of);
                }
                other => return other.map(Some),
            }
        }
    }

    async fn write_at(
        &self,
        d: &Desired,
        body: &mut Value,
        mut at: Option<String>,
        take_over: Option<TakeOver>,
    ) -> Result<Value, ApiError> {
        if let Some(t) = take_over {
            at = self
                .cluster
                .set_managed_fields(d, &t.resource_version, t.managed_fields)
                .await?;
        }
        // resourceVersion in an apply body is a precondition, and no field anyone owns.
        if let Some(meta) = body["metadata"].as_object_mut() {
            match at {
                Some(rv) => meta.insert("resourceVersion".into(), rv.into()),
                None => meta.remove("resourceVersion"),
            };
        }
        self.cluster.apply(d, body, false).await
    }

    fn break_glass_max(&self) -> SignedDuration {
        SignedDuration::try_from(self.config.break_glass_max).unwrap_or(SignedDuration::MAX)
    }

    /// Why an object re-read before a write must not be written after all.
    fn left_alone(&self, live: Option<&Value>) -> Option<String> {
        if let Some(why) = renderer::protocol::adoption(live, &self.set.id).refusal() {
            return Some(why);
        }
        match break_glass_state(live, Timestamp::now(), self.break_glass_max()) {
            BreakGlassState::Active(h) => Some(format!(
                "a break-glass by {} ({}) began while it was being reconciled",
                h.break_glass.by, h.break_glass.reason
            )),
            _ => None,
        }
    }

    /// After an expired or rejected break-glass object was reconciled back: record it, say so,
    /// and remove the annotations so it is reported once.
    pub(super) async fn finish_break_glass(
        &self,
        inner: &mut Inner,
        ended: Vec<(Desired, BreakGlassEnd)>,
    ) {
        for (d, end) in ended {
            let regarding = inner.status.object_ref(&d.key, &d.api_version);
            let (type_, reason, note) = match &end {
                BreakGlassEnd::Expired(h) => {
                    let bg = &h.break_glass;
                    let clamped = h
                        .requested_until
                        .map(|t| format!(" (asked for {t}, beyond --break-glass-max)"))
                        .unwrap_or_default();
                    let note = format!(
                        "break-glass by {} ({}) expired at {}{clamped}; {} reconciled back to Git",
                        bg.by, bg.reason, bg.until, d.key
                    );
                    (EventType::Normal, event_reason::BREAK_GLASS_EXPIRED, note)
                }
                BreakGlassEnd::Rejected(why) => {
                    let note = format!(
                        "break-glass on {} not honoured: {why}; reconciled to Git and the annotations removed",
                        d.key
                    );
                    (EventType::Warning, event_reason::BREAK_GLASS_REJECTED, note)
                }
            };
            inner.status.event(type_, reason, &note, &regarding).await;
            tracing::info!(object = %d.key, "{note}");
            if let Err(e) = self
                .cluster
                .remove_annotations(&d, &BreakGlass::annotation_keys())
                .await
            {
                tracing::warn!(error = %e, "could not remove break-glass annotations");
            }
            match end {
                BreakGlassEnd::Expired(h) => {
                    inner.break_glass.insert(
                        d.key.clone(),
                        BreakGlassEntry {
                            kind: d.key.group_kind.kind.clone(),
                            name: d.key.name.clone(),
                            break_glass: h.break_glass,
                            active: false,
                            requested_until: h.requested_until,
                        },
                    );
                }
                BreakGlassEnd::Rejected(why) => {
                    inner.break_glass.remove(&d.key);
                    let rejected = &mut inner.status.status.break_glass_rejected;
                    rejected.push(BreakGlassRejected {
                        kind: d.key.group_kind.kind.clone(),
                        name: d.key.name.clone(),
                        message: why,
                        time: Timestamp::now(),
                    });
                    let excess = rejected.len().saturating_sub(BREAK_GLASS_REJECTED_MAX);
                    rejected.drain(..excess);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_old_revision_annotation_alone_is_a_migration() {
        let dry_run = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        let live = json!({"metadata": {"name": "a", "labels": {"x": "1"},
            "annotations": {REVISION_ANNOTATION: "c0ffee"}}, "data": {"k": "v"}});
        assert_eq!(
            legacy_revision_only(&live, &dry_run).as_deref(),
            Some("c0ffee")
        );
        let changed = json!({"metadata": {"name": "a", "labels": {"x": "1"},
            "annotations": {REVISION_ANNOTATION: "c0ffee"}}, "data": {"k": "old"}});
        assert_eq!(legacy_revision_only(&changed, &dry_run), None);
        let kept = json!({"metadata": {"name": "a", "labels": {"x": "1"},
            "annotations": {REVISION_ANNOTATION: "c0ffee", "other": "y"}}, "data": {"k": "v"}});
        let dry_kept = json!({"metadata": {"name": "a", "labels": {"x": "1"},
            "annotations": {"other": "y"}}, "data": {"k": "v"}});
        assert_eq!(
            legacy_revision_only(&kept, &dry_kept).as_deref(),
            Some("c0ffee")
        );
        assert_eq!(legacy_revision_only(&dry_run, &dry_run), None);
    }
}
