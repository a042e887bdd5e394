//! Issue #14, a 429 storm from the real API server: API Priority and Fairness configured, as a
//! cluster admin would, to give the agent's ServiceAccount a priority level of its own with the
//! smallest share of seats (about 3 of the server's 600) and `Reject` instead of queueing, so
//! most of the agent's 16 concurrent requests are answered 429 at once. The agent must still
//! converge on a 300-object revision, losing nothing; the API server's own counter of
//! rejected requests for that priority level shows the storm was real.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use renderer::protocol::APPLYSET_PART_OF_LABEL;
use serde_json::json;

use crate::agent_harness::{AGENT_SA, AgentEnv};

const OBJECTS: usize = 300;

/// `apiserver_flowcontrol_rejected_requests_total` summed over reasons for `level`.
async fn rejected(client: &kube::Client, level: &str) -> Result<f64> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_flowcontrol_rejected_requests_total{")
                && l.contains(&format!("priority_level=\"{level}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

#[tokio::test]
async fn the_agent_converges_through_a_429_storm_from_priority_and_fairness() -> Result<()> {
    let mut env = AgentEnv::new("fault-429").await?;
    let admin = env.admin().await?;
    let name = format!("{}-throttle", env.ns.name());
    let level: PriorityLevelConfiguration = serde_json::from_value(json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
        "metadata": {"name": name},
        "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 1, "lendablePercent": 0, "borrowingLimitPercent": 0,
            "limitResponse": {"type": "Reject"}}}
    }))?;
    let schema: FlowSchema = serde_json::from_value(json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": name},
            "matchingPrecedence": 500,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{
                "subjects": [{"kind": "ServiceAccount",
                              "serviceAccount": {"name": AGENT_SA, "namespace": env.ns.name()}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                   "namespaces": ["*"], "clusterScope": true}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
            }]
        }
    }))?;
    let levels: Api<PriorityLevelConfiguration> = Api::all(admin.clone());
    let schemas: Api<FlowSchema> = Api::all(admin.clone());
    levels.create(&PostParams::default(), &level).await?;
    schemas.create(&PostParams::default(), &schema).await?;
    let cleanup = || async {
        let _ = schemas.delete(&name, &DeleteParams::default()).await;
        let _ = levels.delete(&name, &DeleteParams::default()).await;
    };
    // The API server picks configuration changes up asynchronously.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let docs: Vec<String> = (0..OBJECTS)
        .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\ndata:\n  i: \"{i}\"\n"))
        .collect();
    let commit = env.repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- all.yaml\n"),
            ("app/all.yaml", &docs.join("---\n")),
        ],
        "300 objects",
    )?;
    let before = rejected(&admin, &name).await?;
    let started = Instant::now();
    env.start(&["--path=app", "--interval=1s"])?;
    let synced = env
        .wait_status(Duration::from_secs(150), |s| {
            s.result == renderer::protocol::SyncResult::Synced
                && s.last_applied_revision.as_deref() == Some(commit.as_str())
        })
        .await;
    let took = started.elapsed();
    let storm = rejected(&admin, &name).await? - before;
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), env.ns.name());
    let members = cms
        .list(&ListParams::default().labels(APPLYSET_PART_OF_LABEL))
        .await?
        .items
        .len();
    cleanup().await;
    synced.with_context(|| format!("{storm} requests rejected with 429"))?;
    eprintln!(
        "fault_throttle: synced {OBJECTS} objects in {took:?} through {storm} rejected (429) requests"
    );
    assert!(
        storm >= 10.0,
        "only {storm} requests were rejected: no storm"
    );
    assert_eq!(members, OBJECTS, "objects lost");
    Ok(())
}
