//! One reconcile: fetch → resolve → verify → render → validate → dry-run → apply → prune → status.
//!
//! [`plan`] and [`policy`] are pure; this module and [`cluster`] talk to the API server.

mod ancestry;
pub mod cluster;
mod foreign;
mod heal;
mod inventory;
pub use heal::HealRequest;
mod object;
mod own_objects;
pub mod plan;
pub mod policy;
mod prune_guard;
mod self_config;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::events::EventType;
use renderer::drift::IgnoreRules;
use renderer::protocol::{
    BreakGlassEntry, GroupKind, HealthEntry, REVISION_ANNOTATION, SyncResult, event_reason,
};
use serde_json::Value;
use tokio::sync::{Mutex, Notify};

use crate::applyset::ApplySet;
use crate::backoff::Backoff;
use crate::config::{Config, VerifyMode};
use crate::drift_history::DriftAction;
use crate::git::{self, Fetcher, GitError};
use crate::lastgood;
use crate::metrics::Metrics;
use crate::render;
use crate::seen::SeenVersions;
use crate::status::StatusWriter;
use crate::verify::{Format, Verifier};
use cluster::{ApiError, Cluster};
use object::Prepared;
use plan::{Desired, ObjectKey, PlanError, PlanInput};

/// Why a cycle did not converge. Each maps to a status result and an Event reason.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{0}")]
    Verify(String),
    #[error("render failed: {0}")]
    Render(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Invalid(String),
    #[error("dry-run rejected the revision, nothing was applied: {}", .0.join("; "))]
    DryRun(Vec<String>),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("internal: {0}")]
    Internal(String),
    /// The agent's own configuration (`--config-path`) is unusable.
    #[error("{0}")]
    Config(String),
}

impl SyncError {
    pub fn result(&self) -> SyncResult {
        match self {
            Self::Verify(_) | Self::Refused(_) => SyncResult::Refused,
            _ => SyncResult::Failed,
        }
    }

    fn reason(&self) -> &'static str {
        match self.result() {
            SyncResult::Refused => event_reason::REFUSED,
            _ => event_reason::SYNC_FAILED,
        }
    }

    /// Errors worth retrying sooner than the interval (the network or the API server hiccuped);
    /// bad repository content waits for the next commit instead.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Git(GitError::Fetch { .. }) | Self::Internal(_))
            || matches!(self, Self::Api(e) if e.code.is_none_or(|c| c >= 500 || c == 429 || c == 409))
    }
}

/// A tag pinned or chosen by range is trusted through the tag's own signature when it is an
/// annotated tag; anything else through the commit's.
fn verify_revision(
    verifier: &Verifier,
    repo: &git2::Repository,
    resolved: &git::Resolved,
) -> Result<crate::verify::Signer, crate::verify::VerifyError> {
    match resolved.tag_object {
        Some(tag) => verifier.verify_tag(repo, tag),
        None => verifier.verify_commit(repo, resolved.commit),
    }
}

/// How many objects are judged (GET and/or dry-run) or written at once. A resync of a thousand
/// objects one request at a time took seconds while holding the lock self-heal waits for.
const CONCURRENCY: usize = 16;

/// The revision that last passed dry-run and was applied: what self-heal restores.
#[derive(Debug, Clone)]
pub struct LastGood {
    pub revision: String,
    /// Shared with the render cache: one copy of the objects, however many holders.
    pub applies: Arc<[Desired]>,
}

pub struct Inner {
    pub status: StatusWriter,
    pub last_good: Option<LastGood>,
    /// resourceVersion at which the agent last knew each object to match Git: right after its
    /// own write, or when a dry-run found nothing to change. Watch events at that version are
    /// echoes, and a resync of the same commit need not dry-run the object again.
    pub own_versions: HashMap<ObjectKey, String>,
    /// Objects whose live state differs from Git and is not being corrected, with why.
    pub out_of_sync: BTreeMap<ObjectKey, String>,
    pub break_glass: BTreeMap<ObjectKey, BreakGlassEntry>,
    /// Earliest `until` of an active break-glass: self-heal wakes up then.
    pub next_expiry: Option<Timestamp>,
    /// The commit of `--config-path` whose ConfigMap was last applied.
    config_commit: Option<String>,
    /// Health of every object of the last good revision, as last judged.
    health: BTreeMap<ObjectKey, HealthEntry>,
    /// Members a commit changed in Git while they were held (break-glass) or unreadable: the
    /// commit is recorded for them once the agent confirms or writes them.
    pub content_changed: BTreeSet<ObjectKey>,
    /// When every object was last dry-run (`--full-resync-interval`).
    last_full_sweep: Option<std::time::Instant>,
    pub drift_history: crate::drift_history::DriftLog,
}

impl Inner {
    /// Puts the break-glass entries in the status and arms self-heal for the earliest expiry.
    fn publish_break_glass(&mut self) {
        let now = Timestamp::now();
        self.next_expiry = self
            .break_glass
            .values()
            .filter(|e| e.active && e.break_glass.until > now)
            .map(|e| e.break_glass.until)
            .min();
        self.status.status.break_glass = self.break_glass.values().cloned().collect();
    }
}

/// What a sync decided about one object.
struct Judged {
    prepared: Result<Prepared, ApiError>,
    health: HealthEntry,
    /// The live object's resourceVersion when it was judged.
    resource_version: Option<String>,
    /// Someone else may have added fields Git never sets (checked after the sync).
    foreign: bool,
}

/// One write a sync decided.
struct Write<'a> {
    d: &'a Desired,
    body: Box<str>,
    /// The resourceVersion the object was judged at (none when it did not exist).
    judged_at: Option<String>,
    /// Break-glass fields to take over.
    take_over: Option<object::TakeOver>,
    /// The commit of an old per-object annotation that is all the write removes.
    legacy: Option<String>,
}

/// The last rendered commit, its validated applies and their render digest.
type RenderCache = (String, Arc<[Desired]>, String);

/// A fetched, verified and rendered commit, ready to reconcile.
struct Rendered {
    commit: String,
    tag: Option<String>,
    /// The applies and [`renderer::protocol::render_digest`] of the rendered set.
    applies: Result<(Arc<[Desired]>, String), SyncError>,
    /// The agent's own settings from `--config-path`, when it has one.
    settings: Option<self_config::AgentSettings>,
    /// Set when the commit does not descend from the last applied one and was let through
    /// as a rollback: why.
    rolled_back: Option<String>,
}

pub struct Agent {
    pub config: Config,
    pub namespace: String,
    pub set: ApplySet,
    pub cluster: Cluster,
    fetcher: Arc<Fetcher>,
    base_rules: IgnoreRules,
    pub inner: Mutex<Inner>,
    /// Poked by the webhook to sync now instead of at the next interval.
    pub trigger: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// Members' resourceVersions as the watches see them.
    pub seen: Arc<SeenVersions>,
    /// For watches: no per-request deadline (the server ends a watch, kube's watcher notices
    /// an idle one).
    pub watch_client: kube::Client,
    /// The validated applies of the last rendered commit, so an unchanged commit is not
    /// rendered again. Its own lock: fetching and rendering never hold the one repairs take.
    rendered: Mutex<Option<RenderCache>>,
    /// Set while a fetch runs on a blocking thread, which outlives a timed-out wait for it.
    fetching: Arc<AtomicBool>,
    /// Set once a sync has begun dry-running every object: after a restart from the cached
    /// render, self-heal's own check of every object is then redundant.
    swept: AtomicBool,
    backoff: std::sync::Mutex<Retry>,
    pub health: crate::health::LiveHealth,
}

#[derive(Default)]
struct Retry {
    backoff: Backoff,
    delay: std::time::Duration,
}

impl Agent {
    pub fn new(
        config: Config,
        clients: crate::Clients,
        namespace: String,
    ) -> Result<Self, crate::Error> {
        let health = crate::health::LiveHealth::new(
            clients.requests.clone(),
            &namespace,
            &config.health_rules_configmap,
        );
        let cluster = Cluster::new(clients.requests, &namespace, clients.fence);
        let set = ApplySet::new(&namespace);
        let flags: Vec<String> = config
            .ignore_fields
            .iter()
            .map(ToString::to_string)
            .collect();
        let base_rules =
            IgnoreRules::new(&flags).map_err(|e| crate::Error::Config(e.to_string()))?;
        let credentials = git::Credentials {
            token_file: config.git_token_file.clone(),
            username_file: config.git_username_file.clone(),
            password_file: config.git_password_file.clone(),
            ssh_key_file: config.ssh_key_file.clone(),
            known_hosts_file: config.known_hosts_file.clone(),
        };
        let fetcher = Arc::new(Fetcher::new(
            &config.repo,
            &config.cache_dir,
            credentials,
            config.fetch_timeout,
        ));
        // Nothing fetches yet: a lock file now was left by a killed fetch.
        fetcher.clear_stale_locks();
        let mut status = renderer::protocol::SyncStatus {
            repo: git::redact_url(&config.repo),
            path: config.path.clone(),
            tracked_ref: config.revision.clone(),
            ignore_fields: flags,
            ..Default::default()
        };
        let verify = match config.verify {
            VerifyMode::None => "none",
            VerifyMode::Ssh => "ssh",
            VerifyMode::Openpgp => "openpgp",
        };
        status.verify = Some(verify.to_string());
        status.insecure = renderer::protocol::insecure_transport_warning(&config.repo, verify);
        if let Some(warning) = &status.insecure {
            tracing::warn!("{warning}");
        }
        status.result = SyncResult::Pending;
        let metrics = Arc::new(Metrics::new());
        let writer = StatusWriter::new(cluster.clone(), set.clone(), status, metrics.clone());
        Ok(Self {
            config,
            namespace,
            set,
            cluster,
            fetcher,
            base_rules,
            inner: Mutex::new(Inner {
                status: writer,
                last_good: None,
                own_versions: HashMap::new(),
                out_of_sync: BTreeMap::new(),
                break_glass: BTreeMap::new(),
                next_expiry: None,
                config_commit: None,
                health: BTreeMap::new(),
                content_changed: BTreeSet::new(),
                last_full_sweep: None,
                drift_history: Default::default(),
            }),
            trigger: Arc::new(Notify::new()),
            metrics,
            seen: Arc::default(),
            watch_client: clients.watches,
            rendered: Mutex::new(None),
            fetching: Arc::default(),
            swept: AtomicBool::new(false),
            backoff: Default::default(),
            health,
        })
    }

    /// Reads what a previous run left on the parent.
    pub async fn load(&self) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        inner.status.load().await?;
        inner.drift_history.load(&self.cluster).await
    }

    fn cache_identity(&self) -> lastgood::Identity {
        lastgood::Identity {
            repo: git::redact_url(&self.config.repo),
            path: self.config.source_path(),
            namespace: self.namespace.clone(),
            render: self.render_fingerprint(),
        }
    }

    /// What else decides the render of a commit: this build of the agent (its size and time)
    /// and the flags the render reads. Equal fingerprints make a cached render as good as a
    /// new one.
    fn render_fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        if let Ok(m) = std::env::current_exe().and_then(std::fs::metadata) {
            m.len().hash(&mut h);
            m.modified().ok().hash(&mut h);
        }
        let c = &self.config;
        format!("{:?}|{}|{}", c.refuse, c.manage_own_objects, c.allow_empty).hash(&mut h);
        if let Some(key_file) = &c.sops_age_key_file {
            std::fs::read(key_file).ok().hash(&mut h);
        }
        format!("{:016x}", h.finish())
    }

    /// Takes up the last good render a previous run left in the cache directory, so self-heal
    /// guards the namespace even before (or without) a successful fetch. Returns the revision.
    pub async fn resume_from_cache(&self) -> Option<String> {
        let dir = self.config.cache_dir.clone();
        let identity = self.cache_identity();
        let lastgood::Loaded {
            revision,
            digest,
            applies,
        } = tokio::task::spawn_blocking(move || lastgood::load(&dir, &identity))
            .await
            .ok()??;
        let mut inner = self.inner.lock().await;
        if inner.last_good.is_some() {
            return None;
        }
        tracing::info!(revision = %revision, objects = applies.len(), "resuming self-heal from the last good render in the cache");
        let applies: Arc<[Desired]> = applies.into();
        // The same commit is not rendered again: a second copy of every object beside this one
        // was the restarted agent's peak memory.
        if let Some(digest) = digest {
            *self.rendered.lock().await = Some((revision.clone(), applies.clone(), digest));
        }
        inner.last_good = Some(LastGood {
            revision: revision.clone(),
            applies,
        });
        inner.status.resume(&revision);
        Some(revision)
    }

    /// Whether a sync has begun a full sweep (every object dry-run) since the agent started.
    pub fn has_swept(&self) -> bool {
        self.swept.load(Ordering::Acquire)
    }

    /// How long to wait before the next attempt, as the last [`Agent::sync`] decided: the
    /// interval after a success, a back-off with jitter after failures.
    pub fn next_delay(&self) -> std::time::Duration {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner()).delay
    }

    /// Counts the outcome into the back-off; returns the delay and the failures in a row.
    fn plan_delay(&self, outcome: &Result<(), SyncError>) -> (std::time::Duration, u32) {
        let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        b.delay = match outcome {
            Ok(()) => {
                b.backoff.succeeded();
                self.config.interval
            }
            Err(e) => b.backoff.failed(e.is_transient(), self.config.interval),
        };
        (b.delay, b.backoff.failures())
    }

    /// One full cycle. Failures are recorded in status and returned; the cluster keeps the last
    /// good state because nothing is applied unless the whole set passed dry-run. Fetching and
    /// rendering happen before the lock self-heal takes.
    pub async fn sync(&self) -> Result<(), SyncError> {
        let rendered = self.fetch_and_render().await;
        let mut inner = self.inner.lock().await;
        let result = match rendered {
            Ok(r) => self.sync_locked(&mut inner, r).await,
            Err(e) => Err(e),
        };
        let (delay, failures) = self.plan_delay(&result);
        match &result {
            Ok(()) => {
                let s = &mut inner.status.status;
                if s.consecutive_failures != 0 || s.next_attempt_time.is_some() {
                    s.consecutive_failures = 0;
                    s.next_attempt_time = None;
                    if let Err(e) = inner.status.flush().await {
                        tracing::warn!(error = %e, "could not write status");
                    }
                }
            }
            Err(e) => {
                let has_good = inner.last_good.is_some();
                let s = &mut inner.status.status;
                s.consecutive_failures = failures;
                s.next_attempt_time = Timestamp::now()
                    .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
                    .ok();
                let keep_result = matches!(e, SyncError::Git(_))
                    && has_good
                    && !matches!(s.result, SyncResult::Pending);
                let result = if keep_result { s.result } else { e.result() };
                let message = match (&inner.last_good, keep_result) {
                    (Some(good), true) => format!(
                        "{e}; self-heal continues from the last good revision {}",
                        good.revision
                    ),
                    _ => e.to_string(),
                };
                inner.status.fail(result, e.reason(), message).await;
            }
        }
        result
    }

    /// Fetch, resolve, verify and render, outside the lock: a slow or stalled Git server never
    /// delays a repair. The fetch has a wall-clock deadline.
    async fn fetch_and_render(&self) -> Result<Rendered, SyncError> {
        let fetcher = self.fetcher.clone();
        let revision = self.config.revision.clone();
        let verifier = self.verifier()?;
        let config_source = self.config_source();
        if self.fetching.swap(true, Ordering::AcqRel) {
            return Err(SyncError::Git(GitError::Fetch {
                url: git::redact_url(&self.config.repo),
                message: "the previous fetch has not ended yet (stalled server)".into(),
            }));
        }
        let fetching = self.fetching.clone();
        let limit = fetcher.limit();
        let last_applied = {
            let inner = self.inner.lock().await;
            inner.status.status.last_applied_revision.clone()
        };
        let mut allowance = ancestry::Allowance {
            any: self.config.allow_rollback,
            commits: self.config.allow_rollback_to.iter().cloned().collect(),
        };
        let task = tokio::task::spawn_blocking(move || {
            let out = (|| {
                let repo = fetcher.fetch()?;
                let settings = config_source
                    .map(|c| c.read(&repo, verifier.as_ref()))
                    .transpose()?;
                let revision = settings.as_ref().map_or(revision, |s| s.revision.clone());
                let resolved = git::resolve(&repo, &revision)?;
                let verified = verifier.map(|v| verify_revision(&v, &repo, &resolved));
                allowance
                    .commits
                    .extend(settings.as_ref().and_then(|s| s.allow_rollback_to.clone()));
                let moved =
                    ancestry::judge(&repo, last_applied.as_deref(), resolved.commit, &allowance)
                        .map_err(SyncError::Refused)?;
                Ok::<_, SyncError>((resolved, verified, settings, moved))
            })();
            fetching.store(false, Ordering::Release);
            out
        });
        // A little beyond the fetch's own limit, which ends it cleanly at the next progress
        // report; this ends the wait when no report comes.
        let (resolved, verified, settings, moved) =
            match tokio::time::timeout(limit + std::time::Duration::from_secs(1), task).await {
                Ok(joined) => joined.map_err(|e| SyncError::Internal(e.to_string()))??,
                Err(_) => {
                    return Err(SyncError::Git(GitError::Fetch {
                        url: git::redact_url(&self.config.repo),
                        message: format!("timed out after {}s (--fetch-timeout)", limit.as_secs()),
                    }));
                }
            };
        let commit = resolved.commit.to_string();
        let applies = match verified {
            Some(Err(e)) => Err(SyncError::Verify(format!(
                "revision {commit} not applied: {e}"
            ))),
            _ => {
                if let Some(Ok(signer)) = verified {
                    tracing::debug!(commit = %commit, %signer, "signature verified");
                }
                let mut cache = self.rendered.lock().await;
                match &*cache {
                    Some((c, applies, digest)) if *c == commit => {
                        Ok((applies.clone(), digest.clone()))
                    }
                    _ => {
                        // The previous revision's objects are not needed to render the next one.
                        *cache = None;
                        match self.render(&resolved).await {
                            Ok((applies, digest)) => {
                                let applies: Arc<[Desired]> = applies.into();
                                *cache = Some((commit.clone(), applies.clone(), digest.clone()));
                                Ok((applies, digest))
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            }
        };
        Ok(Rendered {
            commit,
            tag: resolved.tag.clone(),
            applies,
            settings,
            rolled_back: match moved {
                ancestry::Move::Forward => None,
                ancestry::Move::RolledBack(why) => Some(why),
            },
        })
    }

    async fn sync_locked(&self, inner: &mut Inner, rendered: Rendered) -> Result<(), SyncError> {
        let now = Timestamp::now();
        self.refresh_inventory(inner).await?;
        let commit = rendered.commit;
        if let Some(settings) = &rendered.settings {
            self.adopt_settings(inner, settings).await?;
        }
        {
            let s = &mut inner.status.status;
            s.resolved_commit = Some(commit.clone());
            s.resolved_tag = rendered.tag;
            s.last_attempted_revision = Some(commit.clone());
        }
        let (applies, digest) = rendered.applies?;
        if let Some(why) = &rendered.rolled_back {
            tracing::warn!("{why}");
            let parent = inner.status.parent_ref();
            inner
                .status
                .event(EventType::Warning, event_reason::ROLLED_BACK, why, &parent)
                .await;
        }
        let desired_kinds: BTreeMap<GroupKind, String> = applies
            .iter()
            .map(|d| (d.key.group_kind.clone(), d.api_version.clone()))
            .collect();

        let rules = self.rules(&applies).await?;
        let revision_changed =
            inner.status.status.last_applied_revision.as_deref() != Some(commit.as_str());
        let same_good = inner
            .last_good
            .as_ref()
            .is_some_and(|g| g.revision == commit && Arc::ptr_eq(&g.applies, &applies));
        // A resync of the commit already applied looks only at what the watches saw change
        // since the agent last confirmed it; every object is dry-run again now and then.
        // A held prune is judged again at every resync: an approval on the parent lets it go.
        let light = !revision_changed
            && same_good
            && inner.status.status.prune_held.is_none()
            && inner
                .last_full_sweep
                .is_some_and(|t| t.elapsed() < self.config.full_resync_interval)
            && self.seen.covers(desired_kinds.keys());

        let mut judged: HashMap<ObjectKey, Judged> = HashMap::new();
        let plan = if light {
            let targets: Vec<&Desired> = applies
                .iter()
                .filter(|d| {
                    let confirmed = inner.own_versions.get(&d.key);
                    confirmed.is_none() || self.seen.version(&d.key).as_ref() != confirmed
                })
                .collect();
            let lives = self.get_all(&targets).await?;
            let work = targets
                .iter()
                .zip(&lives)
                .map(|(d, live)| (*d, live.as_ref()))
                .collect();
            judged.extend(self.judge(work, &rules, now).await);
            drop(lives);
            plan::Prunes {
                prunes: Vec::new(),
                prune_skipped: inner.status.status.prune_skipped.clone(),
                group_kinds: inner.status.group_kinds.clone(),
            }
        } else {
            self.swept.store(true, Ordering::Release);
            let (plan, inventory) = self
                .judge_everything(inner, &applies, &desired_kinds, &rules, now, &mut judged)
                .await?;
            self.guard_prunes(inner, plan, inventory, &commit).await?
        };

        // The previous revision's objects, to tell which ones this commit changes.
        let previous_good = inner.last_good.clone().filter(|g| g.revision != commit);
        let previous: Option<HashMap<&ObjectKey, &str>> = previous_good
            .as_ref()
            .map(|g| g.applies.iter().map(|d| (&d.key, d.json())).collect());
        let mut writes = Vec::new();
        let mut rejected = Vec::new();
        let mut held = BTreeMap::new();
        let held_before: BTreeSet<ObjectKey> = inner
            .break_glass
            .iter()
            .filter(|(_, e)| e.active)
            .map(|(k, _)| k.clone())
            .collect();
        let mut expired = Vec::new();
        let mut health = if light {
            inner.health.clone()
        } else {
            BTreeMap::new()
        };
        let mut confirmed = Vec::new();
        let mut foreign_candidates = Vec::new();
        let mut judged_keys = BTreeSet::new();
        let mut not_adopted = Vec::new();
        for d in applies.iter() {
            let Some(j) = judged.remove(&d.key) else {
                continue;
            };
            judged_keys.insert(d.key.clone());
            if let Ok(Prepared::NotAdopted(why)) = &j.prepared {
                health.remove(&d.key);
                not_adopted.push((d.key.clone(), why.clone()));
                continue;
            }
            health.insert(d.key.clone(), j.health);
            if j.foreign {
                foreign_candidates.push(d);
            }
            let changed_now = previous
                .as_ref()
                .is_some_and(|p| p.get(&d.key).is_some_and(|json| *json != d.json()));
            if changed_now && matches!(j.prepared, Ok(Prepared::Held(_))) {
                // Left as it is for now: recorded when the agent next confirms or writes it.
                inner.content_changed.insert(d.key.clone());
            }
            match j.prepared {
                Err(e) => rejected.push(e.to_string()),
                Ok(Prepared::Held(entry)) => {
                    // Whichever notices the hold first, this resync or a watch-driven repair,
                    // records it (repeats are folded).
                    if !held_before.contains(&d.key) {
                        inner.drift_history.push_new(
                            d,
                            Vec::new(),
                            None,
                            DriftAction::HeldByBreakGlass,
                        );
                    }
                    held.insert(d.key.clone(), entry);
                }
                Ok(Prepared::NotAdopted(_)) => unreachable!("set aside above"),
                Ok(Prepared::UpToDate { expired: bg, .. }) => {
                    if bg.is_none()
                        && let Some(rv) = j.resource_version
                    {
                        confirmed.push((d.key.clone(), rv));
                    }
                    // Git changed it and live already matched (a break-glass backfilled into
                    // Git): this commit is the one its live content comes from.
                    if changed_now || inner.content_changed.remove(&d.key) {
                        inner.status.members.record(&d.key.to_string(), &commit);
                    }
                    expired.extend(bg.map(|bg| (d.clone(), bg)))
                }
                Ok(Prepared::Apply {
                    body,
                    expired: bg,
                    take_over,
                    legacy_revision,
                    drift,
                }) => {
                    if !revision_changed && !drift.paths.is_empty() {
                        inner.drift_history.push_new(
                            d,
                            drift.paths,
                            drift.manager,
                            DriftAction::Repaired,
                        );
                    }
                    // The periodic resync puts Git back even with --no-self-heal, which only
                    // stops the watch-driven repair between resyncs.
                    expired.extend(bg.map(|bg| (d.clone(), bg)));
                    writes.push(Write {
                        d,
                        body,
                        judged_at: j.resource_version,
                        take_over,
                        legacy: legacy_revision,
                    });
                }
            }
        }
        drop(judged);
        drop(previous);
        drop(previous_good);
        if !rejected.is_empty() {
            return Err(SyncError::DryRun(rejected));
        }

        // KEP-3659: the parent lists every kind before members of it exist.
        let union: BTreeSet<GroupKind> = inner
            .status
            .group_kinds
            .union(&plan.group_kinds)
            .cloned()
            .collect();
        if union != inner.status.group_kinds {
            inner.status.group_kinds = union;
            inner.status.flush().await?;
        }

        for (key, rv) in confirmed {
            inner.own_versions.insert(key, rv);
        }
        let written = writes.len() as u64;
        let migrated = self.write_all(inner, writes, &commit, &mut health).await?;
        if migrated > 0 {
            tracing::info!(
                objects = migrated,
                "removed the {REVISION_ANNOTATION} annotation older agents wrote (one write each, once)"
            );
        }
        self.metrics.add_applied(written);
        self.finish_break_glass(inner, expired).await;

        let mut pruned = 0;
        for m in &plan.prunes {
            self.cluster.delete(m).await?;
            pruned += 1;
            inner.own_versions.remove(&m.key);
            let regarding = inner.status.object_ref(&m.key, &m.api_version);
            let note = format!("{} is no longer declared in Git at {commit}", m.key);
            inner
                .status
                .event(EventType::Normal, event_reason::PRUNED, &note, &regarding)
                .await;
            tracing::info!(object = %m.key, "pruned");
        }
        self.metrics.add_pruned(pruned);
        self.foreign_pass(inner, &foreign_candidates, &rules).await;

        if !same_good {
            self.save_last_good(&commit, &digest, &applies).await;
        }
        inner.last_good = Some(LastGood {
            revision: commit.clone(),
            applies: applies.clone(),
        });
        if light {
            inner
                .break_glass
                .retain(|k, e| !e.active || !judged_keys.contains(k));
            for k in &judged_keys {
                inner.out_of_sync.remove(k);
            }
        } else {
            inner.break_glass.retain(|_, e| !e.active);
            // A full sync reconciled or reported everything: nothing is left out of sync.
            inner.out_of_sync.clear();
            inner.last_full_sweep = Some(std::time::Instant::now());
            let declared: BTreeSet<String> = applies.iter().map(|d| d.key.to_string()).collect();
            inner.status.members.retain(|m| declared.contains(m));
            inner.own_versions.retain(|k, _| health.contains_key(k));
        }
        inner.break_glass.extend(held);
        for (key, why) in not_adopted {
            tracing::warn!(object = %key, reason = %why, "not adopted");
            inner.out_of_sync.insert(key, why);
        }
        inner.status.group_kinds = plan.group_kinds.clone();
        let s = &mut inner.status.status;
        s.last_applied_revision = Some(commit.clone());
        s.applied = applies.len() as u64;
        s.pruned += pruned;
        s.prune_skipped = plan.prune_skipped.clone();
        s.health = health.values().cloned().collect();
        s.applied_digest = Some(digest);
        inner.health = health;
        if revision_changed {
            s.last_sync_time = Some(now);
        }
        inner.status.clear_warning();
        self.summarise(inner);
        inner.status.flush().await?;
        if let Err(e) = inner.drift_history.flush(&self.cluster).await {
            tracing::warn!(error = %e, "drift history not written");
        }
        Ok(())
    }

    /// Lists every object of the declared kinds (adopting is allowed) and judges each one by a
    /// dry-run while its page is in memory, then lists the members of kinds Git dropped, to
    /// prune. Dry-run everything before writing anything: one bad object stops the revision.
    async fn judge_everything(
        &self,
        inner: &Inner,
        applies: &[Desired],
        desired_kinds: &BTreeMap<GroupKind, String>,
        rules: &IgnoreRules,
        now: Timestamp,
        judged: &mut HashMap<ObjectKey, Judged>,
    ) -> Result<(plan::Prunes, u64), SyncError> {
        let index: HashMap<&ObjectKey, &Desired> = applies.iter().map(|d| (&d.key, d)).collect();
        let mut members = Vec::new();
        for (gk, api_version) in desired_kinds {
            // A page is judged before the next is asked for; a listing whose token expires
            // meanwhile starts over and returns only objects not seen yet, so nothing is
            // judged or counted as a member twice.
            let mut pages = self.cluster.pages(api_version, &gk.kind, None);
            while let Some(page) = pages.next().await? {
                let mut work = Vec::new();
                for obj in &page {
                    let Some(m) = cluster::live_member(obj) else {
                        continue;
                    };
                    if let Some(d) = index.get(&m.key) {
                        work.push((*d, Some(obj)));
                    }
                    members.push(m);
                }
                judged.extend(self.judge(work, rules, now).await);
            }
        }
        let absent = applies
            .iter()
            .filter(|d| !judged.contains_key(&d.key))
            .map(|d| (d, None))
            .collect();
        judged.extend(self.judge(absent, rules, now).await);

        // Members of kinds the parent says the set had, so kinds dropped from Git are still
        // pruned.
        let previous_kinds: Vec<GroupKind> = inner
            .status
            .group_kinds
            .iter()
            .filter(|gk| !desired_kinds.contains_key(*gk))
            .cloned()
            .collect();
        for gk in previous_kinds {
            let Some(api_version) = self.cluster.preferred_api_version(&gk).await? else {
                continue;
            };
            let selector = self.set.selector();
            let mut pages = self.cluster.pages(&api_version, &gk.kind, Some(&selector));
            while let Some(page) = pages.next().await? {
                members.extend(page.iter().filter_map(cluster::live_member));
            }
        }
        let inventory = prune_guard::inventory(&members, &self.set.id);
        let plan = plan::prunes(applies, members, &self.set.id, self.config.prune_enabled());
        Ok((plan, inventory))
    }

    /// GETs several objects at once, in order.
    async fn get_all(&self, targets: &[&Desired]) -> Result<Vec<Option<Value>>, ApiError> {
        futures::stream::iter(targets.iter().map(|d| self.cluster.get(d)))
            .buffered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Applies the writes concurrently within each step of the apply order (config before the
    /// workloads that use it), recording per member the commit that changed it. Returns how many
    /// writes only removed the old per-object revision annotation.
    async fn write_all(
        &self,
        inner: &mut Inner,
        writes: Vec<Write<'_>>,
        commit: &str,
        health: &mut BTreeMap<ObjectKey, HealthEntry>,
    ) -> Result<usize, SyncError> {
        let mut steps: BTreeMap<usize, Vec<_>> = BTreeMap::new();
        for w in writes {
            steps
                .entry(plan::apply_rank(&w.d.key.group_kind))
                .or_default()
                .push(w);
        }
        let mut migrated = 0;
        for (_, step) in steps {
            let mut results = futures::stream::iter(step.into_iter().map(|w| async move {
                // The answer (a whole object, managedFields included) is judged here and
                // dropped: collecting a step's answers first was the agent's peak heap
                // (about 4 MB at 1000 objects).
                let judged = match self.write(w.d, &w.body, w.judged_at, w.take_over).await {
                    Ok(Some(applied)) => {
                        let rv = applied["metadata"]["resourceVersion"].as_str();
                        let rv = rv.map(str::to_owned);
                        Ok(Some((rv, self.health.assess(&applied).await)))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                (w.d, w.legacy, judged)
            }))
            .buffer_unordered(CONCURRENCY);
            // After a failure the writes already sent still finish; only their bookkeeping
            // stops, as the step ends with that error.
            let mut failed = None;
            while let Some((d, legacy, judged)) = results.next().await {
                let (resource_version, entry) = match judged {
                    _ if failed.is_some() => continue,
                    Ok(Some(judged)) => judged,
                    // Held since it was judged: recorded when next confirmed or written.
                    Ok(None) => {
                        inner.content_changed.insert(d.key.clone());
                        continue;
                    }
                    Err(e) => {
                        failed = Some(e);
                        continue;
                    }
                };
                if let Some(rv) = resource_version {
                    inner.own_versions.insert(d.key.clone(), rv);
                }
                health.insert(d.key.clone(), entry);
                let member = d.key.to_string();
                inner.content_changed.remove(&d.key);
                match legacy {
                    // Only the old annotation went: the content is still that commit's.
                    Some(old) => {
                        migrated += 1;
                        inner.status.members.record(&member, &old);
                    }
                    None => inner.status.members.record(&member, commit),
                }
                tracing::info!(object = %d.key, revision = %commit, "applied");
            }
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        // Objects confirmed unchanged that the parent has no record of (a first sync adopting
        // them, or a parent written by an older agent) came from this commit as far as is known.
        for key in health.keys() {
            let member = key.to_string();
            if !inner.status.members.contains(&member) {
                inner.status.members.record(&member, commit);
            }
        }
        Ok(migrated)
    }

    /// Keeps the render on disk for a restart without Git; failing to is logged, not fatal.
    async fn save_last_good(&self, commit: &str, digest: &str, applies: &Arc<[Desired]>) {
        let dir = self.config.cache_dir.clone();
        let identity = self.cache_identity();
        let commit = commit.to_string();
        let digest = digest.to_string();
        let applies = applies.clone();
        let saved = tokio::task::spawn_blocking(move || {
            lastgood::save(&dir, &identity, &commit, &digest, &applies)
        })
        .await;
        if let Ok(Err(e)) | Err(e) = saved.map_err(std::io::Error::other) {
            tracing::warn!(error = %e, "could not keep the last good render in the cache directory");
        }
    }

    /// Renders the resolved commit and validates the result into the applies.
    async fn render(&self, resolved: &git::Resolved) -> Result<(Vec<Desired>, String), SyncError> {
        let fetcher = self.fetcher.clone();
        let path = self.config.source_path();
        let refuse = self.config.refuse.clone();
        let oid = resolved.commit;
        let key_file = self.config.sops_age_key_file.clone();
        let objects = tokio::task::spawn_blocking(move || {
            let keys =
                render::sops_keys(key_file.as_deref()).map_err(render::RenderFailure::Render)?;
            let repo = fetcher
                .open()
                .map_err(|e| render::RenderFailure::Render(e.to_string()))?;
            let source = gittree::GitTreeSource::from_commit(repo, oid)
                .map_err(|e| render::RenderFailure::Render(e.message().to_string()))?;
            render::render(&source, &path, &keys, &refuse)
        })
        .await
        .map_err(|e| SyncError::Internal(e.to_string()))?
        .map_err(|e| match e {
            render::RenderFailure::Render(m) => SyncError::Render(m),
            refused => SyncError::Refused(refused.to_string()),
        })?;

        if !self.config.manage_own_objects {
            let own = own_objects::refusals(&objects);
            if !own.is_empty() {
                return Err(SyncError::Refused(own.join("; ")));
            }
        }
        let digest = renderer::protocol::render_digest(
            &objects.iter().map(Desired::body).collect::<Vec<_>>(),
        );
        // Discovery tells namespaced from cluster-scoped kinds, and which kinds exist at all.
        let mut scopes: HashMap<GroupKind, Option<bool>> = HashMap::new();
        for d in &objects {
            let gk = &d.key.group_kind;
            if scopes.contains_key(gk) {
                continue;
            }
            let scope = self
                .cluster
                .resource(&d.api_version, &gk.kind)
                .await?
                .map(|(_, namespaced)| namespaced);
            scopes.insert(gk.clone(), scope);
        }
        let applies = plan::applies(
            PlanInput {
                namespace: &self.namespace,
                set_id: &self.set.id,
                desired: objects,
                allow_empty: self.config.allow_empty,
            },
            &|gk: &GroupKind| scopes.get(gk).copied().flatten(),
        )
        .map_err(|e| match e {
            PlanError::Refused(_) => SyncError::Refused(e.to_string()),
            other => SyncError::Invalid(other.to_string()),
        })?;
        Ok((applies, digest))
    }

    /// Judges objects (each with its live state, if listed) several at a time.
    async fn judge<'a>(
        &self,
        work: Vec<(&'a Desired, Option<&'a Value>)>,
        rules: &IgnoreRules,
        now: Timestamp,
    ) -> Vec<(ObjectKey, Judged)> {
        // Made lazily (at most CONCURRENCY exist), from an index: a closure taking a reference
        // trips up the compiler's Send check of the stream.
        let one = |i: usize| {
            let (d, live) = work[i];
            async move {
                let health = match live {
                    Some(obj) => self.health.assess(obj).await,
                    None => crate::health::missing(&d.key.group_kind.kind, &d.key.name),
                };
                let prepared = self.prepare(d, live, rules, now).await;
                let resource_version = live
                    .and_then(|o| o["metadata"]["resourceVersion"].as_str())
                    .map(str::to_string);
                let foreign = foreign::may_have_foreign(d, live);
                (
                    d.key.clone(),
                    Judged {
                        prepared,
                        health,
                        resource_version,
                        foreign,
                    },
                )
            }
        };
        futures::stream::iter((0..work.len()).map(one))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    /// The configured rules plus every HPA in the namespace or in Git.
    async fn rules(&self, applies: &[Desired]) -> Result<IgnoreRules, ApiError> {
        let mut hpas: Vec<Value> = applies
            .iter()
            .filter(|d| {
                d.key.group_kind == GroupKind::new("autoscaling", "HorizontalPodAutoscaler")
            })
            .map(Desired::body)
            .collect();
        if applies.iter().any(|d| {
            ["Deployment", "StatefulSet", "ReplicaSet"].contains(&d.key.group_kind.kind.as_str())
        }) {
            match self
                .cluster
                .list("autoscaling/v2", "HorizontalPodAutoscaler", None)
                .await
            {
                Ok(live) => hpas.extend(live),
                // A cluster without autoscaling/v2 has no HPAs to respect.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.base_rules.clone().with_hpas(&hpas))
    }

    /// The trusted keys, read again every cycle so a rotated Secret takes effect.
    fn verifier(&self) -> Result<Option<Verifier>, SyncError> {
        let format = match self.config.verify {
            VerifyMode::None => return Ok(None),
            VerifyMode::Ssh => Format::Ssh,
            VerifyMode::Openpgp => Format::OpenPgp,
        };
        let Some(keys) = &self.config.trusted_keys else {
            return Err(SyncError::Verify(format!(
                "--verify {format} needs --trusted-keys"
            )));
        };
        Verifier::from_file(format, keys)
            .map(Some)
            .map_err(|e| SyncError::Verify(e.to_string()))
    }

    /// Sets result and message from what is held, drifted or clean.
    fn summarise(&self, inner: &mut Inner) {
        inner.publish_break_glass();
        let now = Timestamp::now();
        let s = &mut inner.status.status;
        let mut notes: Vec<String> = inner
            .break_glass
            .iter()
            .filter(|(_, e)| e.active && e.break_glass.until > now)
            .map(|(k, e)| {
                let clamped = e
                    .requested_until
                    .map(|t| format!(" (clamped by --break-glass-max from {t})"))
                    .unwrap_or_default();
                format!(
                    "{k} held by break-glass ({}) until {}{clamped}",
                    e.break_glass.reason, e.break_glass.until
                )
            })
            .collect();
        notes.extend(
            inner
                .out_of_sync
                .iter()
                .map(|(k, why)| format!("{k}: {why}")),
        );
        notes.extend(s.prune_held.as_ref().map(|h| h.describe()));
        let revision = s.last_applied_revision.clone().unwrap_or_default();
        if notes.is_empty() {
            s.result = SyncResult::Synced;
            s.message = format!("applied revision {revision}");
        } else {
            s.result = SyncResult::OutOfSync;
            s.message = notes.join("; ");
        }
    }
}
