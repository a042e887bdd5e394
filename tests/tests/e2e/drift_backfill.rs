//! `backfill` works from what runs (issue #13): live changes are found against the revision
//! the agent applied, a working tree ahead of it is refused unless `--from-worktree`, a pending
//! Git change is never reverted, and only the backfill's files are committed.

use anyhow::Result;

use crate::plugin_backfill::break_glass;
use crate::plugin_harness::{plugin, synced_catalog};

const PROD_PATCH: &str = "overlays/prod/deployment-prod.yaml";

#[tokio::test]
async fn drift_backfill_never_reverts_a_pending_git_change() -> Result<()> {
    let (env, applied) = synced_catalog("drift-backfill").await?;
    break_glass(&env, &["--scale", "7"])?;
    // Git moves on (not applied yet): more memory. And the user has something else staged.
    let text = std::fs::read_to_string(env.repo.path().join(PROD_PATCH))?;
    let pending = text.replace("memory: 512Mi", "memory: 1Gi");
    assert_ne!(pending, text);
    let ahead = env
        .repo
        .commit_files(&[(PROD_PATCH, &pending)], "more memory")?;
    env.repo.write("notes.txt", "not part of any backfill\n")?;
    env.repo.git(&["add", "notes.txt"])?;

    let out = plugin(
        &env,
        &["backfill", "deploy/catalog-api", "--commit", "--yes"],
    )?;
    assert_eq!(
        out.code, 2,
        "refused: the overlay is ahead of what runs\n{out}"
    );
    assert!(
        out.stderr.contains("renders differently from")
            && out.stderr.contains(&applied[..12])
            && out.stderr.contains("--from-worktree"),
        "{out}"
    );
    assert_eq!(
        env.repo.git(&["rev-parse", "HEAD"])?,
        ahead,
        "nothing committed"
    );

    let out = plugin(
        &env,
        &[
            "backfill",
            "deploy/catalog-api",
            "--from-worktree",
            "--branch",
            "inc-pending",
            "--commit",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    let diff = env.repo.git(&["diff", "--unified=0", &ahead, "HEAD"])?;
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("---")
                && !l.starts_with("+++")
        })
        .collect();
    assert_eq!(
        changed,
        ["-  replicas: 3", "+  replicas: 7"],
        "only the break-glass change; the pending memory change stays\n{out}"
    );
    let committed = env.repo.git(&["show", &format!("HEAD:{PROD_PATCH}")])?;
    assert!(committed.contains("memory: 1Gi"), "{committed}");
    assert_eq!(
        env.repo.git(&["diff", "--name-only", &ahead, "HEAD"])?,
        PROD_PATCH,
        "only the backfill's file is committed"
    );
    assert_eq!(
        env.repo.git(&["diff", "--cached", "--name-only"])?,
        "notes.txt",
        "the user's staged file stays staged, uncommitted"
    );
    Ok(())
}
