//! Pruning: only members of the agent's own ApplySet, and only what Git stopped declaring.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::agent_sync::catalog_env;

#[tokio::test]
async fn agent_prunes_what_git_no_longer_declares() -> Result<()> {
    let (mut env, first) = catalog_env("agent-prune").await?;
    env.start(&["--path=overlays/prod"])?;
    env.wait_synced(&first).await?;
    assert!(env.get("v1", "Service", "catalog-api").await?.is_some());

    env.repo.remove("base/service.yaml")?;
    env.repo.write(
        "base/kustomization.yaml",
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples/catalog-api/base/kustomization.yaml"),
        )?
        .replace("- service.yaml\n", ""),
    )?;
    let second = env.repo.commit("drop the Service")?;
    let status = env.wait_synced(&second).await?;
    assert_eq!(status.pruned, 1, "{status:#?}");
    env.eventually("Service pruned", Duration::from_secs(10), || async {
        Ok(env
            .get("v1", "Service", "catalog-api")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    assert!(
        env.get("apps/v1", "Deployment", "catalog-api")
            .await?
            .is_some()
    );
    Ok(())
}

#[tokio::test]
async fn agent_never_touches_an_unmanaged_nodeport_service() -> Result<()> {
    let (mut env, first) = catalog_env("agent-unmanaged").await?;
    let services: Api<Service> = Api::namespaced(env.admin().await?, env.ns.name());
    let legacy: Service = serde_json::from_value(json!({
        "metadata": {"name": "legacy-nodeport"},
        "spec": {"type": "NodePort", "selector": {"app": "legacy"}, "ports": [{"port": 80}]}
    }))?;
    let created = services.create(&PostParams::default(), &legacy).await?;

    env.start(&["--path=overlays/prod", "--prune"])?;
    env.wait_synced(&first).await?;
    // A second revision that prunes something, so the prune path really runs.
    env.repo.remove("base/service.yaml")?;
    env.repo.write(
        "base/kustomization.yaml",
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples/catalog-api/base/kustomization.yaml"),
        )?
        .replace("- service.yaml\n", ""),
    )?;
    let second = env.repo.commit("drop the Service")?;
    env.wait_synced(&second).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;

    let now = services.get("legacy-nodeport").await?;
    assert_eq!(now.metadata.uid, created.metadata.uid);
    assert_eq!(
        now.metadata.resource_version, created.metadata.resource_version,
        "the agent wrote to an unmanaged Service"
    );
    Ok(())
}
