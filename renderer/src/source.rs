//! Where the renderer reads files from.
//!
//! Paths are relative to the source root, `/`-separated and already normalised (no `.`/`..`
//! segments, no leading `/`); the root itself is `""`. The renderer resolves `..` itself so it
//! can refuse anything that would leave the root before a `Source` is ever asked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}: symlink points outside the repository root")]
    EscapesRoot { path: String },
    #[error("{path}: {message}")]
    Other { path: String, message: String },
}

/// A read-only tree of files: a directory on disk, or a Git tree at a commit.
pub trait Source: Send + Sync {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError>;
    fn kind(&self, path: &str) -> Option<EntryKind>;
    /// Names (not paths) of the entries of a directory, sorted.
    fn list(&self, path: &str) -> Result<Vec<String>, SourceError>;
    /// The size of a file, when it can be known without reading it (so an oversized file
    /// is refused before it is loaded).
    fn size(&self, _path: &str) -> Option<u64> {
        None
    }
    /// The path with every symlink resolved: two paths naming the same directory have the
    /// same canonical path, which is what cycle detection compares.
    fn canonical(&self, path: &str) -> Option<String> {
        Some(path.to_string())
    }
}

/// A directory on disk. Symlinks are followed only while they stay under the root.
pub struct FsSource {
    root: PathBuf,
    /// Each directory's resolution, made once: canonicalising every path on every query
    /// walked each component with a system call (a quarter of a 1000-app render's CPU time).
    /// A tree is read once per `FsSource`, so a resolution cannot go stale while it is used.
    resolved: Mutex<HashMap<String, Result<PathBuf, SourceError>>>,
}

impl FsSource {
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(Self {
            root: root.as_ref().canonicalize()?,
            resolved: Mutex::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A directory's resolution, made once per `FsSource`: every file under it starts here.
    fn resolve_dir(&self, path: &str) -> Result<PathBuf, SourceError> {
        let cached = self.lock().get(path).cloned();
        if let Some(found) = cached {
            return found;
        }
        let found = self.resolve(path);
        self.lock().insert(path.to_string(), found.clone());
        found
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Result<PathBuf, SourceError>>> {
        self.resolved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The parent's resolution (cached) and one `lstat` of the last component; only a
    /// symlink is canonicalised, and wherever it leads must stay under the root.
    fn resolve(&self, path: &str) -> Result<PathBuf, SourceError> {
        if path.is_empty() {
            return Ok(self.root.clone());
        }
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let not_found = || SourceError::NotFound {
            path: path.to_string(),
        };
        let parent = self.resolve_dir(parent).map_err(|e| match e {
            SourceError::NotFound { .. } => not_found(),
            other => other,
        })?;
        let candidate = parent.join(name);
        let meta = std::fs::symlink_metadata(&candidate).map_err(|_| not_found())?;
        if !meta.file_type().is_symlink() {
            return Ok(candidate);
        }
        let real = candidate.canonicalize().map_err(|_| not_found())?;
        if !real.starts_with(&self.root) {
            return Err(SourceError::EscapesRoot {
                path: path.to_string(),
            });
        }
        Ok(real)
    }
}

impl Source for FsSource {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let real = self.resolve(path)?;
        std::fs::read(&real).map_err(|e| SourceError::Other {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        let meta = std::fs::metadata(self.resolve(path).ok()?).ok()?;
        Some(if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        })
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        let real = self.resolve(path)?;
        let entries = std::fs::read_dir(&real).map_err(|e| SourceError::Other {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn size(&self, path: &str) -> Option<u64> {
        std::fs::metadata(self.resolve(path).ok()?)
            .ok()
            .map(|m| m.len())
    }

    fn canonical(&self, path: &str) -> Option<String> {
        let real = self.resolve(path).ok()?;
        let rel = real.strip_prefix(&self.root).ok()?;
        Some(rel.to_string_lossy().into_owned())
    }
}
