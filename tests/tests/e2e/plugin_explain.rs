//! `kubectl gitops explain`: file:line and commit for fields set in the base, by a prod patch
//! and by `images`; an HPA-owned replica count is ignored; a `kubectl set image` is drift.

use anyhow::Result;
use serde_json::{Value, json};

use crate::agent_harness::admin_apply;
use crate::agent_sync::catalog_env;
use crate::plugin_harness::{kubectl_set_image, plugin};

fn field<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["path"] == path))
        .unwrap_or_else(|| panic!("{path} not in {report:#}"))
}

#[tokio::test]
async fn plugin_explain_names_file_line_commit_owner_and_verdict() -> Result<()> {
    let (mut env, first) = catalog_env("plugin-explain").await?;
    let prod = std::fs::read_to_string(env.repo.path().join("overlays/prod/deployment-prod.yaml"))?;
    let second = env.repo.commit_files(
        &[(
            "overlays/prod/deployment-prod.yaml",
            &prod.replace("replicas: 3", "replicas: 4"),
        )],
        "prod: 4 replicas",
    )?;
    env.start(&["--path=overlays/prod"])?;
    env.wait_synced(&second).await?;
    env.kill();

    // Set in the base, untouched since the first commit.
    let out = plugin(
        &env,
        &[
            "explain",
            "deployment/catalog-api",
            "spec.template.spec.containers[name=api].resources.requests.cpu",
            "-o",
            "json",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    let report = out.json()?;
    let cpu = field(
        &report,
        "spec.template.spec.containers[name=api].resources.requests.cpu",
    );
    assert_eq!(cpu["origin"]["file"], "base/deployment.yaml", "{out}");
    assert_eq!(cpu["origin"]["line"], 31, "{out}");
    assert_eq!(cpu["commit"]["sha"], first.as_str(), "{out}");
    assert_eq!(cpu["verdict"], "inSync", "{out}");
    assert_eq!(cpu["live"], "100m");

    // Set by the prod patch, last changed by the second commit.
    let report = plugin(
        &env,
        &[
            "explain",
            "deploy/catalog-api",
            "spec.replicas",
            "-o",
            "json",
        ],
    )?
    .json()?;
    let replicas = field(&report, "spec.replicas");
    assert_eq!(
        replicas["origin"]["file"],
        "overlays/prod/deployment-prod.yaml"
    );
    assert_eq!(replicas["origin"]["line"], 6);
    assert_eq!(replicas["origin"]["setBy"], "patch");
    assert_eq!(replicas["commit"]["sha"], second.as_str());
    assert_eq!(replicas["commit"]["subject"], "prod: 4 replicas");
    assert_eq!(replicas["desired"], 4);

    // Set by the overlay's `images` transformer.
    let report = plugin(
        &env,
        &[
            "explain",
            "deployment/catalog-api",
            "spec.template.spec.containers[name=api].image",
            "-o",
            "json",
        ],
    )?
    .json()?;
    let image = field(&report, "spec.template.spec.containers[name=api].image");
    assert_eq!(
        image["origin"]["file"], "overlays/prod/kustomization.yaml",
        "{report:#}"
    );
    assert_eq!(image["origin"]["setBy"], "images", "{report:#}");
    assert_eq!(image["commit"]["sha"], first.as_str());
    assert_eq!(image["verdict"], "inSync");

    // An HPA takes the replica count: ignored, whatever Git says.
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "catalog-api"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "catalog-api"},
                 "minReplicas": 2, "maxReplicas": 10}
    });
    admin_apply(&env.admin().await?, env.ns.name(), &[hpa]).await?;
    let report = plugin(
        &env,
        &[
            "explain",
            "deployment/catalog-api",
            "spec.replicas",
            "-o",
            "json",
        ],
    )?
    .json()?;
    let replicas = field(&report, "spec.replicas");
    assert_eq!(replicas["verdict"], "ignored", "{report:#}");
    assert!(
        replicas["reason"]
            .as_str()
            .unwrap()
            .contains("HorizontalPodAutoscaler/catalog-api"),
        "{report:#}"
    );

    // Another field manager changes the image: drifted, and it is named.
    kubectl_set_image(&env, "registry.example.com/catalog-api:hotfix").await?;
    let out = plugin(
        &env,
        &[
            "explain",
            "deployment/catalog-api",
            "spec.template.spec.containers[name=api].image",
        ],
    )?;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout
            .contains("verdict:   drifted: changed by kubectl-set"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("live:      registry.example.com/catalog-api:hotfix"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("set in:    overlays/prod/kustomization.yaml:"),
        "{out}"
    );
    let report = plugin(&env, &["explain", "deployment/catalog-api", "-o", "json"])?.json()?;
    let image = field(&report, "spec.template.spec.containers[name=api].image");
    assert_eq!(image["verdict"], "drifted");
    let managers: Vec<&str> = image["managers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl-set"), "{managers:?}");
    Ok(())
}
