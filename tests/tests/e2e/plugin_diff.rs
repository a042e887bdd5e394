//! `kubectl gitops diff`: nothing to report right after a sync; a `kubectl set image` is
//! harmful drift, an uncommitted edit of a field the agent owns is a pending change, and a
//! field the agent was told to ignore (`--ignore-field`) is expected.

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::agent_harness::AgentEnv;
use crate::agent_sync::catalog_env;
use crate::plugin_harness::{kubectl_set_image, plugin, synced_catalog};

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

#[tokio::test]
async fn plugin_diff_classifies_drift_and_pending_changes() -> Result<()> {
    let (env, _) = synced_catalog("plugin-diff").await?;

    let out = plugin(&env, &["diff"])?;
    assert_eq!(out.code, 0, "in sync right after the agent's sync\n{out}");
    assert!(
        out.stdout
            .contains("0 to create, 0 to change, 0 to prune, 4 unchanged"),
        "{out}"
    );

    kubectl_set_image(&env, "registry.example.com/catalog-api:hotfix").await?;
    let out = plugin(&env, &["diff", "-o", "json"])?;
    assert_eq!(out.code, 1, "{out}");
    let report = out.json()?;
    let deploy = object(&report, "Deployment", "catalog-api");
    assert_eq!(deploy["action"], "change", "{out}");
    assert_eq!(deploy["class"], "harmfulDrift", "{out}");
    let image = &deploy["fields"][0];
    assert_eq!(
        image["pointer"], "/spec/template/spec/containers/0/image",
        "{out}"
    );
    assert_eq!(image["live"], "registry.example.com/catalog-api:hotfix");
    assert_eq!(image["git"], "registry.example.com/catalog-api:1.4.2");
    assert!(
        image["managers"]
            .as_array()
            .unwrap()
            .contains(&"kubectl-set".into()),
        "{out}"
    );
    assert_eq!(
        object(&report, "Service", "catalog-api")["action"],
        "unchanged"
    );
    assert_eq!(report["summary"]["harmfulDrift"], 1);

    let text = plugin(&env, &["diff"])?;
    assert_eq!(text.code, 1, "{text}");
    assert!(
        text.stdout
            .contains("# Deployment/catalog-api: change (harmful drift)"),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("-        image: registry.example.com/catalog-api:hotfix"),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("+        image: registry.example.com/catalog-api:1.4.2"),
        "{text}"
    );

    // An uncommitted edit in the working tree: Git is ahead of the agent for that field.
    let path = env.repo.path().join("overlays/prod/deployment-prod.yaml");
    let patch = std::fs::read_to_string(&path)?.replace("memory: 512Mi", "memory: 1Gi");
    env.repo
        .write("overlays/prod/deployment-prod.yaml", &patch)?;
    let report = plugin(&env, &["diff", "overlays/prod", "-o", "json"])?.json()?;
    let deploy = object(&report, "Deployment", "catalog-api");
    let memory = deploy["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["pointer"] == "/spec/template/spec/containers/0/resources/limits/memory")
        .unwrap_or_else(|| panic!("memory not reported: {deploy:#}"));
    assert_eq!(memory["class"], "pending", "{deploy:#}");
    assert_eq!(
        deploy["class"], "harmfulDrift",
        "the most urgent class wins"
    );
    Ok(())
}

/// What `kubectl scale` sends: the replica count under its own field manager.
async fn kubectl_scale(env: &AgentEnv, replicas: i32) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(env.admin().await?, env.ns.name());
    let params = PatchParams {
        field_manager: Some("kubectl-scale".into()),
        ..Default::default()
    };
    deployments
        .patch(
            "catalog-api",
            &params,
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn plugin_diff_honours_the_agents_ignore_field_flags() -> Result<()> {
    let (mut env, commit) = catalog_env("plugin-diff-ignore").await?;
    env.start(&[
        "--path=overlays/prod",
        "--ignore-field=Deployment:/spec/replicas",
    ])?;
    let status = env.wait_synced(&commit).await?;
    assert_eq!(status.ignore_fields, ["Deployment:/spec/replicas"]);
    env.kill();

    kubectl_scale(&env, 7).await?;
    let out = plugin(&env, &["diff", "-o", "json"])?;
    assert_eq!(out.code, 0, "an ignored field is not a change\n{out}");
    let report = out.json()?;
    let deploy = object(&report, "Deployment", "catalog-api");
    assert_eq!(deploy["action"], "unchanged", "{out}");
    assert_eq!(deploy["class"], "expected", "{out}");
    let replicas = &deploy["fields"][0];
    assert_eq!(replicas["pointer"], "/spec/replicas", "{out}");
    assert_eq!(
        (&replicas["git"], &replicas["live"]),
        (&json!(3), &json!(7))
    );
    assert_eq!(replicas["class"], "expected");
    assert_eq!(
        replicas["ignoredBy"],
        "the agent runs with --ignore-field Deployment:/spec/replicas"
    );
    assert!(
        replicas["managers"]
            .as_array()
            .unwrap()
            .contains(&"kubectl-scale".into()),
        "{out}"
    );
    assert_eq!(report["summary"]["expected"], 1, "{out}");

    let text = plugin(&env, &["diff"])?;
    assert_eq!(text.code, 0, "{text}");
    assert!(
        text.stdout.contains(
            "#   /spec/replicas: live 7 -> git 3 (expected: ignored, the agent runs with --ignore-field Deployment:/spec/replicas)"
        ),
        "{text}"
    );

    // explain reads the same rule from the agent's status.
    let out = plugin(
        &env,
        &[
            "explain",
            "deployment/catalog-api",
            "spec.replicas",
            "-o",
            "json",
        ],
    )?;
    let json = out.json()?;
    let field = &json["fields"][0];
    assert_eq!(field["verdict"], "ignored", "{out}");
    assert!(
        field["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("--ignore-field Deployment:/spec/replicas"),
        "{out}"
    );
    Ok(())
}
