//! Drift told exactly (issue #13): `diff` predicts what the agent does (a field removed from
//! Git is a removal, then the agent removes it), foreign additions are their own class and are
//! removed only when asked, drift has a history, the render digest proves what was applied,
//! and ignore rules (flag and live annotation) hold with a running agent.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::plugin_harness::{kubectl_set_image, plugin, synced_catalog};

const PROD_PATCH: &str = "overlays/prod/deployment-prod.yaml";

fn object<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report["objects"]
        .as_array()
        .and_then(|objects| {
            objects
                .iter()
                .find(|o| o["kind"] == kind && o["name"] == name)
        })
        .unwrap_or_else(|| panic!("{kind}/{name} not in {report:#}"))
}

fn container<'a>(deploy: &'a Value, name: &str) -> Option<&'a Value> {
    deploy["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

async fn live_deployment(env: &crate::agent_harness::AgentEnv) -> Result<Value> {
    let deploy = env
        .get("apps/v1", "Deployment", "catalog-api")
        .await?
        .expect("the deployment exists");
    Ok(serde_json::to_value(deploy)?)
}

#[tokio::test]
async fn drift_a_field_removed_from_git_is_predicted_then_removed() -> Result<()> {
    let (mut env, _) = synced_catalog("drift-removal").await?;
    let live = live_deployment(&env).await?;
    assert_eq!(
        container(&live, "api").unwrap()["resources"]["limits"]["cpu"],
        "1"
    );

    // The prod overlay no longer annotates the Service's tier: the agent owns the annotation,
    // so its apply drops it.
    let kustomization = "overlays/prod/kustomization.yaml";
    let text = std::fs::read_to_string(env.repo.path().join(kustomization))?;
    let tier_patch = "- target:\n    kind: Service\n    name: catalog-api\n  patch: |-\n    - op: add\n      path: /metadata/annotations/gitops.example.com~1tier\n      value: critical\n";
    let edited = text.replace(tier_patch, "");
    assert_ne!(edited, text, "the fixture annotates the tier");
    env.repo.write(kustomization, &edited)?;
    let svc = env.get("v1", "Service", "catalog-api").await?.unwrap();
    assert_eq!(
        svc.metadata.annotations.unwrap_or_default()["gitops.example.com/tier"],
        "critical"
    );

    let out = plugin(&env, &["diff", "overlays/prod", "-o", "json"])?;
    assert_eq!(out.code, 1, "a removal is a change\n{out}");
    let report = out.json()?;
    let svc = object(&report, "Service", "catalog-api");
    assert_eq!(svc["action"], "change", "{svc:#}");
    let removed: Vec<&Value> = svc["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["removed"] == true)
        .collect();
    assert_eq!(removed.len(), 1, "{svc:#}");
    assert_eq!(
        removed[0]["pointer"],
        "/metadata/annotations/gitops.example.com~1tier"
    );
    assert_eq!(removed[0]["live"], "critical");
    assert_eq!(
        object(&report, "Deployment", "catalog-api")["action"],
        "unchanged"
    );
    assert_eq!(removed[0]["class"], "pending");
    let text = plugin(&env, &["diff", "overlays/prod"])?;
    assert!(
        text.stdout.contains(
            "/metadata/annotations/gitops.example.com~1tier: removed (Git no longer sets it)"
        ),
        "{text}"
    );

    // The agent then does exactly that.
    let commit = env.repo.commit("drop the tier annotation")?;
    env.start(&["--path=overlays/prod"])?;
    env.wait_synced(&commit).await?;
    env.kill();
    let svc = env.get("v1", "Service", "catalog-api").await?.unwrap();
    let annotations = svc.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("gitops.example.com/tier"),
        "{annotations:?}"
    );
    assert_eq!(annotations["gitops.example.com/environment"], "prod");
    let out = plugin(&env, &["diff", "overlays/prod"])?;
    assert_eq!(out.code, 0, "nothing left to predict\n{out}");
    assert!(out.stdout.contains("is the one the agent applied"), "{out}");
    Ok(())
}

/// What a person's `kubectl edit` adds: an env var and a privileged-ish debugging sidecar.
async fn hand_edit_foreign(env: &crate::agent_harness::AgentEnv) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "api", "env": [{"name": "DEBUG", "value": "1"}]},
        {"name": "debug", "image": "registry.example.com/netshoot:1",
         "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}
    ]}}}});
    let params = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    deployments
        .patch("catalog-api", &params, &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

fn foreign_fields(report: &Value) -> Vec<Value> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["fields"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["class"] == "foreign")
        .collect()
}

#[tokio::test]
async fn drift_foreign_additions_are_reported_and_removed_only_when_asked() -> Result<()> {
    let (mut env, commit) = synced_catalog("drift-foreign").await?;
    hand_edit_foreign(&env).await?;
    let live = live_deployment(&env).await?;
    let sidecar_index = live["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == "debug")
        .expect("the sidecar was added");
    let api_index = 1 - sidecar_index;

    let out = plugin(&env, &["diff", "-o", "json"])?;
    assert_eq!(out.code, 1, "foreign additions are differences\n{out}");
    let report = out.json()?;
    let foreign = foreign_fields(&report);
    // Exactly the two additions: none of the fields the API server defaulted in the sidecar
    // (imagePullPolicy, terminationMessagePath, ...) or anywhere else is reported on its own.
    assert_eq!(foreign.len(), 2, "{report:#}");
    let env_var = foreign
        .iter()
        .find(|f| f["pointer"] == format!("/spec/template/spec/containers/{api_index}/env"))
        .unwrap_or_else(|| panic!("env not reported: {report:#}"));
    assert_eq!(env_var["managers"], json!(["kubectl-edit"]));
    assert!(env_var["since"].is_string(), "{env_var}");
    assert!(env_var.get("sensitive").is_none(), "{env_var}");
    let sidecar = foreign
        .iter()
        .find(|f| f["pointer"] == format!("/spec/template/spec/containers/{sidecar_index}"))
        .unwrap_or_else(|| panic!("sidecar not reported: {report:#}"));
    assert_eq!(sidecar["managers"], json!(["kubectl-edit"]));
    assert_eq!(
        sidecar["sensitive"],
        json!(["new container debug", "adds capabilities NET_ADMIN"])
    );
    assert_eq!(
        object(&report, "Deployment", "catalog-api")["class"],
        "foreign"
    );
    assert_eq!(report["summary"]["foreign"], 1);
    let text = plugin(&env, &["diff"])?;
    assert!(
        text.stdout.contains(&format!(
            "/spec/template/spec/containers/{sidecar_index}: added live by kubectl-edit at "
        )) && text
            .stdout
            .contains("(foreign addition, security-sensitive: new container debug, adds capabilities NET_ADMIN)"),
        "{text}"
    );

    let out = plugin(&env, &["explain", "deployment/catalog-api", "-o", "json"])?;
    let explained = out.json()?;
    let listed = explained["foreign"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{explained:#}");
    assert!(
        listed
            .iter()
            .all(|f| f["managers"] == json!(["kubectl-edit"]))
    );

    // The agent reports them and leaves them in place without being asked.
    env.start(&["--path=overlays/prod", "--interval=1s"])?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| s.foreign.len() == 2)
        .await?;
    assert!(
        status
            .foreign
            .iter()
            .all(|f| f.manager == "kubectl-edit" && !f.removed)
    );
    assert_eq!(
        status
            .foreign
            .iter()
            .filter(|f| !f.sensitive.is_empty())
            .count(),
        1,
        "{status:#?}"
    );
    let out = plugin(&env, &["status", "-o", "json"])?;
    let shown = out.json()?;
    assert_eq!(shown["foreign"].as_array().unwrap().len(), 2, "{out}");
    let text = plugin(&env, &["status"])?;
    assert!(
        text.stdout
            .contains("Foreign additions (not in Git, added live):")
            && text
                .stdout
                .contains("security-sensitive: new container debug"),
        "{text}"
    );
    let (_, metrics) =
        crate::agent_harness::http_request(env.listen_addr().await?, "GET", "/metrics", &[], b"")?;
    assert!(
        metrics.contains("gitops_foreign_additions{sensitive=\"true\"} 1")
            && metrics.contains("gitops_foreign_additions{sensitive=\"false\"} 1"),
        "{metrics}"
    );
    let live = live_deployment(&env).await?;
    assert!(container(&live, "debug").is_some(), "left in place");
    env.kill();

    // Asked to, it removes exactly those two, nothing else.
    let before = live_deployment(&env).await?;
    env.start(&["--path=overlays/prod", "--interval=1s", "--remove-foreign"])?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.foreign.len() == 2 && s.foreign.iter().all(|f| f.removed)
        })
        .await?;
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(commit.as_str())
    );
    env.kill();
    let after = live_deployment(&env).await?;
    let containers = after["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{after:#}");
    let mut expected = container(&before, "api").unwrap().clone();
    expected.as_object_mut().unwrap().remove("env");
    assert_eq!(&containers[0], &expected, "only the env var went");

    let out = plugin(&env, &["history", "--drift", "-o", "json"])?;
    let history = out.json()?;
    let actions: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"foreign") && actions.contains(&"foreignRemoved"),
        "{history:#}"
    );
    let text = plugin(&env, &["history", "--drift"])?;
    assert!(
        text.stdout
            .contains("Deployment/catalog-api  foreign, removed  by kubectl-edit"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn drift_render_digest_is_the_applied_one() -> Result<()> {
    let (env, commit) = synced_catalog("drift-digest").await?;
    let status = env.status().await?.expect("status");
    let applied = status
        .applied_digest
        .clone()
        .expect("the agent publishes it");
    assert_eq!(applied.len(), 64, "hex SHA-256: {applied}");
    let out = plugin(
        &env,
        &["render", "overlays/prod", "--revision", &commit, "--digest"],
    )?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout.trim(), applied);
    let shown = plugin(&env, &["status", "-o", "json"])?.json()?;
    assert_eq!(shown["appliedDigest"], applied.as_str());
    // A local edit changes the digest, and diff says the render is not the applied one.
    let text = std::fs::read_to_string(env.repo.path().join(PROD_PATCH))?;
    env.repo
        .write(PROD_PATCH, &text.replace("replicas: 3", "replicas: 4"))?;
    let local = plugin(&env, &["render", "overlays/prod", "--digest"])?;
    assert_ne!(local.stdout.trim(), applied);
    let report = plugin(&env, &["diff", "overlays/prod", "-o", "json"])?.json()?;
    assert_eq!(report["matchesApplied"], false);
    assert_eq!(report["renderDigest"], local.stdout.trim());
    Ok(())
}

#[tokio::test]
async fn drift_ignore_rules_hold_with_a_running_agent() -> Result<()> {
    let (mut env, _) = synced_catalog("drift-ignore").await?;
    let client = env.admin().await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), env.ns.name());
    let by = |manager: &str| PatchParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    // Scaled by hand (ignored by the flag), and the Service annotated live to leave its tier
    // annotation alone, which is then changed by hand.
    deployments
        .patch(
            "catalog-api",
            &by("kubectl-scale"),
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await?;
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), env.ns.name());
    services
        .patch(
            "catalog-api",
            &by("kubectl-annotate"),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "kubectl-gitops.dev/ignore-fields": "/metadata/annotations/gitops.example.com~1tier",
                "gitops.example.com/tier": "best-effort"
            }}})),
        )
        .await?;
    env.start(&[
        "--path=overlays/prod",
        "--interval=1s",
        "--ignore-field=Deployment:/spec/replicas",
    ])?;
    // A change the agent does repair, to prove it is running and resyncing.
    kubectl_set_image(&env, "registry.example.com/catalog-api:hotfix").await?;
    env.eventually("the image is reverted", Duration::from_secs(30), || async {
        let live = live_deployment(&env).await?;
        Ok(
            (container(&live, "api").unwrap()["image"] == "registry.example.com/catalog-api:1.4.2")
                .then_some(()),
        )
    })
    .await?;
    // Scaled again by hand while the agent watches: the ignore rule holds and the drift
    // history records it as ignored. A break-glass on the Service is held and recorded too.
    deployments
        .patch(
            "catalog-api",
            &by("kubectl-scale"),
            &Patch::Merge(json!({"spec": {"replicas": 8}})),
        )
        .await?;
    let now = jiff::Timestamp::now();
    let until = now + jiff::SignedDuration::from_mins(30);
    services
        .patch(
            "catalog-api",
            &by("kubectl-gitops-break-glass"),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "kubectl-gitops.dev/break-glass-by": "oncall@example.com",
                "kubectl-gitops.dev/break-glass-reason": "drift history test",
                "kubectl-gitops.dev/break-glass-since": now.to_string(),
                "kubectl-gitops.dev/break-glass-until": until.to_string(),
                "gitops.example.com/hotfix": "yes"
            }}})),
        )
        .await?;
    // Resyncs and the watch record both; a loaded machine takes longer than a few seconds, so
    // poll the history (sleeping between polls, as this runtime also serves the agent's Git).
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let history = plugin(&env, &["history", "--drift", "-o", "json"])?.json()?;
        let has = |action: &str, kind: &str| {
            history["events"].as_array().is_some_and(|events| {
                events.iter().any(|e| {
                    e["action"] == action && e["kind"] == kind && e["name"] == "catalog-api"
                })
            })
        };
        if has("ignored", "Deployment") && has("heldByBreakGlass", "Service") {
            break;
        }
    }
    let live = live_deployment(&env).await?;
    assert_eq!(
        live["spec"]["replicas"], 8,
        "the flag leaves replicas alone"
    );
    let history = plugin(&env, &["history", "--drift", "-o", "json"])?.json()?;
    let recorded = |action: &str, kind: &str| {
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action && e["kind"] == kind && e["name"] == "catalog-api")
            .cloned()
            .unwrap_or_else(|| panic!("no {action} of {kind}/catalog-api recorded: {history:#}"))
    };
    let ignored = recorded("ignored", "Deployment");
    assert_eq!(ignored["paths"], json!(["/spec/replicas"]), "{ignored}");
    recorded("heldByBreakGlass", "Service");
    let text = plugin(&env, &["history", "--drift"])?;
    assert!(text.stdout.contains("ignored"), "{text}");
    // The break-glass ends by hand: its annotations and the hotfix go, so `diff` below compares
    // against Git alone.
    services
        .patch(
            "catalog-api",
            &by("kubectl-gitops-break-glass"),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "kubectl-gitops.dev/break-glass-by": null,
                "kubectl-gitops.dev/break-glass-reason": null,
                "kubectl-gitops.dev/break-glass-since": null,
                "kubectl-gitops.dev/break-glass-until": null,
                "gitops.example.com/hotfix": null
            }}})),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        container(&live, "api").unwrap()["image"],
        "registry.example.com/catalog-api:1.4.2"
    );
    let svc = serde_json::to_value(services.get("catalog-api").await?)?;
    assert_eq!(
        svc["metadata"]["annotations"]["gitops.example.com/tier"], "best-effort",
        "the live annotation leaves the field alone: {svc:#}"
    );
    // The plugin predicts the same: nothing to change.
    env.kill();
    let out = plugin(&env, &["diff"])?;
    assert_eq!(out.code, 0, "{out}");
    let history = plugin(&env, &["history", "--drift", "-o", "json"])?.json()?;
    let repaired = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "repaired")
        .unwrap_or_else(|| panic!("no repair recorded: {history:#}"));
    assert_eq!(repaired["manager"], "kubectl-set", "{repaired}");
    assert_eq!(
        repaired["paths"],
        json!(["/spec/template/spec/containers/0/image"])
    );
    Ok(())
}
