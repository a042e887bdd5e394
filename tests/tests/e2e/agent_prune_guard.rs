//! The mass-prune guard: a commit that drops most of the overlay holds the prune, says what
//! it holds, and prunes once `kubectl gitops prune --approve` names that commit.

use std::time::Duration;

use anyhow::Result;
use renderer::protocol::{PRUNE_APPROVED_ANNOTATION, SyncResult};

use crate::agent_harness::AgentEnv;
use crate::agent_prune_options::{commit_configmaps, exists};
use crate::plugin_harness::plugin;

const NAMES: [&str; 10] = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"];

#[tokio::test]
async fn deleting_most_of_the_overlay_holds_the_prune_until_approved() -> Result<()> {
    let mut env = AgentEnv::new("agent-massprune").await?;
    let first = commit_configmaps(&env, &NAMES)?;
    env.start(&["--path=app", "--interval=1s"])?;
    env.wait_synced(&first).await?;

    // 8 of 10 (80%) gone from Git: over the default 50%.
    let second = commit_configmaps(&env, &NAMES[..2])?;
    let status = env
        .wait_status(Duration::from_secs(60), |s| {
            s.last_attempted_revision.as_deref() == Some(second.as_str()) && s.prune_held.is_some()
        })
        .await?;
    let held = status.prune_held.as_ref().unwrap();
    assert_eq!(held.revision, second);
    assert_eq!((held.inventory, held.limit_percent), (10, 50));
    let mut names: Vec<&str> = held.objects.iter().map(|o| o.name.as_str()).collect();
    names.sort();
    assert_eq!(names, &NAMES[2..], "{status:#?}");
    assert_eq!(status.result, SyncResult::OutOfSync, "{status:#?}");
    assert!(
        status.message.contains("prune held: 8 of 10 members (80%)")
            && status.message.contains("kubectl gitops prune --approve"),
        "{}",
        status.message
    );
    assert_eq!(status.pruned, 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in NAMES {
        assert!(exists(&env, name).await?, "{name} was pruned while held");
    }

    // The plugin shows what is held; approving the wrong commit or without --yes changes nothing.
    let shown = plugin(&env, &["prune"])?;
    assert_eq!(shown.code, 1, "{shown}");
    assert!(
        shown.stdout.contains("delete ConfigMap/a9") && !shown.stdout.contains("ConfigMap/a1\n"),
        "{shown}"
    );
    let wrong = plugin(&env, &["prune", "--approve", &first[..10], "--yes"])?;
    assert_eq!(wrong.code, 2, "{wrong}");
    assert!(
        wrong.stderr.contains("approval names that exact commit"),
        "{wrong}"
    );
    let unasked = plugin(&env, &["prune", "--approve", &second[..10]])?;
    assert_eq!(unasked.code, 2, "no terminal and no --yes\n{unasked}");
    let parent = env
        .get("v1", "ConfigMap", renderer::protocol::PARENT_NAME)
        .await?;
    let annotations = parent.unwrap().metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key(PRUNE_APPROVED_ANNOTATION),
        "{annotations:?}"
    );

    let approved = plugin(&env, &["prune", "--approve", &second[..10], "--yes"])?;
    assert_eq!(approved.code, 0, "{approved}");
    let status = env.wait_synced(&second).await?;
    assert_eq!(status.pruned, 8, "{status:#?}");
    assert!(status.prune_held.is_none(), "{status:#?}");
    for name in NAMES {
        assert_eq!(
            exists(&env, name).await?,
            NAMES[..2].contains(&name),
            "{name}"
        );
    }

    // Half of the set is within the limit: pruned without asking.
    let third = commit_configmaps(&env, &NAMES[..1])?;
    let status = env.wait_synced(&third).await?;
    assert_eq!(status.pruned, 9, "{status:#?}");
    assert!(!exists(&env, "a1").await?);
    Ok(())
}
