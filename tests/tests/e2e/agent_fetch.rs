//! Fetching over every transport the agent supports, from real servers: smart HTTP with basic
//! auth read from mounted files, git://, and ssh:// with a key and known_hosts.

use std::time::Duration;

use anyhow::Result;
use renderer::protocol::SyncResult;
use tests::git::{BasicAuth, GitDaemon, HttpGitServer, SshGitServer, SshKey};

use crate::agent_harness::{AgentEnv, commit_settings, live_level};

const PASSWORD: &str = "s3cret-deploy-pass";

#[tokio::test]
async fn agent_fetches_over_smart_http_with_basic_auth_from_files() -> Result<()> {
    let mut env = AgentEnv::new("agent-http").await?;
    let commit = commit_settings(&env.repo, "over-http")?;
    let server = HttpGitServer::serve(env.repo.root(), Some(BasicAuth::new("deployer", PASSWORD)))?;
    let url = server.url(env.repo.name());
    let user = env.scratch_file("username", "deployer\n")?;
    let pass = env.scratch_file("password", &format!("{PASSWORD}\n"))?;
    env.start_with_url(
        &url,
        &[
            "--path=app",
            &format!("--git-username-file={}", user.display()),
            &format!("--git-password-file={}", pass.display()),
        ],
    )?;
    let status = env.wait_synced(&commit).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("over-http"));
    assert_eq!(status.repo, url);
    assert!(
        server.request_count() > 0,
        "the agent never asked the server"
    );

    // A new commit arrives through the same authenticated remote on the next fetch.
    let next = commit_settings(&env.repo, "second-over-http")?;
    env.wait_synced(&next).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("second-over-http"));
    assert!(!env.logs().contains(PASSWORD), "the password was logged");
    Ok(())
}

#[tokio::test]
async fn agent_fetches_over_smart_http_with_a_token_file() -> Result<()> {
    let mut env = AgentEnv::new("agent-http-token").await?;
    let commit = commit_settings(&env.repo, "with-token")?;
    // A token is sent as the password of user `git` when no username file is given.
    let token = "ghp_0123456789abcdefTOKEN";
    let server = HttpGitServer::serve(env.repo.root(), Some(BasicAuth::new("git", token)))?;
    let file = env.scratch_file("token", &format!("{token}\n"))?;
    env.start_with_url(
        &server.url(env.repo.name()),
        &[
            "--path=app",
            &format!("--git-token-file={}", file.display()),
        ],
    )?;
    env.wait_synced(&commit).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("with-token"));
    assert!(!env.logs().contains(token), "the token was logged");
    Ok(())
}

#[tokio::test]
async fn agent_with_a_wrong_password_applies_nothing_and_says_why() -> Result<()> {
    let mut env = AgentEnv::new("agent-http-401").await?;
    let commit = commit_settings(&env.repo, "never-seen")?;
    let server = HttpGitServer::serve(env.repo.root(), Some(BasicAuth::new("deployer", PASSWORD)))?;
    let url = server.url(env.repo.name());
    let user = env.scratch_file("username", "deployer\n")?;
    let pass = env.scratch_file("password", "wrong-password-123\n")?;
    env.start_with_url(
        &url,
        &[
            "--path=app",
            &format!("--git-username-file={}", user.display()),
            &format!("--git-password-file={}", pass.display()),
        ],
    )?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| s.result == SyncResult::Failed)
        .await?;
    assert!(
        status.message.contains(&format!("fetching {url}")),
        "the message should name the repository: {}",
        status.message
    );
    let lower = status.message.to_lowercase();
    assert!(
        ["credentials", "authentication", "401"]
            .iter()
            .any(|w| lower.contains(w)),
        "the message should say the credentials were refused: {}",
        status.message
    );
    assert!(!status.message.contains("wrong-password-123"));
    assert!(
        !env.logs().contains("wrong-password-123"),
        "password logged"
    );
    assert!(server.unauthorized_count() > 0);
    assert_eq!(status.last_applied_revision, None);
    assert_eq!(live_level(&env).await?, None, "applied without a fetch");

    // The mounted Secret is rotated: the file is read again on the next attempt.
    std::fs::write(&pass, PASSWORD)?;
    env.wait_synced(&commit).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("never-seen"));
    Ok(())
}

#[tokio::test]
async fn agent_fetches_over_the_git_protocol() -> Result<()> {
    let mut env = AgentEnv::new("agent-gitd").await?;
    let first = commit_settings(&env.repo, "over-git")?;
    let daemon = GitDaemon::serve(env.repo.root())?;
    env.start_with_url(&daemon.url(env.repo.name()), &["--path=app"])?;
    env.wait_synced(&first).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("over-git"));

    let second = commit_settings(&env.repo, "second-over-git")?;
    env.wait_synced(&second).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("second-over-git"));
    Ok(())
}

#[tokio::test]
async fn agent_fetches_over_ssh_only_from_a_known_host() -> Result<()> {
    let mut env = AgentEnv::new("agent-ssh").await?;
    let commit = commit_settings(&env.repo, "over-ssh")?;
    let deploy_key = SshKey::generate("deploy@kubectl-gitops.invalid")?;
    let server = SshGitServer::serve(&deploy_key)?;
    let url = server.url(env.repo.path());
    let key_arg = format!("--ssh-key-file={}", deploy_key.private_key_path().display());

    // known_hosts naming another key for this host: the agent must not connect.
    let impostor = SshKey::generate("impostor@kubectl-gitops.invalid")?;
    let mut fields = impostor.public_key().split_whitespace();
    let wrong = env.scratch_file(
        "wrong_known_hosts",
        &format!(
            "[127.0.0.1]:{} {} {}\n",
            server.port(),
            fields.next().unwrap(),
            fields.next().unwrap()
        ),
    )?;
    env.start_with_url(
        &url,
        &[
            "--path=app",
            &key_arg,
            &format!("--known-hosts-file={}", wrong.display()),
        ],
    )?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| s.result == SyncResult::Failed)
        .await?;
    assert!(
        status
            .message
            .contains(&format!("127.0.0.1:{}", server.port()))
            && (status.message.contains("hostkey") || status.message.contains("known_hosts")),
        "the message should name the server and its unknown host key: {}",
        status.message
    );
    assert_eq!(live_level(&env).await?, None);
    env.kill();

    let known = server.known_hosts_path()?;
    env.start_with_url(
        &url,
        &[
            "--path=app",
            &key_arg,
            &format!("--known-hosts-file={}", known.display()),
        ],
    )?;
    let status = env.wait_synced(&commit).await;
    let status = match status {
        Ok(s) => s,
        Err(e) => anyhow::bail!("{e:#}\nsshd log:\n{}", server.log()),
    };
    assert!(
        status
            .repo
            .ends_with(&url[url.find("127.0.0.1").unwrap()..]),
        "{status:#?}"
    );
    assert_eq!(live_level(&env).await?.as_deref(), Some("over-ssh"));
    Ok(())
}
