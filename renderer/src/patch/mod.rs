//! Strategic-merge and JSON6902 patches, and patch target selection.

mod json6902;
mod strategic;
mod target;

use serde_json::Value;

use crate::schema::Schema;

pub use target::{OriginalId, Target, TargetMatcher};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    #[error(
        "strategic merge: {path}: patch and target disagree on the node kind (map, list or scalar)"
    )]
    KindMismatch { path: String },
    #[error("strategic merge: {path}: unknown patch strategy '{value}'")]
    UnknownDirective { path: String, value: String },
    #[error("json patch operation {index} ({op}): {message}")]
    Json6902 {
        index: usize,
        op: String,
        message: String,
    },
    #[error("patch target: {message}")]
    Target { message: String },
    /// kustomize: a strategic-merge patch without `target` must match a resource by its own
    /// apiVersion/kind/name/namespace.
    #[error("no resource matches strategic merge patch {id}")]
    NoMatch { id: String },
}

/// `patches[].options` of a kustomization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PatchOptions {
    pub allow_name_change: bool,
    pub allow_kind_change: bool,
}

/// kyaml's strategic merge of `patch` into `target`, nothing more. `Ok(None)`: deleted.
pub fn strategic_merge(
    target: &Value,
    patch: &Value,
    schema: &Schema,
) -> Result<Option<Value>, PatchError> {
    strategic::merge(target, patch, schema)
}

/// Applies a strategic-merge patch to one resource as kustomize's PatchTransformer does:
/// with `targeted` (the patch entry has a `target`), the patch takes the resource's
/// apiVersion; afterwards kind and name are restored unless the options allow a change, and
/// the namespace is always restored. `Ok(None)` means the patch deleted the resource.
pub fn apply_strategic_merge(
    resource: &Value,
    patch: &Value,
    schema: &Schema,
    targeted: bool,
    options: PatchOptions,
) -> Result<Option<Value>, PatchError> {
    let mut patch = patch.clone();
    if targeted && let Value::Object(m) = &mut patch {
        let kind = m
            .get("kind")
            .cloned()
            .unwrap_or_else(|| Value::String(String::new()));
        m.insert(
            "apiVersion".into(),
            resource.get("apiVersion").cloned().unwrap_or_default(),
        );
        m.insert("kind".into(), kind);
    }
    let Some(mut out) = strategic::merge(resource, &patch, schema)? else {
        return Ok(None);
    };
    if out.as_object().is_none_or(|m| m.is_empty()) {
        return Ok(None);
    }
    let name = resource.pointer("/metadata/name").cloned();
    let namespace = resource
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let obj = out.as_object_mut().expect("checked");
    if !options.allow_kind_change {
        obj.insert(
            "kind".into(),
            resource.get("kind").cloned().unwrap_or_default(),
        );
    }
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(meta) = meta {
        if !options.allow_name_change {
            meta.insert(
                "name".into(),
                name.unwrap_or_else(|| Value::String(String::new())),
            );
        }
        if namespace.is_empty() {
            meta.shift_remove("namespace");
        } else {
            meta.insert("namespace".into(), Value::String(namespace.into()));
        }
    }
    Ok(Some(out))
}

/// Applies a JSON6902 patch (the decoded list of operations) to one resource.
pub fn apply_json6902(resource: &Value, ops: &Value) -> Result<Value, PatchError> {
    json6902::apply(resource, ops)
}

#[cfg(test)]
mod json6902_tests;
#[cfg(test)]
mod strategic_tests;
