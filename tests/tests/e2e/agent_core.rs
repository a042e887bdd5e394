//! The core loop at scale and under failure (issue #12): a commit writes only the members whose
//! content it changes; an upgraded agent drops the old per-object annotation once; a stalled Git
//! server never delays a repair, turns `/readyz` unready after the bound and is named in status;
//! an agent restarted while Git is down keeps healing from its cached render.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use kube::api::{DeleteParams, Patch, PatchParams};
use renderer::protocol::{PARENT_NAME, REVISION_ANNOTATION, SyncResult};
use serde_json::json;
use tests::git::{GitDaemon, StallingRelay};

use crate::agent_harness::{AgentEnv, commit_settings, http_request, live_level};

const OBJECTS: usize = 1000;

fn many_configmaps(changed: Option<usize>) -> String {
    let mut out = String::new();
    for i in 0..OBJECTS {
        let value = if Some(i) == changed { "two" } else { "one" };
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}\ndata:\n  value: {value}\n"
        ));
    }
    out
}

/// resourceVersion of every member ConfigMap (the parent and kube's own left out).
async fn member_versions(env: &AgentEnv) -> Result<BTreeMap<String, String>> {
    let mut v = env.versions(&[("v1", "ConfigMap")]).await?;
    v.retain(|k, _| k.starts_with("ConfigMap/cm-"));
    Ok(v)
}

fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test]
async fn at_1000_objects_a_commit_writes_only_the_member_it_changes() -> Result<()> {
    let mut env = AgentEnv::new("agent-writes").await?;
    let first = env.repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- all.yaml\n"),
            ("app/all.yaml", &many_configmaps(None)),
        ],
        "a thousand ConfigMaps",
    )?;
    env.start(&["--path=app", "--interval=2s"])?;
    env.wait_status(Duration::from_secs(120), |s| {
        s.result == SyncResult::Synced && s.last_applied_revision.as_deref() == Some(&first)
    })
    .await?;
    let before = member_versions(&env).await?;
    assert_eq!(before.len(), OBJECTS);

    let one = env.repo.commit_files(
        &[("app/all.yaml", &many_configmaps(Some(500)))],
        "one change",
    )?;
    env.wait_synced(&one).await?;
    let after = member_versions(&env).await?;
    assert_eq!(changed(&before, &after), ["ConfigMap/cm-0500"]);
    assert_eq!(
        env.member_commit("ConfigMap/cm-0500").await?.as_deref(),
        Some(one.as_str())
    );
    assert_eq!(
        env.member_commit("ConfigMap/cm-0001").await?.as_deref(),
        Some(first.as_str())
    );

    // A commit that changes nothing in the overlay: no member write at all, over several
    // resyncs.
    let noop = env
        .repo
        .commit_files(&[("README.md", "outside the overlay\n")], "docs")?;
    env.wait_synced(&noop).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = member_versions(&env).await?;
    assert!(
        changed(&after, &later).is_empty(),
        "{:?}",
        changed(&after, &later)
    );
    let cm = env.get("v1", "ConfigMap", "cm-0002").await?.expect("cm");
    assert!(
        !cm.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(REVISION_ANNOTATION)
    );
    Ok(())
}

#[tokio::test]
async fn an_upgraded_agent_removes_the_old_revision_annotation_once() -> Result<()> {
    let mut env = AgentEnv::new("agent-migrate").await?;
    let commit = commit_settings(&env.repo, "info")?;
    // What an agent before 0.2 left: its own apply, with the per-object annotation.
    let admin = env.admin().await?;
    let api = env.api(&admin, "v1", "ConfigMap");
    let old = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": env.ns.name(),
            "labels": {"applyset.kubernetes.io/part-of": renderer::protocol::applyset_id(PARENT_NAME, env.ns.name(), "ConfigMap", "")},
            "annotations": {REVISION_ANNOTATION: commit}},
        "data": {"level": "info"},
    });
    api.patch(
        "settings",
        &PatchParams::apply("gitops-agent").force(),
        &Patch::Apply(&old),
    )
    .await?;
    let rv_before = env
        .get("v1", "ConfigMap", "settings")
        .await?
        .and_then(|o| o.metadata.resource_version)
        .expect("rv");
    env.start(&["--path=app", "--interval=1s"])?;
    env.wait_synced(&commit).await?;
    let cm = env.get("v1", "ConfigMap", "settings").await?.expect("cm");
    assert!(
        !cm.metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .contains_key(REVISION_ANNOTATION),
        "{cm:?}"
    );
    let rv_migrated = cm.metadata.resource_version.expect("rv");
    assert_ne!(rv_before, rv_migrated);
    assert_eq!(
        env.member_commit("ConfigMap/settings").await?.as_deref(),
        Some(commit.as_str())
    );
    assert!(env.logs().contains(REVISION_ANNOTATION), "{}", env.logs());
    // Once: later resyncs leave it alone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rv_later = env
        .get("v1", "ConfigMap", "settings")
        .await?
        .and_then(|o| o.metadata.resource_version);
    assert_eq!(rv_later.as_deref(), Some(rv_migrated.as_str()));
    Ok(())
}

async fn readyz(env: &AgentEnv) -> Result<u16> {
    let addr = env.listen_addr().await?;
    Ok(
        tokio::task::spawn_blocking(move || http_request(addr, "GET", "/readyz", &[], b""))
            .await??
            .0,
    )
}

/// Deletes ConfigMap `settings` and returns how long the agent took to recreate it.
async fn repair_time(env: &AgentEnv) -> Result<Duration> {
    let admin = env.admin().await?;
    env.api(&admin, "v1", "ConfigMap")
        .delete("settings", &DeleteParams::default())
        .await?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if live_level(env).await?.is_some() {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("not recreated in 10 s\n{}", env.logs())
}

#[tokio::test]
async fn a_stalled_git_server_never_delays_repairs_and_a_restart_without_git_keeps_healing()
-> Result<()> {
    let mut env = AgentEnv::new("agent-stall").await?;
    let first = commit_settings(&env.repo, "info")?;
    let daemon = GitDaemon::serve(env.repo.root())?;
    let relay = StallingRelay::start(daemon.port())?;
    let url = relay.git_url(env.repo.name());
    let args = [
        "--path=app",
        "--interval=1s",
        "--git-timeout=2s",
        "--fetch-timeout=3s",
        "--unready-after=6s",
    ];
    env.start_with_url(&url, &args)?;
    env.wait_synced(&first).await?;
    env.eventually("ready", Duration::from_secs(20), || async {
        Ok((readyz(&env).await? == 200).then_some(()))
    })
    .await?;

    relay.stall();
    env.eventually(
        "a fetch hanging on the stalled server",
        Duration::from_secs(10),
        || async { Ok((relay.held() > 0).then_some(())) },
    )
    .await?;
    // A fetch is hanging right now; the repair does not wait for it.
    let took = repair_time(&env).await?;
    assert!(took <= Duration::from_secs(1), "repair took {took:?}");

    let status = env
        .wait_status(Duration::from_secs(20), |s| {
            s.message.contains("timed out") && s.consecutive_failures >= 1
        })
        .await?;
    assert_eq!(
        status.result,
        SyncResult::Synced,
        "the result stays what it was: {status:#?}"
    );
    assert!(status.next_attempt_time.is_some(), "{status:#?}");
    assert!(status.message.contains(&first), "{}", status.message);
    env.eventually(
        "unready after the bound",
        Duration::from_secs(20),
        || async { Ok((readyz(&env).await? == 503).then_some(())) },
    )
    .await?;

    // Restarted while Git is still stalled: the cached render guards the namespace.
    env.kill();
    env.start_with_url(&url, &args)?;
    env.eventually(
        "resumed from the cache",
        Duration::from_secs(20),
        || async { Ok(env.logs().contains("resuming self-heal").then_some(())) },
    )
    .await?;
    let admin = env.admin().await?;
    env.api(&admin, "v1", "ConfigMap")
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"level": "tampered"}})),
        )
        .await?;
    env.eventually(
        "drift repaired after the restart",
        Duration::from_secs(10),
        || async { Ok((live_level(&env).await?.as_deref() == Some("info")).then_some(())) },
    )
    .await?;
    let took = repair_time(&env).await?;
    assert!(took <= Duration::from_secs(1), "repair took {took:?}");

    // Git answers again: the next commit lands and the agent is ready.
    let second = commit_settings(&env.repo, "debug")?;
    relay.resume();
    env.wait_synced(&second).await?;
    assert_eq!(live_level(&env).await?.as_deref(), Some("debug"));
    env.eventually("ready again", Duration::from_secs(20), || async {
        Ok((readyz(&env).await? == 200).then_some(()))
    })
    .await?;
    let status = env.status().await?.expect("status");
    assert_eq!(status.consecutive_failures, 0, "{status:#?}");
    Ok(())
}
