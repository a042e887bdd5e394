//! `kubectl gitops status` against a namespace the real agent synced.

use anyhow::Result;

use crate::plugin_harness::{plugin, synced_catalog};

#[tokio::test]
async fn plugin_status_of_a_synced_namespace() -> Result<()> {
    let (env, commit) = synced_catalog("plugin-status").await?;

    let out = plugin(&env, &["status", "-o", "json"])?;
    assert_eq!(out.code, 0, "{out}");
    let json = out.json()?;
    assert_eq!(json["result"], "Synced", "{out}");
    assert_eq!(json["resolvedCommit"], commit.as_str());
    assert_eq!(json["lastAppliedRevision"], commit.as_str());
    assert_eq!(json["path"], "overlays/prod");
    assert_eq!(json["local"]["state"], "same", "{out}");
    assert_eq!(json["counts"]["members"], 4, "{out}");
    assert_eq!(json["counts"]["byKind"]["Deployment"], 1, "{out}");

    let out = plugin(&env, &["status"])?;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("Result:       Synced"), "{out}");
    assert!(out.stdout.contains(&commit[..12]), "{out}");

    // A local commit the agent has not seen: status says the clone is ahead.
    env.repo
        .commit_files(&[("notes.txt", "later\n")], "local only")?;
    let json = plugin(&env, &["status", "-o", "json"])?.json()?;
    assert_eq!(json["local"]["state"], "ahead");
    assert_eq!(json["local"]["ahead"], 1);
    Ok(())
}

#[tokio::test]
async fn plugin_status_without_an_agent_is_an_error() -> Result<()> {
    let env = crate::agent_harness::AgentEnv::new("plugin-status-none").await?;
    env.repo.commit_files(&[("README", "x\n")], "init")?;
    let out = plugin(&env, &["status"])?;
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("kubectl-gitops"), "{out}");
    Ok(())
}
