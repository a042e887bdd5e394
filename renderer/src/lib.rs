//! The pure core shared by the plugin and the agent.
//!
//! - [`source`]: where files come from (a working tree, or a Git tree read by the caller).
//! - rendering Kustomize overlays byte-identically to `kubectl kustomize`, with field provenance.
//! - [`protocol`]: the labels, annotations and status keys through which plugin and agent talk.
//!
//! No tokio, no kube client, no git2: everything here is testable without a cluster.

pub mod protocol;
pub mod source;

pub use source::{EntryKind, FsSource, Source, SourceError};
