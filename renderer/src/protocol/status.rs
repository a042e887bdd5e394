//! The agent's status, stored as JSON in the ApplySet parent ConfigMap (data key
//! [`super::STATUS_DATA_KEY`]). Field names are camelCase and stable: the plugin and users'
//! scripts read them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::BreakGlass;

/// How far back [`SyncStatus::recent_drift_corrections`] reaches.
pub const RECENT_DRIFT_CORRECTIONS_WINDOW_SECS: i64 = 3600;
/// Most entries [`SyncStatus::recent_drift_corrections`] keeps, so the parent stays small.
pub const RECENT_DRIFT_CORRECTIONS_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SyncResult {
    /// The namespace matches the tracked revision.
    Synced,
    /// Live state differs from Git and the agent is not correcting it (self-heal off, or pending).
    OutOfSync,
    /// Fetch, render, dry-run or apply failed; the last good state stays applied.
    Failed,
    /// The revision was refused on purpose: unsigned, or it declares objects the agent may not own.
    Refused,
    /// Reconciliation is switched off.
    Suspended,
    /// Not reconciled yet.
    #[default]
    Pending,
}

impl SyncResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "Synced",
            Self::OutOfSync => "OutOfSync",
            Self::Failed => "Failed",
            Self::Refused => "Refused",
            Self::Suspended => "Suspended",
            Self::Pending => "Pending",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// Repository URL (credentials never included).
    pub repo: String,
    /// Overlay path inside the repository.
    pub path: String,
    /// What the agent follows: a branch, tag, commit or semver range, as configured.
    pub tracked_ref: String,
    /// The commit the tracked ref resolved to at the last fetch.
    pub resolved_commit: Option<String>,
    /// The tag the revision resolved through, when it was a tag or a semver range.
    pub resolved_tag: Option<String>,
    pub last_attempted_revision: Option<String>,
    pub last_applied_revision: Option<String>,
    pub result: SyncResult,
    /// Why: a render error with file:line, a denied RBAC verb, an admission rejection, a refusal.
    pub message: String,
    pub applied: u64,
    pub pruned: u64,
    pub drift_corrected: u64,
    /// Members that would be pruned but were not (`--no-prune`, or the opt-out annotation).
    pub prune_skipped: Vec<PruneCandidate>,
    pub break_glass: Vec<BreakGlassEntry>,
    pub health: Vec<HealthEntry>,
    /// The agent's own ignore rules (`--ignore-field`), as `KIND:/json/pointer`, so that
    /// `kubectl gitops diff` leaves the same fields alone. Absent in status written before
    /// the key existed; read as empty then.
    #[serde(default)]
    pub ignore_fields: Vec<String>,
    /// When the agent reverted drift, newest last: at most [`RECENT_DRIFT_CORRECTIONS_MAX`]
    /// entries, none older than [`RECENT_DRIFT_CORRECTIONS_WINDOW_SECS`] when written, so
    /// `status -A` can show drift repaired in the last hour. Absent in older status: empty.
    #[serde(default)]
    pub recent_drift_corrections: Vec<Timestamp>,
    /// Foreign additions on managed objects at the last sync (fields Git never sets, written
    /// by someone else). Absent in older status: empty.
    #[serde(default)]
    pub foreign: Vec<super::ForeignEntry>,
    /// Hex SHA-256 of the rendered set last applied ([`crate::protocol::render_digest`]), so
    /// `render --digest` can be compared with it. Absent in older status.
    #[serde(default)]
    pub applied_digest: Option<String>,
    pub last_attempt_time: Option<Timestamp>,
    pub last_sync_time: Option<Timestamp>,
    /// A prune of more than `--prune-limit` of the set, held until approved for its revision.
    /// Absent when nothing is held (and in older status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_held: Option<PruneHold>,
    /// Break-glass annotations the agent did not honour (malformed, or starting in the
    /// future): the object was reconciled to Git and the annotations removed. Newest last, at
    /// most [`BREAK_GLASS_REJECTED_MAX`]. Absent in older status: empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub break_glass_rejected: Vec<BreakGlassRejected>,
    /// The self-management path (`--config-path`) whose `gitops-agent` ConfigMap sets
    /// [`SyncStatus::tracked_ref`]; `promote` and `rollback` edit it. Absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    /// Failed reconciles in a row (0 after a success). Absent in older status: 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
    /// When the agent tries again after a failure (back-off with jitter). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<Timestamp>,
    /// What the agent verifies (`--verify`): `none`, `ssh` or `openpgp`. Absent in older status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<String>,
    /// Set while the agent applies unverified commits fetched over a transport that does not
    /// authenticate the server (git://, http://): [`super::insecure_transport_warning`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Most entries [`SyncStatus::break_glass_rejected`] keeps.
pub const BREAK_GLASS_REJECTED_MAX: usize = 20;

/// A prune the mass-prune guard held back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneHold {
    /// The commit whose render would prune them; approval names exactly this commit.
    pub revision: String,
    /// Members of the set before the prune.
    pub inventory: u64,
    /// `--prune-limit`, in percent of the inventory.
    pub limit_percent: u8,
    /// What would be pruned (reason: why it was held).
    pub objects: Vec<PruneCandidate>,
}

impl PruneHold {
    /// One sentence for the status message: how many, of how many, and how to approve.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .objects
            .iter()
            .take(5)
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect();
        let more = self.objects.len().saturating_sub(names.len());
        let short: String = self.revision.chars().take(12).collect();
        format!(
            "prune held: {} of {} members ({}%) would be deleted at {short}, over --prune-limit {}%: {}{}; \
             approve with `kubectl gitops prune --approve {short}`",
            self.objects.len(),
            self.inventory,
            (self.objects.len() as u64 * 100)
                .checked_div(self.inventory)
                .unwrap_or(100),
            self.limit_percent,
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    }
}

/// Break-glass annotations that were not honoured, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassRejected {
    pub kind: String,
    pub name: String,
    pub message: String,
    pub time: Timestamp,
}

/// An object named by kind and name (the namespace is the agent's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneCandidate {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassEntry {
    pub kind: String,
    pub name: String,
    #[serde(flatten)]
    pub break_glass: BreakGlass,
    /// False once `until` has passed and the agent has reconciled the object back.
    pub active: bool,
    /// The `until` the annotations asked for, when it was beyond `--break-glass-max` and the
    /// agent clamped it (`until` is then the clamped end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthEntry {
    pub kind: String,
    pub name: String,
    /// Healthy, Progressing, Degraded or Unknown.
    pub state: String,
    pub message: String,
}

impl SyncStatus {
    /// Records one drift correction at `now`, dropping entries past the window or the cap.
    pub fn record_drift_correction(&mut self, now: Timestamp) {
        self.recent_drift_corrections.push(now);
        self.forget_old_drift_corrections(now);
    }

    /// Drops drift corrections older than the window, and the oldest beyond the cap.
    pub fn forget_old_drift_corrections(&mut self, now: Timestamp) {
        let window = jiff::SignedDuration::from_secs(RECENT_DRIFT_CORRECTIONS_WINDOW_SECS);
        self.recent_drift_corrections
            .retain(|t| now.duration_since(*t) <= window);
        let excess = self
            .recent_drift_corrections
            .len()
            .saturating_sub(RECENT_DRIFT_CORRECTIONS_MAX);
        self.recent_drift_corrections.drain(..excess);
    }

    /// Drift corrections within the window before `now` (a reader's clock may be later than
    /// the agent's last write).
    pub fn drift_corrections_since(&self, now: Timestamp) -> usize {
        let window = jiff::SignedDuration::from_secs(RECENT_DRIFT_CORRECTIONS_WINDOW_SECS);
        self.recent_drift_corrections
            .iter()
            .filter(|t| now.duration_since(**t) <= window)
            .count()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("status serialises: no maps with non-string keys")
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_camel_case_and_round_trip() {
        let status = SyncStatus {
            tracked_ref: "v1.5.0".into(),
            resolved_commit: Some("abc".into()),
            result: SyncResult::Refused,
            message: "commit abc is not signed by a trusted key".into(),
            ..Default::default()
        };
        let json = status.to_json();
        assert!(json.contains("\"trackedRef\": \"v1.5.0\""), "{json}");
        assert!(json.contains("\"result\": \"Refused\""), "{json}");
        assert_eq!(SyncStatus::from_json(&json).unwrap(), status);
    }

    #[test]
    fn recent_drift_corrections_keep_one_hour_and_a_cap() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let mut status = SyncStatus::default();
        status.record_drift_correction(t("2026-11-26T10:00:00Z"));
        status.record_drift_correction(t("2026-11-26T10:30:00Z"));
        assert_eq!(status.drift_corrections_since(t("2026-11-26T10:45:00Z")), 2);
        assert_eq!(status.drift_corrections_since(t("2026-11-26T11:15:00Z")), 1);
        status.record_drift_correction(t("2026-11-26T11:20:00Z"));
        assert_eq!(
            status.recent_drift_corrections,
            [t("2026-11-26T10:30:00Z"), t("2026-11-26T11:20:00Z")]
        );
        for _ in 0..RECENT_DRIFT_CORRECTIONS_MAX + 5 {
            status.record_drift_correction(t("2026-11-26T11:21:00Z"));
        }
        assert_eq!(
            status.recent_drift_corrections.len(),
            RECENT_DRIFT_CORRECTIONS_MAX
        );
        assert_eq!(
            status.recent_drift_corrections[0],
            t("2026-11-26T11:21:00Z"),
            "the oldest go first"
        );
        let json = status.to_json();
        assert!(json.contains("\"recentDriftCorrections\": ["), "{json}");
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        old.as_object_mut()
            .unwrap()
            .remove("recentDriftCorrections");
        let read = SyncStatus::from_json(&old.to_string()).unwrap();
        assert!(read.recent_drift_corrections.is_empty());
    }

    #[test]
    fn guard_fields_are_camel_case_absent_when_empty_and_optional_when_read() {
        let empty = SyncStatus::default().to_json();
        for key in ["pruneHeld", "breakGlassRejected", "configPath"] {
            assert!(!empty.contains(key), "{empty}");
        }
        let status = SyncStatus {
            config_path: Some("clusters/prod/agent".into()),
            prune_held: Some(PruneHold {
                revision: "c0ffee".into(),
                inventory: 10,
                limit_percent: 50,
                objects: vec![],
            }),
            break_glass_rejected: vec![BreakGlassRejected {
                kind: "Deployment".into(),
                name: "api".into(),
                message: "bad until".into(),
                time: "2026-11-26T10:00:00Z".parse().unwrap(),
            }],
            ..Default::default()
        };
        let json = status.to_json();
        for key in [
            "\"pruneHeld\"",
            "\"limitPercent\": 50",
            "\"breakGlassRejected\"",
            "\"configPath\": \"clusters/prod/agent\"",
        ] {
            assert!(json.contains(key), "{key} in {json}");
        }
        assert_eq!(SyncStatus::from_json(&json).unwrap(), status);
        assert_eq!(
            SyncStatus::from_json(&empty).unwrap(),
            SyncStatus::default()
        );
    }

    #[test]
    fn ignore_fields_are_published_and_optional_when_read() {
        let status = SyncStatus {
            ignore_fields: vec!["Deployment:/spec/replicas".into()],
            ..Default::default()
        };
        let json = status.to_json();
        assert!(json.contains("\"ignoreFields\": ["), "{json}");
        assert_eq!(SyncStatus::from_json(&json).unwrap(), status);

        // A status written by an agent that predates the key still reads.
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        old.as_object_mut().unwrap().remove("ignoreFields");
        let read = SyncStatus::from_json(&old.to_string()).unwrap();
        assert!(read.ignore_fields.is_empty());
    }
}
