//! Command line and environment: every flag has an env fallback so the Deployment can use either.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Where the in-cluster service account token's namespace lives.
pub const IN_CLUSTER_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyMode {
    None,
    Ssh,
    Openpgp,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "gitops-agent",
    version,
    about = "Keeps one namespace in sync with a Git repository"
)]
pub struct Config {
    /// Repository URL: https://, ssh:// (or scp-like user@host:path), git:// or file://.
    #[arg(long, env = "GITOPS_REPO")]
    pub repo: String,

    /// Directory inside the repository holding the kustomization to render.
    #[arg(long, env = "GITOPS_PATH", default_value = ".")]
    pub path: String,

    /// Branch, tag, commit SHA, or a semver range over tags (e.g. ">=1.5.0 <2.0.0").
    #[arg(long, env = "GITOPS_REVISION", default_value = "main")]
    pub revision: String,

    /// Namespace to manage; defaults to the pod's own namespace.
    #[arg(long, env = "GITOPS_NAMESPACE")]
    pub namespace: Option<String>,

    /// How often to fetch Git and resync everything (e.g. 30s, 1m, 1h).
    #[arg(long, env = "GITOPS_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,

    /// Delete members of the set that Git no longer declares.
    #[arg(long, env = "GITOPS_PRUNE", default_value_t = true, overrides_with = "no_prune", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub prune: bool,
    #[arg(long = "no-prune", overrides_with = "prune")]
    pub no_prune: bool,

    /// Allow a render with no objects to prune everything.
    #[arg(long, env = "GITOPS_ALLOW_EMPTY")]
    pub allow_empty: bool,

    /// Revert changes made by other field managers, and recreate deleted objects, as soon as
    /// they happen; without it drift is reported and put back at the next periodic resync.
    #[arg(long, env = "GITOPS_SELF_HEAL", default_value_t = true, overrides_with = "no_self_heal", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub self_heal: bool,
    #[arg(long = "no-self-heal", overrides_with = "self_heal")]
    pub no_self_heal: bool,

    /// Require commits (or tags) signed by a trusted key.
    #[arg(long, env = "GITOPS_VERIFY", value_enum, default_value = "none")]
    pub verify: VerifyMode,
    /// allowed_signers file (ssh) or armored public keys (openpgp).
    #[arg(long, env = "GITOPS_TRUSTED_KEYS")]
    pub trusted_keys: Option<PathBuf>,

    /// File holding an HTTPS token (sent as the password of basic auth).
    #[arg(long, env = "GITOPS_GIT_TOKEN_FILE")]
    pub git_token_file: Option<PathBuf>,
    #[arg(long, env = "GITOPS_GIT_USERNAME_FILE")]
    pub git_username_file: Option<PathBuf>,
    #[arg(long, env = "GITOPS_GIT_PASSWORD_FILE")]
    pub git_password_file: Option<PathBuf>,
    /// Private key for ssh:// repositories.
    #[arg(long, env = "GITOPS_SSH_KEY_FILE")]
    pub ssh_key_file: Option<PathBuf>,
    /// known_hosts for ssh:// repositories; without it ssh host keys are refused.
    #[arg(long, env = "GITOPS_KNOWN_HOSTS_FILE")]
    pub known_hosts_file: Option<PathBuf>,

    /// age private keys (an `age-keygen` file, e.g. a mounted Secret) that decrypt the
    /// SOPS-encrypted files of the repository.
    #[arg(long, env = "GITOPS_SOPS_AGE_KEY_FILE")]
    pub sops_age_key_file: Option<PathBuf>,

    /// Shared secret of the push webhook.
    #[arg(long, env = "GITOPS_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Address of the webhook/metrics/health listener.
    #[arg(long, env = "GITOPS_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Elect a leader through a Lease (`gitops-agent`) so only one replica reconciles.
    #[arg(long, env = "GITOPS_LEADER_ELECT")]
    pub leader_elect: bool,

    /// KIND:JSONPOINTER the agent never reverts, e.g. Deployment:/spec/replicas (repeatable).
    #[arg(long = "ignore-field", env = "GITOPS_IGNORE_FIELDS", value_delimiter = ',', value_parser = parse_ignore_field)]
    pub ignore_fields: Vec<IgnoreField>,

    /// Guardrails: refuse a revision that breaks any of these `kubectl gitops lint` rules, e.g.
    /// plaintext-secrets,mutable-images,credentials,cluster-scoped,privileged (off by default).
    #[arg(long, env = "GITOPS_REFUSE", value_delimiter = ',', value_name = "RULES", value_parser = parse_refuse_rule)]
    pub refuse: Vec<&'static str>,

    /// ConfigMap whose `rules.yaml` holds health rules per kind in CEL (`current`,
    /// `inProgress`, `failed`, as in Flux); read again every few seconds, absent means none.
    #[arg(
        long,
        env = "GITOPS_HEALTH_RULES_CONFIGMAP",
        default_value = "gitops-agent-health"
    )]
    pub health_rules_configmap: String,

    /// Kubeconfig file; else KUBECONFIG, else the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Bare-repository cache (an emptyDir in the pod).
    #[arg(
        long,
        env = "GITOPS_CACHE_DIR",
        default_value = "/var/cache/gitops-agent"
    )]
    pub cache_dir: PathBuf,
}

impl Config {
    pub fn prune_enabled(&self) -> bool {
        self.prune && !self.no_prune
    }

    pub fn self_heal_enabled(&self) -> bool {
        self.self_heal && !self.no_self_heal
    }

    /// The namespace flag, else the in-cluster namespace file.
    pub fn resolve_namespace(&self) -> Option<String> {
        self.namespace.clone().or_else(|| {
            std::fs::read_to_string(IN_CLUSTER_NAMESPACE_FILE)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
    }

    /// The overlay path normalised the way `renderer::Source` expects (no `./`, no slashes at the ends).
    pub fn source_path(&self) -> String {
        self.path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect::<Vec<_>>()
            .join("/")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreField {
    pub kind: String,
    pub pointer: String,
}

/// `KIND:/json/pointer`, as given on the command line and published in status.
impl std::fmt::Display for IgnoreField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.pointer)
    }
}

fn parse_refuse_rule(s: &str) -> Result<&'static str, String> {
    lint::parse_refuse(&[s.to_string()])
        .map(|rules| rules[0])
        .map_err(|e| e.to_string())
}

fn parse_ignore_field(s: &str) -> Result<IgnoreField, String> {
    let (kind, pointer) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected KIND:JSONPOINTER"))?;
    if kind.is_empty() || !pointer.starts_with('/') {
        return Err(format!("{s:?}: expected KIND:/json/pointer"));
    }
    Ok(IgnoreField {
        kind: kind.to_string(),
        pointer: pointer.to_string(),
    })
}

/// `90s`, `5m`, `1h`, `1h30m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?}: not a duration"))?;
        number.clear();
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            Duration::from_millis(n)
        } else {
            match c {
                'h' => Duration::from_secs(n * 3600),
                'm' => Duration::from_secs(n * 60),
                's' => Duration::from_secs(n),
                _ => return Err(format!("{s:?}: unknown unit {c:?}")),
            }
        };
        total += unit;
    }
    if !number.is_empty() || total.is_zero() {
        return Err(format!("{s:?}: not a duration (e.g. 30s, 1m, 1h)"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut full = vec!["gitops-agent", "--repo", "file:///tmp/x"];
        full.extend_from_slice(args);
        Config::try_parse_from(full).unwrap()
    }

    #[test]
    fn defaults() {
        let c = parse(&[]);
        assert!(c.prune_enabled());
        assert!(c.self_heal_enabled());
        assert!(!c.allow_empty);
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(c.verify, VerifyMode::None);
        assert_eq!(c.source_path(), "");
    }

    #[test]
    fn negations_win() {
        let c = parse(&["--no-prune", "--no-self-heal"]);
        assert!(!c.prune_enabled());
        assert!(!c.self_heal_enabled());
    }

    #[test]
    fn ignore_fields_repeat() {
        let c = parse(&[
            "--ignore-field",
            "Deployment:/spec/replicas",
            "--ignore-field",
            "Service:/spec/clusterIP",
        ]);
        assert_eq!(c.ignore_fields.len(), 2);
        assert_eq!(c.ignore_fields[1].pointer, "/spec/clusterIP");
        assert_eq!(c.ignore_fields[1].to_string(), "Service:/spec/clusterIP");
        assert!(Config::try_parse_from(["a", "--repo", "x", "--ignore-field", "nope"]).is_err());
    }

    #[test]
    fn refuse_takes_lint_rule_ids() {
        let c = parse(&["--refuse", "plaintext-secrets,mutable-images"]);
        assert_eq!(c.refuse, ["plaintext-secrets", "mutable-images"]);
        assert!(parse(&[]).refuse.is_empty());
        assert!(Config::try_parse_from(["a", "--repo", "x", "--refuse", "no-such-rule"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn path_is_normalised() {
        assert_eq!(
            parse(&["--path", "./overlays/prod/"]).source_path(),
            "overlays/prod"
        );
    }
}
