//! Shared set-up for the agent scenarios: a namespace with the agent's ServiceAccount bound by
//! the Role from `manifests/base`, a real Git repository, and `gitops-agent` as a local process
//! authenticating as that ServiceAccount.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use renderer::protocol::{
    MEMBERS_DATA_KEY, MemberRevisions, PARENT_NAME, STATUS_DATA_KEY, SyncResult, SyncStatus,
};
use serde_json::Value;
use tests::cluster::{TestNamespace, admin_client, service_account_kubeconfig};
use tests::git::Repo;

pub const AGENT_SA: &str = "gitops-agent";

pub struct AgentEnv {
    pub ns: TestNamespace,
    pub repo: Repo,
    kubeconfig: PathBuf,
    scratch: tempfile::TempDir,
    agent: Option<Child>,
    starts: usize,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The objects of a YAML file of the workspace.
pub fn load_yaml(rel: &str) -> Result<Vec<Value>> {
    let path = workspace_root().join(rel);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let docs = renderer::yaml::parse_documents(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok(docs
        .into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .collect())
}

/// Applies JSON objects as the admin (the set-up a cluster admin does once per namespace).
pub async fn admin_apply(client: &Client, ns: &str, objects: &[Value]) -> Result<()> {
    for obj in objects {
        let api = dynamic_api(
            client,
            ns,
            obj["apiVersion"].as_str().unwrap(),
            obj["kind"].as_str().unwrap(),
        );
        let name = obj["metadata"]["name"]
            .as_str()
            .context("object without a name")?;
        api.patch(
            name,
            &PatchParams::apply("test-admin").force(),
            &Patch::Apply(obj),
        )
        .await
        .with_context(|| format!("applying {} {name}", obj["kind"]))?;
    }
    Ok(())
}

/// A namespaced API for any kind, from apiVersion and kind (plural by the usual rule).
pub fn dynamic_api(client: &Client, ns: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let plural = match kind {
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers".to_string(),
        "NetworkPolicy" => "networkpolicies".to_string(),
        k if k.ends_with('s') => format!("{}es", k.to_lowercase()),
        k => format!("{}s", k.to_lowercase()),
    };
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, &plural),
    )
}

/// The agent's ServiceAccount, Role and RoleBinding from `manifests/base`, applied in `ns`.
pub async fn apply_agent_rbac(admin: &Client, ns: &str) -> Result<()> {
    let mut rbac = Vec::new();
    for file in [
        "manifests/base/serviceaccount.yaml",
        "manifests/base/role.yaml",
        "manifests/base/rolebinding.yaml",
    ] {
        rbac.extend(load_yaml(file)?);
    }
    admin_apply(admin, ns, &rbac).await
}

impl AgentEnv {
    /// A namespace with the ServiceAccount, Role and RoleBinding of `manifests/base`, and an
    /// empty repository.
    pub async fn new(prefix: &str) -> Result<Self> {
        let ns = TestNamespace::create(prefix).await?;
        let admin = admin_client().await?;
        apply_agent_rbac(&admin, ns.name()).await?;
        let kubeconfig = service_account_kubeconfig(ns.name(), AGENT_SA).await?;
        let scratch = tempfile::Builder::new()
            .prefix("gitops-agent-e2e-")
            .tempdir()?;
        Ok(Self {
            ns,
            repo: Repo::new()?,
            kubeconfig,
            scratch,
            agent: None,
            starts: 0,
        })
    }

    /// Copies a directory of the workspace (e.g. `examples/catalog-api`) into the repository.
    pub fn copy_into_repo(&self, from: &str, to: &str) -> Result<()> {
        let base = workspace_root().join(from);
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(&base)?.to_string_lossy().into_owned();
                    let target = if to.is_empty() {
                        rel
                    } else {
                        format!("{to}/{rel}")
                    };
                    self.repo.write(&target, &std::fs::read_to_string(&path)?)?;
                }
            }
        }
        Ok(())
    }

    /// Starts `gitops-agent` with the repository as `file://`, and `args` after the defaults
    /// (later flags win for single-valued options).
    pub fn start(&mut self, args: &[&str]) -> Result<()> {
        let url = self.repo.file_url();
        self.start_with_url(&url, args)
    }

    pub fn start_with_url(&mut self, url: &str, args: &[&str]) -> Result<()> {
        let child = self.spawn_agent(url, "cache", args)?;
        self.agent = Some(child);
        Ok(())
    }

    /// Starts one more `gitops-agent` (another replica, with its own cache directory `cache`
    /// under the scratch directory) and hands the process to the caller; its log joins
    /// [`AgentEnv::logs`].
    pub fn spawn_agent(&mut self, url: &str, cache: &str, args: &[&str]) -> Result<Child> {
        let binary = tests::binaries::workspace_binary("agent", "gitops-agent")?;
        self.starts += 1;
        let log = self
            .scratch
            .path()
            .join(format!("agent-{}.log", self.starts));
        let out = std::fs::File::create(&log)?;
        // A test's own --interval replaces the default (clap refuses a flag twice).
        let interval = if args.iter().any(|a| a.starts_with("--interval")) {
            None
        } else {
            Some("--interval=3s")
        };
        Command::new(binary)
            .arg(format!("--repo={url}"))
            .arg(format!("--namespace={}", self.ns.name()))
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                self.scratch.path().join(cache).display()
            ))
            .arg("--listen=127.0.0.1:0")
            .args(interval)
            .args(args)
            .env("RUST_LOG", "info,kube=warn,agent=debug")
            .env_remove("KUBECONFIG")
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting gitops-agent")
    }

    /// The agent's Git cache directory (`--cache-dir`), kept across restarts like the pod's volume.
    pub fn cache_dir(&self) -> PathBuf {
        self.scratch.path().join("cache")
    }

    /// The log of the latest start.
    pub fn last_log(&self) -> String {
        std::fs::read_to_string(
            self.scratch
                .path()
                .join(format!("agent-{}.log", self.starts)),
        )
        .unwrap_or_default()
    }

    /// SIGKILL: no graceful shutdown, as when a node dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything the agent logged (all starts), for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.scratch.path().join(format!("agent-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    pub async fn admin(&self) -> Result<Client> {
        admin_client().await
    }

    pub fn api(&self, client: &Client, api_version: &str, kind: &str) -> Api<DynamicObject> {
        dynamic_api(client, self.ns.name(), api_version, kind)
    }

    /// The status the agent wrote on its ApplySet parent.
    pub async fn status(&self) -> Result<Option<SyncStatus>> {
        let cms: Api<ConfigMap> = Api::namespaced(self.admin().await?, self.ns.name());
        let Some(cm) = cms.get_opt(PARENT_NAME).await? else {
            return Ok(None);
        };
        let Some(json) = cm.data.as_ref().and_then(|d| d.get(STATUS_DATA_KEY)) else {
            return Ok(None);
        };
        Ok(Some(SyncStatus::from_json(json)?))
    }

    /// The commit the agent recorded on its parent as the last to change `member`
    /// (`Kind.group/name`, `Kind/name` for the core group).
    pub async fn member_commit(&self, member: &str) -> Result<Option<String>> {
        let cms: Api<ConfigMap> = Api::namespaced(self.admin().await?, self.ns.name());
        let Some(cm) = cms.get_opt(PARENT_NAME).await? else {
            return Ok(None);
        };
        let Some(json) = cm.data.as_ref().and_then(|d| d.get(MEMBERS_DATA_KEY)) else {
            return Ok(None);
        };
        Ok(MemberRevisions::from_json(json)?
            .commit_of(member)
            .map(str::to_string))
    }

    /// Waits for a status matching `pred`, failing with the last status and the agent's log.
    pub async fn wait_status(
        &self,
        timeout: Duration,
        pred: impl Fn(&SyncStatus) -> bool,
    ) -> Result<SyncStatus> {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < timeout {
            if let Some(s) = self.status().await? {
                if pred(&s) {
                    return Ok(s);
                }
                last = Some(s);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "status not reached in {timeout:?}; last: {last:#?}\nagent log:\n{}",
            self.logs()
        )
    }

    /// Waits until the agent reports `Synced` at `commit`.
    pub async fn wait_synced(&self, commit: &str) -> Result<SyncStatus> {
        self.wait_status(Duration::from_secs(60), |s| {
            s.result == SyncResult::Synced && s.last_applied_revision.as_deref() == Some(commit)
        })
        .await
    }

    /// The live object, if it exists.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<DynamicObject>> {
        Ok(self
            .api(&self.admin().await?, api_version, kind)
            .get_opt(name)
            .await?)
    }

    /// Polls `check` until it returns `Some`, or fails after `timeout` with the agent's log.
    pub async fn eventually<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = check().await? {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                bail!(
                    "{what}: not within {timeout:?}\nagent log:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// resourceVersion of every object in the namespace of the given kinds, to prove no writes.
    pub async fn versions(&self, kinds: &[(&str, &str)]) -> Result<BTreeMap<String, String>> {
        let client = self.admin().await?;
        let mut out = BTreeMap::new();
        for (api_version, kind) in kinds {
            for obj in self
                .api(&client, api_version, kind)
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
}

impl AgentEnv {
    /// The ServiceAccount kubeconfig the agent starts with.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Later starts use `path` instead (e.g. a kubeconfig naming an API server that is down).
    pub fn set_kubeconfig(&mut self, path: PathBuf) {
        self.kubeconfig = path;
    }

    /// Writes a file (a mounted Secret, a key list) into the test's scratch directory.
    pub fn scratch_file(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let path = self.scratch.path().join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The address the running agent's listener bound (`--listen=127.0.0.1:0`), from its log.
    pub async fn listen_addr(&self) -> Result<SocketAddr> {
        let log = self
            .scratch
            .path()
            .join(format!("agent-{}.log", self.starts));
        self.eventually("agent listening", Duration::from_secs(30), || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text.split("Some(127.0.0.1:").nth(1).and_then(|rest| {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                Some(SocketAddr::from(([127, 0, 0, 1], port.parse().ok()?)))
            }))
        })
        .await
    }
}

/// Commits overlay `app/`: ConfigMap `settings` with `level: <level>`; returns the sha.
pub fn commit_settings(repo: &Repo, level: &str) -> Result<String> {
    repo.commit_files(
        &[
            ("app/kustomization.yaml", "resources:\n- cm.yaml\n"),
            (
                "app/cm.yaml",
                &format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: \"{level}\"\n"
                ),
            ),
        ],
        &format!("settings at {level}"),
    )
}

/// `data.level` of the live ConfigMap `settings`, if it exists.
pub async fn live_level(env: &AgentEnv) -> Result<Option<String>> {
    Ok(env
        .get("v1", "ConfigMap", "settings")
        .await?
        .and_then(|cm| cm.data["data"]["level"].as_str().map(str::to_string)))
}

/// One HTTP/1.1 request over a fresh connection; returns the status code and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no HTTP status line in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    Ok((status, body))
}

impl Drop for AgentEnv {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The kinds the catalog-api example declares (plus the parent's ConfigMap kind).
pub const CATALOG_KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
];
