//! Signature verification: with `--verify ssh`, a commit signed by a trusted key is applied and
//! an unsigned commit on top of it is refused without touching the namespace.

use std::time::Duration;

use anyhow::Result;
use renderer::protocol::SyncResult;
use tests::git::SshKey;

use crate::agent_harness::AgentEnv;

fn configmap(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: {value}\n"
    )
}

#[tokio::test]
async fn agent_applies_signed_and_refuses_unsigned_commits() -> Result<()> {
    let mut env = AgentEnv::new("agent-verify").await?;
    let key = SshKey::generate("release@kubectl-gitops.invalid")?;

    env.repo
        .write("app/kustomization.yaml", "resources:\n- cm.yaml\n")?;
    env.repo.write("app/cm.yaml", &configmap("signed"))?;
    let signed = env.repo.commit_signed("signed settings", &key)?;
    // The fixture must really be signed and trusted, or a pass below would prove nothing.
    env.repo.verify_commit(&signed, &key)?;

    let trusted = key.allowed_signers_path();
    let trusted_arg = format!("--trusted-keys={}", trusted.display());
    env.start(&["--path=app", "--verify=ssh", &trusted_arg])?;
    env.wait_synced(&signed).await?;
    let live = env.get("v1", "ConfigMap", "settings").await?.expect("cm");
    assert_eq!(live.data["data"]["level"], "signed");
    let signed_version = live.metadata.resource_version.clone();

    // An unsigned commit changing the value and adding an object: none of it may land.
    env.repo.write(
        "app/kustomization.yaml",
        "resources:\n- cm.yaml\n- extra.yaml\n",
    )?;
    env.repo.write("app/cm.yaml", &configmap("unsigned"))?;
    env.repo.write(
        "app/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n",
    )?;
    let unsigned = env.repo.commit("unsigned settings")?;
    assert!(env.repo.verify_commit(&unsigned, &key).is_err());

    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.last_attempted_revision.as_deref() == Some(unsigned.as_str())
                && s.result == SyncResult::Refused
        })
        .await?;
    assert!(
        status
            .message
            .contains(&format!("commit {unsigned} is not signed")),
        "{}",
        status.message
    );
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(signed.as_str())
    );

    // Several intervals (3 s) pass: the refusal must hold on every resync, not only the first.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let live = env.get("v1", "ConfigMap", "settings").await?.expect("cm");
    assert_eq!(
        live.data["data"]["level"],
        "signed",
        "unsigned commit applied\n{}",
        env.logs()
    );
    assert_eq!(live.metadata.resource_version, signed_version);
    assert!(
        env.get("v1", "ConfigMap", "extra").await?.is_none(),
        "an object of the unsigned commit was created"
    );
    let status = env.status().await?.expect("status");
    assert_eq!(status.result, SyncResult::Refused, "{status:#?}");
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(signed.as_str())
    );
    Ok(())
}
