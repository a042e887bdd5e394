//! Building one kustomization directory: resources, components, generators, transformers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::error::{ErrorKind, RenderError};
use super::kfile::{self, KFile, is_remote, is_within, read_text, resolve};
use super::resource::{ConfigDoc, ResMap, Resource, marks_from_positions, stringify_annotations};
use super::{generate, patches, plugins, replacements, transform, vars};
use crate::limits;
use crate::provenance::SetBy;
use crate::schema::Schema;
use crate::source::{EntryKind, Source};
use crate::yaml::{Pos, parse_documents};

/// What one thread of [`Builder::entries_in_parallel`] returns: its entries' results and
/// the `openapi` schemas they loaded.
type ChunkResult = (Vec<Result<ResMap, RenderError>>, Vec<Arc<Schema>>);

/// Entries of one kustomization at which building them on several threads pays off.
const PARALLEL_MIN: usize = 16;

pub struct Builder<'a> {
    pub source: &'a dyn Source,
    /// Directories being built, outermost first, by canonical path (symlinks resolved), to
    /// detect cycles: two symlinks to `.` are two names for one directory.
    stack: Vec<String>,
    /// Kustomization and component builds so far, shared by every thread of one render.
    builds: Arc<AtomicUsize>,
    /// Kustomization files being built, outermost first, for error messages.
    chain: Vec<String>,
    /// Schemas from `openapi:` fields; kustomize's setting is global and sticks once made,
    /// so the latest one loaded applies.
    schemas: Vec<Arc<Schema>>,
}

impl<'a> Builder<'a> {
    pub fn new(source: &'a dyn Source) -> Self {
        Builder {
            source,
            stack: vec![],
            chain: vec![],
            schemas: vec![],
            builds: Arc::default(),
        }
    }

    /// The directory's identity for cycle detection, and the one build it costs.
    fn enter(&self, dir: &str) -> Result<String, String> {
        if self.stack.len() >= limits::MAX_NESTING {
            return Err(format!(
                "kustomizations nested more than {} deep",
                limits::MAX_NESTING
            ));
        }
        let builds = self.builds.fetch_add(1, Ordering::Relaxed) + 1;
        if builds > limits::MAX_BUILDS {
            return Err(format!(
                "more than {} kustomization builds in one render (bases included through many paths fan out)",
                limits::MAX_BUILDS
            ));
        }
        Ok(self
            .source
            .canonical(dir)
            .unwrap_or_else(|| dir.to_string()))
    }

    fn err(&self, e: RenderError) -> RenderError {
        e.with_chain(&self.chain)
    }

    /// Builds a kustomization directory reached from `from` (file, line); the root has none.
    pub fn build_dir(
        &mut self,
        dir: &str,
        from: Option<(&str, Pos)>,
    ) -> Result<(ResMap, KFile), RenderError> {
        let at = |kind, msg: String| match from {
            Some((f, p)) => RenderError::new(kind, f, p.line, msg).at(p.line, p.col),
            None => RenderError::new(kind, dir, 0, msg),
        };
        let canonical = self
            .enter(dir)
            .map_err(|m| self.err(at(ErrorKind::Invalid, m)))?;
        if let Some(i) = self.stack.iter().position(|d| *d == canonical) {
            let mut cycle: Vec<String> = self.chain[i..].to_vec();
            cycle.push(self.chain[i].clone());
            return Err(self.err(at(
                ErrorKind::Cycle,
                format!("cycle detected: {}", cycle.join(" -> ")),
            )));
        }
        let k = match kfile::load(self.source, dir) {
            Ok(Some(k)) => k,
            Ok(None) => {
                return Err(self.err(at(
                    ErrorKind::Missing,
                    format!(
                        "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{}'",
                        if dir.is_empty() { "." } else { dir }
                    ),
                )));
            }
            Err(e) => return Err(self.err(e)),
        };
        // kubectl renders a Component given directly as a kustomization; only one listed
        // under `resources:` is refused.
        if k.is_component && from.is_some() {
            return Err(self.err(at(
                ErrorKind::Invalid,
                format!("expected kind != 'Component' for path '{dir}'"),
            )));
        }
        self.stack.push(canonical);
        self.chain.push(k.path.to_string());
        let mut rm = ResMap::default();
        let r = self.accumulate(&k, &mut rm);
        self.stack.pop();
        self.chain.pop();
        r?;
        for res in &mut rm.items {
            res.chain.push(k.path.clone());
        }
        Ok((rm, k))
    }

    fn accumulate(&mut self, k: &KFile, rm: &mut ResMap) -> Result<(), RenderError> {
        // kustomize appends `bases` to `resources`.
        let mut entries = k.strings("resources")?;
        entries.extend(k.strings("bases")?);
        let subs = if entries.len() >= PARALLEL_MIN {
            self.entries_in_parallel(k, &entries)
        } else {
            entries
                .iter()
                .map(|(e, p)| self.resource_entry(k, e, *p))
                .collect()
        };
        for ((_, pos), sub) in entries.into_iter().zip(subs) {
            let sub = sub?;
            rm.configs.extend(sub.configs);
            vars::merge(&mut rm.vars, sub.vars).map_err(|e| self.err(e))?;
            rm.append_all(sub.items, &k.path, pos.line)
                .map_err(|e| self.err(e.at(pos.line, pos.col)))?;
        }
        self.check_unimplemented(k)?;
        for cfg in self.configurations(k)? {
            rm.configs.push(cfg);
        }
        let chain = self.chain.clone();
        let run = |r: Result<(), RenderError>| r.map_err(|e| e.with_chain(&chain));
        // kustomize's accumulateTarget: generators run before components, so a
        // component's transformers see this kustomization's generated objects.
        run(generate::run(self.source, k, rm))?;
        {
            let config = rm.field_specs();
            let schema = self.schemas.last().cloned();
            let schema: &Schema = schema.as_deref().unwrap_or_else(|| Schema::builtin());
            run(plugins::run(
                self.source,
                schema,
                k,
                "generators",
                rm,
                &config,
            ))?;
        }
        for (entry, pos) in k.strings("components")? {
            self.component(k, &entry, pos, rm)?;
        }
        let config = rm.field_specs();
        if let Some(schema) = self.openapi(k)? {
            self.schemas.push(Arc::new(schema));
        }
        let schema = self.schemas.last().cloned();
        let schema: &Schema = schema.as_deref().unwrap_or_else(|| Schema::builtin());
        run(patches::strategic_merge_entries(schema, self.source, k, rm))?;
        run(patches::patch_entries(schema, self.source, k, rm))?;
        let items = &mut rm.items;
        run(transform::namespace(k, items, &config))?;
        run(transform::prefix_suffix(
            k,
            items,
            &config.name_prefix,
            &config.name_suffix,
        ))?;
        run(transform::labels(k, items, &config))?;
        run(transform::annotations(k, items, &config))?;
        run(patches::json6902_entries(self.source, k, rm))?;
        let items = &mut rm.items;
        run(transform::replicas(k, items, &config))?;
        run(transform::images(k, items, &config))?;
        run(replacements::run(self.source, k, items))?;
        run(plugins::run(
            self.source,
            schema,
            k,
            "transformers",
            rm,
            &config,
        ))?;
        let declared = vars::read(k)?;
        run(vars::bind(&declared, &mut rm.items))?;
        run(vars::merge(&mut rm.vars, declared))?;
        let applied = configured_transformers(k);
        if !applied.is_empty() {
            for r in &mut rm.items {
                r.transformations
                    .extend(applied.iter().map(|t| (k.path.clone(), *t)));
            }
        }
        rm.reindex();
        Ok(())
    }

    /// Fields whose engines are not wired in yet fail loudly rather than render wrongly.
    fn check_unimplemented(&self, k: &KFile) -> Result<(), RenderError> {
        for f in ["validators"] {
            if k.get(f).is_some() {
                return Err(self.err(k.error(
                    ErrorKind::NotSupported,
                    &format!("/{f}"),
                    format!("{f} is not supported yet"),
                )));
            }
        }
        Ok(())
    }

    /// Builds many resource entries (typically one overlay per application under a cluster
    /// kustomization) on all cores. Results come back in entry order, so ids, ordering and
    /// the first error reported are those of a sequential build.
    fn entries_in_parallel(
        &mut self,
        k: &KFile,
        entries: &[(String, Pos)],
    ) -> Vec<Result<ResMap, RenderError>> {
        if crate::par::cores().min(entries.len()) <= 1 {
            return entries
                .iter()
                .map(|(e, p)| self.resource_entry(k, e, *p))
                .collect();
        }
        let known = self.schemas.len();
        let this = &*self;
        let budget = limits::NodeBudget::current();
        let parts: Vec<ChunkResult> = crate::par::map_chunks(entries, 1, |c| {
            let _budget = budget.as_ref().map(limits::NodeBudget::enter);
            let build = || {
                let mut b = Builder {
                    source: this.source,
                    stack: this.stack.clone(),
                    chain: this.chain.clone(),
                    schemas: this.schemas.clone(),
                    builds: this.builds.clone(),
                };
                let out: Vec<_> = c.iter().map(|(e, p)| b.resource_entry(k, e, *p)).collect();
                (out, b.schemas.split_off(known))
            };
            // A bug in one chunk fails its entries, not the process.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)).unwrap_or_else(|_| {
                let e = RenderError::new(
                    ErrorKind::Invalid,
                    &k.path,
                    0,
                    "internal error while building",
                );
                (c.iter().map(|_| Err(e.clone())).collect(), vec![])
            })
        });
        let mut results = Vec::with_capacity(entries.len());
        for (out, schemas) in parts {
            results.extend(out);
            // kustomize's `openapi` setting is global: later builds see it.
            self.schemas.extend(schemas);
        }
        results
    }

    fn resource_entry(&mut self, k: &KFile, entry: &str, pos: Pos) -> Result<ResMap, RenderError> {
        let here = |kind, msg: String| {
            self.err(RenderError::new(kind, &k.path, pos.line, msg).at(pos.line, pos.col))
        };
        if is_remote(entry) {
            return Err(here(
                ErrorKind::NotSupported,
                format!("remote resource {entry:?} is not supported"),
            ));
        }
        let Some(path) = resolve(&k.dir, entry) else {
            return Err(here(
                ErrorKind::OutsideRoot,
                format!("{entry:?} is outside the repository root"),
            ));
        };
        match self.source.kind(&path) {
            None => Err(here(
                ErrorKind::Missing,
                format!("{entry:?}: no such file or directory ({path})"),
            )),
            Some(EntryKind::Dir) => {
                let rm = self.build_dir(&path, Some((&k.path, pos)))?.0;
                Ok(rm)
            }
            Some(EntryKind::File) => {
                if !is_within(&k.dir, &path) {
                    return Err(here(
                        ErrorKind::OutsideRoot,
                        format!(
                            "security; file '{path}' is not in or below '{}'",
                            if k.dir.is_empty() { "." } else { &k.dir }
                        ),
                    ));
                }
                let mut rm = ResMap::default();
                rm.items = self.load_file(&path)?;
                Ok(rm)
            }
        }
    }

    /// Objects of a resource file: every non-empty document; `kind: List` is expanded.
    pub fn load_file(&self, path: &str) -> Result<Vec<Resource>, RenderError> {
        let text = read_text(self.source, path).map_err(|e| self.err(e))?;
        let docs = parse_documents(&text).map_err(|e| {
            self.err(RenderError::new(ErrorKind::Yaml, path, e.line, e.message).at(e.line, e.col))
        })?;
        let file: Arc<str> = Arc::from(path);
        let mut out = Vec::new();
        for mut d in docs {
            if let Some((p, key)) = d.non_string_keys.first() {
                return Err(self.err(
                    RenderError::new(ErrorKind::Yaml, path, p.line, non_string_key(key))
                        .at(p.line, p.col),
                ));
            }
            match &mut d.value {
                Value::Null => continue,
                Value::Object(m) if m.is_empty() => continue,
                Value::Object(m) => {
                    let is_list = m
                        .get("kind")
                        .and_then(Value::as_str)
                        .is_some_and(|k| k.ends_with("List"))
                        && m.get("items").is_some_and(Value::is_array);
                    if is_list {
                        if let Some(Value::Array(items)) = m.get_mut("items") {
                            for (i, it) in items.iter_mut().enumerate() {
                                out.push(self.new_resource(
                                    std::mem::take(it),
                                    &d.positions,
                                    &d.raw_scalars,
                                    &format!("/items/{i}"),
                                    &file,
                                    d.start,
                                )?);
                            }
                        }
                    } else {
                        out.push(self.new_resource(
                            std::mem::take(&mut d.value),
                            &d.positions,
                            &d.raw_scalars,
                            "",
                            &file,
                            d.start,
                        )?);
                    }
                }
                _ => {
                    return Err(self.err(RenderError::new(
                        ErrorKind::Yaml,
                        path,
                        d.start.line,
                        "a resource must be a YAML mapping",
                    )));
                }
            }
        }
        Ok(out)
    }

    /// A resource from a parsed document's value (moved out of it: the document is dropped).
    fn new_resource(
        &self,
        mut value: Value,
        positions: &crate::yaml::Positions,
        raw: &crate::yaml::FxHashMap<String, String>,
        pointer: &str,
        file: &Arc<str>,
        start: Pos,
    ) -> Result<Resource, RenderError> {
        let v = &value;
        if !v.is_object()
            || v.get("kind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err(self.err(RenderError::new(
                ErrorKind::Invalid,
                file,
                start.line,
                "missing kind in resource",
            )));
        }
        if v.pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(self.err(RenderError::new(
                ErrorKind::Invalid,
                file,
                start.line,
                "missing metadata.name in resource",
            )));
        }
        // Marks are of the fields as written, before annotations are turned into text.
        let marks = marks_from_positions(&value, positions, pointer, file, SetBy::Resource);
        stringify_annotations(&mut value, raw, pointer);
        Ok(Resource {
            value,
            marks,
            chain: vec![],
            file: file.clone(),
            previous_ids: vec![],
            needs_hash: false,
            prefixes: vec![],
            suffixes: vec![],
            origin: super::resource::ResOrigin::File,
            transformations: vec![],
            var_refs: vec![],
        })
    }

    fn component(
        &mut self,
        k: &KFile,
        entry: &str,
        pos: Pos,
        rm: &mut ResMap,
    ) -> Result<(), RenderError> {
        let here = |kind, msg: String| {
            self.err(RenderError::new(kind, &k.path, pos.line, msg).at(pos.line, pos.col))
        };
        if is_remote(entry) {
            return Err(here(
                ErrorKind::NotSupported,
                format!("remote component {entry:?} is not supported"),
            ));
        }
        let Some(dir) = resolve(&k.dir, entry) else {
            return Err(here(
                ErrorKind::OutsideRoot,
                format!("{entry:?} is outside the repository root"),
            ));
        };
        match self.source.kind(&dir) {
            Some(EntryKind::Dir) => {}
            Some(EntryKind::File) => {
                return Err(here(
                    ErrorKind::Invalid,
                    format!("component {entry:?} must be a directory"),
                ));
            }
            None => {
                return Err(here(
                    ErrorKind::Missing,
                    format!("{entry:?}: no such file or directory"),
                ));
            }
        }
        let canonical = self.enter(&dir).map_err(|m| here(ErrorKind::Invalid, m))?;
        if self.stack.contains(&canonical) {
            return Err(here(
                ErrorKind::Cycle,
                format!("cycle detected at component {dir:?}"),
            ));
        }
        let c = match kfile::load(self.source, &dir).map_err(|e| self.err(e))? {
            Some(c) => c,
            None => {
                return Err(here(
                    ErrorKind::Missing,
                    format!("unable to find a kustomization file in directory '{dir}'"),
                ));
            }
        };
        if !c.is_component {
            return Err(here(
                ErrorKind::Invalid,
                format!("expected kind 'Component' for path '{dir}' but got 'Kustomization'"),
            ));
        }
        self.stack.push(canonical);
        self.chain.push(c.path.to_string());
        let r = self.accumulate(&c, rm);
        self.stack.pop();
        self.chain.pop();
        r
    }

    /// `openapi: {path: FILE}`: a schema (JSON or YAML) replacing the built-in one.
    fn openapi(&self, k: &KFile) -> Result<Option<Schema>, RenderError> {
        let Some(v) = k.get("openapi") else {
            return Ok(None);
        };
        let Some(rel) = v.get("path").and_then(Value::as_str) else {
            // `openapi: {version: ...}` picks one of kustomize's embedded schemas; only the
            // default one exists here.
            return Ok(None);
        };
        let path = resolve(&k.dir, rel)
            .filter(|p| is_within(&k.dir, p))
            .ok_or_else(|| {
                self.err(k.error(
                    ErrorKind::OutsideRoot,
                    "/openapi/path",
                    format!("security; file '{rel}' is not in or below '{}'", k.dir),
                ))
            })?;
        let text = read_text(self.source, &path).map_err(|e| self.err(e))?;
        let doc = match serde_json::from_str::<Value>(&text) {
            Ok(v) => v,
            Err(_) => parse_documents(&text)
                .map_err(|e| {
                    self.err(
                        RenderError::new(ErrorKind::Yaml, &path, e.line, e.message)
                            .at(e.line, e.col),
                    )
                })?
                .into_iter()
                .next()
                .map(|d| d.value)
                .unwrap_or_default(),
        };
        Schema::from_openapi(&doc).map(Some).map_err(|e| {
            self.err(RenderError::new(
                ErrorKind::Invalid,
                &path,
                0,
                e.to_string(),
            ))
        })
    }

    /// `configurations:` and `crds:` files, merged into the field specs.
    fn configurations(&self, k: &KFile) -> Result<Vec<ConfigDoc>, RenderError> {
        let mut out = Vec::new();
        for (field, entry, pos) in k
            .strings("configurations")?
            .into_iter()
            .map(|(e, p)| ("configurations", e, p))
            .chain(k.strings("crds")?.into_iter().map(|(e, p)| ("crds", e, p)))
        {
            let path = resolve(&k.dir, &entry)
                .filter(|p| is_within(&k.dir, p))
                .ok_or_else(|| {
                    self.err(RenderError::new(
                        ErrorKind::OutsideRoot,
                        &k.path,
                        pos.line,
                        format!("{entry:?} is not in or below the kustomization directory"),
                    ))
                })?;
            let text =
                read_text(self.source, &path).map_err(|e| self.err(e.at(pos.line, pos.col)))?;
            let docs = parse_documents(&text).map_err(|e| {
                self.err(
                    RenderError::new(ErrorKind::Yaml, &path, e.line, e.message).at(e.line, e.col),
                )
            })?;
            for d in docs.into_iter().map(|d| d.value).filter(Value::is_object) {
                out.push(if field == "crds" {
                    ConfigDoc::Crds(d)
                } else {
                    ConfigDoc::Transformers(d)
                });
            }
        }
        Ok(out)
    }
}

/// kubectl decodes plain keys like `1:` or `true:` as numbers and booleans and then cannot
/// turn the object into JSON.
pub fn non_string_key(key: &str) -> String {
    format!(
        "mapping key {key:?} is not a string; kubectl fails with \"json: unsupported type: map[interface {{}}]interface {{}}\" (quote the key)"
    )
}

/// The built-in transformers a kustomization configures, in kustomize's run order, one per
/// instance (each `patches` entry is its own PatchTransformer): what `buildMetadata:
/// [transformerAnnotations]` lists on every object they ran over.
fn configured_transformers(k: &KFile) -> Vec<&'static str> {
    let count = |f: &str| k.get(f).and_then(Value::as_array).map_or(0, Vec::len);
    let set = |f: &str| {
        k.get(f)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let mut out = Vec::new();
    if count("patchesStrategicMerge") > 0 {
        out.push("PatchStrategicMergeTransformer");
    }
    out.extend(std::iter::repeat_n("PatchTransformer", count("patches")));
    if set("namespace") {
        out.push("NamespaceTransformer");
    }
    if set("namePrefix") {
        out.push("PrefixTransformer");
    }
    if set("nameSuffix") {
        out.push("SuffixTransformer");
    }
    let common_labels = k
        .get("commonLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    // kustomize configures one LabelTransformer per `labels` entry and, whenever there is
    // any, one more for `commonLabels` (empty or not).
    out.extend(std::iter::repeat_n(
        "LabelTransformer",
        count("labels") + usize::from(common_labels || count("labels") > 0),
    ));
    if k.get("commonAnnotations")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        out.push("AnnotationsTransformer");
    }
    out.extend(std::iter::repeat_n(
        "PatchJson6902Transformer",
        count("patchesJson6902"),
    ));
    out.extend(std::iter::repeat_n(
        "ReplicaCountTransformer",
        count("replicas"),
    ));
    out.extend(std::iter::repeat_n("ImageTagTransformer", count("images")));
    if count("replacements") > 0 {
        out.push("ReplacementTransformer");
    }
    out
}
