//! What one render may cost. A repository is input from anyone who can push, so each of
//! these bounds fails the render with an error naming the file instead of letting a crafted
//! tree exhaust memory, stack or time. Every bound sits far above what real trees need
//! (a 1000-application repository reads 0.9 MB for its largest overlay).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::source::{EntryKind, Source, SourceError};

/// Largest file read: above the API server's 3 MiB request limit, so an object that could
/// be applied at all fits, as do the largest real CRD bundles.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// All files read by one render together (each read counts, a file read twice counts twice).
pub const MAX_READ_BYTES: u64 = 64 << 20;
/// Kustomization and component builds in one render (fan-out through shared bases).
pub const MAX_BUILDS: usize = 4096;
/// Kustomizations nested inside each other.
pub const MAX_NESTING: usize = 64;
/// Longest mapping key of a YAML document, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// Nodes of one YAML document, counting each alias as its expansion. A parsed node costs
/// about 375 bytes while its file is read (value, position, source text), so this keeps one
/// document under 40 MB.
pub const MAX_NODES: usize = 100_000;
/// Nodes of all YAML parsed by one render (each file every time it is read): bounds the
/// memory many files together take. The prod overlay of a 1000-application repository
/// (`shared/bench/gen_infra_repo.py`, 3000 objects) parses about 460,000. A caller with a
/// memory limit sets its own ([`NodeBudget::with_limit`]; the agent does).
pub const MAX_RENDER_NODES: usize = 1_000_000;
/// Bytes of node paths one YAML file may record for positions, per byte of its text (plus
/// [`POINTER_BYTES_BASE`]): long keys over many leaves multiply otherwise.
pub const POINTER_BYTES_PER_BYTE: usize = 16;
pub const POINTER_BYTES_BASE: usize = 1 << 20;

/// A [`Source`] that refuses files larger than [`MAX_FILE_BYTES`] and stops the render once
/// [`MAX_READ_BYTES`] have been read.
pub struct LimitedSource<'a> {
    inner: &'a dyn Source,
    read: AtomicU64,
}

impl<'a> LimitedSource<'a> {
    pub fn new(inner: &'a dyn Source) -> Self {
        Self {
            inner,
            read: AtomicU64::new(0),
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

fn too_large(path: &str, size: u64) -> SourceError {
    SourceError::Other {
        path: path.to_string(),
        message: format!(
            "file too large: {size} bytes, the limit is {MAX_FILE_BYTES} bytes ({} MiB)",
            MAX_FILE_BYTES >> 20
        ),
    }
}

impl Source for LimitedSource<'_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        if let Some(size) = self.inner.size(path)
            && size > MAX_FILE_BYTES
        {
            return Err(too_large(path, size));
        }
        let bytes = self.inner.read(path)?;
        let size = bytes.len() as u64;
        if size > MAX_FILE_BYTES {
            return Err(too_large(path, size));
        }
        let total = self.read.fetch_add(size, Ordering::Relaxed) + size;
        if total > MAX_READ_BYTES {
            return Err(SourceError::Other {
                path: path.to_string(),
                message: format!(
                    "render reads too much: {total} bytes with this file, the limit is {} MiB (files included more than once count each time)",
                    MAX_READ_BYTES >> 20
                ),
            });
        }
        Ok(bytes)
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        self.inner.kind(path)
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        self.inner.list(path)
    }

    fn size(&self, path: &str) -> Option<u64> {
        self.inner.size(path)
    }

    fn canonical(&self, path: &str) -> Option<String> {
        self.inner.canonical(path)
    }
}

thread_local! {
    /// Nodes parsed by the render running on this thread (and its helper threads), when a
    /// render is running: YAML is parsed from many places, all reached from [`NodeBudget::enter`].
    static NODES: RefCell<Option<Arc<Budget>>> = const { RefCell::new(None) };
}

struct Budget {
    used: AtomicUsize,
    limit: usize,
}

/// The render-wide count of parsed YAML nodes ([`MAX_RENDER_NODES`] unless set).
#[derive(Clone)]
pub struct NodeBudget(Arc<Budget>);

impl Default for NodeBudget {
    fn default() -> Self {
        Self::with_limit(MAX_RENDER_NODES)
    }
}

impl NodeBudget {
    pub fn with_limit(limit: usize) -> Self {
        NodeBudget(Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
        }))
    }

    /// Makes this budget the current thread's until the guard is dropped.
    pub fn enter(&self) -> NodeBudgetGuard {
        let previous = NODES.with(|n| n.borrow_mut().replace(self.0.clone()));
        NodeBudgetGuard(previous)
    }

    /// The budget of the render running on this thread, to hand to helper threads.
    pub fn current() -> Option<NodeBudget> {
        NODES.with(|n| n.borrow().clone().map(NodeBudget))
    }
}

pub struct NodeBudgetGuard(Option<Arc<Budget>>);

impl Drop for NodeBudgetGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        NODES.with(|n| *n.borrow_mut() = previous);
    }
}

/// Adds `nodes` to the running render's count; (total, limit) when it passes the limit.
pub fn charge_nodes(nodes: usize) -> Result<(), (usize, usize)> {
    NODES.with(|n| match &*n.borrow() {
        Some(b) => {
            let total = b.used.fetch_add(nodes, Ordering::Relaxed) + nodes;
            if total > b.limit {
                Err((total, b.limit))
            } else {
                Ok(())
            }
        }
        None => Ok(()),
    })
}
