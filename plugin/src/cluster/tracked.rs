//! "Which revision does the agent follow?": the agent's status from the ApplySet parent.
//! Whether the local clone has it is [`crate::git::local_repo`]'s question.

use anyhow::Context;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use renderer::protocol::{
    APPLYSET_GROUP_KINDS_ANNOTATION, DRIFT_HISTORY_DATA_KEY, DriftHistory, GroupKind,
    MEMBERS_DATA_KEY, MemberRevisions, PARENT_NAME, STATUS_DATA_KEY, SyncStatus, applyset_id,
    parse_group_kinds,
};

/// The ApplySet parent as the plugin reads it.
#[derive(Debug, Clone)]
pub struct Parent {
    /// `None` with `status_error` set when `status.json` is missing or unreadable.
    pub status: Option<SyncStatus>,
    pub status_error: Option<String>,
    pub group_kinds: Vec<GroupKind>,
    /// The agent's drift history ring (its own data key; empty when absent).
    pub drift_history: DriftHistory,
    /// Per member, the commit that last changed it (empty from agents before 0.2, which
    /// annotated each member instead).
    pub members: MemberRevisions,
}

impl Parent {
    /// The commit that last changed a member, as the agent recorded it on the parent.
    pub fn member_commit(&self, api_version: &str, kind: &str, name: &str) -> Option<&str> {
        let gk = GroupKind::from_api_version(api_version, kind);
        self.members.commit_of(&format!("{gk}/{name}"))
    }
}

/// The ApplySet ID of the namespace's set: members carry it in their part-of label.
pub fn set_id(namespace: &str) -> String {
    applyset_id(PARENT_NAME, namespace, "ConfigMap", "")
}

/// Reads the parent ConfigMap; `Ok(None)` when no agent has ever synced the namespace.
pub async fn read_parent(client: &kube::Client, namespace: &str) -> anyhow::Result<Option<Parent>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let Some(cm) = api
        .get_opt(PARENT_NAME)
        .await
        .with_context(|| format!("reading ConfigMap {namespace}/{PARENT_NAME}"))?
    else {
        return Ok(None);
    };
    Ok(Some(parent_from_configmap(&cm)))
}

/// A tick each time the parent changes (created, written, deleted), for `status --watch`.
/// Watch errors are retried with back-off and not reported: the caller polls as well.
pub fn parent_changes(client: &kube::Client, namespace: &str) -> BoxStream<'static, ()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={PARENT_NAME}"));
    watcher::watcher(api, config)
        .default_backoff()
        .filter_map(|event| async move {
            match event {
                Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone) => Some(()),
                _ => None,
            }
        })
        .boxed()
}

pub fn parent_from_configmap(cm: &ConfigMap) -> Parent {
    let group_kinds = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPLYSET_GROUP_KINDS_ANNOTATION))
        .map(|v| parse_group_kinds(v))
        .unwrap_or_default();
    let raw = cm.data.as_ref().and_then(|d| d.get(STATUS_DATA_KEY));
    let (status, status_error) = match raw.map(|text| SyncStatus::from_json(text)) {
        Some(Ok(status)) => (Some(status), None),
        Some(Err(e)) => (None, Some(format!("data key {STATUS_DATA_KEY}: {e}"))),
        None => (None, Some(format!("data key {STATUS_DATA_KEY} is missing"))),
    };
    let members = cm
        .data
        .as_ref()
        .and_then(|d| d.get(MEMBERS_DATA_KEY))
        .and_then(|text| MemberRevisions::from_json(text).ok())
        .unwrap_or_default();
    let drift_history = cm
        .data
        .as_ref()
        .and_then(|d| d.get(DRIFT_HISTORY_DATA_KEY))
        .map(|text| DriftHistory::from_json(text))
        .unwrap_or_default();
    Parent {
        status,
        status_error,
        group_kinds,
        members,
        drift_history,
    }
}

/// The commit the agent works from: the one the ref resolved to, else the last applied one.
pub fn tracked_commit(status: &SyncStatus) -> Option<&str> {
    status
        .resolved_commit
        .as_deref()
        .or(status.last_applied_revision.as_deref())
        .filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn tracked_commit_prefers_resolved() {
        let mut s = SyncStatus {
            last_applied_revision: Some("old".into()),
            ..Default::default()
        };
        assert_eq!(tracked_commit(&s), Some("old"));
        s.resolved_commit = Some("new".into());
        assert_eq!(tracked_commit(&s), Some("new"));
        s.resolved_commit = Some(String::new());
        s.last_applied_revision = None;
        assert_eq!(tracked_commit(&s), None);
    }

    #[test]
    fn parent_reads_status_and_kinds_and_reports_bad_json() {
        let mut cm = ConfigMap::default();
        cm.metadata.annotations = Some(BTreeMap::from([(
            APPLYSET_GROUP_KINDS_ANNOTATION.to_string(),
            "ConfigMap,Deployment.apps".to_string(),
        )]));
        let status = SyncStatus {
            tracked_ref: "main".into(),
            ..Default::default()
        };
        cm.data = Some(BTreeMap::from([(
            STATUS_DATA_KEY.to_string(),
            status.to_json(),
        )]));
        let p = parent_from_configmap(&cm);
        assert_eq!(p.status.unwrap().tracked_ref, "main");
        assert_eq!(p.group_kinds[1], GroupKind::new("apps", "Deployment"));

        cm.data = Some(BTreeMap::from([(
            STATUS_DATA_KEY.to_string(),
            "{".to_string(),
        )]));
        let p = parent_from_configmap(&cm);
        assert!(p.status.is_none());
        assert!(p.status_error.unwrap().contains(STATUS_DATA_KEY));
    }
}
