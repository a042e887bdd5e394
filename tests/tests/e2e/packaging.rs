//! The krew release, end to end: `scripts/release` packages the plugin, krew's own
//! `validate-krew-manifest` accepts the generated manifest, `kubectl krew install` installs it
//! from the archive into a fresh KREW_ROOT (checking the sha256 the script filled in), and
//! `kubectl gitops version` then runs the installed copy through kubectl's plugin lookup.
//!
//! And the agent's manifests: `manifests/base` and the example overlay render byte-identically
//! to `kubectl kustomize` and pass a server-side dry-run in a namespace that enforces the
//! `restricted` Pod Security Standard.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use renderer::protocol::PLUGIN_FIELD_MANAGER;
use serde_json::{Value, json};
use tests::cluster::{TestNamespace, admin_client};

use crate::agent_harness::dynamic_api;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives inside the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// `scripts/krew-tools build`: krew and validate-krew-manifest, built once per machine.
fn krew_tools() -> Result<PathBuf> {
    let out = run(Command::new(workspace_root().join("scripts/krew-tools")).arg("build"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    if !dir.join("kubectl-krew").is_file() {
        bail!("krew-tools printed {stdout:?}, which holds no kubectl-krew");
    }
    Ok(dir)
}

/// The value after `key: ` on the release script's stdout.
fn printed_path(stdout: &str, key: &str) -> Result<PathBuf> {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}: ")))
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("scripts/release printed no `{key}:` line:\n{stdout}"))
}

/// PATH without any directory that holds a kubectl-gitops, so only krew's copy can answer.
fn path_with(first: &[&Path]) -> Result<OsString> {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let rest = std::env::split_paths(&current).filter(|dir| !dir.join("kubectl-gitops").exists());
    let dirs = first.iter().map(|dir| dir.to_path_buf()).chain(rest);
    std::env::join_paths(dirs).context("building PATH")
}

#[test]
fn krew_installs_the_released_archive_and_kubectl_runs_it() -> Result<()> {
    let plugin = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
    let tools = krew_tools()?;
    let scratch = tempfile::tempdir()?;
    let dist = scratch.path().join("dist");
    let krew_root = scratch.path().join("krew");

    let released = run(Command::new(workspace_root().join("scripts/release"))
        .arg("--binary")
        .arg(&plugin)
        .arg("--out")
        .arg(&dist))?;
    let stdout = String::from_utf8_lossy(&released.stdout);
    let archive = printed_path(&stdout, "archive")?;
    let manifest = printed_path(&stdout, "manifest")?;
    assert_eq!(manifest.file_name().unwrap(), "gitops.yaml");

    let listing = run(Command::new("tar").arg("-tzf").arg(&archive))?;
    let mut entries: Vec<_> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["LICENSE", "kubectl-gitops"],
        "{}",
        archive.display()
    );

    // validate-krew-manifest's install step would download the other platforms' archives
    // from GitHub; the install below covers this platform's archive instead.
    run(Command::new(tools.join("validate-krew-manifest"))
        .arg("-manifest")
        .arg(&manifest)
        .arg("-skip-install"))?;

    let install = run(Command::new("kubectl")
        .args(["krew", "install"])
        .arg(format!("--manifest={}", manifest.display()))
        .arg(format!("--archive={}", archive.display()))
        .env("KREW_ROOT", &krew_root)
        .env("KREW_NO_UPGRADE_CHECK", "1")
        .env("PATH", path_with(&[&tools])?))?;
    let install_log = String::from_utf8_lossy(&install.stderr);
    assert!(
        install_log.contains("Installed plugin: gitops"),
        "{install_log}"
    );
    let installed_license = std::fs::read(
        krew_root
            .join("store/gitops")
            .join(format!("v{}", env!("CARGO_PKG_VERSION")))
            .join("LICENSE"),
    )?;
    assert_eq!(
        installed_license,
        std::fs::read(workspace_root().join("LICENSE"))?
    );

    // krew links its bin/ entry into the store; kubectl must find exactly that one.
    let krew_bin = krew_root.join("bin");
    let link = std::fs::read_link(krew_bin.join("kubectl-gitops"))
        .context("krew did not link bin/kubectl-gitops")?;
    assert!(
        link.starts_with(krew_root.join("store/gitops")),
        "{}",
        link.display()
    );
    let path = path_with(&[&krew_bin])?;

    let version = run(Command::new("kubectl")
        .args(["gitops", "version"])
        .env("PATH", &path))?;
    let version = String::from_utf8_lossy(&version.stdout);
    let expected = format!("kubectl-gitops {}", env!("CARGO_PKG_VERSION"));
    assert!(
        version
            .strip_prefix(&expected)
            .is_some_and(|rest| rest == "\n" || rest.starts_with(" (")),
        "kubectl gitops version printed {version:?}, expected {expected:?}"
    );
    Ok(())
}

/// The agent's manifests as users get them: the base, and the example overlay on top of it.
const MANIFEST_DIRS: [&str; 2] = ["manifests/base", "manifests/examples/catalog-prod"];

fn kubectl_kustomize(dir: &Path, reorder: &str) -> Result<String> {
    let out = run(Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .args(["--reorder", reorder]))?;
    String::from_utf8(out.stdout).context("kubectl kustomize printed non-UTF-8")
}

fn render(rel: &str) -> Result<renderer::Rendered> {
    let source = renderer::FsSource::new(workspace_root())?;
    renderer::render(&source, rel, &renderer::RenderOptions::default())
        .with_context(|| format!("rendering {rel}"))
}

#[test]
fn manifests_render_exactly_like_kubectl_kustomize() -> Result<()> {
    let source = renderer::FsSource::new(workspace_root())?;
    for rel in MANIFEST_DIRS {
        for (reorder, mode) in [
            (renderer::Reorder::Legacy, "legacy"),
            (renderer::Reorder::None, "none"),
        ] {
            let ours = renderer::render(&source, rel, &renderer::RenderOptions { reorder })
                .with_context(|| format!("rendering {rel}"))?
                .to_yaml();
            let theirs = kubectl_kustomize(&workspace_root().join(rel), mode)?;
            assert!(
                ours == theirs,
                "{rel} --reorder {mode} differs from kubectl kustomize:\n--- kubectl\n{theirs}--- ours\n{ours}"
            );
        }
    }
    Ok(())
}

/// The pod the Deployment would create, as a Pod object the API server's PodSecurity
/// admission judges (it only warns about Deployments, and there is no controller here).
fn pod_of(deployment: &Value, name: &str) -> Value {
    let template = &deployment["spec"]["template"];
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    })
}

async fn label_restricted(client: &kube::Client, ns: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}});
    namespaces
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("labelling namespace {ns} restricted"))?;
    Ok(())
}

async fn dry_run_create(client: &kube::Client, ns: &str, obj: &Value) -> Result<(), kube::Error> {
    let api = dynamic_api(
        client,
        ns,
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default(),
    );
    let object: DynamicObject = serde_json::from_value(obj.clone()).expect("rendered object");
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &object,
    )
    .await
    .map(drop)
}

#[tokio::test]
async fn manifests_pass_server_side_dry_run_under_restricted_pod_security() -> Result<()> {
    let ns = TestNamespace::create("manifests").await?;
    let client = admin_client().await?;
    label_restricted(&client, ns.name()).await?;

    for rel in MANIFEST_DIRS {
        let rendered = render(rel)?;
        let kinds: Vec<_> = rendered
            .objects
            .iter()
            .map(|o| o.value["kind"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Deployment",
                "NetworkPolicy"
            ],
            "{rel}"
        );
        for object in &rendered.objects {
            let mut body = object.value.clone();
            // The example names its own namespace; the test's namespace stands in for it.
            body["metadata"]["namespace"] = Value::from(ns.name());
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let api = dynamic_api(
                &client,
                ns.name(),
                body["apiVersion"].as_str().unwrap_or_default(),
                body["kind"].as_str().unwrap_or_default(),
            );
            api.patch(
                &name,
                &PatchParams::apply(PLUGIN_FIELD_MANAGER).dry_run(),
                &Patch::Apply(&body),
            )
            .await
            .with_context(|| format!("{rel}: server-side dry-run of {} {name}", body["kind"]))?;
        }

        let deployment = rendered
            .objects
            .iter()
            .find(|o| o.value["kind"] == "Deployment")
            .map(|o| &o.value)
            .context("no Deployment")?;
        let pod = pod_of(deployment, "gitops-agent");
        dry_run_create(&client, ns.name(), &pod)
            .await
            .with_context(|| {
                format!("{rel}: the agent's pod is refused in a restricted namespace")
            })?;
    }

    // The namespace really enforces: the same pod without its hardening is refused.
    let deployment = render(MANIFEST_DIRS[0])?
        .objects
        .into_iter()
        .find(|o| o.value["kind"] == "Deployment")
        .context("no Deployment")?
        .value;
    let mut weakened = pod_of(&deployment, "weakened");
    weakened["spec"]["containers"][0]["securityContext"]
        .as_object_mut()
        .context("container securityContext")?
        .remove("capabilities");
    match dry_run_create(&client, ns.name(), &weakened).await {
        Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("PodSecurity") => {}
        other => panic!("a pod keeping its capabilities was not refused by PodSecurity: {other:?}"),
    }
    Ok(())
}
