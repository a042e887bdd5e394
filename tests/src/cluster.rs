//! One real control plane per test-binary run, a fresh namespace per test.
//!
//! The control plane starts on first use: either the cluster named by the environment
//! variable [`KUBECONFIG_ENV`] (nothing is started), or the binary from
//! `scripts/dev-cluster build` with `--exit-with-parent --ephemeral`, so it stops and removes
//! its state when the test process exits. The first run on a machine builds that binary
//! (10-20 minutes); later runs reuse it from `~/.cache/kubectl-gitops`.
//!
//! Only the kubeconfig path is shared between tests: every `#[tokio::test]` has its own
//! runtime, and a `kube::Client` must not outlive the runtime it was created on, so each test
//! builds its clients with [`admin_client`] / [`dev_client`].
//!
//! The shared control plane runs workloads: kube-controller-manager's workload controllers,
//! kube-scheduler and two KWOK nodes (`scripts/kwok-tool`), so Deployments get pods that
//! become Running and Ready, and images tagged `broken` or `crash` fail as on a real cluster
//! (`tests/control-plane/kwok-stages.yaml`). Extra control planes ([`ExtraControlPlane`], for
//! multi-cluster tests) run only the API server and the namespace controller. ServiceAccounts
//! exist only if a test creates them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{
    AuthInfo, Context as KubeContext, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedContext,
};
use kube::{Api, Client, Config};

/// Environment variable naming the kubeconfig of an already running cluster to reuse.
pub const KUBECONFIG_ENV: &str = "GITOPS_TEST_KUBECONFIG";
/// Context (in the kubeconfig) of the `admin` user, group `system:masters`.
pub const ADMIN_CONTEXT: &str = "admin";
/// Context of the `dev` user, who has no RBAC permissions at all.
pub const DEV_CONTEXT: &str = "dev";
/// Label put on every namespace created by [`TestNamespace`].
pub const TEST_NAMESPACE_LABEL: &str = "kubectl-gitops.test/namespace";

const START_TIMEOUT: Duration = Duration::from_secs(180);

struct ControlPlane {
    kubeconfig: PathBuf,
    // Held so the child is not reaped/forgotten; it exits by itself with this process.
    _child: Option<Child>,
    // Holds generated ServiceAccount kubeconfigs. A static is never dropped, so a started
    // control plane removes this directory itself (`--ephemeral`, its --dir) when we exit;
    // with a reused cluster it is left behind in the temp directory (a few small files).
    scratch: PathBuf,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
/// Set by [`api_only`]: the shared control plane starts without workload controllers and nodes.
static API_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the shared control plane of this process an API server alone (no controllers, no
/// KWOK nodes), for benchmarks that count the agent's own requests and writes: with workloads the
/// controllers' rollouts dominate both. Call before the first use of the cluster.
pub fn api_only() {
    API_ONLY.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn control_plane() -> Result<&'static ControlPlane> {
    CONTROL_PLANE
        .get_or_init(|| start_or_reuse().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("control plane unavailable: {e}"))
}

/// Path of the admin kubeconfig (contexts [`ADMIN_CONTEXT`], current, and [`DEV_CONTEXT`]).
///
/// Starts the control plane on first call and blocks until `/readyz` is ok.
pub fn kubeconfig_path() -> Result<&'static Path> {
    Ok(&control_plane()?.kubeconfig)
}

/// A client for the `admin` user (`system:masters`).
pub async fn admin_client() -> Result<Client> {
    client_for(kubeconfig_path()?, Some(ADMIN_CONTEXT)).await
}

/// A client for the unprivileged `dev` user: every request is forbidden unless a test grants
/// it RBAC permissions.
pub async fn dev_client() -> Result<Client> {
    client_for(kubeconfig_path()?, Some(DEV_CONTEXT)).await
}

/// A client for any kubeconfig, e.g. one from [`service_account_kubeconfig`]; `context`
/// `None` means its current context.
pub async fn client_for(kubeconfig: &Path, context: Option<&str>) -> Result<Client> {
    let raw = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(raw, &options)
        .await
        .with_context(|| format!("loading context {context:?} of {}", kubeconfig.display()))?;
    Client::try_from(config)
        .with_context(|| format!("building a client for {}", kubeconfig.display()))
}

const SCRATCH_PREFIX: &str = "gitops-test-";

fn start_or_reuse() -> Result<ControlPlane> {
    remove_abandoned_scratch_dirs();
    let scratch = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir()
        .context("creating a scratch directory for the test run")?
        .keep();
    if let Some(path) = std::env::var_os(KUBECONFIG_ENV) {
        let kubeconfig = PathBuf::from(path);
        if !kubeconfig.is_file() {
            bail!("{KUBECONFIG_ENV}={} is not a file", kubeconfig.display());
        }
        return Ok(ControlPlane {
            kubeconfig,
            _child: None,
            scratch,
        });
    }

    let binary = control_plane_binary()?;
    let kwok = if API_ONLY.load(std::sync::atomic::Ordering::Relaxed) {
        None
    } else {
        Some(built_tool("scripts/kwok-tool")?)
    };
    let (child, kubeconfig) = spawn(&binary, &scratch, kwok.as_deref())?;
    Ok(ControlPlane {
        kubeconfig,
        _child: Some(child),
        scratch,
    })
}

/// Starts the control plane binary with its state in `dir`, with workloads if given KWOK;
/// returns once its kubeconfig is written (after `/readyz` is ok and the nodes are Ready).
fn spawn(binary: &Path, dir: &Path, kwok: Option<&Path>) -> Result<(Child, PathBuf)> {
    spawn_with(binary, dir, kwok, true, &[])
}

fn spawn_with(
    binary: &Path,
    dir: &Path,
    kwok: Option<&Path>,
    ephemeral: bool,
    apiserver_args: &[&str],
) -> Result<(Child, PathBuf)> {
    let started = Instant::now();
    let mut command = Command::new(binary);
    if let Some(kwok) = kwok {
        command.arg("--kwok").arg(kwok);
    }
    for arg in apiserver_args {
        command.arg(format!("--apiserver-arg={arg}"));
    }
    if ephemeral {
        command.arg("--ephemeral");
    }
    let mut child = command
        .arg("--dir")
        .arg(dir)
        .arg("--exit-with-parent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let log = OutputTail::capture(&mut child);

    let kubeconfig = dir.join("kubeconfig");
    while !kubeconfig.is_file() {
        if let Some(status) = child
            .try_wait()
            .context("polling the control plane process")?
        {
            bail!(
                "control plane {} exited with {status} during start-up:\n{}",
                binary.display(),
                log.text()
            );
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            bail!(
                "control plane not ready after {START_TIMEOUT:?}:\n{}",
                log.text()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "tests::cluster: control plane ready in {:.1}s ({})",
        started.elapsed().as_secs_f64(),
        kubeconfig.display()
    );
    Ok((child, kubeconfig))
}

/// A second (third...) control plane of its own, for tests that span clusters; stopped when
/// dropped. Its kubeconfig has the same `admin` and `dev` contexts as the shared one.
pub struct ExtraControlPlane {
    child: Child,
    kubeconfig: PathBuf,
    // Removed by the control plane itself (`--ephemeral`) when it stops.
    dir: PathBuf,
}

impl ExtraControlPlane {
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// One whose kube-apiserver gets these flags too, e.g. `--watch-cache=false`.
    pub fn start_with(apiserver_args: &[&str]) -> Result<Self> {
        let binary = control_plane_binary()?;
        let dir = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir()
            .context("creating a directory for an extra control plane")?
            .keep();
        let (child, kubeconfig) = spawn_with(&binary, &dir, None, true, apiserver_args)?;
        Ok(Self {
            child,
            kubeconfig,
            dir,
        })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Its etcd, for tests that advance or compact its revisions.
    pub fn etcd(&self) -> Result<crate::etcd::Etcd> {
        let path = self.dir.join("etcd-url");
        let url = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        crate::etcd::Etcd::new(url.trim())
    }

    /// A client for one of its contexts ([`ADMIN_CONTEXT`] or [`DEV_CONTEXT`]).
    pub async fn client(&self, context: &str) -> Result<Client> {
        client_for(&self.kubeconfig, Some(context)).await
    }
}

impl Drop for ExtraControlPlane {
    fn drop(&mut self) {
        // SIGTERM lets it remove its --ephemeral directory; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An API server (and its etcd) that a test can restart on the same state: etcd data,
/// certificates and tokens survive, the port changes, so clients reach it through a relay
/// whose address stays put. Stopped and its directory removed when dropped.
pub struct RestartableControlPlane {
    binary: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    relay: crate::git::StallingRelay,
    /// The admin kubeconfig, rewritten to name the relay.
    kubeconfig: PathBuf,
}

impl RestartableControlPlane {
    pub fn start() -> Result<Self> {
        let binary = control_plane_binary()?;
        let dir = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir()
            .context("creating a directory for a restartable control plane")?
            .keep();
        let (child, kubeconfig) = spawn_with(&binary, &dir, None, false, &[])?;
        let port = server_port(&kubeconfig)?;
        let relay = crate::git::StallingRelay::start(port)?;
        let relayed = dir.with_extension("kubeconfig");
        write_with_port(&kubeconfig, &relayed, relay.port())?;
        Ok(Self {
            binary,
            dir,
            child: Some(child),
            relay,
            kubeconfig: relayed,
        })
    }

    /// The admin kubeconfig through the relay: valid across restarts.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub async fn client(&self, context: &str) -> Result<Client> {
        client_for(&self.kubeconfig, Some(context)).await
    }

    /// SIGTERM (a graceful shutdown, as a rolling restart of the API server does).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same state; returns once it is ready.
    pub fn start_again(&mut self) -> Result<()> {
        // The old one's kubeconfig names the old port: gone before the wait for the new one.
        let _ = std::fs::remove_file(self.dir.join("kubeconfig"));
        let (child, kubeconfig) = spawn_with(&self.binary, &self.dir, None, false, &[])?;
        self.child = Some(child);
        self.relay.retarget(server_port(&kubeconfig)?);
        Ok(())
    }
}

impl Drop for RestartableControlPlane {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

fn server_port(kubeconfig: &Path) -> Result<u16> {
    let config = Kubeconfig::read_from(kubeconfig)?;
    config
        .clusters
        .iter()
        .find_map(|c| c.cluster.as_ref()?.server.clone())
        .and_then(|s| s.rsplit_once(':')?.1.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no server port in {}", kubeconfig.display()))
}

fn write_with_port(from: &Path, to: &Path, port: u16) -> Result<()> {
    let mut config = Kubeconfig::read_from(from)?;
    for cluster in &mut config.clusters {
        if let Some(c) = cluster.cluster.as_mut()
            && let Some((host, _)) = c.server.as_deref().and_then(|s| s.rsplit_once(':'))
        {
            c.server = Some(format!("{host}:{port}"));
        }
    }
    std::fs::write(to, serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("writing {}", to.display()))
}

/// A control plane killed with SIGKILL (a cancelled run, an OOM kill) cannot remove its
/// `--ephemeral` directory, and each one holds ~120 MiB of preallocated etcd WAL. Only
/// directories whose pid file names a process that no longer exists are removed, so the
/// control planes of concurrent test runs are left alone.
fn remove_abandoned_scratch_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_scratch = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(SCRATCH_PREFIX));
        if !is_scratch {
            continue;
        }
        let Ok(pid) = std::fs::read_to_string(path.join("pid")) else {
            continue;
        };
        let pid = pid.trim();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Runs `scripts/dev-cluster build`, which builds or finds the cached binary.
fn control_plane_binary() -> Result<PathBuf> {
    built_tool("scripts/dev-cluster")
}

/// Runs `<script> build` (a script that builds or finds a cached binary and prints its path
/// last) and returns that path.
fn built_tool(script: &str) -> Result<PathBuf> {
    let script = workspace_root().join(script);
    // stderr is inherited so a cold build's progress message reaches the terminal.
    let output = Command::new(&script)
        .arg("build")
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} build", script.display()))?;
    if !output.status.success() {
        bail!("{} build failed with {}", script.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = stdout
        .lines()
        .last()
        .map(|line| PathBuf::from(line.trim()))
        .ok_or_else(|| anyhow!("{} build printed no path", script.display()))?;
    if !path.is_file() {
        bail!(
            "{} build printed {}, which is not a file",
            script.display(),
            path.display()
        );
    }
    Ok(path)
}

pub fn workspace_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is tests/; the workspace root is its parent.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives inside the workspace")
        .to_path_buf()
}

/// Keeps draining the child's output (so it never blocks on a full pipe) and remembers the
/// last lines for error messages.
#[derive(Clone)]
struct OutputTail(Arc<Mutex<VecDeque<String>>>);

impl OutputTail {
    const LINES: usize = 60;

    fn capture(child: &mut Child) -> Self {
        let tail = OutputTail(Arc::new(Mutex::new(VecDeque::new())));
        if let Some(out) = child.stdout.take() {
            tail.drain(out);
        }
        if let Some(err) = child.stderr.take() {
            tail.drain(err);
        }
        tail
    }

    fn drain(&self, stream: impl Read + Send + 'static) {
        let tail = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut lines = tail.0.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() == Self::LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A namespace of its own for one test, deleted when dropped.
///
/// ```no_run
/// # async fn t() -> anyhow::Result<()> {
/// let ns = tests::cluster::TestNamespace::create("apply").await?;
/// let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
///     kube::Api::namespaced(tests::cluster::admin_client().await?, ns.name());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
}

impl TestNamespace {
    /// Creates `gt-<prefix>-<random>`; `prefix` should be a short lowercase DNS label.
    pub async fn create(prefix: &str) -> Result<Self> {
        let name = unique_name(prefix);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(admin_client().await?)
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace { name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be shutting down: use a private one.
        let result = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building a runtime to delete the namespace")?;
            runtime.block_on(async {
                let api = Api::<Namespace>::all(admin_client().await?);
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e).with_context(|| format!("deleting namespace {name}")),
                }
            })
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("tests::cluster: {e:#}"),
            Err(_) => eprintln!("tests::cluster: deleting namespace {} panicked", self.name),
        }
    }
}

/// A name unique across tests and concurrent test processes: `gt-<prefix>-<10 hex chars>`.
pub fn unique_name(prefix: &str) -> String {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process; the counter separates calls within one.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = RandomState::new().hash_one((std::process::id(), n));
    let prefix: String = prefix.chars().take(40).collect();
    format!("gt-{prefix}-{:010x}", hash & 0xff_ffff_ffff)
}

/// Writes a kubeconfig that authenticates as ServiceAccount `sa_name` in namespace `ns`, with
/// a token from the TokenRequest API (valid for one hour). Creates the ServiceAccount if it
/// does not exist; grants nothing — bind the Role under test yourself.
pub async fn service_account_kubeconfig(ns: &str, sa_name: &str) -> Result<PathBuf> {
    let plane = control_plane()?;
    service_account_kubeconfig_for(&plane.kubeconfig, &plane.scratch, ns, sa_name).await
}

/// A token for ServiceAccount `sa_name` from the TokenRequest API, valid for one hour (what the
/// kubelet mounts for a pod).
pub async fn service_account_token(
    accounts: &Api<ServiceAccount>,
    ns: &str,
    sa_name: &str,
) -> Result<String> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    accounts
        .create_token_request(sa_name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {ns}/{sa_name}"))?
        .status
        .and_then(|status| status.token)
        .ok_or_else(|| anyhow!("TokenRequest for {ns}/{sa_name} returned no token"))
}

/// [`service_account_kubeconfig`] for any control plane, by its admin kubeconfig; the file is
/// written into `out_dir`.
pub async fn service_account_kubeconfig_for(
    admin_kubeconfig: &Path,
    out_dir: &Path,
    ns: &str,
    sa_name: &str,
) -> Result<PathBuf> {
    let client = client_for(admin_kubeconfig, Some(ADMIN_CONTEXT)).await?;
    let accounts = Api::<ServiceAccount>::namespaced(client, ns);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(sa_name.to_owned()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => {
            return Err(e).with_context(|| format!("creating ServiceAccount {ns}/{sa_name}"));
        }
    }
    let token = service_account_token(&accounts, ns, sa_name).await?;

    let mut config = Kubeconfig::read_from(admin_kubeconfig)
        .with_context(|| format!("reading {}", admin_kubeconfig.display()))?;
    let cluster = config
        .contexts
        .iter()
        .find(|c| c.name == ADMIN_CONTEXT)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| {
            anyhow!(
                "{} has no context {ADMIN_CONTEXT}",
                admin_kubeconfig.display()
            )
        })?;
    let user = format!("system:serviceaccount:{ns}:{sa_name}");
    config.auth_infos = vec![NamedAuthInfo {
        name: user.clone(),
        auth_info: Some(AuthInfo {
            token: Some(token.into()),
            ..AuthInfo::default()
        }),
        other: Default::default(),
    }];
    config.contexts = vec![NamedContext {
        name: user.clone(),
        context: Some(KubeContext {
            cluster,
            user: Some(user.clone()),
            namespace: Some(ns.to_owned()),
            ..KubeContext::default()
        }),
        other: Default::default(),
    }];
    config.current_context = Some(user);

    let path = out_dir.join(format!("kubeconfig-{ns}-{sa_name}.json"));
    // JSON is valid YAML, so kubectl and kube-rs both read this file.
    let json = serde_json::to_vec_pretty(&config).context("serializing the kubeconfig")?;
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
