//! "Do I have it here?": the clone the command runs in, and how its HEAD relates to the
//! commit the agent tracks.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use git2::{Oid, Repository};
use gittree::GitTreeSource;
use renderer::protocol::SyncStatus;
use serde::Serialize;

use crate::cluster::tracked::tracked_commit;

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

    /// Whether `reference` (as the agent spells it) contains `commit`: see [`ref_contains`].
    pub fn ref_contains(&self, reference: &str, commit: Oid) -> Option<bool> {
        ref_contains(&self.repo, reference, commit)
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
/// The commit `reference` (as the agent spells it: a branch, tag or commit) names in a clone,
/// the remote-tracking branch first; `None` when it does not resolve here (a semver range, or
/// not fetched).
pub fn ref_tip(repo: &Repository, reference: &str) -> Option<Oid> {
    [format!("origin/{reference}"), reference.to_string()]
        .iter()
        .find_map(|r| repo.revparse_single(r).ok()?.peel_to_commit().ok())
        .map(|c| c.id())
}

/// Whether `reference`, resolved as [`ref_tip`] does, contains `commit`.
pub fn ref_contains(repo: &Repository, reference: &str, commit: Oid) -> Option<bool> {
    let tip = ref_tip(repo, reference)?;
    Some(tip == commit || repo.graph_descendant_of(tip, commit).unwrap_or(false))
}

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

    #[test]
    fn relation_from_counts() {
        assert_eq!(RelationState::from_counts(0, 0), RelationState::Same);
        assert_eq!(RelationState::from_counts(2, 0), RelationState::Ahead);
        assert_eq!(RelationState::from_counts(0, 1), RelationState::Behind);
        assert_eq!(RelationState::from_counts(1, 1), RelationState::Diverged);
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
