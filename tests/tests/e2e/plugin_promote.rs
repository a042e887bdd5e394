//! `promote`, `rollback` and `history` against two real agents (staging and prod namespaces)
//! reading one real repository. The prod agent manages itself (`--config-path`): the revision
//! it follows is the `gitops-agent` ConfigMap of `clusters/prod/agent/` on main, which
//! `promote` and `rollback` edit and push; the running agent moves without being touched.
//! (The `--revision=` of a Deployment manifest, the other place they edit, is covered by
//! `plugin_push`.)

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use renderer::protocol::{SyncResult, SyncStatus};
use tests::git::{AUTHOR_EMAIL, AUTHOR_NAME, SshKey};

use crate::agent_harness::AgentEnv;
use crate::agent_sync::catalog_env;
use crate::plugin_harness::plugin;
use crate::plugin_push::Remote;

pub(crate) const PROD_MANIFEST: &str = "clusters/prod/gitops-agent.yaml";
const STAGING_MANIFEST: &str = "clusters/staging/gitops-agent.yaml";
pub(crate) const PROD_PATCH: &str = "overlays/prod/deployment-prod.yaml";
/// The prod agent's self-management path and the file of its ConfigMap.
const PROD_CONFIG_PATH: &str = "clusters/prod/agent";
const PROD_CONFIG: &str = "clusters/prod/agent/gitops-agent.yaml";

fn agent_config(revision: &str) -> String {
    format!(
        "# The revision production's agent follows: `kubectl gitops promote`/`rollback` edit it.
apiVersion: v1
kind: ConfigMap
metadata:
  name: gitops-agent
data:
  revision: {revision}
"
    )
}

/// An agent Deployment for one namespace and overlay, at `revision`, shaped like
/// `manifests/base` (every setting an argument).
fn agent_manifest(namespace: &str, overlay: &str, revision: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: gitops-agent
  namespace: {namespace}
spec:
  template:
    spec:
      containers:
      - name: agent
        image: ghcr.io/kubectl-gitops/gitops-agent:0.1.0
        args:
        - --repo=https://git.example.com/team/deploy.git
        - --path={overlay}
        - --revision={revision}
        - --interval=1m
"
    )
}

/// The `--revision=` the repository's prod agent manifest says at HEAD.
pub(crate) fn manifest_revision(staging: &AgentEnv) -> Result<String> {
    let text = staging
        .repo
        .git(&["show", &format!("HEAD:{PROD_MANIFEST}")])?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("- --revision="))
        .map(str::to_string)
        .context("no --revision in the prod manifest")
}

/// Waits until the real rollout is done: the controllers and KWOK's kubelets have made every
/// Deployment Available and the agent reports everything it applied Healthy.
pub(crate) async fn wait_healthy(env: &AgentEnv) -> Result<SyncStatus> {
    env.wait_status(Duration::from_secs(90), |s| {
        !s.health.is_empty() && s.health.iter().all(|h| h.state == "Healthy")
    })
    .await
}

async fn prod_replicas(prod: &AgentEnv) -> Result<i32> {
    let api: Api<Deployment> = Api::namespaced(prod.admin().await?, prod.ns.name());
    let d = api.get("catalog-api").await?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or_default())
}

/// Staging follows main on the staging overlay; prod runs the manifest's revision of the
/// prod overlay from the same repository. Returns the first commit (tagged v1.4.2).
pub(crate) async fn staging_and_prod(prefix: &str) -> Result<(AgentEnv, AgentEnv, String)> {
    let (mut staging, _) = catalog_env(&format!("{prefix}-stg")).await?;
    let mut prod = AgentEnv::new(&format!("{prefix}-prod")).await?;
    staging.repo.write(
        STAGING_MANIFEST,
        &agent_manifest(staging.ns.name(), "overlays/staging", "main"),
    )?;
    staging.repo.write(
        PROD_MANIFEST,
        &agent_manifest(prod.ns.name(), "overlays/prod", "v1.4.2"),
    )?;
    let first = staging.repo.commit("agents for staging and prod")?;
    staging.repo.tag("v1.4.2", &first, "release 1.4.2")?;
    staging.start(&["--path=overlays/staging", "--interval=2s"])?;
    start_prod(&mut prod, &staging)?;
    staging.wait_synced(&first).await?;
    prod.wait_synced(&first).await?;
    Ok((staging, prod, first))
}

/// (Re)starts the prod agent at the revision the repository's manifest says.
pub(crate) fn start_prod(prod: &mut AgentEnv, staging: &AgentEnv) -> Result<()> {
    prod.kill();
    let revision = format!("--revision={}", manifest_revision(staging)?);
    // What `rollback` writes next to --revision, as deploying the manifest would pass it.
    let manifest = staging
        .repo
        .git(&["show", &format!("HEAD:{PROD_MANIFEST}")])?;
    let allowances: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|a| a.starts_with("--allow-rollback-to="))
        .collect();
    let mut args = vec!["--path=overlays/prod", &revision, "--interval=2s"];
    args.extend(allowances);
    prod.start_with_url(&staging.repo.file_url(), &args)
}

#[tokio::test]
async fn promote_refuses_an_unhealthy_or_out_of_sync_staging() -> Result<()> {
    let (mut staging, first) = catalog_env("promote-refuse").await?;
    staging.start(&["--path=overlays/staging", "--interval=2s"])?;
    staging.wait_synced(&first).await?;
    let promote = |staging: &AgentEnv| {
        plugin(
            staging,
            &[
                "promote",
                "--from",
                staging.ns.name(),
                "--to",
                "prod",
                "--tag",
                "v1.5.0",
                "--yes",
            ],
        )
    };

    // Refusing a Degraded staging is tests/tests/e2e/rollout.rs; here staging is Healthy.
    // Healthy, but an override holds the Deployment away from Git: OutOfSync.
    wait_healthy(&staging).await?;
    let held = plugin(
        &staging,
        &[
            "break-glass",
            "deploy/catalog-api",
            "--reason",
            "INC-10",
            "--for",
            "10m",
            "--scale",
            "2",
            "--yes",
        ],
    )?;
    assert_eq!(held.code, 0, "{held}");
    staging
        .wait_status(Duration::from_secs(30), |s| {
            s.result == SyncResult::OutOfSync
        })
        .await?;
    let out = promote(&staging)?;
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("is OutOfSync"), "{out}");
    assert_eq!(staging.repo.git(&["tag", "--list"])?, "", "no tag created");
    assert_eq!(staging.repo.head()?, first, "no commit made");
    Ok(())
}

/// Staging follows main (file://); prod follows what its ConfigMap on main says, from a
/// `git://` server that the clone pushes to. Returns the environments, the server, and the
/// first commit (tagged v1.4.2).
async fn staging_and_self_managed_prod(
    prefix: &str,
) -> Result<(AgentEnv, AgentEnv, Remote, String)> {
    let (mut staging, _) = catalog_env(&format!("{prefix}-stg")).await?;
    let mut prod = AgentEnv::new(&format!("{prefix}-prod")).await?;
    staging.repo.write(
        STAGING_MANIFEST,
        &agent_manifest(staging.ns.name(), "overlays/staging", "main"),
    )?;
    staging.repo.write(
        &format!("{PROD_CONFIG_PATH}/kustomization.yaml"),
        "resources:\n- gitops-agent.yaml\n",
    )?;
    staging.repo.write(PROD_CONFIG, &agent_config("v1.4.2"))?;
    let first = staging.repo.commit("agents for staging and prod")?;
    staging.repo.tag("v1.4.2", &first, "release 1.4.2")?;
    let remote = Remote::daemon(&staging)?;
    let url = staging.repo.git(&["remote", "get-url", "origin"])?;
    staging.start(&["--path=overlays/staging", "--interval=2s"])?;
    prod.start_with_url(
        &url,
        &[
            "--path=overlays/prod",
            &format!("--config-path={PROD_CONFIG_PATH}"),
            "--interval=2s",
        ],
    )?;
    staging.wait_synced(&first).await?;
    let status = prod.wait_synced(&first).await?;
    assert_eq!(status.tracked_ref, "v1.4.2");
    assert_eq!(status.config_path.as_deref(), Some(PROD_CONFIG_PATH));
    Ok((staging, prod, remote, first))
}

/// The `revision` of the live `gitops-agent` ConfigMap the prod agent applied.
async fn live_config_revision(prod: &AgentEnv) -> Result<Option<String>> {
    let cms: Api<ConfigMap> = Api::namespaced(prod.admin().await?, prod.ns.name());
    Ok(cms
        .get_opt("gitops-agent")
        .await?
        .and_then(|cm| cm.data?.get("revision").cloned()))
}

#[tokio::test]
async fn promote_then_rollback_moves_production_and_history_lists_them() -> Result<()> {
    let (staging, prod, remote, first) = staging_and_self_managed_prod("promote").await?;
    assert_eq!(prod_replicas(&prod).await?, 3);
    assert_eq!(
        live_config_revision(&prod).await?.as_deref(),
        Some("v1.4.2")
    );

    // A change on main: staging runs it; prod, on v1.4.2, does not.
    let patch = staging
        .repo
        .git(&["show", &format!("HEAD:{PROD_PATCH}")])?
        .replace("replicas: 3", "replicas: 4");
    let feature = staging
        .repo
        .commit_files(&[(PROD_PATCH, &format!("{patch}\n"))], "prod: 4 replicas")?;
    staging.wait_synced(&feature).await?;
    wait_healthy(&staging).await?;
    let from = staging.ns.name().to_string();
    let to = prod.ns.name().to_string();
    let promote = |tag: &str, extra: &[&str]| {
        let mut args = vec!["promote", "--from", &from, "--to", &to, "--tag", tag];
        args.extend_from_slice(extra);
        plugin(&staging, &args)
    };

    let dry = promote("v1.5.0", &["--dry-run"])?;
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stderr.contains("will create tag v1.5.0")
            && dry.stderr.contains(&format!(
                "{PROD_CONFIG}:7: ConfigMap gitops-agent revision: v1.4.2 -> v1.5.0"
            ))
            && dry.stdout.contains("-  revision: v1.4.2")
            && dry.stdout.contains("+  revision: v1.5.0"),
        "{dry}"
    );
    let unasked = promote("v1.5.0", &[])?;
    assert_eq!(unasked.code, 2, "no terminal and no --yes\n{unasked}");
    let older = promote("v1.4.0", &["--yes"])?;
    assert_eq!(older.code, 2, "{older}");
    assert!(older.stderr.contains("not newer than"), "{older}");
    assert_eq!(staging.repo.git(&["tag", "--list"])?, "v1.4.2");
    assert_eq!(staging.repo.head()?, feature);

    // `--sign` uses the clone's own Git signing set-up.
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
        staging.repo.git(&["config", name, &value])?;
    }
    let out = promote("v1.5.0", &["--sign", "--yes", "--push"])?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(staging.repo.git(&["cat-file", "-t", "v1.5.0"])?, "tag");
    staging.repo.verify_tag("v1.5.0", &key)?;
    assert_eq!(staging.repo.rev_parse("v1.5.0^{commit}")?, feature);
    let promoted = staging.repo.head()?;
    assert_eq!(
        staging
            .repo
            .git(&["diff", "--unified=0", &feature, &promoted])?
            .lines()
            .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
            .collect::<Vec<_>>(),
        ["-  revision: v1.4.2", "+  revision: v1.5.0"]
    );
    assert_eq!(
        staging
            .repo
            .git(&["diff", "--name-only", &feature, &promoted])?,
        PROD_CONFIG
    );
    assert_eq!(remote.git(&["rev-parse", "refs/heads/main"])?, promoted);

    // Production's running agent, untouched, follows the pushed commit to the tag.
    let status = prod
        .wait_status(Duration::from_secs(60), |s| {
            s.result == SyncResult::Synced
                && s.last_applied_revision.as_deref() == Some(feature.as_str())
        })
        .await?;
    assert_eq!(status.tracked_ref, "v1.5.0");
    assert_eq!(status.resolved_tag.as_deref(), Some("v1.5.0"));
    assert_eq!(prod_replicas(&prod).await?, 4);
    assert_eq!(
        live_config_revision(&prod).await?.as_deref(),
        Some("v1.5.0")
    );

    // A release tag never moves: staging now runs the promote commit, not v1.5.0.
    staging.wait_synced(&promoted).await?;
    wait_healthy(&staging).await?;
    let moved = promote("v1.5.0", &["--yes"])?;
    assert_eq!(moved.code, 2, "{moved}");
    assert!(moved.stderr.contains("never moved"), "{moved}");
    assert_eq!(staging.repo.rev_parse("v1.5.0^{commit}")?, feature);

    let repo = staging.repo.path().display().to_string();
    let rollback = |extra: &[&str]| {
        let mut args = vec!["rollback", "--to", "v1.4.2", "--repo", &repo];
        args.extend_from_slice(extra);
        plugin(&prod, &args)
    };
    let dry = rollback(&["--dry-run"])?;
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stdout.contains("-  replicas: 4") && dry.stdout.contains("+  replicas: 3"),
        "shows what changes in the namespace\n{dry}"
    );
    assert_eq!(staging.repo.head()?, promoted, "dry run committed");
    let unasked = rollback(&[])?;
    assert_eq!(unasked.code, 2, "{unasked}");
    assert_eq!(staging.repo.head()?, promoted);

    let out = rollback(&["--yes", "--push"])?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(config_revision(&staging)?, "v1.4.2");
    // v1.4.2 is older than what prod runs: the agent moves back only because the rollback
    // commit says so, for exactly that commit (issue #14).
    let config = staging
        .repo
        .git(&["show", &format!("HEAD:{PROD_CONFIG}")])?;
    assert!(
        config.contains(&format!("allow-rollback-to: \"{first}\"")),
        "{config}"
    );
    let status = prod
        .wait_status(Duration::from_secs(60), |s| {
            s.result == SyncResult::Synced
                && s.last_applied_revision.as_deref() == Some(first.as_str())
        })
        .await?;
    assert_eq!(status.tracked_ref, "v1.4.2");
    assert_eq!(status.resolved_tag.as_deref(), Some("v1.4.2"));
    assert_eq!(prod_replicas(&prod).await?, 3, "back to the old state");
    assert!(
        !prod.logs().contains("--- restart ---"),
        "the prod agent was restarted"
    );

    let history = plugin(&prod, &["history", "--repo", &repo, "-o", "json"])?;
    assert_eq!(history.code, 0, "{history}");
    let report = history.json()?;
    let revisions: Vec<(&str, bool)> = report["entries"]
        .as_array()
        .context("entries")?
        .iter()
        .map(|e| (e["revision"].as_str().unwrap_or(""), e["running"] == true))
        .collect();
    assert_eq!(
        revisions,
        [("v1.4.2", true), ("v1.5.0", false), ("v1.4.2", false)],
        "{report:#}"
    );
    assert_eq!(report["entries"][1]["commit"], feature.as_str());
    assert_eq!(report["running"]["commit"], first.as_str());
    assert_eq!(report["manifest"], PROD_CONFIG);
    let text = plugin(&prod, &["history", "--repo", &repo])?;
    assert!(text.stdout.contains("* v1.4.2"), "{text}");
    Ok(())
}

/// The `revision` the prod ConfigMap says at HEAD.
fn config_revision(staging: &AgentEnv) -> Result<String> {
    let text = staging
        .repo
        .git(&["show", &format!("HEAD:{PROD_CONFIG}")])?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("revision: "))
        .map(str::to_string)
        .context("no revision in the prod ConfigMap")
}

#[tokio::test]
async fn hotfix_branch_holds_only_the_fix() -> Result<()> {
    let (env, released) = catalog_env("promote-hotfix").await?;
    env.repo.tag("v1.5.0", &released, "release 1.5.0")?;
    let unvalidated = env.repo.commit_files(
        &[(
            "overlays/staging/kustomization.yaml",
            &env.repo
                .git(&["show", "HEAD:overlays/staging/kustomization.yaml"])?
                .replace("1.5.0-rc.1", "1.6.0-rc.1"),
        )],
        "staging: 1.6.0-rc.1 (not validated)",
    )?;

    let bad = plugin(
        &env,
        &[
            "promote",
            "--hotfix",
            "--from-tag",
            "v1.5.0",
            "--tag",
            "v1.6.0",
            "--yes",
        ],
    )?;
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("1.5.<higher patch>"), "{bad}");

    let out = plugin(
        &env,
        &[
            "promote",
            "--hotfix",
            "--from-tag",
            "v1.5.0",
            "--tag",
            "v1.5.1",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        env.repo.git(&["rev-parse", "--abbrev-ref", "HEAD"])?,
        "hotfix/v1.5.1"
    );
    assert_eq!(env.repo.head()?, released);

    let patch = env
        .repo
        .git(&["show", &format!("HEAD:{PROD_PATCH}")])?
        .replace("memory: 512Mi", "memory: 768Mi");
    let fix = env
        .repo
        .commit_files(&[(PROD_PATCH, &format!("{patch}\n"))], "prod: more memory")?;
    assert_eq!(
        env.repo.git(&["rev-list", "v1.5.0..hotfix/v1.5.1"])?,
        fix,
        "the fix and nothing else"
    );
    assert!(
        env.repo
            .git(&["merge-base", "--is-ancestor", &unvalidated, "hotfix/v1.5.1"])
            .is_err(),
        "main's unvalidated commit is on the hotfix branch"
    );
    assert_eq!(
        env.repo
            .git(&["diff", "--name-only", "v1.5.0", "hotfix/v1.5.1"])?,
        PROD_PATCH
    );

    let again = plugin(
        &env,
        &[
            "promote",
            "--hotfix",
            "--from-tag",
            "v1.5.0",
            "--tag",
            "v1.5.1",
            "--yes",
        ],
    )?;
    assert_eq!(again.code, 2, "{again}");
    assert!(again.stderr.contains("already exists"), "{again}");
    Ok(())
}

/// Issue #14: `promote` ships only a commit on staging's tracked ref. Staging synced a commit,
/// then main was rewritten without it (staging's agent stopped, so its status still names
/// it): the commit is still in the clone, but promoting it is refused, nothing tagged or
/// committed.
#[tokio::test]
async fn promote_refuses_a_commit_not_on_stagings_tracked_ref() -> Result<()> {
    let (mut staging, first) = catalog_env("promote-reach").await?;
    staging.start(&["--path=overlays/staging", "--interval=2s"])?;
    staging.wait_synced(&first).await?;
    staging.repo.write("NOTES.md", "not deployed anywhere\n")?;
    let dropped = staging.repo.commit("notes")?;
    staging.wait_synced(&dropped).await?;
    wait_healthy(&staging).await?;
    staging.kill();
    staging.repo.git(&["reset", "-q", "--hard", &first])?;

    let out = plugin(
        &staging,
        &[
            "promote",
            "--from",
            staging.ns.name(),
            "--to",
            "prod",
            "--tag",
            "v1.5.0",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "it reports commit {dropped}, which main (at {}",
            &first[..7]
        )) && out.stderr.contains("does not contain")
            && out.stderr.contains("nothing was tagged or committed"),
        "{out}"
    );
    assert_eq!(staging.repo.git(&["tag", "--list"])?, "", "no tag created");
    assert_eq!(staging.repo.head()?, first, "no commit made");
    Ok(())
}
