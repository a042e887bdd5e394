//! Issue #14: the API server restarted under the agent, mid-sync and mid-watch. A control
//! plane of its own (`RestartableControlPlane`) is stopped with SIGTERM and started again on
//! the same etcd data and credentials; its port changes, so the agent reaches it through a
//! plain TCP relay whose address stays put (infrastructure, not a fake: every byte is the real
//! API server's). The agent must finish the interrupted sync with nothing lost, and its watches
//! must come back at once: a deletion made as soon as the API server answers again is
//! repaired by self-heal within [`REPAIR_WITHIN`], with the periodic resync (10 minutes) too
//! far away to be what repairs it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use renderer::protocol::{
    APPLYSET_PART_OF_LABEL, PARENT_NAME, STATUS_DATA_KEY, SyncResult, SyncStatus,
};
use tests::cluster::{ADMIN_CONTEXT, RestartableControlPlane, service_account_kubeconfig_for};
use tests::git::Repo;

use crate::agent_harness::{AGENT_SA, apply_agent_rbac};

const OBJECTS: usize = 500;
/// Far above the repair measured after the fix (about 1 s: the watch retries within 2 s, see
/// `agent/src/selfheal.rs`; see the README) and far below the resync.
const REPAIR_WITHIN: Duration = Duration::from_secs(10);

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn status(plane: &RestartableControlPlane, ns: &str) -> Result<Option<SyncStatus>> {
    let cms: Api<ConfigMap> = Api::namespaced(plane.client(ADMIN_CONTEXT).await?, ns);
    let Ok(Some(cm)) = cms.get_opt(PARENT_NAME).await else {
        return Ok(None);
    };
    Ok(cm
        .data
        .and_then(|d| d.get(STATUS_DATA_KEY).cloned())
        .map(|j| SyncStatus::from_json(&j))
        .transpose()?)
}

async fn members(plane: &RestartableControlPlane, ns: &str) -> Result<usize> {
    let cms: Api<ConfigMap> = Api::namespaced(plane.client(ADMIN_CONTEXT).await?, ns);
    Ok(cms
        .list(&ListParams::default().labels(APPLYSET_PART_OF_LABEL))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0))
}

async fn wait_synced(
    plane: &RestartableControlPlane,
    ns: &str,
    commit: &str,
    log: &std::path::Path,
) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if let Ok(Some(s)) = status(plane, ns).await
            && s.result == SyncResult::Synced
            && s.last_applied_revision.as_deref() == Some(commit)
        {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "not Synced at {commit}; agent log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_survives_api_server_restarts_mid_sync_and_mid_watch() -> Result<()> {
    let mut plane = tokio::task::spawn_blocking(RestartableControlPlane::start).await??;
    let admin = plane.client(ADMIN_CONTEXT).await?;
    let ns = "restarts";
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.into());
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    apply_agent_rbac(&admin, ns).await?;
    let scratch = tempfile::tempdir()?;
    let kubeconfig =
        service_account_kubeconfig_for(plane.kubeconfig(), scratch.path(), ns, AGENT_SA).await?;

    let repo = Repo::new()?;
    let docs: Vec<String> = (0..OBJECTS)
        .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\ndata:\n  i: \"{i}\"\n"))
        .collect();
    let commit = repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- all.yaml\n"),
            ("app/all.yaml", &docs.join("---\n")),
        ],
        "500 objects",
    )?;
    let log = scratch.path().join("agent.log");
    let out = std::fs::File::create(&log)?;
    let _agent = Agent(
        Command::new(tests::binaries::workspace_binary("agent", "gitops-agent")?)
            .arg(format!("--repo={}", repo.file_url()))
            .arg(format!("--namespace={ns}"))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                scratch.path().join("cache").display()
            ))
            .args([
                "--path=app",
                "--listen=127.0.0.1:0",
                "--interval=10m",
                "--api-timeout=5s",
            ])
            .env("RUST_LOG", "info,kube=warn,agent=debug")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting gitops-agent")?,
    );

    // Mid-sync: once the first members exist, the API server goes away.
    let start = Instant::now();
    loop {
        let n = members(&plane, ns).await?;
        if n > 0 {
            eprintln!("fault_apiserver: restarting with {n} of {OBJECTS} applied");
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!(
                "the agent never applied anything:\n{}",
                std::fs::read_to_string(&log)?
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    plane.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| plane.start_again())?;
    let took = wait_synced(&plane, ns, &commit, &log).await?;
    eprintln!("fault_apiserver: Synced {took:?} after the restart");
    assert_eq!(members(&plane, ns).await?, OBJECTS, "objects lost");

    // Mid-watch: restart again, then delete a member as soon as the API server is ready; only
    // a watch can notice within the 10-minute interval. The first time the watch has not yet
    // listed (it starts after the sync, and the restart follows at once), the second time it
    // has and is following changes.
    for (name, watch) in [("cm-042", "not yet listed"), ("cm-043", "following")] {
        let took = restart_and_delete(&mut plane, ns, name, &log).await?;
        eprintln!(
            "fault_apiserver: {name}, deleted right after a restart (watch {watch}), repaired in {took:?}"
        );
        assert_eq!(members(&plane, ns).await?, OBJECTS, "objects lost");
    }
    Ok(())
}

/// Restarts the API server, deletes `name` as soon as it is ready (its /readyz answered 200
/// when `start_again` returns) and returns how long the agent took to create it again.
async fn restart_and_delete(
    plane: &mut RestartableControlPlane,
    ns: &str,
    name: &str,
    log: &std::path::Path,
) -> Result<Duration> {
    let old_uid = Api::<ConfigMap>::namespaced(plane.client(ADMIN_CONTEXT).await?, ns)
        .get(name)
        .await?
        .metadata
        .uid;
    plane.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| plane.start_again())?;
    let ready = Instant::now();
    let cms: Api<ConfigMap> = Api::namespaced(plane.client(ADMIN_CONTEXT).await?, ns);
    cms.delete(name, &DeleteParams::default()).await?;
    let deleted = Instant::now();
    eprintln!(
        "fault_apiserver: {name} deleted {:?} after the API server was ready",
        deleted - ready
    );
    loop {
        if let Some(cm) = cms.get_opt(name).await?
            && cm.metadata.uid != old_uid
        {
            return Ok(deleted.elapsed());
        }
        if deleted.elapsed() > REPAIR_WITHIN {
            bail!(
                "{name}, deleted right after the restart, not repaired within {REPAIR_WITHIN:?}:\n{}",
                std::fs::read_to_string(log)?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
