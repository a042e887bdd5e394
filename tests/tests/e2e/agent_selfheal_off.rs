//! `--no-self-heal`: a manual edit stays (and is reported as drift) until the periodic resync,
//! which puts Git back.

use std::time::{Duration, Instant};

use anyhow::Result;
use kube::api::{Patch, PatchParams};
use renderer::protocol::SyncResult;
use serde_json::json;

use crate::agent_harness::{AgentEnv, commit_settings, live_level};

const INTERVAL: Duration = Duration::from_secs(20);

#[tokio::test]
async fn agent_without_self_heal_reports_drift_and_resyncs_at_the_interval() -> Result<()> {
    let mut env = AgentEnv::new("agent-noheal").await?;
    let commit = commit_settings(&env.repo, "from-git")?;
    env.start(&[
        "--path=app",
        "--no-self-heal",
        &format!("--interval={}s", INTERVAL.as_secs()),
    ])?;
    env.wait_synced(&commit).await?;
    let synced_at = Instant::now();

    let admin = env.admin().await?;
    env.api(&admin, "v1", "ConfigMap")
        .patch(
            "settings",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"level": "edited-by-hand"}})),
        )
        .await?;

    // Self-heal would have reverted it in about a second; without it the edit stays...
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        live_level(&env).await?.as_deref(),
        Some("edited-by-hand"),
        "reverted although self-heal is off\n{}",
        env.logs()
    );
    // ...and status says the object differs from Git, well before the next resync.
    let status = env
        .wait_status(Duration::from_secs(5), |s| {
            s.result == SyncResult::OutOfSync && s.message.contains("ConfigMap/settings")
        })
        .await?;
    assert!(
        synced_at.elapsed() < INTERVAL,
        "drift reported only by the resync ({:?}): {status:#?}",
        synced_at.elapsed()
    );
    assert_eq!(live_level(&env).await?.as_deref(), Some("edited-by-hand"));

    // The periodic resync reconciles everything, drift included.
    env.eventually(
        "edit reverted at the resync",
        INTERVAL + Duration::from_secs(15),
        || async { Ok((live_level(&env).await?.as_deref() == Some("from-git")).then_some(())) },
    )
    .await?;
    assert!(
        synced_at.elapsed() >= INTERVAL - Duration::from_secs(1),
        "reverted after {:?}, before the interval",
        synced_at.elapsed()
    );
    env.wait_synced(&commit).await?;
    Ok(())
}
