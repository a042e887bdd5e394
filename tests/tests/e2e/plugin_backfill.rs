//! `kubectl gitops backfill` against the real agent and a real Git repository: a break-glass
//! change becomes a commit whose render is the live object, the agent then keeps it, existing
//! lines are edited in place, and Secret values never reach Git.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use renderer::protocol::SyncResult;
use serde_json::Value;
use tests::git::{AUTHOR_EMAIL, AUTHOR_NAME, SshKey};

use crate::agent_harness::AgentEnv;
use crate::agent_sync::catalog_env;
use crate::plugin_harness::{Output, plugin, synced_catalog};

const PROD_PATCH: &str = "overlays/prod/deployment-prod.yaml";
const PROD_KUSTOMIZATION: &str = "overlays/prod/kustomization.yaml";

async fn deployment(env: &AgentEnv) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());
    Ok(api.get("catalog-api").await?)
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.replicas)
}

fn api_container(d: &Deployment) -> Option<&k8s_openapi::api::core::v1::Container> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "api")
}

fn env_var(d: &Deployment, name: &str) -> Option<String> {
    api_container(d)?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

fn image(d: &Deployment) -> Option<String> {
    api_container(d)?.image.clone()
}

pub(crate) fn break_glass(env: &AgentEnv, change: &[&str]) -> Result<()> {
    let mut args = vec![
        "break-glass",
        "deploy/catalog-api",
        "--reason",
        "INC-9: checkout latency",
        "--for",
        "10m",
        "--yes",
    ];
    args.extend_from_slice(change);
    let out = plugin(env, &args)?;
    anyhow::ensure!(out.code == 0, "break-glass failed\n{out}");
    Ok(())
}

/// `git diff --unified=0 A B` without the header lines: only `-`/`+` lines remain.
fn changed_lines(env: &AgentEnv, from: &str, to: &str) -> Result<Vec<String>> {
    let diff = env.repo.git(&["diff", "--unified=0", from, to])?;
    Ok(diff
        .lines()
        .filter(|l| (l.starts_with('-') || l.starts_with('+')) && !l.starts_with("---"))
        .filter(|l| !l.starts_with("+++"))
        .map(str::to_string)
        .collect())
}

/// The diff report of Git at `rev` against the live namespace.
fn diff_at(env: &AgentEnv, rev: &str) -> Result<(Output, Value)> {
    let out = plugin(
        env,
        &["diff", "overlays/prod", "--revision", rev, "-o", "json"],
    )?;
    let report = out.json()?;
    Ok((out, report))
}

fn object<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report["objects"]
        .as_array()
        .and_then(|objs| objs.iter().find(|o| o["kind"] == kind && o["name"] == name))
        .unwrap_or_else(|| panic!("{kind}/{name} not in {report:#}"))
}

fn branches(env: &AgentEnv) -> Result<Vec<String>> {
    Ok(env
        .repo
        .git(&["branch", "--format=%(refname:short)"])?
        .lines()
        .map(str::to_string)
        .collect())
}

#[tokio::test]
async fn backfill_commits_the_break_glass_and_the_agent_keeps_it() -> Result<()> {
    let (mut env, first) = catalog_env("backfill-sync").await?;
    env.start(&["--path=overlays/prod", "--interval=2s"])?;
    env.wait_synced(&first).await?;
    break_glass(&env, &["--scale", "5", "--set-env", "api:LOG_LEVEL=debug"])?;

    let out = plugin(
        &env,
        &["backfill", "deploy/catalog-api", "--commit", "--yes"],
    )?;
    assert_eq!(out.code, 0, "{out}");
    let branch = env.repo.git(&["rev-parse", "--abbrev-ref", "HEAD"])?;
    assert!(
        branch.starts_with("backfill/deployment-catalog-api-"),
        "{branch}\n{out}"
    );
    assert!(branches(&env)?.contains(&"main".to_string()));
    let commit = env.repo.head()?;
    assert_eq!(env.repo.rev_parse("HEAD~1")?, first, "one commit on top");
    assert_eq!(
        env.repo.git(&["status", "--porcelain"])?,
        "",
        "all committed"
    );
    let message = env.repo.git(&["log", "-1", "--format=%B"])?;
    assert!(message.contains("INC-9: checkout latency"), "{message}");

    // Replicas were set by the prod patch: that line changes. The env var is new to Git: a
    // new strategic-merge patch, listed in the overlay's kustomization.
    let files = env.repo.git(&["diff", "--name-status", &first, &commit])?;
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        [
            "A\toverlays/prod/backfill-deployment-catalog-api.yaml",
            &format!("M\t{PROD_PATCH}"),
            &format!("M\t{PROD_KUSTOMIZATION}"),
        ],
        "{out}"
    );
    let patch_diff = env
        .repo
        .git(&["diff", "--unified=0", &first, &commit, "--", PROD_PATCH])?;
    assert!(
        patch_diff.contains("-  replicas: 3\n+  replicas: 5"),
        "{patch_diff}"
    );

    // The API server's own verdict: applying the commit changes nothing on the Deployment.
    let (diff, report) = diff_at(&env, &commit)?;
    assert_eq!(
        object(&report, "Deployment", "catalog-api")["action"],
        "unchanged",
        "{diff}"
    );

    // Merge to the tracked branch: the agent applies it and keeps the live values, also once
    // the break-glass is over.
    env.repo.git(&["checkout", "--quiet", "main"])?;
    env.repo.git(&["merge", "--quiet", "--ff-only", &branch])?;
    // The Deployment itself stays held (OutOfSync) until the break-glass ends.
    env.wait_status(Duration::from_secs(60), |s| {
        s.last_applied_revision.as_deref() == Some(commit.as_str())
    })
    .await?;
    let end = plugin(&env, &["break-glass", "end", "deploy/catalog-api", "--yes"])?;
    assert_eq!(end.code, 0, "{end}");
    let ended = Instant::now();
    while ended.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let d = deployment(&env).await?;
        assert_eq!(replicas(&d), Some(5), "reverted\n{}", env.logs());
        assert_eq!(env_var(&d, "LOG_LEVEL").as_deref(), Some("debug"));
    }
    // Until the agent reacts to `end` at once (issue #6), it may take one resync.
    let status = env
        .wait_status(Duration::from_secs(120), |s| {
            s.result == SyncResult::Synced
                && s.last_applied_revision.as_deref() == Some(commit.as_str())
                && s.break_glass.iter().all(|b| !b.active)
        })
        .await?;
    // The agent applies the once-held Deployment at the backfill commit: same values.
    let d = deployment(&env).await?;
    assert_eq!(
        env.member_commit("Deployment.apps/catalog-api")
            .await?
            .as_deref(),
        Some(commit.as_str()),
        "{status:#?}"
    );
    assert_eq!(replicas(&d), Some(5), "reverted\n{}", env.logs());
    assert_eq!(env_var(&d, "LOG_LEVEL").as_deref(), Some("debug"));
    let (diff, report) = diff_at(&env, &commit)?;
    assert_eq!(
        object(&report, "Deployment", "catalog-api")["action"],
        "unchanged",
        "{diff}"
    );
    Ok(())
}

#[tokio::test]
async fn backfill_edits_the_existing_patch_line_in_place() -> Result<()> {
    let (env, first) = synced_catalog("backfill-line").await?;
    break_glass(&env, &["--scale", "7"])?;

    let dry = plugin(&env, &["backfill", "deploy/catalog-api", "--dry-run"])?;
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stdout.contains("-  replicas: 3\n+  replicas: 7"),
        "{dry}"
    );
    assert_eq!(
        env.repo.git(&["status", "--porcelain"])?,
        "",
        "dry run wrote"
    );

    let out = plugin(
        &env,
        &[
            "backfill",
            "deploy/catalog-api",
            "--branch",
            "inc-9-backfill",
            "--commit",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        env.repo.git(&["rev-parse", "--abbrev-ref", "HEAD"])?,
        "inc-9-backfill"
    );
    assert_eq!(
        changed_lines(&env, &first, "HEAD")?,
        ["-  replicas: 3", "+  replicas: 7"],
        "exactly the one line\n{out}"
    );
    assert_eq!(
        env.repo.git(&["diff", "--name-only", &first, "HEAD"])?,
        PROD_PATCH
    );

    // Nothing left to backfill once Git says what the cluster says.
    let again = plugin(&env, &["backfill", "deploy/catalog-api", "--dry-run"])?;
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stderr.contains("nothing to backfill"), "{again}");
    Ok(())
}

#[tokio::test]
async fn backfill_sign_makes_a_commit_that_verifies_with_the_clones_signing_key() -> Result<()> {
    let (env, first) = synced_catalog("backfill-sign").await?;
    break_glass(&env, &["--scale", "6"])?;
    let key = SshKey::generate(AUTHOR_EMAIL)?;
    for (name, value) in [
        ("user.name", AUTHOR_NAME.to_string()),
        ("user.email", AUTHOR_EMAIL.to_string()),
        ("gpg.format", "ssh".to_string()),
        (
            "user.signingkey",
            key.private_key_path().display().to_string(),
        ),
    ] {
        env.repo.git(&["config", name, &value])?;
    }

    let out = plugin(&env, &["backfill", "deploy/catalog-api", "--sign", "--yes"])?;
    assert_eq!(out.code, 0, "{out}");
    let head = env.repo.head()?;
    assert!(
        out.stderr.contains(&head[..12]),
        "reports the signed commit\n{out}"
    );
    env.repo.verify_commit("HEAD", &key)?;
    assert_eq!(
        env.repo.rev_parse("HEAD~1")?,
        first,
        "one commit, amended in place"
    );
    assert_eq!(
        changed_lines(&env, &first, "HEAD")?,
        ["-  replicas: 3", "+  replicas: 6"]
    );
    assert!(
        env.repo.verify_commit("HEAD~1", &key).is_err(),
        "the key proves something: the unsigned parent fails"
    );
    Ok(())
}

#[tokio::test]
async fn backfill_edits_the_images_new_tag_in_place() -> Result<()> {
    let (env, first) = synced_catalog("backfill-tag").await?;
    const NEW: &str = "registry.example.com/catalog-api:1.4.3";
    break_glass(&env, &["--set-image", &format!("api={NEW}")])?;

    let out = plugin(
        &env,
        &["backfill", "deploy/catalog-api", "--commit", "--yes"],
    )?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        changed_lines(&env, &first, "HEAD")?,
        ["-  newTag: 1.4.2", "+  newTag: 1.4.3"],
        "the images: entry's tag, not a patch the transformer would override\n{out}"
    );
    assert_eq!(
        env.repo.git(&["diff", "--name-only", &first, "HEAD"])?,
        PROD_KUSTOMIZATION
    );
    let rendered = plugin(&env, &["render", "overlays/prod", "--revision", "HEAD"])?;
    assert_eq!(rendered.code, 0, "{rendered}");
    assert!(
        rendered.stdout.contains(&format!("image: {NEW}")),
        "{rendered}"
    );
    assert_eq!(image(&deployment(&env).await?).as_deref(), Some(NEW));
    Ok(())
}

#[tokio::test]
async fn backfill_refuses_secret_values() -> Result<()> {
    let (env, _) = synced_catalog("backfill-secret").await?;
    const VALUE: &str = "hunter2-do-not-print";
    let secrets: Api<Secret> = Api::namespaced(env.admin().await?, env.ns.name());
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "catalog-db"},
        "stringData": {"password": VALUE},
    }))?;
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .context("creating the Secret")?;

    let head = env.repo.head()?;
    let out = plugin(
        &env,
        &["backfill", "secret/catalog-db", "--commit", "--yes"],
    )?;
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("Secret values are never written to Git"),
        "{out}"
    );
    assert!(
        out.stderr.contains("secret store"),
        "says what to do\n{out}"
    );
    assert!(
        !out.stdout.contains(VALUE) && !out.stderr.contains(VALUE),
        "{out}"
    );
    assert_eq!(env.repo.head()?, head);
    assert_eq!(env.repo.git(&["status", "--porcelain"])?, "");
    assert_eq!(branches(&env)?, ["main"]);
    Ok(())
}
