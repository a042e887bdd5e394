//! An object the API server rejects at dry-run stops its whole revision: nothing of the set is
//! applied, status names the object and the reason, and a Warning Event is recorded. Members
//! carry nothing that changes with a commit: the parent records, per member, the commit that
//! last changed it, and a commit rewrites only the objects whose content it changes.

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

/// The commit the parent records as the last to change ConfigMap `name`.
async fn revision_of(env: &AgentEnv, name: &str) -> Result<Option<String>> {
    env.member_commit(&format!("ConfigMap/{name}")).await
}

async fn annotated(env: &AgentEnv, kind: &str, name: &str) -> Result<bool> {
    Ok(env.get("v1", kind, name).await?.is_some_and(|o| {
        o.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(REVISION_ANNOTATION)
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

    // Fixed: the whole set lands, but only what the commit changed is written: b's content
    // did not change, so neither does b (same resourceVersion), and the parent still says it
    // came from the first commit.
    let b_before = env.versions(&[("v1", "ConfigMap")]).await?["ConfigMap/b"].clone();
    let fixed = env.repo.commit_files(
        &[(
            "app/svc.yaml",
            &BAD_SERVICE.replace("port: 70000", "port: 8080"),
        )],
        "a valid port",
    )?;
    env.wait_synced(&fixed).await?;
    assert_eq!(value_of(&env, "a").await?.as_deref(), Some("two"));
    for name in ["a", "c"] {
        assert_eq!(
            revision_of(&env, name).await?.as_deref(),
            Some(fixed.as_str()),
            "ConfigMap {name}"
        );
    }
    assert_eq!(
        revision_of(&env, "b").await?.as_deref(),
        Some(good.as_str()),
        "b was not changed by the later commits"
    );
    assert_eq!(
        env.versions(&[("v1", "ConfigMap")]).await?["ConfigMap/b"],
        b_before,
        "an unchanged member was rewritten"
    );
    assert_eq!(
        env.member_commit("Service/broken").await?.as_deref(),
        Some(fixed.as_str())
    );
    for (kind, name) in [
        ("ConfigMap", "a"),
        ("ConfigMap", "b"),
        ("Service", "broken"),
    ] {
        assert!(
            !annotated(&env, kind, name).await?,
            "{kind}/{name} carries the old per-object revision annotation"
        );
    }
    Ok(())
}
