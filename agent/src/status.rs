//! Saying what happened, on the objects themselves: the parent's status JSON and Events.
//!
//! A cycle that changes nothing writes nothing: the parent is applied only when its content
//! (timestamps aside) differs from what the agent last wrote, and failure Events are published
//! only when the failure message changes.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use renderer::protocol::{
    GroupKind, HealthEntry, MEMBERS_DATA_KEY, MemberRevisions, PARENT_NAME, SyncResult, SyncStatus,
};
use serde_json::Value;

use crate::applyset::{self, ApplySet};
use crate::metrics::Metrics;
use crate::reconcile::cluster::{ApiError, Cluster};
use crate::reconcile::plan::{Desired, ObjectKey};

pub struct StatusWriter {
    cluster: Cluster,
    set: ApplySet,
    recorder: Recorder,
    /// What the agent reports; callers edit it, [`StatusWriter::flush`] writes it.
    pub status: SyncStatus,
    /// Kinds the set may have members of (kept a superset while applying, per KEP-3659).
    pub group_kinds: BTreeSet<GroupKind>,
    /// Per member, the commit that last changed it (the parent's `members.json`).
    pub members: MemberRevisions,
    /// Result and health a previous run left, for a restart that resumes from the cache.
    previous: Option<(SyncResult, Vec<HealthEntry>)>,
    written: Option<Value>,
    last_warning: Option<String>,
    metrics: Arc<Metrics>,
    /// Whether [`StatusWriter::load`] has read the parent once.
    loaded: bool,
    /// The tooling of a parent another tool made: the agent writes nothing to it.
    pub foreign_parent: Option<String>,
}

impl StatusWriter {
    pub fn new(cluster: Cluster, set: ApplySet, status: SyncStatus, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: "gitops-agent".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(cluster.client().clone(), reporter);
        Self {
            cluster,
            set,
            recorder,
            status,
            group_kinds: BTreeSet::new(),
            members: MemberRevisions::default(),
            previous: None,
            written: None,
            last_warning: None,
            metrics,
            loaded: false,
            foreign_parent: None,
        }
    }

    /// Seeds kinds and counters from the parent a previous run left, so a restart still prunes.
    pub async fn load(&mut self) -> Result<(), ApiError> {
        let live = self.get_parent().await?;
        self.loaded = true;
        if let Some(live) = live {
            self.group_kinds = applyset::group_kinds_of(&live);
            if let Some(members) = live["data"][MEMBERS_DATA_KEY]
                .as_str()
                .and_then(|m| MemberRevisions::from_json(m).ok())
            {
                self.members = members;
            }
            if let Some(old) = applyset::status_of(&live) {
                self.previous = Some((old.result, old.health.clone()));
                let s = &mut self.status;
                // A commit of another repository says nothing about this one (the agent was
                // re-pointed): it must not make the next commit look like a rollback.
                if old.repo == s.repo {
                    s.last_applied_revision = old.last_applied_revision;
                }
                s.last_sync_time = old.last_sync_time;
                s.pruned = old.pruned;
                s.drift_corrected = old.drift_corrected;
                s.recent_drift_corrections = old.recent_drift_corrections;
                s.break_glass_rejected = old.break_glass_rejected;
            }
        }
        Ok(())
    }

    /// The live parent, if there is one.
    pub async fn get_parent(&self) -> Result<Option<Value>, ApiError> {
        let parent = Desired::from_object(self.set.parent(&BTreeSet::new(), &self.status), None)
            .expect("the parent has an identity");
        self.cluster.get(&parent).await
    }

    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// The live parent is not what the agent last wrote (deleted, or edited by hand): the next
    /// flush writes it whatever the comparison says.
    pub fn forget_written(&mut self) {
        self.written = None;
    }

    /// After taking up the cached render of `revision`: the result and health the previous run
    /// reported for it stand until the next sync, and the message says where they come from.
    pub fn resume(&mut self, revision: &str) {
        if self.status.last_applied_revision.as_deref() == Some(revision)
            && let Some((result, health)) = self.previous.take()
        {
            self.status.result = result;
            self.status.health = health;
        }
        self.status.message = format!(
            "resumed from the last good render of {revision} in the cache directory; self-heal is on while Git is fetched"
        );
    }

    /// The parent as written: the ApplySet's fields, the status and the member bookkeeping.
    fn parent_body(&self, status: &SyncStatus) -> Value {
        let mut body = self.set.parent(&self.group_kinds, status);
        body["data"][MEMBERS_DATA_KEY] = Value::from(self.members.to_json());
        body
    }

    /// Applies the parent if anything but timestamps changed. Returns whether it wrote.
    /// The metrics follow every status reached, written or not.
    pub async fn flush(&mut self) -> Result<bool, ApiError> {
        self.metrics.observe_status(&self.status);
        if !self.loaded {
            // Writing now would replace the set's kinds with only those of this cycle.
            tracing::warn!("status not written: the ApplySet parent has not been read yet");
            return Ok(false);
        }
        if let Some(tooling) = &self.foreign_parent {
            tracing::warn!(%tooling, "status not written: the parent belongs to other tooling");
            return Ok(false);
        }
        let mut untimed = self.status.clone();
        untimed.last_attempt_time = None;
        untimed.last_sync_time = None;
        // A correction also bumps `drift_corrected`, so it is written; ageing out alone is not.
        untimed.recent_drift_corrections.clear();
        untimed.next_attempt_time = None;
        let comparable = self.parent_body(&untimed);
        if self.written.as_ref() == Some(&comparable) {
            return Ok(false);
        }
        let now = Timestamp::now();
        self.status.forget_old_drift_corrections(now);
        self.status.last_attempt_time = Some(now);
        let body = self.parent_body(&self.status);
        let parent = Desired::from_object(body.clone(), None).expect("the parent has an identity");
        self.cluster.apply(&parent, &body, false).await?;
        self.written = Some(comparable);
        Ok(true)
    }

    pub fn parent_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(PARENT_NAME.into()),
            namespace: Some(self.set.namespace.clone()),
            ..Default::default()
        }
    }

    pub fn object_ref(&self, key: &ObjectKey, api_version: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(key.group_kind.kind.clone()),
            name: Some(key.name.clone()),
            namespace: Some(self.set.namespace.clone()),
            ..Default::default()
        }
    }

    /// Records a failure: result, message, and a Warning Event when the message is new.
    pub async fn fail(&mut self, result: SyncResult, reason: &str, message: String) {
        self.status.result = result;
        self.status.message = message.clone();
        if self.last_warning.as_deref() != Some(message.as_str()) {
            self.last_warning = Some(message.clone());
            let parent = self.parent_ref();
            self.event(EventType::Warning, reason, &message, &parent)
                .await;
        }
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "could not write status");
        }
    }

    pub fn clear_warning(&mut self) {
        self.last_warning = None;
    }

    /// Publishes an Event; failures are logged, never fatal (Events are best effort).
    pub async fn event(
        &self,
        type_: EventType,
        reason: &str,
        note: &str,
        regarding: &ObjectReference,
    ) {
        // The API limits an Event note to 1 kB.
        let note: String = note.chars().take(1000).collect();
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.cluster.check_fence("publish an event") {
            tracing::debug!(error = %e, reason, "event not published");
            return;
        }
        if let Err(e) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}
