//! Per-object steps shared by the full sync and self-heal: break-glass, ignores, dry-run.

use jiff::Timestamp;
use kube::runtime::events::EventType;
use renderer::drift::IgnoreRules;
use renderer::protocol::{BreakGlass, BreakGlassEntry, event_reason};
use serde_json::Value;

use super::cluster::ApiError;
use super::plan::Desired;
use super::policy::{
    BreakGlassState, break_glass_state, mask_ignored, take_over_break_glass_fields, would_change,
};
use super::{Agent, Inner};
use crate::drift_history::DriftSeen;

pub enum Prepared {
    /// Applying would change nothing. `ignored`: fields left to someone else by an ignore rule
    /// whose live value differs from Git's (for the drift history).
    UpToDate {
        expired: Option<BreakGlass>,
        ignored: Vec<String>,
    },
    /// Applying `body` (compact JSON: a first sync holds one for every object) changes the live
    /// object.
    Apply {
        body: Box<str>,
        expired: Option<BreakGlass>,
        take_over: Option<TakeOver>,
        /// What the apply changes and who wrote it (for the drift history).
        drift: DriftSeen,
    },
    /// Break-glass is active: left as the operator set it.
    Held(BreakGlassEntry),
    /// Unreadable break-glass annotations: left alone and reported.
    Invalid(String),
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
        let git = body.clone();
        let masked = mask_ignored(rules, &mut body, live);
        let dry_run = self.cluster.apply(d, &body, true).await?;
        let take_over = live.and_then(|live| {
            Some(TakeOver {
                managed_fields: take_over_break_glass_fields(live)?,
                resource_version: live["metadata"]["resourceVersion"].as_str()?.to_string(),
            })
        });
        Ok(if take_over.is_some() || would_change(live, &dry_run) {
            Prepared::Apply {
                body: body.to_string().into_boxed_str(),
                expired,
                take_over,
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
