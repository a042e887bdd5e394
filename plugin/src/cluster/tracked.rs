//! "Which revision does the agent follow, and do I have it here?": the agent's status from
//! the ApplySet parent, resolved against the local clone the command runs in.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use git2::{Oid, Repository};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use renderer::protocol::{
    APPLYSET_GROUP_KINDS_ANNOTATION, GroupKind, PARENT_NAME, STATUS_DATA_KEY, SyncStatus,
    applyset_id, parse_group_kinds,
};
use serde::Serialize;

use crate::git_source::GitTreeSource;

/// The ApplySet parent as the plugin reads it.
#[derive(Debug, Clone)]
pub struct Parent {
    /// `None` with `status_error` set when `status.json` is missing or unreadable.
    pub status: Option<SyncStatus>,
    pub status_error: Option<String>,
    pub group_kinds: Vec<GroupKind>,
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
    Parent {
        status,
        status_error,
        group_kinds,
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

/// The clone the command runs in (`--repo DIR`, else the current directory).
pub struct LocalRepo {
    pub repo: Repository,
    pub root: PathBuf,
}

impl LocalRepo {
    pub fn open(dir: Option<&Path>) -> anyhow::Result<Self> {
        let start = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_dir().context("reading the current directory")?,
        };
        let repo = Repository::discover(&start).with_context(|| {
            format!(
                "{}: not inside a clone of the tracked repository (pass --repo DIR)",
                start.display()
            )
        })?;
        let Some(root) = repo.workdir().map(Path::to_path_buf) else {
            bail!("{}: the repository has no working copy", start.display());
        };
        Ok(Self { repo, root })
    }

    pub fn head(&self) -> Option<Oid> {
        self.repo.head().ok()?.peel_to_commit().ok().map(|c| c.id())
    }

    /// Whether `sha` names a commit this clone has (it may need a `git fetch`).
    pub fn has_commit(&self, sha: &str) -> bool {
        Oid::from_str(sha)
            .ok()
            .and_then(|oid| self.repo.find_commit(oid).ok())
            .is_some()
    }

    /// A renderer source for the tree of `revision`, without touching the working copy.
    pub fn source_at(&self, revision: &str) -> anyhow::Result<GitTreeSource> {
        Ok(GitTreeSource::at_revision(&self.root, revision)?)
    }

    /// How the local HEAD relates to the tracked commit.
    pub fn relation(&self, tracked: &str) -> HeadRelation {
        let Some(head) = self.head() else {
            return HeadRelation::unknown(None);
        };
        let head_sha = Some(head.to_string());
        let Some(tracked) = Oid::from_str(tracked)
            .ok()
            .filter(|oid| self.repo.find_commit(*oid).is_ok())
        else {
            return HeadRelation::unknown(head_sha);
        };
        match self.repo.graph_ahead_behind(head, tracked) {
            Ok((ahead, behind)) => HeadRelation {
                head: head_sha,
                state: RelationState::from_counts(ahead, behind),
                ahead: ahead as u64,
                behind: behind as u64,
            },
            Err(_) => HeadRelation::unknown(head_sha),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RelationState {
    /// HEAD is the tracked commit.
    Same,
    /// HEAD has commits the agent does not track yet (pushed or not).
    Ahead,
    /// The agent tracks commits this clone has not checked out.
    Behind,
    Diverged,
    /// No HEAD, or the tracked commit is not in this clone (fetch first).
    Unknown,
}

impl RelationState {
    fn from_counts(ahead: usize, behind: usize) -> Self {
        match (ahead, behind) {
            (0, 0) => Self::Same,
            (_, 0) => Self::Ahead,
            (0, _) => Self::Behind,
            _ => Self::Diverged,
        }
    }
}

/// The local HEAD compared with the tracked commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadRelation {
    pub head: Option<String>,
    pub state: RelationState,
    pub ahead: u64,
    pub behind: u64,
}

impl HeadRelation {
    fn unknown(head: Option<String>) -> Self {
        Self {
            head,
            state: RelationState::Unknown,
            ahead: 0,
            behind: 0,
        }
    }

    pub fn describe(&self) -> String {
        match self.state {
            RelationState::Same => "local HEAD is the tracked commit".into(),
            RelationState::Ahead => format!("local HEAD is {} commit(s) ahead", self.ahead),
            RelationState::Behind => format!("local HEAD is {} commit(s) behind", self.behind),
            RelationState::Diverged => format!(
                "local HEAD has diverged ({} ahead, {} behind)",
                self.ahead, self.behind
            ),
            RelationState::Unknown => "tracked commit not in this clone (run `git fetch`)".into(),
        }
    }
}

/// A short commit id for text output.
pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The commit and overlay path to render: `--revision`/`--path` when given, else what the
/// agent tracks. The commit is resolved to a full sha in the local clone.
pub fn resolve_target(
    local: &LocalRepo,
    status: Option<&SyncStatus>,
    revision: Option<&str>,
    path: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let path = match (path, status) {
        (Some(p), _) => p.to_string(),
        (None, Some(s)) => s.path.clone(),
        (None, None) => bail!("no agent status in the namespace: pass --path DIR (the overlay)"),
    };
    let revision = match (revision, status.and_then(tracked_commit)) {
        (Some(r), _) => r.to_string(),
        (None, Some(c)) => c.to_string(),
        (None, None) => "HEAD".to_string(),
    };
    let commit = local
        .repo
        .revparse_single(&revision)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id().to_string())
        .with_context(|| {
            format!(
                "revision {revision} is not in the clone at {} (run `git fetch`?)",
                local.root.display()
            )
        })?;
    Ok((commit, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn relation_from_counts() {
        assert_eq!(RelationState::from_counts(0, 0), RelationState::Same);
        assert_eq!(RelationState::from_counts(2, 0), RelationState::Ahead);
        assert_eq!(RelationState::from_counts(0, 1), RelationState::Behind);
        assert_eq!(RelationState::from_counts(1, 1), RelationState::Diverged);
    }

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

    #[test]
    fn relation_against_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let sig = git2::Signature::now("T", "t@example.com").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let first = repo
            .commit(Some("HEAD"), &sig, &sig, "one", &tree, &[])
            .unwrap();
        let parent = repo.find_commit(first).unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "two", &tree, &[&parent])
            .unwrap();
        drop(parent);
        let local = LocalRepo::open(Some(dir.path())).unwrap();
        let rel = local.relation(&first.to_string());
        assert_eq!((rel.state, rel.ahead), (RelationState::Ahead, 1));
        assert!(local.has_commit(&first.to_string()));
        assert!(!local.has_commit("0123456789012345678901234567890123456789"));
        assert_eq!(
            local
                .relation("0123456789012345678901234567890123456789")
                .state,
            RelationState::Unknown
        );
    }
}
