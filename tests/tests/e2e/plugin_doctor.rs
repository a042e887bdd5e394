//! `kubectl gitops doctor` pinpoints a commit that does not render.

use std::time::Duration;

use anyhow::Result;
use renderer::protocol::SyncResult;

use crate::agent_sync::catalog_env;
use crate::plugin_harness::plugin;

#[tokio::test]
async fn plugin_doctor_pinpoints_a_render_error() -> Result<()> {
    let (mut env, good) = catalog_env("plugin-doctor").await?;
    env.start(&["--path=overlays/prod"])?;
    env.wait_synced(&good).await?;
    let out = plugin(&env, &["doctor"])?;
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("Most likely cause: no problem found"),
        "{out}"
    );

    let broken = env.repo.commit_files(
        &[("overlays/prod/deployment-prod.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: catalog-api\nspec:\n  replicas: [3\n")],
        "broken yaml",
    )?;
    env.wait_status(Duration::from_secs(30), |s| {
        s.last_attempted_revision.as_deref() == Some(broken.as_str())
            && s.result == SyncResult::Failed
    })
    .await?;
    env.kill();

    let out = plugin(&env, &["doctor"])?;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("2. render    [problem]"), "{out}");
    assert!(
        out.stdout.contains("overlays/prod/deployment-prod.yaml:"),
        "{out}"
    );
    assert!(out.stdout.contains("Most likely cause: render:"), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "Next: kubectl gitops render overlays/prod --revision {}",
            &broken[..12]
        )),
        "{out}"
    );

    let json = plugin(&env, &["doctor", "-o", "json"])?.json()?;
    assert_eq!(json["steps"][0]["verdict"], "ok", "{json:#}");
    assert_eq!(json["steps"][1]["name"], "render");
    assert_eq!(json["steps"][1]["verdict"], "problem");
    Ok(())
}
