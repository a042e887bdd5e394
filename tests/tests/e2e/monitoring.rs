//! `manifests/monitoring/` checked with the real promtool, and every series its alerts, unit
//! tests and dashboard use found on the `/metrics` of a running agent.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;
use tests::promtool::{metric_names, run};

use crate::agent_harness::{AgentEnv, commit_settings, load_yaml};
use crate::agent_metrics::scrape;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .join("manifests/monitoring")
}

fn yaml(name: &str) -> Result<Value> {
    load_yaml(&format!("manifests/monitoring/{name}"))?
        .into_iter()
        .next()
        .with_context(|| format!("{name} is empty"))
}

fn dashboard() -> Result<Value> {
    let path = dir().join("dashboard.json");
    let text = std::fs::read_to_string(&path)?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn rules() -> Result<Vec<Value>> {
    let groups = yaml("rules.yaml")?["groups"].clone();
    Ok(groups
        .as_array()
        .context("groups")?
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect())
}

/// Every panel query, with Grafana's variables replaced by what they expand to.
fn dashboard_queries() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for panel in dashboard()?["panels"].as_array().context("panels")? {
        for target in panel["targets"].as_array().context("targets")? {
            let expr = target["expr"].as_str().context("expr")?;
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$namespace", ".*");
            let id = format!(
                "panel_{}_{}",
                panel["id"],
                target["refId"].as_str().unwrap_or("")
            );
            out.push((id, expr));
        }
    }
    Ok(out)
}

#[test]
fn monitoring_rules_pass_promtool_check_and_unit_tests() -> Result<()> {
    let (ok, out) = run(&dir(), &["check", "rules", "rules.yaml"], None)?;
    assert!(ok, "{out}");
    let alerts = rules()?.len();
    assert!(
        out.contains(&format!("SUCCESS: {alerts} rules found")),
        "{out}"
    );
    let (ok, out) = run(&dir(), &["test", "rules", "rules.test.yaml"], None)?;
    assert!(ok && out.contains("SUCCESS"), "{out}");
    Ok(())
}

#[test]
fn every_alert_has_a_unit_test_that_fires_it_with_namespace_and_revision() -> Result<()> {
    let tests = yaml("rules.test.yaml")?;
    let mut fired = BTreeSet::new();
    for test in tests["tests"].as_array().context("tests")? {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            for alert in case["exp_alerts"].as_array().into_iter().flatten() {
                let labels = &alert["exp_labels"];
                for key in ["namespace", "tracked_ref", "revision"] {
                    assert!(labels[key].is_string(), "{case} lacks {key}");
                }
                fired.insert(case["alertname"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    let alerts: BTreeSet<String> = rules()?
        .iter()
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    assert_eq!(alerts.len(), 7, "{alerts:?}");
    assert_eq!(fired, alerts, "alerts without a test that fires them");
    Ok(())
}

#[test]
fn prometheus_rule_holds_the_plain_rules() -> Result<()> {
    let cr = yaml("prometheusrule.yaml")?;
    assert_eq!(cr["kind"], "PrometheusRule");
    assert_eq!(cr["spec"]["groups"], yaml("rules.yaml")?["groups"]);
    Ok(())
}

#[test]
fn dashboard_queries_pass_promtool() -> Result<()> {
    let queries = dashboard_queries()?;
    let scratch = tempfile::tempdir()?;
    let file = |name: &str, queries: &[(String, String)]| -> Result<()> {
        let mut text = String::from("groups:\n- name: dashboard\n  rules:\n");
        for (id, expr) in queries {
            text.push_str(&format!(
                "  - record: dashboard:{id}\n    expr: {}\n",
                serde_json::to_string(expr)?
            ));
        }
        std::fs::write(scratch.path().join(name), text)?;
        Ok(())
    };
    file("dashboard.rules.yaml", &queries)?;
    let (ok, out) = run(
        scratch.path(),
        &["check", "rules", "dashboard.rules.yaml"],
        None,
    )?;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{out}"
    );
    assert!(queries.len() >= 8, "{queries:?}");
    // The same check fails on a broken query.
    file(
        "broken.rules.yaml",
        &[("broken".into(), "sum(rate(x[5m])".into())],
    )?;
    let (ok, out) = run(
        scratch.path(),
        &["check", "rules", "broken.rules.yaml"],
        None,
    )?;
    assert!(!ok, "{out}");
    Ok(())
}

/// Metric names of the exposition's samples.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn monitoring_uses_only_metrics_a_running_agent_exposes() -> Result<()> {
    let mut used = BTreeSet::new();
    for rule in rules()? {
        used.extend(metric_names(rule["expr"].as_str().context("expr")?));
    }
    for (_, expr) in dashboard_queries()? {
        used.extend(metric_names(&expr));
    }
    let tests = yaml("rules.test.yaml")?;
    for test in tests["tests"].as_array().context("tests")? {
        for input in test["input_series"].as_array().into_iter().flatten() {
            let series = input["series"].as_str().context("series")?;
            used.insert(series.split('{').next().unwrap_or(series).to_string());
        }
    }
    assert!(used.len() >= 8, "{used:?}");

    let mut env = AgentEnv::new("monitoring").await?;
    let commit = commit_settings(&env.repo, "one")?;
    env.start(&["--path=app"])?;
    env.wait_synced(&commit).await?;
    let text = scrape(env.listen_addr().await?)?;
    env.kill();
    let exposed = exposed(&text);
    let missing: Vec<&String> = used.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "not exposed by the agent: {missing:?}\n{text}"
    );

    // The exposition itself passes Prometheus's own linter (naming, units, HELP/TYPE).
    let (ok, out) = run(&dir(), &["check", "metrics"], Some(&text))?;
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}\n{text}"
    );
    Ok(())
}
