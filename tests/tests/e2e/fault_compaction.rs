//! Issue #14: a list's continue token expiring under the agent. The agent lists each kind a
//! page at a time and dry-runs a page before it asks for the next, so its continue token ages;
//! once etcd is compacted past the token's revision the API server answers 410 Gone ("The
//! provided continue parameter is too old..."). Here etcd really is compacted, over and over,
//! while the agent's first sync judges 500 live ConfigMaps it is to adopt (ten pages).
//!
//! The control plane is one of its own with `--watch-cache=false`: kube-apiserver 1.36 serves
//! continued lists from its watch cache's snapshots, which outlive a compaction, so only a list
//! served by etcd shows what a compaction does to a token (checked by hand with `kubectl get
//! --raw '...?limit=5&continue=...'` after a compaction: `Expired`, 410).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use renderer::protocol::{
    APPLYSET_PART_OF_LABEL, PARENT_NAME, STATUS_DATA_KEY, SyncResult, SyncStatus,
};
use tests::cluster::{ADMIN_CONTEXT, ExtraControlPlane, service_account_kubeconfig_for};
use tests::git::Repo;

use crate::agent_harness::{AGENT_SA, apply_agent_rbac};

const OBJECTS: usize = 500;
/// Between compactions: shorter than judging one page of 50 dry-runs in a debug build, so
/// continued pages find their token compacted away (4 and 8 listings restarted in two runs),
/// longer than listing a few pages already seen, so a restarted listing gets further.
const COMPACT_EVERY: Duration = Duration::from_millis(300);

struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn status(cms: &Api<ConfigMap>) -> Result<Option<SyncStatus>> {
    let Some(cm) = cms.get_opt(PARENT_NAME).await? else {
        return Ok(None);
    };
    Ok(cm
        .data
        .and_then(|d| d.get(STATUS_DATA_KEY).cloned())
        .map(|j| SyncStatus::from_json(&j))
        .transpose()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_list_whose_continue_token_expires_mid_sync_is_listed_again() -> Result<()> {
    let plane =
        tokio::task::spawn_blocking(|| ExtraControlPlane::start_with(&["--watch-cache=false"]))
            .await??;
    let etcd = Arc::new(plane.etcd()?);
    let admin = plane.client(ADMIN_CONTEXT).await?;
    let ns = "compaction";
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.into());
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    apply_agent_rbac(&admin, ns).await?;
    let scratch = tempfile::tempdir()?;
    let kubeconfig =
        service_account_kubeconfig_for(plane.kubeconfig(), scratch.path(), ns, AGENT_SA).await?;

    // Live and unowned, so the first sync lists them (more than one page) and adopts them,
    // each judged by a dry-run that finds Git's data differs.
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
    let created = futures::stream::iter((0..OBJECTS).map(|i| {
        let cms = cms.clone();
        async move {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(format!("cm-{i:03}"));
            cm.data = Some([("i".to_string(), "live".to_string())].into());
            cms.create(&PostParams::default(), &cm)
                .await
                .with_context(|| format!("creating ConfigMap {ns}/cm-{i:03}"))
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    created.into_iter().collect::<Result<Vec<_>>>()?;

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

    // Compacts from before the agent starts until it is Synced (or the bound below).
    let stop = Arc::new(AtomicBool::new(false));
    let compactions = Arc::new(AtomicU64::new(0));
    let compactor = {
        let (etcd, stop, compactions) = (etcd.clone(), stop.clone(), compactions.clone());
        std::thread::spawn(move || -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                // A write of its own, so there is a newer revision to compact to even when
                // nothing else is written.
                let revision = etcd.put("gitops-test/tick", "x")?;
                etcd.compact(revision)?;
                compactions.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(COMPACT_EVERY);
            }
            Ok(())
        })
    };

    let log = scratch.path().join("agent.log");
    let out = std::fs::File::create(&log)?;
    let _agent = Agent(
        std::process::Command::new(tests::binaries::workspace_binary("agent", "gitops-agent")?)
            .arg(format!("--repo={}", repo.file_url()))
            .arg(format!("--namespace={ns}"))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                scratch.path().join("cache").display()
            ))
            .args(["--path=app", "--listen=127.0.0.1:0", "--interval=10m"])
            .env("RUST_LOG", "info,kube=warn")
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting gitops-agent")?,
    );
    let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();

    let start = Instant::now();
    let outcome = loop {
        let s = status(&cms).await?;
        if let Some(s) = &s
            && s.result == SyncResult::Failed
        {
            break Err(format!("a sync failed: {:?}", s.message));
        }
        if let Some(s) = &s
            && s.result == SyncResult::Synced
            && s.last_applied_revision.as_deref() == Some(commit.as_str())
        {
            break Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(180) {
            break Err(format!("not Synced at {commit} within 180 s: {s:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.store(true, Ordering::Relaxed);
    compactor.join().expect("compactor panicked")?;
    let compactions = compactions.load(Ordering::Relaxed);
    let took = match outcome {
        Ok(took) => took,
        Err(why) => bail!(
            "{why} ({compactions} compactions); agent log:\n{}",
            agent_log()
        ),
    };
    let text = agent_log();
    let restarts = text.matches("listing the kind again").count();
    eprintln!(
        "fault_compaction: Synced in {took:?} through {compactions} compactions, \
         {restarts} listings started over"
    );
    // A status poll can miss a failure the agent retried quickly; its log cannot.
    assert!(
        !text.contains("sync failed"),
        "a sync failed on the way:\n{text}"
    );
    // Otherwise the compactions never met an aging token and this tested nothing.
    assert!(
        restarts > 0,
        "no continue token expired in {compactions} compactions:\n{text}"
    );
    let members = cms
        .list(&ListParams::default().labels(APPLYSET_PART_OF_LABEL))
        .await?
        .items;
    assert_eq!(members.len(), OBJECTS, "members after the sync");
    let stale: Vec<_> = members
        .iter()
        .filter(|cm| {
            cm.data
                .as_ref()
                .and_then(|d| d.get("i"))
                .map(String::as_str)
                == Some("live")
        })
        .filter_map(|cm| cm.metadata.name.clone())
        .collect();
    assert!(stale.is_empty(), "not reconciled to Git: {stale:?}");
    Ok(())
}
