//! Self-heal: deletions and other managers' changes are reverted within about a second, and an
//! HPA's replica count is left alone.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::agent_harness::admin_apply;
use crate::agent_sync::catalog_env;

/// Self-heal must react to the watch, not wait for the periodic resync (set far away here).
const SLOW_INTERVAL: &str = "--interval=10m";

#[tokio::test]
async fn agent_recreates_a_deleted_service() -> Result<()> {
    let (mut env, commit) = catalog_env("agent-heal-del").await?;
    env.start(&["--path=overlays/prod", SLOW_INTERVAL])?;
    env.wait_synced(&commit).await?;
    let admin = env.admin().await?;
    let services = env.api(&admin, "v1", "Service");
    let old_uid = services.get("catalog-api").await?.metadata.uid;

    let start = Instant::now();
    services
        .delete("catalog-api", &DeleteParams::default())
        .await?;
    env.eventually("Service recreated", Duration::from_secs(10), || async {
        Ok(env
            .get("v1", "Service", "catalog-api")
            .await?
            .filter(|s| s.metadata.uid != old_uid))
    })
    .await?;
    eprintln!(
        "agent_recreates_a_deleted_service: recreated in {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn agent_reverts_kubectl_set_image() -> Result<()> {
    let (mut env, commit) = catalog_env("agent-heal-img").await?;
    env.start(&["--path=overlays/prod", SLOW_INTERVAL])?;
    env.wait_synced(&commit).await?;
    let deployments: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());

    // What `kubectl set image` sends: a strategic-merge patch under its own field manager.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "api", "image": "registry.example.com/catalog-api:hotfix"}
    ]}}}});
    let start = Instant::now();
    let params = PatchParams {
        field_manager: Some("kubectl-set".into()),
        ..Default::default()
    };
    deployments
        .patch("catalog-api", &params, &Patch::Strategic(&patch))
        .await?;
    env.eventually("image reverted", Duration::from_secs(10), || async {
        let d = deployments.get("catalog-api").await?;
        let image = d
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers[0].image.clone());
        Ok((image.as_deref() == Some("registry.example.com/catalog-api:1.4.2")).then_some(()))
    })
    .await?;
    eprintln!(
        "agent_reverts_kubectl_set_image: reverted in {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let status = env
        .wait_status(Duration::from_secs(5), |s| s.drift_corrected >= 1)
        .await?;
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(commit.as_str())
    );
    Ok(())
}

#[tokio::test]
async fn agent_does_not_fight_an_hpa() -> Result<()> {
    let (mut env, commit) = catalog_env("agent-hpa").await?;
    env.start(&["--path=overlays/prod", "--interval=2s"])?;
    env.wait_synced(&commit).await?;
    let admin = env.admin().await?;
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "catalog-api"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "catalog-api"},
                 "minReplicas": 2, "maxReplicas": 10}
    });
    admin_apply(&admin, env.ns.name(), &[hpa]).await?;

    // There is no controller manager here: scale the way the HPA controller does, through the
    // scale subresource under its own field manager.
    let deployments: Api<Deployment> = Api::namespaced(admin, env.ns.name());
    let params = PatchParams {
        field_manager: Some("horizontal-pod-autoscaler".into()),
        ..Default::default()
    };
    deployments
        .patch_scale(
            "catalog-api",
            &params,
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await?;

    // Self-heal sees the change at once and periodic resyncs run every 2 s: give it several.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let replicas = deployments
        .get("catalog-api")
        .await?
        .spec
        .and_then(|s| s.replicas);
    assert_eq!(
        replicas,
        Some(7),
        "the agent fought the HPA\n{}",
        env.logs()
    );
    let status = env.status().await?.expect("status");
    assert_eq!(status.drift_corrected, 0, "{status:#?}");
    Ok(())
}
