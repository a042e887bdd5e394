//! Privilege (issue #14): the agent's Role from `manifests/base`, bound to its ServiceAccount on
//! the real API server, no longer lets whatever Git declares grant itself more (no `escalate`,
//! no `bind`, no Role management), its Lease rule reaches only the `gitops-agent` Lease, and
//! the opt-in component `manifests/rbac-management` gives RBAC management back.

use anyhow::Result;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use tests::cluster::client_for;

use crate::agent_harness::{AgentEnv, admin_apply, dynamic_api};

/// A Role granting everything in the namespace: what a push would declare to escalate.
fn admin_role(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }))
    .unwrap()
}

fn lease(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {},
    }))
    .unwrap()
}

fn forbidden<T: std::fmt::Debug>(r: kube::Result<T>) -> bool {
    matches!(r, Err(kube::Error::Api(ref s)) if s.code == 403)
}

/// The Role of an overlay of `manifests/base` with the `rbac-management` component, rendered
/// by `kubectl kustomize` (the real tool, not our renderer).
fn role_with_rbac_management() -> Result<Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    // kustomize takes only relative paths to directories: the overlay lives in the workspace.
    let overlay = tempfile::Builder::new()
        .prefix(".e2e-rbac-overlay-")
        .tempdir_in(&root)?;
    let rel = |p: &str| format!("../{p}");
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "resources:\n- {}\ncomponents:\n- {}\n",
            rel("manifests/base"),
            rel("manifests/rbac-management")
        ),
    )?;
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(overlay.path())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let docs = renderer::yaml::parse_documents(&text)?;
    docs.into_iter()
        .map(|d| d.value)
        .find(|v| v["kind"] == "Role")
        .ok_or_else(|| anyhow::anyhow!("no Role rendered"))
}

#[tokio::test]
async fn agent_role_cannot_escalate_and_reaches_only_its_lease() -> Result<()> {
    let env = AgentEnv::new("agent-privilege").await?;
    let agent = client_for(env.kubeconfig(), None).await?;
    let ns = env.ns.name().to_string();
    let roles: Api<DynamicObject> =
        dynamic_api(&agent, &ns, "rbac.authorization.k8s.io/v1", "Role");
    assert!(
        forbidden(
            roles
                .create(&PostParams::default(), &admin_role("pwn"))
                .await
        ),
        "the agent's ServiceAccount may create a Role granting everything"
    );
    let leases: Api<DynamicObject> = dynamic_api(&agent, &ns, "coordination.k8s.io/v1", "Lease");
    leases
        .create(&PostParams::default(), &lease("gitops-agent"))
        .await?;
    leases.get("gitops-agent").await?;
    // Creating cannot be limited by name; reading or renewing another Lease can.
    leases
        .create(&PostParams::default(), &lease("someone-else"))
        .await?;
    assert!(forbidden(leases.get("someone-else").await));
    let mut other = lease("someone-else");
    other.metadata.resource_version = None;
    assert!(forbidden(
        leases
            .replace("someone-else", &PostParams::default(), &other)
            .await
    ));

    // Opting in gives RBAC management back.
    let admin = env.admin().await?;
    admin_apply(&admin, &ns, &[role_with_rbac_management()?]).await?;
    roles
        .create(&PostParams::default(), &admin_role("granted"))
        .await?;
    Ok(())
}
