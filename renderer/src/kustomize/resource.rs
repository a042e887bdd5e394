//! Objects as they move through a build: value, origins of their fields, identity.

use std::sync::Arc;

use serde_json::Value;

use super::error::{ErrorKind, RenderError};
use std::fmt::Write as _;

use crate::provenance::{Origin, SetBy, list_merge_key, push_element, push_key};
use crate::yaml::{Positions, escape_pointer};

/// An origin and how many kustomizations the object had passed when it was set, so the
/// chain of each field can be cut from the object's chain.
#[derive(Debug, Clone)]
pub struct Mark {
    pub origin: Origin,
    pub depth: usize,
}

/// How an object entered the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResOrigin {
    /// Read from `Resource::file`.
    File,
    /// Made by a generator of the kustomization `Resource::file`.
    Generator(&'static str),
}

/// Field path text -> where it was set.
pub type Marks = crate::yaml::FxHashMap<String, Mark>;

/// Kind, namespace and name: what must be unique in a build.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResId {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResId {
    pub fn of(v: &Value) -> ResId {
        let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let (group, version) = match api.split_once('/') {
            Some((g, ver)) => (g.to_string(), ver.to_string()),
            None => (String::new(), api.to_string()),
        };
        let meta = v.get("metadata");
        let s = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut namespace = s("namespace").to_string();
        // kustomize treats "default" and "" alike for namespaced kinds.
        if namespace == "default"
            || (!namespace.is_empty() && !super::transform::is_namespaceable(api, &kind))
        {
            namespace.clear();
        }
        ResId {
            group,
            version,
            kind,
            namespace,
            name: s("name").to_string(),
        }
    }
}

impl ResId {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// kustomize `EffectiveNamespace`, used for ordering and selection.
    pub fn effective_namespace(&self) -> &str {
        crate::schema::effective_namespace(&self.api_version(), &self.kind, &self.namespace)
    }
}

impl std::fmt::Display for ResId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = if self.group.is_empty() {
            ""
        } else {
            &self.group
        };
        write!(f, "{}", self.kind)?;
        if !g.is_empty() {
            write!(f, ".{g}")?;
        }
        write!(f, " {}", self.name)?;
        if !self.namespace.is_empty() {
            write!(f, " in namespace {}", self.namespace)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub value: Value,
    /// Field path text -> where it was set.
    pub marks: Marks,
    /// Kustomization files the object has passed through, innermost first.
    pub chain: Vec<Arc<str>>,
    /// The file the object was read from (or the kustomization that generated it).
    pub file: Arc<str>,
    /// Ids the object had before namespace, prefix/suffix or hash changes, oldest first
    /// (kustomize's `previousNames` bookkeeping); name references are rewritten from these.
    pub previous_ids: Vec<ResId>,
    /// Generated ConfigMaps/Secrets: the content hash is appended to the name at the end.
    pub needs_hash: bool,
    /// Name prefixes and suffixes applied, innermost first (for name references).
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    /// Where the object came from, for `buildMetadata: [originAnnotations]`.
    pub origin: ResOrigin,
    /// Built-in transformers that ran over the object: kustomization file and kind.
    pub transformations: Vec<(Arc<str>, &'static str)>,
    /// Legacy vars bound to this object where they were declared (kustomize's
    /// `refVarNames`): their values are read from it once the build is done.
    pub var_refs: Vec<String>,
}

impl Resource {
    pub fn id(&self) -> ResId {
        ResId::of(&self.value)
    }
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    /// kustomize's `StorePreviousId`, called before a transformer may change the id.
    pub fn store_previous_id(&mut self) {
        self.previous_ids.push(self.id());
    }

    /// Whether any id the object had (or has) satisfies `f` (kustomize's `AnyId` lookups).
    pub fn any_id(&self, f: impl Fn(&ResId) -> bool) -> bool {
        self.previous_ids.iter().any(&f) || f(&self.id())
    }

    /// The id the object was read or generated with.
    pub fn original_id(&self) -> ResId {
        self.previous_ids
            .first()
            .cloned()
            .unwrap_or_else(|| self.id())
    }

    pub fn depth(&self) -> usize {
        self.chain.len()
    }

    /// Records that the field at `path` (field path text) was set at `origin`.
    pub fn mark(&mut self, path: String, origin: Origin) {
        let depth = self.depth();
        self.marks.insert(path, Mark { origin, depth });
    }
}

/// Builds the marks of a freshly read object from the positions of its document.
pub fn marks_from_positions(
    value: &Value,
    positions: &Positions,
    base_pointer: &str,
    file: &Arc<str>,
    set_by: SetBy,
) -> Marks {
    let mut marks = Marks::default();
    let mut ptr = base_pointer.to_string();
    let mut path = String::new();
    walk(
        value, positions, &mut ptr, &mut path, file, set_by, &mut marks,
    );
    marks
}

fn walk(
    v: &Value,
    positions: &Positions,
    ptr: &mut String,
    path: &mut String,
    file: &Arc<str>,
    set_by: SetBy,
    out: &mut Marks,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let (pl, fl) = (ptr.len(), path.len());
                ptr.push('/');
                ptr.push_str(&escape_pointer(k));
                push_key(path, k, path.is_empty());
                walk(c, positions, ptr, path, file, set_by, out);
                ptr.truncate(pl);
                path.truncate(fl);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let key = list_merge_key(a);
            for i in 0..a.len() {
                let (pl, fl) = (ptr.len(), path.len());
                let _ = write!(ptr, "/{i}");
                push_element(path, a, key, i);
                walk(&a[i], positions, ptr, path, file, set_by, out);
                ptr.truncate(pl);
                path.truncate(fl);
            }
        }
        _ => {
            let pos = positions.get(ptr).unwrap_or_default();
            out.insert(
                path.clone(),
                Mark {
                    origin: Origin {
                        file: file.clone(),
                        line: pos.line,
                        col: pos.col,
                        set_by,
                    },
                    depth: 0,
                },
            );
        }
    }
}

/// A document that adds field specs for the built-in transformers.
#[derive(Debug, Clone)]
pub enum ConfigDoc {
    /// A `configurations:` file.
    Transformers(Value),
    /// A `crds:` file (OpenAPI definitions of custom types).
    Crds(Value),
}

/// The objects of a build in order, with unique ids.
#[derive(Debug, Default, Clone)]
pub struct ResMap {
    pub items: Vec<Resource>,
    /// `configurations` and `crds` documents of this kustomization and everything below it.
    pub configs: Vec<ConfigDoc>,
    /// Legacy `vars` of this kustomization and everything below it.
    pub vars: Vec<super::vars::VarDef>,
    /// Ids of `items`; rebuilt by [`ResMap::reindex`] after anything renames objects.
    ids: crate::yaml::FxHashMap<ResId, usize>,
}

impl ResMap {
    /// The built-in field specs with every collected `configurations` document merged in.
    pub fn field_specs(&self) -> std::borrow::Cow<'static, crate::schema::FieldSpecs> {
        let builtin = crate::schema::builtin_field_specs();
        if self.configs.is_empty() {
            return std::borrow::Cow::Borrowed(builtin);
        }
        let mut fs = builtin.clone();
        for c in &self.configs {
            match c {
                ConfigDoc::Transformers(v) => fs.merge_config(v),
                ConfigDoc::Crds(v) => fs.merge_crds(v),
            }
        }
        std::borrow::Cow::Owned(fs)
    }

    pub fn reindex(&mut self) {
        self.ids = self
            .items
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id(), i))
            .collect();
    }

    /// Adds objects from a resource entry or sub-kustomization, refusing duplicate ids.
    pub fn append_all(
        &mut self,
        other: Vec<Resource>,
        file: &str,
        line: u32,
    ) -> Result<(), RenderError> {
        if self.ids.len() != self.items.len() {
            self.reindex();
        }
        for r in other {
            let id = r.id();
            if let Some(&first) = self.ids.get(&id) {
                return Err(RenderError::new(
                    ErrorKind::DuplicateId,
                    file,
                    line,
                    format!(
                        "may not add resource with an already registered id: {id} (from {}; first from {})",
                        r.file, self.items[first].file
                    ),
                ));
            }
            self.ids.insert(id, self.items.len());
            self.items.push(r);
        }
        Ok(())
    }
}

/// kustomize re-reads every object's annotations as strings (the text that was written, so
/// `a: 1.50` stays `"1.50"` and `a: null` becomes `"null"`); labels keep their types.
/// `raw` holds the source text of typed plain scalars by JSON pointer below `base_pointer`.
pub fn stringify_annotations(
    value: &mut Value,
    raw: &crate::yaml::FxHashMap<String, String>,
    base_pointer: &str,
) {
    let Some(Value::Object(ann)) = value
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    else {
        return;
    };
    for (k, v) in ann.iter_mut() {
        if v.is_string() {
            continue;
        }
        let ptr = format!(
            "{base_pointer}/metadata/annotations/{}",
            crate::yaml::escape_pointer(k)
        );
        let text = match raw.get(&ptr) {
            Some(t) => t.clone(),
            None => match &*v {
                Value::Null => "null".into(),
                Value::Number(n) => crate::yaml::scalar::format_number(n),
                other => other.to_string(),
            },
        };
        *v = Value::String(text);
    }
}
