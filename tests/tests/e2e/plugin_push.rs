//! `backfill --push` and `promote --push`/`--print` against a real Git server: the clone's
//! `origin` is a bare copy of its repository served over smart HTTP (with basic auth, which
//! `git http-backend` needs before it accepts a push) or over `git://`.

use std::path::PathBuf;

use anyhow::{Result, ensure};
use tests::git::{BasicAuth, GitDaemon, HttpGitServer, git_command};

use crate::agent_harness::AgentEnv;
use crate::plugin_backfill::break_glass;
use crate::plugin_harness::{Output, plugin, synced_catalog};
use crate::plugin_promote::{
    PROD_MANIFEST, PROD_PATCH, manifest_revision, staging_and_prod, wait_healthy,
};

/// The bare repository behind the clone's `origin`, and the server publishing it.
pub(crate) struct Remote {
    bare: PathBuf,
    http: Option<HttpGitServer>,
    _daemon: Option<GitDaemon>,
    _dir: tempfile::TempDir,
}

impl Remote {
    /// Over smart HTTP; the credentials reach the plugin the way they reach `git`: through
    /// the clone's own `credential.helper`, not in the URL.
    fn http(env: &AgentEnv) -> Result<Self> {
        Self::http_with_stored_password(env, "push-password")
    }

    /// As [`Remote::http`], with `stored` in the clone's credential store in place of the
    /// password the server expects.
    fn http_with_stored_password(env: &AgentEnv, stored: &str) -> Result<Self> {
        let (dir, bare) = bare_copy(env)?;
        let auth = BasicAuth::new("pusher", "push-password");
        let server = HttpGitServer::serve(dir.path(), Some(auth.clone()))?;
        let store = dir.path().join("credentials");
        std::fs::write(
            &store,
            format!(
                "http://{}:{}@127.0.0.1:{}\n",
                auth.username,
                stored,
                server.port()
            ),
        )?;
        env.repo.git(&[
            "config",
            "credential.helper",
            &format!("store --file={}", store.display()),
        ])?;
        env.repo
            .git(&["remote", "add", "origin", &server.url("deploy.git")])?;
        Ok(Remote {
            bare,
            http: Some(server),
            _daemon: None,
            _dir: dir,
        })
    }

    /// Over `git://` (git daemon with receive-pack enabled).
    pub(crate) fn daemon(env: &AgentEnv) -> Result<Self> {
        let (dir, bare) = bare_copy(env)?;
        let server = GitDaemon::serve(dir.path())?;
        env.repo
            .git(&["remote", "add", "origin", &server.url("deploy.git")])?;
        Ok(Remote {
            bare,
            http: None,
            _daemon: Some(server),
            _dir: dir,
        })
    }

    pub(crate) fn git(&self, args: &[&str]) -> Result<String> {
        let out = git_command(&self.bare).args(args).output()?;
        ensure!(
            out.status.success(),
            "git {args:?} in the remote {}: {}",
            self.bare.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Every ref of the remote with the object it names, one per line.
    fn refs(&self) -> Result<String> {
        self.git(&["for-each-ref", "--format=%(refname) %(objectname)"])
    }

    /// Smart-HTTP requests the server answered, so a test can tell the push went through it.
    fn http_requests(&self) -> usize {
        self.http.as_ref().map_or(0, HttpGitServer::request_count)
    }
}

fn bare_copy(env: &AgentEnv) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("gitops-remote-")
        .tempdir()?;
    let bare = dir.path().join("deploy.git");
    let out = git_command(dir.path())
        .args(["clone", "--quiet", "--bare"])
        .arg(env.repo.path())
        .arg(&bare)
        .output()?;
    ensure!(
        out.status.success(),
        "git clone --bare: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok((dir, bare))
}

/// The `-`/`+` lines of a unified diff, without its `---`/`+++` headers.
fn changed_lines(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
        .collect()
}

/// Staging Synced and healthy at a change of main that prod, pinned to v1.4.2, does not
/// run; returns both environments and that commit.
async fn staged_feature(prefix: &str) -> Result<(AgentEnv, AgentEnv, String)> {
    let (staging, prod, _) = staging_and_prod(prefix).await?;
    let patch = staging
        .repo
        .git(&["show", &format!("HEAD:{PROD_PATCH}")])?
        .replace("replicas: 3", "replicas: 4");
    let feature = staging
        .repo
        .commit_files(&[(PROD_PATCH, &format!("{patch}\n"))], "prod: 4 replicas")?;
    staging.wait_synced(&feature).await?;
    wait_healthy(&staging).await?;
    Ok((staging, prod, feature))
}

fn promote(staging: &AgentEnv, prod: &AgentEnv, extra: &[&str]) -> Result<Output> {
    let mut args = vec![
        "promote",
        "--from",
        staging.ns.name(),
        "--to",
        prod.ns.name(),
        "--tag",
        "v1.5.0",
    ];
    args.extend_from_slice(extra);
    plugin(staging, &args)
}

#[tokio::test]
async fn backfill_push_publishes_the_branch_over_smart_http() -> Result<()> {
    let (env, first) = synced_catalog("push-backfill").await?;
    let remote = Remote::http(&env)?;
    break_glass(&env, &["--scale", "7"])?;
    let requests = remote.http_requests();

    let out = plugin(
        &env,
        &[
            "backfill",
            "deploy/catalog-api",
            "--commit",
            "--push",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    let branch = env.repo.git(&["rev-parse", "--abbrev-ref", "HEAD"])?;
    assert!(
        branch.starts_with("backfill/deployment-catalog-api-"),
        "{branch}\n{out}"
    );
    let commit = env.repo.head()?;
    assert_ne!(commit, first, "{out}");
    assert!(remote.http_requests() > requests, "pushed elsewhere\n{out}");

    assert_eq!(
        remote.git(&["rev-parse", "--verify", &format!("refs/heads/{branch}")])?,
        commit,
        "{out}"
    );
    assert_eq!(
        changed_lines(&remote.git(&["diff", "--unified=0", &first, &commit])?),
        ["-  replicas: 3", "+  replicas: 7"]
    );
    assert_eq!(
        remote.git(&["diff", "--name-only", &first, &commit])?,
        PROD_PATCH
    );
    assert_eq!(
        remote.git(&["rev-parse", "refs/heads/main"])?,
        first,
        "main untouched"
    );
    assert_eq!(
        remote.git(&["branch", "--format=%(refname:short)"])?,
        format!("{branch}\nmain")
    );
    Ok(())
}

#[tokio::test]
async fn backfill_push_fails_when_the_remote_refuses_the_branch() -> Result<()> {
    let (env, first) = synced_catalog("push-refused").await?;
    let remote = Remote::daemon(&env)?;
    let hook = remote.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'backfill branches need review first' >&2\nexit 1\n",
    )?;
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let published = remote.refs()?;
    break_glass(&env, &["--scale", "7"])?;

    let out = plugin(
        &env,
        &[
            "backfill",
            "deploy/catalog-api",
            "--branch",
            "inc-9-backfill",
            "--push",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 2, "a refused push is an error\n{out}");
    assert!(out.stderr.contains("refs/heads/inc-9-backfill"), "{out}");
    assert!(!out.stderr.contains("pushed"), "{out}");
    assert_eq!(remote.refs()?, published);
    assert_eq!(
        env.repo.rev_parse("inc-9-backfill~1")?,
        first,
        "still committed locally"
    );
    Ok(())
}

#[tokio::test]
async fn backfill_push_with_a_wrong_password_fails_instead_of_asking_forever() -> Result<()> {
    let (env, _) = synced_catalog("push-wrong-password").await?;
    let remote = Remote::http_with_stored_password(&env, "not-the-password")?;
    let published = remote.refs()?;
    break_glass(&env, &["--scale", "7"])?;

    let out = plugin(&env, &["backfill", "deploy/catalog-api", "--push", "--yes"])?;
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("refused the credentials"), "{out}");
    assert!(!out.stderr.contains("not-the-password"), "{out}");
    assert_eq!(remote.refs()?, published);
    Ok(())
}

#[tokio::test]
async fn promote_push_publishes_the_tag_and_the_manifest_commit() -> Result<()> {
    let (staging, prod, feature) = staged_feature("push-promote").await?;
    let remote = Remote::daemon(&staging)?;
    assert_eq!(remote.git(&["rev-parse", "refs/heads/main"])?, feature);

    let out = promote(&staging, &prod, &["--push", "--yes"])?;
    assert_eq!(out.code, 0, "{out}");
    let promoted = staging.repo.head()?;
    assert_eq!(staging.repo.rev_parse("HEAD~1")?, feature, "{out}");

    assert_eq!(remote.git(&["cat-file", "-t", "refs/tags/v1.5.0"])?, "tag");
    assert_eq!(
        remote.git(&["rev-parse", "refs/tags/v1.5.0"])?,
        staging.repo.rev_parse("refs/tags/v1.5.0")?,
        "the same annotated tag object"
    );
    assert_eq!(
        remote.git(&["rev-parse", "refs/tags/v1.5.0^{commit}"])?,
        feature,
        "the tag is at the commit staging runs"
    );
    assert_eq!(remote.git(&["rev-parse", "refs/heads/main"])?, promoted);
    assert_eq!(
        changed_lines(&remote.git(&["diff", "--unified=0", &feature, "main"])?),
        [
            "-        - --revision=v1.4.2",
            "+        - --revision=v1.5.0"
        ]
    );
    assert_eq!(
        remote.git(&["diff", "--name-only", &feature, "main"])?,
        PROD_MANIFEST
    );
    Ok(())
}

#[tokio::test]
async fn promote_print_shows_the_manifest_change_and_commits_nothing() -> Result<()> {
    let (staging, prod, feature) = staged_feature("push-print").await?;
    let remote = Remote::http(&staging)?;
    let published = remote.refs()?;

    let out = promote(&staging, &prod, &["--print", "--yes"])?;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains(PROD_MANIFEST), "{out}");
    assert_eq!(
        changed_lines(&out.stdout),
        [
            "-        - --revision=v1.4.2",
            "+        - --revision=v1.5.0"
        ],
        "{out}"
    );
    assert_eq!(staging.repo.head()?, feature, "committed\n{out}");
    assert_eq!(staging.repo.git(&["status", "--porcelain"])?, "");
    assert_eq!(manifest_revision(&staging)?, "v1.4.2");
    // `--print` stands in for the manifest commit only (--help): the tag is still made.
    assert_eq!(staging.repo.rev_parse("v1.5.0^{commit}")?, feature);
    assert_eq!(
        remote.refs()?,
        published,
        "the remote changed without --push"
    );

    // With --push too, the tag is all there is to publish.
    let out = promote(&staging, &prod, &["--print", "--push", "--yes"])?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(staging.repo.head()?, feature, "committed\n{out}");
    assert_eq!(
        remote.git(&["rev-parse", "refs/tags/v1.5.0^{commit}"])?,
        feature,
        "{out}"
    );
    assert_eq!(
        remote.git(&["rev-parse", "refs/heads/main"])?,
        feature,
        "main moved\n{out}"
    );
    Ok(())
}
