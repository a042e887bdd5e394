//! A [`renderer::Source`] over a Git tree, so a revision renders without touching (or even
//! having) a working copy: the plugin reads a clone at `--revision`, the agent reads the
//! commit it fetched into a bare cache. Its own crate because git2 must not enter the pure
//! renderer.
//!
//! Symlinks (mode 120000) are followed like a checkout would, but only while they stay
//! inside the tree: an absolute target or one that climbs above the root is refused, because
//! a kustomization must not read files that are not part of the revision being rendered.

use std::path::Path;
use std::sync::Mutex;

use git2::{ObjectType, Oid, Repository};
use renderer::{EntryKind, Source, SourceError};

const MODE_TREE: i32 = 0o040000;
const MODE_SYMLINK: i32 = 0o120000;
const MODE_COMMIT: i32 = 0o160000;
/// Linux's ELOOP limit; a link cycle fails instead of spinning.
const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum GitSourceError {
    #[error("{}: not inside a Git working copy: {source}", path.display())]
    NoRepository {
        path: std::path::PathBuf,
        source: git2::Error,
    },
    #[error("revision {revision:?} in {repo}: {source}")]
    Revision {
        revision: String,
        repo: String,
        source: git2::Error,
    },
}

/// The tree of one commit. Holds the repository behind a mutex because git2 handles are
/// not `Sync` and a `Source` must be.
pub struct GitTreeSource {
    repo: Mutex<Repository>,
    tree: Oid,
    /// What the tree came from (commit id), for messages.
    commit: Option<Oid>,
}

impl GitTreeSource {
    pub fn new(repo: Repository, tree: Oid) -> Self {
        Self {
            repo: Mutex::new(repo),
            tree,
            commit: None,
        }
    }

    /// The tree of `commit`, which must be in `repo` (a bare fetch cache will do).
    pub fn from_commit(repo: Repository, commit: Oid) -> Result<Self, git2::Error> {
        let tree = repo.find_commit(commit)?.tree_id();
        Ok(Self {
            repo: Mutex::new(repo),
            tree,
            commit: Some(commit),
        })
    }

    /// Opens the repository containing `path` and resolves `revision` (commit, tag, branch,
    /// or anything `git rev-parse` accepts) to its tree.
    pub fn at_revision(path: &Path, revision: &str) -> Result<Self, GitSourceError> {
        let repo = Repository::discover(path).map_err(|source| GitSourceError::NoRepository {
            path: path.to_path_buf(),
            source,
        })?;
        let revision_error = |source| GitSourceError::Revision {
            revision: revision.to_string(),
            repo: repo.workdir().unwrap_or(repo.path()).display().to_string(),
            source,
        };
        let commit = repo
            .revparse_single(revision)
            .and_then(|object| object.peel_to_commit())
            .map_err(revision_error)?;
        let (commit_id, tree_id) = (commit.id(), commit.tree_id());
        drop(commit);
        Ok(Self {
            repo: Mutex::new(repo),
            tree: tree_id,
            commit: Some(commit_id),
        })
    }

    pub fn commit(&self) -> Option<Oid> {
        self.commit
    }

    /// The working directory of the repository, if it is not bare.
    pub fn workdir(&self) -> Option<std::path::PathBuf> {
        self.lock().workdir().map(Path::to_path_buf)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Repository> {
        self.repo
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Walks `path` from the root, following in-tree symlinks.
    fn resolve(&self, repo: &Repository, path: &str) -> Result<(Oid, EntryKind), SourceError> {
        self.walk(repo, path).map(|(oid, kind, _)| (oid, kind))
    }

    /// [`Self::resolve`], with the entry's path once every symlink is resolved.
    fn walk(
        &self,
        repo: &Repository,
        path: &str,
    ) -> Result<(Oid, EntryKind, Vec<String>), SourceError> {
        let other = |message: String| SourceError::Other {
            path: path.to_string(),
            message,
        };
        let not_found = || SourceError::NotFound {
            path: path.to_string(),
        };
        let escapes = || SourceError::EscapesRoot {
            path: path.to_string(),
        };

        // Directories walked so far, root first; the last one is where lookups happen.
        let mut dirs: Vec<Oid> = vec![self.tree];
        // Names of `dirs` below the root, then of the file reached.
        let mut names: Vec<String> = vec![];
        let mut pending: Vec<String> = split(path).rev().map(str::to_string).collect();
        let mut current = (self.tree, EntryKind::Dir);
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            match name.as_str() {
                "" | "." => continue,
                ".." => {
                    if current.1 != EntryKind::Dir {
                        return Err(not_found());
                    }
                    if dirs.len() == 1 {
                        return Err(escapes());
                    }
                    dirs.pop();
                    names.pop();
                    current = (*dirs.last().expect("root stays"), EntryKind::Dir);
                    continue;
                }
                _ => {}
            }
            if current.1 != EntryKind::Dir {
                return Err(not_found());
            }
            let tree = repo
                .find_tree(current.0)
                .map_err(|e| other(e.message().to_string()))?;
            let entry = tree.get_name(&name).ok_or_else(not_found)?;
            match entry.filemode() {
                MODE_TREE => {
                    dirs.push(entry.id());
                    names.push(name);
                    current = (entry.id(), EntryKind::Dir);
                }
                MODE_SYMLINK => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(other("too many levels of symbolic links".to_string()));
                    }
                    let blob = repo
                        .find_blob(entry.id())
                        .map_err(|e| other(e.message().to_string()))?;
                    let target = std::str::from_utf8(blob.content())
                        .map_err(|_| other("symlink target is not UTF-8".to_string()))?;
                    if target.starts_with('/') {
                        return Err(escapes());
                    }
                    // The target is relative to the link's directory, which is where we are.
                    current = (*dirs.last().expect("root stays"), EntryKind::Dir);
                    pending.extend(split(target).rev().map(str::to_string));
                }
                MODE_COMMIT => {
                    return Err(other("is a Git submodule, which is not supported".into()));
                }
                _ if entry.kind() == Some(ObjectType::Blob) => {
                    current = (entry.id(), EntryKind::File);
                    names.push(name);
                }
                mode => return Err(other(format!("unsupported tree entry mode {mode:o}"))),
            }
        }
        Ok((current.0, current.1, names))
    }
}

fn split(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/')
}

impl Source for GitTreeSource {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let repo = self.lock();
        match self.resolve(&repo, path)? {
            (oid, EntryKind::File) => {
                repo.find_blob(oid)
                    .map(|b| b.content().to_vec())
                    .map_err(|e| SourceError::Other {
                        path: path.to_string(),
                        message: e.message().to_string(),
                    })
            }
            (_, EntryKind::Dir) => Err(SourceError::Other {
                path: path.to_string(),
                message: "is a directory".into(),
            }),
        }
    }

    fn size(&self, path: &str) -> Option<u64> {
        let repo = self.lock();
        let (oid, kind) = self.resolve(&repo, path).ok()?;
        if kind != EntryKind::File {
            return None;
        }
        let (size, _) = repo.odb().ok()?.read_header(oid).ok()?;
        Some(size as u64)
    }

    fn canonical(&self, path: &str) -> Option<String> {
        let repo = self.lock();
        self.walk(&repo, path)
            .ok()
            .map(|(_, _, names)| names.join("/"))
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        let repo = self.lock();
        self.resolve(&repo, path).ok().map(|(_, kind)| kind)
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        let repo = self.lock();
        match self.resolve(&repo, path)? {
            (oid, EntryKind::Dir) => {
                let tree = repo.find_tree(oid).map_err(|e| SourceError::Other {
                    path: path.to_string(),
                    message: e.message().to_string(),
                })?;
                let mut names: Vec<String> = tree
                    .iter()
                    .filter_map(|e| e.name().ok().map(str::to_string))
                    .collect();
                names.sort();
                Ok(names)
            }
            (_, EntryKind::File) => Err(SourceError::Other {
                path: path.to_string(),
                message: "not a directory".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// A real repository in a tempdir; `commit` snapshots the whole working tree.
    struct Repo {
        dir: tempfile::TempDir,
        repo: Repository,
    }

    impl Repo {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repository::init(dir.path()).unwrap();
            Self { dir, repo }
        }

        fn write(&self, path: &str, content: &str) {
            let full = self.dir.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, content).unwrap();
        }

        fn link(&self, path: &str, target: &str) {
            let full = self.dir.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            symlink(target, full).unwrap();
        }

        fn commit(&self, message: &str) -> Oid {
            let mut index = self.repo.index().unwrap();
            index
                .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
                .unwrap();
            index.write().unwrap();
            let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
            let sig = git2::Signature::now("Test", "test@example.com").unwrap();
            let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
            let parents: Vec<&git2::Commit> = parent.iter().collect();
            self.repo
                .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
                .unwrap()
        }

        fn source(&self, revision: &str) -> GitTreeSource {
            GitTreeSource::at_revision(self.dir.path(), revision).unwrap()
        }
    }

    #[test]
    fn reads_files_at_a_revision_not_the_working_tree() {
        let repo = Repo::new();
        repo.write("app/kustomization.yaml", "resources: [a.yaml]\n");
        repo.write("app/a.yaml", "v1\n");
        let first = repo.commit("one");
        repo.write("app/a.yaml", "v2\n");
        repo.commit("two");
        repo.write("app/a.yaml", "dirty\n");

        assert_eq!(
            repo.source(&first.to_string()).read("app/a.yaml").unwrap(),
            b"v1\n"
        );
        assert_eq!(repo.source("HEAD").read("app/a.yaml").unwrap(), b"v2\n");
        assert_eq!(repo.source("HEAD~1").commit(), Some(first));
        // The working copy was not touched.
        assert_eq!(
            fs::read_to_string(repo.dir.path().join("app/a.yaml")).unwrap(),
            "dirty\n"
        );
    }

    #[test]
    fn resolves_tags_and_branches() {
        let repo = Repo::new();
        repo.write("f", "tagged\n");
        let id = repo.commit("one");
        let object = repo.repo.find_object(id, None).unwrap();
        let sig = git2::Signature::now("Test", "test@example.com").unwrap();
        repo.repo
            .tag("v1.0.0", &object, &sig, "release", false)
            .unwrap();
        repo.repo
            .branch("release", &object.peel_to_commit().unwrap(), false)
            .unwrap();
        repo.write("f", "later\n");
        repo.commit("two");
        assert_eq!(repo.source("v1.0.0").read("f").unwrap(), b"tagged\n");
        assert_eq!(repo.source("release").read("f").unwrap(), b"tagged\n");
    }

    /// Issue #14: two symlinks to `.` listed as resources compared unequal as path strings
    /// and fanned out exponentially; on resolved paths they are the root itself, a cycle.
    #[test]
    fn symlinks_to_the_same_directory_are_a_cycle() {
        let repo = Repo::new();
        repo.write("kustomization.yaml", "resources:\n- a\n- b\n");
        repo.link("a", ".");
        repo.link("b", ".");
        repo.write(
            "app/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
        );
        repo.link("app/up", "../app");
        repo.commit("hostile");
        let src = repo.source("HEAD");
        assert_eq!(src.canonical("a").as_deref(), Some(""));
        assert_eq!(
            src.canonical("app/up/cm.yaml").as_deref(),
            Some("app/cm.yaml")
        );
        assert_eq!(src.size("app/cm.yaml"), Some(51));
        let e = renderer::render(&src, ".", &renderer::RenderOptions::default()).unwrap_err();
        assert!(e.message.contains("cycle detected"), "{e}");
        assert_eq!(e.file, "kustomization.yaml");
    }

    #[test]
    fn lists_and_kinds() {
        let repo = Repo::new();
        repo.write("base/b.yaml", "");
        repo.write("base/a.yaml", "");
        repo.write("base/sub/c.yaml", "");
        repo.commit("one");
        let src = repo.source("HEAD");
        assert_eq!(src.list("base").unwrap(), ["a.yaml", "b.yaml", "sub"]);
        assert_eq!(src.list("").unwrap(), ["base"]);
        assert_eq!(src.kind("base"), Some(EntryKind::Dir));
        assert_eq!(src.kind("base/a.yaml"), Some(EntryKind::File));
        assert_eq!(src.kind(""), Some(EntryKind::Dir));
        assert_eq!(src.kind("base/missing"), None);
        assert!(
            matches!(src.read("base/missing"), Err(SourceError::NotFound { path }) if path == "base/missing")
        );
        assert!(src.read("base").is_err());
        assert!(src.list("base/a.yaml").is_err());
        assert!(matches!(
            src.read("base/a.yaml/x"),
            Err(SourceError::NotFound { .. })
        ));
    }

    #[test]
    fn follows_symlinks_inside_the_tree() {
        let repo = Repo::new();
        repo.write("base/deploy.yaml", "kind: Deployment\n");
        repo.link("overlays/prod/deploy.yaml", "../../base/deploy.yaml");
        repo.link("shared", "base");
        repo.commit("links");
        let src = repo.source("HEAD");
        assert_eq!(
            src.read("overlays/prod/deploy.yaml").unwrap(),
            b"kind: Deployment\n"
        );
        assert_eq!(
            src.read("shared/deploy.yaml").unwrap(),
            b"kind: Deployment\n"
        );
        assert_eq!(src.kind("shared"), Some(EntryKind::Dir));
        assert_eq!(src.list("shared").unwrap(), ["deploy.yaml"]);
    }

    #[test]
    fn refuses_symlinks_that_escape_the_root() {
        let repo = Repo::new();
        repo.link("app/passwd", "/etc/passwd");
        repo.link("app/up", "../../outside.yaml");
        repo.link("app/dir", "../..");
        repo.commit("escapes");
        let src = repo.source("HEAD");
        for path in ["app/passwd", "app/up", "app/dir/x"] {
            match src.read(path) {
                Err(SourceError::EscapesRoot { path: p }) => assert_eq!(p, path),
                other => panic!("{path}: expected EscapesRoot, got {other:?}"),
            }
        }
        assert_eq!(src.kind("app/passwd"), None);
    }

    #[test]
    fn symlink_loops_fail() {
        let repo = Repo::new();
        repo.link("a", "b");
        repo.link("b", "a");
        repo.commit("loop");
        let err = repo.source("HEAD").read("a").unwrap_err();
        assert!(err.to_string().contains("too many levels"), "{err}");
    }

    #[test]
    fn unknown_revision_names_it() {
        let repo = Repo::new();
        repo.write("f", "");
        repo.commit("one");
        let err = GitTreeSource::at_revision(repo.dir.path(), "no-such-tag")
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"no-such-tag\""), "{err}");
    }

    #[test]
    fn outside_a_repository_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = GitTreeSource::at_revision(dir.path(), "HEAD")
            .err()
            .unwrap();
        assert!(matches!(err, GitSourceError::NoRepository { .. }), "{err}");
    }

    /// A bare repository (as the agent fetches into) with one commit built from (path, content, is_symlink) entries.
    fn repo_with(files: &[(&str, &str, bool)]) -> (tempfile::TempDir, Repository, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let commit = {
            let mut index = git2::Index::new().unwrap();
            for (path, content, link) in files {
                let oid = repo.blob(content.as_bytes()).unwrap();
                let mode = if *link { MODE_SYMLINK as u32 } else { 0o100644 };
                let entry = git2::IndexEntry {
                    ctime: git2::IndexTime::new(0, 0),
                    mtime: git2::IndexTime::new(0, 0),
                    dev: 0,
                    ino: 0,
                    mode,
                    uid: 0,
                    gid: 0,
                    file_size: content.len() as u32,
                    id: oid,
                    flags: 0,
                    flags_extended: 0,
                    path: path.as_bytes().to_vec(),
                };
                index.add(&entry).unwrap();
            }
            let tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
            let sig = git2::Signature::now("t", "t@example.com").unwrap();
            repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap()
        };
        (dir, repo, commit)
    }

    #[test]
    fn reads_a_bare_repository_by_commit() {
        let (_d, repo, c) = repo_with(&[
            ("base/kustomization.yaml", "resources: [a.yaml]\n", false),
            ("base/a.yaml", "kind: A\n", false),
            (
                "overlays/prod/kustomization.yaml",
                "resources: [../../base]\n",
                false,
            ),
        ]);
        let src = GitTreeSource::from_commit(repo, c).unwrap();
        assert_eq!(src.read("base/a.yaml").unwrap(), b"kind: A\n");
        assert_eq!(src.kind("overlays"), Some(EntryKind::Dir));
        assert_eq!(src.kind("base/a.yaml"), Some(EntryKind::File));
        assert_eq!(src.kind("nope"), None);
        assert_eq!(
            src.list("base").unwrap(),
            vec!["a.yaml", "kustomization.yaml"]
        );
        assert_eq!(src.list("").unwrap(), vec!["base", "overlays"]);
        assert!(matches!(
            src.read("base/missing.yaml"),
            Err(SourceError::NotFound { .. })
        ));
    }

    #[test]
    fn bare_repository_symlinks_stay_inside() {
        let (_d, repo, c) = repo_with(&[
            ("base/a.yaml", "kind: A\n", false),
            ("overlays/prod/a.yaml", "../../base/a.yaml", true),
            ("overlays/shared", "../base", true),
            ("overlays/evil.yaml", "../../etc/passwd", true),
            ("overlays/abs.yaml", "/etc/passwd", true),
            ("loop", "loop", true),
        ]);
        let src = GitTreeSource::from_commit(repo, c).unwrap();
        assert_eq!(src.read("overlays/prod/a.yaml").unwrap(), b"kind: A\n");
        assert_eq!(src.read("overlays/shared/a.yaml").unwrap(), b"kind: A\n");
        assert_eq!(src.kind("overlays/shared"), Some(EntryKind::Dir));
        assert!(matches!(
            src.read("overlays/evil.yaml"),
            Err(SourceError::EscapesRoot { .. })
        ));
        assert!(matches!(
            src.read("overlays/abs.yaml"),
            Err(SourceError::EscapesRoot { .. })
        ));
        assert!(src.read("loop").is_err());
    }
}
