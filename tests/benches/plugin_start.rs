//! Plugin start (issue #16): `kubectl gitops version` and `kubectl gitops status -n NS` against
//! the real control plane, each against its kubectl peer in the same run (`kubectl version
//! --client`; `kubectl get configmap PARENT -n NS`, the one object status reads), and the sizes
//! of both binaries as built by this profile.
//!
//! Run with `cargo bench -p tests --bench plugin_start`. The namespace holds an agent's ApplySet
//! parent written by the agent's own code, so status reads, parses and prints a real status.
//! Each command runs `RUNS` times after one warm-up; medians and means are printed with the
//! ratio to the peer.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agent::applyset::ApplySet;
use anyhow::{Context, Result, ensure};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use renderer::protocol::{AGENT_FIELD_MANAGER, GroupKind, PARENT_NAME, SyncResult, SyncStatus};
use tests::cluster::{ADMIN_CONTEXT, TestNamespace, admin_client, kubeconfig_path};

const RUNS: usize = 30;

fn main() -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<()> {
    let plugin = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
    let agent = tests::binaries::workspace_binary("agent", "gitops-agent")?;
    let kubeconfig = kubeconfig_path()?;
    let ns = TestNamespace::create("plugin-start").await?;
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let status = SyncStatus {
        repo: "https://git.example.com/team/deploy.git".into(),
        path: "overlays/prod".into(),
        tracked_ref: "main".into(),
        resolved_commit: Some(commit.into()),
        last_attempted_revision: Some(commit.into()),
        last_applied_revision: Some(commit.into()),
        result: SyncResult::Synced,
        message: format!("applied revision {commit}"),
        applied: 4,
        last_attempt_time: Some(Timestamp::now()),
        last_sync_time: Some(Timestamp::now()),
        ..Default::default()
    };
    let kinds = BTreeSet::from([GroupKind::new("apps", "Deployment")]);
    let parent = ApplySet::new(ns.name()).parent(&kinds, &status);
    Api::<ConfigMap>::namespaced(admin_client().await?, ns.name())
        .patch(
            PARENT_NAME,
            &PatchParams::apply(AGENT_FIELD_MANAGER),
            &Patch::Apply(&parent),
        )
        .await
        .context("applying the parent")?;

    let kube_args = [
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--context={ADMIN_CONTEXT}"),
    ];
    let ns_arg = format!("--namespace={}", ns.name());
    let rows = [
        (
            "/bin/true (process start)",
            time(Path::new("/bin/true"), &[])?,
        ),
        (
            "kubectl gitops version",
            time(&plugin, &["version".into()])?,
        ),
        (
            "kubectl version --client",
            time(Path::new("kubectl"), &["version".into(), "--client".into()])?,
        ),
        ("kubectl gitops status -n NS", {
            let mut args = vec!["status".to_string(), ns_arg.clone()];
            args.extend(kube_args.iter().cloned());
            time(&plugin, &args)?
        }),
        ("kubectl get configmap PARENT -n NS", {
            let mut args = vec![
                "get".to_string(),
                "configmap".into(),
                PARENT_NAME.into(),
                ns_arg.clone(),
            ];
            args.extend(kube_args.iter().cloned());
            time(Path::new("kubectl"), &args)?
        }),
    ];

    println!();
    println!("plugin start ({RUNS} runs each after a warm-up; median / mean):");
    for (name, (median, mean)) in &rows {
        println!(
            "  {name:<36} {:>7.1} ms / {:>7.1} ms",
            ms(*median),
            ms(*mean)
        );
    }
    let ratio = |ours: usize, peer: usize| ms(rows[peer].1.0) / ms(rows[ours].1.0);
    println!(
        "  version: {:.1}x faster than kubectl version --client; status: {:.1}x faster than kubectl get",
        ratio(1, 2),
        ratio(3, 4)
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("  load average (1/5/15 min): {}", load.trim());
    }
    for binary in [&plugin, &agent] {
        let bytes = std::fs::metadata(binary)?.len();
        println!(
            "  binary {}: {:.1} MB",
            binary.file_name().unwrap_or_default().to_string_lossy(),
            bytes as f64 / 1e6
        );
    }
    Ok(())
}

/// Median and mean wall time of `RUNS` runs of `program args`, each of which must succeed.
fn time(program: &Path, args: &[String]) -> Result<(Duration, Duration)> {
    let run = || -> Result<Duration> {
        let start = Instant::now();
        let out = Command::new(program)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("NO_COLOR", "1")
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        let elapsed = start.elapsed();
        ensure!(
            out.status.success(),
            "{} {args:?} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(elapsed)
    };
    run()?;
    let mut times = (0..RUNS).map(|_| run()).collect::<Result<Vec<_>>>()?;
    times.sort();
    let mean = times.iter().sum::<Duration>() / RUNS as u32;
    Ok((times[RUNS / 2], mean))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
