//! An object the API server rejects at dry-run stops its whole revision: nothing of the set is
//! applied, status names the object and the reason, and a Warning Event is recorded. Every
//! managed object carries the revision it was last applied from.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use renderer::protocol::{REVISION_ANNOTATION, SyncResult, event_reason};

use crate::agent_harness::AgentEnv;

fn configmap(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {value}\n")
}

/// A Service whose port is out of range: valid YAML the API server refuses.
const BAD_SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\nspec:\n  selector:\n    app: x\n  ports:\n  - port: 70000\n";

async fn revision_of(env: &AgentEnv, name: &str) -> Result<Option<String>> {
    Ok(env.get("v1", "ConfigMap", name).await?.and_then(|cm| {
        cm.metadata
            .annotations
            .unwrap_or_default()
            .get(REVISION_ANNOTATION)
            .cloned()
    }))
}

async fn value_of(env: &AgentEnv, name: &str) -> Result<Option<String>> {
    Ok(env
        .get("v1", "ConfigMap", name)
        .await?
        .and_then(|cm| cm.data["data"]["value"].as_str().map(str::to_string)))
}

#[tokio::test]
async fn agent_applies_nothing_of_a_revision_the_api_server_rejects() -> Result<()> {
    let mut env = AgentEnv::new("agent-admission").await?;
    let good = env.repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- a.yaml\n- b.yaml\n"),
            ("app/a.yaml", &configmap("a", "one")),
            ("app/b.yaml", &configmap("b", "one")),
        ],
        "a and b",
    )?;
    env.start(&["--path=app"])?;
    env.wait_synced(&good).await?;
    assert_eq!(
        revision_of(&env, "a").await?.as_deref(),
        Some(good.as_str())
    );

    // a changes, c is new, and the Service is invalid: none of it may land.
    let bad = env.repo.commit_files(
        &[
            (
                "app/kustomization.yaml",
                "resources:\n- a.yaml\n- b.yaml\n- c.yaml\n- svc.yaml\n",
            ),
            ("app/a.yaml", &configmap("a", "two")),
            ("app/c.yaml", &configmap("c", "two")),
            ("app/svc.yaml", BAD_SERVICE),
        ],
        "an out-of-range port",
    )?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.last_attempted_revision.as_deref() == Some(bad.as_str())
                && s.result == SyncResult::Failed
        })
        .await?;
    assert!(
        status.message.contains("Service/broken")
            && status.message.contains("app/svc.yaml")
            && status.message.contains("70000"),
        "status should name the object and the reason: {}",
        status.message
    );
    assert_eq!(status.last_applied_revision.as_deref(), Some(good.as_str()));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(value_of(&env, "a").await?.as_deref(), Some("one"));
    assert_eq!(
        value_of(&env, "c").await?,
        None,
        "part of a rejected set was applied"
    );
    assert!(env.get("v1", "Service", "broken").await?.is_none());
    assert_eq!(
        revision_of(&env, "a").await?.as_deref(),
        Some(good.as_str())
    );

    let events: Api<Event> = Api::namespaced(env.admin().await?, env.ns.name());
    let warning = env
        .eventually("a SyncFailed Event", Duration::from_secs(10), || async {
            Ok(events
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(event_reason::SYNC_FAILED)))
        })
        .await?;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    let note = warning.note.unwrap_or_default();
    assert!(note.contains("Service/broken"), "{note}");

    // Fixed: the whole set lands, and every member records the new revision, b included
    // although its content did not change.
    let fixed = env.repo.commit_files(
        &[(
            "app/svc.yaml",
            &BAD_SERVICE.replace("port: 70000", "port: 8080"),
        )],
        "a valid port",
    )?;
    env.wait_synced(&fixed).await?;
    assert_eq!(value_of(&env, "a").await?.as_deref(), Some("two"));
    for name in ["a", "b", "c"] {
        assert_eq!(
            revision_of(&env, name).await?.as_deref(),
            Some(fixed.as_str()),
            "ConfigMap {name}"
        );
    }
    let svc = env.get("v1", "Service", "broken").await?.expect("service");
    assert_eq!(
        svc.metadata.annotations.unwrap_or_default()[REVISION_ANNOTATION],
        fixed
    );
    Ok(())
}
