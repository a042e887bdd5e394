//! Health of custom resources: a CRD-based kind judged by its standard conditions, and one
//! judged by a user's CEL rule from the agent's ConfigMap. No controller exists for these
//! made-up kinds, so the test plays their operator: it writes their status through the
//! status subresource, as an operator would, and the agent's watches re-judge them.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use renderer::protocol::SyncStatus;
use serde_json::{Value, json};

use crate::agent_harness::{AgentEnv, admin_apply};

const GROUP: &str = "health.kubectl-gitops.test";

fn crd(kind: &str) -> Value {
    let plural = format!("{}s", kind.to_lowercase());
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{GROUP}")},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

async fn install_crds(env: &AgentEnv) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(env.admin().await?);
    for kind in ["Widget", "Gadget"] {
        let body = crd(kind);
        let name = body["metadata"]["name"].as_str().unwrap().to_string();
        crds.patch(
            &name,
            &PatchParams::apply("test-admin").force(),
            &Patch::Apply(&body),
        )
        .await?;
        let established = kube::runtime::wait::await_condition(
            crds.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .context("CRD not established")??;
    }
    // The agent's Role extended for the new kinds, as manifests/README.md says to.
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "gitops-agent-health-kinds"},
        "rules": [{"apiGroups": [GROUP], "resources": ["widgets", "gadgets"],
                   "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "gitops-agent-health-kinds"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gitops-agent-health-kinds"},
        "subjects": [{"kind": "ServiceAccount", "name": "gitops-agent", "namespace": env.ns.name()}]
    });
    admin_apply(&env.admin().await?, env.ns.name(), &[role, binding]).await
}

const RULES: &str = "- apiVersion: health.kubectl-gitops.test/v1
  kind: Gadget
  inProgress: \"has(status.phase) && status.phase == 'Provisioning'\"
  failed: \"has(status.phase) && status.phase == 'Broken'\"
  current: \"has(status.phase) && status.phase == 'Running'\"
";

fn entry<'a>(s: &'a SyncStatus, kind: &str) -> Option<(&'a str, &'a str)> {
    s.health
        .iter()
        .find(|h| h.kind == kind)
        .map(|h| (h.state.as_str(), h.message.as_str()))
}

async fn set_status(env: &AgentEnv, kind: &str, name: &str, status: Value) -> Result<()> {
    let api = env.api(&env.admin().await?, &format!("{GROUP}/v1"), kind);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn agent_judges_custom_resources_by_conditions_and_cel_rules() -> Result<()> {
    let mut env = AgentEnv::new("agent-health-cr").await?;
    install_crds(&env).await?;
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gitops-agent-health\ndata:\n  rules.yaml: |\n{}",
        RULES
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let commit = env.repo.commit_files(
        &[
            (
                "app/kustomization.yaml",
                "resources:\n- widget.yaml\n- gadget.yaml\n- rules.yaml\n",
            ),
            (
                "app/widget.yaml",
                &format!(
                    "apiVersion: {GROUP}/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 1\n"
                ),
            ),
            (
                "app/gadget.yaml",
                &format!(
                    "apiVersion: {GROUP}/v1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  size: 1\n"
                ),
            ),
            ("app/rules.yaml", &cm),
        ],
        "custom resources and a health rule",
    )?;
    env.start(&["--path=app", "--interval=1m"])?;
    env.wait_synced(&commit).await?;

    // No status yet: in progress, not Healthy, for the settle period.
    let s = env
        .wait_status(Duration::from_secs(20), |s| {
            entry(s, "Widget").is_some() && entry(s, "Gadget").is_some()
        })
        .await?;
    let (state, message) = entry(&s, "Widget").unwrap();
    assert_eq!(state, "Progressing", "{s:#?}");
    assert!(message.contains("report a status"), "{message}");
    assert_eq!(entry(&s, "Gadget").unwrap().0, "Progressing", "{s:#?}");

    // The Widget's operator reports Stalled, then Ready: the watch re-judges it each time.
    set_status(&env, "Widget", "w", json!({"observedGeneration": 1, "conditions": [
        {"type": "Stalled", "status": "True", "reason": "QuotaExceeded", "message": "no capacity"}]})).await?;
    env.wait_status(Duration::from_secs(20), |s| {
        entry(s, "Widget") == Some(("Degraded", "Stalled: QuotaExceeded: no capacity"))
    })
    .await?;
    set_status(
        &env,
        "Widget",
        "w",
        json!({"observedGeneration": 1, "conditions": [
        {"type": "Stalled", "status": "False"},
        {"type": "Ready", "status": "True", "reason": "Provisioned"}]}),
    )
    .await?;
    env.wait_status(Duration::from_secs(20), |s| {
        entry(s, "Widget").is_some_and(|(state, _)| state == "Healthy")
    })
    .await?;

    // The Gadget follows the CEL rule from the ConfigMap Git manages.
    set_status(&env, "Gadget", "g", json!({"phase": "Broken"})).await?;
    let s = env
        .wait_status(Duration::from_secs(20), |s| {
            entry(s, "Gadget").is_some_and(|(state, _)| state == "Degraded")
        })
        .await?;
    assert!(entry(&s, "Gadget").unwrap().1.contains("failed"), "{s:#?}");
    set_status(&env, "Gadget", "g", json!({"phase": "Running"})).await?;
    env.wait_status(Duration::from_secs(20), |s| {
        entry(s, "Gadget").is_some_and(|(state, _)| state == "Healthy")
            && s.health.iter().all(|h| h.state == "Healthy")
    })
    .await?;
    env.kill();
    Ok(())
}
