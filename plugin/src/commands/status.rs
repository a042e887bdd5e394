//! `kubectl gitops status`: what the agent last did in this namespace, from its ApplySet
//! parent and members, and how the local clone relates to the commit it tracks; with `-A`,
//! one row per agent over namespaces and clusters ([`fleet`]).

mod fleet;
mod fleet_list;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use renderer::protocol::{
    BreakGlass, DriftEvent, ForeignEntry, HealthEntry, SyncResult, SyncStatus,
};
use serde::Serialize;
use serde_json::Value;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::live::{self, Kinds, annotations};
use crate::cluster::session::{Session, block_on};
use crate::cluster::tracked::{self, Parent};
use crate::constants::STATUS_WATCH_INTERVAL;
use crate::git::local_repo::{HeadRelation, LocalRepo, short};
use crate::output::printer::{Printer, Style};
use crate::output::report::{DataFormat, relative, serialize};

pub const EXAMPLES: &str = "\
Examples:
  # Is the namespace in sync with Git, and what did the agent last do?
  kubectl gitops status -n shop

  # Follow the agent while a commit rolls out
  kubectl gitops status -n shop --watch

  # For scripts: exit code 1 unless Synced, details as JSON
  kubectl gitops status -n shop -o json

  # Every agent in the cluster, problems first (exit code 1 if any)
  kubectl gitops status -A

  # Every agent in two clusters, or in every context of the kubeconfig
  kubectl gitops status -A --context prod-eu,prod-us
  kubectl gitops status -A --all-contexts --watch";

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// A clone of the tracked repository (default: the current directory)
    #[arg(long, value_name = "DIR", conflicts_with = "all_namespaces")]
    pub repo: Option<PathBuf>,
    /// Every agent in every namespace you can read, one row each, problems first;
    /// `--context a,b,c` reads several clusters at once
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// With -A: every context of the kubeconfig
    #[arg(long, requires = "all_namespaces")]
    pub all_contexts: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = DataFormat::Text)]
    pub output: DataFormat,
    /// Keep printing the status whenever it changes (Ctrl-C to stop)
    #[arg(short, long)]
    pub watch: bool,
}

/// The `-o json` document. Field names are part of the interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub namespace: String,
    pub repo: String,
    pub path: String,
    pub tracked_ref: String,
    pub resolved_commit: Option<String>,
    pub resolved_tag: Option<String>,
    pub last_applied_revision: Option<String>,
    pub last_attempted_revision: Option<String>,
    /// The local clone's HEAD against the tracked commit; absent outside a clone.
    pub local: Option<HeadRelation>,
    pub result: SyncResult,
    pub message: String,
    pub last_sync_time: Option<Timestamp>,
    pub last_attempt_time: Option<Timestamp>,
    pub counts: Counts,
    pub health: Vec<HealthEntry>,
    pub break_glass: Vec<BreakGlassView>,
    pub failing: Vec<Failing>,
    /// Hex digest of the rendered set the agent last applied (`render --digest` prints the
    /// same for a revision).
    pub applied_digest: Option<String>,
    /// Fields Git never sets, added live by someone else, as the agent last saw them.
    pub foreign: Vec<ForeignEntry>,
    /// The newest entries of the agent's drift history, newest first.
    pub recent_drift: Vec<DriftEvent>,
    /// Per live member, the commit that last changed it (from the parent; older agents
    /// annotated the members instead, read as a fallback).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<MemberRevision>,
    /// The agent applies unverified commits over git:// or http:// (its own warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRevision {
    pub kind: String,
    pub name: String,
    pub commit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Live members of the ApplySet.
    pub members: usize,
    pub by_kind: BTreeMap<String, usize>,
    pub applied: u64,
    pub pruned: u64,
    pub drift_corrected: u64,
    pub prune_skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassView {
    pub kind: String,
    pub name: String,
    pub by: String,
    pub reason: String,
    pub since: Timestamp,
    pub until: Timestamp,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failing {
    pub kind: String,
    pub name: String,
    pub reason: String,
}

pub fn run(args: &StatusArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    if args.all_namespaces {
        return run_fleet(args, kube, printer);
    }
    if kube.context.as_deref().is_some_and(|c| c.contains(',')) {
        bail!("--context names several contexts: add -A to read every agent in them");
    }
    block_on(async {
        let session = Session::connect(kube).await?;
        let local = LocalRepo::open(args.repo.as_deref()).ok();
        if local.is_none() {
            printer
                .verbose("not inside a clone of the tracked repository: local HEAD not compared");
        }
        let kinds = Kinds::discover(&session.client).await?;
        // Every status the agent publishes is printed, however short-lived (a rollout faster
        // than the poll interval still shows Progressing); the poll stays for the clock.
        let changes = if args.watch {
            tracked::parent_changes(&session.client, &session.namespace)
        } else {
            futures::stream::pending().boxed()
        };
        watch(
            args,
            printer,
            changes,
            || collect(&session, &kinds, local.as_ref()),
            |report, printer| print(report, args.output, printer),
            exit_status,
        )
        .await
    })?
}

fn run_fleet(args: &StatusArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let names = fleet_list::context_names(kube, args.all_contexts)?;
    block_on(async {
        let targets = fleet_list::targets(kube, &names).await?;
        watch(
            args,
            printer,
            futures::stream::pending().boxed(),
            || fleet_list::collect(&targets, Timestamp::now()),
            |report, printer| {
                let text = match serialize(&report.entries, args.output) {
                    Some(text) => {
                        for line in fleet::unreadable_lines(report) {
                            printer.warn(&line);
                        }
                        text
                    }
                    None => fleet::format_text(report, Timestamp::now(), printer.color()),
                };
                printer.result(&text).context("writing to stdout")
            },
            |report| {
                if report.has_problems() {
                    ExitStatus::Failure
                } else {
                    ExitStatus::Success
                }
            },
        )
        .await
    })?
}

/// Prints the report once, or with `--watch` again whenever it changes until Ctrl-C: read
/// again every [`STATUS_WATCH_INTERVAL`] and whenever `changes` yields.
async fn watch<R, Fut>(
    args: &StatusArgs,
    printer: &Printer,
    mut changes: BoxStream<'static, ()>,
    mut collect: impl FnMut() -> Fut,
    print: impl Fn(&R, &Printer) -> anyhow::Result<()>,
    exit_status: impl Fn(&R) -> ExitStatus,
) -> anyhow::Result<ExitStatus>
where
    R: PartialEq,
    Fut: Future<Output = anyhow::Result<R>>,
{
    let mut last: Option<R> = None;
    loop {
        let report = collect().await?;
        if last.as_ref() != Some(&report) {
            if last.is_some() && args.output == DataFormat::Text {
                printer.result("\n").context("writing to stdout")?;
            }
            print(&report, printer)?;
        }
        let status = exit_status(&report);
        if !args.watch {
            return Ok(status);
        }
        last = Some(report);
        tokio::select! {
            _ = tokio::time::sleep(STATUS_WATCH_INTERVAL) => {}
            Some(()) = changes.next() => {}
            _ = tokio::signal::ctrl_c() => return Ok(status),
        }
    }
}

async fn collect(
    session: &Session,
    kinds: &Kinds,
    local: Option<&LocalRepo>,
) -> anyhow::Result<StatusReport> {
    let ns = &session.namespace;
    let Some(parent) = tracked::read_parent(&session.client, ns).await? else {
        bail!(
            "namespace {ns} has no ApplySet parent ConfigMap {}: no agent syncs it \
             (`kubectl gitops diff DIR` works without one)",
            renderer::protocol::PARENT_NAME
        );
    };
    let members = live::members(
        &session.client,
        ns,
        kinds,
        &parent.group_kinds,
        &tracked::set_id(ns),
    )
    .await?;
    let relation = match (
        local,
        parent.status.as_ref().and_then(tracked::tracked_commit),
    ) {
        (Some(local), Some(commit)) => Some(local.relation(commit)),
        _ => None,
    };
    build(ns, &parent, &members, relation, Timestamp::now())
}

/// The report from what was read; pure so every rule is unit-tested.
pub fn build(
    namespace: &str,
    parent: &Parent,
    members: &[Value],
    local: Option<HeadRelation>,
    now: Timestamp,
) -> anyhow::Result<StatusReport> {
    let Some(status) = &parent.status else {
        bail!(
            "ConfigMap {namespace}/{}: {}",
            renderer::protocol::PARENT_NAME,
            parent.status_error.as_deref().unwrap_or("no status")
        );
    };
    let mut by_kind = BTreeMap::new();
    for m in members {
        *by_kind
            .entry(m["kind"].as_str().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    let (break_glass, invalid) = break_glass(status, members, now);
    let mut failing: Vec<Failing> = status
        .health
        .iter()
        .filter(|h| h.state == "Degraded")
        .map(|h| Failing {
            kind: h.kind.clone(),
            name: h.name.clone(),
            reason: h.message.clone(),
        })
        .chain(invalid)
        .collect();
    failing.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    let mut health = status.health.clone();
    health.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    let mut revisions: Vec<MemberRevision> = members
        .iter()
        .filter_map(|m| {
            let kind = m["kind"].as_str()?;
            let name = m["metadata"]["name"].as_str()?;
            let commit = parent
                .member_commit(m["apiVersion"].as_str()?, kind, name)
                .map(str::to_string)
                .or_else(|| {
                    m["metadata"]["annotations"][renderer::protocol::REVISION_ANNOTATION]
                        .as_str()
                        .map(str::to_string)
                })?;
            Some(MemberRevision {
                kind: kind.to_string(),
                name: name.to_string(),
                commit,
            })
        })
        .collect();
    revisions.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    Ok(StatusReport {
        namespace: namespace.to_string(),
        repo: status.repo.clone(),
        path: status.path.clone(),
        tracked_ref: status.tracked_ref.clone(),
        resolved_commit: status.resolved_commit.clone(),
        resolved_tag: status.resolved_tag.clone(),
        last_applied_revision: status.last_applied_revision.clone(),
        last_attempted_revision: status.last_attempted_revision.clone(),
        local,
        result: status.result,
        message: status.message.clone(),
        last_sync_time: status.last_sync_time,
        last_attempt_time: status.last_attempt_time,
        counts: Counts {
            members: members.len(),
            by_kind,
            applied: status.applied,
            pruned: status.pruned,
            drift_corrected: status.drift_corrected,
            prune_skipped: status.prune_skipped.len(),
        },
        health,
        break_glass,
        failing,
        revisions,
        applied_digest: status.applied_digest.clone(),
        insecure: status.insecure.clone(),
        foreign: status.foreign.clone(),
        recent_drift: parent
            .drift_history
            .events()
            .rev()
            .take(RECENT_DRIFT_SHOWN)
            .cloned()
            .collect(),
    })
}

/// Drift history entries `status` shows (all of them: `history --drift`).
const RECENT_DRIFT_SHOWN: usize = 10;

/// Break-glass as the members' annotations say now (the agent's list may be a cycle old),
/// plus the agent's entries for objects not found live; unreadable annotations are failures.
fn break_glass(
    status: &SyncStatus,
    members: &[Value],
    now: Timestamp,
) -> (Vec<BreakGlassView>, Vec<Failing>) {
    let mut views = BTreeMap::new();
    let mut invalid = Vec::new();
    for e in &status.break_glass {
        views.insert(
            (e.kind.clone(), e.name.clone()),
            view(&e.kind, &e.name, &e.break_glass, now),
        );
    }
    for m in members {
        let kind = m["kind"].as_str().unwrap_or_default().to_string();
        let name = m["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match BreakGlass::from_annotations(&annotations(m)) {
            Ok(Some(bg)) => {
                views.insert((kind.clone(), name.clone()), view(&kind, &name, &bg, now));
            }
            Ok(None) => {}
            Err(e) => invalid.push(Failing {
                kind,
                name,
                reason: format!("invalid break-glass annotations: {e}"),
            }),
        }
    }
    (views.into_values().collect(), invalid)
}

fn view(kind: &str, name: &str, bg: &BreakGlass, now: Timestamp) -> BreakGlassView {
    BreakGlassView {
        kind: kind.to_string(),
        name: name.to_string(),
        by: bg.by.clone(),
        reason: bg.reason.clone(),
        since: bg.since,
        until: bg.until,
        active: bg.is_active(now),
    }
}

pub fn exit_status(report: &StatusReport) -> ExitStatus {
    if report.result == SyncResult::Synced {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

fn print(report: &StatusReport, format: DataFormat, printer: &Printer) -> anyhow::Result<()> {
    let text = match serialize(report, format) {
        Some(text) => text,
        None => format_text(report, Timestamp::now(), printer.color()),
    };
    printer.result(&text).context("writing to stdout")
}

/// Green when synced, red when failed or refused, yellow in between.
fn result_style(result: SyncResult) -> Style {
    match result {
        SyncResult::Synced => Style::Green,
        SyncResult::Pending | SyncResult::Suspended | SyncResult::OutOfSync => Style::Yellow,
        SyncResult::Failed | SyncResult::Refused => Style::Red,
    }
}

/// The text form. `now` is a parameter so snapshots do not depend on the clock.
pub fn format_text(r: &StatusReport, now: Timestamp, color: bool) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: &str| {
        let _ = writeln!(out, "{:<14}{value}", format!("{label}:"));
    };
    field("Namespace", &r.namespace);
    field("Repository", &format!("{} (path {})", r.repo, r.path));
    let mut tracking = r.tracked_ref.clone();
    if let Some(commit) = &r.resolved_commit {
        let _ = write!(tracking, " -> {}", short(commit));
    }
    if let Some(tag) = r.resolved_tag.as_ref().filter(|t| **t != r.tracked_ref) {
        let _ = write!(tracking, " (tag {tag})");
    }
    field("Tracking", &tracking);
    if let Some(warning) = &r.insecure {
        field("WARNING", &Style::Red.paint(warning, color));
    }
    if let Some(local) = &r.local {
        let head = local.head.as_deref().map(short).unwrap_or("none");
        field("Local clone", &format!("HEAD {head}: {}", local.describe()));
    }
    field(
        "Result",
        &result_style(r.result).paint(r.result.as_str(), color),
    );
    if !r.message.is_empty() {
        field("Message", &r.message);
    }
    let when = |t: Option<Timestamp>| match t {
        Some(t) => format!("{t} ({})", relative(t, now)),
        None => "never".to_string(),
    };
    field("Last sync", &when(r.last_sync_time));
    if r.last_attempt_time != r.last_sync_time {
        field("Last attempt", &when(r.last_attempt_time));
    }
    if let Some(applied) = &r.last_applied_revision {
        field("Applied", short(applied));
    }
    if r.last_attempted_revision.is_some() && r.last_attempted_revision != r.last_applied_revision {
        field(
            "Attempted",
            r.last_attempted_revision
                .as_deref()
                .map(short)
                .unwrap_or_default(),
        );
    }
    let kinds: Vec<String> = r
        .counts
        .by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let mut objects = format!("{} members", r.counts.members);
    if !kinds.is_empty() {
        let _ = write!(objects, " ({})", kinds.join(", "));
    }
    let _ = write!(
        objects,
        "; last sync applied {}, pruned {}, corrected drift {}",
        r.counts.applied, r.counts.pruned, r.counts.drift_corrected
    );
    if r.counts.prune_skipped > 0 {
        let _ = write!(objects, ", kept {} from pruning", r.counts.prune_skipped);
    }
    field("Objects", &objects);
    if !r.health.is_empty() {
        out.push_str("\nHealth:\n");
        for h in &r.health {
            let style = match h.state.as_str() {
                "Healthy" => Style::Green,
                "Degraded" => Style::Red,
                _ => Style::Yellow,
            };
            let state = style.paint(&h.state, color);
            let _ = write!(out, "  {}/{}  {state}", h.kind, h.name);
            if let Some(r) = r
                .revisions
                .iter()
                .find(|r| r.kind == h.kind && r.name == h.name)
            {
                let _ = write!(out, "  from {}", short(&r.commit));
            }
            if !h.message.is_empty() {
                let _ = write!(out, "  {}", h.message);
            }
            out.push('\n');
        }
    }
    if !r.break_glass.is_empty() {
        out.push_str("\nBreak-glass:\n");
        for b in &r.break_glass {
            let state = if b.active {
                Style::Yellow.paint("active", color).into_owned()
            } else {
                "expired".to_string()
            };
            let _ = writeln!(
                out,
                "  {}/{}  {state} until {} ({})  by {}: {}",
                b.kind,
                b.name,
                b.until,
                relative(b.until, now),
                b.by,
                b.reason
            );
        }
    }
    if !r.foreign.is_empty() {
        out.push_str("\nForeign additions (not in Git, added live):\n");
        for f in &r.foreign {
            let mut line = format!("  {}/{}  {}  by {}", f.kind, f.name, f.pointer, f.manager);
            if let Some(t) = &f.time {
                let _ = write!(line, " at {t}");
            }
            if !f.sensitive.is_empty() {
                let _ = write!(
                    line,
                    "  {}: {}",
                    Style::Red.paint("security-sensitive", color),
                    f.sensitive.join(", ")
                );
            }
            if f.removed {
                line.push_str("  (removed)");
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !r.recent_drift.is_empty() {
        out.push_str("\nRecent drift (newest first; all: kubectl gitops history --drift):\n");
        for e in &r.recent_drift {
            out.push_str(&crate::commands::history_drift::event_line(e));
            out.push('\n');
        }
    }
    if !r.failing.is_empty() {
        out.push_str("\nFailing:\n");
        for f in &r.failing {
            let _ = writeln!(
                out,
                "  {}/{}  {}",
                f.kind,
                f.name,
                Style::Red.paint(&f.reason, color)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::local_repo::RelationState;
    use renderer::protocol::{BREAK_GLASS_BY_ANNOTATION, BreakGlassEntry};
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    fn status() -> SyncStatus {
        SyncStatus {
            repo: "https://git.example.com/shop.git".into(),
            path: "overlays/prod".into(),
            tracked_ref: "main".into(),
            resolved_commit: Some("1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d".into()),
            last_applied_revision: Some("1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d".into()),
            last_attempted_revision: Some("1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d".into()),
            result: SyncResult::Synced,
            applied: 4,
            health: vec![
                HealthEntry {
                    kind: "Deployment".into(),
                    name: "web".into(),
                    state: "Degraded".into(),
                    message: "0/3 replicas available".into(),
                },
                HealthEntry {
                    kind: "Deployment".into(),
                    name: "api".into(),
                    state: "Healthy".into(),
                    message: String::new(),
                },
            ],
            last_sync_time: Some("2026-11-26T11:57:00Z".parse().unwrap()),
            last_attempt_time: Some("2026-11-26T11:57:00Z".parse().unwrap()),
            ..Default::default()
        }
    }

    fn parent(status: SyncStatus) -> Parent {
        Parent {
            status: Some(status),
            status_error: None,
            group_kinds: vec![],
            members: Default::default(),
            drift_history: Default::default(),
        }
    }

    fn members() -> Vec<Value> {
        let bg = BreakGlass {
            by: "alice@example.com".into(),
            reason: "INC-42".into(),
            since: "2026-11-26T11:00:00Z".parse().unwrap(),
            until: "2026-11-26T13:00:00Z".parse().unwrap(),
        };
        vec![
            json!({"kind": "Deployment", "metadata": {"name": "api", "annotations": bg.to_annotations()}}),
            json!({"kind": "Deployment", "metadata": {"name": "web"}}),
            json!({"kind": "Service", "metadata": {"name": "api"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "cfg", "annotations": {BREAK_GLASS_BY_ANNOTATION: "bob"}}}),
        ]
    }

    fn report() -> StatusReport {
        let local = HeadRelation {
            head: Some("9f8e7d6c5b4a9f8e7d6c5b4a9f8e7d6c5b4a9f8e".into()),
            state: RelationState::Ahead,
            ahead: 2,
            behind: 0,
        };
        build("shop", &parent(status()), &members(), Some(local), now()).unwrap()
    }

    #[test]
    fn counts_break_glass_and_failures() {
        let r = report();
        assert_eq!(r.counts.members, 4);
        assert_eq!(r.counts.by_kind["Deployment"], 2);
        assert_eq!(r.break_glass.len(), 1);
        assert!(r.break_glass[0].active);
        assert_eq!(r.break_glass[0].by, "alice@example.com");
        let failing: Vec<String> = r
            .failing
            .iter()
            .map(|f| format!("{}/{}", f.kind, f.name))
            .collect();
        assert_eq!(failing, ["ConfigMap/cfg", "Deployment/web"]);
        assert!(
            r.failing[0].reason.contains("invalid break-glass"),
            "{:?}",
            r.failing
        );
        assert_eq!(r.health[0].name, "api", "health is sorted");
        assert_eq!(exit_status(&r), ExitStatus::Success);
    }

    /// Issue #14: an agent running unverified over git:// says so, and `status` shows it.
    #[test]
    fn an_unverified_plain_transport_is_shown_as_a_warning() {
        let mut s = status();
        s.insecure = renderer::protocol::insecure_transport_warning("git://h/r.git", "none");
        let r = build("shop", &parent(s), &members(), None, now()).unwrap();
        let text = format_text(&r, now(), false);
        assert!(
            text.contains("WARNING:      UNVERIFIED over an unauthenticated transport"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["insecure"].as_str().unwrap().contains("git://"));
        assert!(
            serde_json::to_value(report())
                .unwrap()
                .get("insecure")
                .is_none(),
            "absent when there is nothing to warn about"
        );
    }

    #[test]
    fn not_synced_exits_one() {
        let mut s = status();
        s.result = SyncResult::Failed;
        let r = build("shop", &parent(s), &[], None, now()).unwrap();
        assert_eq!(exit_status(&r), ExitStatus::Failure);
    }

    #[test]
    fn agent_entry_is_kept_for_objects_not_listed_and_expires() {
        let mut s = status();
        s.break_glass.push(BreakGlassEntry {
            kind: "Service".into(),
            name: "gone".into(),
            break_glass: BreakGlass {
                by: "carol".into(),
                reason: "r".into(),
                since: "2026-11-26T09:00:00Z".parse().unwrap(),
                until: "2026-11-26T10:00:00Z".parse().unwrap(),
            },
            active: true,
            requested_until: None,
        });
        let r = build("shop", &parent(s), &[], None, now()).unwrap();
        assert_eq!(r.break_glass.len(), 1);
        assert!(!r.break_glass[0].active, "expiry is judged against now");
    }

    #[test]
    fn missing_status_names_the_configmap() {
        let p = Parent {
            status: None,
            status_error: Some("data key status.json is missing".into()),
            group_kinds: vec![],
            members: Default::default(),
            drift_history: Default::default(),
        };
        let err = build("shop", &p, &[], None, now()).unwrap_err().to_string();
        assert!(
            err.contains("shop/kubectl-gitops") && err.contains("status.json"),
            "{err}"
        );
    }

    #[test]
    fn json_field_names_are_stable() {
        let json = serde_json::to_value(report()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "namespace",
                "repo",
                "path",
                "trackedRef",
                "resolvedCommit",
                "resolvedTag",
                "lastAppliedRevision",
                "lastAttemptedRevision",
                "local",
                "result",
                "message",
                "lastSyncTime",
                "lastAttemptTime",
                "counts",
                "health",
                "breakGlass",
                "failing",
                "appliedDigest",
                "foreign",
                "recentDrift"
            ]
        );
        assert_eq!(json["result"], "Synced");
        assert_eq!(json["local"]["state"], "ahead");
        assert_eq!(json["counts"]["byKind"]["Service"], 1);
        assert_eq!(json["breakGlass"][0]["until"], "2026-11-26T13:00:00Z");
    }

    #[test]
    fn text_snapshot() {
        insta::assert_snapshot!(format_text(&report(), now(), false));
    }
}
