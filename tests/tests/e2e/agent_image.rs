//! The agent as users deploy it: the image `scripts/image` builds (FROM scratch, static
//! binary, user 65532), run by podman with a read-only root filesystem on the host network
//! against the test control plane, configured the in-cluster way: a ServiceAccount token, the
//! cluster CA and the namespace mounted at /var/run/secrets/kubernetes.io/serviceaccount and
//! KUBERNETES_SERVICE_HOST/PORT. It fetches over git:// from a real git daemon.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use kube::Api;
use kube::api::DeleteParams;
use kube::config::Kubeconfig;
use tests::cluster::{ADMIN_CONTEXT, kubeconfig_path, service_account_token, workspace_root};
use tests::git::GitDaemon;

use crate::agent_harness::{AGENT_SA, AgentEnv};
use crate::plugin_promote::wait_healthy;

/// podman as it works on this kind of machine (crun fails on its cgroup mode).
fn podman(args: &[&str]) -> Result<Output> {
    Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(args)
        .output()
        .context("running podman (install the Debian packages podman and runc)")
}

/// Runs `scripts/image` (a cached no-op build when nothing changed, the static release build
/// of the agent the first time); returns the image ID it prints last.
fn build_image() -> Result<String> {
    let script = workspace_root().join("scripts/image");
    let mut cmd = Command::new(&script);
    tests::binaries::without_test_cargo_env(&mut cmd)
        .env("CARGO_TARGET_DIR", tests::binaries::target_dir()?);
    let out = cmd
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{} failed:\n{stderr}", script.display());
    }
    // Its build times and the image size, for the test log.
    for line in stderr.lines().filter(|l| l.starts_with("image: ")) {
        eprintln!("{line}");
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| l.trim().to_string())
        .filter(|id| id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| anyhow!("scripts/image printed no image ID"))
}

/// Removes the container when the test ends, however it ends.
struct Container(String);

impl Container {
    fn logs(&self) -> String {
        podman(&["logs", &self.0])
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "2", &self.0]);
    }
}

#[tokio::test]
async fn agent_image_syncs_and_heals_with_in_cluster_config() -> Result<()> {
    let image = build_image()?;
    let inspect = podman(&["image", "inspect", &image])?;
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout)
        .with_context(|| String::from_utf8_lossy(&inspect.stderr).into_owned())?;
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "65532:65532", "{config:#}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/gitops-agent"]));
    let revision = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(workspace_root())
        .output()?;
    let labels = &config["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        String::from_utf8_lossy(&revision.stdout).trim(),
        "the revision label names the commit built: {labels:#}"
    );
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION"),
        "{labels:#}"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/kubectl-gitops/kubectl-gitops",
        "{labels:#}"
    );

    let env = AgentEnv::new("agent-image").await?;
    env.copy_into_repo("examples/catalog-api", "")?;
    let commit = env.repo.commit("catalog-api")?;
    let daemon = GitDaemon::serve(env.repo.root())?;

    // What the kubelet mounts for a pod of the agent's ServiceAccount.
    let secrets = tempfile::Builder::new().prefix("gitops-sa-").tempdir()?;
    let admin = env.admin().await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), env.ns.name());
    let token = service_account_token(&accounts, env.ns.name(), AGENT_SA).await?;
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()?)?;
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == ADMIN_CONTEXT)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .context("admin context")?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .context("admin cluster")?;
    let server = cluster.server.clone().context("server")?;
    let port = server
        .rsplit(':')
        .next()
        .context("server port")?
        .to_string();
    let ca = cluster
        .certificate_authority_data
        .as_deref()
        .context("CA data")?;
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.decode(ca)?;
    std::fs::write(secrets.path().join("token"), token)?;
    std::fs::write(secrets.path().join("ca.crt"), ca)?;
    std::fs::write(secrets.path().join("namespace"), env.ns.name())?;
    for f in ["token", "ca.crt", "namespace"] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            secrets.path().join(f),
            std::fs::Permissions::from_mode(0o644),
        )?;
    }
    std::fs::set_permissions(
        secrets.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;

    let name = format!("gitops-agent-{}", env.ns.name());
    let mount = format!(
        "{}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
        secrets.path().display()
    );
    let url = daemon.url(env.repo.name());
    let run = podman(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--tmpfs",
        "/tmp:rw,mode=1777",
        // The pod's emptyDir. podman 4 ignores a tmpfs mode and mounts it root-owned 0755;
        // U=true gives it to the container's user, as fsGroup does in a pod.
        "--mount",
        "type=tmpfs,destination=/var/cache/gitops-agent,U=true",
        "--volume",
        &mount,
        "--env",
        "KUBERNETES_SERVICE_HOST=127.0.0.1",
        "--env",
        &format!("KUBERNETES_SERVICE_PORT={port}"),
        &image,
        &format!("--repo={url}"),
        "--path=overlays/prod",
        "--interval=5s",
        "--listen=127.0.0.1:0",
    ])?;
    assert!(
        run.status.success(),
        "podman run failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let container = Container(name);

    let synced = env.wait_synced(&commit).await;
    let synced = synced.with_context(|| format!("container log:\n{}", container.logs()))?;
    assert_eq!(synced.applied, 4, "{synced:#?}");
    wait_healthy(&env)
        .await
        .with_context(|| format!("container log:\n{}", container.logs()))?;

    // A drift: the Service deleted by hand comes back.
    let services: Api<Service> = Api::namespaced(admin, env.ns.name());
    let before = services.get("catalog-api").await?.metadata.uid;
    services
        .delete("catalog-api", &DeleteParams::default())
        .await?;
    let start = Instant::now();
    loop {
        if let Some(s) = services.get_opt("catalog-api").await?
            && s.metadata.uid != before
        {
            let managers: Vec<String> = s
                .metadata
                .managed_fields
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.manager)
                .collect();
            assert!(
                managers.contains(&"gitops-agent".to_string()),
                "{managers:?}"
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!(
                "Service not recreated; container log:\n{}",
                container.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = container.logs();
    assert!(logs.contains("recreated"), "{logs}");
    Ok(())
}
