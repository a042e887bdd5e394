//! `kubectl gitops rollback --to TAG`: point the production agent back at an earlier release
//! tag, after showing what that changes in the namespace (render of now against the tag).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::Args;
use serde_json::Value;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::live::object_key;
use crate::cluster::session::block_on;
use crate::cluster::tracked::tracked_commit;
use crate::commands::break_glass::confirm;
use crate::git::local_repo::{LocalRepo, short};
use crate::output::printer::Printer;
use crate::output::unified_diff::{DiffOptions, object_diff};
use crate::plan::desired;
use crate::release::plan::{Environment, RevisionEdit, current_branch, print_diff};
use crate::release::repo::{self, resolve_commit};
use crate::release::rules::release_version;

pub const EXAMPLES: &str = "\
Production is the namespace given by -n (or the context's namespace). The change is made
where `promote` makes it: the `--revision=` of that namespace's agent manifest in Git.

Examples:
  # Show what going back to v1.4.2 changes, then ask before committing it
  kubectl gitops rollback --to v1.4.2 -n prod

  # Only show the plan and the diff
  kubectl gitops rollback --to v1.4.2 -n prod --dry-run

  # No questions, and push the commit
  kubectl gitops rollback --to v1.4.2 -n prod --yes --push

  # ... then wait until production runs it and is Healthy again
  kubectl gitops rollback --to v1.4.2 -n prod --yes --push --wait --timeout 5m";

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The release tag production goes back to
    #[arg(long, value_name = "TAG")]
    pub to: String,
    /// The production agent's Deployment manifest (default: found in the repository)
    #[arg(long, value_name = "FILE")]
    pub agent_manifest: Option<PathBuf>,
    /// Print the manifest change instead of committing it
    #[arg(long)]
    pub print: bool,
    /// Push the commit to origin
    #[arg(long)]
    pub push: bool,
    /// A clone of the repository (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
    /// Print what would be done and stop
    #[arg(long)]
    pub dry_run: bool,
    /// After committing, wait until the agent runs the tag and every object is Healthy
    #[arg(long, conflicts_with_all = ["print", "dry_run"])]
    pub wait: bool,
    /// How long --wait waits (e.g. 90s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
}

/// `--timeout`: the break-glass `--for` syntax (`90s`, `5m`, `1h30m`), at most a day.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let d = crate::plan::change_plan::parse_duration(text).map_err(|e| e.to_string())?;
    let secs = d.as_secs();
    if !(1..=86_400).contains(&secs) {
        return Err(format!("{text:?}: must be between 1s and 24h"));
    }
    Ok(std::time::Duration::from_secs(secs as u64))
}

pub fn run(args: &RollbackArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    release_version(&args.to)?;
    let local = LocalRepo::open(args.repo.as_deref())?;
    block_on(rollback(args, kube, &local, printer))?
}

async fn rollback(
    args: &RollbackArgs,
    kube: &KubeArgs,
    local: &LocalRepo,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let prod = Environment::connect(kube, None, None).await?;
    let status = prod.status()?;
    if !repo::tags(&local.repo)?.iter().any(|t| t.name == args.to) {
        bail!(
            "tag {} is not in this clone (run `git fetch --tags`)",
            args.to
        );
    }
    let target = resolve_commit(&local.repo, &args.to)?;
    let current = tracked_commit(status)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{} reports no commit", prod.label))?;
    let edit = RevisionEdit::plan(
        local,
        &status.path,
        &prod.session.namespace,
        args.agent_manifest.as_deref(),
        status.config_path.as_deref(),
        &args.to,
    )?
    // The agent refuses a commit that does not descend from the one it runs, unless told
    // that this one is a rollback.
    .with_rollback_allowance(Some(&target));
    if edit.is_noop() {
        printer.info(&format!(
            "{} already says {}{}",
            edit.manifest.rel,
            args.to,
            if current == target {
                String::new()
            } else {
                format!(
                    "; {} still runs {}: deploy that manifest",
                    prod.label, status.tracked_ref
                )
            }
        ));
        return Ok(ExitStatus::Success);
    }
    printer.info(&format!(
        "{} runs {} ({}); rolling back to {} ({}) changes:",
        prod.label,
        status.tracked_ref,
        short(&current),
        args.to,
        short(&target)
    ));
    let changes = render_changes(local, &status.path, &current, &target, printer.color())?;
    if changes.is_empty() {
        printer.info("  nothing in the namespace (the rendered overlay is the same)");
    } else {
        print_diff(printer, &changes)?;
    }
    printer.info(&predicted_summary(&prod.session, local, &status.path, &target, printer).await?);
    printer.info(&format!(
        "will point {} at {}: {}{}",
        prod.label,
        args.to,
        edit.describe(),
        if args.print {
            " (printed, not committed)"
        } else {
            ""
        }
    ));
    if args.print || printer.verbosity() >= crate::output::printer::Verbosity::Verbose {
        print_diff(printer, &edit.diff(printer.color()))?;
    }
    if args.dry_run {
        printer.info("dry run: nothing was changed");
        return Ok(ExitStatus::Success);
    }
    if args.print {
        printer.info(&format!(
            "apply the change above to {} and merge it to roll back",
            edit.manifest.rel
        ));
        return Ok(ExitStatus::Success);
    }
    if !confirm(
        &format!("Roll {} back to {}?", prod.label, args.to),
        args.yes,
    )? {
        printer.info("nothing was changed");
        return Ok(ExitStatus::Failure);
    }
    let message = format!(
        "{}: roll back to {}\n\nWas running {} (commit {current}).\n",
        prod.session.namespace, args.to, status.tracked_ref
    );
    let sha = edit.commit(local, &message)?;
    let branch = current_branch(local)?;
    printer.info(&format!(
        "committed {} on {branch}: {} now runs {}",
        short(&sha),
        edit.manifest.rel,
        args.to
    ));
    if args.push {
        repo::push(
            &local.repo,
            &[format!("refs/heads/{branch}:refs/heads/{branch}")],
        )?;
        printer.info(&format!("pushed {branch} to origin"));
    }
    if args.wait {
        printer.info(&format!(
            "waiting up to {}s for {} to run {} and be Healthy",
            args.timeout.as_secs(),
            prod.label,
            args.to
        ));
        crate::release::wait::until_healthy(&prod.session, &target, args.timeout, printer).await?;
        printer.info(&format!("{} runs {} and is Healthy", prod.label, args.to));
    }
    Ok(ExitStatus::Success)
}

/// What the agent will do to the live namespace at `target`, predicted as `diff` predicts it
/// (a dry-run of its own apply), so drift and removals since the last sync are counted too.
async fn predicted_summary(
    session: &crate::cluster::session::Session,
    local: &LocalRepo,
    overlay: &str,
    target: &str,
    printer: &Printer,
) -> anyhow::Result<String> {
    let source = local.source_at(target)?;
    let rendered = desired::render(&source, overlay)
        .map_err(|e| anyhow!("rendering {overlay} at {}: {e}", short(target)))?;
    let kinds = crate::cluster::live::Kinds::discover(&session.client).await?;
    let parent = crate::cluster::tracked::read_parent(&session.client, &session.namespace).await?;
    let report = crate::commands::diff::compare_with_live(
        session,
        &kinds,
        parent.as_ref(),
        &rendered,
        overlay,
        Some(target.to_string()),
        printer,
    )
    .await?;
    let s = &report.summary;
    Ok(format!(
        "live, the agent will then create {}, change {}, prune {} and leave {} unchanged \
         (`kubectl gitops diff --revision {}` shows each field)",
        s.create,
        s.change,
        s.prune,
        s.unchanged,
        short(target)
    ))
}

/// The rendered overlay at `from` against `to`, object by object, Secrets redacted.
fn render_changes(
    local: &LocalRepo,
    overlay: &str,
    from: &str,
    to: &str,
    color: bool,
) -> anyhow::Result<String> {
    let objects = |rev: &str| -> anyhow::Result<BTreeMap<String, Value>> {
        let source = local.source_at(rev)?;
        let rendered = desired::render(&source, overlay)
            .map_err(|e| anyhow!("rendering {overlay} at {}: {e}", short(rev)))?;
        Ok(rendered
            .objects
            .into_iter()
            .map(|o| (object_key(&o.value), o.value))
            .collect())
    };
    let (before, after) = (objects(from)?, objects(to)?);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::new();
    for key in keys {
        if let Some(diff) = object_diff(
            before.get(key).cloned(),
            after.get(key).cloned(),
            (short(from), short(to)),
            key,
            DiffOptions {
                color,
                ..Default::default()
            },
        ) {
            out.push_str(&diff);
        }
    }
    Ok(out)
}
