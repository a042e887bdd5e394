//! `kubectl gitops status` against a namespace the real agent synced, once and `--watch`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tests::cluster::{ADMIN_CONTEXT, kubeconfig_path};

use crate::plugin_harness::{plugin, synced_catalog};

#[tokio::test]
async fn plugin_status_of_a_synced_namespace() -> Result<()> {
    let (env, commit) = synced_catalog("plugin-status").await?;

    let out = plugin(&env, &["status", "-o", "json"])?;
    assert_eq!(out.code, 0, "{out}");
    let json = out.json()?;
    assert_eq!(json["result"], "Synced", "{out}");
    assert_eq!(json["resolvedCommit"], commit.as_str());
    assert_eq!(json["lastAppliedRevision"], commit.as_str());
    assert_eq!(json["path"], "overlays/prod");
    assert_eq!(json["local"]["state"], "same", "{out}");
    assert_eq!(json["counts"]["members"], 4, "{out}");
    assert_eq!(json["counts"]["byKind"]["Deployment"], 1, "{out}");

    let out = plugin(&env, &["status"])?;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("Result:       Synced"), "{out}");
    assert!(out.stdout.contains(&commit[..12]), "{out}");

    // A local commit the agent has not seen: status says the clone is ahead.
    env.repo
        .commit_files(&[("notes.txt", "later\n")], "local only")?;
    let json = plugin(&env, &["status", "-o", "json"])?.json()?;
    assert_eq!(json["local"]["state"], "ahead");
    assert_eq!(json["local"]["ahead"], 1);
    Ok(())
}

#[tokio::test]
async fn plugin_status_without_an_agent_is_an_error() -> Result<()> {
    let env = crate::agent_harness::AgentEnv::new("plugin-status-none").await?;
    env.repo.commit_files(&[("README", "x\n")], "init")?;
    let out = plugin(&env, &["status"])?;
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("kubectl-gitops"), "{out}");
    Ok(())
}

/// `status --watch` runs until interrupted and prints the status again whenever it changes.
#[tokio::test]
async fn plugin_status_watch_follows_a_change() -> Result<()> {
    let (mut env, commit) = synced_catalog("plugin-status-watch").await?;
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
    let wait_for = |needle: String| {
        let seen = seen.clone();
        async move {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if seen.lock().unwrap().contains(&needle) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::bail!("{needle:?} never appeared:\n{}", seen.lock().unwrap())
        }
    };
    let outcome = async {
        wait_for(format!("Tracking:     main -> {}", &commit[..12])).await?;
        wait_for("Result:       Synced".into()).await?;

        let broken = env.repo.commit_files(
            &[("overlays/prod/deployment-prod.yaml", "spec: [\n")],
            "broken yaml",
        )?;
        env.start(&["--path=overlays/prod"])?;
        wait_for(format!("Tracking:     main -> {}", &broken[..12])).await?;
        wait_for("Result:       Failed".into()).await?;
        wait_for("overlays/prod/deployment-prod.yaml".into()).await
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    env.kill();
    reader.join().expect("reader thread");
    outcome?;
    let text = seen.lock().unwrap().clone();
    assert!(
        text.find("Result:       Synced") < text.find("Result:       Failed"),
        "the first state, then the new one:\n{text}"
    );
    Ok(())
}
