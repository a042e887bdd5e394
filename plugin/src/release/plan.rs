//! What `promote` and `rollback` share: reading an environment's agent from the cluster, and
//! the one-line change that points the production agent at a tag, shown before it is made.

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use renderer::protocol::{SyncResult, SyncStatus};

use crate::cluster::KubeArgs;
use crate::cluster::session::Session;
use crate::cluster::tracked;
use crate::git::local_repo::LocalRepo;
use crate::output::printer::Printer;
use crate::output::unified_diff::{DiffOptions, unified_diff};
use crate::release::repo::{self, AgentManifest, RevisionSetting, find_revision_manifest};

/// An environment: a namespace (optionally in another kubeconfig context) with an agent.
pub struct Environment {
    pub label: String,
    pub session: Session,
    pub status: Option<SyncStatus>,
}

impl Environment {
    /// Connects to `namespace` (or the context's namespace) in `context` (or the current one)
    /// and reads the agent's status there.
    pub async fn connect(
        kube: &KubeArgs,
        namespace: Option<&str>,
        context: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut args = kube.clone();
        if let Some(ns) = namespace {
            args.namespace = Some(ns.to_string());
        }
        if let Some(ctx) = context {
            args.context = Some(ctx.to_string());
        }
        let session = Session::connect(&args).await?;
        let parent = tracked::read_parent(&session.client, &session.namespace).await?;
        let status = parent.and_then(|p| p.status);
        let label = match &args.context {
            Some(ctx) => format!("namespace {} (context {ctx})", session.namespace),
            None => format!("namespace {}", session.namespace),
        };
        Ok(Self {
            label,
            session,
            status,
        })
    }

    pub fn status(&self) -> anyhow::Result<&SyncStatus> {
        self.status.as_ref().ok_or_else(|| {
            anyhow!(
                "no agent status in {}: the agent has not synced there yet",
                self.label
            )
        })
    }

    /// The commit the agent runs, if it is Synced and everything it applied is Healthy.
    pub fn synced_and_healthy_commit(&self) -> anyhow::Result<String> {
        let status = self.status()?;
        if status.result != SyncResult::Synced {
            bail!(
                "{} is {}{}: only a Synced environment can be promoted",
                self.label,
                status.result.as_str(),
                if status.message.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", status.message)
                }
            );
        }
        let unhealthy: Vec<String> = status
            .health
            .iter()
            .filter(|h| h.state != "Healthy")
            .map(|h| format!("{}/{} {}: {}", h.kind, h.name, h.state, h.message))
            .collect();
        if !unhealthy.is_empty() {
            bail!(
                "{} is Synced but not healthy: {}",
                self.label,
                unhealthy.join("; ")
            );
        }
        let commit = status
            .last_applied_revision
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| anyhow!("{} reports no applied revision", self.label))?;
        Ok(commit)
    }
}

/// The production agent's manifest before and after its `--revision` changes.
pub struct RevisionEdit {
    pub manifest: AgentManifest,
    pub after: String,
    pub to: String,
    /// The edit adds, changes or removes the rollback allowance too.
    allowance_changed: bool,
}

impl RevisionEdit {
    /// Finds the agent manifest for `overlay`/`namespace` (or `explicit`) and plans the edit.
    /// With `config_path` (the agent's `--config-path`, from its status) the edit is of the
    /// agent's self-management ConfigMap, which the running agent follows.
    pub fn plan(
        local: &LocalRepo,
        overlay: &str,
        namespace: &str,
        explicit: Option<&Path>,
        config_path: Option<&str>,
        to: &str,
    ) -> anyhow::Result<Self> {
        let manifest =
            find_revision_manifest(&local.root, overlay, namespace, explicit, config_path)?;
        let after = manifest
            .setting
            .set(&manifest.rel, &manifest.text, manifest.args.line, to)?;
        Ok(Self {
            manifest,
            after,
            to: to.to_string(),
            allowance_changed: false,
        })
    }

    /// Sets (`rollback`: the commit of the target tag) or removes (`promote`) the line that
    /// lets the agent move to a commit not descending from the one it runs.
    pub fn with_rollback_allowance(mut self, commit: Option<&str>) -> Self {
        let after = crate::release::rollback_allowance::set_allowance(
            &self.after,
            self.manifest.args.line,
            self.manifest.setting,
            commit,
        );
        let unchanged = crate::release::rollback_allowance::set_allowance(
            &self.manifest.text,
            self.manifest.args.line,
            self.manifest.setting,
            commit,
        ) == self.manifest.text;
        self.allowance_changed = !unchanged;
        self.after = after;
        self
    }

    pub fn is_noop(&self) -> bool {
        self.manifest.args.revision == self.to && !self.allowance_changed
    }

    /// One line naming the change, for the plan printed before anything happens.
    pub fn describe(&self) -> String {
        let setting = match self.manifest.setting {
            RevisionSetting::AgentArg => format!("{}=", crate::constants::AGENT_REVISION_ARG),
            RevisionSetting::ConfigMap => format!(
                "ConfigMap {} {}: ",
                renderer::protocol::AGENT_CONFIG_NAME,
                renderer::protocol::AGENT_CONFIG_REVISION_KEY
            ),
        };
        format!(
            "{}:{}: {setting}{} -> {}{}",
            self.manifest.rel,
            self.manifest.args.line,
            self.manifest.args.revision,
            self.to,
            if self.allowance_changed {
                " (and the rollback allowance next to it, which the agent requires to move back)"
            } else {
                ""
            }
        )
    }

    pub fn diff(&self, color: bool) -> String {
        let rel = &self.manifest.rel;
        unified_diff(
            &self.manifest.text,
            &self.after,
            &format!("a/{rel}"),
            &format!("b/{rel}"),
            DiffOptions {
                color,
                ..Default::default()
            },
        )
        .unwrap_or_default()
    }

    /// Writes and commits the manifest on the current branch; returns the commit id.
    pub fn commit(&self, local: &LocalRepo, message: &str) -> anyhow::Result<String> {
        let status = local
            .repo
            .status_file(Path::new(&self.manifest.rel))
            .with_context(|| format!("reading the Git status of {}", self.manifest.rel))?;
        if !status.is_empty() {
            bail!(
                "{} has uncommitted changes: commit or discard them first",
                self.manifest.rel
            );
        }
        repo::commit_files(local, &[(&self.manifest.rel, &self.after)], message)
    }
}

/// The current branch's name, for pushing the commit that changed the manifest.
pub fn current_branch(local: &LocalRepo) -> anyhow::Result<String> {
    let head = local.repo.head().context("reading HEAD")?;
    head.shorthand()
        .ok()
        .filter(|_| head.is_branch())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("HEAD is detached: check out the branch to commit on"))
}

/// Prints `diff` as a result (stdout), so it can be piped to `git apply`.
pub fn print_diff(printer: &Printer, diff: &str) -> anyhow::Result<()> {
    printer.result(diff).context("writing to stdout")
}
