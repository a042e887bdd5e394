//! Issue #14: discovery's "no such kind" was cached for the life of the process, so a
//! revision declaring a custom resource whose CRD was installed after the agent first looked
//! stayed refused until a restart. Now the answer expires (`MISSING_KIND_TTL`).

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use renderer::protocol::SyncResult;
use serde_json::json;

use crate::agent_harness::{AgentEnv, admin_apply};

#[tokio::test]
async fn a_crd_installed_after_the_agent_looked_is_used_without_a_restart() -> Result<()> {
    let mut env = AgentEnv::new("fault-crd").await?;
    // CRDs are cluster-wide: a group of this test's own.
    let group = format!("{}.faults.kubectl-gitops.test", env.ns.name());
    let commit = env.repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- gizmo.yaml\n"),
            (
                "app/gizmo.yaml",
                &format!("apiVersion: {group}/v1\nkind: Gizmo\nmetadata:\n  name: late\nspec:\n  size: 3\n"),
            ),
        ],
        "a Gizmo before its CRD exists",
    )?;
    env.start(&["--path=app", "--interval=1s"])?;
    let refused = env
        .wait_status(Duration::from_secs(60), |s| {
            s.result == SyncResult::Failed && s.message.contains("Gizmo")
        })
        .await?;
    eprintln!("before the CRD: {}", refused.message);

    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gizmos.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"kind": "Gizmo", "plural": "gizmos", "singular": "gizmo", "listKind": "GizmoList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    });
    let crds: Api<CustomResourceDefinition> = Api::all(env.admin().await?);
    let name = format!("gizmos.{group}");
    crds.patch(
        &name,
        &PatchParams::apply("test-admin").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(
            crds.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        ),
    )
    .await
    .context("CRD not established")??;
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "gitops-agent-gizmos"},
        "rules": [{"apiGroups": [group], "resources": ["gizmos"],
                   "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "gitops-agent-gizmos"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gitops-agent-gizmos"},
        "subjects": [{"kind": "ServiceAccount", "name": "gitops-agent", "namespace": env.ns.name()}]
    });
    admin_apply(&env.admin().await?, env.ns.name(), &[role, binding]).await?;

    // The same process, no restart: within the TTL and a few intervals.
    let result = env
        .wait_status(Duration::from_secs(40), |s| {
            s.result == SyncResult::Synced && s.last_applied_revision.as_deref() == Some(&commit)
        })
        .await;
    let live = env.get(&format!("{group}/v1"), "Gizmo", "late").await;
    let _ = crds.delete(&name, &DeleteParams::default()).await;
    result?;
    let live = live?.context("the Gizmo was not created")?;
    assert_eq!(live.data["spec"]["size"], 3);
    Ok(())
}
