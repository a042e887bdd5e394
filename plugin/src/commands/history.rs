//! `kubectl gitops history`: the revisions production has been pointed at, from the commits
//! that changed its agent's `--revision` in Git, with what the agent reports running now.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use jiff::Timestamp;
use serde::Serialize;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::session::block_on;
use crate::cluster::tracked::tracked_commit;
use crate::git::local_repo::{LocalRepo, short};
use crate::output::printer::Printer;
use crate::output::report::{DataFormat, serialize, table};
use crate::release::plan::Environment;
use crate::release::repo::{self, find_revision_manifest, resolve_commit, revision_history};

pub const EXAMPLES: &str = "\
Production is the namespace given by -n (or the context's namespace); its history is read
from the commits that changed the `--revision=` of its agent manifest, and its status.

Examples:
  # What has prod run, newest first?
  kubectl gitops history -n prod

  # The same for scripts
  kubectl gitops history -n prod -o json

  # The drift the agent saw and what it did about it, newest first
  kubectl gitops history --drift -n prod";

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The production agent's Deployment manifest (default: found in the repository)
    #[arg(long, value_name = "FILE")]
    pub agent_manifest: Option<PathBuf>,
    /// A clone of the repository (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// The drift the agent saw and what it did (repaired, ignored, held by break-glass,
    /// foreign), from its history ring, instead of the revision history
    #[arg(long)]
    pub drift: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = DataFormat::Text)]
    pub output: DataFormat,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryReport {
    pub namespace: String,
    pub path: String,
    pub manifest: String,
    /// What the agent reports: the ref it follows and the commit it applied.
    pub running: Option<Running>,
    /// Newest first.
    pub entries: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pub revision: String,
    pub commit: Option<String>,
    pub result: String,
    pub last_sync_time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub revision: String,
    /// The commit the revision names in this clone now (a branch moves; a tag does not).
    pub commit: Option<String>,
    /// Whether the revision is a tag.
    pub tag: bool,
    /// The commit that pointed production at the revision.
    pub changed_in: String,
    pub changed_at: Timestamp,
    pub changed_by: String,
    pub summary: String,
    /// What the agent runs now.
    pub running: bool,
}

pub fn run(args: &HistoryArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    if args.drift {
        return crate::commands::history_drift::run(args.output, kube, printer);
    }
    let local = LocalRepo::open(args.repo.as_deref())?;
    let prod = block_on(Environment::connect(kube, None, None))??;
    let status = prod.status()?;
    let manifest = find_revision_manifest(
        &local.root,
        &status.path,
        &prod.session.namespace,
        args.agent_manifest.as_deref(),
        status.config_path.as_deref(),
    )?;
    let tags = repo::tags(&local.repo)?;
    let changes = revision_history(&local.repo, &manifest.rel, &status.path, manifest.setting)?;
    let running_commit = tracked_commit(status).map(str::to_string);
    let mut seen_running = false;
    let entries = changes
        .into_iter()
        .map(|c| {
            let commit = resolve_commit(&local.repo, &c.revision).ok();
            // The newest entry naming the followed ref is the one running; older ones with
            // the same ref ran it before something else.
            let running = !seen_running && c.revision == status.tracked_ref;
            seen_running |= running;
            HistoryEntry {
                tag: tags.iter().any(|t| t.name == c.revision),
                commit,
                changed_in: c.commit,
                changed_at: c.time,
                changed_by: c.author,
                summary: c.summary,
                running,
                revision: c.revision,
            }
        })
        .collect();
    let report = HistoryReport {
        namespace: prod.session.namespace.clone(),
        path: status.path.clone(),
        manifest: manifest.rel,
        running: Some(Running {
            revision: status.tracked_ref.clone(),
            commit: running_commit,
            result: status.result.as_str().to_string(),
            last_sync_time: status.last_sync_time,
        }),
        entries,
    };
    let text = serialize(&report, args.output).unwrap_or_else(|| format_text(&report));
    printer.result(&text)?;
    Ok(ExitStatus::Success)
}

pub fn format_text(r: &HistoryReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "namespace {} renders {}; its agent is set in {}",
        r.namespace, r.path, r.manifest
    );
    if let Some(run) = &r.running {
        let _ = writeln!(
            out,
            "running {} at {} ({})",
            run.revision,
            run.commit.as_deref().map_or("unknown commit", short),
            run.result
        );
    }
    if r.entries.is_empty() {
        out.push_str("no commit in this clone sets the agent's --revision\n");
        return out;
    }
    let rows: Vec<[String; 5]> = r
        .entries
        .iter()
        .map(|e| {
            [
                format!("{}{}", if e.running { "* " } else { "  " }, e.revision),
                e.commit.as_deref().map_or("-", short).to_string(),
                e.changed_at.strftime("%Y-%m-%d %H:%M").to_string(),
                e.changed_by.clone(),
                format!("{} {}", short(&e.changed_in), e.summary),
            ]
        })
        .collect();
    let header = ["  REVISION", "COMMIT", "SINCE (UTC)", "BY", "CHANGED IN"];
    out.push_str(&table(header, &rows, |_, _, cell| cell.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_snapshot() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let entry =
            |rev: &str, commit: &str, changed: &str, when: &str, running: bool| HistoryEntry {
                revision: rev.into(),
                commit: Some(commit.into()),
                tag: rev.starts_with('v'),
                changed_in: changed.into(),
                changed_at: at(when),
                changed_by: "Ada Lovelace".into(),
                summary: format!("prod: run {rev}"),
                running,
            };
        let report = HistoryReport {
            namespace: "prod".into(),
            path: "overlays/prod".into(),
            manifest: "clusters/prod/gitops-agent.yaml".into(),
            running: Some(Running {
                revision: "v1.4.2".into(),
                commit: Some("1111111111111111111111111111111111111111".into()),
                result: "Synced".into(),
                last_sync_time: None,
            }),
            entries: vec![
                entry(
                    "v1.4.2",
                    "1111111111111111111111111111111111111111",
                    "cccccccccccccccccccccccccccccccccccccccc",
                    "2026-11-26T12:00:00Z",
                    true,
                ),
                entry(
                    "v1.5.0",
                    "2222222222222222222222222222222222222222",
                    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                    "2026-11-25T09:30:00Z",
                    false,
                ),
                entry(
                    "v1.4.2",
                    "1111111111111111111111111111111111111111",
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "2026-11-20T08:00:00Z",
                    false,
                ),
            ],
        };
        insta::assert_snapshot!(format_text(&report));
    }
}
