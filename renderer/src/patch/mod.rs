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
    strategic::merge(target.clone(), patch.clone(), schema)
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
    apply_strategic_merge_owned(resource.clone(), patch, schema, targeted, options)
}

/// [`apply_strategic_merge`] consuming the resource (saves a deep copy).
pub fn apply_strategic_merge_owned(
    resource: Value,
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
    let kind = resource.get("kind").cloned().unwrap_or_default();
    let name = resource.pointer("/metadata/name").cloned();
    let namespace = resource
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(mut out) = strategic::merge(resource, patch, schema)? else {
        return Ok(None);
    };
    if out.as_object().is_none_or(|m| m.is_empty()) {
        return Ok(None);
    }
    let obj = out.as_object_mut().expect("checked");
    if !options.allow_kind_change {
        obj.insert("kind".into(), kind);
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
            meta.insert("namespace".into(), Value::String(namespace));
        }
    }
    Ok(Some(out))
}

/// Applies a JSON6902 patch (the decoded list of operations) to one resource as kustomize's
/// PatchTransformer does: [`apply_json6902_in_build`] with the build annotations of the id
/// kustomize stores just before patching (the current kind, name and effective namespace).
/// Only `copy`/`test` of the whole annotations map could tell the difference from passing
/// every previous id; use [`apply_json6902_in_build`] for that.
///
/// kustomize also *records* that id as a previous id of the resource before patching, so a
/// patch that renames the resource (`replace /metadata/name`) is followed by name references:
/// the caller must push the id onto the resource's previous ids (see `nameref::PrevId`).
pub fn apply_json6902(resource: &Value, ops: &Value) -> Result<Value, PatchError> {
    apply_json6902_owned(resource.clone(), ops)
}

/// [`apply_json6902`] consuming the resource (saves a deep copy).
pub fn apply_json6902_owned(resource: Value, ops: &Value) -> Result<Value, PatchError> {
    let s = |p: &str| {
        resource
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (api, kind, name) = (s("/apiVersion"), s("/kind"), s("/metadata/name"));
    let ns = crate::schema::effective_namespace(&api, &kind, &s("/metadata/namespace")).to_string();
    let internal = previous_id_annotations([(kind.as_str(), name.as_str(), ns.as_str())]);
    in_build(resource, ops, &internal)
}

/// A JSON patch with plain evanphx/json-patch v4 semantics, no kustomize build context.
pub fn apply_json6902_plain(doc: &Value, ops: &Value) -> Result<Value, PatchError> {
    json6902::apply(doc.clone(), ops)
}

/// Applies a JSON6902 patch the way kustomize's PatchTransformer does inside a build.
///
/// kustomize stores the resource's id (`StorePreviousId`) just before patching, so the
/// document the operations see carries its internal build annotations, e.g.
/// `internal.config.kubernetes.io/previousNames`: `metadata.annotations` always exists, and
/// `add /metadata/annotations/x` works on objects without annotations (while
/// `add /metadata/labels/x` does not). Afterwards the internal annotations are restored and,
/// at the end of the build, dropped; an annotations map left empty disappears.
///
/// `internal` lists those annotations (see [`previous_id_annotations`]).
pub fn apply_json6902_in_build(
    resource: &Value,
    ops: &Value,
    internal: &[(String, String)],
) -> Result<Value, PatchError> {
    in_build(resource.clone(), ops, internal)
}

fn in_build(
    mut doc: Value,
    ops: &Value,
    internal: &[(String, String)],
) -> Result<Value, PatchError> {
    if !internal.is_empty()
        && let Value::Object(obj) = &mut doc
    {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(meta) = meta {
            let ann = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if !ann.is_object() {
                *ann = Value::Object(Default::default());
            }
            if let Value::Object(ann) = ann {
                for (k, v) in internal {
                    ann.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
    }
    let mut out = json6902::apply(doc, ops)?;
    if !internal.is_empty()
        && let Some(Value::Object(meta)) = out.get_mut("metadata")
    {
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            for (k, _) in internal {
                ann.shift_remove(k);
            }
            // kustomize rewrites the annotations through a string map: every value becomes
            // its scalar text ("5", "true", "null"), collections become "".
            for v in ann.values_mut() {
                let text = match &*v {
                    Value::String(_) => continue,
                    Value::Object(_) | Value::Array(_) => String::new(),
                    other => other.to_string(),
                };
                *v = Value::String(text);
            }
        }
        // Annotations that are no longer a map: a list makes kustomize fail, a scalar reads
        // back as no annotations.
        match meta.get("annotations") {
            Some(Value::Array(_)) => {
                return Err(PatchError::Json6902 {
                    index: 0,
                    op: String::new(),
                    message: "metadata.annotations became a list".into(),
                });
            }
            Some(a) if !a.is_object() => {
                meta.shift_remove("annotations");
            }
            _ => {}
        }
        if meta
            .get("annotations")
            .is_some_and(|a| a.as_object().is_some_and(|m| m.is_empty()))
        {
            meta.shift_remove("annotations");
        }
    }
    Ok(out)
}

/// kustomize's `previousKinds`/`previousNames`/`previousNamespaces` build annotations for a
/// resource's previous ids (kind, name, effective namespace), oldest first.
pub fn previous_id_annotations<'a>(
    ids: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<(String, String)> {
    let (mut kinds, mut names, mut namespaces) = (Vec::new(), Vec::new(), Vec::new());
    for (kind, name, ns) in ids {
        kinds.push(kind);
        names.push(name);
        namespaces.push(ns);
    }
    if names.is_empty() {
        return Vec::new();
    }
    const P: &str = "internal.config.kubernetes.io/";
    vec![
        (format!("{P}previousKinds"), kinds.join(",")),
        (format!("{P}previousNames"), names.join(",")),
        (format!("{P}previousNamespaces"), namespaces.join(",")),
    ]
}

#[cfg(test)]
mod json6902_tests;
#[cfg(test)]
mod strategic_tests;
