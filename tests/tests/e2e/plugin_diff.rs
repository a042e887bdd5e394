//! `kubectl gitops diff`: nothing to report right after a sync; a `kubectl set image` is
//! harmful drift, an uncommitted edit of a field the agent owns is a pending change, and a
//! field the agent was told to ignore (`--ignore-field`) or an HPA owns is expected, an active
//! break-glass says who/why/until, and a revision ahead of the agent creates, prunes and adopts.

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use renderer::protocol::{
    BREAK_GLASS_BY_ANNOTATION, BREAK_GLASS_FIELD_MANAGER, BREAK_GLASS_REASON_ANNOTATION,
    BREAK_GLASS_SINCE_ANNOTATION, BREAK_GLASS_UNTIL_ANNOTATION,
};
use serde_json::{Value, json};

use tests::cluster::{ADMIN_CONTEXT, kubeconfig_path};

use crate::agent_harness::{AgentEnv, admin_apply};
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

    // Progress goes to stderr only on a terminal: hidden when piped, drawn under a pty.
    assert!(
        text.stderr.contains("compared 4 objects with namespace")
            && !text.stderr.contains("dry-runs"),
        "{text}"
    );
    let tty = diff_on_a_terminal(&env)?;
    assert!(
        tty.contains("server-side dry-runs"),
        "no progress bar on a terminal:\n{tty}"
    );
    assert!(
        tty.contains("# Deployment/catalog-api: change (harmful drift)"),
        "{tty}"
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

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Every class and action, one after the other on the same namespace: expected (an HPA owns
/// the replicas), break-glass (with who, why and until), and a revision ahead of the agent
/// that creates, prunes and adopts an unmanaged look-alike. The JSON keys are checked as the
/// documented schema.
#[tokio::test]
async fn plugin_diff_reports_every_class_and_action() -> Result<()> {
    let (env, _) = synced_catalog("plugin-diff-classes").await?;
    let admin = env.admin().await?;
    let ns = env.ns.name();

    // Expected: an HPA scales the Deployment; replicas differ from Git but are not a change.
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "catalog-api"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "catalog-api"},
                 "minReplicas": 2, "maxReplicas": 10}});
    admin_apply(&admin, ns, &[hpa]).await?;
    kubectl_scale(&env, 5).await?;
    let out = plugin(&env, &["diff", "-o", "json"])?;
    assert_eq!(out.code, 0, "{out}");
    let report = out.json()?;
    let deploy = object(&report, "Deployment", "catalog-api");
    assert_eq!(
        (&deploy["action"], &deploy["class"]),
        (&json!("unchanged"), &json!("expected")),
        "{out}"
    );
    assert_eq!(
        deploy["fields"][0]["ignoredBy"],
        "HorizontalPodAutoscaler/catalog-api owns the replica count"
    );

    // Break-glass: an operator's image, left alone until `until`.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let break_glass = json!({
        "metadata": {"annotations": {
            BREAK_GLASS_BY_ANNOTATION: "alice@example.com",
            BREAK_GLASS_REASON_ANNOTATION: "INC-42 roll back the cache",
            BREAK_GLASS_SINCE_ANNOTATION: "2026-01-01T00:00:00Z",
            BREAK_GLASS_UNTIL_ANNOTATION: "2099-01-01T00:00:00Z"}},
        "spec": {"template": {"spec": {"containers": [
            {"name": "api", "image": "registry.example.com/catalog-api:1.4.1"}]}}}});
    deployments
        .patch(
            "catalog-api",
            &PatchParams {
                field_manager: Some(BREAK_GLASS_FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Strategic(&break_glass),
        )
        .await?;

    // A revision ahead of the agent: a new ConfigMap, one that exists unmanaged, and the
    // ServiceAccount gone from the base.
    let base = std::fs::read_to_string(env.repo.path().join("base/kustomization.yaml"))?;
    let prod = std::fs::read_to_string(env.repo.path().join("overlays/prod/kustomization.yaml"))?;
    let ahead = env.repo.commit_files(
        &[
            (
                "base/kustomization.yaml",
                &base.replace("- serviceaccount.yaml\n", ""),
            ),
            (
                "overlays/prod/kustomization.yaml",
                &prod.replace("- ../../base\n", "- ../../base\n- extra.yaml\n"),
            ),
            (
                "overlays/prod/extra.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: catalog-extra\ndata:\n  a: b\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: catalog-legacy\ndata:\n  mode: new\n",
            ),
        ],
        "extra config, no service account",
    )?;
    let legacy = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "catalog-legacy"}, "data": {"mode": "old"}});
    admin_apply(&admin, ns, &[legacy]).await?;

    let out = plugin(&env, &["diff", "--revision", &ahead, "-o", "json"])?;
    assert_eq!(out.code, 1, "{out}");
    let report = out.json()?;
    assert_eq!(
        keys(&report),
        [
            "namespace",
            "revision",
            "path",
            "agent",
            "renderDigest",
            "matchesApplied",
            "objects",
            "summary"
        ]
    );
    assert_eq!(report["revision"], ahead.as_str());
    assert_eq!(
        keys(&report["summary"]),
        [
            "create",
            "change",
            "prune",
            "unchanged",
            "unmanaged",
            "harmfulDrift",
            "foreign",
            "pending",
            "expected",
            "breakGlass",
            "errors"
        ]
    );
    for o in report["objects"].as_array().unwrap() {
        assert_eq!(
            keys(o),
            [
                "apiVersion",
                "kind",
                "name",
                "action",
                "class",
                "unmanaged",
                "fields",
                "ignored",
                "breakGlass",
                "note",
                "diff",
                "error",
                "changes"
            ],
            "{o:#}"
        );
        for f in o["fields"].as_array().unwrap() {
            assert_eq!(
                keys(f),
                ["pointer", "git", "live", "managers", "class", "ignoredBy"],
                "{f:#}"
            );
        }
    }

    let deploy = object(&report, "Deployment", "catalog-api");
    assert_eq!(deploy["class"], "breakGlass", "{out}");
    assert_eq!(deploy["breakGlass"]["by"], "alice@example.com");
    assert_eq!(deploy["breakGlass"]["reason"], "INC-42 roll back the cache");
    assert_eq!(deploy["breakGlass"]["until"], "2099-01-01T00:00:00Z");
    let image = deploy["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["pointer"] == "/spec/template/spec/containers/0/image")
        .unwrap_or_else(|| panic!("image not reported: {deploy:#}"));
    assert_eq!(image["class"], "breakGlass");
    assert_eq!(image["live"], "registry.example.com/catalog-api:1.4.1");

    let extra = object(&report, "ConfigMap", "catalog-extra");
    assert_eq!(
        (&extra["action"], &extra["class"], &extra["unmanaged"]),
        (&json!("create"), &json!("pending"), &json!(false)),
        "{out}"
    );
    let legacy = object(&report, "ConfigMap", "catalog-legacy");
    assert_eq!(
        (&legacy["action"], &legacy["unmanaged"]),
        (&json!("change"), &json!(true)),
        "{out}"
    );
    assert!(
        legacy["diff"]
            .as_str()
            .unwrap_or_default()
            .contains("-  mode: old"),
        "{out}"
    );
    let sa = object(&report, "ServiceAccount", "catalog-api");
    assert_eq!(
        (&sa["action"], &sa["class"]),
        (&json!("prune"), &json!("pending")),
        "{out}"
    );
    let summary = &report["summary"];
    assert_eq!(
        (
            &summary["create"],
            &summary["prune"],
            &summary["unmanaged"],
            &summary["breakGlass"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1)),
        "{out}"
    );

    let text = plugin(&env, &["diff", "--revision", &ahead])?;
    assert_eq!(text.code, 1, "{text}");
    for line in [
        "# Deployment/catalog-api: change (break-glass)\n",
        "#   break-glass by alice@example.com until 2099-01-01T00:00:00Z: INC-42 roll back the cache\n",
        "# ConfigMap/catalog-extra: create (pending change)\n",
        "# ConfigMap/catalog-legacy: change (pending change), not yet managed: applying adopts it\n",
        "# ServiceAccount/catalog-api: prune (pending change)\n",
        "Summary: 1 to create, 2 to change, 1 to prune, 2 unchanged\n",
    ] {
        assert!(text.stdout.contains(line), "missing {line:?}\n{text}");
    }
    Ok(())
}

/// `kubectl gitops diff` on a terminal: `script` runs it on a pty and records what it drew.
fn diff_on_a_terminal(env: &AgentEnv) -> Result<String> {
    let binary = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
    let command = format!(
        "{} diff --kubeconfig={} --context={ADMIN_CONTEXT} --namespace={}",
        binary.display(),
        kubeconfig_path()?.display(),
        env.ns.name()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .current_dir(env.repo.path())
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
