//! Break-glass: a live change under valid break-glass annotations is left alone until `until`,
//! then reverted to Git, and the expiry is recorded in status.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use renderer::protocol::{BREAK_GLASS_FIELD_MANAGER, BreakGlass, SyncResult};
use serde_json::json;

use crate::agent_sync::catalog_env;

const GIT_IMAGE: &str = "registry.example.com/catalog-api:1.4.2";
const HOTFIX: &str = "registry.example.com/catalog-api:hotfix";

fn image(d: &Deployment) -> Option<String> {
    d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .image
        .clone()
}

#[tokio::test]
async fn agent_respects_break_glass_until_it_expires() -> Result<()> {
    let (mut env, commit) = catalog_env("agent-bg").await?;
    env.start(&["--path=overlays/prod", "--interval=2s"])?;
    env.wait_synced(&commit).await?;
    let deployments: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());

    let now = k8s_openapi::jiff::Timestamp::now();
    let window = Duration::from_secs(6);
    let bg = BreakGlass {
        by: "alice@example.com".into(),
        reason: "INC-42 hotfix".into(),
        since: now,
        until: now + k8s_openapi::jiff::SignedDuration::try_from(window)?,
    };
    let patch = json!({
        "metadata": {"annotations": bg.to_annotations()},
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": HOTFIX}]}}}
    });
    let params = PatchParams {
        field_manager: Some(BREAK_GLASS_FIELD_MANAGER.into()),
        ..Default::default()
    };
    let opened = Instant::now();
    deployments
        .patch("catalog-api", &params, &Patch::Strategic(&patch))
        .await?;

    // Held: several resyncs and the watch pass without the hotfix being reverted.
    let held = env
        .wait_status(Duration::from_secs(5), |s| {
            s.break_glass.iter().any(|e| e.active)
        })
        .await?;
    assert_eq!(held.result, SyncResult::OutOfSync, "{held:#?}");
    while opened.elapsed() < window - Duration::from_secs(1) {
        assert_eq!(
            image(&deployments.get("catalog-api").await?).as_deref(),
            Some(HOTFIX),
            "reverted during break-glass"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Expired: reverted to Git, and recorded.
    env.eventually("reverted after expiry", Duration::from_secs(10), || async {
        Ok(
            (image(&deployments.get("catalog-api").await?).as_deref() == Some(GIT_IMAGE))
                .then_some(()),
        )
    })
    .await?;
    let status = env
        .wait_status(Duration::from_secs(10), |s| {
            s.break_glass.iter().any(|e| !e.active)
        })
        .await?;
    assert_eq!(status.result, SyncResult::Synced, "{status:#?}");
    let annotations = deployments
        .get("catalog-api")
        .await?
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(
        BreakGlass::annotation_keys()
            .iter()
            .all(|k| !annotations.contains_key(*k)),
        "{annotations:?}"
    );
    Ok(())
}

/// A break-glass opened while self-heal is busy with the same object (another tool keeps
/// writing a label of its own there) must never be reverted: a repair judged on the object as
/// it was before the break-glass annotations arrived is not written over them. The break-glass
/// is opened as the plugin does it, annotations first, then the change, in two requests.
#[tokio::test]
async fn break_glass_opened_during_a_repair_is_never_reverted() -> Result<()> {
    const ROUNDS: usize = 12;
    let (mut env, commit) = catalog_env("agent-bg-race").await?;
    env.start(&["--path=overlays/prod", "--interval=2s"])?;
    env.wait_synced(&commit).await?;
    let deployments: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());

    // The churn: each write wakes a repair (a GET, then a dry-run) of the Deployment.
    let churning = deployments.clone();
    let churn = tokio::spawn(async move {
        let params = PatchParams {
            field_manager: Some("churn".into()),
            ..Default::default()
        };
        for i in 0u64.. {
            let patch = json!({"metadata": {"labels": {"churn": i.to_string()}}});
            let _ = churning
                .patch("catalog-api", &params, &Patch::Merge(&patch))
                .await;
            // About a hundred writes a second: busy, without starving tests running beside it.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let params = PatchParams {
        field_manager: Some(BREAK_GLASS_FIELD_MANAGER.into()),
        ..Default::default()
    };
    let mut reverted = 0;
    for round in 0..ROUNDS {
        let now = k8s_openapi::jiff::Timestamp::now();
        let bg = BreakGlass {
            by: "alice@example.com".into(),
            reason: format!("INC-{round}"),
            since: now,
            until: now + k8s_openapi::jiff::SignedDuration::from_mins(10),
        };
        let annotate = json!({"metadata": {"annotations": bg.to_annotations()}});
        deployments
            .patch("catalog-api", &params, &Patch::Merge(&annotate))
            .await?;
        let change = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "api", "image": HOTFIX}
        ]}}}});
        deployments
            .patch("catalog-api", &params, &Patch::Strategic(&change))
            .await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let live = deployments.get("catalog-api").await?;
        if image(&live).as_deref() != Some(HOTFIX) {
            reverted += 1;
        }
        // Ended as the plugin ends it: the annotations go, the agent puts Git back, however
        // busy the object is.
        let nulls: serde_json::Map<String, serde_json::Value> = BreakGlass::annotation_keys()
            .iter()
            .map(|k| (k.to_string(), serde_json::Value::Null))
            .collect();
        deployments
            .patch(
                "catalog-api",
                &params,
                &Patch::Merge(&json!({"metadata": {"annotations": nulls}})),
            )
            .await?;
        let ended = Instant::now();
        while image(&deployments.get("catalog-api").await?).as_deref() != Some(GIT_IMAGE) {
            if ended.elapsed() > Duration::from_secs(10) {
                churn.abort();
                bail!(
                    "round {round}: not back to Git 10 s after the end ({reverted} reverted \
                     before)\n{}",
                    env.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    churn.abort();
    eprintln!("break_glass_race: {reverted} of {ROUNDS} break-glasses reverted");
    assert_eq!(reverted, 0, "{}", env.logs());
    Ok(())
}
