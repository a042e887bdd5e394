//! `kubectl gitops break-glass` against the real agent: the override holds while active, the
//! agent reverts it after expiry or at once after `end`, and refusals change nothing.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use renderer::protocol::{
    BREAK_GLASS_BY_ANNOTATION, BREAK_GLASS_FIELD_MANAGER, BreakGlass, event_reason,
};

use crate::agent_harness::AgentEnv;
use crate::agent_sync::catalog_env;
use crate::plugin_harness::{plugin, synced_catalog};

const IMAGE: &str = "registry.example.com/catalog-api:1.4.2";
const HOTFIX: &str = "registry.example.com/catalog-api:hotfix";

async fn deployment(env: &AgentEnv) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());
    Ok(api.get("catalog-api").await?)
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.replicas)
}

fn image(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "api")?
        .image
        .clone()
}

fn env_var(d: &Deployment, name: &str) -> Option<String> {
    let spec = d.spec.as_ref()?.template.spec.as_ref()?;
    let c = spec.containers.iter().find(|c| c.name == "api")?;
    c.env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

fn break_glass(d: &Deployment) -> Option<BreakGlass> {
    BreakGlass::from_annotations(&d.metadata.annotations.clone().unwrap_or_default())
        .ok()
        .flatten()
}

/// A running agent on the prod overlay with a short interval, synced.
async fn agent_running(prefix: &str) -> Result<AgentEnv> {
    let (mut env, commit) = catalog_env(prefix).await?;
    env.start(&["--path=overlays/prod", "--interval=2s"])?;
    env.wait_synced(&commit).await?;
    Ok(env)
}

#[tokio::test]
async fn break_glass_holds_while_active_and_is_reverted_after_expiry() -> Result<()> {
    let env = agent_running("bg-expiry").await?;
    let out = plugin(
        &env,
        &[
            "break-glass",
            "deploy/catalog-api",
            "--reason",
            "INC-7: load spike",
            "--for",
            "16s",
            "--scale",
            "5",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("replicas 3 -> 5"), "{out}");
    let opened = Instant::now();

    let d = deployment(&env).await?;
    assert_eq!(replicas(&d), Some(5));
    let bg = break_glass(&d).expect("break-glass annotations");
    assert_eq!(bg.reason, "INC-7: load spike");
    assert!(!bg.by.is_empty());
    assert_eq!(bg.until.duration_since(bg.since).as_secs(), 16);
    let managers: Vec<String> = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == BREAK_GLASS_FIELD_MANAGER),
        "{managers:?}"
    );

    let events: Api<Event> = Api::namespaced(env.admin().await?, env.ns.name());
    let started = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find(|e| {
            e.reason.as_deref() == Some(event_reason::BREAK_GLASS_STARTED)
                && e.involved_object.name.as_deref() == Some("catalog-api")
        });
    let message = started.and_then(|e| e.message).unwrap_or_default();
    assert!(
        message.contains("INC-7: load spike") && message.contains(&bg.by),
        "{message:?}"
    );

    // Several 2s intervals (and any watch event) pass: the override must stay.
    while opened.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let d = deployment(&env).await?;
        assert_eq!(
            replicas(&d),
            Some(5),
            "reverted while active after {:?}\n{}",
            opened.elapsed(),
            env.logs()
        );
    }
    let status = env.status().await?.expect("status");
    assert!(
        status
            .break_glass
            .iter()
            .any(|e| e.name == "catalog-api" && e.active),
        "{status:#?}"
    );

    env.eventually(
        "replicas back to Git's 3 after expiry",
        Duration::from_secs(30),
        || async { Ok((replicas(&deployment(&env).await?) == Some(3)).then_some(())) },
    )
    .await?;
    assert!(
        opened.elapsed() >= Duration::from_secs(15),
        "reverted before expiry: {:?}",
        opened.elapsed()
    );

    // The agent ends an expired override itself (it reverts, records the expiry and removes
    // the annotations), so nothing is listed as active any more.
    let list = plugin(&env, &["break-glass", "list", "-o", "json"])?;
    assert_eq!(list.code, 0, "{list}");
    let rows = list.json()?;
    assert!(
        rows.as_array()
            .is_some_and(|r| r.iter().all(|row| row["active"] != true)),
        "{rows}"
    );
    Ok(())
}

#[tokio::test]
async fn break_glass_end_gives_the_object_back_at_once() -> Result<()> {
    let env = agent_running("bg-end").await?;
    let out = plugin(
        &env,
        &[
            "break-glass",
            "deploy/catalog-api",
            "--reason",
            "INC-8",
            "--for",
            "10m",
            "--set-image",
            &format!("api={HOTFIX}"),
            "--set-env",
            "api:LOG_LEVEL=debug",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let d = deployment(&env).await?;
    assert_eq!(image(&d).as_deref(), Some(HOTFIX), "{}", env.logs());
    assert_eq!(env_var(&d, "LOG_LEVEL").as_deref(), Some("debug"));

    let list = plugin(&env, &["break-glass", "list"])?;
    assert_eq!(list.code, 0, "{list}");
    assert!(
        list.stdout.contains("Deployment/catalog-api") && list.stdout.contains("active"),
        "{list}"
    );

    let end = plugin(&env, &["break-glass", "end", "deploy/catalog-api", "--yes"])?;
    assert_eq!(end.code, 0, "{end}");
    let ended = Instant::now();
    env.eventually(
        "image back to Git's after end",
        Duration::from_secs(10),
        || async {
            let d = deployment(&env).await?;
            Ok(
                (image(&d).as_deref() == Some(IMAGE) && env_var(&d, "LOG_LEVEL").is_none())
                    .then_some(d),
            )
        },
    )
    .await
    .map(|d| {
        assert!(
            break_glass(&d).is_none(),
            "annotations left: {:?}",
            d.metadata.annotations
        )
    })?;
    eprintln!("break_glass_end: reverted {:?} after end", ended.elapsed());
    let list = plugin(&env, &["break-glass", "list"])?;
    assert!(!list.stdout.contains("catalog-api"), "{list}");
    Ok(())
}

#[tokio::test]
async fn break_glass_refusals_change_nothing() -> Result<()> {
    let (env, _) = synced_catalog("bg-refuse").await?;
    let before = deployment(&env).await?.metadata.resource_version;

    let no_reason = plugin(
        &env,
        &[
            "break-glass",
            "deploy/catalog-api",
            "--for",
            "1h",
            "--scale",
            "4",
            "--yes",
        ],
    )?;
    assert_eq!(no_reason.code, 2, "{no_reason}");
    assert!(no_reason.stderr.contains("--reason"), "{no_reason}");

    let dry = plugin(
        &env,
        &[
            "break-glass",
            "deploy/catalog-api",
            "--reason",
            "x",
            "--for",
            "1h",
            "--scale",
            "4",
            "--dry-run",
        ],
    )?;
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stderr.contains("replicas 3 -> 4") && dry.stderr.contains("dry run"),
        "{dry}"
    );

    // No terminal to ask on and no --yes: refuse rather than assume.
    let unasked = plugin(
        &env,
        &[
            "break-glass",
            "deploy/catalog-api",
            "--reason",
            "x",
            "--for",
            "1h",
            "--scale",
            "4",
        ],
    )?;
    assert_eq!(unasked.code, 2, "{unasked}");
    assert!(unasked.stderr.contains("--yes"), "{unasked}");

    let too_long = plugin(
        &env,
        &[
            "break-glass",
            "deploy/catalog-api",
            "--reason",
            "x",
            "--for",
            "30d",
            "--scale",
            "4",
            "--yes",
        ],
    )?;
    assert_eq!(too_long.code, 2, "{too_long}");
    assert!(too_long.stderr.contains("belongs in Git"), "{too_long}");

    let no_container = plugin(
        &env,
        &[
            "break-glass",
            "deploy/catalog-api",
            "--reason",
            "x",
            "--for",
            "1h",
            "--set-image",
            "web=x",
            "--yes",
        ],
    )?;
    assert_eq!(no_container.code, 2, "{no_container}");
    assert!(
        no_container.stderr.contains("containers: api"),
        "{no_container}"
    );

    let d = deployment(&env).await?;
    assert_eq!(d.metadata.resource_version, before);
    assert!(break_glass(&d).is_none());
    assert_eq!(
        d.metadata
            .annotations
            .unwrap_or_default()
            .get(BREAK_GLASS_BY_ANNOTATION),
        None
    );
    Ok(())
}
