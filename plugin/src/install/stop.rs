//! Stopping a running agent before what it manages is deleted.
//!
//! Deleting the Deployment does not stop the agent at once (its pod has a grace period, and an
//! agent may run elsewhere as the same ServiceAccount), and while it runs, self-heal recreates
//! every member deleted under it. So its RoleBinding goes first: from then on the API server
//! refuses its writes. Then its Deployment is scaled to zero and its pods are waited for.

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::cluster::live::{Kinds, object_key};
use crate::install::live::delete;
use crate::output::printer::Printer;

/// How long the agent's pods get to end once scaled down (their grace period is 30 s).
const POD_WAIT: Duration = Duration::from_secs(90);

/// Revokes the agent's RoleBindings and scales its Deployments to zero, waiting for their
/// pods to end.
pub async fn stop_agent(
    client: &kube::Client,
    namespace: &str,
    kinds: &Kinds,
    agent: &[Value],
    printer: &Printer,
) -> anyhow::Result<()> {
    for binding in agent.iter().filter(|o| o["kind"] == "RoleBinding") {
        delete(client, namespace, kinds, binding, false).await?;
        printer.info(&format!(
            "deleted {} (the agent can no longer write)",
            object_key(binding)
        ));
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for deployment in agent.iter().filter(|o| o["kind"] == "Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
        match deployments
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 0}})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("scaling Deployment {namespace}/{name} to zero"));
            }
        }
        let selector = match deployment["spec"]["selector"]["matchLabels"].as_object() {
            Some(labels) if !labels.is_empty() => labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        wait_for_no_pods(client, namespace, &selector, name, printer).await?;
    }
    Ok(())
}

async fn wait_for_no_pods(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    deployment: &str,
    printer: &Printer,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    loop {
        let left = pods
            .list(&ListParams::default().labels(selector))
            .await
            .with_context(|| format!("listing the agent's pods in namespace {namespace}"))?
            .items
            .len();
        if left == 0 {
            return Ok(());
        }
        if started.elapsed() > POD_WAIT {
            // Its RoleBinding is gone already: a pod still running cannot write.
            printer.warn(&format!(
                "{left} pods of Deployment {deployment} still exist after {}s; going on (the agent's RoleBinding is deleted)",
                POD_WAIT.as_secs()
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
