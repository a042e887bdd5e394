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
    resolved: Mutex<HashMap<String, PathBuf>>,
    /// Kind and size of each entry asked about, by path (see [`FsSource::entry`]).
    entries: Mutex<HashMap<String, (EntryKind, u64)>>,
}

impl FsSource {
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(Self {
            root: root.as_ref().canonicalize()?,
            resolved: Mutex::default(),
            entries: Mutex::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Kind and size of an entry (symlinks followed), looked up once: the renderer asks for
    /// the kind, then the size, then the content of most files. Only entries found are kept:
    /// a caller may write a missing file and render again with the same source (`backfill`).
    /// A size kept from before such a write only sizes the read buffer, and the limit is
    /// checked again on what was read.
    fn entry(&self, path: &str) -> Result<(EntryKind, u64), SourceError> {
        if let Some(&found) = self.entries().get(path) {
            return Ok(found);
        }
        let real = self.resolved(path)?;
        // Resolving a path that is no symlink already recorded what its `lstat` said.
        if let Some(&found) = self.entries().get(path) {
            return Ok(found);
        }
        let meta = std::fs::metadata(&real).map_err(|_| SourceError::NotFound {
            path: path.to_string(),
        })?;
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        self.entries().insert(path.to_string(), (kind, meta.len()));
        Ok((kind, meta.len()))
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (EntryKind, u64)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A path's resolution, made once per `FsSource` (every file under a directory starts
    /// from the directory's; a file is asked about several times). Only paths found are kept:
    /// a caller may write a missing file and render again with the same source (`backfill`).
    fn resolved(&self, path: &str) -> Result<PathBuf, SourceError> {
        let cached = self.lock().get(path).cloned();
        if let Some(found) = cached {
            return Ok(found);
        }
        let found = self.resolve(path)?;
        self.lock().insert(path.to_string(), found.clone());
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PathBuf>> {
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
        let parent = self.resolved(parent).map_err(|e| match e {
            SourceError::NotFound { .. } => not_found(),
            other => other,
        })?;
        let candidate = parent.join(name);
        let meta = std::fs::symlink_metadata(&candidate).map_err(|_| not_found())?;
        if !meta.file_type().is_symlink() {
            let kind = if meta.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::File
            };
            self.entries().insert(path.to_string(), (kind, meta.len()));
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
        use std::io::Read;
        let real = self.resolved(path)?;
        let other = |e: std::io::Error| SourceError::Other {
            path: path.to_string(),
            message: e.to_string(),
        };
        // The size was just looked up (`size`, before every read): reading into a buffer of
        // that size saves the `fstat` and `lseek` of `std::fs::read` (`Take` does not probe).
        let hint = self.entries().get(path).map_or(0, |e| e.1);
        let file = std::fs::File::open(&real).map_err(other)?;
        let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).saturating_add(1));
        file.take(u64::MAX).read_to_end(&mut bytes).map_err(other)?;
        Ok(bytes)
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        self.entry(path).ok().map(|e| e.0)
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        let real = self.resolved(path)?;
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
        self.entry(path).ok().map(|e| e.1)
    }

    fn canonical(&self, path: &str) -> Option<String> {
        let real = self.resolved(path).ok()?;
        let rel = real.strip_prefix(&self.root).ok()?;
        Some(rel.to_string_lossy().into_owned())
    }
}
