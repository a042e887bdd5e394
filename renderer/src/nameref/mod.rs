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

impl RefResource<'_> {
    fn s(&self, p: &str) -> &str {
        self.object.pointer(p).and_then(Value::as_str).unwrap_or("")
    }
    fn api_version(&self) -> &str {
        self.s("/apiVersion")
    }
    fn kind(&self) -> &str {
        self.s("/kind")
    }
    fn name(&self) -> &str {
        self.s("/metadata/name")
    }
    fn namespace(&self) -> &str {
        self.s("/metadata/namespace")
    }
    fn gvk_with_kind(&self, kind: &str) -> Gvk {
        Gvk::from_api_version(self.api_version(), kind)
    }
    fn cur_effective_ns(&self) -> &str {
        effective_namespace(self.api_version(), self.kind(), self.namespace())
    }
    fn cluster_scoped(&self) -> bool {
        is_cluster_scoped(self.api_version(), self.kind())
    }
    fn org_kind(&self) -> &str {
        self.previous_ids
            .first()
            .map(|p| p.kind.as_str())
            .unwrap_or(self.kind())
    }
    fn org_effective_ns(&self) -> String {
        match self.previous_ids.first() {
            Some(p) => effective_namespace(self.api_version(), &p.kind, &p.namespace).to_string(),
            None => self.cur_effective_ns().to_string(),
        }
    }
    fn id_string(&self) -> String {
        let ns = if self.namespace().is_empty() {
            "[noNs]"
        } else {
            self.namespace()
        };
        format!(
            "{}.{}/{}.{}",
            self.kind(),
            self.api_version(),
            self.name(),
            ns
        )
    }
}

/// Computes every name-reference update kustomize would make, in application order.
pub fn fix_name_references(
    resources: &[RefResource<'_>],
    back_refs: &[NameBackRef],
) -> Result<Vec<NameRefChange>, NameRefError> {
    let mut changes = Vec::new();
    for (i, referrer) in resources.iter().enumerate() {
        let filters: Vec<(&FieldSpec, &Gvk)> = back_refs
            .iter()
            .flat_map(|b| b.referrers.iter().map(move |spec| (spec, &b.gvk)))
            .filter(|(spec, _)| {
                referrer
                    .gvk_with_kind(referrer.org_kind())
                    .is_selected_by(&spec.gvk())
            })
            .collect();
        if filters.is_empty() {
            continue;
        }
        let candidates = subset_for(referrer, resources);
        let mut object = referrer.object.clone();
        for (spec, target) in filters {
            let view = RefResource {
                object: &object,
                ..*referrer
            };
            let ctx = Ctx {
                referrer: view,
                spec,
                target,
                candidates: &candidates,
            };
            let found = walk::collect(&object, &spec.path, &mut |node, pointer, out| {
                ctx.set(node, pointer, out)
            })
            .map_err(|message| NameRefError::Field {
                path: spec.path.clone(),
                referrer: referrer.id_string(),
                message,
            })?;
            for (pointer, value) in found {
                if let Some(slot) = object.pointer_mut(&pointer) {
                    *slot = Value::String(value.clone());
                } else if let Some((parent, field)) = pointer.rsplit_once('/')
                    && let Some(Value::Object(m)) = object.pointer_mut(parent)
                {
                    m.insert(
                        field.replace("~1", "/").replace("~0", "~"),
                        Value::String(value.clone()),
                    );
                }
                changes.push(NameRefChange {
                    resource: i,
                    pointer,
                    value,
                });
            }
        }
    }
    Ok(changes)
}

/// Applies changes from [`fix_name_references`] to the objects they were computed for.
pub fn apply_changes(objects: &mut [Value], changes: &[NameRefChange]) {
    for c in changes {
        let Some(obj) = objects.get_mut(c.resource) else {
            continue;
        };
        if let Some(slot) = obj.pointer_mut(&c.pointer) {
            *slot = Value::String(c.value.clone());
        } else if let Some((parent, field)) = c.pointer.rsplit_once('/')
            && let Some(Value::Object(m)) = obj.pointer_mut(parent)
        {
            m.insert(
                field.replace("~1", "/").replace("~0", "~"),
                Value::String(c.value.clone()),
            );
        }
    }
}

/// kustomize `SubsetThatCouldBeReferencedByResource`.
fn subset_for<'a>(referrer: &RefResource<'_>, all: &[RefResource<'a>]) -> Vec<RefResource<'a>> {
    if referrer.cluster_scoped() {
        return all.to_vec();
    }
    let mut sa_namespaces: Vec<&str> = Vec::new();
    if referrer.kind() == "RoleBinding" {
        for s in referrer
            .object
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
    let ns = referrer.cur_effective_ns();
    all.iter()
        .filter(|c| {
            c.cluster_scoped()
                || c.cur_effective_ns() == ns
                || sa_namespaces.contains(&c.namespace())
        })
        .copied()
        .collect()
}

struct Ctx<'a, 'r> {
    referrer: RefResource<'r>,
    spec: &'a FieldSpec,
    target: &'a Gvk,
    candidates: &'a [RefResource<'r>],
}

impl Ctx<'_, '_> {
    /// kustomize `Filter.set` on the node the field spec reached.
    fn set(
        &self,
        node: &Value,
        pointer: &str,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
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

    fn set_scalar(
        &self,
        node: &Value,
        pointer: &str,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        let old = scalar_text(node);
        let Some(r) = self.select(&old, self.candidates.to_vec(), false)? else {
            return Ok(());
        };
        if r.name() != old {
            out.push((pointer.to_string(), r.name().to_string()));
        }
        Ok(())
    }

    fn set_mapping(
        &self,
        node: &Value,
        pointer: &str,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        let Some(name) = node.get("name") else {
            return Err("path config error; no 'name' field in node".into());
        };
        let old = scalar_text(name);
        let candidates: Vec<RefResource<'_>> = match node.get("namespace") {
            None => self.candidates.to_vec(),
            Some(ns) => {
                let ns = scalar_text(ns);
                let by_org: Vec<_> = self
                    .candidates
                    .iter()
                    .filter(|c| !c.cluster_scoped() && c.org_effective_ns() == ns)
                    .copied()
                    .collect();
                if !by_org.is_empty() {
                    by_org
                } else {
                    self.candidates
                        .iter()
                        .filter(|c| !c.cluster_scoped() && c.cur_effective_ns() == ns)
                        .copied()
                        .collect()
                }
            }
        };
        let Some(r) = self.select(&old, candidates, true)? else {
            return Ok(());
        };
        if r.name() == old && r.namespace().is_empty() {
            return Ok(());
        }
        out.push((format!("{pointer}/name"), r.name().to_string()));
        if !r.namespace().is_empty() {
            out.push((format!("{pointer}/namespace"), r.namespace().to_string()));
        }
        Ok(())
    }

    /// kustomize `selectReferral`: sieve by previous name, target kind, roleRef kind and
    /// namespace, then disambiguate by prefixes/suffixes.
    fn select<'c>(
        &self,
        old: &str,
        mut c: Vec<RefResource<'c>>,
        with_namespace: bool,
    ) -> Result<Option<RefResource<'c>>, String> {
        c.retain(|r| r.previous_ids.iter().any(|p| p.name == old));
        c.retain(|r| {
            r.previous_ids
                .iter()
                .any(|p| r.gvk_with_kind(&p.kind).is_selected_by(self.target))
        });
        if let Some(role_gvk) = self.role_ref_gvk() {
            c.retain(|r| {
                r.previous_ids
                    .iter()
                    .any(|p| r.gvk_with_kind(&p.kind).is_selected_by(&role_gvk))
            });
        }
        if !self.referrer.cluster_scoped() {
            let ns = self.referrer.cur_effective_ns();
            c.retain(|r| {
                r.cluster_scoped() || r.kind() == "ServiceAccount" || r.cur_effective_ns() == ns
            });
        }
        if c.len() == 1 {
            return Ok(c.pop());
        }
        c.retain(|r| affixes_equal(r, &self.referrer, true));
        if c.len() > 1 {
            c.retain(|r| affixes_equal(r, &self.referrer, false));
        }
        match c.len() {
            0 => Ok(None),
            1 => Ok(c.pop()),
            _ => {
                let same = c.iter().all(|r| {
                    r.name() == c[0].name()
                        && (!with_namespace || r.namespace() == c[0].namespace())
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
        let rr = self.referrer.object.get("roleRef")?;
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
