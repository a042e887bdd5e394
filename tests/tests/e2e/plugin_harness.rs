//! Shared set-up for the plugin scenarios: the catalog example synced by the real agent, then
//! the agent stopped so that the scenario's own changes stay put, and the real
//! `kubectl-gitops` binary run inside the repository like a person would.

use std::process::Command;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tests::cluster::{ADMIN_CONTEXT, kubeconfig_path};

use crate::agent_harness::AgentEnv;
use crate::agent_sync::catalog_env;

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| {
            format!(
                "stdout is not JSON:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `kubectl gitops ARGS -n <namespace>` as the admin, inside the repository.
pub fn plugin(env: &AgentEnv, args: &[&str]) -> Result<Output> {
    plugin_with_env(env, args, &[])
}

/// [`plugin`] with extra environment variables (e.g. `SOPS_AGE_KEY_FILE`).
pub fn plugin_with_env(env: &AgentEnv, args: &[&str], vars: &[(&str, &str)]) -> Result<Output> {
    let binary = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
    let out = Command::new(binary)
        .args(args)
        .envs(vars.iter().copied())
        .arg(format!("--kubeconfig={}", kubeconfig_path()?.display()))
        .arg(format!("--context={ADMIN_CONTEXT}"))
        .arg(format!("--namespace={}", env.ns.name()))
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .current_dir(env.repo.path())
        .output()
        .context("running kubectl-gitops")?;
    Ok(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The prod overlay of the catalog example synced at its first commit and rolled out (the
/// controllers no longer change it), agent stopped.
pub async fn synced_catalog(prefix: &str) -> Result<(AgentEnv, String)> {
    let (mut env, commit) = catalog_env(prefix).await?;
    env.start(&["--path=overlays/prod"])?;
    env.wait_synced(&commit).await?;
    crate::plugin_promote::wait_healthy(&env).await?;
    env.kill();
    Ok((env, commit))
}

/// What `kubectl set image` sends: a strategic-merge patch under its own field manager.
pub async fn kubectl_set_image(env: &AgentEnv, image: &str) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}});
    let params = PatchParams {
        field_manager: Some("kubectl-set".into()),
        ..Default::default()
    };
    deployments
        .patch("catalog-api", &params, &Patch::Strategic(&patch))
        .await?;
    Ok(())
}
