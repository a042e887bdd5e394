//! `kubectl gitops diff`: nothing to report right after a sync; a `kubectl set image` is
//! harmful drift, an uncommitted edit of a field the agent owns is a pending change.

use anyhow::Result;
use serde_json::Value;

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
