//! The pure core shared by the plugin and the agent.
//!
//! No tokio, no kube client, no git2: everything here is testable without a cluster.

/// The plugin/agent protocol: labels, annotations and status keys (ApplySet, break-glass).
pub mod protocol;
/// Ignore rules and redaction: what is drift and what is never printed.
pub mod drift;
/// Where files come from: a working tree, or a Git tree read by the caller.
pub mod source;
/// YAML parsing with positions and `kubectl kustomize`-identical output.
pub mod yaml;
/// The Kustomize engine.
pub mod kustomize;
/// Strategic-merge and JSON6902 patches.
pub mod patch;
/// Merge keys, patch strategies and transformer field specs of Kubernetes types.
pub mod schema;
/// ConfigMap/Secret generators.
pub mod generators;
/// Name-reference updates.
pub mod nameref;

pub use source::{EntryKind, FsSource, Source, SourceError};
