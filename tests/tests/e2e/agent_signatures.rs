//! Signature verification beyond SSH-signed commits: OpenPGP-signed commits against trusted
//! public keys, and SSH-signed annotated tags when the revision is a tag (range).

use std::time::Duration;

use anyhow::Result;
use renderer::protocol::SyncResult;
use tests::git::{GpgKey, SshKey};

use crate::agent_harness::{AgentEnv, commit_settings, live_level};

/// Writes the settings overlay without committing, so the caller can sign the commit.
fn write_settings(env: &AgentEnv, level: &str) -> Result<()> {
    env.repo
        .write("app/kustomization.yaml", "resources:\n- cm.yaml\n")?;
    env.repo.write(
        "app/cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: \"{level}\"\n"
        ),
    )
}

async fn wait_refused(env: &AgentEnv, commit: &str) -> Result<String> {
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.last_attempted_revision.as_deref() == Some(commit) && s.result == SyncResult::Refused
        })
        .await?;
    Ok(status.message)
}

#[tokio::test]
async fn agent_verifies_openpgp_signed_commits() -> Result<()> {
    let mut env = AgentEnv::new("agent-pgp").await?;
    let trusted = GpgKey::generate("Release Bot", "release@kubectl-gitops.invalid")?;
    let stranger = GpgKey::generate("Someone Else", "stranger@kubectl-gitops.invalid")?;
    let keys = env.scratch_file("trusted.asc", &trusted.public_key_armored()?)?;

    write_settings(&env, "trusted")?;
    let good = env.repo.commit_signed("trusted settings", &trusted)?;
    env.repo.verify_commit(&good, &trusted)?;
    env.start(&[
        "--path=app",
        "--verify=openpgp",
        &format!("--trusted-keys={}", keys.display()),
    ])?;
    env.wait_synced(&good).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("trusted"));

    // Signed, but by a key nobody trusted.
    write_settings(&env, "stranger")?;
    let foreign = env.repo.commit_signed("stranger settings", &stranger)?;
    let message = wait_refused(&env, &foreign).await?;
    assert!(
        message.contains(&format!("commit {foreign}")) && message.contains("not trusted"),
        "{message}"
    );
    assert_eq!(live_level(&env).await?.as_deref(), Some("trusted"));

    // Not signed at all.
    let unsigned = commit_settings(&env.repo, "unsigned")?;
    let message = wait_refused(&env, &unsigned).await?;
    assert!(
        message.contains(&format!("commit {unsigned} is not signed")),
        "{message}"
    );
    let status = env.status().await?.expect("status");
    assert_eq!(status.last_applied_revision.as_deref(), Some(good.as_str()));
    assert_eq!(live_level(&env).await?.as_deref(), Some("trusted"));

    // A trusted signature on top brings the agent back.
    write_settings(&env, "trusted-again")?;
    let again = env.repo.commit_signed("trusted again", &trusted)?;
    env.wait_synced(&again).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("trusted-again"));
    Ok(())
}

#[tokio::test]
async fn agent_verifies_the_signed_tag_when_tracking_tags() -> Result<()> {
    let mut env = AgentEnv::new("agent-tag-sig").await?;
    let key = SshKey::generate("release@kubectl-gitops.invalid")?;
    // The commits are unsigned: only the tags' own signatures can let them through.
    let released = commit_settings(&env.repo, "1.0.0")?;
    env.repo
        .tag_signed("v1.0.0", &released, "release 1.0.0", &key)?;
    env.repo.verify_tag("v1.0.0", &key)?;
    assert!(env.repo.verify_commit(&released, &key).is_err());

    env.start(&[
        "--path=app",
        "--revision=>=1.0.0 <2.0.0",
        "--verify=ssh",
        &format!("--trusted-keys={}", key.allowed_signers_path().display()),
    ])?;
    let status = env.wait_synced(&released).await?;
    assert_eq!(status.resolved_tag.as_deref(), Some("v1.0.0"));
    assert_eq!(live_level(&env).await?.as_deref(), Some("1.0.0"));

    // A newer tag in range, annotated but unsigned, on a commit that is itself signed.
    write_settings(&env, "1.1.0")?;
    let next = env
        .repo
        .commit_signed("signed commit, unsigned tag", &key)?;
    env.repo.tag("v1.1.0", &next, "release 1.1.0")?;
    let message = wait_refused(&env, &next).await?;
    assert!(
        message.contains("tag v1.1.0") && message.contains("is not signed"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(live_level(&env).await?.as_deref(), Some("1.0.0"));
    let status = env.status().await?.expect("status");
    assert_eq!(status.result, SyncResult::Refused);
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(released.as_str())
    );
    Ok(())
}
