//! Per-object steps shared by the full sync and self-heal: break-glass, ignores, dry-run.

use jiff::Timestamp;
use kube::runtime::events::EventType;
use renderer::drift::IgnoreRules;
use renderer::protocol::{BreakGlass, BreakGlassEntry, REVISION_ANNOTATION, event_reason};
use serde_json::Value;

use super::cluster::ApiError;
use super::plan::Desired;
use super::policy::{
    BreakGlassState, break_glass_state, mask_ignored, take_over_break_glass_fields, would_change,
};
use super::{Agent, Inner};

pub enum Prepared {
    /// Applying would change nothing.
    UpToDate { expired: Option<BreakGlass> },
    /// Applying `body` (compact JSON: a first sync holds one for every object) changes the live
    /// object.
    Apply {
        body: Box<str>,
        expired: Option<BreakGlass>,
        take_over: Option<TakeOver>,
        /// Only the per-object revision annotation of older agents differs (its value: the
        /// commit the content came from); applying removes it.
        legacy_revision: Option<String>,
    },
    /// Break-glass is active: left as the operator set it.
    Held(BreakGlassEntry),
    /// Unreadable break-glass annotations: left alone and reported.
    Invalid(String),
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

impl Agent {
    /// Decides what one object needs, with a server-side dry-run as the judge of "changed".
    pub(super) async fn prepare(
        &self,
        d: &Desired,
        live: Option<&Value>,
        rules: &IgnoreRules,
        now: Timestamp,
    ) -> Result<Prepared, ApiError> {
        let expired = match break_glass_state(live, now) {
            BreakGlassState::Active(bg) => {
                return Ok(Prepared::Held(BreakGlassEntry {
                    kind: d.key.group_kind.kind.clone(),
                    name: d.key.name.clone(),
                    break_glass: bg,
                    active: true,
                }));
            }
            BreakGlassState::Invalid(why) => {
                return Ok(Prepared::Invalid(format!(
                    "not reconciled: invalid break-glass annotations: {why}"
                )));
            }
            BreakGlassState::Expired(bg) => Some(bg),
            BreakGlassState::None => None,
        };
        let mut body = d.body();
        mask_ignored(rules, &mut body, live);
        let dry_run = self.cluster.apply(d, &body, true).await?;
        let take_over = live.and_then(|live| {
            Some(TakeOver {
                managed_fields: take_over_break_glass_fields(live)?,
                resource_version: live["metadata"]["resourceVersion"].as_str()?.to_string(),
            })
        });
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
            }
        } else {
            Prepared::UpToDate { expired }
        })
    }

    /// The apply itself (after taking over break-glass fields, when there are some).
    pub(super) async fn write(
        &self,
        d: &Desired,
        body: &str,
        take_over: Option<TakeOver>,
    ) -> Result<Value, ApiError> {
        let body: Value = serde_json::from_str(body).expect("serialised from a Value by prepare");
        if let Some(t) = take_over {
            self.cluster
                .set_managed_fields(d, &t.resource_version, t.managed_fields)
                .await?;
        }
        self.cluster.apply(d, &body, false).await
    }

    /// After an expired break-glass object was reconciled back: record it, say so, and remove
    /// the annotations so the expiry is reported once.
    pub(super) async fn finish_break_glass(
        &self,
        inner: &mut Inner,
        expired: Vec<(Desired, BreakGlass)>,
    ) {
        for (d, bg) in expired {
            let note = format!(
                "break-glass by {} ({}) expired at {}; {} reconciled back to Git",
                bg.by, bg.reason, bg.until, d.key
            );
            let regarding = inner.status.object_ref(&d.key, &d.api_version);
            inner
                .status
                .event(
                    EventType::Normal,
                    event_reason::BREAK_GLASS_EXPIRED,
                    &note,
                    &regarding,
                )
                .await;
            tracing::info!(object = %d.key, "{note}");
            if let Err(e) = self
                .cluster
                .remove_annotations(&d, &BreakGlass::annotation_keys())
                .await
            {
                tracing::warn!(error = %e, "could not remove expired break-glass annotations");
            }
            inner.break_glass.insert(
                d.key.clone(),
                BreakGlassEntry {
                    kind: d.key.group_kind.kind.clone(),
                    name: d.key.name.clone(),
                    break_glass: bg,
                    active: false,
                },
            );
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
