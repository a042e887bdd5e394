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
    #[arg(long, env = "GITOPS_INTERVAL", default_value = "1m", value_parser = parse_interval)]
    pub interval: Duration,

    /// How often a resync of an unchanged commit dry-runs every object, not only those the
    /// watches saw change since the agent last confirmed them: the safety net for changes a
    /// watch could miss.
    #[arg(long, env = "GITOPS_FULL_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub full_resync_interval: Duration,

    /// Git server deadline: connecting, and each wait for data during a fetch.
    #[arg(long, env = "GITOPS_GIT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub git_timeout: Duration,

    /// Wall-clock limit of one fetch, however slowly the server keeps sending.
    #[arg(long, env = "GITOPS_FETCH_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub fetch_timeout: Duration,

    /// Deadline of each API request (watches excepted, which the server ends itself).
    #[arg(long, env = "GITOPS_API_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub api_timeout: Duration,

    /// `/readyz` fails when the last successful reconcile is older than this (default: three
    /// intervals, at least 5m).
    #[arg(long, env = "GITOPS_UNREADY_AFTER", value_parser = parse_duration)]
    pub unready_after: Option<Duration>,

    /// Delete members of the set that Git no longer declares.
    #[arg(long, env = "GITOPS_PRUNE", default_value_t = true, overrides_with = "no_prune", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub prune: bool,
    #[arg(long = "no-prune", overrides_with = "prune")]
    pub no_prune: bool,

    /// Most of the set one sync may prune, in percent of its members (e.g. 50%); a larger
    /// prune is held until `kubectl gitops prune --approve REV` approves that revision.
    #[arg(long, env = "GITOPS_PRUNE_LIMIT", default_value = "50%", value_parser = parse_percent)]
    pub prune_limit: u8,

    /// Longest break-glass the agent honours; a longer `until` is clamped to `since` plus
    /// this, and the clamp is recorded in status and an Event.
    #[arg(long, env = "GITOPS_BREAK_GLASS_MAX", default_value = "24h", value_parser = parse_duration)]
    pub break_glass_max: Duration,

    /// Self-management path: a directory (on --config-revision) rendering the `gitops-agent`
    /// ConfigMap whose `revision` key replaces --revision. The agent applies it and follows
    /// it, so `promote`/`rollback` move it with a commit, no restart.
    #[arg(long, env = "GITOPS_CONFIG_PATH")]
    pub config_path: Option<String>,

    /// The branch the self-management path is read from.
    #[arg(long, env = "GITOPS_CONFIG_REVISION", default_value = "main")]
    pub config_revision: String,

    /// Apply a commit that does not descend from the last applied one (a tag re-pointed to an
    /// older commit, a branch force-pushed back). Without it such a commit is refused, unless
    /// it is the one --allow-rollback-to (or the self-management ConfigMap's
    /// `allow-rollback-to`, written by `kubectl gitops rollback`) names.
    #[arg(long, env = "GITOPS_ALLOW_ROLLBACK")]
    pub allow_rollback: bool,

    /// The one commit (full SHA) the agent may move back to: `kubectl gitops rollback` writes
    /// it next to --revision.
    #[arg(long, env = "GITOPS_ALLOW_ROLLBACK_TO", value_name = "SHA", value_parser = parse_commit_sha)]
    pub allow_rollback_to: Option<String>,

    /// Allow a render with no objects to prune everything.
    #[arg(long, env = "GITOPS_ALLOW_EMPTY")]
    pub allow_empty: bool,

    /// Let Git declare the agent's own objects (its ServiceAccount, Role, RoleBinding,
    /// Deployment, NetworkPolicy, Lease, credentials Secret and self-management ConfigMap):
    /// whoever can push then controls the agent. Refused by default; the ApplySet parent always.
    #[arg(long, env = "GITOPS_MANAGE_OWN_OBJECTS")]
    pub manage_own_objects: bool,

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

    /// With `--leader-elect`: how long the Lease stays valid unrenewed. The leader stops
    /// writing after two thirds of it without a renewal, before a standby may take over.
    #[arg(long, env = "GITOPS_LEASE_DURATION", default_value = "15s", value_parser = parse_lease_duration)]
    pub lease_duration: Duration,

    /// KIND:JSONPOINTER the agent never reverts, e.g. Deployment:/spec/replicas (repeatable).
    #[arg(long = "ignore-field", env = "GITOPS_IGNORE_FIELDS", value_delimiter = ',', value_parser = parse_ignore_field)]
    pub ignore_fields: Vec<IgnoreField>,

    /// Remove foreign additions (fields Git never sets, added live by someone other than the
    /// agent and the API server's controllers) with a JSON patch naming exactly those fields.
    /// Without it they are only reported; the `kubectl-gitops.dev/remove-foreign: "true"`
    /// annotation asks for it per object.
    #[arg(long, env = "GITOPS_REMOVE_FOREIGN")]
    pub remove_foreign: bool,

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

    /// The readiness bound: `--unready-after`, else three intervals and at least five minutes.
    pub fn unready_after(&self) -> Duration {
        self.unready_after
            .unwrap_or_else(|| (self.interval * 3).max(Duration::from_secs(300)))
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
        normalise_path(&self.path)
    }
}

/// A repository path the way `renderer::Source` expects it.
pub fn normalise_path(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
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

/// A full commit SHA (40 hex digits), lower-cased: an abbreviation could later match another.
pub fn parse_commit_sha(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("{s:?} is not a full commit SHA (40 hex digits)"))
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

/// `50%` or `50`: a share from 0 to 100.
fn parse_percent(s: &str) -> Result<u8, String> {
    s.trim_end_matches('%')
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("{s:?}: expected a percentage from 0% to 100%"))
}

/// The shortest `--interval`: a resync fetches Git and dry-runs every object, so a zero
/// interval would hammer both the Git server and the API server.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest duration any flag takes (a year): far beyond any useful interval, and small
/// enough that adding it to a clock never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// `--interval`: a duration from [`MIN_INTERVAL`] to [`MAX_DURATION`].
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!(
            "{s:?}: shorter than {}s; every resync fetches Git and dry-runs every object",
            MIN_INTERVAL.as_secs()
        ));
    }
    Ok(d)
}

/// `--lease-duration`: at least 3s (the renew deadline and retry period are fractions of it).
fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(3) {
        return Err(format!(
            "{s:?}: a lease shorter than 3s cannot be renewed in time"
        ));
    }
    Ok(d)
}

/// `90s`, `5m`, `1h`, `1h30m`, or plain seconds, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let too_long = || format!("{s:?}: longer than {} days", MAX_DURATION.as_secs() / 86400);
    if let Ok(secs) = s.parse::<u64>() {
        let d = Duration::from_secs(secs);
        return if d > MAX_DURATION {
            Err(too_long())
        } else {
            Ok(d)
        };
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = match number.parse() {
            Ok(n) => n,
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => return Err(too_long()),
            Err(_) => return Err(format!("{s:?}: not a duration")),
        };
        number.clear();
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            Duration::from_millis(n)
        } else {
            let per = match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return Err(format!("{s:?}: unknown unit {c:?}")),
            };
            Duration::from_secs(n.checked_mul(per).ok_or_else(too_long)?)
        };
        total = total.checked_add(unit).ok_or_else(too_long)?;
        if total > MAX_DURATION {
            return Err(too_long());
        }
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
        assert_eq!(c.unready_after(), Duration::from_secs(300));
        assert_eq!(c.full_resync_interval, Duration::from_secs(600));
        assert_eq!(c.fetch_timeout, Duration::from_secs(120));
        let c = parse(&["--interval", "10m", "--unready-after", "1m"]);
        assert_eq!(c.unready_after(), Duration::from_secs(60));
        assert_eq!(
            parse(&["--interval", "10m"]).unready_after(),
            Duration::from_secs(1800)
        );
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

    /// Issue #14: these panicked (overflow) or were accepted (a zero interval hammers Git
    /// and the API server); each is now a clap error naming the flag.
    #[test]
    fn absurd_intervals_are_refused_naming_the_flag() {
        for (value, says) in [
            ("18446744073709551615s1s", "longer than"),
            ("99999999999999999999h", "longer than"),
            ("5124095576030431h", "longer than"),
            ("0", "shorter than"),
            ("0s", "not a duration"),
            ("100ms", "shorter than"),
            ("400d", "unknown unit"),
        ] {
            let e = Config::try_parse_from(["a", "--repo", "x", "--interval", value])
                .expect_err(value)
                .to_string();
            assert!(e.contains("--interval"), "{value}: {e}");
            assert!(e.contains(says), "{value}: {e}");
        }
        assert_eq!(
            parse(&["--interval", "1s"]).interval,
            Duration::from_secs(1)
        );
        assert_eq!(
            parse(&["--interval", "8760h"]).interval,
            Duration::from_secs(8760 * 3600)
        );
    }

    #[test]
    fn prune_limit_and_break_glass_max() {
        let c = parse(&[]);
        assert_eq!(c.prune_limit, 50);
        assert_eq!(c.break_glass_max, Duration::from_secs(24 * 3600));
        assert_eq!(parse(&["--prune-limit", "80%"]).prune_limit, 80);
        assert_eq!(parse(&["--prune-limit", "100"]).prune_limit, 100);
        for bad in ["101%", "1000", "half"] {
            let err = Config::try_parse_from(["a", "--repo", "x", "--prune-limit", bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains("--prune-limit"), "{err}");
        }
        assert_eq!(
            parse(&["--break-glass-max", "2h"]).break_glass_max,
            Duration::from_secs(7200)
        );
        assert!(
            Config::try_parse_from(["a", "--repo", "x", "--break-glass-max", "forever"]).is_err()
        );
    }

    #[test]
    fn path_is_normalised() {
        assert_eq!(
            parse(&["--path", "./overlays/prod/"]).source_path(),
            "overlays/prod"
        );
    }
}
