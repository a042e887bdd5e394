//! The pure core shared by the plugin and the agent.
//!
//! No tokio, no kube client, no git2: everything here is testable without a cluster.

/// Ignore rules and redaction: what is drift and what is never printed.
pub mod drift;
/// ConfigMap/Secret generators.
pub mod generators;
/// The Kustomize engine.
pub mod kustomize;
/// Bounds on what one render may cost (hostile repositories).
pub mod limits;
/// Name-reference updates.
pub mod nameref;
/// Parallel steps whose results keep the sequential order.
mod par;
/// Strategic-merge and JSON6902 patches.
pub mod patch;
/// The plugin/agent protocol: labels, annotations and status keys (ApplySet, break-glass).
pub mod protocol;
/// Secret values replaced before anything is printed.
pub mod redact;
/// Merge keys, patch strategies and transformer field specs of Kubernetes types.
pub mod schema;
/// SOPS-encrypted files (age): decrypted as they are read, encrypted for `backfill`.
#[cfg(feature = "sops")]
pub mod sops;
/// Where files come from: a working tree, or a Git tree read by the caller.
pub mod source;
/// YAML parsing with positions and `kubectl kustomize`-identical output.
pub mod yaml;

pub use source::{EntryKind, FsSource, Source, SourceError};
/// Where every rendered field came from.
pub mod provenance;

pub use kustomize::{
    ErrorKind, RenderError, RenderOptions, Rendered, RenderedObject, Reorder, ResId, render,
};
pub use provenance::{FieldOrigin, FieldPath, Origin, Provenance, SetBy};
