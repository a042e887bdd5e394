//! The seed's release story on real rollouts: the test control plane runs the workload
//! controllers, kube-scheduler and KWOK nodes, so pods are scheduled and become Ready, and an
//! image tagged `broken` really never pulls (tests/control-plane/kwok-stages.yaml). No status
//! is written by a test: every verdict comes from the controllers and the agent.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use renderer::protocol::SyncStatus;
use tests::cluster::{ADMIN_CONTEXT, kubeconfig_path};

use crate::agent_harness::AgentEnv;
use crate::agent_sync::catalog_env;
use crate::plugin_harness::plugin;
use crate::plugin_promote::{manifest_revision, staging_and_prod, start_prod, wait_healthy};

const BASE_DEPLOYMENT: &str = "base/deployment.yaml";
const STAGING_KUSTOMIZATION: &str = "overlays/staging/kustomization.yaml";
const PROD_KUSTOMIZATION: &str = "overlays/prod/kustomization.yaml";
/// Short enough for a test, long enough for a rollout on a loaded 2-core machine.
const PROGRESS_DEADLINE_SECS: u64 = 15;

/// Rewrites one line of a file at HEAD and commits it.
fn edit(env: &AgentEnv, file: &str, from: &str, to: &str, message: &str) -> Result<String> {
    let text = env.repo.git(&["show", &format!("HEAD:{file}")])?;
    if !text.contains(from) {
        bail!("{file} has no {from:?}:\n{text}");
    }
    let text = format!("{}\n", text.replace(from, to));
    env.repo.commit_files(&[(file, &text)], message)
}

/// Waits for the catalog Deployment to be reported Degraded with `needle` in its message.
async fn wait_degraded(env: &AgentEnv, needle: &str) -> Result<SyncStatus> {
    env.wait_status(Duration::from_secs(PROGRESS_DEADLINE_SECS + 60), |s| {
        s.health
            .iter()
            .any(|h| h.kind == "Deployment" && h.state == "Degraded" && h.message.contains(needle))
    })
    .await
}

async fn available_replicas(env: &AgentEnv) -> Result<i32> {
    let api: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());
    let d = api.get("catalog-api").await?;
    Ok(d.status.and_then(|s| s.available_replicas).unwrap_or(0))
}

/// Pods of the catalog Deployment that are Running with the Ready condition True.
async fn ready_pods(env: &AgentEnv) -> Result<usize> {
    let api: Api<Pod> = Api::namespaced(env.admin().await?, env.ns.name());
    let pods = api
        .list(&ListParams::default().labels("component=api"))
        .await?;
    Ok(pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let status = p.status.as_ref();
            status.and_then(|s| s.phase.as_deref()) == Some("Running")
                && status
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count())
}

#[tokio::test]
async fn rollout_release_story_on_real_pods() -> Result<()> {
    let (staging, mut prod, _first) = staging_and_prod("rollout").await?;

    // The quickstart's end state: prod's 3 replicas really run and the agent says Healthy.
    let status = wait_healthy(&prod).await?;
    let deploy = status
        .health
        .iter()
        .find(|h| h.kind == "Deployment")
        .expect("the Deployment's health");
    assert_eq!(deploy.message, "3 of 3 replicas available", "{status:#?}");
    assert_eq!(available_replicas(&prod).await?, 3);
    assert_eq!(ready_pods(&prod).await?, 3);

    let deadline = edit(
        &staging,
        BASE_DEPLOYMENT,
        "  replicas: 1\n",
        &format!("  replicas: 1\n  progressDeadlineSeconds: {PROGRESS_DEADLINE_SECS}\n"),
        "base: a short progress deadline",
    )?;
    staging.wait_synced(&deadline).await?;
    wait_healthy(&staging).await?;

    // A broken image on staging: Degraded once the deadline passes, naming the pod's reason.
    let broken = edit(
        &staging,
        STAGING_KUSTOMIZATION,
        "newTag: 1.5.0-rc.1",
        "newTag: broken",
        "staging: catalog-api broken",
    )?;
    staging.wait_synced(&broken).await?;
    let started = Instant::now();
    let status = wait_degraded(&staging, "ImagePullBackOff on catalog-api-").await?;
    eprintln!(
        "rollout: staging Degraded {:.1}s after the sync (deadline {PROGRESS_DEADLINE_SECS}s)",
        started.elapsed().as_secs_f64()
    );
    let message = &status
        .health
        .iter()
        .find(|h| h.kind == "Deployment")
        .unwrap()
        .message;
    assert!(
        message.contains("ProgressDeadlineExceeded") || message.contains("timed out"),
        "{message}"
    );

    let from = staging.ns.name().to_string();
    let to = prod.ns.name().to_string();
    let promote = |tag: &str| {
        plugin(
            &staging,
            &[
                "promote", "--from", &from, "--to", &to, "--tag", tag, "--yes",
            ],
        )
    };
    let refused = promote("v1.5.0")?;
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused.stderr.contains("not healthy") && refused.stderr.contains("ImagePullBackOff"),
        "{refused}"
    );
    assert_eq!(
        staging.repo.git(&["tag", "--list"])?,
        "v1.4.2",
        "no tag made"
    );

    // doctor's live step names the reason, and the commit and file:line that set the image.
    let doctor = plugin(&staging, &["doctor"])?;
    assert_eq!(doctor.code, 1, "{doctor}");
    for needle in [
        "Degraded",
        "ImagePullBackOff",
        "image registry.example.com/catalog-api:broken set at overlays/staging/kustomization.yaml:9",
        &broken[..12],
        "staging: catalog-api broken",
    ] {
        assert!(
            doctor.stdout.contains(needle),
            "{needle:?} missing:\n{doctor}"
        );
    }

    // Fixed: staging Healthy again, and promote accepts it.
    let fixed = edit(
        &staging,
        STAGING_KUSTOMIZATION,
        "newTag: broken",
        "newTag: 1.5.0",
        "staging: catalog-api 1.5.0",
    )?;
    staging.wait_synced(&fixed).await?;
    wait_healthy(&staging).await?;
    let accepted = promote("v1.5.0")?;
    assert_eq!(accepted.code, 0, "{accepted}");
    start_prod(&mut prod, &staging)?;
    prod.wait_synced(&fixed).await?;
    wait_healthy(&prod).await?;

    // A change only prod runs breaks prod; staging stays Healthy, so it is promoted.
    let prod_broken = edit(
        &staging,
        PROD_KUSTOMIZATION,
        "newTag: 1.4.2",
        "newTag: broken",
        "prod: catalog-api broken",
    )?;
    let promoted = staging.wait_status(Duration::from_secs(60), |s| {
        s.last_applied_revision.as_deref() == Some(prod_broken.as_str())
    });
    promoted.await?;
    wait_healthy(&staging).await?;
    let out = promote("v1.6.0")?;
    assert_eq!(out.code, 0, "{out}");
    start_prod(&mut prod, &staging)?;
    prod.wait_synced(&prod_broken).await?;
    wait_degraded(&prod, "ImagePullBackOff on catalog-api-").await?;
    assert_eq!(
        available_replicas(&prod).await?,
        3,
        "the old pods keep serving"
    );

    let repo = staging.repo.path().display().to_string();
    let doctor = plugin(&prod, &["doctor", "--repo", &repo])?;
    assert_eq!(doctor.code, 1, "{doctor}");
    assert!(
        doctor
            .stdout
            .contains("set at overlays/prod/kustomization.yaml:9")
            && doctor.stdout.contains(&prod_broken[..12]),
        "{doctor}"
    );

    // rollback --wait commits, then follows prod until it runs v1.5.0 and is Healthy again.
    let rollback = {
        let prod_ns = prod.ns.name().to_string();
        let binary = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
        Command::new(binary)
            .args([
                "rollback", "--to", "v1.5.0", "--repo", &repo, "--yes", "--wait",
            ])
            .args(["--timeout", "3m"])
            .arg(format!("--kubeconfig={}", kubeconfig_path()?.display()))
            .arg(format!("--context={ADMIN_CONTEXT}"))
            .arg(format!("--namespace={prod_ns}"))
            .env_remove("KUBECONFIG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?
    };
    let start = Instant::now();
    while manifest_revision(&staging)? != "v1.5.0" {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("rollback made no commit");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Deploying the manifest, as applying it would restart the agent's pod.
    start_prod(&mut prod, &staging)?;
    let out = tokio::task::spawn_blocking(move || rollback.wait_with_output()).await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rollback --wait failed:\n{stderr}");
    assert!(stderr.contains("runs v1.5.0 and is Healthy"), "{stderr}");
    let status = wait_healthy(&prod).await?;
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(fixed.as_str())
    );
    assert_eq!(available_replicas(&prod).await?, 3);
    Ok(())
}

/// `status --watch` shows a rollout as it happens: Progressing, then Healthy.
#[tokio::test]
async fn status_watch_shows_rollout_progress() -> Result<()> {
    let (mut env, first) = catalog_env("rollout-watch").await?;
    env.start(&["--path=overlays/prod", "--interval=30s"])?;
    env.wait_synced(&first).await?;
    wait_healthy(&env).await?;

    let binary = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
    let mut child = Command::new(binary)
        .args(["status", "--watch"])
        .arg(format!("--kubeconfig={}", kubeconfig_path()?.display()))
        .arg(format!("--context={ADMIN_CONTEXT}"))
        .arg(format!("--namespace={}", env.ns.name()))
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .current_dir(env.repo.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut seen = seen.lock().unwrap();
                seen.push_str(&line);
                seen.push('\n');
            }
        })
    };
    let outcome = async {
        let start = Instant::now();
        while !seen
            .lock()
            .unwrap()
            .contains("Deployment/catalog-api  Healthy")
        {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("no first status:\n{}", seen.lock().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let before = seen.lock().unwrap().len();
        let next = edit(
            &env,
            PROD_KUSTOMIZATION,
            "newTag: 1.4.2",
            "newTag: 1.4.3",
            "prod: 1.4.3",
        )?;
        env.kill();
        env.start(&["--path=overlays/prod", "--interval=30s"])?;
        env.wait_synced(&next).await?;
        let start = Instant::now();
        loop {
            let text = seen.lock().unwrap()[before..].to_string();
            let progressing = text.find("Deployment/catalog-api  Progressing");
            // The line reads `Deployment/catalog-api  Healthy  from <commit>  3 of 3 replicas ...`.
            let healthy = text.rfind("Deployment/catalog-api  Healthy").filter(|at| {
                text[*at..]
                    .lines()
                    .next()
                    .is_some_and(|line| line.contains("3 of 3 replicas available"))
            });
            if let (Some(p), Some(h)) = (progressing, healthy)
                && p < h
            {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(90) {
                bail!("no Progressing then Healthy after {}:\n{text}", &next[..12]);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    env.kill();
    reader.join().expect("reader thread");
    outcome
}

/// Break-glass `--scale` changes the real number of running pods, not just a field.
#[tokio::test]
async fn break_glass_scale_really_scales_pods() -> Result<()> {
    let (mut env, first) = catalog_env("rollout-scale").await?;
    env.start(&["--path=overlays/prod"])?;
    env.wait_synced(&first).await?;
    wait_healthy(&env).await?;
    assert_eq!(ready_pods(&env).await?, 3);

    let out = plugin(
        &env,
        &[
            "break-glass",
            "deploy/catalog-api",
            "--reason",
            "INC-7",
            "--for",
            "10m",
            "--scale",
            "5",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    let start = Instant::now();
    while ready_pods(&env).await? != 5 || available_replicas(&env).await? != 5 {
        if start.elapsed() > Duration::from_secs(60) {
            bail!(
                "{} pods ready, {} available after break-glass --scale 5",
                ready_pods(&env).await?,
                available_replicas(&env).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The agent holds the override instead of scaling back to Git's 3.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(ready_pods(&env).await?, 5);
    env.kill();
    Ok(())
}
