//! The agent applies Git to the namespace: the prod overlay, tag pinning, broken commits,
//! refused objects, and no writes when nothing changed.

use std::time::Duration;

use anyhow::Result;
use renderer::protocol::{APPLYSET_PART_OF_LABEL, REVISION_ANNOTATION, SyncResult};

use crate::agent_harness::{AgentEnv, CATALOG_KINDS};

pub async fn catalog_env(prefix: &str) -> Result<(AgentEnv, String)> {
    let env = AgentEnv::new(prefix).await?;
    env.copy_into_repo("examples/catalog-api", "")?;
    let commit = env.repo.commit("catalog-api")?;
    Ok((env, commit))
}

#[tokio::test]
async fn agent_applies_the_prod_overlay() -> Result<()> {
    let (mut env, commit) = catalog_env("agent-prod").await?;
    env.start(&["--path=overlays/prod"])?;
    let status = env.wait_synced(&commit).await?;
    assert_eq!(status.applied, 4, "{status:#?}");

    let deploy = env
        .get("apps/v1", "Deployment", "catalog-api")
        .await?
        .expect("deployment");
    assert_eq!(deploy.data["spec"]["replicas"], 3);
    let container = &deploy.data["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["resources"]["limits"]["cpu"], "1");
    assert_eq!(container["image"], "registry.example.com/catalog-api:1.4.2");
    let labels = deploy.metadata.labels.clone().unwrap_or_default();
    assert!(labels.contains_key(APPLYSET_PART_OF_LABEL), "{labels:?}");
    // Nothing per commit on the member: the parent records the commit that changed it.
    assert!(
        !deploy
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .contains_key(REVISION_ANNOTATION)
    );
    assert_eq!(
        env.member_commit("Deployment.apps/catalog-api")
            .await?
            .as_deref(),
        Some(commit.as_str())
    );
    assert!(env.get("v1", "Service", "catalog-api").await?.is_some());
    assert!(
        env.get("v1", "ServiceAccount", "catalog-api")
            .await?
            .is_some()
    );
    Ok(())
}

#[tokio::test]
async fn agent_follows_a_pinned_tag_not_main() -> Result<()> {
    let (mut env, pinned) = catalog_env("agent-tag").await?;
    env.repo.tag("v1.5.0", &pinned, "release 1.5.0")?;
    let newer = env.repo.commit_files(
        &[(
            "overlays/prod/deployment-prod.yaml",
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../examples/catalog-api/overlays/prod/deployment-prod.yaml"),
            )?
            .replace("replicas: 3", "replicas: 5"),
        )],
        "scale to 5 on main",
    )?;
    env.start(&["--path=overlays/prod", "--revision=v1.5.0"])?;
    let status = env.wait_synced(&pinned).await?;
    assert_eq!(status.resolved_tag.as_deref(), Some("v1.5.0"));
    // Several intervals pass; main's newer commit must never be applied.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let deploy = env
        .get("apps/v1", "Deployment", "catalog-api")
        .await?
        .expect("deployment");
    assert_eq!(
        deploy.data["spec"]["replicas"], 3,
        "main ({newer}) leaked into a pinned agent"
    );
    assert_eq!(
        env.status()
            .await?
            .unwrap()
            .last_applied_revision
            .as_deref(),
        Some(pinned.as_str())
    );
    Ok(())
}

#[tokio::test]
async fn agent_broken_commit_applies_and_deletes_nothing() -> Result<()> {
    let (mut env, good) = catalog_env("agent-broken").await?;
    env.start(&["--path=overlays/prod"])?;
    env.wait_synced(&good).await?;
    // The controllers write the rollout's status; compare once it has settled.
    crate::plugin_promote::wait_healthy(&env).await?;
    let before = env.versions(CATALOG_KINDS).await?;

    let broken = env.repo.commit_files(
        &[
            ("overlays/prod/deployment-prod.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: catalog-api\nspec:\n  replicas: [3\n"),
            ("base/kustomization.yaml", "resources:\n- deployment.yaml\n"),
        ],
        "broken yaml, and the Service and ServiceAccount dropped",
    )?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.last_attempted_revision.as_deref() == Some(broken.as_str())
                && s.result == SyncResult::Failed
        })
        .await?;
    assert!(
        status
            .message
            .contains("overlays/prod/deployment-prod.yaml"),
        "{}",
        status.message
    );
    assert_eq!(status.last_applied_revision.as_deref(), Some(good.as_str()));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = env.versions(CATALOG_KINDS).await?;
    let members = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .filter(|(k, _)| !k.ends_with("/kubectl-gitops"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        members(&before),
        members(&after),
        "a broken commit changed or deleted objects"
    );
    Ok(())
}

#[tokio::test]
async fn agent_refuses_cluster_scoped_and_foreign_objects() -> Result<()> {
    let env_ = AgentEnv::new("agent-refuse").await?;
    let mut env = env_;
    let commit = env.repo.commit_files(
        &[
            (
                "app/kustomization.yaml",
                "resources:\n- ns.yaml\n- cm.yaml\n",
            ),
            (
                "app/ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: someone-else\n",
            ),
            (
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\ndata:\n  a: b\n",
            ),
        ],
        "a Namespace",
    )?;
    env.start(&["--path=app"])?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| s.result == SyncResult::Refused)
        .await?;
    assert_eq!(
        status.last_attempted_revision.as_deref(),
        Some(commit.as_str())
    );
    assert!(
        status.message.contains("Namespace/someone-else"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("cluster-scoped"),
        "{}",
        status.message
    );
    assert!(
        env.get("v1", "ConfigMap", "fine").await?.is_none(),
        "a refused revision was partly applied"
    );
    Ok(())
}

#[tokio::test]
async fn agent_noop_resync_writes_nothing() -> Result<()> {
    let (mut env, commit) = catalog_env("agent-noop").await?;
    env.start(&["--path=overlays/prod", "--interval=1s"])?;
    env.wait_synced(&commit).await?;
    // The controllers write the rollout's status; compare once it has settled.
    crate::plugin_promote::wait_healthy(&env).await?;
    // Let the first cycles settle (watch start-up, status), then watch several intervals.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = env.versions(CATALOG_KINDS).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = env.versions(CATALOG_KINDS).await?;
    assert_eq!(
        before,
        after,
        "a no-op resync wrote to the API server\n{}",
        env.logs()
    );
    Ok(())
}
