//! `renderer::Source` over a Git tree: the renderer reads the fetched commit without a checkout.

use std::sync::Mutex;

use git2::{ObjectType, Oid, Repository};
use renderer::{EntryKind, Source, SourceError};

/// Symlink chains longer than this are refused (as the kernel's ELOOP would).
const MAX_SYMLINKS: usize = 40;
const SYMLINK_MODE: i32 = 0o120000;

/// A commit's tree. `git2::Repository` is not `Sync`, hence the mutex; renders are sequential.
pub struct GitTreeSource {
    repo: Mutex<Repository>,
    tree: Oid,
}

struct Entry {
    oid: Oid,
    kind: EntryKind,
}

impl GitTreeSource {
    pub fn new(repo: Repository, commit: Oid) -> Result<Self, git2::Error> {
        let tree = repo.find_commit(commit)?.tree_id();
        Ok(Self {
            repo: Mutex::new(repo),
            tree,
        })
    }

    /// Walks `path` from the root, following symlinks that stay inside the tree.
    fn lookup(&self, path: &str) -> Result<Entry, SourceError> {
        let repo = self.repo.lock().unwrap_or_else(|p| p.into_inner());
        let other = |e: git2::Error| SourceError::Other {
            path: path.to_string(),
            message: e.message().to_string(),
        };
        let not_found = || SourceError::NotFound {
            path: path.to_string(),
        };

        let mut pending: Vec<String> = split(path).into_iter().rev().collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut current = Entry {
            oid: self.tree,
            kind: EntryKind::Dir,
        };
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            if current.kind != EntryKind::Dir {
                return Err(not_found());
            }
            let tree = repo.find_tree(current.oid).map_err(other)?;
            let entry = tree.get_name(&name).ok_or_else(not_found)?;
            if entry.filemode() == SYMLINK_MODE {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(SourceError::Other {
                        path: path.to_string(),
                        message: "too many levels of symbolic links".into(),
                    });
                }
                let blob = repo.find_blob(entry.id()).map_err(other)?;
                let target = String::from_utf8_lossy(blob.content()).into_owned();
                let escapes = || SourceError::EscapesRoot {
                    path: path.to_string(),
                };
                if target.starts_with('/') {
                    return Err(escapes());
                }
                let mut joined = resolved.clone();
                for segment in target.split('/') {
                    match segment {
                        "" | "." => {}
                        ".." => {
                            joined.pop().ok_or_else(escapes)?;
                        }
                        s => joined.push(s.to_string()),
                    }
                }
                // Restart from the root with the link replaced by its target.
                pending.extend(joined.into_iter().rev());
                resolved.clear();
                current = Entry {
                    oid: self.tree,
                    kind: EntryKind::Dir,
                };
                continue;
            }
            let kind = match entry.kind() {
                Some(ObjectType::Tree) => EntryKind::Dir,
                Some(ObjectType::Blob) => EntryKind::File,
                // Submodules (commits) are not part of this repository's content.
                _ => return Err(not_found()),
            };
            current = Entry {
                oid: entry.id(),
                kind,
            };
            resolved.push(name);
        }
        Ok(current)
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(str::to_string)
        .collect()
}

impl Source for GitTreeSource {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let entry = self.lookup(path)?;
        if entry.kind != EntryKind::File {
            return Err(SourceError::Other {
                path: path.to_string(),
                message: "is a directory".into(),
            });
        }
        let repo = self.repo.lock().unwrap_or_else(|p| p.into_inner());
        let blob = repo.find_blob(entry.oid).map_err(|e| SourceError::Other {
            path: path.to_string(),
            message: e.message().to_string(),
        })?;
        Ok(blob.content().to_vec())
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        self.lookup(path).ok().map(|e| e.kind)
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        let entry = self.lookup(path)?;
        if entry.kind != EntryKind::Dir {
            return Err(SourceError::Other {
                path: path.to_string(),
                message: "not a directory".into(),
            });
        }
        let repo = self.repo.lock().unwrap_or_else(|p| p.into_inner());
        let tree = repo.find_tree(entry.oid).map_err(|e| SourceError::Other {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real repository with one commit built from (path, content, is_symlink) entries.
    fn repo_with(files: &[(&str, &str, bool)]) -> (tempfile::TempDir, Repository, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let commit = {
            let mut index = git2::Index::new().unwrap();
            for (path, content, link) in files {
                let oid = repo.blob(content.as_bytes()).unwrap();
                let mode = if *link { SYMLINK_MODE as u32 } else { 0o100644 };
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
    fn reads_files_and_lists_dirs() {
        let (_d, repo, c) = repo_with(&[
            ("base/kustomization.yaml", "resources: [a.yaml]\n", false),
            ("base/a.yaml", "kind: A\n", false),
            (
                "overlays/prod/kustomization.yaml",
                "resources: [../../base]\n",
                false,
            ),
        ]);
        let src = GitTreeSource::new(repo, c).unwrap();
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
    fn follows_symlinks_inside_and_refuses_escapes() {
        let (_d, repo, c) = repo_with(&[
            ("base/a.yaml", "kind: A\n", false),
            ("overlays/prod/a.yaml", "../../base/a.yaml", true),
            ("overlays/shared", "../base", true),
            ("overlays/evil.yaml", "../../etc/passwd", true),
            ("overlays/abs.yaml", "/etc/passwd", true),
            ("loop", "loop", true),
        ]);
        let src = GitTreeSource::new(repo, c).unwrap();
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
