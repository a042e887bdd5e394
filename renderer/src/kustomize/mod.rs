//! The Kustomize engine: kustomization files, resources, components, transformers, ordering.
//!
//! [`render`] is a drop-in for `kubectl kustomize DIR` (kustomize v5.5.0):
//! [`Rendered::to_yaml`] is byte-identical to its output, and every object carries the
//! origin of each of its fields.
//!
//! Each kustomization is built as kustomize's `AccumulateTarget` does: resources (files and
//! sub-kustomizations, in order; sibling directories on several threads), components (which
//! transform the accumulated objects in place), `configurations`/`crds`, generators, then
//! the built-in transformers in kustomize's order (strategic-merge patches, patches,
//! namespace, prefix/suffix, labels, annotations, JSON 6902 patches, replicas, images,
//! replacements), then `transformers:` entries; legacy vars are collected. Once, at the
//! root: content hashes on generated names, name references, vars, annotation text,
//! `buildMetadata`, and the output order.
//!
//! Provenance: every object keeps marks — field path -> (file, line, column, what set it)
//! and how many kustomizations it had passed — updated by each step that writes a field;
//! [`RenderedObject::provenance`] lists every leaf with its mark (or its nearest marked
//! ancestor) and the chain of kustomization files from that point to the root.

mod error;
pub mod fieldspec;
mod generate;
mod iam_policy;
mod kfile;
mod kschema;
mod order;
mod patches;
mod plugins;
mod replacements;
mod resource;
mod select;
mod target;
mod transform;
mod vars;

use std::sync::{Arc, OnceLock};

use serde_json::Value;

pub use error::{ErrorKind, RenderError};
pub use order::LegacyOrder;
pub use resource::ResId;

use crate::provenance::{FieldOrigin, Provenance, for_each_leaf};
use crate::source::Source;

/// Mirrors `kubectl kustomize --reorder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reorder {
    /// Kind-based order (Namespaces first, webhooks last), kubectl's default.
    #[default]
    Legacy,
    /// Input order.
    None,
}

#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    pub reorder: Reorder,
}

/// One object of the output.
#[derive(Debug, Clone)]
pub struct RenderedObject {
    pub value: Value,
    /// Field path -> where it was set (a leaf, or a whole subtree a patch set).
    marks: resource::Marks,
    /// Kustomization files the object passed through, innermost first.
    chain: Vec<Arc<str>>,
    provenance: OnceLock<Provenance>,
}

impl RenderedObject {
    pub fn id(&self) -> ResId {
        ResId::of(&self.value)
    }

    /// Leaf field path -> where its value was set. Listed on first use, from `value` as it
    /// is then: most renders are printed without it, and listing every leaf of every object
    /// took a tenth of a 1000-app render and a third of its memory.
    pub fn provenance(&self) -> &Provenance {
        self.provenance
            .get_or_init(|| provenance_of(&self.value, &self.marks, &self.chain))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub objects: Vec<RenderedObject>,
}

impl Rendered {
    /// The YAML stream `kubectl kustomize` prints, byte for byte.
    pub fn to_yaml(&self) -> String {
        crate::yaml::to_yaml_stream(self.objects.iter().map(|o| &o.value))
    }
}

/// Normalises a directory argument: `/`-separated, no `.`/`..`, relative to the root.
fn normalise_dir(dir: &str) -> Result<String, RenderError> {
    kfile::resolve("", dir.trim_start_matches("./")).ok_or_else(|| {
        RenderError::new(
            ErrorKind::OutsideRoot,
            dir,
            0,
            "directory is outside the source root",
        )
    })
}

/// Renders the kustomization in `dir` (relative to the source root).
pub fn render(
    source: &dyn Source,
    dir: &str,
    opts: &RenderOptions,
) -> Result<Rendered, RenderError> {
    let dir = normalise_dir(dir)?;
    let source = crate::limits::LimitedSource::new(source);
    // A caller's own budget (set on this thread) wins over the default one.
    let _nodes = match crate::limits::NodeBudget::current() {
        Some(_) => None,
        None => Some(crate::limits::NodeBudget::default().enter()),
    };
    let mut builder = target::Builder::new(&source);
    let (rm, root) = builder.build_dir(&dir, None)?;
    let config = rm.field_specs();
    let rm_vars = rm.vars;
    let mut items = rm.items;
    add_name_hashes(&mut items, &root)?;
    fix_name_references(&mut items, &config.name_reference, &root)?;
    vars::resolve(&mut items, &rm_vars, &config.var_reference)?;
    crate::par::for_each_mut(&mut items, PAR_MIN, |r| {
        resource::stringify_annotations(&mut r.value, &Default::default(), "");
        // kustomize rewrites the annotations when it removes its build annotations, and
        // an empty (or null) map is then dropped.
        if let Some(meta) = r.value.get_mut("metadata").and_then(Value::as_object_mut)
            && meta
                .get("annotations")
                .is_some_and(|a| a.is_null() || a.as_object().is_some_and(|m| m.is_empty()))
        {
            meta.remove("annotations");
        }
    });
    // kustomize's `IgnoreLocal`, once at the root after vars: objects annotated
    // `config.kubernetes.io/local-config` (any value but "false") served as sources only.
    items.retain(|r| {
        r.value
            .pointer("/metadata/annotations/config.kubernetes.io~1local-config")
            .and_then(Value::as_str)
            .is_none_or(|v| v == "false")
    });
    let unprintable = crate::par::map(&items, PAR_MIN, |r| {
        crate::yaml::emit::unprintable(&r.value).is_some()
    });
    if let Some(r) = unprintable.iter().position(|&u| u).map(|i| &items[i]) {
        return Err(RenderError::new(
            ErrorKind::Yaml,
            &r.file,
            0,
            format!("{}: yaml: control characters are not allowed", r.id()),
        ));
    }
    build_metadata(&mut items, &root)?;
    if let Some(order) = sort_order(&root, opts)? {
        order::legacy_sort(&mut items, &order);
    }
    let objects = items
        .into_iter()
        .map(|r| RenderedObject {
            value: r.value,
            marks: r.marks,
            chain: r.chain,
            provenance: OnceLock::new(),
        })
        .collect();
    Ok(Rendered { objects })
}

/// Objects per thread below which the root's per-object steps stay on one thread.
const PAR_MIN: usize = 64;

/// Every leaf of `value` with the mark that set it (or its nearest marked ancestor's).
fn provenance_of(value: &Value, marks: &resource::Marks, chain: &[Arc<str>]) -> Provenance {
    let mut provenance = Provenance::new();
    let chains: Vec<Arc<[Arc<str>]>> = (0..=chain.len()).map(|d| Arc::from(&chain[d..])).collect();
    for_each_leaf(value, &mut |path, _| {
        if let Some(m) = find_mark(marks, path) {
            let depth = m.depth.min(chain.len());
            provenance.insert(
                path.to_string(),
                FieldOrigin {
                    origin: m.origin.clone(),
                    chain: chains[depth].clone(),
                },
            );
        }
    });
    provenance
}

/// kustomize appends the content hash to generated names once, after every transformer of
/// the whole build (so the hash covers the final data).
fn add_name_hashes(
    items: &mut [resource::Resource],
    root: &kfile::KFile,
) -> Result<(), RenderError> {
    let hashes = crate::par::map(items, PAR_MIN, |r| {
        r.needs_hash.then(|| crate::generators::name_hash(&r.value))
    });
    for (r, hash) in items.iter_mut().zip(hashes) {
        let Some(hash) = hash else { continue };
        let hash =
            hash.map_err(|e| RenderError::new(ErrorKind::Invalid, &r.file, 0, e.to_string()))?;
        let name = format!("{}-{hash}", r.name());
        r.store_previous_id();
        if let Some(meta) = r.value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("name".into(), Value::String(name));
        }
    }
    let _ = root;
    Ok(())
}

/// Rewrites references (configMapRef, serviceAccountName, roleRef, ...) from the names the
/// referenced objects had to the names they have now.
fn fix_name_references(
    items: &mut [resource::Resource],
    back_refs: &[crate::schema::NameBackRef],
    root: &kfile::KFile,
) -> Result<(), RenderError> {
    use crate::nameref::{PrevId, RefResource};
    let prev: Vec<Vec<PrevId>> = items
        .iter()
        .map(|r| {
            r.previous_ids
                .iter()
                .map(|id| PrevId {
                    kind: id.kind.clone(),
                    name: id.name.clone(),
                    namespace: crate::schema::effective_namespace(
                        r.api_version(),
                        &id.kind,
                        &id.namespace,
                    )
                    .to_string(),
                })
                .collect()
        })
        .collect();
    let refs: Vec<RefResource<'_>> = items
        .iter()
        .zip(&prev)
        .map(|(r, p)| RefResource {
            object: &r.value,
            previous_ids: p,
            prefixes: &r.prefixes,
            suffixes: &r.suffixes,
        })
        .collect();
    let changes = crate::nameref::fix_name_references(&refs, back_refs)
        .map_err(|e| RenderError::new(ErrorKind::Invalid, &root.path, 0, e.to_string()))?;
    drop(refs);
    for c in changes {
        let Some(r) = items.get_mut(c.resource) else {
            continue;
        };
        let mut one = [std::mem::take(&mut r.value)];
        crate::nameref::apply_changes(
            &mut one,
            &[crate::nameref::NameRefChange { resource: 0, ..c }],
        );
        let [v] = one;
        r.value = v;
    }
    Ok(())
}

/// `buildMetadata` of the root kustomization: origin and transformer annotations, and the
/// managed-by label, on every object.
fn build_metadata(
    items: &mut [resource::Resource],
    root: &kfile::KFile,
) -> Result<(), RenderError> {
    let Some(v) = root.get("buildMetadata") else {
        return Ok(());
    };
    let Value::Array(opts) = v else {
        return Err(root.error(
            ErrorKind::Yaml,
            "/buildMetadata",
            "buildMetadata must be a list",
        ));
    };
    let has = |o: &str| opts.iter().any(|x| x.as_str() == Some(o));
    for (i, o) in opts.iter().enumerate() {
        let known = [
            "originAnnotations",
            "transformerAnnotations",
            "managedByLabel",
        ];
        if !o.as_str().is_some_and(|o| known.contains(&o)) {
            return Err(root.error(
                ErrorKind::Invalid,
                &format!("/buildMetadata/{i}"),
                format!("buildMetadata option must be one of {known:?}"),
            ));
        }
    }
    for r in items.iter_mut() {
        let mut ann: Vec<(&str, String)> = Vec::new();
        if has("originAnnotations") {
            let text = match r.origin {
                resource::ResOrigin::File => format!("path: {}\n", relative(&root.dir, &r.file)),
                resource::ResOrigin::Generator(kind) => format!(
                    "configuredIn: {}\nconfiguredBy:\n  apiVersion: builtin\n  kind: {kind}\n",
                    relative(&root.dir, &r.file)
                ),
            };
            ann.push(("config.kubernetes.io/origin", text));
        }
        if has("transformerAnnotations") && !r.transformations.is_empty() {
            let mut text = String::new();
            for (file, kind) in &r.transformations {
                text.push_str(&format!(
                    "- configuredIn: {}\n  configuredBy:\n    apiVersion: builtin\n    kind: {kind}\n",
                    relative(&root.dir, file)
                ));
            }
            ann.push(("alpha.config.kubernetes.io/transformations", text));
        }
        let Some(meta) = r.value.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        if !ann.is_empty() {
            let a = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(a) = a {
                for (k, v) in ann {
                    a.insert(k.to_string(), Value::String(v));
                }
            }
        }
        if has("managedByLabel") {
            let l = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(l) = l {
                l.insert(
                    "app.kubernetes.io/managed-by".into(),
                    Value::String("kustomize-(devel)".into()),
                );
            }
        }
    }
    Ok(())
}

/// `path` relative to directory `from` (both relative to the source root).
fn relative(from: &str, path: &str) -> String {
    let f: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let common = f.iter().zip(&p).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = vec![".."; f.len() - common];
    out.extend(&p[common..]);
    out.join("/")
}

/// The mark of a leaf, or of its nearest marked ancestor (a patch may set a whole subtree).
fn find_mark<'m>(marks: &'m resource::Marks, path: &str) -> Option<&'m resource::Mark> {
    let mut p = path;
    loop {
        if let Some(m) = marks.get(p) {
            return Some(m);
        }
        let cut = p.rfind(['.', '['])?;
        p = &p[..cut];
        if p.is_empty() {
            return None;
        }
    }
}

/// `sortOptions` of the root kustomization wins over the option (kubectl refuses both only
/// when `--reorder` is given explicitly, which a library cannot tell).
fn sort_order(
    root: &kfile::KFile,
    opts: &RenderOptions,
) -> Result<Option<LegacyOrder>, RenderError> {
    if let Some(so) = root.get("sortOptions") {
        let order = so.get("order").and_then(Value::as_str).unwrap_or("");
        return match order {
            "fifo" => Ok(None),
            "legacy" => {
                let mut lo = LegacyOrder::default();
                let list = |f: &str| {
                    so.pointer(&format!("/legacySortOptions/{f}"))
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect::<Vec<_>>()
                        })
                };
                if let Some(first) = list("orderFirst") {
                    lo.first = first;
                }
                if let Some(last) = list("orderLast") {
                    lo.last = last;
                }
                Ok(Some(lo))
            }
            other => Err(root.error(
                ErrorKind::Invalid,
                "/sortOptions/order",
                format!(
                    "the field 'sortOptions.order' must be one of [legacy, fifo], got {other:?}"
                ),
            )),
        };
    }
    Ok(match opts.reorder {
        Reorder::Legacy => Some(LegacyOrder::default()),
        Reorder::None => None,
    })
}
