//! `kubectl gitops status -A`: one row per agent, over namespaces and clusters, problems
//! first. Each row is the single-namespace [`StatusReport`] of the parent, summarised; this
//! module is pure (the listing is in [`super::fleet_list`]) so every rule is unit-tested.

use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use renderer::protocol::{APPLYSET_TOOLING_ANNOTATION, SyncResult, TOOLING_NAME};
use serde::Serialize;

use super::{StatusReport, build, result_style};
use crate::cluster::tracked;
use crate::git::local_repo::short;
use crate::output::printer::Style;
use crate::output::report::{relative, table};

/// Widest message cell of the text table; `-o json` has the whole message.
const MESSAGE_WIDTH: usize = 72;

/// What `status -A` found. `-o json|yaml` prints `entries` (a list, for scripts); the
/// unreadable namespaces go to stderr then.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetReport {
    /// Problems first, then by context and namespace.
    pub entries: Vec<FleetEntry>,
    /// Namespaces that could not be read, per context.
    pub unreadable: Vec<Unreadable>,
}

/// One agent, as its ApplySet parent says.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetEntry {
    /// The kubeconfig context the agent was found through.
    pub context: String,
    pub namespace: String,
    pub tracked_ref: String,
    /// The commit the ref resolved to, else the last applied one.
    pub commit: Option<String>,
    /// The agent's result, or `Unknown` when its status cannot be read.
    pub result: String,
    /// The worst health of the managed objects: Degraded, Progressing, Unknown, Healthy.
    pub health: String,
    /// Managed objects reported Degraded.
    pub degraded: usize,
    pub last_sync_time: Option<Timestamp>,
    pub last_attempt_time: Option<Timestamp>,
    /// Drift the agent reverted within the hour before the command ran.
    pub drift_repaired_last_hour: usize,
    /// Objects under an active break-glass override.
    pub break_glass_active: usize,
    pub message: String,
    /// Failed, refused, unreadable, degraded, out of sync or not synced yet.
    pub problem: bool,
    /// `result` parsed; `None` when the status could not be read.
    #[serde(skip)]
    pub sync: Option<SyncResult>,
}

/// Namespaces of one context whose parent could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unreadable {
    pub context: String,
    /// Empty when the whole cluster could not be read (see `reason`).
    pub namespaces: Vec<String>,
    pub reason: String,
}

/// Whether a ConfigMap is a parent this project's agent wrote (the label selector matches
/// kubectl's own ApplySets too; the tooling annotation tells them apart).
pub fn is_our_parent(cm: &ConfigMap) -> bool {
    cm.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPLYSET_TOOLING_ANNOTATION))
        .is_some_and(|t| t.split('/').next() == Some(TOOLING_NAME))
}

/// The row for one parent ConfigMap, judged at `now`.
pub fn entry(context: &str, cm: &ConfigMap, now: Timestamp) -> FleetEntry {
    let namespace = cm.metadata.namespace.clone().unwrap_or_default();
    let parent = tracked::parent_from_configmap(cm);
    let drift = parent
        .status
        .as_ref()
        .map_or(0, |s| s.drift_corrections_since(now));
    let commit = parent
        .status
        .as_ref()
        .and_then(tracked::tracked_commit)
        .map(str::to_string);
    match build(&namespace, &parent, &[], None, now) {
        Ok(report) => from_report(context, &report, commit, drift),
        Err(e) => FleetEntry {
            context: context.to_string(),
            namespace,
            tracked_ref: String::new(),
            commit: None,
            result: "Unknown".to_string(),
            health: "Unknown".to_string(),
            degraded: 0,
            last_sync_time: None,
            last_attempt_time: None,
            drift_repaired_last_hour: 0,
            break_glass_active: 0,
            message: format!("{e:#}"),
            problem: true,
            sync: None,
        },
    }
}

fn from_report(
    context: &str,
    r: &StatusReport,
    commit: Option<String>,
    drift: usize,
) -> FleetEntry {
    let count = |state: &str| r.health.iter().filter(|h| h.state == state).count();
    let degraded = count("Degraded");
    let health = if degraded > 0 {
        "Degraded"
    } else if count("Progressing") > 0 {
        "Progressing"
    } else if r.health.is_empty() || r.health.iter().any(|h| h.state != "Healthy") {
        "Unknown"
    } else {
        "Healthy"
    };
    FleetEntry {
        context: context.to_string(),
        namespace: r.namespace.clone(),
        tracked_ref: r.tracked_ref.clone(),
        commit,
        result: r.result.as_str().to_string(),
        health: health.to_string(),
        degraded,
        last_sync_time: r.last_sync_time,
        last_attempt_time: r.last_attempt_time,
        drift_repaired_last_hour: drift,
        break_glass_active: r.break_glass.iter().filter(|b| b.active).count(),
        // Running unverified over git:// or http:// is a problem even when all is Synced.
        message: match (&r.insecure, r.message.is_empty()) {
            (Some(w), true) => w.clone(),
            (Some(w), false) => format!("{w}; {}", r.message),
            (None, _) => r.message.clone(),
        },
        problem: r.result != SyncResult::Synced || degraded > 0 || r.insecure.is_some(),
        sync: Some(r.result),
    }
}

/// How urgent a row is: lower first. Failures and refusals, then unreadable status, then
/// degraded health, then drift not corrected, then waiting; healthy rows last, those under
/// break-glass before the quiet ones.
fn rank(e: &FleetEntry) -> u8 {
    match e.result.as_str() {
        "Failed" | "Refused" => 0,
        "Unknown" => 1,
        _ if e.degraded > 0 || (e.problem && e.result == "Synced") => 2,
        "OutOfSync" => 3,
        "Pending" | "Suspended" => 4,
        _ if e.break_glass_active > 0 => 5,
        _ => 6,
    }
}

fn sort(entries: &mut [FleetEntry]) {
    entries.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.context.cmp(&b.context))
            .then_with(|| a.namespace.cmp(&b.namespace))
    });
}

impl FleetReport {
    /// Sorted entries; unreadable namespaces sorted per context.
    pub fn new(mut entries: Vec<FleetEntry>, mut unreadable: Vec<Unreadable>) -> Self {
        sort(&mut entries);
        for u in &mut unreadable {
            u.namespaces.sort();
        }
        unreadable.sort_by(|a, b| a.context.cmp(&b.context));
        Self {
            entries,
            unreadable,
        }
    }

    /// Exit 1 when any agent has a problem or something could not be read.
    pub fn has_problems(&self) -> bool {
        self.entries.iter().any(|e| e.problem) || !self.unreadable.is_empty()
    }
}

/// The text form: a table, then a footer naming what could not be read.
pub fn format_text(r: &FleetReport, now: Timestamp, color: bool) -> String {
    let mut out = String::new();
    if r.entries.is_empty() {
        out.push_str("no agent found\n");
    } else {
        let rows: Vec<[String; 9]> = r.entries.iter().map(|e| row(e, now)).collect();
        let header = [
            "CONTEXT",
            "NAMESPACE",
            "REF -> COMMIT",
            "RESULT",
            "HEALTH",
            "LAST SYNC",
            "DRIFT 1H",
            "BREAK-GLASS",
            "MESSAGE",
        ];
        out.push_str(&table(header, &rows, |i, col, cell| {
            paint(&r.entries[i], col, cell, color)
        }));
    }
    let problems = r.entries.iter().filter(|e| e.problem).count();
    let _ = writeln!(
        out,
        "\n{} agents, {problems} with problems",
        r.entries.len()
    );
    for line in unreadable_lines(r) {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// One line per context that was not (entirely) read; `-o json` prints them on stderr.
pub fn unreadable_lines(r: &FleetReport) -> Vec<String> {
    r.unreadable
        .iter()
        .map(|u| {
            if u.namespaces.is_empty() {
                format!("context {}: {}", u.context, u.reason)
            } else {
                format!(
                    "context {}: {} namespaces not readable ({}): {}",
                    u.context,
                    u.namespaces.len(),
                    u.reason,
                    u.namespaces.join(", ")
                )
            }
        })
        .collect()
}

fn row(e: &FleetEntry, now: Timestamp) -> [String; 9] {
    let commit = e.commit.as_deref().map_or("-", short);
    let count = |n: usize| if n == 0 { "-".into() } else { n.to_string() };
    let message: String = if e.message.chars().count() > MESSAGE_WIDTH {
        let cut: String = e.message.chars().take(MESSAGE_WIDTH - 3).collect();
        format!("{cut}...")
    } else {
        e.message.clone()
    };
    [
        e.context.clone(),
        e.namespace.clone(),
        format!("{} -> {commit}", e.tracked_ref),
        e.result.clone(),
        e.health.clone(),
        e.last_sync_time
            .map_or_else(|| "never".into(), |t| relative(t, now)),
        count(e.drift_repaired_last_hour),
        count(e.break_glass_active),
        message.replace('\n', " "),
    ]
}

fn paint(e: &FleetEntry, col: usize, cell: &str, color: bool) -> String {
    let style = match col {
        3 => e.sync.map_or(Style::Red, result_style),
        4 => match e.health.as_str() {
            "Degraded" => Style::Red,
            "Healthy" => Style::Green,
            _ => Style::Yellow,
        },
        7 if e.break_glass_active > 0 => Style::Yellow,
        _ => return cell.to_string(),
    };
    style.paint(cell, color).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use renderer::protocol::{
        BreakGlass, BreakGlassEntry, HealthEntry, PARENT_NAME, STATUS_DATA_KEY, SyncStatus,
    };

    fn now() -> Timestamp {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    fn parent(ns: &str, tooling: &str, status: Option<&SyncStatus>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(PARENT_NAME.into()),
                namespace: Some(ns.into()),
                annotations: Some([(APPLYSET_TOOLING_ANNOTATION.into(), tooling.into())].into()),
                ..Default::default()
            },
            data: status.map(|s| [(STATUS_DATA_KEY.to_string(), s.to_json())].into()),
            ..Default::default()
        }
    }

    fn status(result: SyncResult) -> SyncStatus {
        SyncStatus {
            tracked_ref: "main".into(),
            resolved_commit: Some("1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d".into()),
            result,
            message: format!("it is {}", result.as_str()),
            health: vec![HealthEntry {
                kind: "Deployment".into(),
                name: "api".into(),
                state: "Healthy".into(),
                message: String::new(),
            }],
            last_sync_time: Some("2026-11-26T11:50:00Z".parse().unwrap()),
            ..Default::default()
        }
    }

    fn entry_of(ns: &str, s: &SyncStatus) -> FleetEntry {
        entry("prod", &parent(ns, "kubectl-gitops/v0.1.0", Some(s)), now())
    }

    /// Issue #14: an agent applying unverified commits over git:// is a problem in the fleet.
    #[test]
    fn an_unverified_plain_transport_is_a_problem() {
        let mut s = SyncStatus {
            result: SyncResult::Synced,
            message: "applied 3".into(),
            ..Default::default()
        };
        assert!(!entry_of("shop", &s).problem);
        s.insecure = renderer::protocol::insecure_transport_warning("git://h/r", "none");
        let e = entry_of("shop", &s);
        assert!(e.problem);
        assert!(
            e.message
                .starts_with("UNVERIFIED over an unauthenticated transport")
                && e.message.ends_with("; applied 3"),
            "{}",
            e.message
        );
    }

    #[test]
    fn only_this_projects_parents_count() {
        assert!(is_our_parent(&parent("a", "kubectl-gitops/v0.1.0", None)));
        assert!(!is_our_parent(&parent("a", "kubectl/v1.31", None)));
        assert!(!is_our_parent(&parent("a", "kubectl-gitops-fork/v1", None)));
        let mut bare = parent("a", "", None);
        bare.metadata.annotations = None;
        assert!(!is_our_parent(&bare));
    }

    #[test]
    fn an_entry_summarises_the_status() {
        let mut s = status(SyncResult::Synced);
        s.health[0].state = "Degraded".into();
        s.record_drift_correction("2026-11-26T10:30:00Z".parse().unwrap());
        s.record_drift_correction("2026-11-26T11:30:00Z".parse().unwrap());
        s.break_glass.push(BreakGlassEntry {
            kind: "Deployment".into(),
            name: "api".into(),
            break_glass: BreakGlass {
                by: "alice".into(),
                reason: "INC-1".into(),
                since: "2026-11-26T11:00:00Z".parse().unwrap(),
                until: "2026-11-26T13:00:00Z".parse().unwrap(),
            },
            active: true,
            requested_until: None,
        });
        let e = entry_of("shop", &s);
        assert_eq!(e.context, "prod");
        assert_eq!(e.namespace, "shop");
        assert_eq!(e.result, "Synced");
        assert_eq!(e.health, "Degraded");
        assert_eq!(e.degraded, 1);
        assert_eq!(e.drift_repaired_last_hour, 1, "10:30 is over an hour ago");
        assert_eq!(e.break_glass_active, 1);
        assert!(e.problem, "degraded is a problem although synced");
        let json = serde_json::to_value(&e).unwrap();
        for key in ["context", "namespace", "result", "trackedRef", "commit"] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert!(json.get("sync").is_none());
    }

    #[test]
    fn an_unreadable_status_is_a_problem_not_an_error() {
        let cm = parent("broken", "kubectl-gitops/v0.1.0", None);
        let e = entry("prod", &cm, now());
        assert_eq!(e.result, "Unknown");
        assert!(e.problem);
        assert!(e.message.contains("status.json"), "{}", e.message);
    }

    #[test]
    fn problems_come_first() {
        let mut degraded = status(SyncResult::Synced);
        degraded.health[0].state = "Degraded".into();
        let entries = vec![
            entry_of("a-synced", &status(SyncResult::Synced)),
            entry_of("b-pending", &status(SyncResult::Pending)),
            entry_of("c-out-of-sync", &status(SyncResult::OutOfSync)),
            entry_of("d-degraded", &degraded),
            entry_of("e-refused", &status(SyncResult::Refused)),
            entry_of("f-failed", &status(SyncResult::Failed)),
            entry(
                "prod",
                &parent("g-unreadable", "kubectl-gitops/v1", None),
                now(),
            ),
        ];
        let report = FleetReport::new(entries, vec![]);
        let order: Vec<&str> = report
            .entries
            .iter()
            .map(|e| e.namespace.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "e-refused",
                "f-failed",
                "g-unreadable",
                "d-degraded",
                "c-out-of-sync",
                "b-pending",
                "a-synced"
            ]
        );
        assert!(report.has_problems());
        let fine = FleetReport::new(vec![entry_of("a", &status(SyncResult::Synced))], vec![]);
        assert!(!fine.has_problems());
    }

    #[test]
    fn text_snapshot() {
        let mut long = status(SyncResult::Failed);
        long.message = "render overlays/prod/kustomization.yaml:3: resource deployment.yaml: \
                        no such file in the repository at 1a2b3c4"
            .into();
        let report = FleetReport::new(
            vec![
                entry_of("shop", &status(SyncResult::Synced)),
                entry_of("payments", &long),
            ],
            vec![
                Unreadable {
                    context: "prod".into(),
                    namespaces: vec!["secret-team".into(), "kube-system".into()],
                    reason: "may not list ConfigMaps there".into(),
                },
                Unreadable {
                    context: "staging".into(),
                    namespaces: vec![],
                    reason: "listing ConfigMaps in all namespaces: connection refused".into(),
                },
            ],
        );
        insta::assert_snapshot!(format_text(&report, now(), false));
    }

    #[test]
    fn colour_marks_result_and_health() {
        let report = FleetReport::new(vec![entry_of("a", &status(SyncResult::Failed))], vec![]);
        let text = format_text(&report, now(), true);
        assert!(text.contains("\x1b[31mFailed"), "{text:?}");
        assert!(text.contains("\x1b[32mHealthy"), "{text:?}");
    }
}
