//! `kubectl gitops prune`: what the agent's mass-prune guard holds back, and `--approve REV`
//! to let it delete that, for that one revision only.

use anyhow::{anyhow, bail};
use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use renderer::protocol::{PARENT_NAME, PLUGIN_FIELD_MANAGER, PRUNE_APPROVED_ANNOTATION};
use serde_json::json;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::session::{Session, block_on};
use crate::cluster::tracked;
use crate::commands::break_glass::confirm;
use crate::git::local_repo::short;
use crate::output::printer::Printer;

pub const EXAMPLES: &str = "\
The agent refuses to prune more than --prune-limit (default 50%) of what it manages in one
sync, and says so in `kubectl gitops status`. Approving names the exact commit held, so a
later commit that prunes even more is held again.

Examples:
  # What is held back, and at which commit
  kubectl gitops prune -n prod

  # Let the agent delete it (shown first; asks unless --yes)
  kubectl gitops prune -n prod --approve 3f2a9c1";

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Approve the held prune of this commit (the full or abbreviated SHA that status shows)
    #[arg(long, value_name = "REV")]
    pub approve: Option<String>,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
}

/// An abbreviation must be at least this long to name a commit.
const MIN_ABBREV: usize = 7;

pub fn run(args: &PruneArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    block_on(prune(args, kube, printer))?
}

async fn prune(args: &PruneArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let session = Session::connect(kube).await?;
    let ns = &session.namespace;
    let status = tracked::read_parent(&session.client, ns)
        .await?
        .and_then(|p| p.status)
        .ok_or_else(|| {
            anyhow!("no agent status in namespace {ns}: the agent has not synced there")
        })?;
    let Some(held) = status.prune_held else {
        if let Some(rev) = &args.approve {
            bail!("the agent in namespace {ns} holds no prune: nothing to approve for {rev}");
        }
        printer.info(&format!("the agent in namespace {ns} holds no prune"));
        return Ok(ExitStatus::Success);
    };
    printer.info(&format!(
        "at {} the agent would delete {} of its {} objects (over --prune-limit {}%):",
        short(&held.revision),
        held.objects.len(),
        held.inventory,
        held.limit_percent
    ));
    let list: String = held
        .objects
        .iter()
        .map(|o| format!("  delete {}/{}\n", o.kind, o.name))
        .collect();
    printer.result(&list)?;
    let Some(rev) = &args.approve else {
        printer.info(&format!(
            "approve with: kubectl gitops prune -n {ns} --approve {}",
            short(&held.revision)
        ));
        return Ok(ExitStatus::Failure);
    };
    if rev.len() < MIN_ABBREV || !held.revision.starts_with(rev.as_str()) {
        bail!(
            "--approve {rev}: the held prune is of commit {}; approval names that exact commit",
            held.revision
        );
    }
    if !confirm(
        &format!(
            "Let the agent delete these {} objects from {ns}?",
            held.objects.len()
        ),
        args.yes,
    )? {
        printer.info("nothing was changed");
        return Ok(ExitStatus::Failure);
    }
    let api: Api<ConfigMap> = Api::namespaced(session.client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {PRUNE_APPROVED_ANNOTATION: held.revision}}});
    let params = PatchParams {
        field_manager: Some(PLUGIN_FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.patch(PARENT_NAME, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| anyhow!("annotating ConfigMap {ns}/{PARENT_NAME}: {e}"))?;
    printer.info(&format!(
        "approved: the agent prunes them at its next sync of {}",
        short(&held.revision)
    ));
    Ok(ExitStatus::Success)
}
