//! Break-glass the agent can trust: `--break-glass-max` clamps a long `until` (and says so), a
//! malformed one is not honoured (reconciled to Git and reported), and the optional admission
//! policy of `manifests/policies/` lets a user write only break-glass naming themselves and
//! within the maximum, judged by the real API server.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use renderer::protocol::{
    BREAK_GLASS_BY_ANNOTATION, BREAK_GLASS_FIELD_MANAGER, BREAK_GLASS_UNTIL_ANNOTATION, BreakGlass,
    SyncResult,
};
use serde_json::{Value, json};
use tests::cluster::{ADMIN_CONTEXT, TestNamespace, admin_client, kubeconfig_path};

use crate::agent_harness::load_yaml;
use crate::agent_sync::catalog_env;

const HOTFIX: &str = "registry.example.com/catalog-api:hotfix";

fn image(d: &Deployment) -> Option<String> {
    d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .image
        .clone()
}

fn break_glass(by: &str, since: Timestamp, duration: SignedDuration) -> BreakGlass {
    BreakGlass {
        by: by.into(),
        reason: "INC-7".into(),
        since,
        until: since + duration,
    }
}

/// Annotations plus a hotfix image, as `kubectl gitops break-glass --set-image` would write.
async fn hotfix(deployments: &Api<Deployment>, annotations: Value) -> Result<()> {
    let patch = json!({
        "metadata": {"annotations": annotations},
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": HOTFIX}]}}}
    });
    let params = PatchParams {
        field_manager: Some(BREAK_GLASS_FIELD_MANAGER.into()),
        ..Default::default()
    };
    deployments
        .patch("catalog-api", &params, &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

#[tokio::test]
async fn agent_clamps_long_break_glass_and_rejects_malformed() -> Result<()> {
    let (mut env, commit) = catalog_env("agent-bg-max").await?;
    env.start(&[
        "--path=overlays/prod",
        "--interval=2s",
        "--break-glass-max=15s",
    ])?;
    env.wait_synced(&commit).await?;
    let git_image = "registry.example.com/catalog-api:1.4.2";
    let deployments: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());

    // A year asked for: honoured for 15 s from `since`, and the clamp recorded.
    let since = Timestamp::now();
    let asked = break_glass("alice", since, SignedDuration::from_hours(24 * 365));
    hotfix(&deployments, serde_json::to_value(asked.to_annotations())?).await?;
    let held = env
        .wait_status(Duration::from_secs(20), |s| {
            s.break_glass.iter().any(|e| e.active)
        })
        .await?;
    let entry = &held.break_glass[0];
    let since_s = Timestamp::from_second(since.as_second())?;
    assert_eq!(
        entry.break_glass.until,
        since_s + SignedDuration::from_secs(15)
    );
    assert_eq!(
        entry.requested_until,
        Some(since_s + SignedDuration::from_hours(24 * 365))
    );
    assert_eq!(held.result, SyncResult::OutOfSync);
    assert!(
        held.message.contains("clamped by --break-glass-max"),
        "{}",
        held.message
    );
    assert_eq!(
        image(&deployments.get("catalog-api").await?).as_deref(),
        Some(HOTFIX)
    );

    // Past the maximum the agent puts Git back, though `until` says next year.
    env.eventually(
        "reverted at the clamped end",
        Duration::from_secs(30),
        || async {
            let d = deployments.get("catalog-api").await?;
            Ok((image(&d).as_deref() == Some(git_image)).then_some(()))
        },
    )
    .await?;
    let ended = env
        .wait_status(Duration::from_secs(20), |s| {
            s.break_glass.iter().all(|e| !e.active) && s.result == SyncResult::Synced
        })
        .await?;
    assert!(ended.break_glass[0].requested_until.is_some(), "{ended:#?}");
    assert!(Timestamp::now() >= since_s + SignedDuration::from_secs(15));

    // A malformed `until` pauses nothing: reverted at once, reported, annotations removed.
    let mut bad =
        break_glass("alice", Timestamp::now(), SignedDuration::from_mins(30)).to_annotations();
    bad.insert(BREAK_GLASS_UNTIL_ANNOTATION.into(), "tomorrow".into());
    hotfix(&deployments, serde_json::to_value(&bad)?).await?;
    let status = env
        .wait_status(Duration::from_secs(20), |s| {
            !s.break_glass_rejected.is_empty()
        })
        .await?;
    let rejected = &status.break_glass_rejected[0];
    assert_eq!(
        (rejected.kind.as_str(), rejected.name.as_str()),
        ("Deployment", "catalog-api")
    );
    assert!(
        rejected.message.contains(BREAK_GLASS_UNTIL_ANNOTATION)
            && rejected.message.contains("tomorrow"),
        "{status:#?}"
    );
    let live = deployments.get("catalog-api").await?;
    assert_eq!(
        image(&live).as_deref(),
        Some(git_image),
        "a malformed break-glass was honoured"
    );
    let annotations = live.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key(BREAK_GLASS_BY_ANNOTATION),
        "{annotations:?}"
    );
    Ok(())
}

/// A client of the admin that the API server sees as `user` (authorised by `system:masters`,
/// so only admission can say no).
async fn impersonating(user: &str) -> Result<Client> {
    let raw = Kubeconfig::read_from(kubeconfig_path()?)?;
    let options = KubeConfigOptions {
        context: Some(ADMIN_CONTEXT.to_owned()),
        ..KubeConfigOptions::default()
    };
    let mut config = Config::from_custom_kubeconfig(raw, &options).await?;
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(vec!["system:masters".into()]);
    Ok(Client::try_from(config)?)
}

/// The policy and binding of `manifests/policies/`, named for this namespace and bound to it
/// alone (other tests write break-glass annotations of their own at the same time).
fn policy_for(ns: &str) -> Result<Vec<Value>> {
    let mut objects = load_yaml("manifests/policies/break-glass.yaml")?;
    let name = format!("kubectl-gitops-break-glass-{ns}");
    for o in &mut objects {
        o["metadata"]["name"] = json!(name);
        if o["kind"] == "ValidatingAdmissionPolicyBinding" {
            o["spec"]["policyName"] = json!(name);
            o["spec"]["matchResources"] = json!({"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": ns}}});
        }
    }
    Ok(objects)
}

fn cluster_api(client: &Client, kind: &str) -> Api<DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    let plural = match kind {
        "ValidatingAdmissionPolicy" => "validatingadmissionpolicies".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    Api::all_with(
        client.clone(),
        &kube::discovery::ApiResource::from_gvk_with_plural(&gvk, &plural),
    )
}

/// Writes break-glass annotations on the ConfigMap as `client`; the denial message, if any.
async fn write(client: &Client, ns: &str, annotations: Value) -> Result<Option<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": annotations}});
    let params = PatchParams {
        field_manager: Some(BREAK_GLASS_FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.patch("app", &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => Ok(Some(s.message)),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn admission_policy_allows_only_your_own_bounded_break_glass() -> Result<()> {
    let ns = TestNamespace::create("bg-policy").await?;
    let admin = admin_client().await?;
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), ns.name());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "app"}}))?;
    cms.create(&PostParams::default(), &cm).await?;

    let objects = policy_for(ns.name())?;
    let name = objects[0]["metadata"]["name"]
        .as_str()
        .context("name")?
        .to_string();
    for o in &objects {
        cluster_api(&admin, o["kind"].as_str().context("kind")?)
            .patch(
                &name,
                &PatchParams::apply("test-admin").force(),
                &Patch::Apply(o),
            )
            .await
            .with_context(|| format!("applying {}", o["kind"]))?;
    }
    let result = judge(ns.name()).await;
    for kind in [
        "ValidatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicy",
    ] {
        let _ = cluster_api(&admin, kind)
            .delete(&name, &DeleteParams::default())
            .await;
    }
    result
}

async fn judge(ns: &str) -> Result<()> {
    let alice = impersonating("alice").await?;
    let bob = impersonating("bob").await?;
    let now = Timestamp::now();
    let ann = |bg: BreakGlass| serde_json::to_value(bg.to_annotations());

    // Alice writing Bob's name: denied once the API server has loaded the policy.
    let forged = ann(break_glass("bob", now, SignedDuration::from_hours(1)))?;
    let start = std::time::Instant::now();
    let denied = loop {
        if let Some(message) = write(&alice, ns, forged.clone()).await? {
            break message;
        }
        // The write went through before the policy was active: take it back and retry.
        let nulls: serde_json::Map<String, Value> = BreakGlass::annotation_keys()
            .iter()
            .map(|k| (k.to_string(), Value::Null))
            .collect();
        write(&admin_client().await?, ns, Value::Object(nulls)).await?;
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the policy never denied a forged break-glass-by");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        denied.contains("break-glass-by must name the user writing it (alice)"),
        "{denied}"
    );

    // Over the maximum, even naming yourself.
    let long = ann(break_glass("alice", now, SignedDuration::from_hours(48)))?;
    let message = write(&alice, ns, long).await?.context("48h allowed")?;
    assert!(message.contains("at most 24h"), "{message}");

    // Malformed `until`.
    let mut malformed = ann(break_glass("alice", now, SignedDuration::from_hours(1)))?;
    malformed[BREAK_GLASS_UNTIL_ANNOTATION] = json!("tomorrow");
    assert!(
        write(&alice, ns, malformed).await?.is_some(),
        "malformed until allowed"
    );

    // Half of the set.
    let partial = json!({BREAK_GLASS_BY_ANNOTATION: "alice"});
    let message = write(&alice, ns, partial)
        .await?
        .context("partial allowed")?;
    assert!(message.contains("all four annotations"), "{message}");

    // Her own, within the maximum: allowed.
    let own = ann(break_glass("alice", now, SignedDuration::from_hours(2)))?;
    assert_eq!(write(&alice, ns, own).await?, None);

    // Someone else changing the object leaves her break-glass alone: allowed.
    let api: Api<ConfigMap> = Api::namespaced(bob.clone(), ns);
    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"k": "v"}})),
    )
    .await
    .context("an unrelated change by another user was denied")?;

    // Bob cannot take it over, but removing it (as the agent does at expiry) is allowed.
    let takeover = ann(break_glass("alice", now, SignedDuration::from_hours(3)))?;
    assert!(
        write(&bob, ns, takeover).await?.is_some(),
        "bob extended alice's break-glass"
    );
    let nulls: serde_json::Map<String, Value> = BreakGlass::annotation_keys()
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    assert_eq!(write(&bob, ns, Value::Object(nulls)).await?, None);
    Ok(())
}
