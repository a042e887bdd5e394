//! `transformers:` and `generators:` entries that configure kustomize's built-in plugins
//! (`apiVersion: builtin`). Each configuration is turned into the kustomization field that
//! drives the same code, with the configuration's own field specs; anything else (exec or
//! container plugins, plugin directories) is refused.

use serde_json::{Map, Value, json};

use super::error::{ErrorKind, RenderError};
use super::kfile::{KFile, is_within, read_text, resolve};
use super::resource::ResMap;
use super::{generate, patches, replacements, transform};
use crate::schema::{FieldSpec, FieldSpecs, Schema};
use crate::source::{EntryKind, Source};
use crate::yaml::{Pos, Positions, parse_documents};

/// Runs the entries of `field` (`generators` or `transformers`) of `k` over `rm`.
pub fn run(
    source: &dyn Source,
    schema: &Schema,
    k: &KFile,
    field: &str,
    rm: &mut ResMap,
    base_specs: &FieldSpecs,
) -> Result<(), RenderError> {
    // kustomize loads inline configurations first, then the files and directories named
    // (`configureExternalGenerators`/`Transformers`), each group in order.
    let mut entries: Vec<(usize, (String, Pos))> =
        k.strings(field)?.into_iter().enumerate().collect();
    entries.sort_by_key(|(_, (entry, _))| !entry.contains('\n'));
    for (i, (entry, pos)) in entries {
        let ptr = format!("/{field}/{i}");
        let files: Vec<ConfigFile> = if entry.contains('\n') {
            vec![(k.path.to_string(), parse(&k.path, &entry)?)]
        } else {
            let path = resolve(&k.dir, &entry).ok_or_else(|| {
                k.error(
                    ErrorKind::OutsideRoot,
                    &ptr,
                    format!("{entry:?} is outside the repository root"),
                )
            })?;
            match source.kind(&path) {
                Some(EntryKind::File) if is_within(&k.dir, &path) => {
                    let text = read_text(source, &path)?;
                    let docs = parse(&path, &text)?;
                    vec![(path, docs)]
                }
                Some(EntryKind::File) => {
                    return Err(k.error(
                        ErrorKind::OutsideRoot,
                        &ptr,
                        format!("security; file '{path}' is not in or below '{}'", k.dir),
                    ));
                }
                Some(EntryKind::Dir) => config_dir(source, k, &ptr, &path)?,
                None => {
                    return Err(k.error(
                        ErrorKind::Missing,
                        &ptr,
                        format!("{entry:?}: no such file or directory"),
                    ));
                }
            }
        };
        for (file, docs) in files {
            run_docs(
                source, schema, k, field, rm, base_specs, &entry, pos, &file, docs,
            )?;
        }
    }
    Ok(())
}

/// A file of plugin configurations: its path and documents, each with its first line.
type ConfigFile = (String, Vec<(Value, u32)>);

/// A directory of plugin configurations: kustomize builds it as a kustomization and uses
/// each object as a configuration. Only the plain form — a kustomization listing
/// configuration files under `resources:` — is read; anything else is refused.
fn config_dir(
    source: &dyn Source,
    k: &KFile,
    ptr: &str,
    dir: &str,
) -> Result<Vec<ConfigFile>, RenderError> {
    let Some(sub) = super::kfile::load(source, dir)? else {
        return Err(k.error(
            ErrorKind::Missing,
            ptr,
            format!(
                "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{dir}'"
            ),
        ));
    };
    if let Some(key) = sub
        .doc
        .keys()
        .find(|key| !matches!(key.as_str(), "resources" | "apiVersion" | "kind"))
    {
        return Err(sub.error(
            ErrorKind::NotSupported,
            &format!("/{}", crate::yaml::escape_pointer(key)),
            format!("{key} in a plugin configuration directory is not supported"),
        ));
    }
    let mut out = Vec::new();
    for (i, (entry, _)) in sub.strings("resources")?.into_iter().enumerate() {
        let at = format!("/resources/{i}");
        let path = resolve(&sub.dir, &entry)
            .filter(|p| is_within(&sub.dir, p))
            .ok_or_else(|| {
                sub.error(
                    ErrorKind::NotSupported,
                    &at,
                    format!("{entry:?}: only files of the directory are read as configurations"),
                )
            })?;
        match source.kind(&path) {
            Some(EntryKind::File) => {
                let text = read_text(source, &path)?;
                let docs = parse(&path, &text)?;
                out.push((path, docs));
            }
            Some(EntryKind::Dir) => {
                return Err(sub.error(
                    ErrorKind::NotSupported,
                    &at,
                    format!("{entry:?}: nested plugin configuration directories are not supported"),
                ));
            }
            None => {
                return Err(sub.error(
                    ErrorKind::Missing,
                    &at,
                    format!("{entry:?}: no such file or directory"),
                ));
            }
        }
    }
    Ok(out)
}

/// Runs the plugin configurations of one file (or inline entry).
#[allow(clippy::too_many_arguments)]
fn run_docs(
    source: &dyn Source,
    schema: &Schema,
    k: &KFile,
    field: &str,
    rm: &mut ResMap,
    base_specs: &FieldSpecs,
    entry: &str,
    pos: Pos,
    file: &str,
    docs: Vec<(Value, u32)>,
) -> Result<(), RenderError> {
    for (doc, doc_line) in docs {
        if field == "generators"
            && doc.get("apiVersion").and_then(Value::as_str) == Some("builtin")
            && doc.get("kind").and_then(Value::as_str) == Some("IAMPolicyGenerator")
        {
            // Inline configs live in the kustomization: lines count from the entry.
            let (file, line) = if entry.contains('\n') {
                (k.path.clone(), pos.line + doc_line - 1)
            } else {
                (std::sync::Arc::from(file), doc_line)
            };
            let r = super::iam_policy::generate(&doc, &file, line)?;
            rm.append_all(vec![r], &k.path, pos.line)?;
            continue;
        }
        let kf = synthesize(k, file, pos.line, &doc, field)?;
        let specs = |f: &str| -> Vec<FieldSpec> {
            doc.get("fieldSpecs")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(FieldSpec::from_value).collect())
                .unwrap_or_else(|| match f {
                    "images" => base_specs.images.clone(),
                    "replicas" => base_specs.replicas.clone(),
                    _ => vec![],
                })
        };
        let mut fs = base_specs.clone();
        fs.common_labels = specs("labels");
        fs.common_annotations = specs("annotations");
        fs.images = specs("images");
        fs.replicas = specs("replicas");
        fs.namespace = specs("namespace")
            .into_iter()
            .filter(|s| s.path != "metadata/namespace")
            .collect();
        let items = &mut rm.items;
        match doc.get("kind").and_then(Value::as_str).unwrap_or("") {
            "ConfigMapGenerator" | "SecretGenerator" => generate::run(source, &kf, rm)?,
            "PrefixTransformer" | "SuffixTransformer" | "PrefixSuffixTransformer" => {
                // A config's fieldSpecs replace the defaults; kustomize requires them.
                let own: Vec<FieldSpec> = doc
                    .get("fieldSpecs")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(FieldSpec::from_value).collect())
                    .unwrap_or_default();
                if own.is_empty() {
                    return Err(RenderError::new(
                        ErrorKind::Invalid,
                        file,
                        doc_line,
                        "fieldSpecs is not expected to be nil",
                    ));
                }
                transform::prefix_suffix(&kf, items, &own, &own)?
            }
            "LabelTransformer" => transform::labels(&kf, items, &fs)?,
            "AnnotationsTransformer" => transform::annotations(&kf, items, &fs)?,
            "NamespaceTransformer" => transform::namespace(&kf, items, &fs)?,
            "ImageTagTransformer" => transform::images(&kf, items, &fs)?,
            "ReplicaCountTransformer" => transform::replicas(&kf, items, &fs)?,
            "ReplacementTransformer" => replacements::run(source, &kf, items)?,
            "PatchTransformer" => patches::patch_entries(schema, source, &kf, rm)?,
            "PatchStrategicMergeTransformer" => {
                patches::strategic_merge_entries(schema, source, &kf, rm)?
            }
            "PatchJson6902Transformer" => patches::json6902_entries(source, &kf, rm)?,
            _ => unreachable_kind(&kf)?,
        }
        rm.reindex();
    }
    Ok(())
}

fn unreachable_kind(kf: &KFile) -> Result<(), RenderError> {
    Err(kf.error(
        ErrorKind::NotSupported,
        "",
        "unsupported built-in plugin kind",
    ))
}

/// The documents of a plugin configuration text, with the line each starts at.
fn parse(file: &str, text: &str) -> Result<Vec<(Value, u32)>, RenderError> {
    let docs = parse_documents(text).map_err(|e| {
        RenderError::new(ErrorKind::Yaml, file, e.line, e.message).at(e.line, e.col)
    })?;
    Ok(docs
        .into_iter()
        .filter(|d| !d.value.is_null())
        .map(|d| (d.value, d.start.line))
        .collect())
}

/// The kustomization fields equivalent to one built-in plugin configuration.
fn synthesize(
    k: &KFile,
    file: &str,
    line: u32,
    doc: &Value,
    field: &str,
) -> Result<KFile, RenderError> {
    let bad = |m: String| RenderError::new(ErrorKind::NotSupported, file, line, m);
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    if api != "builtin" {
        return Err(bad(format!(
            "{field}: {api}/{kind} is not a built-in plugin; exec and container plugins are not supported"
        )));
    }
    let get = |f: &str| doc.get(f).cloned().unwrap_or(Value::Null);
    let mut m = Map::new();
    match kind {
        "ConfigMapGenerator" | "SecretGenerator" => {
            let mut args = doc.as_object().cloned().unwrap_or_default();
            for f in ["apiVersion", "kind", "metadata"] {
                args.remove(f);
            }
            args.insert(
                "name".into(),
                doc.pointer("/metadata/name").cloned().unwrap_or_default(),
            );
            if let Some(ns) = doc.pointer("/metadata/namespace") {
                args.insert("namespace".into(), ns.clone());
            }
            let key = if kind == "ConfigMapGenerator" {
                "configMapGenerator"
            } else {
                "secretGenerator"
            };
            m.insert(key.into(), json!([Value::Object(args)]));
        }
        "PrefixTransformer" => {
            m.insert("namePrefix".into(), get("prefix"));
        }
        "SuffixTransformer" => {
            m.insert("nameSuffix".into(), get("suffix"));
        }
        "PrefixSuffixTransformer" => {
            m.insert("namePrefix".into(), get("prefix"));
            m.insert("nameSuffix".into(), get("suffix"));
        }
        "LabelTransformer" => {
            m.insert("commonLabels".into(), get("labels"));
        }
        "AnnotationsTransformer" => {
            m.insert("commonAnnotations".into(), get("annotations"));
        }
        "NamespaceTransformer" => {
            m.insert(
                "namespace".into(),
                doc.pointer("/metadata/namespace")
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        "ImageTagTransformer" => {
            m.insert("images".into(), json!([get("imageTag")]));
        }
        "ReplicaCountTransformer" => {
            m.insert("replicas".into(), json!([get("replica")]));
        }
        "ReplacementTransformer" => {
            m.insert("replacements".into(), get("replacements"));
        }
        "PatchTransformer" => {
            let mut p = Map::new();
            for f in ["path", "patch", "target", "options"] {
                if let Some(v) = doc.get(f) {
                    p.insert(f.into(), v.clone());
                }
            }
            m.insert("patches".into(), json!([Value::Object(p)]));
        }
        "PatchStrategicMergeTransformer" => {
            let mut list: Vec<Value> = doc
                .get("paths")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(Value::String(p)) = doc.get("patches") {
                list.push(Value::String(p.clone()));
            }
            m.insert("patchesStrategicMerge".into(), Value::Array(list));
        }
        "PatchJson6902Transformer" => {
            let mut p = Map::new();
            p.insert("target".into(), get("target"));
            if let Some(v) = doc.get("path") {
                p.insert("path".into(), v.clone());
            }
            if let Some(v) = doc.get("jsonOp") {
                p.insert("patch".into(), v.clone());
            }
            m.insert("patchesJson6902".into(), json!([Value::Object(p)]));
        }
        other => {
            return Err(bad(format!(
                "{field}: built-in kind {other:?} is not supported"
            )));
        }
    }
    Ok(KFile {
        path: std::sync::Arc::from(file),
        dir: k.dir.clone(),
        doc: m,
        positions: Positions::default(),
        raw: Default::default(),
        is_component: false,
    })
}
