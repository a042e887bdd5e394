//! What limits pruning: `--no-prune`, the per-object opt-out annotation, and an empty render
//! (never pruned from, unless `--allow-empty`).

use std::time::Duration;

use anyhow::Result;
use kube::api::{Patch, PatchParams};
use renderer::protocol::{PRUNE_ANNOTATION, PRUNE_DISABLED, SyncResult};
use serde_json::json;

use crate::agent_harness::AgentEnv;

/// Commits overlay `app/` declaring one ConfigMap per name; returns the sha.
pub(crate) fn commit_configmaps(env: &AgentEnv, names: &[&str]) -> Result<String> {
    let mut resources = String::from("resources:\n");
    for name in names {
        resources.push_str(&format!("- {name}.yaml\n"));
        env.repo.write(
            &format!("app/{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  name: {name}\n"
            ),
        )?;
    }
    if names.is_empty() {
        resources = "resources: []\n".into();
    }
    env.repo.write("app/kustomization.yaml", &resources)?;
    env.repo.commit(&format!("configmaps {names:?}"))
}

pub(crate) async fn exists(env: &AgentEnv, name: &str) -> Result<bool> {
    Ok(env.get("v1", "ConfigMap", name).await?.is_some())
}

#[tokio::test]
async fn agent_with_no_prune_lists_what_it_would_prune() -> Result<()> {
    let mut env = AgentEnv::new("agent-noprune").await?;
    let first = commit_configmaps(&env, &["alpha", "beta"])?;
    env.start(&["--path=app", "--no-prune"])?;
    env.wait_synced(&first).await?;
    assert!(exists(&env, "beta").await?);

    let second = commit_configmaps(&env, &["alpha"])?;
    let status = env.wait_synced(&second).await?;
    let skipped: Vec<_> = status
        .prune_skipped
        .iter()
        .map(|c| (c.kind.as_str(), c.name.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [("ConfigMap", "beta", "--no-prune")],
        "{status:#?}"
    );
    assert_eq!(status.pruned, 0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(exists(&env, "beta").await?, "--no-prune deleted beta");
    Ok(())
}

#[tokio::test]
async fn agent_keeps_a_member_annotated_prune_disabled() -> Result<()> {
    let mut env = AgentEnv::new("agent-prune-optout").await?;
    let first = commit_configmaps(&env, &["alpha", "beta", "gamma"])?;
    env.start(&["--path=app"])?;
    env.wait_synced(&first).await?;

    // An operator marks beta as precious on the live object.
    let admin = env.admin().await?;
    env.api(&admin, "v1", "ConfigMap")
        .patch(
            "beta",
            &PatchParams {
                field_manager: Some("operator".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"metadata": {"annotations": {PRUNE_ANNOTATION: PRUNE_DISABLED}}})),
        )
        .await?;

    let second = commit_configmaps(&env, &["alpha"])?;
    let status = env.wait_synced(&second).await?;
    env.eventually("gamma pruned", Duration::from_secs(10), || async {
        Ok((!exists(&env, "gamma").await?).then_some(()))
    })
    .await?;
    assert!(
        exists(&env, "beta").await?,
        "an opted-out member was pruned"
    );
    assert_eq!(status.pruned, 1, "{status:#?}");
    let skipped: Vec<_> = status
        .prune_skipped
        .iter()
        .map(|c| (c.name.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [(
            "beta",
            format!("{PRUNE_ANNOTATION}={PRUNE_DISABLED}").as_str()
        )]
    );
    Ok(())
}

#[tokio::test]
async fn agent_never_prunes_everything_on_an_empty_render() -> Result<()> {
    let mut env = AgentEnv::new("agent-empty").await?;
    let first = commit_configmaps(&env, &["alpha", "beta"])?;
    env.start(&["--path=app"])?;
    env.wait_synced(&first).await?;
    let kinds = [("v1", "ConfigMap")];
    let members = |v: std::collections::BTreeMap<String, String>| {
        v.into_iter()
            .filter(|(k, _)| !k.ends_with("/kubectl-gitops"))
            .collect::<Vec<_>>()
    };
    let before = members(env.versions(&kinds).await?);

    let empty = commit_configmaps(&env, &[])?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.last_attempted_revision.as_deref() == Some(empty.as_str())
                && s.result == SyncResult::Failed
        })
        .await?;
    assert!(
        status.message.contains("no objects") && status.message.contains("--allow-empty"),
        "{}",
        status.message
    );
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(first.as_str())
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(members(env.versions(&kinds).await?), before);

    // The operator really means it.
    env.kill();
    // An empty render prunes everything: over the mass-prune guard too.
    env.start(&["--path=app", "--allow-empty", "--prune-limit=100%"])?;
    let status = env.wait_synced(&empty).await?;
    assert_eq!(status.pruned, 2, "{status:#?}");
    env.eventually("both pruned", Duration::from_secs(10), || async {
        Ok((!exists(&env, "alpha").await? && !exists(&env, "beta").await?).then_some(()))
    })
    .await?;
    Ok(())
}
