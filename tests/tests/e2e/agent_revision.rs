//! `--revision` beyond a branch or a pinned tag: a semver range over tags, and a commit SHA.

use std::time::Duration;

use anyhow::Result;

use crate::agent_harness::{AgentEnv, commit_settings, live_level};

#[tokio::test]
async fn agent_follows_the_highest_tag_in_a_semver_range() -> Result<()> {
    let mut env = AgentEnv::new("agent-semver").await?;
    let repo = &env.repo;
    let v140 = commit_settings(repo, "1.4.0")?;
    repo.tag("v1.4.0", &v140, "1.4.0")?;
    let v150 = commit_settings(repo, "1.5.0")?;
    repo.tag("v1.5.0", &v150, "1.5.0")?;
    let v162 = commit_settings(repo, "1.6.2")?;
    // A lightweight tag counts as much as an annotated one.
    repo.git(&["tag", "1.6.2", &v162])?;
    let v200 = commit_settings(repo, "2.0.0")?;
    repo.tag("v2.0.0", &v200, "2.0.0")?;
    let other = commit_settings(repo, "not-a-version")?;
    for name in ["latest", "release-1.9", "v1.9"] {
        repo.tag(name, &other, "not semver")?;
    }
    // A prerelease inside the range: semver ranges leave prereleases out.
    repo.tag("v1.8.0-rc.1", &other, "prerelease")?;

    env.start(&["--path=app", "--revision=>=1.5.0 <2.0.0"])?;
    let status = env.wait_synced(&v162).await?;
    assert_eq!(status.resolved_tag.as_deref(), Some("1.6.2"), "{status:#?}");
    assert_eq!(status.tracked_ref, ">=1.5.0 <2.0.0");
    assert_eq!(live_level(&env).await?.as_deref(), Some("1.6.2"));

    // A newer matching tag is picked up on the next fetch; one past the range is not.
    let v170 = commit_settings(&env.repo, "1.7.0")?;
    env.repo.tag("v1.7.0", &v170, "1.7.0")?;
    let v210 = commit_settings(&env.repo, "2.1.0")?;
    env.repo.tag("v2.1.0", &v210, "2.1.0")?;
    let status = env.wait_synced(&v170).await?;
    assert_eq!(status.resolved_tag.as_deref(), Some("v1.7.0"));
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(live_level(&env).await?.as_deref(), Some("1.7.0"));
    let status = env.status().await?.expect("status");
    assert_eq!(status.last_applied_revision.as_deref(), Some(v170.as_str()));
    Ok(())
}

#[tokio::test]
async fn agent_pinned_to_a_commit_sha_ignores_newer_commits() -> Result<()> {
    let mut env = AgentEnv::new("agent-sha").await?;
    let pinned = commit_settings(&env.repo, "pinned")?;
    let newer = commit_settings(&env.repo, "newer")?;
    env.start(&["--path=app", &format!("--revision={pinned}")])?;
    let status = env.wait_synced(&pinned).await?;
    assert_eq!(status.resolved_tag, None);
    assert_eq!(live_level(&env).await?.as_deref(), Some("pinned"));

    // Several intervals (3 s), and yet another commit on main: the pin holds.
    commit_settings(&env.repo, "newest")?;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        live_level(&env).await?.as_deref(),
        Some("pinned"),
        "main ({newer}) leaked into an agent pinned to {pinned}"
    );
    let status = env.status().await?.expect("status");
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(pinned.as_str())
    );
    assert_eq!(status.resolved_commit.as_deref(), Some(pinned.as_str()));
    Ok(())
}
