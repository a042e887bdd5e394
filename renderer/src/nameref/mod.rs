//! Updating references when a referenced object's name changes (prefix, suffix, hash).
//!
//! A port of kustomize's nameReference transformer (api/filters/nameref and
//! `SubsetThatCouldBeReferencedByResource`): for each back-reference (a kind that can be
//! renamed) and each referring field spec, every referring field whose value is a *previous*
//! name of exactly one suitable candidate is set to that candidate's current name (and, for
//! `{name, namespace}` maps such as RoleBinding subjects, its namespace).
//!
//! The engine owns what kustomize keeps in build annotations: each resource's previous ids
//! and the name prefixes/suffixes applied to it. Nothing here is mutated; the result is a list
//! of field changes, so the engine can apply them and record provenance.

mod walk;

use std::collections::HashMap;

use serde_json::Value;

use crate::schema::{FieldSpec, Gvk, NameBackRef, effective_namespace, is_cluster_scoped};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NameRefError {
    #[error("updating name reference in '{path}' field of {referrer}: {message}")]
    Field {
        path: String,
        referrer: String,
        message: String,
    },
    #[error(
        "updating name reference in '{path}' field of {referrer}: found multiple possible referrals: {candidates}"
    )]
    Ambiguous {
        path: String,
        referrer: String,
        candidates: String,
    },
}

/// An id a resource had before a rename (kustomize `StorePreviousId`): kind, name and
/// *effective* namespace; group and version are the current ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrevId {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// One resource of the build, with the history kustomize tracks for it.
#[derive(Debug, Clone, Copy)]
pub struct RefResource<'a> {
    pub object: &'a Value,
    /// Ids before each rename, oldest first. Empty if never renamed.
    pub previous_ids: &'a [PrevId],
    /// Name prefixes applied, innermost (first applied) first.
    pub prefixes: &'a [String],
    pub suffixes: &'a [String],
}

/// A field to set: `pointer` is a JSON pointer into resource `resource`'s object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRefChange {
    pub resource: usize,
    pub pointer: String,
    pub value: String,
}

/// What nameref reads about each resource, computed once.
struct Info<'a> {
    res: RefResource<'a>,
    api_version: &'a str,
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: &'a str,
    cluster_scoped: bool,
    /// Current effective namespace (kustomize `CurId().EffectiveNamespace()`).
    ns: &'a str,
    /// Kind and effective namespace of the original id (`OrgId`).
    org_kind: &'a str,
    org_ns: String,
    /// Namespaces of ServiceAccount subjects, for RoleBindings.
    sa_namespaces: Vec<&'a str>,
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

impl<'a> Info<'a> {
    fn new(res: RefResource<'a>) -> Self {
        let o = res.object;
        let api_version = str_at(o, "/apiVersion");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let kind = str_at(o, "/kind");
        let namespace = str_at(o, "/metadata/namespace");
        let org_kind = res
            .previous_ids
            .first()
            .map(|p| p.kind.as_str())
            .unwrap_or(kind);
        let org_ns = match res.previous_ids.first() {
            Some(p) => effective_namespace(api_version, &p.kind, &p.namespace).to_string(),
            None => effective_namespace(api_version, kind, namespace).to_string(),
        };
        let mut sa_namespaces = Vec::new();
        if kind == "RoleBinding" {
            for s in o
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                    && let Some(ns) = s.get("namespace").and_then(Value::as_str)
                {
                    sa_namespaces.push(ns);
                }
            }
        }
        Info {
            res,
            api_version,
            group,
            version,
            kind,
            name: str_at(o, "/metadata/name"),
            namespace,
            cluster_scoped: is_cluster_scoped(api_version, kind),
            ns: effective_namespace(api_version, kind, namespace),
            org_kind,
            org_ns,
            sa_namespaces,
        }
    }

    /// Whether some id of this resource with `kind` is selected by `sel` (group and version
    /// are the current ones, as in kustomize's previous ids).
    fn kind_selected(&self, kind: &str, sel: &Gvk) -> bool {
        (sel.group.is_empty() || sel.group == self.group)
            && (sel.version.is_empty() || sel.version == self.version)
            && (sel.kind.is_empty() || sel.kind == kind)
    }

    fn spec_applies(&self, spec: &FieldSpec) -> bool {
        spec.group.as_deref().is_none_or(|g| g == self.group)
            && spec.version.as_deref().is_none_or(|v| v == self.version)
            && spec.kind.as_deref().is_none_or(|k| k == self.org_kind)
    }

    /// kustomize `SubsetThatCouldBeReferencedByResource`, as a predicate on candidates.
    fn could_reference(&self, c: &Info<'_>) -> bool {
        self.cluster_scoped
            || c.cluster_scoped
            || c.ns == self.ns
            || self.sa_namespaces.contains(&c.namespace)
    }

    fn id_string(&self) -> String {
        let ns = if self.namespace.is_empty() {
            "[noNs]"
        } else {
            self.namespace
        };
        format!("{}.{}/{}.{}", self.kind, self.api_version, self.name, ns)
    }
}

/// Computes every name-reference update kustomize would make, in application order.
pub fn fix_name_references(
    resources: &[RefResource<'_>],
    back_refs: &[NameBackRef],
) -> Result<Vec<NameRefChange>, NameRefError> {
    let infos: Vec<Info<'_>> = resources.iter().map(|r| Info::new(*r)).collect();
    // Only resources with a previous id can be referral targets; index them by those names.
    let mut by_prev_name: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_org_ns: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, info) in infos.iter().enumerate() {
        let mut names: Vec<&str> = info
            .res
            .previous_ids
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        names.dedup();
        for n in names {
            let list = by_prev_name.entry(n).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
        if !is_cluster_scoped(info.api_version, info.org_kind) {
            by_org_ns.entry(info.org_ns.as_str()).or_default().push(i);
        }
    }
    let index = Index {
        infos: &infos,
        by_prev_name,
        by_org_ns,
    };
    // Every (referred kind, referring field spec) pair in kustomize's order, and per
    // original kind of a referrer the pairs that can apply to it.
    let pairs: Vec<(&Gvk, &FieldSpec)> = back_refs
        .iter()
        .flat_map(|b| b.referrers.iter().map(move |s| (&b.gvk, s)))
        .collect();
    let paths: Vec<Vec<String>> = pairs
        .iter()
        .map(|(_, s)| walk::split_path(&s.path))
        .collect();
    let referrers: Vec<usize> = (0..infos.len()).collect();
    // Each referrer's changes depend only on the (unchanged) candidates: referrers are
    // handled on all cores, and the changes and the first error come out in order.
    let per_chunk = crate::par::map_chunks(&referrers, 64, |chunk| {
        let mut by_kind: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut changes = Vec::new();
        for &i in chunk {
            referrer_changes(i, &index, &pairs, &paths, &mut by_kind, &mut changes)?;
        }
        Ok(changes)
    });
    let mut changes = Vec::new();
    for c in per_chunk {
        changes.extend(c?);
    }
    Ok(changes)
}

/// The changes to referrer `i`, appended to `changes`.
fn referrer_changes<'a>(
    i: usize,
    index: &Index<'_, 'a>,
    pairs: &[(&Gvk, &FieldSpec)],
    paths: &[Vec<String>],
    by_kind: &mut HashMap<&'a str, Vec<usize>>,
    changes: &mut Vec<NameRefChange>,
) -> Result<(), NameRefError> {
    let referrer = &index.infos[i];
    let mut object: Option<Value> = None;
    let applicable = by_kind.entry(referrer.org_kind).or_insert_with(|| {
        (0..pairs.len())
            .filter(|&p| {
                pairs[p]
                    .1
                    .kind
                    .as_deref()
                    .is_none_or(|k| k == referrer.org_kind)
            })
            .collect()
    });
    for &p in applicable.iter() {
        let (target, spec) = pairs[p];
        if !referrer.spec_applies(spec) {
            continue;
        }
        let current = object.as_ref().unwrap_or(referrer.res.object);
        let ctx = Ctx {
            referrer,
            current,
            spec,
            target,
            index,
        };
        let found = walk::collect(current, &paths[p], &mut |node, pointer, out| {
            ctx.set(node, pointer, out)
        })
        .map_err(|message| NameRefError::Field {
            path: spec.path.clone(),
            referrer: referrer.id_string(),
            message,
        })?;
        if found.is_empty() {
            continue;
        }
        // Later field specs see the referrer as updated by earlier ones.
        let obj = object.get_or_insert_with(|| referrer.res.object.clone());
        for (pointer, value) in found {
            set_pointer(obj, &pointer, &value);
            changes.push(NameRefChange {
                resource: i,
                pointer,
                value,
            });
        }
    }
    Ok(())
}

/// Applies changes from [`fix_name_references`] to the objects they were computed for.
pub fn apply_changes(objects: &mut [Value], changes: &[NameRefChange]) {
    for c in changes {
        if let Some(obj) = objects.get_mut(c.resource) {
            set_pointer(obj, &c.pointer, &c.value);
        }
    }
}

/// Sets a string at a JSON pointer; the last segment may be a new key (a subject's
/// `namespace`).
fn set_pointer(obj: &mut Value, pointer: &str, value: &str) {
    if let Some(slot) = obj.pointer_mut(pointer) {
        *slot = Value::String(value.to_string());
    } else if let Some((parent, field)) = pointer.rsplit_once('/')
        && let Some(Value::Object(m)) = obj.pointer_mut(parent)
    {
        m.insert(
            field.replace("~1", "/").replace("~0", "~"),
            Value::String(value.to_string()),
        );
    }
}

struct Index<'i, 'a> {
    infos: &'i [Info<'a>],
    by_prev_name: HashMap<&'a str, Vec<usize>>,
    by_org_ns: HashMap<&'a str, Vec<usize>>,
}

struct Ctx<'c, 'i, 'a> {
    referrer: &'i Info<'a>,
    /// The referrer as updated by earlier field specs.
    current: &'c Value,
    spec: &'c FieldSpec,
    target: &'c Gvk,
    index: &'c Index<'i, 'a>,
}

type Found = Vec<(String, String)>;

impl<'i, 'a> Ctx<'_, 'i, 'a> {
    /// kustomize `Filter.set` on the node the field spec reached.
    fn set(&self, node: &Value, pointer: &str, out: &mut Found) -> Result<(), String> {
        match node {
            Value::Null => Ok(()),
            Value::Object(_) => self.set_mapping(node, pointer, out),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{pointer}/{i}");
                    match item {
                        Value::Object(_) => self.set_mapping(item, &p, out)?,
                        Value::Array(_) => return Err("node must be a scalar or map".into()),
                        other => self.set_scalar(other, &p, out)?,
                    }
                }
                Ok(())
            }
            scalar => self.set_scalar(scalar, pointer, out),
        }
    }

    /// Candidates: resources with a previous id named `old` the referrer could reference.
    fn candidates(&self, old: &str) -> Vec<&'i Info<'a>> {
        let infos = self.index.infos;
        self.index
            .by_prev_name
            .get(old)
            .into_iter()
            .flatten()
            .map(|&i| &infos[i])
            .filter(|c| self.referrer.could_reference(c))
            .collect()
    }

    fn set_scalar(&self, node: &Value, pointer: &str, out: &mut Found) -> Result<(), String> {
        let old = scalar_text(node);
        let Some(r) = self.select(&old, self.candidates(&old), false)? else {
            return Ok(());
        };
        if r.name != old {
            out.push((pointer.to_string(), r.name.to_string()));
        }
        Ok(())
    }

    fn set_mapping(&self, node: &Value, pointer: &str, out: &mut Found) -> Result<(), String> {
        let Some(name) = node.get("name") else {
            return Err("path config error; no 'name' field in node".into());
        };
        let old = scalar_text(name);
        let mut candidates = self.candidates(&old);
        if let Some(ns) = node.get("namespace") {
            let ns = scalar_text(ns);
            // kustomize groups all referable resources by original namespace and uses that
            // group when it exists, else the group of the current namespace.
            let org_group_exists = self.index.by_org_ns.get(ns.as_str()).is_some_and(|l| {
                l.iter()
                    .any(|&i| self.referrer.could_reference(&self.index.infos[i]))
            });
            if org_group_exists {
                candidates
                    .retain(|c| !is_cluster_scoped(c.api_version, c.org_kind) && c.org_ns == ns);
            } else {
                candidates.retain(|c| !c.cluster_scoped && c.ns == ns);
            }
        }
        let Some(r) = self.select(&old, candidates, true)? else {
            return Ok(());
        };
        if r.name == old && r.namespace.is_empty() {
            return Ok(());
        }
        out.push((format!("{pointer}/name"), r.name.to_string()));
        if !r.namespace.is_empty() {
            out.push((format!("{pointer}/namespace"), r.namespace.to_string()));
        }
        Ok(())
    }

    /// kustomize `selectReferral`: sieve by target kind, roleRef kind and namespace, then
    /// disambiguate by prefixes/suffixes. Candidates already carry the previous name.
    fn select(
        &self,
        _old: &str,
        mut c: Vec<&'i Info<'a>>,
        with_namespace: bool,
    ) -> Result<Option<&'i Info<'a>>, String> {
        c.retain(|r| {
            r.res
                .previous_ids
                .iter()
                .any(|p| r.kind_selected(&p.kind, self.target))
        });
        if let Some(role_gvk) = self.role_ref_gvk() {
            c.retain(|r| {
                r.res
                    .previous_ids
                    .iter()
                    .any(|p| r.kind_selected(&p.kind, &role_gvk))
            });
        }
        let referrer = self.referrer;
        if !referrer.cluster_scoped {
            c.retain(|r| r.cluster_scoped || r.kind == "ServiceAccount" || r.ns == referrer.ns);
        }
        if c.len() == 1 {
            return Ok(c.pop());
        }
        c.retain(|r| affixes_equal(&r.res, &referrer.res, true));
        if c.len() > 1 {
            c.retain(|r| affixes_equal(&r.res, &referrer.res, false));
        }
        match c.len() {
            0 => Ok(None),
            1 => Ok(c.pop()),
            _ => {
                let same = c.iter().all(|r| {
                    r.name == c[0].name && (!with_namespace || r.namespace == c[0].namespace)
                });
                if same {
                    Ok(Some(c[0]))
                } else {
                    let ids: Vec<String> = c.iter().map(|r| r.id_string()).collect();
                    Err(format!(
                        "found multiple possible referrals: {}",
                        ids.join(", ")
                    ))
                }
            }
        }
    }

    fn role_ref_gvk(&self) -> Option<Gvk> {
        if !self.spec.path.ends_with("roleRef/name") {
            return None;
        }
        let rr = self.current.get("roleRef")?;
        Some(Gvk {
            group: scalar_text(rr.get("apiGroup")?),
            version: String::new(),
            kind: scalar_text(rr.get("kind")?),
        })
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// kustomize `PrefixesSuffixesEquals`.
fn affixes_equal(a: &RefResource<'_>, b: &RefResource<'_>, allow_empty: bool) -> bool {
    if allow_empty {
        (a.prefixes.is_empty() || b.prefixes.is_empty() || same_ending(a.prefixes, b.prefixes))
            && (a.suffixes.is_empty()
                || b.suffixes.is_empty()
                || same_ending(a.suffixes, b.suffixes))
    } else {
        same_ending(a.prefixes, b.prefixes) && same_ending(a.suffixes, b.suffixes)
    }
}

/// kustomize `SameEndingSubSlice`: the shorter list is a suffix of the longer one (two empty
/// lists only match each other).
fn same_ending(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() {
        return long.is_empty();
    }
    long.ends_with(short)
}

#[cfg(test)]
mod tests;
