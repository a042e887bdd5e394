//! Issue #14, leader election under a frozen leader: the leader is SIGSTOPped in the middle of
//! a prune for longer than its lease while a second replica runs, the second replica takes over
//! and syncs a newer commit that declares the objects again, then the old leader is SIGCONTed
//! with its prune still in flight. Judged from the API server: no member changes (UID and
//! resourceVersion) and the parent still carries the new leader's status after the old one
//! woke up. Before the fence, the old leader finished its stale prune: the objects the new
//! commit declares were deleted (and its status overwritten).

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use renderer::protocol::SyncResult;

use crate::agent_harness::AgentEnv;

const DROPPED: usize = 300;
const LEASE_SECONDS: u64 = 6;

fn overlay(with_dropped: bool) -> String {
    let mut docs = vec![
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\ndata:\n  k: v\n".to_string(),
    ];
    if with_dropped {
        for i in 0..DROPPED {
            docs.push(format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: drop-{i:04}\ndata:\n  i: \"{i}\"\n"
            ));
        }
    }
    docs.join("---\n")
}

fn commit(env: &AgentEnv, with_dropped: bool, message: &str) -> Result<String> {
    env.repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- all.yaml\n"),
            ("app/all.yaml", &overlay(with_dropped)),
        ],
        message,
    )
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill {sig} {pid}: {status}");
    }
    Ok(())
}

async fn holder(env: &AgentEnv) -> Result<Option<String>> {
    let leases: Api<Lease> = Api::namespaced(env.admin().await?, env.ns.name());
    Ok(leases
        .get_opt(agent::LEASE_NAME)
        .await?
        .and_then(|l| l.spec?.holder_identity))
}

/// UID and resourceVersion of every member ConfigMap (the parent excluded).
async fn members(env: &AgentEnv) -> Result<BTreeMap<String, (String, String)>> {
    let cms: Api<ConfigMap> = Api::namespaced(env.admin().await?, env.ns.name());
    Ok(cms
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|cm| cm.name_any() != renderer::protocol::PARENT_NAME)
        .map(|cm| {
            (
                cm.name_any(),
                (
                    cm.uid().unwrap_or_default(),
                    cm.resource_version().unwrap_or_default(),
                ),
            )
        })
        .collect())
}

struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = signal(self.0.id(), "-CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_leader_frozen_mid_prune_writes_nothing_after_the_new_leader_leads() -> Result<()> {
    let mut env = AgentEnv::new("fault-leader").await?;
    let url = env.repo.file_url();
    let lease = format!("--lease-duration={LEASE_SECONDS}s");
    let args = [
        "--path=app",
        "--interval=1s",
        "--leader-elect",
        lease.as_str(),
        "--prune-limit=100%",
    ];
    let first = commit(&env, true, "keep and 300 to drop")?;
    let a = Replica(env.spawn_agent(&url, "cache-a", &args)?);
    let a_pid = a.0.id();
    env.wait_synced(&first).await?;
    let b = Replica(env.spawn_agent(&url, "cache-b", &args)?);
    let b_pid = b.0.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = holder(&env).await?.unwrap_or_default();
    assert!(
        leader.contains(&format!("-{a_pid}-")),
        "a should lead, the lease says {leader}"
    );

    // Watch deletions from now, drop the 300 in Git, and freeze a at its first prune.
    let cms: Api<ConfigMap> = Api::namespaced(env.admin().await?, env.ns.name());
    let rv = cms
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut events = cms.watch(&WatchParams::default(), &rv).await?.boxed();
    let second = commit(&env, false, "drop 300")?;
    let deadline = Duration::from_secs(60);
    tokio::time::timeout(deadline, async {
        while let Some(event) = events.try_next().await? {
            if matches!(event, WatchEvent::Deleted(_)) {
                signal(a_pid, "-STOP")?;
                return Ok::<_, anyhow::Error>(());
            }
        }
        bail!("the watch ended")
    })
    .await
    .context("a never pruned")??;
    drop(events);
    let stopped_at = std::time::Instant::now();
    let left = members(&env).await?.len() - 1;
    eprintln!("a stopped mid-prune of {second} with {left} of {DROPPED} left");
    assert!(
        left > 0,
        "the prune finished before a was stopped: nothing to prove"
    );

    // Git declares them again; b takes over once a's lease expires and syncs it.
    let third = commit(&env, true, "declare the 300 again")?;
    env.eventually("b leads", Duration::from_secs(60), || async {
        Ok(holder(&env)
            .await?
            .filter(|h| h.contains(&format!("-{b_pid}-"))))
    })
    .await?;
    let took_over = stopped_at.elapsed();
    env.wait_synced(&third).await?;
    assert!(
        took_over >= Duration::from_secs(LEASE_SECONDS - 1),
        "b led {took_over:?} after a stopped, before a's lease could expire"
    );
    let before = members(&env).await?;
    assert_eq!(before.len(), DROPPED + 1, "b did not restore every member");

    // a wakes up with its prune of the older commit in flight.
    signal(a_pid, "-CONT")?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = members(&env).await?;
    let changed: Vec<&String> = before
        .iter()
        .filter(|(name, v)| after.get(*name) != Some(v))
        .map(|(name, _)| name)
        .collect();
    assert!(
        changed.is_empty(),
        "{} members deleted or rewritten after the new leader led (e.g. {:?})\nlog:\n{}",
        changed.len(),
        changed.iter().take(5).collect::<Vec<_>>(),
        env.logs()
    );
    let status = env.status().await?.context("no status")?;
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(third.as_str())
    );
    assert_eq!(status.result, SyncResult::Synced, "{}", status.message);
    let leader = holder(&env).await?.unwrap_or_default();
    assert!(
        leader.contains(&format!("-{b_pid}-")),
        "the lease went back to {leader}"
    );
    let log = env.logs();
    assert!(
        log.contains("not the leader"),
        "the old leader never said it was fenced:\n{log}"
    );
    // Writes the in-agent checks let through and the body check stopped (agent/src/client.rs).
    eprintln!(
        "stopped on the wire: {}",
        log.matches("stopped on its way out").count()
    );
    drop((a, b));
    Ok(())
}

/// The fence on the wire (`agent/src/client.rs`): a write that got past every check in the
/// agent but leaves once the lease ran out reaches the API server as headers without a body,
/// and the server acts on nothing. The agent's own requests client, against the real server.
#[tokio::test]
async fn a_write_leaving_after_the_lease_ran_out_changes_nothing() -> Result<()> {
    let env = AgentEnv::new("fault-fence-wire").await?;
    let ns = env.ns.name();
    let admin: Api<ConfigMap> = Api::namespaced(env.admin().await?, ns);
    let victim: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "victim"}, "data": {"k": "v"}
    }))?;
    admin.create(&PostParams::default(), &victim).await?;
    let before = admin.get("victim").await?;

    let config = agent::Config::try_parse_from([
        "gitops-agent",
        "--repo=file:///unused",
        &format!("--namespace={ns}"),
        &format!("--kubeconfig={}", env.kubeconfig().display()),
        "--leader-elect",
    ])?;
    let clients = agent::kube_clients(&config).await?;
    let agent_cms: Api<ConfigMap> = Api::namespaced(clients.requests.clone(), ns);
    // Never renewed: this replica does not lead. Reads and dry runs still go out.
    agent_cms.get("victim").await?;
    let patch = Patch::Merge(serde_json::json!({"data": {"k": "changed"}}));
    agent_cms
        .patch("victim", &PatchParams::default().dry_run(), &patch)
        .await
        .context("a dry run is not a write")?;
    let delete = agent_cms.delete("victim", &DeleteParams::default()).await;
    let patched = agent_cms
        .patch("victim", &PatchParams::default(), &patch)
        .await;
    for (what, outcome) in [
        ("delete", delete.map(|_| ())),
        ("patch", patched.map(|_| ())),
    ] {
        let e = format!(
            "{:?}",
            outcome
                .err()
                .with_context(|| format!("the {what} went out"))?
        );
        assert!(e.contains("another replica holds the lease"), "{what}: {e}");
    }
    let after = admin.get("victim").await?;
    assert_eq!(
        (after.uid(), after.resource_version()),
        (before.uid(), before.resource_version())
    );

    // Renewed: the same client writes (the check above is not a client that never writes).
    clients.fence.renewed(
        std::time::Instant::now(),
        Duration::from_secs(LEASE_SECONDS),
    );
    agent_cms
        .patch("victim", &PatchParams::default(), &patch)
        .await?;
    let after = admin.get("victim").await?;
    assert_eq!(
        after.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("changed")
    );
    Ok(())
}
