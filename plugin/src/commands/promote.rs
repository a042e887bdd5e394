//! `kubectl gitops promote`: tag what staging runs in sync and healthy, then point the
//! production agent at that tag; or, with `--hotfix`, branch from a production tag.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use git2::BranchType;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::session::block_on;
use crate::commands::break_glass::confirm;
use crate::git::local_repo::{LocalRepo, short};
use crate::output::printer::Printer;
use crate::release::plan::{Environment, RevisionEdit, current_branch, print_diff};
use crate::release::repo::{self, TagInfo};
use crate::release::rules::{check_hotfix_tag, check_promote_tag, hotfix_branch, release_version};

pub const EXAMPLES: &str = "\
Environments are namespaces, each with its own agent: --from and --to name them (in the
current kubeconfig context, or --from-context/--to-context). The production agent's
`--revision=` is found in the repository: the Deployment manifest whose agent has
`--path=<the overlay production renders>` (or --agent-manifest FILE).

Examples:
  # Tag what staging runs as v1.5.0 and commit prod's agent manifest pointing at it
  kubectl gitops promote --from staging --to prod --tag v1.5.0

  # The same with a signed tag, production in another cluster; show the plan only
  kubectl gitops promote --from staging --to prod --to-context prod-eu --tag v1.5.0 \\
      --sign --dry-run

  # Print the manifest change instead of committing it (for a pull request)
  kubectl gitops promote --from staging --to prod --tag v1.5.0 --print

  # Start a hotfix from the production tag, without anything unreleased from main
  kubectl gitops promote --hotfix --from-tag v1.5.0 --tag v1.5.1";

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// The namespace whose agent's synced commit is promoted (e.g. staging)
    #[arg(long, value_name = "NAMESPACE", required_unless_present = "hotfix")]
    pub from: Option<String>,
    /// The production namespace whose agent is pointed at the tag (e.g. prod)
    #[arg(long, value_name = "NAMESPACE", required_unless_present = "hotfix")]
    pub to: Option<String>,
    /// Kubeconfig context of --from (default: the current one)
    #[arg(long, value_name = "NAME")]
    pub from_context: Option<String>,
    /// Kubeconfig context of --to (default: the current one)
    #[arg(long, value_name = "NAME")]
    pub to_context: Option<String>,
    /// The release tag to create: v<MAJOR>.<MINOR>.<PATCH>, newer than the releases before it
    #[arg(long, value_name = "TAG")]
    pub tag: String,
    /// Sign the tag (`git tag --sign`, with your Git signing set-up)
    #[arg(long)]
    pub sign: bool,
    /// Create branch hotfix/<TAG> from --from-tag instead of promoting
    #[arg(long, requires = "from_tag", conflicts_with_all = ["from", "to", "sign"])]
    pub hotfix: bool,
    /// With --hotfix: the production tag to fix
    #[arg(long, value_name = "TAG", requires = "hotfix")]
    pub from_tag: Option<String>,
    /// The production agent's Deployment manifest (default: found in the repository)
    #[arg(long, value_name = "FILE")]
    pub agent_manifest: Option<PathBuf>,
    /// Print the manifest change instead of committing it
    #[arg(long)]
    pub print: bool,
    /// Push the tag (and the manifest commit) to origin
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
}

pub fn run(args: &PromoteArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let local = LocalRepo::open(args.repo.as_deref())?;
    if args.hotfix {
        let from = args.from_tag.as_deref().unwrap_or_default();
        return hotfix(args, &local, from, printer);
    }
    release_version(&args.tag)?;
    block_on(promote(args, kube, &local, printer))?
}

fn existing_tag<'a>(tags: &'a [TagInfo], name: &str) -> Option<&'a TagInfo> {
    tags.iter().find(|t| t.name == name)
}

async fn promote(
    args: &PromoteArgs,
    kube: &KubeArgs,
    local: &LocalRepo,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let staging =
        Environment::connect(kube, args.from.as_deref(), args.from_context.as_deref()).await?;
    let commit = staging.synced_and_healthy_commit()?;
    if !local.has_commit(&commit) {
        bail!(
            "{} runs commit {commit}, which is not in the clone at {} (run `git fetch`)",
            staging.label,
            local.root.display()
        );
    }
    if let Err(why) =
        crate::release::provenance::check_staging_commit(&local.repo, staging.status()?, &commit)
    {
        bail!(
            "refusing to promote what {} reports: {why}; nothing was tagged or committed",
            staging.label
        );
    }
    let tags = repo::tags(&local.repo)?;
    let reuse = match existing_tag(&tags, &args.tag) {
        Some(t) if t.commit == commit => true,
        Some(t) => bail!(
            "tag {} already exists at {}; a release tag is never moved (staging runs {})",
            args.tag,
            short(&t.commit),
            short(&commit)
        ),
        None => {
            check_promote_tag(&args.tag, tags.iter().map(|t| t.name.as_str()))?;
            false
        }
    };

    let prod = Environment::connect(kube, args.to.as_deref(), args.to_context.as_deref()).await?;
    // Without an agent status the overlay is unknown; an explicit manifest still works.
    let overlay = match (&prod.status, &args.agent_manifest) {
        (None, None) => prod.status()?.path.clone(),
        (status, _) => status.as_ref().map(|s| s.path.clone()).unwrap_or_default(),
    };
    let edit = RevisionEdit::plan(
        local,
        &overlay,
        &prod.session.namespace,
        args.agent_manifest.as_deref(),
        prod.status.as_ref().and_then(|s| s.config_path.as_deref()),
        &args.tag,
    )?
    .with_rollback_allowance(None);

    let subject = local
        .repo
        .find_commit(git2::Oid::from_str(&commit)?)
        .ok()
        .and_then(|c| c.summary().ok().flatten().map(str::to_string))
        .unwrap_or_default();
    printer.info(&format!(
        "{} is Synced and healthy at {} ({subject})",
        staging.label,
        short(&commit)
    ));
    if reuse {
        printer.info(&format!("tag {} already points there", args.tag));
    } else {
        printer.info(&format!(
            "will create {}tag {} at {}",
            if args.sign { "signed " } else { "" },
            args.tag,
            short(&commit)
        ));
    }
    if edit.is_noop() {
        printer.info(&format!(
            "{} already runs {} ({})",
            prod.label, args.tag, edit.manifest.rel
        ));
    } else {
        printer.info(&format!(
            "will point {} at {}: {}{}",
            prod.label,
            args.tag,
            edit.describe(),
            if args.print {
                " (printed, not committed)"
            } else {
                ""
            }
        ));
        print_diff(printer, &edit.diff(printer.color()))?;
    }
    if reuse && edit.is_noop() && !args.push {
        return Ok(ExitStatus::Success);
    }
    if args.dry_run {
        printer.info("dry run: nothing was changed");
        return Ok(ExitStatus::Success);
    }
    if !confirm(
        &format!("Promote to {} as {}?", prod.label, args.tag),
        args.yes,
    )? {
        printer.info("nothing was changed");
        return Ok(ExitStatus::Failure);
    }
    if !reuse {
        let message = format!(
            "{}\n\nPromoted from {}, where it was Synced and healthy, to {}.\n",
            args.tag, staging.label, prod.label
        );
        repo::create_tag(local, &args.tag, &commit, &message, args.sign)?;
        printer.info(&format!("tagged {} as {}", short(&commit), args.tag));
    }
    let mut refspecs = vec![format!("refs/tags/{0}:refs/tags/{0}", args.tag)];
    if !edit.is_noop() {
        if args.print {
            printer.info(&format!(
                "apply the change above to {} and merge it to deploy {}",
                edit.manifest.rel, args.tag
            ));
        } else {
            let message = format!(
                "{}: run {}\n\nPromoted from {} (commit {commit}).\n",
                prod.session.namespace, args.tag, staging.label
            );
            let sha = edit.commit(local, &message)?;
            let branch = current_branch(local)?;
            printer.info(&format!(
                "committed {} on {branch}: {} now runs {}",
                short(&sha),
                edit.manifest.rel,
                args.tag
            ));
            refspecs.push(format!("refs/heads/{branch}:refs/heads/{branch}"));
        }
    }
    if args.push {
        repo::push(&local.repo, &refspecs)?;
        printer.info(&format!("pushed {} to origin", refspecs.join(", ")));
    }
    Ok(ExitStatus::Success)
}

/// `hotfix/<tag>` at the production tag's commit, checked out when the tree is clean.
fn hotfix(
    args: &PromoteArgs,
    local: &LocalRepo,
    from: &str,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    check_hotfix_tag(from, &args.tag)?;
    let tags = repo::tags(&local.repo)?;
    let Some(base) = existing_tag(&tags, from) else {
        bail!("tag {from} is not in this clone (run `git fetch --tags`)");
    };
    if existing_tag(&tags, &args.tag).is_some() {
        bail!(
            "tag {} already exists: pick the next patch version",
            args.tag
        );
    }
    let branch = hotfix_branch(&args.tag);
    if local.repo.find_branch(&branch, BranchType::Local).is_ok() {
        bail!("branch {branch} already exists: check it out to continue the hotfix");
    }
    printer.info(&format!(
        "will create branch {branch} at {from} ({}), not at main",
        short(&base.commit)
    ));
    if args.dry_run {
        printer.info("dry run: nothing was changed");
        return Ok(ExitStatus::Success);
    }
    if !confirm(&format!("Create {branch}?"), args.yes)? {
        printer.info("nothing was changed");
        return Ok(ExitStatus::Failure);
    }
    let commit = local
        .repo
        .find_commit(git2::Oid::from_str(&base.commit)?)
        .context("reading the tagged commit")?;
    local
        .repo
        .branch(&branch, &commit, false)
        .with_context(|| format!("creating branch {branch}"))?;
    let dirty = local
        .repo
        .statuses(Some(git2::StatusOptions::new().include_untracked(false)))
        .map(|s| !s.is_empty())
        .unwrap_or(true);
    if dirty {
        printer.warn(&format!(
            "the working tree has changes: stayed on the current branch; `git switch {branch}`"
        ));
    } else {
        local
            .repo
            .checkout_tree(commit.as_object(), None)
            .with_context(|| format!("checking out {branch}"))?;
        local
            .repo
            .set_head(&format!("refs/heads/{branch}"))
            .with_context(|| format!("switching to {branch}"))?;
        printer.info(&format!("switched to {branch}"));
    }
    printer.info(&format!(
        "commit only the fix on {branch}, let staging run it, then:\n  \
         kubectl gitops promote --from <staging> --to <prod> --tag {}",
        args.tag
    ));
    Ok(ExitStatus::Success)
}
