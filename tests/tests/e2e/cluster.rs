//! The control plane is the real kube-apiserver: server-side apply, RBAC and TokenRequest.

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use tests::cluster::{
    TestNamespace, admin_client, client_for, dev_client, service_account_kubeconfig,
};

#[tokio::test]
async fn server_side_apply_records_the_field_manager() -> Result<()> {
    let ns = TestNamespace::create("ssa").await?;
    let api: Api<ConfigMap> = Api::namespaced(admin_client().await?, ns.name());
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "settings" },
        "data": { "greeting": "hello" },
    });
    let params = PatchParams::apply("gitops-test").force();
    let applied = api
        .patch("settings", &params, &Patch::Apply(&manifest))
        .await?;

    assert_eq!(
        applied
            .data
            .unwrap_or_default()
            .get("greeting")
            .map(String::as_str),
        Some("hello")
    );
    let managers = applied.metadata.managed_fields.unwrap_or_default();
    let ours: Vec<_> = managers
        .iter()
        .filter(|m| m.manager.as_deref() == Some("gitops-test"))
        .collect();
    assert_eq!(ours.len(), 1, "managedFields: {managers:?}");
    assert_eq!(ours[0].operation.as_deref(), Some("Apply"));
    let fields = ours[0]
        .fields_v1
        .as_ref()
        .map(|f| f.0.to_string())
        .unwrap_or_default();
    assert!(
        fields.contains("f:greeting"),
        "fieldsV1 of gitops-test: {fields}"
    );
    Ok(())
}

#[tokio::test]
async fn dev_user_is_forbidden() -> Result<()> {
    let ns = TestNamespace::create("rbac").await?;
    let pods: Api<Pod> = Api::namespaced(dev_client().await?, ns.name());
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains("\"dev\""), "{}", status.message);
        }
        other => panic!("dev user listed pods in {}: {other:?}", ns.name()),
    }
    // The same request as admin succeeds, so the 403 is RBAC, not a broken namespace.
    let admin_pods: Api<Pod> = Api::namespaced(admin_client().await?, ns.name());
    assert!(
        admin_pods
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn service_account_kubeconfig_authenticates_as_the_service_account() -> Result<()> {
    let ns = TestNamespace::create("sa").await?;
    let kubeconfig = service_account_kubeconfig(ns.name(), "agent").await?;
    let client = client_for(&kubeconfig, None).await?;
    // No Role is bound, so a real ServiceAccount identity is denied by name.
    let cms: Api<ConfigMap> = Api::namespaced(client, ns.name());
    match cms.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            let who = format!("system:serviceaccount:{}:agent", ns.name());
            assert!(status.message.contains(&who), "{}", status.message);
        }
        other => panic!("unbound ServiceAccount listed ConfigMaps: {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn test_namespace_is_deleted_on_drop() -> Result<()> {
    let ns = TestNamespace::create("drop").await?;
    let name = ns.name().to_owned();
    let namespaces: Api<Namespace> = Api::all(admin_client().await?);
    assert!(namespaces.get_opt(&name).await?.is_some());
    drop(ns);
    // The control plane runs the namespace controller, so deletion completes.
    for _ in 0..100 {
        if namespaces.get_opt(&name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("namespace {name} still exists 20s after TestNamespace was dropped");
}

/// What the agent's writes rely on (`agent/src/reconcile/object.rs`): a resourceVersion in a
/// forced server-side apply is a precondition. A stale one is refused with 409 and changes
/// nothing; the current one goes through; one of an object deleted since creates it again.
#[tokio::test]
async fn forced_apply_with_a_resource_version_is_conditional() -> Result<()> {
    let ns = TestNamespace::create("ssa-rv").await?;
    let api: Api<ConfigMap> = Api::namespaced(admin_client().await?, ns.name());
    let params = PatchParams::apply("gitops-test").force();
    let manifest = |value: &str, rv: Option<&str>| {
        let mut m = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": "settings" },
            "data": { "value": value },
        });
        if let Some(rv) = rv {
            m["metadata"]["resourceVersion"] = rv.into();
        }
        m
    };
    let first = api
        .patch("settings", &params, &Patch::Apply(manifest("1", None)))
        .await?;
    let judged = first.metadata.resource_version.clone().unwrap();
    let other = PatchParams {
        field_manager: Some("someone-else".into()),
        ..Default::default()
    };
    let changed = api
        .patch(
            "settings",
            &other,
            &Patch::Merge(json!({"metadata": {"annotations": {"held": "yes"}}})),
        )
        .await?;

    let stale = api
        .patch(
            "settings",
            &params,
            &Patch::Apply(manifest("2", Some(&judged))),
        )
        .await;
    assert!(
        matches!(&stale, Err(kube::Error::Api(s)) if s.code == 409),
        "{stale:?}"
    );
    let live = api.get("settings").await?;
    assert_eq!(
        live.metadata.resource_version,
        changed.metadata.resource_version
    );
    assert_eq!(live.data.unwrap_or_default()["value"], "1");

    // On the version just read it goes through, and the version is no field anyone owns.
    let current = live.metadata.resource_version.as_deref();
    let applied = api
        .patch("settings", &params, &Patch::Apply(manifest("2", current)))
        .await?;
    assert_eq!(applied.data.unwrap_or_default()["value"], "2");
    let owned = serde_json::to_string(&applied.metadata.managed_fields)?;
    assert!(!owned.contains("resourceVersion"), "{owned}");

    let rv = applied.metadata.resource_version.clone().unwrap();
    api.delete("settings", &Default::default()).await?;
    // An object deleted since is created again (a precondition guards an update, and a
    // deleted object holds no break-glass): Git wins as without it.
    let again = api
        .patch("settings", &params, &Patch::Apply(manifest("3", Some(&rv))))
        .await?;
    assert_eq!(again.data.unwrap_or_default()["value"], "3");
    assert_ne!(again.metadata.uid, applied.metadata.uid);
    Ok(())
}
