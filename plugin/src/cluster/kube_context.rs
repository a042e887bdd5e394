//! kubectl's connection flags turned into a kube `Client`, with kubectl's precedence rules:
//! `--kubeconfig` alone, else every file in `KUBECONFIG` merged first-wins, else
//! `~/.kube/config`; `-n` beats the context's namespace, which beats `default`.
//!
//! The environment is passed in as [`KubeEnv`] rather than read here, so tests never have to
//! mutate the process environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueHint};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::constants::{DEFAULT_KUBECONFIG, DEFAULT_NAMESPACE, ENV_KUBECONFIG};

/// kubectl's connection flags, accepted by every subcommand so muscle memory carries over.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Kubernetes options")]
pub struct KubeArgs {
    /// Path to the kubeconfig file (otherwise $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// The namespace (default: the context's namespace, else `default`)
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,
    /// How long to wait for a single server request, e.g. 30s or 1m; 0 waits forever
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        default_value = "0",
        value_parser = parse_request_timeout
    )]
    pub request_timeout: RequestTimeout,
}

/// `--request-timeout`; `None` waits forever. A newtype because clap treats a bare
/// `Option` field as "flag may be absent" rather than as the parsed value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTimeout(pub Option<Duration>);

#[derive(Debug, thiserror::Error)]
pub enum KubeContextError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("{}: kubeconfig file does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("context {name:?} not found in {files}")]
    UnknownContext { name: String, files: String },
    #[error("no context selected: pass --context or set current-context in {files}")]
    NoContext { files: String },
    #[error("context {context:?} in {files}: {source}")]
    Config {
        context: String,
        files: String,
        #[source]
        source: KubeconfigError,
    },
    #[error("creating the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// The parts of the process environment kubectl consults.
#[derive(Debug, Clone, Default)]
pub struct KubeEnv {
    pub kubeconfig: Option<OsString>,
    pub home: Option<PathBuf>,
}

impl KubeEnv {
    pub fn from_process() -> Self {
        Self {
            kubeconfig: std::env::var_os(ENV_KUBECONFIG),
            home: std::env::home_dir(),
        }
    }
}

/// Which kubeconfig files to read, in precedence order.
pub fn kubeconfig_paths(explicit: Option<&Path>, env: &KubeEnv) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_path_buf()];
    }
    if let Some(list) = env.kubeconfig.as_deref().filter(|v| !v.is_empty()) {
        let mut paths: Vec<PathBuf> = Vec::new();
        // client-go ignores empty entries and reads a repeated file only once.
        for path in std::env::split_paths(list).filter(|p| !p.as_os_str().is_empty()) {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        if !paths.is_empty() {
            return paths;
        }
    }
    env.home
        .iter()
        .map(|home| home.join(DEFAULT_KUBECONFIG))
        .collect()
}

/// Reads and merges kubeconfig files through kube's own loader (so relative certificate
/// paths resolve against each file's directory). Like kubectl, files named by `KUBECONFIG`
/// or the default location may be missing; a file named by `--kubeconfig` may not.
pub fn load_kubeconfig(paths: &[PathBuf], explicit: bool) -> Result<Kubeconfig, KubeContextError> {
    let mut merged = Kubeconfig::default();
    for path in paths {
        if !path.exists() {
            if explicit {
                return Err(KubeContextError::Missing { path: path.clone() });
            }
            continue;
        }
        let read = |source| KubeContextError::Read {
            path: path.clone(),
            source,
        };
        let config = Kubeconfig::read_from(path).map_err(read)?;
        merged = merged.merge(config).map_err(read)?;
    }
    Ok(merged)
}

/// Everything needed to talk to one cluster as one user in one namespace.
#[derive(Debug, Clone)]
pub struct KubeContext {
    pub kubeconfig: Kubeconfig,
    /// The files that were consulted, for error messages.
    pub files: Vec<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub namespace: String,
    pub request_timeout: Option<Duration>,
}

impl KubeContext {
    pub fn resolve(args: &KubeArgs, env: &KubeEnv) -> Result<Self, KubeContextError> {
        let files = kubeconfig_paths(args.kubeconfig.as_deref(), env);
        let kubeconfig = load_kubeconfig(&files, args.kubeconfig.is_some())?;
        let context = args
            .context
            .clone()
            .or_else(|| kubeconfig.current_context.clone());
        let context_namespace = match &context {
            Some(name) => {
                let named = kubeconfig
                    .contexts
                    .iter()
                    .find(|c| &c.name == name)
                    .ok_or_else(|| KubeContextError::UnknownContext {
                        name: name.clone(),
                        files: display_files(&files),
                    })?;
                named.context.as_ref().and_then(|c| c.namespace.clone())
            }
            None => None,
        };
        let namespace = args
            .namespace
            .clone()
            .or(context_namespace)
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        Ok(Self {
            kubeconfig,
            files,
            context,
            cluster: args.cluster.clone(),
            user: args.user.clone(),
            namespace,
            request_timeout: args.request_timeout.0,
        })
    }

    /// The kube client configuration; reads certificate files but opens no connection.
    pub async fn config(&self) -> Result<kube::Config, KubeContextError> {
        let Some(context) = self.context.clone() else {
            return Err(KubeContextError::NoContext {
                files: display_files(&self.files),
            });
        };
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        };
        let mut config = kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &options)
            .await
            .map_err(|source| KubeContextError::Config {
                context,
                files: display_files(&self.files),
                source,
            })?;
        config.default_namespace = self.namespace.clone();
        if let Some(timeout) = self.request_timeout {
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            config.connect_timeout =
                Some(config.connect_timeout.map_or(timeout, |c| c.min(timeout)));
        }
        Ok(config)
    }

    pub async fn client(&self) -> Result<kube::Client, KubeContextError> {
        kube::Client::try_from(self.config().await?).map_err(KubeContextError::Client)
    }
}

fn display_files(files: &[PathBuf]) -> String {
    if files.is_empty() {
        return "(no kubeconfig file)".to_string();
    }
    files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses kubectl's `--request-timeout`: a bare integer is seconds, otherwise a Go duration
/// such as `1m30s` or `500ms`; zero means no timeout.
pub fn parse_request_timeout(value: &str) -> Result<RequestTimeout, String> {
    let value = value.trim();
    let duration = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        parse_go_duration(value).ok_or_else(|| {
            format!(
                "invalid duration {value:?}: use a number of seconds or a unit, e.g. 30s, 2m, 1h"
            )
        })?
    };
    // Go's time.Duration (what kubectl parses into) ends at about 292 years; a larger value
    // overflowed the deadline arithmetic here.
    if duration > MAX_REQUEST_TIMEOUT {
        return Err(format!(
            "invalid duration {value:?}: longer than {} hours",
            MAX_REQUEST_TIMEOUT.as_secs() / 3600
        ));
    }
    Ok(RequestTimeout((!duration.is_zero()).then_some(duration)))
}

fn parse_go_duration(value: &str) -> Option<Duration> {
    let mut rest = value;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Go's largest duration (2^63 - 1 ns) rounded down to whole hours.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(2_562_047 * 3600);

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const DEV: &str = "\
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://dev.example.com:6443
- name: shared
  cluster:
    server: https://from-dev-file.example.com
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: dev-user
    namespace: team-a
- name: bare
  context:
    cluster: dev-cluster
    user: dev-user
users:
- name: dev-user
  user:
    token: dev-token
";

    const PROD: &str = "\
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod-cluster
  cluster:
    server: https://prod.example.com:6443
- name: shared
  cluster:
    server: https://from-prod-file.example.com
contexts:
- name: prod
  context:
    cluster: prod-cluster
    user: prod-user
    namespace: payments
users:
- name: prod-user
  user:
    token: prod-token
";

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("dev"), DEV).unwrap();
            fs::write(dir.path().join("prod"), PROD).unwrap();
            Self { dir }
        }
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
        fn env_list(&self, names: &[&str]) -> KubeEnv {
            let paths = names.iter().map(|n| self.path(n));
            KubeEnv {
                kubeconfig: Some(std::env::join_paths(paths).unwrap()),
                home: None,
            }
        }
    }

    fn args() -> KubeArgs {
        KubeArgs::default()
    }

    #[test]
    fn namespace_comes_from_the_current_context() {
        let files = Files::new();
        let ctx = KubeContext::resolve(&args(), &files.env_list(&["dev"])).unwrap();
        assert_eq!(ctx.context.as_deref(), Some("dev"));
        assert_eq!(ctx.namespace, "team-a");
    }

    #[test]
    fn namespace_flag_beats_the_context() {
        let files = Files::new();
        let a = KubeArgs {
            namespace: Some("other".into()),
            ..args()
        };
        assert_eq!(
            KubeContext::resolve(&a, &files.env_list(&["dev"]))
                .unwrap()
                .namespace,
            "other"
        );
    }

    #[test]
    fn context_without_namespace_defaults_to_default() {
        let files = Files::new();
        let a = KubeArgs {
            context: Some("bare".into()),
            ..args()
        };
        assert_eq!(
            KubeContext::resolve(&a, &files.env_list(&["dev"]))
                .unwrap()
                .namespace,
            "default"
        );
    }

    #[test]
    fn kubeconfig_list_is_merged_first_wins() {
        let files = Files::new();
        let ctx = KubeContext::resolve(&args(), &files.env_list(&["prod", "dev"])).unwrap();
        // current-context comes from the first file that sets it.
        assert_eq!(ctx.context.as_deref(), Some("prod"));
        assert_eq!(ctx.namespace, "payments");
        let names: Vec<_> = ctx
            .kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["prod", "dev", "bare"]);
        let shared = ctx
            .kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == "shared")
            .unwrap();
        let server = shared.cluster.as_ref().unwrap().server.as_deref();
        assert_eq!(server, Some("https://from-prod-file.example.com"));
    }

    #[test]
    fn context_from_a_later_file_is_usable() {
        let files = Files::new();
        let a = KubeArgs {
            context: Some("dev".into()),
            ..args()
        };
        let ctx = KubeContext::resolve(&a, &files.env_list(&["prod", "dev"])).unwrap();
        assert_eq!(ctx.namespace, "team-a");
    }

    #[test]
    fn missing_files_in_the_list_are_skipped() {
        let files = Files::new();
        let ctx = KubeContext::resolve(&args(), &files.env_list(&["nope", "dev"])).unwrap();
        assert_eq!(ctx.context.as_deref(), Some("dev"));
    }

    #[test]
    fn explicit_kubeconfig_ignores_the_env_list_and_must_exist() {
        let files = Files::new();
        let a = KubeArgs {
            kubeconfig: Some(files.path("dev")),
            ..args()
        };
        let ctx = KubeContext::resolve(&a, &files.env_list(&["prod"])).unwrap();
        assert_eq!(ctx.context.as_deref(), Some("dev"));

        let a = KubeArgs {
            kubeconfig: Some(files.path("nope")),
            ..args()
        };
        let err = KubeContext::resolve(&a, &KubeEnv::default()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn home_default_is_used_without_kubeconfig_env() {
        let files = Files::new();
        fs::create_dir_all(files.path(".kube")).unwrap();
        fs::write(files.path(".kube/config"), PROD).unwrap();
        let env = KubeEnv {
            kubeconfig: Some(OsString::new()),
            home: Some(files.path("")),
        };
        let ctx = KubeContext::resolve(&args(), &env).unwrap();
        assert_eq!(ctx.namespace, "payments");
    }

    #[test]
    fn unknown_context_names_the_files() {
        let files = Files::new();
        let a = KubeArgs {
            context: Some("staging".into()),
            ..args()
        };
        let err = KubeContext::resolve(&a, &files.env_list(&["dev"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"staging\"") && err.contains(&files.path("dev").display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn unparsable_kubeconfig_error_names_the_file() {
        let files = Files::new();
        fs::write(files.path("broken"), "clusters: [unterminated").unwrap();
        let err = KubeContext::resolve(&args(), &files.env_list(&["broken"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&files.path("broken").display().to_string()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn config_applies_cluster_user_namespace_and_timeout() {
        let files = Files::new();
        let a = KubeArgs {
            context: Some("dev".into()),
            cluster: Some("shared".into()),
            request_timeout: RequestTimeout(Some(Duration::from_secs(5))),
            ..args()
        };
        let ctx = KubeContext::resolve(&a, &files.env_list(&["dev"])).unwrap();
        let config = ctx.config().await.unwrap();
        assert_eq!(
            config.cluster_url.to_string(),
            "https://from-dev-file.example.com/"
        );
        assert_eq!(config.default_namespace, "team-a");
        assert_eq!(config.read_timeout, Some(Duration::from_secs(5)));
        assert_eq!(config.connect_timeout, Some(Duration::from_secs(5)));
        // Building a client opens no connection, so an unreachable server is fine here.
        ctx.client().await.unwrap();
    }

    #[tokio::test]
    async fn config_without_any_context_is_a_clear_error() {
        let env = KubeEnv {
            kubeconfig: None,
            home: None,
        };
        let ctx = KubeContext::resolve(&args(), &env).unwrap();
        assert_eq!(ctx.namespace, "default");
        let err = ctx.config().await.unwrap_err().to_string();
        assert!(err.contains("--context"), "{err}");
    }

    #[test]
    fn request_timeouts_parse_like_kubectl() {
        assert_eq!(parse_request_timeout("0"), Ok(RequestTimeout(None)));
        assert_eq!(parse_request_timeout("0s"), Ok(RequestTimeout(None)));
        assert_eq!(
            parse_request_timeout("30"),
            Ok(RequestTimeout(Some(Duration::from_secs(30))))
        );
        assert_eq!(
            parse_request_timeout("1m30s"),
            Ok(RequestTimeout(Some(Duration::from_secs(90))))
        );
        assert_eq!(
            parse_request_timeout("500ms"),
            Ok(RequestTimeout(Some(Duration::from_millis(500))))
        );
        assert_eq!(
            parse_request_timeout("1.5h"),
            Ok(RequestTimeout(Some(Duration::from_secs(5400))))
        );
        assert!(parse_request_timeout("5 minutes").is_err());
        assert!(parse_request_timeout("").is_err());
        assert!(parse_request_timeout("m").is_err());
    }
}
