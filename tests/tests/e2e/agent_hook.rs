//! `POST /hook`: a GitHub push with a valid HMAC makes the agent fetch at once; a bad signature
//! is refused and changes nothing. The interval is long, so only the hook can explain a sync.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use renderer::protocol::SyncResult;

use crate::agent_harness::{AgentEnv, commit_settings, http_request, live_level};

const SECRET: &str = "hook-shared-secret";

/// `sha256=<hex>` as GitHub computes it, by `openssl dgst` rather than the agent's own code.
fn github_signature(secret: &str, body: &[u8]) -> Result<String> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running openssl (Debian package openssl)")?;
    child.stdin.take().expect("piped").write_all(body)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("openssl dgst failed: {}", out.status);
    }
    let text = String::from_utf8(out.stdout)?;
    let hex = text
        .rsplit("= ")
        .next()
        .map(str::trim)
        .filter(|h| h.len() == 64)
        .with_context(|| format!("unexpected openssl output {text:?}"))?;
    Ok(format!("sha256={hex}"))
}

fn push_payload(before: &str, after: &str) -> String {
    serde_json::json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "repository": {"full_name": "team/deploy"},
        "pusher": {"name": "someone"},
    })
    .to_string()
}

async fn still_at(env: &AgentEnv, commit: &str, level: &str) -> Result<()> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = env.status().await?.expect("status");
    assert_eq!(
        status.last_attempted_revision.as_deref(),
        Some(commit),
        "fetched without a valid hook\n{}",
        env.logs()
    );
    assert_eq!(live_level(env).await?.as_deref(), Some(level));
    Ok(())
}

#[tokio::test]
async fn agent_fetches_at_once_on_a_signed_push_hook_only() -> Result<()> {
    let mut env = AgentEnv::new("agent-hook").await?;
    let first = commit_settings(&env.repo, "before-push")?;
    let secret = env.scratch_file("webhook-secret", &format!("{SECRET}\n"))?;
    env.start(&[
        "--path=app",
        "--interval=10m",
        &format!("--webhook-secret-file={}", secret.display()),
    ])?;
    env.wait_synced(&first).await?;
    let addr = env.listen_addr().await?;

    let pushed = commit_settings(&env.repo, "after-push")?;
    let body = push_payload(&first, &pushed);
    still_at(&env, &first, "before-push").await?;

    // Signed with the wrong secret, unsigned, and a signature over another body.
    let forged = github_signature("not-the-secret", body.as_bytes())?;
    let other_body = github_signature(SECRET, push_payload(&first, &first).as_bytes())?;
    for headers in [
        vec![
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", forged.as_str()),
        ],
        vec![("X-GitHub-Event", "push")],
        vec![
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", other_body.as_str()),
        ],
    ] {
        let (code, reply) = http_request(addr, "POST", "/hook", &headers, body.as_bytes())?;
        assert!(
            code == 401 || code == 403,
            "{headers:?} answered {code}: {reply}"
        );
    }
    still_at(&env, &first, "before-push").await?;

    let valid = github_signature(SECRET, body.as_bytes())?;
    let (code, reply) = http_request(
        addr,
        "POST",
        "/hook",
        &[
            ("X-GitHub-Event", "push"),
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", &valid),
        ],
        body.as_bytes(),
    )?;
    assert!(
        (200..300).contains(&code),
        "valid hook answered {code}: {reply}"
    );
    let status = env
        .wait_status(Duration::from_secs(15), |s| {
            s.result == SyncResult::Synced
                && s.last_applied_revision.as_deref() == Some(pushed.as_str())
        })
        .await?;
    assert_eq!(status.resolved_commit.as_deref(), Some(pushed.as_str()));
    assert_eq!(live_level(&env).await?.as_deref(), Some("after-push"));

    let (_, metrics) = http_request(addr, "GET", "/metrics", &[], b"")?;
    for (series, want) in [
        ("gitops_webhook_requests_total{outcome=\"accepted\"}", "1"),
        ("gitops_webhook_requests_total{outcome=\"rejected\"}", "3"),
    ] {
        let line = metrics.lines().find(|l| l.starts_with(series));
        assert_eq!(
            line.and_then(|l| l.split_whitespace().last()),
            Some(want),
            "{series} in\n{metrics}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn agent_fetches_at_once_on_a_gitlab_push_hook_with_its_token() -> Result<()> {
    let mut env = AgentEnv::new("agent-hook-gl").await?;
    let first = commit_settings(&env.repo, "before-push")?;
    let secret = env.scratch_file("webhook-secret", SECRET)?;
    env.start(&[
        "--path=app",
        "--interval=10m",
        &format!("--webhook-secret-file={}", secret.display()),
    ])?;
    env.wait_synced(&first).await?;
    let addr = env.listen_addr().await?;
    let pushed = commit_settings(&env.repo, "after-push")?;
    let body = push_payload(&first, &pushed);

    let (code, reply) = http_request(
        addr,
        "POST",
        "/hook",
        &[
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Token", "guessed"),
        ],
        body.as_bytes(),
    )?;
    assert!(
        code == 401 || code == 403,
        "wrong token answered {code}: {reply}"
    );
    still_at(&env, &first, "before-push").await?;

    let (code, reply) = http_request(
        addr,
        "POST",
        "/hook",
        &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", SECRET)],
        body.as_bytes(),
    )?;
    assert!(
        (200..300).contains(&code),
        "valid token answered {code}: {reply}"
    );
    env.wait_status(Duration::from_secs(15), |s| {
        s.result == SyncResult::Synced
            && s.last_applied_revision.as_deref() == Some(pushed.as_str())
    })
    .await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("after-push"));
    Ok(())
}
