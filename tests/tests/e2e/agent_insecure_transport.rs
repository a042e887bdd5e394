//! Issue #14: an agent applying unverified commits fetched over `git://` says so in its status,
//! and `status` and `doctor` show it; over `file://` (or with --verify) nothing is said.

use anyhow::Result;
use tests::git::GitDaemon;

use crate::agent_harness::{AgentEnv, commit_settings};
use crate::plugin_harness::plugin;

#[tokio::test]
async fn unverified_git_protocol_is_a_loud_warning_in_status_and_doctor() -> Result<()> {
    let mut env = AgentEnv::new("insecure-git").await?;
    let commit = commit_settings(&env.repo, "one")?;
    let daemon = GitDaemon::serve(env.repo.root())?;
    env.start_with_url(&daemon.url(env.repo.name()), &["--path=app"])?;
    let status = env.wait_synced(&commit).await?;
    assert_eq!(status.verify.as_deref(), Some("none"));
    let warning = status.insecure.expect("a warning in status");
    assert!(
        warning.starts_with("UNVERIFIED over an unauthenticated transport")
            && warning.contains("git://"),
        "{warning}"
    );

    let out = plugin(&env, &["status"])?;
    assert!(
        out.stdout
            .contains("WARNING:      UNVERIFIED over an unauthenticated transport"),
        "{out}"
    );
    let repo = env.repo.path().display().to_string();
    let doctor = plugin(&env, &["doctor", "--repo", &repo])?;
    assert!(
        doctor
            .stdout
            .contains("UNVERIFIED over an unauthenticated transport"),
        "{doctor}"
    );

    // The same agent over file:// has nothing to warn about.
    env.kill();
    env.start(&["--path=app"])?;
    let status = env
        .wait_status(std::time::Duration::from_secs(30), |s| s.insecure.is_none())
        .await?;
    assert_eq!(status.verify.as_deref(), Some("none"));
    let out = plugin(&env, &["status"])?;
    assert!(!out.stdout.contains("WARNING"), "{out}");
    Ok(())
}
