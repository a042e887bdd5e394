//! `kubectl gitops install --repo=URL [--path=DIR] [--revision=REV]`: the agent for one
//! namespace, from the base compiled into the plugin. Shows what would change (a server-side
//! dry-run, Secret values redacted), asks, then applies with server-side apply as
//! `kubectl-gitops`. Agent objects of an earlier install that the new one no longer renders
//! (a credentials Secret under an old hash) are deleted.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueHint};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use renderer::protocol::PLUGIN_FIELD_MANAGER;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::live::{Kinds, object_key};
use crate::cluster::session::{Session, block_on};
use crate::commands::break_glass::confirm;
use crate::install::live::{agent_objects, delete, object_diff};
use crate::install::manifests::{Credential, InstallSettings, render_install};
use crate::output::printer::Printer;

pub const EXAMPLES: &str = "\
Examples:
  # Run the agent in namespace shop, syncing overlays/prod of the main branch
  kubectl gitops install -n shop --repo=https://git.example.com/shop/deploy.git --path=overlays/prod

  # A private repository over HTTPS, with a token kept in a file (stored as a Secret)
  kubectl gitops install -n shop --repo=https://git.example.com/shop/deploy.git --git-token-file=token.txt

  # Only show what would be applied
  kubectl gitops install -n shop --repo=https://git.example.com/shop/deploy.git --dry-run";

#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// The Git repository the agent syncs: https://, ssh://, git:// or file://
    #[arg(long, value_name = "URL")]
    pub repo: String,
    /// The kustomization directory inside the repository
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub path: String,
    /// Branch, tag, commit, or semver range over tags
    #[arg(long, value_name = "REV", default_value = "main")]
    pub revision: String,
    /// The agent image, replacing the release's (e.g. registry.example.com/gitops-agent:0.1.0)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// File holding an HTTPS token
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub git_token_file: Option<PathBuf>,
    /// File holding the HTTPS user name
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub git_username_file: Option<PathBuf>,
    /// File holding the HTTPS password
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub git_password_file: Option<PathBuf>,
    /// Private SSH key for ssh:// repositories
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub ssh_key_file: Option<PathBuf>,
    /// known_hosts for ssh:// repositories
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub known_hosts_file: Option<PathBuf>,
    /// age private keys (`age-keygen` output) the agent decrypts SOPS files with; stored in
    /// the agent's credentials Secret, never printed
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub sops_age_key_file: Option<PathBuf>,
    /// Apply only commits (or annotated tags) signed by a trusted key: `ssh` (an
    /// allowed-signers file) or `openpgp` (armored public keys); needs --trusted-keys
    #[arg(long, value_name = "FORMAT", value_parser = ["none", "ssh", "openpgp"], default_value = "none")]
    pub verify: String,
    /// The trusted keys for --verify; stored in the agent's credentials Secret and mounted
    /// where the agent's --trusted-keys reads them
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub trusted_keys: Option<PathBuf>,
    /// Apply without asking
    #[arg(short, long)]
    pub yes: bool,
    /// Show the changes and stop
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &InstallArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    block_on(install(args, kube, printer))?
}

/// `--verify` and `--trusted-keys` go together: one without the other is refused, and an
/// empty keys file would make every commit fail (or, worse, look configured).
fn verify_setting(args: &InstallArgs) -> anyhow::Result<Option<String>> {
    match (args.verify.as_str(), &args.trusted_keys) {
        ("none", None) => Ok(None),
        ("none", Some(_)) => bail!("--trusted-keys is only used with --verify=ssh|openpgp"),
        (mode, None) => bail!("--verify={mode} needs --trusted-keys FILE"),
        (mode, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("{}: reading --trusted-keys", file.display()))?;
            if text.trim().is_empty() {
                bail!("{}: --trusted-keys is empty", file.display());
            }
            Ok(Some(mode.to_string()))
        }
    }
}

fn credentials(args: &InstallArgs) -> anyhow::Result<Vec<(Credential, Vec<u8>)>> {
    let given = [
        (Credential::Token, &args.git_token_file),
        (Credential::Username, &args.git_username_file),
        (Credential::Password, &args.git_password_file),
        (Credential::SshKey, &args.ssh_key_file),
        (Credential::KnownHosts, &args.known_hosts_file),
        (Credential::SopsAgeKey, &args.sops_age_key_file),
        (Credential::TrustedKeys, &args.trusted_keys),
    ];
    given
        .into_iter()
        .filter_map(|(credential, file)| file.as_ref().map(|f| (credential, f)))
        .map(|(credential, file)| {
            let content = std::fs::read(file)
                .with_context(|| format!("{}: reading {}", file.display(), credential.flag()))?;
            Ok((credential, content))
        })
        .collect()
}

async fn install(
    args: &InstallArgs,
    kube: &KubeArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let verify = verify_setting(args)?;
    let session = Session::connect(kube).await?;
    let ns = session.namespace.clone();
    if let Some(warning) = renderer::protocol::insecure_transport_warning(
        &args.repo,
        verify.as_deref().unwrap_or("none"),
    ) {
        printer.warn(&warning);
    }
    let settings = InstallSettings {
        verify,
        namespace: ns.clone(),
        repo: args.repo.clone(),
        path: args.path.clone(),
        revision: args.revision.clone(),
        image: args.image.clone(),
        credentials: credentials(args)?,
    };
    let objects = render_install(&settings).context("rendering the agent's manifests")?;
    if Api::<Namespace>::all(session.client.clone())
        .get_opt(&ns)
        .await
        .with_context(|| format!("reading namespace {ns}"))?
        .is_none()
    {
        bail!("namespace {ns} does not exist; create it first: kubectl create namespace {ns}");
    }

    let kinds = Kinds::discover(&session.client).await?;
    let mut changes = 0;
    let mut text = String::new();
    for object in &objects {
        let key = object_key(object);
        let resource = kinds
            .for_object(object)
            .with_context(|| format!("{key}: the API server does not serve this kind"))?;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let live = crate::cluster::live::get(&session.client, &ns, &resource, name).await?;
        let after =
            crate::cluster::live::dry_run_apply(&session.client, &ns, &resource, object).await?;
        if let Some(diff) = object_diff(live.as_ref(), Some(&after), &key, printer.color()) {
            changes += 1;
            text.push_str(&diff);
        }
    }
    let stale = agent_objects(&session.client, &ns, &kinds)
        .await?
        .into_iter()
        .filter(|live| !objects.iter().any(|o| object_key(o) == object_key(live)))
        .collect::<Vec<_>>();
    for live in &stale {
        changes += 1;
        if let Some(diff) = object_diff(Some(live), None, &object_key(live), printer.color()) {
            text.push_str(&diff);
        }
    }
    printer.result(&text).context("writing to stdout")?;
    if changes == 0 {
        printer.info(&format!("the agent in namespace {ns} is up to date"));
        return Ok(ExitStatus::Success);
    }
    if args.dry_run {
        printer.info(&format!(
            "dry run: {changes} objects would change in namespace {ns}; nothing applied"
        ));
        return Ok(ExitStatus::Success);
    }
    if !confirm(&format!("Apply these changes to namespace {ns}?"), args.yes)? {
        printer.info("nothing applied");
        return Ok(ExitStatus::Failure);
    }

    let params = PatchParams::apply(PLUGIN_FIELD_MANAGER).force();
    for object in &objects {
        let key = object_key(object);
        let (ar, _) = kinds
            .for_object(object)
            .with_context(|| format!("{key}: the API server does not serve this kind"))?;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        Api::<DynamicObject>::namespaced_with(session.client.clone(), &ns, &ar)
            .patch(name, &params, &Patch::Apply(object))
            .await
            .with_context(|| format!("applying {key} in namespace {ns}"))?;
        printer.info(&format!("applied {key}"));
    }
    for live in &stale {
        delete(&session.client, &ns, &kinds, live, false).await?;
        printer.info(&format!("deleted {}", object_key(live)));
    }
    printer.info(&format!(
        "installed gitops-agent in namespace {ns}: {} at {} ({})",
        args.repo, args.revision, args.path
    ));
    Ok(ExitStatus::Success)
}
