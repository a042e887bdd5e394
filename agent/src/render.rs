//! The one call into the Kustomize renderer: a Git tree in, objects with their origin out,
//! after the guardrails (`--refuse`) judged the render.

use std::path::Path;

use renderer::Source;
use renderer::kustomize::{RenderOptions, render as kustomize};
use renderer::sops::{AgeKeys, DecryptingSource, Strictness};

use crate::reconcile::plan::Desired;

/// Stack of the runtime's threads, renders included: the renderer recurses once per level of
/// YAML nesting (up to its limit of 512), which a hostile document reaches; 2 MiB (tokio's
/// default) overflowed on it. Only the pages used are ever resident.
pub const RENDER_STACK_BYTES: usize = 8 << 20;

/// YAML nodes one render may parse, for the manifest's 64 MiB memory limit: a parsed node
/// costs a few hundred bytes while its file is read, and `agent/tests/hostile_memory.rs`
/// measures the peak on inputs built to reach this. The 250-application repository of
/// `benches/agent.rs` (1000 objects) is estimated at 115,000: a quarter of the 460,000
/// measured for 1000 applications.
pub const MAX_RENDER_NODES: usize = 150_000;

/// The age keys of `--sops-age-key-file`, read at every render so a rotated Secret is
/// picked up. No file: no keys, and any SOPS file fails the render naming itself.
pub fn sops_keys(file: Option<&Path>) -> Result<AgeKeys, String> {
    let mut keys = AgeKeys::default();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--sops-age-key-file {}: {e}", file.display()))?;
        keys.add(&text, &format!("--sops-age-key-file {}", file.display()))?;
    }
    Ok(keys)
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderFailure {
    /// The tree does not build (or an object is unusable, or a SOPS file does not decrypt).
    /// Errors name the file and line, never a value.
    #[error("{0}")]
    Render(String),
    /// A guardrail rule is broken: one entry per finding, naming rule, object and file:line.
    #[error("{}", .0.join("; "))]
    Refused(Vec<String>),
}

/// Renders the kustomization at `path` of `source`, decrypting SOPS files with `keys` (one
/// that does not decrypt, or whose MAC does not match, fails the whole render), and refusing
/// it when it breaks one of the `refuse` rules (the same rule code as `kubectl gitops lint`).
pub fn render(
    source: &dyn Source,
    path: &str,
    keys: &AgeKeys,
    refuse: &[&'static str],
) -> Result<Vec<Desired>, RenderFailure> {
    let dir = if path.is_empty() { "." } else { path };
    let _budget = renderer::limits::NodeBudget::with_limit(MAX_RENDER_NODES).enter();
    let decrypting = DecryptingSource::new(source, keys, Strictness::Strict);
    let rendered = kustomize(&decrypting, dir, &RenderOptions::default())
        .map_err(|e| RenderFailure::Render(e.to_string()))?;
    // The guardrails read the files as Git holds them, so a SOPS-encrypted Secret is judged
    // encrypted (compliant), not by its decrypted values.
    let broken =
        lint::guard(source, &rendered, refuse).map_err(|e| RenderFailure::Render(e.to_string()))?;
    if !broken.is_empty() {
        return Err(RenderFailure::Refused(
            broken
                .iter()
                .map(|f| format!("guardrail {} at {}: {}", f.rule, f.location(), f.message))
                .collect(),
        ));
    }
    rendered
        .objects
        .into_iter()
        .map(|o| {
            // Where the object's name was written is where the object was declared.
            let origin = o
                .provenance()
                .get("metadata.name")
                .map(|f| format!("{}:{}", f.origin.file, f.origin.line));
            Desired::from_object(o.value, origin).map_err(RenderFailure::Render)
        })
        .collect()
}
