//! `kubectl gitops status -A` over 500 namespaces, each holding an agent's ApplySet parent, on
//! the real control plane; and its peer in the same run, `kubectl get configmaps -A` with the
//! same label and field selectors (the raw LIST, without reading any status).
//!
//! Run with `cargo bench -p tests --bench status_fleet` (`GITOPS_BENCH_NAMESPACES` changes the
//! count). The parents are written by the agent's own code (`agent::applyset::ApplySet` and
//! the protocol's `SyncStatus`, applied with the agent's field manager), with results, health,
//! drift and break-glass varying across namespaces. Prints the median of 7 runs of each and
//! the ratio, against the target of issue #19 (≤ 1 s); a miss is reported, not failed.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::applyset::ApplySet;
use anyhow::{Context, Result, bail, ensure};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use renderer::protocol::{
    AGENT_FIELD_MANAGER, APPLYSET_ID_LABEL, BreakGlass, BreakGlassEntry, GroupKind, HealthEntry,
    PARENT_NAME, RESULT_LABEL, SyncResult, SyncStatus,
};
use serde_json::{Value, json};
use tests::cluster::{ADMIN_CONTEXT, TEST_NAMESPACE_LABEL, admin_client, kubeconfig_path};
use tokio::sync::Semaphore;

const DEFAULT_NAMESPACES: usize = 500;
const RUNS: usize = 7;
const TARGET: Duration = Duration::from_secs(1);
const CONCURRENCY: usize = 16;

fn main() -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

/// The status an agent would have written: every sixth namespace has a problem of some kind.
fn status(i: usize, now: Timestamp) -> SyncStatus {
    let commit = format!("{:040x}", i * 7919 + 1);
    let result = match i % 12 {
        0 => SyncResult::Failed,
        3 => SyncResult::OutOfSync,
        6 => SyncResult::Refused,
        9 => SyncResult::Pending,
        _ => SyncResult::Synced,
    };
    let health = |name: &str, state: &str| HealthEntry {
        kind: "Deployment".into(),
        name: name.into(),
        state: state.into(),
        message: String::new(),
    };
    let mut s = SyncStatus {
        repo: "https://git.example.com/platform/deploy.git".into(),
        path: format!("overlays/team-{i:03}"),
        tracked_ref: if i.is_multiple_of(2) {
            "main".into()
        } else {
            ">=1.4.0 <2.0.0".into()
        },
        resolved_commit: Some(commit.clone()),
        resolved_tag: (i % 2 == 1).then(|| "v1.5.0".to_string()),
        last_attempted_revision: Some(commit.clone()),
        last_applied_revision: Some(commit.clone()),
        result,
        message: format!("applied revision {commit}"),
        applied: 12,
        health: vec![
            health("api", if i % 12 == 4 { "Degraded" } else { "Healthy" }),
            health("worker", "Healthy"),
        ],
        last_attempt_time: Some(now),
        last_sync_time: Some(now),
        ..Default::default()
    };
    if i.is_multiple_of(5) {
        s.drift_corrected = 2;
        s.record_drift_correction(now);
        s.record_drift_correction(now);
    }
    if i.is_multiple_of(25) {
        s.break_glass.push(BreakGlassEntry {
            kind: "Deployment".into(),
            name: "api".into(),
            break_glass: BreakGlass {
                by: "oncall@example.com".into(),
                reason: "INC-1234".into(),
                since: now,
                until: now + jiff::SignedDuration::from_hours(2),
            },
            active: true,
            requested_until: None,
        });
    }
    s
}

async fn run() -> Result<()> {
    let count: usize = std::env::var("GITOPS_BENCH_NAMESPACES")
        .ok()
        .map(|v| v.parse().context("GITOPS_BENCH_NAMESPACES"))
        .transpose()?
        .unwrap_or(DEFAULT_NAMESPACES);
    let binary = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
    let kubeconfig = kubeconfig_path()?;
    let client = admin_client().await?;
    let prefix = tests::cluster::unique_name("fleet");
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:03}")).collect();

    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let now = Timestamp::now();
    let kinds = BTreeSet::from([GroupKind::new("apps", "Deployment")]);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, ns) in names.iter().cloned().enumerate() {
        let client = client.clone();
        let limit = limit.clone();
        let parent = ApplySet::new(&ns).parent(&kinds, &status(i, now));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let namespace: Namespace = serde_json::from_value(json!({
                "metadata": {"name": ns, "labels": {TEST_NAMESPACE_LABEL: "true"}}
            }))?;
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &namespace)
                .await
                .with_context(|| format!("creating namespace {ns}"))?;
            Api::<ConfigMap>::namespaced(client, &ns)
                .patch(
                    PARENT_NAME,
                    &PatchParams::apply(AGENT_FIELD_MANAGER),
                    &Patch::Apply(&parent),
                )
                .await
                .with_context(|| format!("applying the parent in {ns}"))?;
            anyhow::Ok(())
        });
    }
    let mut setup = Ok(());
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done.context("set-up task")? {
            setup = Err(e);
        }
    }
    let result = match setup {
        Ok(()) => {
            println!(
                "status_fleet: {count} namespaces with an agent parent written in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            measure(&binary, kubeconfig, &prefix, count)
        }
        Err(e) => Err(e),
    };
    cleanup(&client, &names).await;
    result
}

fn measure(
    binary: &std::path::Path,
    kubeconfig: &std::path::Path,
    prefix: &str,
    count: usize,
) -> Result<()> {
    let ours = || -> Result<(Duration, Vec<Value>)> {
        let start = Instant::now();
        let out = Command::new(binary)
            .args(["status", "-A", "-o", "json"])
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--context={ADMIN_CONTEXT}"))
            .env_remove("KUBECONFIG")
            .output()?;
        let elapsed = start.elapsed();
        let entries: Vec<Value> = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "status -A printed no JSON: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok((elapsed, entries))
    };
    let kubectl = || -> Result<(Duration, Vec<Value>)> {
        let start = Instant::now();
        let out = Command::new("kubectl")
            .args(["get", "configmaps", "-A", "-o", "json"])
            .arg(format!("--selector={APPLYSET_ID_LABEL},{RESULT_LABEL}"))
            .arg(format!("--field-selector=metadata.name={PARENT_NAME}"))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--context={ADMIN_CONTEXT}"))
            .env_remove("KUBECONFIG")
            .output()?;
        let elapsed = start.elapsed();
        ensure!(
            out.status.success(),
            "kubectl get: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Value = serde_json::from_slice(&out.stdout)?;
        Ok((
            elapsed,
            list["items"].as_array().cloned().unwrap_or_default(),
        ))
    };
    let ours_in = |entries: &[Value]| {
        entries
            .iter()
            .filter(|e| {
                e["namespace"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .count()
    };
    let kubectl_in = |items: &[Value]| {
        items
            .iter()
            .filter(|i| {
                i["metadata"]["namespace"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .count()
    };

    // One warm-up each (connections, page cache), then alternate.
    let (_, entries) = ours()?;
    let (_, items) = kubectl()?;
    if ours_in(&entries) != count || kubectl_in(&items) != count {
        bail!(
            "expected {count} agents: status -A found {}, kubectl {}",
            ours_in(&entries),
            kubectl_in(&items)
        );
    }
    let problems = entries
        .iter()
        .filter(|e| {
            e["namespace"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .filter(|e| e["problem"] == true)
        .count();
    let first_fine = entries
        .iter()
        .position(|e| e["problem"] == false)
        .unwrap_or(entries.len());
    ensure!(
        entries[first_fine..].iter().all(|e| e["problem"] == false),
        "problems are not all first"
    );
    let mut ours_times = Vec::new();
    let mut kubectl_times = Vec::new();
    for _ in 0..RUNS {
        ours_times.push(ours()?.0);
        kubectl_times.push(kubectl()?.0);
    }
    ours_times.sort();
    kubectl_times.sort();
    let median = |t: &[Duration]| t[t.len() / 2];
    let (ours_median, kubectl_median) = (median(&ours_times), median(&kubectl_times));
    println!(
        "status_fleet: {count} namespaces, {problems} with problems (sorted first), {RUNS} runs each"
    );
    println!(
        "  kubectl gitops status -A: median {:.0} ms (min {:.0}, max {:.0})",
        ours_median.as_secs_f64() * 1e3,
        ours_times[0].as_secs_f64() * 1e3,
        ours_times[RUNS - 1].as_secs_f64() * 1e3
    );
    println!(
        "  kubectl get configmaps -A (same selectors): median {:.0} ms (min {:.0}, max {:.0})",
        kubectl_median.as_secs_f64() * 1e3,
        kubectl_times[0].as_secs_f64() * 1e3,
        kubectl_times[RUNS - 1].as_secs_f64() * 1e3
    );
    println!(
        "  ratio kubectl / status -A: {:.2}x",
        kubectl_median.as_secs_f64() / ours_median.as_secs_f64()
    );
    println!(
        "  target <= {} ms: {}",
        TARGET.as_millis(),
        if ours_median <= TARGET {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(())
}

async fn cleanup(client: &kube::Client, names: &[String]) {
    let api = Api::<Namespace>::all(client.clone());
    for ns in names {
        let _ = api.delete(ns, &DeleteParams::background()).await;
    }
}
