//! Guardrails (`--refuse`): a revision that breaks a refused `lint` rule is Refused as a whole,
//! nothing of it applied, and status names the rule, the object and its file:line. Run against
//! the real API server, the agent as its ServiceAccount.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use renderer::protocol::{SyncResult, event_reason};

use crate::agent_harness::AgentEnv;

const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: info\n";
const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: Guardrail-Never-Print-Me\n";

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
"
    )
}

async fn live_image(env: &AgentEnv) -> Result<Option<String>> {
    Ok(env
        .get("apps/v1", "Deployment", "web")
        .await?
        .and_then(|d| {
            d.data["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_string)
        }))
}

#[tokio::test]
async fn plaintext_secret_and_latest_image_are_refused_with_rule_and_line() -> Result<()> {
    let mut env = AgentEnv::new("agent-guardrails").await?;
    let good = env.repo.commit_files(
        &[
            (
                "app/kustomization.yaml",
                "resources:\n- cm.yaml\n- web.yaml\n",
            ),
            ("app/cm.yaml", CONFIGMAP),
            (
                "app/web.yaml",
                &deployment("registry.example.com/web:1.0.0"),
            ),
        ],
        "tagged image",
    )?;
    env.start(&["--path=app", "--refuse=plaintext-secrets,mutable-images"])?;
    env.wait_synced(&good).await?;

    // A plaintext Secret next to a ConfigMap change: neither may land.
    let secret = env.repo.commit_files(
        &[
            (
                "app/kustomization.yaml",
                "resources:\n- cm.yaml\n- web.yaml\n- secret.yaml\n",
            ),
            ("app/cm.yaml", &CONFIGMAP.replace("info", "debug")),
            ("app/secret.yaml", SECRET),
        ],
        "a plaintext secret",
    )?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.last_attempted_revision.as_deref() == Some(secret.as_str())
                && s.result == SyncResult::Refused
        })
        .await?;
    assert!(
        status.message.contains("plaintext-secrets")
            && status.message.contains("Secret/db")
            && status.message.contains("app/secret.yaml:6"),
        "status should name the rule, the object and file:line: {}",
        status.message
    );
    assert!(!status.message.contains("Guardrail-Never-Print-Me"));
    assert!(!env.logs().contains("Guardrail-Never-Print-Me"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(env.get("v1", "Secret", "db").await?.is_none());
    let cm = env.get("v1", "ConfigMap", "settings").await?.expect("cm");
    assert_eq!(
        cm.data["data"]["level"], "info",
        "part of a refused revision was applied"
    );
    assert_eq!(status.last_applied_revision.as_deref(), Some(good.as_str()));
    let events: Api<Event> = Api::namespaced(env.admin().await?, env.ns.name());
    let refused = env
        .eventually("a Refused Event", Duration::from_secs(10), || async {
            Ok(events
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(event_reason::REFUSED)))
        })
        .await?;
    assert_eq!(refused.type_.as_deref(), Some("Warning"));
    let note = refused.note.unwrap_or_default();
    assert!(
        note.contains("plaintext-secrets") && note.contains("app/secret.yaml:6"),
        "{note}"
    );
    assert!(!note.contains("Guardrail-Never-Print-Me"));

    // The Secret gone, but the image moved to `latest`.
    let latest = env.repo.commit_files(
        &[
            (
                "app/kustomization.yaml",
                "resources:\n- cm.yaml\n- web.yaml\n",
            ),
            (
                "app/web.yaml",
                &deployment("registry.example.com/web:latest"),
            ),
        ],
        "latest image",
    )?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.last_attempted_revision.as_deref() == Some(latest.as_str())
                && s.result == SyncResult::Refused
        })
        .await?;
    assert!(
        status.message.contains("mutable-images")
            && status.message.contains("Deployment/web")
            && status.message.contains("app/web.yaml:16"),
        "{}",
        status.message
    );
    assert_eq!(
        live_image(&env).await?.as_deref(),
        Some("registry.example.com/web:1.0.0")
    );

    // Pinned again: the revision lands.
    let fixed = env.repo.commit_files(
        &[(
            "app/web.yaml",
            &deployment("registry.example.com/web:1.1.0"),
        )],
        "pinned",
    )?;
    env.wait_synced(&fixed).await?;
    assert_eq!(
        live_image(&env).await?.as_deref(),
        Some("registry.example.com/web:1.1.0")
    );
    Ok(())
}

/// Off by default: the same plaintext Secret is applied by an agent without `--refuse`.
#[tokio::test]
async fn guardrails_are_off_by_default() -> Result<()> {
    let mut env = AgentEnv::new("agent-guardrails-off").await?;
    let commit = env.repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- secret.yaml\n"),
            ("app/secret.yaml", SECRET),
        ],
        "a plaintext secret",
    )?;
    env.start(&["--path=app"])?;
    env.wait_synced(&commit).await?;
    assert!(env.get("v1", "Secret", "db").await?.is_some());
    Ok(())
}
