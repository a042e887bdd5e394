//! The one call into the Kustomize renderer: a Git tree in, objects with their origin out.

use std::path::Path;

use renderer::Source;
use renderer::kustomize::{RenderOptions, render as kustomize};
use renderer::sops::{AgeKeys, DecryptingSource, Strictness};

use crate::reconcile::plan::Desired;

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

/// Renders the kustomization at `path` of `source`, decrypting SOPS files with `keys`: one
/// that does not decrypt (or whose MAC does not match) fails the whole render. Errors name
/// the file and line, never a value.
pub fn render(source: &dyn Source, path: &str, keys: &AgeKeys) -> Result<Vec<Desired>, String> {
    let dir = if path.is_empty() { "." } else { path };
    let source = DecryptingSource::new(source, keys, Strictness::Strict);
    let rendered = kustomize(&source, dir, &RenderOptions::default()).map_err(|e| e.to_string())?;
    rendered
        .objects
        .into_iter()
        .map(|o| {
            // Where the object's name was written is where the object was declared.
            let origin = o
                .provenance
                .get("metadata.name")
                .map(|f| format!("{}:{}", f.origin.file, f.origin.line));
            Desired::from_object(o.value, origin)
        })
        .collect()
}
