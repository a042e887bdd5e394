//! The one call into the Kustomize renderer: a Git tree in, objects with their origin out,
//! after the guardrails (`--refuse`) judged the render.

use renderer::Source;
use renderer::kustomize::{RenderOptions, render as kustomize};

use crate::reconcile::plan::Desired;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderFailure {
    /// The tree does not build (or an object is unusable). Errors name the file and line.
    #[error("{0}")]
    Render(String),
    /// A guardrail rule is broken: one entry per finding, naming rule, object and file:line.
    #[error("{}", .0.join("; "))]
    Refused(Vec<String>),
}

/// Renders the kustomization at `path` of `source`, refusing it when it breaks one of the
/// `refuse` rules (the same rule code as `kubectl gitops lint`).
pub fn render(
    source: &dyn Source,
    path: &str,
    refuse: &[&'static str],
) -> Result<Vec<Desired>, RenderFailure> {
    let dir = if path.is_empty() { "." } else { path };
    let rendered = kustomize(source, dir, &RenderOptions::default())
        .map_err(|e| RenderFailure::Render(e.to_string()))?;
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
                .provenance
                .get("metadata.name")
                .map(|f| format!("{}:{}", f.origin.file, f.origin.line));
            Desired::from_object(o.value, origin).map_err(RenderFailure::Render)
        })
        .collect()
}
