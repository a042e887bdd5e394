//! `/metrics`, `/healthz` and `/readyz` of a running agent, scraped over HTTP while it works.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::agent_harness::{AgentEnv, http_request};

pub(crate) fn scrape(addr: SocketAddr) -> Result<String> {
    let (code, body) = http_request(addr, "GET", "/metrics", &[], b"")?;
    anyhow::ensure!(code == 200, "/metrics answered {code}: {body}");
    Ok(body)
}

/// The value of one series (name with labels, exactly as exposed).
fn value(text: &str, series: &str) -> Result<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .with_context(|| format!("{series} missing in\n{text}"))?
        .trim()
        .parse()
        .with_context(|| format!("{series} is not a number"))
}

fn configmap(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {value}\n")
}

const SYNCED: &str = "gitops_reconcile_total{result=\"Synced\"}";
const FAILED: &str = "gitops_reconcile_total{result=\"Failed\"}";
const APPLIED: &str = "gitops_objects_applied_total";
const PRUNED: &str = "gitops_objects_pruned_total";
const DRIFT: &str = "gitops_drift_corrections_total";
const LAST_SUCCESS: &str = "gitops_last_success_timestamp_seconds";
const DURATION_COUNT: &str = "gitops_reconcile_duration_seconds_count";
const DURATION_SUM: &str = "gitops_reconcile_duration_seconds_sum";

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

#[tokio::test]
async fn agent_metrics_follow_what_the_agent_does() -> Result<()> {
    let mut env = AgentEnv::new("agent-metrics").await?;
    let first = env.repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- a.yaml\n- b.yaml\n"),
            ("app/a.yaml", &configmap("a", "one")),
            ("app/b.yaml", &configmap("b", "one")),
        ],
        "a and b",
    )?;
    env.start(&["--path=app"])?;
    env.wait_synced(&first).await?;
    let addr = env.listen_addr().await?;

    // The status is written inside the reconcile, its metrics once it returns.
    env.eventually(
        "the first reconcile counted",
        Duration::from_secs(10),
        || async { Ok((value(&scrape(addr)?, SYNCED)? >= 1.0).then_some(())) },
    )
    .await?;
    let m = scrape(addr)?;
    let synced = value(&m, SYNCED)?;
    assert!(synced >= 1.0, "{m}");
    assert_eq!(value(&m, FAILED)?, 0.0, "{m}");
    assert_eq!(value(&m, APPLIED)?, 2.0, "{m}");
    assert_eq!(value(&m, PRUNED)?, 0.0, "{m}");
    assert_eq!(value(&m, DRIFT)?, 0.0, "{m}");
    let count = value(&m, DURATION_COUNT)?;
    assert!(count >= 1.0 && value(&m, DURATION_SUM)? > 0.0, "{m}");
    assert_eq!(
        value(&m, "gitops_reconcile_duration_seconds_bucket{le=\"+Inf\"}")?,
        count
    );
    let first_success = value(&m, LAST_SUCCESS)?;
    assert!(
        (now_secs() - first_success).abs() < 60.0,
        "last success {first_success} is not recent"
    );

    // Periodic resyncs (3 s) that change nothing: counted, timed, but nothing applied.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let m = scrape(addr)?;
    assert!(value(&m, SYNCED)? > synced, "{m}");
    assert!(value(&m, DURATION_COUNT)? > count, "{m}");
    assert!(value(&m, LAST_SUCCESS)? > first_success, "{m}");
    assert_eq!(
        value(&m, APPLIED)?,
        2.0,
        "a no-op resync counted applies\n{m}"
    );

    // b leaves Git and a changes: one prune, one apply.
    let second = env.repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- a.yaml\n"),
            ("app/a.yaml", &configmap("a", "two")),
        ],
        "drop b, change a",
    )?;
    env.wait_synced(&second).await?;
    let m = scrape(addr)?;
    assert_eq!(value(&m, PRUNED)?, 1.0, "{m}");
    assert_eq!(value(&m, APPLIED)?, 3.0, "{m}");

    // A broken commit: failed reconciles, and the last success stops moving.
    env.repo
        .commit_files(&[("app/a.yaml", "data: [unclosed\n")], "broken")?;
    env.eventually("a failed reconcile", Duration::from_secs(20), || async {
        Ok((value(&scrape(addr)?, FAILED)? >= 1.0).then_some(()))
    })
    .await?;
    let failing_since = value(&scrape(addr)?, LAST_SUCCESS)?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let m = scrape(addr)?;
    assert_eq!(value(&m, LAST_SUCCESS)?, failing_since, "{m}");
    assert!(value(&m, FAILED)? >= 2.0, "{m}");
    let fixed = env
        .repo
        .commit_files(&[("app/a.yaml", &configmap("a", "three"))], "fixed")?;
    env.wait_synced(&fixed).await?;
    env.eventually(
        "the fixed reconcile counted",
        Duration::from_secs(10),
        || async { Ok((value(&scrape(addr)?, LAST_SUCCESS)? > failing_since).then_some(())) },
    )
    .await?;
    let m = scrape(addr)?;
    assert!(value(&m, LAST_SUCCESS)? > failing_since, "{m}");
    assert_eq!(value(&m, APPLIED)?, 4.0, "{m}");
    assert_eq!(value(&m, DRIFT)?, 0.0, "{m}");

    // A new process with a long interval, so only self-heal can revert an edit: the counters
    // start afresh, the start-up sync applies nothing, and the edit is one drift correction.
    env.kill();
    env.start(&["--path=app", "--interval=10m"])?;
    let addr = env.listen_addr().await?;
    env.eventually("first reconcile", Duration::from_secs(30), || async {
        Ok((value(&scrape(addr)?, SYNCED)? >= 1.0).then_some(()))
    })
    .await?;
    assert_eq!(value(&scrape(addr)?, APPLIED)?, 0.0);
    let admin = env.admin().await?;
    env.api(&admin, "v1", "ConfigMap")
        .patch(
            "a",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"value": "by-hand"}})),
        )
        .await?;
    env.eventually("drift corrected", Duration::from_secs(15), || async {
        Ok((value(&scrape(addr)?, DRIFT)? == 1.0).then_some(()))
    })
    .await?;
    let live = env.get("v1", "ConfigMap", "a").await?.expect("a");
    assert_eq!(live.data["data"]["value"], "three");
    let m = scrape(addr)?;
    assert_eq!(value(&m, APPLIED)?, 0.0, "{m}");
    assert_eq!(value(&m, SYNCED)?, 1.0, "{m}");
    Ok(())
}

#[tokio::test]
async fn agent_is_live_at_once_but_ready_only_after_a_reconcile() -> Result<()> {
    let mut env = AgentEnv::new("agent-ready").await?;
    env.repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- a.yaml\n"),
            ("app/a.yaml", &configmap("a", "one")),
        ],
        "a",
    )?;
    // A Git server that accepts connections and never answers: the first fetch cannot finish.
    let silent = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/repo", silent.local_addr()?);
    env.start_with_url(&url, &["--path=app"])?;
    let addr = env.listen_addr().await?;
    for _ in 0..3 {
        let (code, _) = http_request(addr, "GET", "/healthz", &[], b"")?;
        assert_eq!(code, 200);
        let (code, body) = http_request(addr, "GET", "/readyz", &[], b"")?;
        assert_eq!(code, 503, "ready before any reconcile: {body}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    env.kill();
    drop(silent);

    let commit = env.repo.head()?;
    env.start(&["--path=app"])?;
    env.wait_synced(&commit).await?;
    let addr = env.listen_addr().await?;
    let (code, body) = http_request(addr, "GET", "/readyz", &[], b"")?;
    assert_eq!(code, 200, "{body}");
    let (code, _) = http_request(addr, "GET", "/healthz", &[], b"")?;
    assert_eq!(code, 200);
    let (code, _) = http_request(addr, "GET", "/nope", &[], b"")?;
    assert_eq!(code, 404);
    let (code, _) = http_request(addr, "POST", "/metrics", &[], b"")?;
    assert_eq!(code, 405);
    Ok(())
}

#[tokio::test]
async fn agent_is_not_ready_while_the_api_server_is_unreachable() -> Result<()> {
    let mut env = AgentEnv::new("agent-noapi").await?;
    crate::agent_harness::commit_settings(&env.repo, "unreachable")?;
    // A port nothing listens on: every request is refused.
    let dead = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut config = kube::config::Kubeconfig::read_from(env.kubeconfig())?;
    for cluster in &mut config.clusters {
        if let Some(c) = cluster.cluster.as_mut() {
            c.server = Some(format!("https://{dead}"));
        }
    }
    // JSON is YAML: the agent reads it like any kubeconfig.
    let path = env.scratch_file("dead-kubeconfig", &serde_json::to_string(&config)?)?;
    env.set_kubeconfig(path);
    env.start(&["--path=app"])?;
    let addr = env.listen_addr().await?;
    env.eventually("a failed attempt", Duration::from_secs(30), || async {
        Ok(env.logs().contains("sync failed").then_some(()))
    })
    .await?;
    for _ in 0..3 {
        let (code, _) = http_request(addr, "GET", "/healthz", &[], b"")?;
        assert_eq!(code, 200, "not live although the process runs");
        let (code, body) = http_request(addr, "GET", "/readyz", &[], b"")?;
        assert_eq!(code, 503, "ready without an API server: {body}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let m = scrape(addr)?;
    assert!(value(&m, FAILED)? >= 1.0, "{m}");
    assert_eq!(value(&m, LAST_SUCCESS)?, 0.0, "{m}");
    Ok(())
}
