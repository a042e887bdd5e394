//! Issue #14, what Git may take: the agent's own objects, live objects someone else owns, and
//! the ApplySet parent (deleted, edited by hand, unreadable at start, or made by other tooling).

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use renderer::protocol::{
    ADOPT_ANNOTATION, APPLYSET_GROUP_KINDS_ANNOTATION, APPLYSET_PART_OF_LABEL,
    APPLYSET_TOOLING_ANNOTATION, PARENT_NAME, SyncResult,
};
use serde_json::{Value, json};

use crate::agent_harness::{AgentEnv, admin_apply, load_yaml};

const CONFIG_MAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  a: \"1\"\n";
const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";

/// Commits `app/` with these files and a kustomization listing them.
fn commit_app(env: &AgentEnv, files: &[(&str, &str)], message: &str) -> Result<String> {
    let mut kustomization = String::from("resources:\n");
    for (name, _) in files {
        kustomization.push_str(&format!("- {name}\n"));
    }
    let mut all: Vec<(String, String)> = vec![("app/kustomization.yaml".into(), kustomization)];
    all.extend(
        files
            .iter()
            .map(|(n, c)| (format!("app/{n}"), c.to_string())),
    );
    let refs: Vec<(&str, &str)> = all.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    env.repo.commit_files(&refs, message)
}

async fn parent(env: &AgentEnv) -> Result<Option<ConfigMap>> {
    let cms: Api<ConfigMap> = Api::namespaced(env.admin().await?, env.ns.name());
    Ok(cms.get_opt(PARENT_NAME).await?)
}

fn kinds_of(parent: &ConfigMap) -> String {
    parent
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .get(APPLYSET_GROUP_KINDS_ANNOTATION)
        .cloned()
        .unwrap_or_default()
}

fn part_of(obj: &kube::api::DynamicObject) -> Option<String> {
    obj.metadata
        .labels
        .clone()
        .unwrap_or_default()
        .get(APPLYSET_PART_OF_LABEL)
        .cloned()
}

#[tokio::test]
async fn the_agents_own_objects_in_git_are_refused_and_nothing_is_applied() -> Result<()> {
    let mut env = AgentEnv::new("guard-own").await?;
    let before = env
        .get("v1", "ServiceAccount", "gitops-agent")
        .await?
        .context("the harness made the ServiceAccount")?;
    let takeover = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: gitops-agent\n  labels:\n    owned-by: git\n";
    let commit = commit_app(
        &env,
        &[("config.yaml", CONFIG_MAP), ("agent-sa.yaml", takeover)],
        "take over the agent",
    )?;
    env.start(&["--path=app"])?;
    let status = env
        .wait_status(Duration::from_secs(60), |s| {
            s.result == SyncResult::Refused
                && s.last_attempted_revision.as_deref() == Some(commit.as_str())
        })
        .await?;
    assert!(
        status.message.contains("ServiceAccount/gitops-agent")
            && status.message.contains("agent-sa.yaml")
            && status.message.contains("--manage-own-objects"),
        "{}",
        status.message
    );
    assert!(
        env.get("v1", "ConfigMap", "app-config").await?.is_none(),
        "half applied"
    );
    let after = env
        .get("v1", "ServiceAccount", "gitops-agent")
        .await?
        .unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert!(
        part_of(&after).is_none(),
        "the agent's ServiceAccount joined the set"
    );
    Ok(())
}

#[tokio::test]
async fn owned_live_objects_are_not_adopted_unless_annotated() -> Result<()> {
    let mut env = AgentEnv::new("guard-adopt").await?;
    let admin = env.admin().await?;
    let ns = env.ns.name().to_string();
    // An "operator" object owning a Secret, as an operator's custom resource would.
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "operator-owner"}}))?,
        )
        .await?;
    let secrets = env.api(&admin, "v1", "Secret");
    let operator_secret: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db-credentials", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "operator-owner",
            "uid": owner.metadata.uid.clone().unwrap(), "controller": true}]},
        "stringData": {"password": "made-by-the-operator"}
    }))?;
    let made = secrets
        .create(&PostParams::default(), &operator_secret)
        .await?;
    admin_apply(
        &admin,
        &ns,
        &[json!({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "hand-made"}, "data": {"b": "hand"}})],
    )
    .await?;

    let git_secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-credentials\nstringData:\n  password: from-git\n";
    let hand = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hand-made\ndata:\n  b: git\n";
    let commit = commit_app(
        &env,
        &[
            ("config.yaml", CONFIG_MAP),
            ("secret.yaml", git_secret),
            ("hand.yaml", hand),
        ],
        "app",
    )?;
    env.start(&["--path=app"])?;
    let status = env
        .wait_status(Duration::from_secs(60), |s| {
            s.last_applied_revision.as_deref() == Some(commit.as_str())
        })
        .await?;
    assert_eq!(status.result, SyncResult::OutOfSync, "{status:#?}");
    assert!(
        status.message.contains("Secret/db-credentials")
            && status.message.contains("not adopted")
            && status.message.contains("ConfigMap/operator-owner")
            && status.message.contains(ADOPT_ANNOTATION),
        "{}",
        status.message
    );
    let secret = env.get("v1", "Secret", "db-credentials").await?.unwrap();
    assert_eq!(
        secret.metadata.resource_version,
        made.metadata.resource_version
    );
    assert!(part_of(&secret).is_none());
    // The unowned one is adopted, the rest applied.
    let hand_made = env.get("v1", "ConfigMap", "hand-made").await?.unwrap();
    assert!(part_of(&hand_made).is_some(), "{hand_made:?}");
    assert_eq!(hand_made.data["data"]["b"], "git");
    assert!(env.get("v1", "ConfigMap", "app-config").await?.is_some());

    // `diff` tells the same: refused, not a clean adoption; the adoptable one is an adoption.
    let out = crate::plugin_harness::plugin(&env, &["diff", "app", "-o", "json"])?;
    let report = out.json()?;
    let object = |name: &str| {
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    let refused = object("db-credentials");
    assert_eq!(refused["action"], "refused", "{out}");
    assert!(
        refused["refused"]
            .as_str()
            .is_some_and(|r| r.contains("ConfigMap/operator-owner")),
        "{out}"
    );
    assert_eq!(refused["changes"], json!([]), "{out}");
    assert_eq!(report["summary"]["refused"], 1, "{out}");
    let text = crate::plugin_harness::plugin(&env, &["diff", "app"])?;
    assert!(
        text.stdout
            .contains("# Secret/db-credentials: refused, not adopted"),
        "{text}"
    );

    // Someone with access to the namespace opts in: the next sync takes it.
    secrets
        .patch(
            "db-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}})),
        )
        .await?;
    env.eventually(
        "the annotated Secret adopted",
        Duration::from_secs(30),
        || async {
            let s = env.get("v1", "Secret", "db-credentials").await?.unwrap();
            Ok(part_of(&s)
                .is_some()
                .then_some(())
                .filter(|_| s.data["data"]["password"] == "ZnJvbS1naXQ="))
        },
    )
    .await?;
    env.wait_status(Duration::from_secs(30), |s| s.result == SyncResult::Synced)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_refused_object_dropped_from_git_is_not_pruned() -> Result<()> {
    let mut env = AgentEnv::new("guard-noprune").await?;
    let admin = env.admin().await?;
    let ns = env.ns.name().to_string();
    admin_apply(
        &admin,
        &ns,
        &[json!({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "helm-values", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
                 "data": {"x": "helm"}})],
    )
    .await?;
    let helm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: helm-values\ndata:\n  x: git\n";
    let first = commit_app(
        &env,
        &[("config.yaml", CONFIG_MAP), ("helm.yaml", helm)],
        "one",
    )?;
    env.start(&["--path=app", "--prune"])?;
    let status = env
        .wait_status(Duration::from_secs(60), |s| {
            s.last_applied_revision.as_deref() == Some(first.as_str())
        })
        .await?;
    assert!(
        status.message.contains("managed by Helm"),
        "{}",
        status.message
    );
    let second = commit_app(&env, &[("config.yaml", CONFIG_MAP)], "drop it")?;
    env.wait_synced(&second).await?;
    let live = env
        .get("v1", "ConfigMap", "helm-values")
        .await?
        .context("pruned")?;
    assert_eq!(live.data["data"]["x"], "helm");
    Ok(())
}

#[tokio::test]
async fn a_deleted_parent_is_written_again_and_dropped_kinds_still_pruned() -> Result<()> {
    let mut env = AgentEnv::new("guard-parent-del").await?;
    let first = commit_app(
        &env,
        &[("config.yaml", CONFIG_MAP), ("svc.yaml", SERVICE)],
        "two kinds",
    )?;
    env.start(&["--path=app", "--prune"])?;
    env.wait_synced(&first).await?;
    let cms: Api<ConfigMap> = Api::namespaced(env.admin().await?, env.ns.name());

    // Deleted under a running agent: written again at the next cycle, with both kinds.
    let old_uid = parent(&env).await?.unwrap().metadata.uid;
    cms.delete(PARENT_NAME, &Default::default()).await?;
    let again = env
        .eventually(
            "the parent written again",
            Duration::from_secs(30),
            || async { Ok(parent(&env).await?.filter(|p| p.metadata.uid != old_uid)) },
        )
        .await?;
    assert_eq!(kinds_of(&again), "ConfigMap,Service");

    // Deleted while the agent is down, and Git drops the Service: the restarted agent finds the
    // Service through the live members and prunes it.
    env.kill();
    cms.delete(PARENT_NAME, &Default::default()).await?;
    let second = commit_app(&env, &[("config.yaml", CONFIG_MAP)], "drop the Service")?;
    env.start(&["--path=app", "--prune"])?;
    let status = env.wait_synced(&second).await?;
    assert_eq!(status.pruned, 1, "{status:#?}");
    assert!(env.get("v1", "Service", "web").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_parent_edited_by_hand_is_put_back_and_dropped_kinds_still_pruned() -> Result<()> {
    let mut env = AgentEnv::new("guard-parent-edit").await?;
    let first = commit_app(
        &env,
        &[("config.yaml", CONFIG_MAP), ("svc.yaml", SERVICE)],
        "two kinds",
    )?;
    env.start(&["--path=app", "--prune"])?;
    env.wait_synced(&first).await?;
    let cms: Api<ConfigMap> = Api::namespaced(env.admin().await?, env.ns.name());
    cms.patch(
        PARENT_NAME,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {APPLYSET_GROUP_KINDS_ANNOTATION: "ConfigMap"}}}),
        ),
    )
    .await?;
    env.eventually("the kinds put back", Duration::from_secs(30), || async {
        Ok(parent(&env)
            .await?
            .filter(|p| kinds_of(p) == "ConfigMap,Service")
            .map(|_| ()))
    })
    .await?;
    // A restart reads the parent: the Service's kind is there, so it is pruned.
    env.kill();
    let second = commit_app(&env, &[("config.yaml", CONFIG_MAP)], "drop the Service")?;
    env.start(&["--path=app", "--prune"])?;
    let status = env.wait_synced(&second).await?;
    assert_eq!(status.pruned, 1, "{status:#?}");
    assert!(env.get("v1", "Service", "web").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn an_unreadable_parent_at_start_skips_the_sync() -> Result<()> {
    let mut env = AgentEnv::new("guard-parent-read").await?;
    let first = commit_app(
        &env,
        &[("config.yaml", CONFIG_MAP), ("svc.yaml", SERVICE)],
        "two kinds",
    )?;
    env.start(&["--path=app", "--prune"])?;
    env.wait_synced(&first).await?;
    env.kill();

    // The agent may still list and apply ConfigMaps, but not GET one: the parent is unreadable.
    let admin = env.admin().await?;
    let mut role = load_yaml("manifests/base/role.yaml")?.remove(0);
    let rules = role["rules"].as_array_mut().unwrap();
    let configmaps = rules
        .iter()
        .position(|r| r["resources"][0] == "configmaps")
        .unwrap();
    rules[configmaps]["resources"] = json!([
        "secrets",
        "serviceaccounts",
        "services",
        "persistentvolumeclaims"
    ]);
    rules.push(json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch", "create", "patch", "delete"]}));
    admin_apply(&admin, env.ns.name(), &[role.clone()]).await?;

    let second = commit_app(&env, &[("config.yaml", CONFIG_MAP)], "drop the Service")?;
    env.start(&["--path=app", "--prune"])?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let p = parent(&env).await?.unwrap();
    assert_eq!(
        kinds_of(&p),
        "ConfigMap,Service",
        "the kinds were overwritten"
    );
    let status = env.status().await?.unwrap();
    assert_ne!(
        status.last_applied_revision.as_deref(),
        Some(second.as_str()),
        "synced blind"
    );
    assert!(
        env.logs().contains("ApplySet parent has not been read"),
        "{}",
        env.logs()
    );

    // Readable again: the sync goes on and the Service, of a kind Git dropped, is pruned.
    admin_apply(
        &admin,
        env.ns.name(),
        &load_yaml("manifests/base/role.yaml")?,
    )
    .await?;
    let status = env.wait_synced(&second).await?;
    assert_eq!(status.pruned, 1, "{status:#?}");
    assert!(env.get("v1", "Service", "web").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_parent_made_by_kubectl_applyset_is_refused() -> Result<()> {
    let mut env = AgentEnv::new("guard-tooling").await?;
    let ns = env.ns.name().to_string();
    let manifest = env.repo.root().join("kubectl-member.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\ndata:\n  k: v\n",
    )?;
    let out = std::process::Command::new("kubectl")
        .env("KUBECTL_APPLYSET", "true")
        .arg(format!(
            "--kubeconfig={}",
            tests::cluster::kubeconfig_path()?.display()
        ))
        .args([
            "apply",
            "-n",
            &ns,
            "--prune",
            "--applyset=configmap/kubectl-gitops",
            "-f",
        ])
        .arg(&manifest)
        .output()?;
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = parent(&env).await?.context("kubectl made no parent")?;
    let tooling =
        made.metadata.annotations.clone().unwrap_or_default()[APPLYSET_TOOLING_ANNOTATION].clone();
    assert!(tooling.starts_with("kubectl/"), "{tooling}");

    commit_app(&env, &[("config.yaml", CONFIG_MAP)], "app")?;
    env.start(&["--path=app", "--prune"])?;
    env.eventually("the refusal logged", Duration::from_secs(60), || async {
        Ok(env.logs().contains("made by kubectl/").then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = parent(&env).await?.unwrap();
    assert_eq!(
        after.metadata.resource_version, made.metadata.resource_version,
        "the agent wrote kubectl's parent"
    );
    assert!(
        env.get("v1", "ConfigMap", "from-kubectl").await?.is_some(),
        "kubectl's member pruned"
    );
    assert!(
        env.get("v1", "ConfigMap", "app-config").await?.is_none(),
        "applied into kubectl's set"
    );
    // The refusal is an Event on the parent.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.admin().await?, &ns);
    let refused: Vec<Value> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Refused"))
        .map(|e| json!(e.note))
        .collect();
    assert!(
        refused
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("kubectl/"))),
        "{refused:?}"
    );
    Ok(())
}
