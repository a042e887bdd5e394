//! Issue #14, refs: an old signed commit brought back under the tracked ref (a tag re-pointed
//! and force-fetched, a branch force-pushed back) is refused, naming both commits, and nothing
//! of it is applied; an intended rollback (`--allow-rollback`, `--allow-rollback-to=SHA`) goes
//! through. The self-managed rollback through `kubectl gitops rollback` is in `plugin_promote`.

use std::time::Duration;

use anyhow::Result;
use renderer::protocol::SyncResult;
use tests::git::GpgKey;

use crate::agent_harness::{AgentEnv, live_level};

/// Commits the `app/` overlay at `level`, signed by `key`.
fn signed_settings(env: &AgentEnv, level: &str, key: &GpgKey) -> Result<String> {
    env.repo
        .write("app/kustomization.yaml", "resources:\n- cm.yaml\n")?;
    env.repo.write(
        "app/cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: \"{level}\"\n"
        ),
    )?;
    env.repo.commit_signed(&format!("settings at {level}"), key)
}

/// Waits for the refusal of `commit`, returns the status message.
async fn refused_message(env: &AgentEnv, commit: &str) -> Result<String> {
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.result == SyncResult::Refused && s.message.contains(commit)
        })
        .await?;
    Ok(status.message)
}

struct Signed {
    env: AgentEnv,
    key: GpgKey,
    keys_file: String,
    old: String,
    new: String,
}

/// An agent verifying OpenPGP signatures that applied `old` and then `new` (both signed).
async fn applied_old_then_new(prefix: &str, revision: &str) -> Result<Signed> {
    let mut env = AgentEnv::new(prefix).await?;
    let key = GpgKey::generate("Release Bot", "release@kubectl-gitops.invalid")?;
    let keys = env.scratch_file("trusted.asc", &key.public_key_armored()?)?;
    let keys_file = format!("--trusted-keys={}", keys.display());
    let old = signed_settings(&env, "old", &key)?;
    if revision != "main" {
        env.repo.git(&["tag", "-f", revision, &old])?;
    }
    env.start(&[
        "--path=app",
        "--verify=openpgp",
        &keys_file,
        &format!("--revision={revision}"),
        "--interval=1s",
    ])?;
    env.wait_synced(&old).await?;
    let new = signed_settings(&env, "new", &key)?;
    if revision != "main" {
        env.repo.git(&["tag", "-f", revision, &new])?;
    }
    env.wait_synced(&new).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("new"));
    Ok(Signed {
        env,
        key,
        keys_file,
        old,
        new,
    })
}

async fn assert_refused_and_untouched(s: &Signed) -> Result<()> {
    let message = refused_message(&s.env, &s.old).await?;
    assert!(
        message.contains(&format!(
            "revision {} does not descend from the last applied revision {}",
            s.old, s.new
        )) && message.contains("nothing applied"),
        "{message}"
    );
    // Several more cycles: still refused, nothing of the old commit applied.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = s.env.status().await?.expect("status");
    assert_eq!(status.result, SyncResult::Refused, "{}", status.message);
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(s.new.as_str())
    );
    assert_eq!(live_level(&s.env).await?.as_deref(), Some("new"));
    Ok(())
}

#[tokio::test]
async fn a_tag_re_pointed_to_an_older_signed_commit_is_refused() -> Result<()> {
    let mut s = applied_old_then_new("ref-tag-back", "prod").await?;
    // The tag is moved back (force-fetched by the agent) to the old, validly signed commit.
    s.env.repo.git(&["tag", "-f", "prod", &s.old])?;
    assert_refused_and_untouched(&s).await?;

    // Restarted with --allow-rollback-to naming exactly that commit: the rollback goes through.
    s.env.kill();
    let allow = format!("--allow-rollback-to={}", s.old);
    let keys_file = s.keys_file.clone();
    s.env.start(&[
        "--path=app",
        "--verify=openpgp",
        &keys_file,
        "--revision=prod",
        "--interval=1s",
        &allow,
    ])?;
    s.env.wait_synced(&s.old).await?;
    assert_eq!(live_level(&s.env).await?.as_deref(), Some("old"));
    drop(s.key);
    Ok(())
}

#[tokio::test]
async fn a_branch_force_pushed_back_to_an_older_signed_commit_is_refused() -> Result<()> {
    let mut s = applied_old_then_new("ref-branch-back", "main").await?;
    s.env.repo.git(&["reset", "-q", "--hard", &s.old])?;
    assert_refused_and_untouched(&s).await?;

    // A restart does not forget what was applied (it is on the parent).
    s.env.kill();
    let keys_file = s.keys_file.clone();
    s.env.start(&[
        "--path=app",
        "--verify=openpgp",
        &keys_file,
        "--interval=1s",
    ])?;
    assert_refused_and_untouched(&s).await?;

    // A new signed commit on top of the old one descends from neither: still refused...
    let diverged = signed_settings(&s.env, "diverged", &s.key)?;
    let message = refused_message(&s.env, &diverged).await?;
    assert!(message.contains(&s.new), "{message}");
    assert_eq!(live_level(&s.env).await?.as_deref(), Some("new"));

    // ... until the operator says a rollback is intended.
    s.env.kill();
    s.env.start(&[
        "--path=app",
        "--verify=openpgp",
        &keys_file,
        "--interval=1s",
        "--allow-rollback",
    ])?;
    s.env.wait_synced(&diverged).await?;
    assert_eq!(live_level(&s.env).await?.as_deref(), Some("diverged"));
    Ok(())
}
