//! `kubectl gitops status -A` across two real control planes: agents that really synced,
//! failed, were refused or drifted, read through one merged kubeconfig, problems first, and a
//! namespace the user may not read named in the footer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{Kubeconfig, NamedCluster, NamedContext};
use renderer::protocol::{PARENT_NAME, STATUS_DATA_KEY, SyncResult, SyncStatus};
use serde_json::{Value, json};
use tests::cluster::{ADMIN_CONTEXT, DEV_CONTEXT, ExtraControlPlane, kubeconfig_path};
use tests::git::Repo;

use crate::agent_harness::{AgentEnv, commit_settings};
use crate::plugin_harness::Output;

const EAST: &str = "east";
const WEST: &str = "west";

/// `kubectl-gitops ARGS` with `--kubeconfig`, colourless, outside any clone.
fn plugin_with(kubeconfig: &Path, args: &[&str]) -> Result<Output> {
    let binary = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
    let out = Command::new(binary)
        .args(args)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .context("running kubectl-gitops")?;
    Ok(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// One context per (kubeconfig, context) pair, renamed so the two clusters do not clash.
fn merged_kubeconfig(dir: &Path, parts: &[(&str, &Path, &str)]) -> Result<PathBuf> {
    let mut merged = Kubeconfig::default();
    for (name, path, context) in parts {
        let config = Kubeconfig::read_from(path)?;
        let ctx = config
            .contexts
            .iter()
            .find(|c| c.name == *context)
            .and_then(|c| c.context.clone())
            .with_context(|| format!("{} has no context {context}", path.display()))?;
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .context("cluster of the context")?;
        let user = config
            .auth_infos
            .iter()
            .find(|u| Some(&u.name) == ctx.user.as_ref())
            .context("user of the context")?;
        merged.clusters.push(NamedCluster {
            name: format!("{name}-cluster"),
            cluster: cluster.cluster.clone(),
            other: Default::default(),
        });
        let mut user = user.clone();
        user.name = format!("{name}-user");
        merged.auth_infos.push(user);
        let mut ctx = ctx.clone();
        ctx.cluster = format!("{name}-cluster");
        ctx.user = Some(format!("{name}-user"));
        merged.contexts.push(NamedContext {
            name: name.to_string(),
            context: Some(ctx),
            other: Default::default(),
        });
    }
    merged.current_context = Some(parts[0].0.to_string());
    let path = dir.join("merged-kubeconfig.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&merged)?)?;
    Ok(path)
}

/// The real agent, as the admin of the extra control plane, until its status satisfies `done`.
struct WestAgent {
    child: Child,
    _cache: tempfile::TempDir,
}

impl WestAgent {
    fn start(cp: &ExtraControlPlane, ns: &str, repo: &Repo) -> Result<Self> {
        let binary = tests::binaries::workspace_binary("agent", "gitops-agent")?;
        let cache = tempfile::tempdir()?;
        let child = Command::new(binary)
            .arg(format!("--repo={}", repo.file_url()))
            .arg(format!("--namespace={ns}"))
            .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
            .arg(format!("--cache-dir={}", cache.path().display()))
            .args(["--path=app", "--interval=3s", "--listen=127.0.0.1:0"])
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting gitops-agent")?;
        Ok(Self {
            child,
            _cache: cache,
        })
    }
}

impl Drop for WestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_west_synced(cp: &ExtraControlPlane, ns: &str, commit: &str) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(cp.client(ADMIN_CONTEXT).await?, ns);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(cm) = cms.get_opt(PARENT_NAME).await?
            && let Some(text) = cm.data.as_ref().and_then(|d| d.get(STATUS_DATA_KEY))
        {
            let s = SyncStatus::from_json(text)?;
            if s.result == SyncResult::Synced && s.last_applied_revision.as_deref() == Some(commit)
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the agent in {ns} of the extra control plane did not sync {commit}")
}

/// Server-side applies an RBAC object, namespaced when it names a namespace.
async fn apply(client: &kube::Client, body: Value) -> Result<()> {
    let kind = body["kind"].as_str().context("kind")?;
    let gvk = kube::api::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind);
    let plural = format!("{}s", kind.to_lowercase());
    let ar = kube::discovery::ApiResource::from_gvk_with_plural(&gvk, &plural);
    let api: Api<kube::api::DynamicObject> = match body["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let name = body["metadata"]["name"].as_str().context("name")?;
    api.patch(
        name,
        &PatchParams::apply("test-admin"),
        &Patch::Apply(&body),
    )
    .await
    .with_context(|| format!("applying {kind} {name}"))?;
    Ok(())
}

/// On the extra control plane: the `dev` user may list Namespaces, and read ConfigMaps only in
/// `readable`.
async fn grant_dev(cp: &ExtraControlPlane, readable: &str) -> Result<()> {
    let admin = cp.client(ADMIN_CONTEXT).await?;
    let rbac = "rbac.authorization.k8s.io/v1";
    apply(
        &admin,
        json!({
            "apiVersion": rbac, "kind": "ClusterRole",
            "metadata": {"name": "fleet-list-namespaces"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}],
        }),
    )
    .await?;
    apply(&admin, json!({
        "apiVersion": rbac, "kind": "ClusterRoleBinding",
        "metadata": {"name": "fleet-list-namespaces"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "fleet-list-namespaces"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dev"}],
    }))
    .await?;
    apply(
        &admin,
        json!({
            "apiVersion": rbac, "kind": "Role",
            "metadata": {"name": "read-configmaps", "namespace": readable},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        }),
    )
    .await?;
    apply(&admin, json!({
        "apiVersion": rbac, "kind": "RoleBinding",
        "metadata": {"name": "read-configmaps", "namespace": readable},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dev"}],
    }))
    .await?;
    Ok(())
}

/// A real agent in a fresh namespace of the shared control plane, stopped once `done` holds.
async fn east_agent(
    prefix: &str,
    files: &[(&str, &str)],
    args: &[&str],
    done: impl Fn(&SyncStatus) -> bool,
) -> Result<AgentEnv> {
    let mut env = AgentEnv::new(prefix).await?;
    commit_settings(&env.repo, "one")?;
    if !files.is_empty() {
        env.repo.commit_files(files, "the change under test")?;
    }
    env.start(args)?;
    env.wait_status(Duration::from_secs(60), done).await?;
    Ok(env)
}

fn entry<'a>(entries: &'a [Value], context: &str, ns: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|e| e["context"] == context && e["namespace"] == ns)
}

#[tokio::test]
async fn plugin_status_all_namespaces_across_two_control_planes() -> Result<()> {
    let west = ExtraControlPlane::start()?;

    // East (the shared control plane, read as its admin): four real agents.
    let synced = |s: &SyncStatus| s.result == SyncResult::Synced;
    let (mut ok, mut failed, mut refused, mut drifted) = tokio::try_join!(
        east_agent("fleet-ok", &[], &["--path=app"], synced),
        east_agent(
            "fleet-failed",
            &[("app/cm.yaml", "data: [unclosed\n")],
            &["--path=app"],
            |s| s.result == SyncResult::Failed,
        ),
        east_agent(
            "fleet-refused",
            &[(
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: elsewhere\n",
            )],
            &["--path=app"],
            |s| s.result == SyncResult::Refused,
        ),
        east_agent(
            "fleet-drifted",
            &[],
            &["--path=app", "--no-self-heal", "--interval=10m"],
            synced,
        ),
    )?;
    // Drift: repaired by the self-healing agent, left alone by the other.
    let edit = |env: &AgentEnv| {
        let ns = env.ns.name().to_string();
        async move {
            let cms: Api<ConfigMap> = Api::namespaced(tests::cluster::admin_client().await?, &ns);
            cms.patch(
                "settings",
                &PatchParams {
                    field_manager: Some("kubectl-edit".into()),
                    ..Default::default()
                },
                &Patch::Merge(json!({"data": {"level": "by-hand"}})),
            )
            .await?;
            anyhow::Ok(())
        }
    };
    edit(&ok).await?;
    ok.wait_status(Duration::from_secs(30), |s| s.drift_corrected >= 1)
        .await?;
    edit(&drifted).await?;
    drifted
        .wait_status(Duration::from_secs(30), |s| {
            s.result == SyncResult::OutOfSync
        })
        .await?;
    // Stopped, so the status stays as asserted.
    for env in [&mut ok, &mut failed, &mut refused, &mut drifted] {
        env.kill();
    }

    // West (the extra control plane): two real agents; `dev` may read only one namespace.
    let west_admin = west.client(ADMIN_CONTEXT).await?;
    let (readable, hidden) = ("fleet-west-readable", "fleet-west-hidden");
    let repo = Repo::new()?;
    let commit = commit_settings(&repo, "west")?;
    for ns in [readable, hidden] {
        Api::<Namespace>::all(west_admin.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await?;
        let _agent = WestAgent::start(&west, ns, &repo)?;
        wait_west_synced(&west, ns, &commit).await?;
    }
    grant_dev(&west, readable).await?;

    let scratch = tempfile::tempdir()?;
    let kubeconfig = merged_kubeconfig(
        scratch.path(),
        &[
            (EAST, kubeconfig_path()?, ADMIN_CONTEXT),
            (WEST, west.kubeconfig(), DEV_CONTEXT),
        ],
    )?;

    let out = plugin_with(
        &kubeconfig,
        &["status", "-A", "--context", "east,west", "-o", "json"],
    )?;
    assert_eq!(out.code, 1, "problems exist, so exit 1\n{out}");
    let json = out.json()?;
    let entries = json.as_array().context("a list of entries")?;
    for e in entries {
        for key in ["context", "namespace", "result", "trackedRef"] {
            assert!(e.get(key).is_some(), "entry without {key}: {e}");
        }
    }
    let expect = [
        (EAST, ok.ns.name(), "Synced"),
        (EAST, failed.ns.name(), "Failed"),
        (EAST, refused.ns.name(), "Refused"),
        (EAST, drifted.ns.name(), "OutOfSync"),
        (WEST, readable, "Synced"),
    ];
    for (context, ns, result) in expect {
        let e = entry(entries, context, ns)
            .with_context(|| format!("{context}/{ns} missing\n{out}"))?;
        assert_eq!(e["result"], result, "{e}");
        assert_eq!(e["trackedRef"], "main", "{e}");
    }
    assert_eq!(
        entry(entries, EAST, ok.ns.name()).unwrap()["driftRepairedLastHour"],
        1,
        "{out}"
    );
    assert_eq!(
        entry(entries, EAST, drifted.ns.name()).unwrap()["driftRepairedLastHour"],
        0
    );
    assert!(entry(entries, WEST, hidden).is_none(), "{out}");
    assert!(
        out.stderr.contains(hidden) && out.stderr.contains("context west"),
        "the unreadable namespace is named on stderr with -o json\n{out}"
    );
    // Problems first: no problem after a row without one.
    let first_fine = entries
        .iter()
        .position(|e| e["problem"] == false)
        .unwrap_or(entries.len());
    assert!(
        entries[first_fine..].iter().all(|e| e["problem"] == false),
        "{out}"
    );
    let position = |ns: &str| entries.iter().position(|e| e["namespace"] == ns).unwrap();
    assert!(
        position(failed.ns.name()) < position(drifted.ns.name()),
        "{out}"
    );
    assert!(
        position(refused.ns.name()) < position(ok.ns.name()),
        "{out}"
    );
    assert!(position(drifted.ns.name()) < position(readable), "{out}");

    // The table: one line per agent, same order, and the footer naming what was not read.
    let out = plugin_with(&kubeconfig, &["status", "-A", "--context", "east,west"])?;
    assert_eq!(out.code, 1, "{out}");
    let line_of = |ns: &str| {
        out.stdout
            .lines()
            .position(|l| l.split_whitespace().nth(1) == Some(ns))
    };
    let failed_line = line_of(failed.ns.name()).context("failed row")?;
    let ok_line = line_of(ok.ns.name()).context("ok row")?;
    assert!(failed_line < ok_line, "{out}");
    let footer = out
        .stdout
        .lines()
        .find(|l| l.starts_with("context west:"))
        .with_context(|| format!("no footer for west\n{out}"))?;
    assert!(
        footer.contains(hidden) && !footer.contains(readable),
        "{footer}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(ok.ns.name()) && l.contains("main -> ") && l.contains("Synced")),
        "{out}"
    );

    // Every context of the kubeconfig, YAML out.
    let out = plugin_with(
        &kubeconfig,
        &["status", "-A", "--all-contexts", "-o", "yaml"],
    )?;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains(&format!("namespace: {readable}"))
            && out.stdout.contains(&format!("namespace: {}", ok.ns.name())),
        "{out}"
    );

    // --watch prints the table again when an agent's status changes: the failed one is fixed.
    let binary = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
    let mut watch = Command::new(binary)
        .args(["status", "-A", "--watch", "--context", EAST])
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = watch.stdout.take().context("piped stdout")?;
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.push_str(&line);
                seen.push('\n');
            }
        })
    };
    let row_says = |ns: String, result: &'static str| {
        let seen = seen.clone();
        async move {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                let text = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if text.lines().any(|l| {
                    let cells: Vec<&str> = l.split_whitespace().collect();
                    cells.get(1) == Some(&ns.as_str()) && cells.contains(&result)
                }) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            bail!(
                "no {result} row for {ns}:\n{}",
                seen.lock().unwrap_or_else(|e| e.into_inner())
            )
        }
    };
    let watched = async {
        row_says(failed.ns.name().to_string(), "Failed").await?;
        let fixed = commit_settings(&failed.repo, "fixed")?;
        failed.start(&["--path=app"])?;
        failed.wait_synced(&fixed).await?;
        row_says(failed.ns.name().to_string(), "Synced").await
    }
    .await;
    let _ = watch.kill();
    let _ = watch.wait();
    failed.kill();
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
    watched?;

    // An unknown context is an error naming it, before anything is read.
    let out = plugin_with(&kubeconfig, &["status", "-A", "--context", "east,nope"])?;
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("\"nope\""), "{out}");
    Ok(())
}
