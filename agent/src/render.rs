//! The one call into the Kustomize renderer: a Git tree in, objects with their origin out.

use renderer::Source;
use renderer::kustomize::{RenderOptions, render as kustomize};

use crate::reconcile::plan::Desired;

/// Renders the kustomization at `path` of `source`. Errors name the file and line.
pub fn render(source: &dyn Source, path: &str) -> Result<Vec<Desired>, String> {
    let dir = if path.is_empty() { "." } else { path };
    let rendered = kustomize(source, dir, &RenderOptions::default()).map_err(|e| e.to_string())?;
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
