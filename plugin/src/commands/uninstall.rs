//! `kubectl gitops uninstall`: removes the agent of a namespace (first its RoleBinding, so a
//! running agent can no longer write, and its Deployment, scaled to zero and waited for; then
//! its other RBAC, NetworkPolicy and Secret), and either keeps what it managed or deletes that
//! too (each object on the condition of the UID listed). Kept objects stay members of the ApplySet, so a later
//! `install` takes them over again; deleting removes the members and the ApplySet parent.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use clap::Args;
use renderer::protocol::PARENT_NAME;
use serde_json::Value;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::live::{Kinds, members, object_key};
use crate::cluster::session::{Session, block_on};
use crate::cluster::tracked::{Parent, read_parent, set_id};
use crate::commands::break_glass::confirm;
use crate::install::live::{agent_objects, delete};
use crate::install::stop::stop_agent;
use crate::output::printer::Printer;

pub const EXAMPLES: &str = "\
Examples:
  # Remove the agent from namespace shop; ask what to do with the objects it managed
  kubectl gitops uninstall -n shop

  # Remove the agent and everything it applied from Git, without asking
  kubectl gitops uninstall -n shop --delete-managed --yes

  # Remove only the agent; the applications keep running unmanaged
  kubectl gitops uninstall -n shop --keep-managed";

#[derive(Debug, Clone, Args)]
pub struct UninstallArgs {
    /// Also delete every object the agent applied from Git, and its ApplySet parent
    #[arg(long, conflicts_with = "keep_managed")]
    pub delete_managed: bool,
    /// Leave the objects the agent applied from Git in place (the default with --yes)
    #[arg(long)]
    pub keep_managed: bool,
    /// Delete without asking
    #[arg(short, long)]
    pub yes: bool,
    /// Show what would be deleted and stop
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &UninstallArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    block_on(uninstall(args, kube, printer))?
}

/// Keep or delete the managed objects: the flags decide, else the user, else keeping (the
/// choice that loses nothing) when `--yes` says not to ask.
fn delete_managed(args: &UninstallArgs, count: usize, ns: &str) -> anyhow::Result<bool> {
    if args.delete_managed || args.keep_managed || count == 0 {
        return Ok(args.delete_managed);
    }
    if args.yes || args.dry_run {
        return Ok(false);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "the agent manages {count} objects in namespace {ns}: stdin is not a terminal, \
             pass --keep-managed or --delete-managed"
        );
    }
    let choice = dialoguer::Select::new()
        .with_prompt(format!(
            "The agent manages {count} objects in namespace {ns}. After uninstalling"
        ))
        .items(["keep them (unmanaged)", "delete them"])
        .default(0)
        .interact()
        .context("reading the choice")?;
    Ok(choice == 1)
}

async fn uninstall(
    args: &UninstallArgs,
    kube: &KubeArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let session = Session::connect(kube).await?;
    let ns = session.namespace.clone();
    let kinds = Kinds::discover(&session.client).await?;
    let mut agent = agent_objects(&session.client, &ns, &kinds).await?;
    // Its RoleBinding and Deployment go first: a running agent would re-create what is
    // deleted after them.
    agent.sort_by_key(|o| match o["kind"].as_str() {
        Some("RoleBinding") => 0,
        Some("Deployment") => 1,
        _ => 2,
    });
    let parent = read_parent(&session.client, &ns).await?;
    let managed = managed_objects(&session.client, &ns, &kinds, parent.as_ref()).await?;
    if agent.is_empty() && parent.is_none() {
        printer.warn(&format!("no gitops-agent is installed in namespace {ns}"));
        return Ok(ExitStatus::Failure);
    }
    let delete_managed = delete_managed(args, managed.len(), &ns)?;

    let mut plan = String::new();
    for object in &agent {
        plan.push_str(&format!("delete {}\n", object_key(object)));
    }
    if delete_managed {
        for object in &managed {
            plan.push_str(&format!("delete {} (managed)\n", object_key(object)));
        }
        if parent.is_some() {
            plan.push_str(&format!(
                "delete ConfigMap/{PARENT_NAME} (ApplySet parent)\n"
            ));
        }
    } else {
        for object in &managed {
            plan.push_str(&format!("keep {} (managed)\n", object_key(object)));
        }
    }
    printer.result(&plan).context("writing to stdout")?;
    if args.dry_run {
        for object in &agent {
            delete(&session.client, &ns, &kinds, object, true).await?;
        }
        printer.info("dry run: nothing deleted");
        return Ok(ExitStatus::Success);
    }
    if !confirm(
        &format!("Uninstall gitops-agent from namespace {ns}?"),
        args.yes,
    )? {
        printer.info("nothing deleted");
        return Ok(ExitStatus::Failure);
    }

    // The agent is stopped before anything it manages goes: a running one would recreate it.
    stop_agent(&session.client, &ns, &kinds, &agent, printer).await?;
    for object in agent.iter().filter(|o| o["kind"] == "Deployment") {
        delete(&session.client, &ns, &kinds, object, false).await?;
        printer.info(&format!("deleted {}", object_key(object)));
    }
    if delete_managed {
        // Listed again now that nothing recreates them; each delete is conditional on the UID
        // listed, so an object someone else made since is left alone.
        let parent = read_parent(&session.client, &ns).await?;
        let managed = managed_objects(&session.client, &ns, &kinds, parent.as_ref()).await?;
        for object in &managed {
            report(
                printer,
                object,
                delete(&session.client, &ns, &kinds, object, false).await?,
                " (managed)",
            );
        }
        if let Some(parent) = live_parent(&session.client, &ns).await? {
            report(
                printer,
                &parent,
                delete(&session.client, &ns, &kinds, &parent, false).await?,
                " (ApplySet parent)",
            );
        }
    }
    for object in agent
        .iter()
        .filter(|o| o["kind"] != "Deployment" && o["kind"] != "RoleBinding")
    {
        delete(&session.client, &ns, &kinds, object, false).await?;
        printer.info(&format!("deleted {}", object_key(object)));
    }
    if !delete_managed && !managed.is_empty() {
        printer.info(&format!(
            "kept {} managed objects; `kubectl gitops install` takes them over again",
            managed.len()
        ));
    }
    Ok(ExitStatus::Success)
}

/// The ApplySet parent as it is now (with its UID, for a conditional delete).
/// The ApplySet's members as the parent lists their kinds (none without a parent).
async fn managed_objects(
    client: &kube::Client,
    ns: &str,
    kinds: &Kinds,
    parent: Option<&Parent>,
) -> anyhow::Result<Vec<Value>> {
    match parent {
        Some(parent) => members(client, ns, kinds, &parent.group_kinds, &set_id(ns)).await,
        None => Ok(Vec::new()),
    }
}

async fn live_parent(client: &kube::Client, ns: &str) -> anyhow::Result<Option<Value>> {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), ns);
    let Some(cm) = api
        .get_opt(PARENT_NAME)
        .await
        .with_context(|| format!("reading ConfigMap {ns}/{PARENT_NAME}"))?
    else {
        return Ok(None);
    };
    let mut parent = serde_json::to_value(&cm)?;
    parent["apiVersion"] = "v1".into();
    parent["kind"] = "ConfigMap".into();
    Ok(Some(parent))
}

fn report(printer: &Printer, object: &Value, deleted: bool, what: &str) {
    if deleted {
        printer.info(&format!("deleted {}{what}", object_key(object)));
    } else {
        printer.warn(&format!(
            "kept {}{what}: it was replaced (a new UID) after it was listed",
            object_key(object)
        ));
    }
}
