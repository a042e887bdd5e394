//! ConfigMap and Secret generators, with kustomize's name hash.
//!
//! Mirrors kustomize's api/kv (sources), api/internal/generators (objects) and api/hasher
//! (suffix). Files are read through a callback so the engine keeps ownership of the `Source`.

pub(crate) mod hash;
mod kv;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use hash::{encode_hash, name_hash};
pub use kv::{parse_env_file, parse_file_source, parse_literal};

use crate::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    #[error("{kind} generator: a {kind} must have a name")]
    NoName { kind: &'static str },
    #[error("{kind} {name}: invalid literal source {source_text:?}, expected key=value")]
    Literal {
        kind: &'static str,
        name: String,
        source_text: String,
    },
    #[error("{kind} {name}: file source {source_text:?}: {message}")]
    FileSource {
        kind: &'static str,
        name: String,
        source_text: String,
        message: String,
    },
    #[error("{kind} {name}: env file {path}: line {line} has invalid utf8 bytes")]
    EnvUtf8 {
        kind: &'static str,
        name: String,
        path: String,
        line: usize,
    },
    #[error("{kind} {name}: {source}")]
    Read {
        kind: &'static str,
        name: String,
        source: SourceError,
    },
    #[error("configmap {name} illegally repeats the key `{key}`")]
    DuplicateKey { name: String, key: String },
    #[error("{kind} {name}: unknown behavior {behavior:?} (want create, merge or replace)")]
    Behavior {
        kind: &'static str,
        name: String,
        behavior: String,
    },
    #[error("{kind} {name}: behavior {behavior} needs an existing {kind} of that name to update")]
    NothingToMerge {
        kind: &'static str,
        name: String,
        behavior: &'static str,
    },
    #[error("{kind} {name}: already exists; behavior must be merge or replace")]
    AlreadyExists { kind: &'static str, name: String },
    #[error("cannot hash {what}: {message}")]
    Hash { what: String, message: String },
}

/// `generatorOptions`, global or per generator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GeneratorOptions {
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub disable_name_suffix_hash: bool,
    pub immutable: bool,
}

impl GeneratorOptions {
    /// kustomize `MergeGlobalOptionsIntoLocal`: local keys win, flags are OR-ed.
    pub fn merged_with_global(local: Option<&Self>, global: Option<&Self>) -> Option<Self> {
        let Some(global) = global else {
            return local.cloned();
        };
        let mut out = local.cloned().unwrap_or_default();
        for (mine, theirs) in [
            (&mut out.labels, &global.labels),
            (&mut out.annotations, &global.annotations),
        ] {
            match (mine.as_mut(), theirs) {
                (None, Some(g)) => *mine = Some(g.clone()),
                (Some(m), Some(g)) => {
                    for (k, v) in g {
                        m.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                _ => {}
            }
        }
        out.disable_name_suffix_hash |= global.disable_name_suffix_hash;
        out.immutable |= global.immutable;
        Some(out)
    }
}

/// One `configMapGenerator` / `secretGenerator` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GeneratorArgs {
    pub name: String,
    pub namespace: String,
    pub behavior: String,
    pub literals: Vec<String>,
    pub files: Vec<String>,
    pub envs: Vec<String>,
    /// Deprecated single env file; kustomize appends it to `envs`.
    pub env: String,
    pub options: Option<GeneratorOptions>,
    /// Secret type; `Opaque` when empty.
    #[serde(rename = "type")]
    pub secret_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behavior {
    #[default]
    Create,
    Merge,
    Replace,
}

impl Behavior {
    fn name(self) -> &'static str {
        match self {
            Behavior::Create => "create",
            Behavior::Merge => "merge",
            Behavior::Replace => "replace",
        }
    }
}

/// A generated object and what kustomize tracks beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub object: Value,
    /// Whether the final name gets the hash suffix (see [`name_hash`]); computed by kustomize
    /// at the very end of the build, after every transformer.
    pub needs_hash: bool,
    pub behavior: Behavior,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GenKind {
    ConfigMap,
    Secret,
}

impl GenKind {
    fn label(self) -> &'static str {
        match self {
            GenKind::ConfigMap => "ConfigMap",
            GenKind::Secret => "Secret",
        }
    }
}

/// Reads a file named in a generator, relative to the kustomization's directory.
pub type ReadFile<'a> = dyn FnMut(&str) -> Result<Vec<u8>, SourceError> + 'a;

/// `configMapGenerator` entry → ConfigMap. `global` is the kustomization's `generatorOptions`.
pub fn generate_config_map(
    args: &GeneratorArgs,
    global: Option<&GeneratorOptions>,
    read: &mut ReadFile<'_>,
) -> Result<Generated, GeneratorError> {
    generate(GenKind::ConfigMap, args, global, read)
}

/// `secretGenerator` entry → Secret (values base64-encoded as kustomize writes them).
pub fn generate_secret(
    args: &GeneratorArgs,
    global: Option<&GeneratorOptions>,
    read: &mut ReadFile<'_>,
) -> Result<Generated, GeneratorError> {
    generate(GenKind::Secret, args, global, read)
}

fn generate(
    kind: GenKind,
    args: &GeneratorArgs,
    global: Option<&GeneratorOptions>,
    read: &mut ReadFile<'_>,
) -> Result<Generated, GeneratorError> {
    let label = kind.label();
    if args.name.is_empty() {
        return Err(GeneratorError::NoName { kind: label });
    }
    // kustomize treats an unknown behavior as unspecified, which acts like create.
    let behavior = match args.behavior.as_str() {
        "merge" => Behavior::Merge,
        "replace" => Behavior::Replace,
        _ => Behavior::Create,
    };
    let options = GeneratorOptions::merged_with_global(args.options.as_ref(), global);
    let pairs = kv::load_pairs(label, args, read)?;
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in pairs {
        if data.contains_key(&k) {
            return Err(GeneratorError::DuplicateKey {
                name: args.name.clone(),
                key: k,
            });
        }
        data.insert(k, v);
    }

    let mut obj = Map::new();
    obj.insert("apiVersion".into(), "v1".into());
    obj.insert("kind".into(), label.into());
    let mut meta = Map::new();
    meta.insert("name".into(), args.name.clone().into());
    if !args.namespace.is_empty() {
        meta.insert("namespace".into(), args.namespace.clone().into());
    }
    obj.insert("metadata".into(), Value::Object(meta));
    match kind {
        GenKind::ConfigMap => {
            let (mut text, mut binary) = (Map::new(), Map::new());
            for (k, v) in data {
                match String::from_utf8(v) {
                    Ok(s) => text.insert(k, s.into()),
                    Err(e) => binary.insert(k, kv::encode_base64(e.as_bytes()).into()),
                };
            }
            if !text.is_empty() {
                obj.insert("data".into(), Value::Object(text));
            }
            if !binary.is_empty() {
                obj.insert("binaryData".into(), Value::Object(binary));
            }
        }
        GenKind::Secret => {
            let t = if args.secret_type.is_empty() {
                "Opaque"
            } else {
                &args.secret_type
            };
            obj.insert("type".into(), t.into());
            let enc = data
                .into_iter()
                .map(|(k, v)| (k, kv::encode_base64(&v).into()))
                .collect();
            obj.insert("data".into(), Value::Object(enc));
        }
    }
    if let Some(opts) = &options {
        let meta = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .expect("set above");
        for (field, map) in [("labels", &opts.labels), ("annotations", &opts.annotations)] {
            if let Some(map) = map.as_ref().filter(|m| !m.is_empty()) {
                let m = map
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                meta.insert(field.into(), Value::Object(m));
            }
        }
        if opts.immutable {
            obj.insert("immutable".into(), Value::Bool(true));
        }
    }
    let needs_hash = !options.as_ref().is_some_and(|o| o.disable_name_suffix_hash);
    Ok(Generated {
        object: Value::Object(obj),
        needs_hash,
        behavior,
    })
}

/// Combines a generated object with the existing one of the same id, as kustomize's
/// `appendReplaceOrMerge` does. `existing` is `None` when no resource has that id.
///
/// - create: error if it exists;
/// - merge/replace: error if it does not; labels and annotations are merged (new wins), name
///   and namespace come from the existing object; merge also merges `data` and `binaryData`.
///
/// The hash flag survives only if both carried it (kustomize takes build annotations from
/// the existing object and drops the flag when the new one lacks it).
pub fn apply_behavior(
    existing: Option<(&Value, bool)>,
    new: Generated,
) -> Result<Generated, GeneratorError> {
    let kind = if new.object.get("kind").and_then(Value::as_str) == Some("Secret") {
        "Secret"
    } else {
        "ConfigMap"
    };
    let name = new
        .object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some((old, old_hash)) = existing else {
        return match new.behavior {
            Behavior::Create => Ok(new),
            b => Err(GeneratorError::NothingToMerge {
                kind,
                name: name.to_string(),
                behavior: b.name(),
            }),
        };
    };
    if new.behavior == Behavior::Create {
        return Err(GeneratorError::AlreadyExists {
            kind,
            name: name.to_string(),
        });
    }
    let mut obj = new.object.clone();
    let merge_field = |obj: &mut Value, ptr: &str, parent: &str, field: &str| {
        let mut merged: BTreeMap<String, Value> = BTreeMap::new();
        for src in [old.pointer(ptr), new.object.pointer(ptr)]
            .into_iter()
            .flatten()
        {
            if let Some(m) = src.as_object() {
                merged.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let target = if parent.is_empty() {
            Some(&mut *obj)
        } else {
            obj.pointer_mut(parent)
        };
        if let Some(Value::Object(t)) = target {
            if merged.is_empty() {
                t.shift_remove(field);
            } else {
                t.insert(field.into(), Value::Object(merged.into_iter().collect()));
            }
        }
    };
    if obj.get("metadata").is_none_or(|m| !m.is_object()) {
        obj["metadata"] = Value::Object(Map::new());
    }
    merge_field(&mut obj, "/metadata/labels", "/metadata", "labels");
    merge_field(
        &mut obj,
        "/metadata/annotations",
        "/metadata",
        "annotations",
    );
    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("set above");
    meta.insert(
        "name".into(),
        old.pointer("/metadata/name").cloned().unwrap_or_default(),
    );
    match old
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(ns) => meta.insert("namespace".into(), ns.into()),
        None => meta.shift_remove("namespace"),
    };
    if new.behavior == Behavior::Merge {
        merge_field(&mut obj, "/data", "", "data");
        merge_field(&mut obj, "/binaryData", "", "binaryData");
    }
    Ok(Generated {
        object: obj,
        needs_hash: old_hash && new.needs_hash,
        behavior: new.behavior,
    })
}

#[cfg(test)]
mod tests;
