//! Issue #14, faults in the Git cache volume: a kill during the ref update leaves `*.lock`
//! files behind, and libgit2 refuses to update a ref whose lock file exists, so every later
//! fetch failed until someone emptied the volume. The lock files planted here are exactly
//! what a kill between libgit2's lock and rename leaves (the ref's new id in `<ref>.lock`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tests::git::GitDaemon;

use crate::agent_harness::{AgentEnv, commit_settings, live_level};

/// The agent's bare cache repository (`<cache-dir>/<hash>.git`).
fn cache_repo(env: &AgentEnv) -> Result<PathBuf> {
    let dir = env.cache_dir();
    std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "git"))
        .with_context(|| format!("no cache repository in {}", dir.display()))
}

/// Leaves the lock files of an interrupted ref update: the branch's and `packed-refs`'.
fn plant_locks(repo: &std::path::Path, commit: &str) -> Result<Vec<PathBuf>> {
    let locks = vec![
        repo.join("refs/heads/main.lock"),
        repo.join("packed-refs.lock"),
    ];
    for lock in &locks {
        std::fs::write(lock, format!("{commit}\n"))
            .with_context(|| format!("writing {}", lock.display()))?;
    }
    Ok(locks)
}

#[tokio::test]
async fn stale_lock_files_left_by_a_kill_are_cleared_at_start() -> Result<()> {
    let mut env = AgentEnv::new("fault-lock").await?;
    let daemon = GitDaemon::serve(env.repo.root())?;
    let url = daemon.url(env.repo.name());
    let first = commit_settings(&env.repo, "first")?;
    env.start_with_url(&url, &["--path=app", "--interval=1s"])?;
    env.wait_synced(&first).await?;
    env.kill();

    let locks = plant_locks(&cache_repo(&env)?, &first)?;
    let second = commit_settings(&env.repo, "second")?;
    env.start_with_url(&url, &["--path=app", "--interval=1s"])?;
    env.wait_synced(&second).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("second"));
    for lock in &locks {
        assert!(!lock.exists(), "{} is still there", lock.display());
    }
    assert!(
        env.last_log().contains("removed a stale lock file"),
        "the agent did not say it removed the locks:\n{}",
        env.last_log()
    );
    Ok(())
}

#[tokio::test]
async fn a_cache_that_keeps_failing_is_cloned_again() -> Result<()> {
    let mut env = AgentEnv::new("fault-reclone").await?;
    let daemon = GitDaemon::serve(env.repo.root())?;
    let url = daemon.url(env.repo.name());
    let first = commit_settings(&env.repo, "first")?;
    env.start_with_url(&url, &["--path=app", "--interval=1s"])?;
    env.wait_synced(&first).await?;

    // The running agent's cache breaks under it: clearing at start cannot help now.
    plant_locks(&cache_repo(&env)?, &first)?;
    let second = commit_settings(&env.repo, "second")?;
    // Three failed fetches (backoff from 1s) and a fresh clone.
    env.wait_status(Duration::from_secs(60), |s| {
        s.last_applied_revision.as_deref() == Some(second.as_str())
    })
    .await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("second"));
    let log = env.logs();
    assert!(
        log.contains("the Git cache keeps failing; removing it and cloning again"),
        "no re-clone in the log:\n{log}"
    );
    Ok(())
}
