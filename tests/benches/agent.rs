//! Agent at scale: 1000 managed objects on a real kube-apiserver, the real `gitops-agent`
//! binary authenticating as its ServiceAccount, and a real Git repository.
//!
//! Run with `cargo bench -p tests --bench agent`. Prints, against the targets of issue #4:
//! initial sync time, peak RSS, API writes during no-op resyncs, and drift repair latency.
//! A missed target is reported, not failed: this is a measurement, and the machine it runs on
//! decides much of it.

#[allow(dead_code)]
#[path = "../tests/e2e/agent_harness.rs"]
mod agent_harness;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use renderer::protocol::{PARENT_NAME, STATUS_DATA_KEY, SyncResult, SyncStatus};
use serde_json::json;
use tests::cluster::{
    ADMIN_CONTEXT, TestNamespace, admin_client, kubeconfig_path, service_account_kubeconfig,
};
use tests::git::Repo;

use agent_harness::{AGENT_SA, apply_agent_rbac, dynamic_api};

/// 250 apps × (Deployment, Service, ConfigMap, ServiceAccount); `GITOPS_BENCH_APPS=N` runs
/// fewer on a loaded machine (the figures then say how many objects they are for).
static APPS: LazyLock<usize> = LazyLock::new(|| {
    std::env::var("GITOPS_BENCH_APPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=250).contains(n))
        .unwrap_or(250)
});
const KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
];
const IMAGE: &str = "registry.example.com/app:1.0.1";
const DRIFT_REPAIRS: usize = 20;
const NOOP_WINDOW: Duration = Duration::from_secs(12);

const TARGET_RSS_MIB: f64 = 30.0;
/// How the agent runs on glibc: one malloc arena, so the render on a blocking thread and the
/// reconcile on the runtime threads share their peak (musl images ignore it).
const ONE_ARENA: &[(&str, &str)] = &[("MALLOC_ARENA_MAX", "1")];
/// mimalloc told to give memory back at once and to stay off huge pages (its defaults keep
/// freed pages for a second and commit arenas eagerly on Linux).
const MIMALLOC_TUNED: &[(&str, &str)] = &[
    ("MIMALLOC_PURGE_DELAY", "0"),
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ("MIMALLOC_ALLOW_THP", "0"),
];
const TARGET_NOOP_WRITES: u64 = 0;
const TARGET_DRIFT_MEDIAN: Duration = Duration::from_secs(2);
/// Issue #12: repairs do not wait behind resyncs, a first sync is concurrent, and a resync of
/// an unchanged commit costs a handful of requests.
const TARGET_DRIFT_P90: Duration = Duration::from_secs(1);
const TARGET_INITIAL_SYNC: Duration = Duration::from_secs(3);
const TARGET_REQUESTS_PER_NOOP_RESYNC: f64 = 20.0;

fn main() -> Result<()> {
    // The agent's own requests and writes are measured; 250 Deployments rolling out on KWOK
    // nodes would bury them under the controllers' (and no Deployment here needs pods).
    tests::cluster::api_only();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

fn app_yaml(i: usize) -> String {
    let name = format!("app-{i:03}");
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      serviceAccountName: {name}
      containers:
      - name: app
        image: registry.example.com/app:1.0.0
        ports:
        - containerPort: 8080
        envFrom:
        - configMapRef:
            name: {name}
        resources:
          requests:
            cpu: 10m
            memory: 32Mi
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  # Headless: the test apiserver's service range is a /24, too small for 250 ClusterIPs.
  clusterIP: None
  selector:
    app: {name}
  ports:
  - port: 8080
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  LEVEL: info
  GREETING: hello from {name}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}
"
    )
}

fn write_repo(repo: &Repo) -> Result<String> {
    let mut base = String::from("resources:\n");
    for i in 0..*APPS {
        repo.write(&format!("base/app-{i:03}.yaml"), &app_yaml(i))?;
        base.push_str(&format!("- app-{i:03}.yaml\n"));
    }
    repo.write("base/kustomization.yaml", &base)?;
    repo.write(
        "overlays/bench/kustomization.yaml",
        "resources:\n- ../../base\ncommonAnnotations:\n  bench.kubectl-gitops.invalid/env: bench\n\
         images:\n- name: registry.example.com/app\n  newTag: 1.0.1\n",
    )?;
    repo.commit("bench apps")
}

/// The agent process, killed when dropped so a failed run leaves nothing behind.
struct AgentProcess {
    child: Child,
    metrics_addr: String,
    log: PathBuf,
}

impl AgentProcess {
    fn start(
        ns: &str,
        repo: &Repo,
        kubeconfig: &Path,
        scratch: &Path,
        interval: &str,
    ) -> Result<Self> {
        let binary = tests::binaries::workspace_binary("agent", "gitops-agent")?;
        Self::start_binary(&binary, ONE_ARENA, ns, repo, kubeconfig, scratch, interval)
    }

    fn start_binary(
        binary: &Path,
        env: &[(&str, &str)],
        ns: &str,
        repo: &Repo,
        kubeconfig: &Path,
        scratch: &Path,
        interval: &str,
    ) -> Result<Self> {
        // Bind-then-release picks a free port we know, unlike --listen=…:0.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let log = scratch.join(format!("agent-{ns}-{interval}.log"));
        let out = std::fs::File::create(&log)?;
        // A profiler may wrap the agent, e.g. GITOPS_BENCH_AGENT_WRAPPER="heaptrack -o /tmp/agent"
        // (memory figures then include the profiler's own).
        let wrapper = std::env::var("GITOPS_BENCH_AGENT_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command.envs(env.iter().copied());
        let child = command
            .arg(format!("--repo={}", repo.file_url()))
            .arg("--path=overlays/bench")
            .arg(format!("--namespace={ns}"))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--cache-dir={}", scratch.join("cache").display()))
            .arg(format!("--listen={metrics_addr}"))
            .arg(format!("--interval={interval}"))
            .env("RUST_LOG", "info,kube=warn")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        eprintln!("bench: started {} (pid {})", binary.display(), child.id());
        Ok(Self {
            child,
            metrics_addr,
            log,
        })
    }

    fn memory(&self) -> Result<Memory> {
        let path = format!("/proc/{}/status", self.child.id());
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib = |field: &str| -> Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("no {field} in {path}"))
        };
        Ok(Memory {
            hwm_kib: kib("VmHWM:")?,
            rss_kib: kib("VmRSS:")?,
            anon_kib: kib("RssAnon:")?,
            file_kib: kib("RssFile:")?,
        })
    }

    /// The agent's `/metrics` text, over a plain HTTP/1.1 request (no client crate needed).
    fn metrics(&self) -> Result<String> {
        let mut stream = TcpStream::connect(&self.metrics_addr)
            .with_context(|| format!("connecting to {}", self.metrics_addr))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics_addr
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (_, body) = response
            .split_once("\r\n\r\n")
            .context("malformed HTTP response from the agent")?;
        Ok(body.to_owned())
    }

    fn reconciles(&self) -> Result<f64> {
        let text = self.metrics()?;
        Ok(series_sum(&text, "gitops_reconcile_total", |_| true))
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    /// SIGTERM first: the agent shuts down gracefully, and a wrapping profiler writes its data.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy)]
struct Memory {
    hwm_kib: u64,
    rss_kib: u64,
    /// Of `rss_kib`: heap, stacks and other anonymous memory, and the mapped binary.
    anon_kib: u64,
    file_kib: u64,
}

impl Memory {
    fn hwm_mib(self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |kib: u64| kib as f64 / 1024.0;
        write!(
            f,
            "{:>6.1} MiB / {:.1} MiB (anon {:.1}, file {:.1})",
            mib(self.hwm_kib),
            mib(self.rss_kib),
            mib(self.anon_kib),
            mib(self.file_kib)
        )
    }
}

/// Sum of the samples of Prometheus series `name` whose label text satisfies `labels`.
fn series_sum(text: &str, name: &str, labels: impl Fn(&str) -> bool) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels(label_text).then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

fn label<'a>(labels: &'a str, key: &str) -> &'a str {
    let needle = format!("{key}=\"");
    labels
        .split(',')
        .find_map(|kv| kv.strip_prefix(&needle))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or("")
}

/// Mutating requests the apiserver served, by `verb resource[/subresource]`, excluding
/// dry-runs (label `dry_run="All"`).
fn apiserver_writes() -> Result<BTreeMap<String, f64>> {
    apiserver_requests(true)
}

/// Requests the apiserver served, by `verb resource[/subresource]` (dry-runs as
/// `verb resource (dry-run)`), or only the mutating non-dry-run ones with `writes_only`.
fn apiserver_requests(writes_only: bool) -> Result<BTreeMap<String, f64>> {
    let output = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig_path()?.display()))
        .arg(format!("--context={ADMIN_CONTEXT}"))
        .args(["get", "--raw", "/metrics"])
        .output()
        .context("running kubectl get --raw /metrics")?;
    if !output.status.success() {
        bail!(
            "kubectl get --raw /metrics: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let verb = label(labels, "verb");
        let dry_run = !label(labels, "dry_run").is_empty();
        let mutating = [
            "POST",
            "PUT",
            "PATCH",
            "APPLY",
            "DELETE",
            "DELETECOLLECTION",
        ]
        .contains(&verb);
        if writes_only && (!mutating || dry_run) {
            continue;
        }
        let mut resource = label(labels, "resource").to_owned();
        if dry_run {
            resource.push_str(" (dry-run)");
        }
        let sub = label(labels, "subresource");
        if !sub.is_empty() {
            resource = format!("{resource}/{sub}");
        }
        *out.entry(format!("{verb} {resource}")).or_default() += value.trim().parse::<f64>()?;
    }
    Ok(out)
}

fn diff_counts(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (k.clone(), d as u64))
        })
        .collect()
}

/// resourceVersion of every object of the managed kinds in the namespace (the ApplySet parent
/// is one of the ConfigMaps).
async fn versions(client: &Client, ns: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (api_version, kind) in KINDS {
        for obj in dynamic_api(client, ns, api_version, kind)
            .list(&Default::default())
            .await?
        {
            out.insert(
                format!("{kind}/{}", obj.name_any()),
                obj.resource_version().unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

async fn status(client: &Client, ns: &str) -> Result<Option<SyncStatus>> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let Some(cm) = cms.get_opt(PARENT_NAME).await? else {
        return Ok(None);
    };
    match cm.data.as_ref().and_then(|d| d.get(STATUS_DATA_KEY)) {
        Some(json) => Ok(Some(SyncStatus::from_json(json)?)),
        None => Ok(None),
    }
}

async fn wait_synced(
    client: &Client,
    ns: &str,
    commit: &str,
    agent: &AgentProcess,
    timeout: Duration,
) -> Result<SyncStatus> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < timeout {
        if let Some(s) = status(client, ns).await? {
            if s.result == SyncResult::Synced && s.last_applied_revision.as_deref() == Some(commit)
            {
                return Ok(s);
            }
            last = Some(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "not Synced at {commit} within {timeout:?}; last status {last:#?}\nagent log:\n{}",
        agent.logs()
    )
}

/// Waits until `reconciles` more resyncs than now have finished.
async fn wait_reconciles(agent: &AgentProcess, n: f64, timeout: Duration) -> Result<()> {
    let target = agent.reconciles()? + n;
    let start = Instant::now();
    while agent.reconciles()? < target {
        if start.elapsed() > timeout {
            bail!("fewer than {n} resyncs in {timeout:?}\n{}", agent.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Changes a managed field as another field manager would, then times until Git's value is
/// back. Alternates a ConfigMap's data (`kubectl edit`) and a Deployment's image
/// (`kubectl set image`) across different apps.
async fn drift_repairs(client: &Client, ns: &str, agent: &AgentProcess) -> Result<Vec<Duration>> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut times = Vec::new();
    for round in 0..DRIFT_REPAIRS {
        let name = format!("app-{:03}", (round * 37) % *APPS);
        let start = Instant::now();
        if round % 2 == 0 {
            let params = PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            };
            cms.patch(
                &name,
                &params,
                &Patch::Merge(json!({"data": {"LEVEL": format!("debug-{round}")}})),
            )
            .await?;
        } else {
            let params = PatchParams {
                field_manager: Some("kubectl-set".into()),
                ..Default::default()
            };
            let patch = json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": format!("registry.example.com/app:hotfix-{round}")}
            ]}}}});
            deployments
                .patch(&name, &params, &Patch::Strategic(&patch))
                .await?;
        }
        loop {
            let restored = if round % 2 == 0 {
                cms.get(&name)
                    .await?
                    .data
                    .and_then(|d| d.get("LEVEL").cloned())
                    .as_deref()
                    == Some("info")
            } else {
                deployments
                    .get(&name)
                    .await?
                    .spec
                    .and_then(|s| s.template.spec)
                    .and_then(|s| s.containers[0].image.clone())
                    .as_deref()
                    == Some(IMAGE)
            };
            if restored {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!(
                    "drift on {name} not repaired within 60 s\nagent log:\n{}",
                    agent.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.push(start.elapsed());
        // Past the agent's debounce, so each round is repaired on its own.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(times)
}

fn median_p90(times: &[Duration]) -> (Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let n = sorted.len();
    let median = if n.is_multiple_of(2) {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    } else {
        sorted[n / 2]
    };
    // Nearest-rank p90.
    let p90 = sorted[(n * 9).div_ceil(10) - 1];
    (median, p90)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "OK" } else { "MISSED" }
}

/// A fresh namespace with the agent's RBAC, and a kubeconfig for the agent's ServiceAccount.
async fn agent_namespace(admin: &Client, prefix: &str) -> Result<(TestNamespace, PathBuf)> {
    let ns = TestNamespace::create(prefix).await?;
    apply_agent_rbac(admin, ns.name()).await?;
    let kubeconfig = service_account_kubeconfig(ns.name(), AGENT_SA).await?;
    Ok((ns, kubeconfig))
}

/// CPU seconds (user + system) the process has used, from /proc (USER_HZ is 100 on Linux).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(") ").context("malformed /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// CPU seconds the shared control plane process (kube-apiserver and etcd) has used so far.
fn control_plane_cpu() -> Result<f64> {
    let dir = kubeconfig_path()?
        .parent()
        .context("kubeconfig has no directory")?;
    let pid = std::fs::read_to_string(dir.join("pid"))?;
    cpu_seconds(pid.trim().parse()?)
}

/// The build and the allocator, measured: the agent as shipped (built for size, glibc's malloc
/// with one arena) against the same code built for speed (the release profile), glibc with its
/// default arenas, and the agent built with mimalloc (defaults, then tuned), each syncing the
/// same repository into a namespace of its own and resyncing every 2 s, one after the other.
async fn compare_builds(
    admin: &Client,
    repo: &Repo,
    commit: &str,
    scratch: &Path,
    (for_speed, mimalloc): (&Path, &Path),
) -> Result<()> {
    const RESYNCS: f64 = 3.0;
    let shipped = tests::binaries::workspace_binary("agent", "gitops-agent")?;
    /// What runs, which binary, and the environment it runs with.
    type Peer<'a> = (&'a str, &'a Path, &'a [(&'a str, &'a str)]);
    let peers: [Peer; 5] = [
        ("glibc, one arena (shipped)", &shipped, ONE_ARENA),
        ("opt-level 3 (release)", for_speed, ONE_ARENA),
        ("glibc, default arenas", &shipped, &[]),
        ("mimalloc", mimalloc, &[]),
        ("mimalloc, tuned", mimalloc, MIMALLOC_TUNED),
    ];
    let mut rows = Vec::new();
    for (name, binary, env) in peers {
        let (ns, kubeconfig) = agent_namespace(admin, "bench-alloc").await?;
        let agent =
            AgentProcess::start_binary(binary, env, ns.name(), repo, &kubeconfig, scratch, "2s")?;
        let start = Instant::now();
        wait_synced(admin, ns.name(), commit, &agent, Duration::from_secs(600)).await?;
        let sync = start.elapsed();
        wait_reconciles(&agent, RESYNCS, Duration::from_secs(300)).await?;
        let memory = agent.memory()?;
        let cpu = cpu_seconds(agent.child.id())?;
        rows.push((name, sync, memory, cpu));
        drop(agent);
    }
    println!();
    println!(
        "build and allocator at {} objects (initial sync, then {RESYNCS:.0} resyncs; same run, same repository):",
        *APPS * 4
    );
    for (name, sync, memory, cpu) in &rows {
        println!(
            "  {name:<26} sync {:>6.2} s, CPU {cpu:>6.2} s, VmHWM / VmRSS {memory}",
            sync.as_secs_f64()
        );
    }
    let glibc = &rows[0];
    for (name, sync, memory, cpu) in &rows[1..] {
        println!(
            "  {name} / shipped: peak RSS x{:.2}, sync time x{:.2}, CPU x{:.2}",
            memory.hwm_mib() / glibc.2.hwm_mib(),
            sync.as_secs_f64() / glibc.1.as_secs_f64(),
            cpu / glibc.3.max(0.01)
        );
    }
    Ok(())
}

async fn run() -> Result<()> {
    let admin = admin_client().await?;
    let scratch = tempfile::Builder::new()
        .prefix("gitops-agent-bench-")
        .tempdir()?;
    let repo = Repo::new()?;
    let commit = write_repo(&repo)?;
    // GITOPS_BENCH_SKIP_ALLOCATORS: only the phases below (the build and allocator comparison
    // builds two more agents and syncs five times more).
    if std::env::var_os("GITOPS_BENCH_SKIP_ALLOCATORS").is_none() {
        // Built before the clock starts, the peers first: the mimalloc build lands on the
        // shipped one's path.
        let mimalloc = tests::binaries::workspace_binary_variant(
            "agent",
            "gitops-agent",
            &["--features", "mimalloc"],
            &scratch.path().join("gitops-agent-mimalloc"),
        )?;
        let for_speed = tests::binaries::workspace_binary_variant(
            "agent",
            "gitops-agent",
            &["--profile", "release"],
            &scratch.path().join("gitops-agent-release"),
        )?;
        tests::binaries::workspace_binary("agent", "gitops-agent")?;
        let variants = (for_speed.as_path(), mimalloc.as_path());
        compare_builds(&admin, &repo, &commit, scratch.path(), variants).await?;
    }
    tests::binaries::workspace_binary("agent", "gitops-agent")?;
    if std::env::var_os("GITOPS_BENCH_ALLOCATORS_ONLY").is_some() {
        return Ok(());
    }
    let (ns, kubeconfig) = agent_namespace(&admin, "bench-agent").await?;

    // Phase 1: a busy agent (resync every 2 s) for sync time, memory and no-op writes.
    let plane_cpu_before = control_plane_cpu()?;
    let sync_requests_before = apiserver_requests(false)?;
    let agent = AgentProcess::start(ns.name(), &repo, &kubeconfig, scratch.path(), "2s")?;
    let start = Instant::now();
    let synced = wait_synced(&admin, ns.name(), &commit, &agent, Duration::from_secs(600)).await?;
    let sync_time = start.elapsed();
    // Both share the machine's cores: whose CPU the sync spends says where to look.
    let sync_cpu_agent = cpu_seconds(agent.child.id())?;
    let sync_cpu_plane = control_plane_cpu()? - plane_cpu_before;
    let sync_requests = diff_counts(&sync_requests_before, &apiserver_requests(false)?);
    if synced.applied as usize != *APPS * 4 {
        bail!(
            "expected {} objects applied, status says {}",
            *APPS * 4,
            synced.applied
        );
    }
    let mem_synced = agent.memory()?;
    // The status is written before the reconcile's duration is recorded: wait for the latter.
    while agent.reconciles()? < 1.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_reconcile = series_sum(
        &agent.metrics()?,
        "gitops_reconcile_duration_seconds_sum",
        |_| true,
    );

    // Let the first resyncs and the watches settle before counting.
    wait_reconciles(&agent, 2.0, Duration::from_secs(120)).await?;
    let rv_before = versions(&admin, ns.name()).await?;
    let api_before = apiserver_writes()?;
    let requests_before = apiserver_requests(false)?;
    let reconciles_before = agent.reconciles()?;
    let metrics_before = agent.metrics()?;
    tokio::time::sleep(NOOP_WINDOW).await;
    let reconciles_during = agent.reconciles()? - reconciles_before;
    let requests_after = apiserver_requests(false)?;
    let api_after = apiserver_writes()?;
    let rv_after = versions(&admin, ns.name()).await?;
    let metrics_after = agent.metrics()?;
    let changed: Vec<&String> = rv_after
        .iter()
        .filter(|(k, v)| rv_before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(rv_before.keys().filter(|k| !rv_after.contains_key(*k)))
        .collect();
    let api_delta = diff_counts(&api_before, &api_after);
    // Every request in the window but the benchmark's own /metrics reads (no resource) and the
    // apiserver's renewal of its identity Lease.
    let requests_delta: BTreeMap<String, u64> = diff_counts(&requests_before, &requests_after)
        .into_iter()
        .filter(|(k, _)| {
            let resource = k.split_once(' ').map_or("", |(_, r)| r);
            !resource.is_empty() && !resource.starts_with("leases")
        })
        .collect();
    let requests_per_resync =
        requests_delta.values().sum::<u64>() as f64 / reconciles_during.max(1.0);
    // The apiserver renews its own identity Lease in kube-system; the agent runs without
    // --leader-elect and never writes Leases.
    let agent_api_writes: u64 = api_delta
        .iter()
        .filter(|(k, _)| !k.ends_with(" leases"))
        .map(|(_, v)| v)
        .sum();
    let resync_secs = {
        let d_sum = series_sum(
            &metrics_after,
            "gitops_reconcile_duration_seconds_sum",
            |_| true,
        ) - series_sum(
            &metrics_before,
            "gitops_reconcile_duration_seconds_sum",
            |_| true,
        );
        d_sum / reconciles_during.max(1.0)
    };
    let mem_noop = agent.memory()?;

    let drift_busy = drift_repairs(&admin, ns.name(), &agent).await?;
    let mem_drift = agent.memory()?;
    drop(agent);

    // Phase 2: the same agent with a long interval, so only the watch drives repairs.
    let agent = AgentProcess::start(ns.name(), &repo, &kubeconfig, scratch.path(), "10m")?;
    let start = Instant::now();
    // The parent already says Synced from phase 1: wait for this agent's own first reconcile.
    loop {
        if agent.reconciles().unwrap_or(0.0) >= 1.0 {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("restarted agent did not reconcile\n{}", agent.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_synced(&admin, ns.name(), &commit, &agent, Duration::from_secs(60)).await?;
    let restart_sync = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let drift_idle = drift_repairs(&admin, ns.name(), &agent).await?;
    let mem_idle = agent.memory()?;
    drop(agent);

    let peak_mib = [mem_synced, mem_noop, mem_drift]
        .iter()
        .map(|m| m.hwm_mib())
        .fold(0.0, f64::max);
    let noop_writes = changed.len() as u64 + agent_api_writes;
    let (busy_median, busy_p90) = median_p90(&drift_busy);
    let (idle_median, idle_p90) = median_p90(&drift_idle);

    println!();
    println!(
        "gitops-agent at {} objects ({} apps x Deployment, Service, ConfigMap, ServiceAccount)",
        *APPS * 4,
        *APPS
    );
    println!(
        "  initial sync (start -> Synced):       {:>8.2} s  (first reconcile {first_reconcile:.2} s by the agent's histogram)",
        sync_time.as_secs_f64()
    );
    println!(
        "    CPU during it: agent {sync_cpu_agent:.2} s, control plane (API server + etcd) {sync_cpu_plane:.2} s"
    );
    println!("    requests during it (all clients): {sync_requests:?}");
    println!(
        "  restart sync (no changes, 2nd agent): {:>8.2} s",
        restart_sync.as_secs_f64()
    );
    println!("  no-op resync duration (mean):         {resync_secs:>8.2} s");
    println!("  memory, interval=2s agent (VmHWM / VmRSS (of which anon, file)):");
    println!("    after sync:                         {mem_synced}");
    println!("    after {reconciles_during:.0} no-op resyncs:             {mem_noop}");
    println!("    after {DRIFT_REPAIRS} drift repairs:              {mem_drift}");
    println!("  memory, interval=10m agent after sync and {DRIFT_REPAIRS} repairs: {mem_idle}");
    println!(
        "  no-op window: {:.0} s, {reconciles_during:.0} resyncs",
        NOOP_WINDOW.as_secs_f64()
    );
    println!(
        "    objects whose resourceVersion changed: {} {:?}",
        changed.len(),
        changed
    );
    println!("    apiserver writes (non-dry-run) in the window: {api_delta:?}");
    println!(
        "    apiserver requests in the window (all verbs): {requests_delta:?}, {requests_per_resync:.1} per resync"
    );
    println!(
        "  drift repair, interval=2s  (n={}): median {:.3} s, p90 {:.3} s, max {:.3} s",
        drift_busy.len(),
        busy_median.as_secs_f64(),
        busy_p90.as_secs_f64(),
        drift_busy.iter().max().unwrap().as_secs_f64()
    );
    println!(
        "  drift repair, interval=10m (n={}): median {:.3} s, p90 {:.3} s, max {:.3} s",
        drift_idle.len(),
        idle_median.as_secs_f64(),
        idle_p90.as_secs_f64(),
        drift_idle.iter().max().unwrap().as_secs_f64()
    );
    println!("targets:");
    println!(
        "  peak RSS <= {TARGET_RSS_MIB} MiB:         {peak_mib:.1} MiB  {}",
        verdict(peak_mib <= TARGET_RSS_MIB)
    );
    println!(
        "  no-op writes == {TARGET_NOOP_WRITES}:            {noop_writes}  {}",
        verdict(noop_writes == TARGET_NOOP_WRITES)
    );
    println!(
        "  initial sync <= {:.0} s:            {:.2} s  {}",
        TARGET_INITIAL_SYNC.as_secs_f64(),
        sync_time.as_secs_f64(),
        verdict(sync_time <= TARGET_INITIAL_SYNC)
    );
    println!(
        "  requests per no-op resync <= {TARGET_REQUESTS_PER_NOOP_RESYNC:.0}: {requests_per_resync:.1}  {}",
        verdict(requests_per_resync <= TARGET_REQUESTS_PER_NOOP_RESYNC)
    );
    println!(
        "  drift p90 <= {:.0} s (interval=2s):  {:.3} s  {}",
        TARGET_DRIFT_P90.as_secs_f64(),
        busy_p90.as_secs_f64(),
        verdict(busy_p90 <= TARGET_DRIFT_P90)
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "  load average during the run (1/5/15 min): {}",
            load.trim()
        );
    }
    for (what, median) in [("interval=2s", busy_median), ("interval=10m", idle_median)] {
        println!(
            "  drift median <= {:.0} s ({what}): {:.3} s  {}",
            TARGET_DRIFT_MEDIAN.as_secs_f64(),
            median.as_secs_f64(),
            verdict(median <= TARGET_DRIFT_MEDIAN)
        );
    }
    Ok(())
}
