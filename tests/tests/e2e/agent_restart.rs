//! A kill in the middle of applying, then a restart: the namespace converges, nothing lost.

use std::time::Duration;

use anyhow::Result;

use crate::agent_sync::catalog_env;

#[tokio::test]
async fn agent_killed_during_apply_converges_after_restart() -> Result<()> {
    let (mut env, commit) = catalog_env("agent-kill").await?;
    env.start(&["--path=overlays/prod"])?;
    // Kill as soon as the first object of the set exists: the apply is under way.
    env.eventually("first object applied", Duration::from_secs(60), || async {
        Ok(env
            .get("v1", "ServiceAccount", "catalog-api")
            .await?
            .map(|_| ()))
    })
    .await?;
    env.kill();

    env.start(&["--path=overlays/prod"])?;
    let status = env.wait_synced(&commit).await?;
    assert_eq!(status.applied, 4);
    assert_eq!(
        status.pruned, 0,
        "a restart must not prune anything of the same revision"
    );
    for (api_version, kind) in [
        ("v1", "ServiceAccount"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
    ] {
        assert!(
            env.get(api_version, kind, "catalog-api").await?.is_some(),
            "{kind} missing after restart"
        );
    }
    Ok(())
}
