//! One reconcile: fetch → resolve → verify → render → validate → dry-run → apply → prune → status.
//!
//! [`plan`] and [`policy`] are pure; this module and [`cluster`] talk to the API server.

pub mod cluster;
mod heal;
pub use heal::HealRequest;
mod object;
pub mod plan;
pub mod policy;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::events::EventType;
use renderer::drift::IgnoreRules;
use renderer::protocol::{BreakGlassEntry, GroupKind, SyncResult, event_reason};
use serde_json::Value;
use tokio::sync::{Mutex, Notify};

use crate::applyset::ApplySet;
use crate::config::{Config, VerifyMode};
use crate::git::{self, Fetcher, GitError};
use crate::metrics::Metrics;
use crate::render;
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

/// How many objects are judged (GET and/or dry-run) at once. A resync of a thousand objects
/// one request at a time took seconds while holding the lock self-heal waits for.
const CONCURRENCY: usize = 8;

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
    /// resourceVersion each object had right after the agent's own write (to ignore our echoes).
    pub own_versions: HashMap<ObjectKey, String>,
    /// Objects whose live state differs from Git and is not being corrected, with why.
    pub out_of_sync: BTreeMap<ObjectKey, String>,
    pub break_glass: BTreeMap<ObjectKey, BreakGlassEntry>,
    /// Earliest `until` of an active break-glass: self-heal wakes up then.
    pub next_expiry: Option<Timestamp>,
    /// The validated applies of the last rendered commit, so an unchanged commit is not
    /// rendered again.
    rendered: Option<(String, Arc<[Desired]>)>,
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
    health: renderer::protocol::HealthEntry,
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
    pub health: crate::health::LiveHealth,
}

impl Agent {
    pub fn new(
        config: Config,
        client: kube::Client,
        namespace: String,
    ) -> Result<Self, crate::Error> {
        let health = crate::health::LiveHealth::new(
            client.clone(),
            &namespace,
            &config.health_rules_configmap,
        );
        let cluster = Cluster::new(client, &namespace);
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
        let fetcher = Arc::new(Fetcher::new(&config.repo, &config.cache_dir, credentials));
        let mut status = renderer::protocol::SyncStatus {
            repo: git::redact_url(&config.repo),
            path: config.path.clone(),
            tracked_ref: config.revision.clone(),
            ignore_fields: flags,
            ..Default::default()
        };
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
                rendered: None,
            }),
            trigger: Arc::new(Notify::new()),
            metrics,
            health,
        })
    }

    /// Reads what a previous run left on the parent.
    pub async fn load(&self) -> Result<(), ApiError> {
        self.inner.lock().await.status.load().await
    }

    /// One full cycle. Failures are recorded in status and returned; the cluster keeps the last
    /// good state because nothing is applied unless the whole set passed dry-run.
    pub async fn sync(&self) -> Result<(), SyncError> {
        let mut inner = self.inner.lock().await;
        let result = self.sync_locked(&mut inner).await;
        if let Err(e) = &result {
            let result = e.result();
            inner.status.fail(result, e.reason(), e.to_string()).await;
        }
        result
    }

    async fn sync_locked(&self, inner: &mut Inner) -> Result<(), SyncError> {
        let now = Timestamp::now();
        let fetcher = self.fetcher.clone();
        let revision = self.config.revision.clone();
        let verifier = self.verifier()?;
        let (resolved, verified) = tokio::task::spawn_blocking(move || {
            let repo = fetcher.fetch()?;
            let resolved = git::resolve(&repo, &revision)?;
            let verified = verifier.map(|v| verify_revision(&v, &repo, &resolved));
            Ok::<_, GitError>((resolved, verified))
        })
        .await
        .map_err(|e| SyncError::Internal(e.to_string()))??;
        let commit = resolved.commit.to_string();
        {
            let s = &mut inner.status.status;
            s.resolved_commit = Some(commit.clone());
            s.resolved_tag = resolved.tag.clone();
            s.last_attempted_revision = Some(commit.clone());
        }
        match verified {
            Some(Ok(signer)) => tracing::debug!(commit = %commit, %signer, "signature verified"),
            Some(Err(e)) => {
                return Err(SyncError::Verify(format!(
                    "revision {commit} not applied: {e}"
                )));
            }
            None => {}
        }

        let applies = match &inner.rendered {
            Some((c, applies)) if *c == commit => applies.clone(),
            _ => {
                // The previous revision's objects are not needed to render the next one.
                inner.rendered = None;
                let applies: Arc<[Desired]> = self.render(&resolved, &commit).await?.into();
                inner.rendered = Some((commit.clone(), applies.clone()));
                applies
            }
        };
        let desired_kinds: BTreeMap<GroupKind, String> = applies
            .iter()
            .map(|d| (d.key.group_kind.clone(), d.api_version.clone()))
            .collect();

        let rules = self.rules(&applies).await?;
        let revision_changed =
            inner.status.status.last_applied_revision.as_deref() != Some(commit.as_str());

        // Live state, a page at a time: every object of the declared kinds (adopting is
        // allowed) is judged by a dry-run while its page is in memory, then only what was
        // decided is kept. Dry-run everything before writing anything: one bad object stops the
        // whole revision.
        let index: HashMap<&ObjectKey, &Desired> = applies.iter().map(|d| (&d.key, d)).collect();
        let mut judged: HashMap<ObjectKey, Judged> = HashMap::new();
        let mut members = Vec::new();
        for (gk, api_version) in &desired_kinds {
            let mut token = None;
            loop {
                let (page, next) = self
                    .cluster
                    .list_page(api_version, &gk.kind, None, token.as_deref())
                    .await?;
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
                judged.extend(self.judge(work, &rules, now).await);
                match next {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
        }
        let absent = applies
            .iter()
            .filter(|d| !judged.contains_key(&d.key))
            .map(|d| (d, None))
            .collect();
        judged.extend(self.judge(absent, &rules, now).await);

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
            let mut token = None;
            loop {
                let (page, next) = self
                    .cluster
                    .list_page(&api_version, &gk.kind, Some(&selector), token.as_deref())
                    .await?;
                members.extend(page.iter().filter_map(cluster::live_member));
                match next {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
        }
        let plan = plan::prunes(&applies, members, &self.set.id, self.config.prune_enabled());

        let mut writes = Vec::new();
        let mut rejected = Vec::new();
        let mut held = BTreeMap::new();
        let mut expired = Vec::new();
        let mut out_of_sync = BTreeMap::new();
        let mut health = BTreeMap::new();
        for d in applies.iter() {
            let Some(j) = judged.remove(&d.key) else {
                continue;
            };
            health.insert(d.key.clone(), j.health);
            match j.prepared {
                Err(e) => rejected.push(e.to_string()),
                Ok(Prepared::Held(entry)) => {
                    held.insert(d.key.clone(), entry);
                }
                Ok(Prepared::Invalid(why)) => {
                    out_of_sync.insert(d.key.clone(), why);
                }
                Ok(Prepared::UpToDate { expired: bg }) => {
                    expired.extend(bg.map(|bg| (d.clone(), bg)))
                }
                Ok(Prepared::Apply {
                    body,
                    expired: bg,
                    take_over,
                }) => {
                    // The periodic resync puts Git back even with --no-self-heal, which only
                    // stops the watch-driven repair between resyncs.
                    expired.extend(bg.map(|bg| (d.clone(), bg)));
                    writes.push((d, body, take_over));
                }
            }
        }
        drop(judged);
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

        let written = writes.len() as u64;
        for (d, body, take_over) in writes {
            let applied = self.write(d, &body, take_over).await?;
            if let Some(rv) = applied["metadata"]["resourceVersion"].as_str() {
                inner.own_versions.insert(d.key.clone(), rv.to_string());
            }
            health.insert(d.key.clone(), self.health.assess(&applied).await);
            tracing::info!(object = %d.key, revision = %commit, "applied");
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

        inner.last_good = Some(LastGood {
            revision: commit.clone(),
            applies: applies.clone(),
        });
        inner.break_glass.retain(|_, e| !e.active);
        inner.break_glass.extend(held);
        inner.out_of_sync = out_of_sync;
        inner.status.group_kinds = plan.group_kinds.clone();
        let s = &mut inner.status.status;
        s.last_applied_revision = Some(commit.clone());
        s.applied = applies.len() as u64;
        s.pruned += pruned;
        s.prune_skipped = plan.prune_skipped.clone();
        s.health = health.into_values().collect();
        if revision_changed {
            s.last_sync_time = Some(now);
        }
        inner.status.clear_warning();
        self.summarise(inner);
        inner.status.flush().await?;
        Ok(())
    }

    /// Renders `commit` and validates the result into the applies.
    async fn render(
        &self,
        resolved: &git::Resolved,
        commit: &str,
    ) -> Result<Vec<Desired>, SyncError> {
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
        plan::applies(
            PlanInput {
                namespace: &self.namespace,
                set_id: &self.set.id,
                revision: commit,
                desired: objects,
                allow_empty: self.config.allow_empty,
            },
            &|gk: &GroupKind| scopes.get(gk).copied().flatten(),
        )
        .map_err(|e| match e {
            PlanError::Refused(_) => SyncError::Refused(e.to_string()),
            other => SyncError::Invalid(other.to_string()),
        })
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
                (d.key.clone(), Judged { prepared, health })
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
                format!(
                    "{k} held by break-glass ({}) until {}",
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
