//! Legacy `vars:`: `$(NAME)` in the fields kustomize's `varReference` specs list is replaced
//! by a field of another object, once the whole build (names included) is final.

use serde_json::Value;

use super::error::{ErrorKind, RenderError};
use super::fieldspec;
use super::kfile::KFile;
use super::resource::Resource;
use crate::provenance::{Origin, SetBy};
use crate::schema::FieldSpec;

/// One `vars:` entry, with the kustomization it came from.
#[derive(Debug, Clone)]
pub struct VarDef {
    pub name: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub obj_name: String,
    pub namespace: String,
    pub field_path: String,
    pub origin: Origin,
}

/// Reads `vars:` of a kustomization.
pub fn read(k: &KFile) -> Result<Vec<VarDef>, RenderError> {
    let Some(v) = k.get("vars") else {
        return Ok(vec![]);
    };
    let Value::Array(entries) = v else {
        return Err(k.error(ErrorKind::Yaml, "/vars", "vars must be a list"));
    };
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ptr = format!("/vars/{i}");
        let s = |p: &str| {
            e.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let name = s("/name");
        if name.is_empty() {
            return Err(k.error(ErrorKind::Invalid, &ptr, "var has no name"));
        }
        let pos = k.pos(&ptr);
        let field_path = match s("/fieldref/fieldPath") {
            f if f.is_empty() => "metadata.name".to_string(),
            f => f,
        };
        // kustomize's `Target.GVK()`: `apiVersion` overrides `group`/`version` when set; a
        // one-part apiVersion is a version and leaves `group` as written.
        let (mut group, mut version) = (s("/objref/group"), s("/objref/version"));
        match s("/objref/apiVersion").split_once('/') {
            _ if s("/objref/apiVersion").is_empty() => {}
            Some((g, v)) => (group, version) = (g.to_string(), v.to_string()),
            None => version = s("/objref/apiVersion"),
        }
        out.push(VarDef {
            name,
            group,
            version,
            kind: s("/objref/kind"),
            obj_name: s("/objref/name"),
            namespace: s("/objref/namespace"),
            field_path,
            origin: Origin {
                file: k.path.clone(),
                line: pos.line,
                col: pos.col,
                set_by: SetBy::Transformer("vars"),
            },
        });
    }
    Ok(out)
}

/// Adds `more` to `all`, refusing a name defined twice.
pub fn merge(all: &mut Vec<VarDef>, more: Vec<VarDef>) -> Result<(), RenderError> {
    for v in more {
        if all.iter().any(|x| x.name == v.name) {
            return Err(RenderError::new(
                ErrorKind::Invalid,
                &v.origin.file,
                v.origin.line,
                format!("var '{}' already encountered", v.name),
            ));
        }
        all.push(v);
    }
    Ok(())
}

/// Binds each var declared by one kustomization to the one object it names, among the
/// objects built so far (its own transformers included), as kustomize's `MergeVars` does:
/// group, version, kind and name (current or earlier) must be equal, and the namespace too
/// when the var gives one or the kind is cluster-scoped. A var that names no object stays
/// unbound and fails at resolution; one that names several fails here.
pub fn bind(vars: &[VarDef], items: &mut [Resource]) -> Result<(), RenderError> {
    for v in vars {
        let api = if v.group.is_empty() {
            v.version.clone()
        } else {
            format!("{}/{}", v.group, v.version)
        };
        let by_namespace =
            !v.namespace.is_empty() || !super::transform::is_namespaceable(&api, &v.kind);
        let namespace = if v.namespace == "default" {
            ""
        } else {
            v.namespace.as_str()
        };
        let named = |id: &super::resource::ResId| {
            id.name == v.obj_name
                && id.kind == v.kind
                && id.group == v.group
                && id.version == v.version
                && (!by_namespace || id.namespace == namespace)
        };
        let found: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].any_id(named))
            .collect();
        match found.as_slice() {
            [] => {}
            [one] => items[*one].var_refs.push(v.name.clone()),
            _ => {
                return Err(RenderError::new(
                    ErrorKind::Invalid,
                    &v.origin.file,
                    v.origin.line,
                    format!(
                        "found {} resId matches for var '{}' (unable to disambiguate)",
                        found.len(),
                        v.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Reads every var from the object it was bound to, now that the build is final, and
/// expands references.
pub fn resolve(
    items: &mut [Resource],
    vars: &[VarDef],
    specs: &[FieldSpec],
) -> Result<(), RenderError> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut values = Vec::new();
    for v in vars {
        let Some(r) = items.iter().find(|r| r.var_refs.contains(&v.name)) else {
            return Err(RenderError::new(
                ErrorKind::Invalid,
                &v.origin.file,
                v.origin.line,
                format!(
                    "var '{}' cannot be mapped to a field in the set of known resources",
                    v.name
                ),
            ));
        };
        let value = field(&r.value, &v.field_path).ok_or_else(|| {
            RenderError::new(
                ErrorKind::Invalid,
                &v.origin.file,
                v.origin.line,
                format!(
                    "field specified in var '{}' not found in corresponding resource",
                    v.name
                ),
            )
        })?;
        let typed = match field_value(&r.value, &v.field_path) {
            Some(t @ (Value::Number(_) | Value::Bool(_))) => t.clone(),
            _ => Value::String(value.clone()),
        };
        values.push((v.name.clone(), value, v.origin.clone(), typed));
    }
    for r in items.iter_mut() {
        let (api, kind) = (r.api_version().to_string(), r.kind().to_string());
        let mut marks = Vec::new();
        let mut bad = None;
        for spec in specs.iter().filter(|s| s.applies_to(&api, &kind)) {
            fieldspec::visit(&mut r.value, spec, &mut |parent, key, path| {
                let Some(slot) = parent.get_mut(key) else {
                    return;
                };
                if let Err(e) = expand_field(slot, &values, path, &mut marks) {
                    bad.get_or_insert_with(|| format!("{path}: {e}"));
                }
            });
        }
        if let Some(e) = bad {
            return Err(RenderError::new(
                ErrorKind::Invalid,
                &r.file,
                0,
                format!("{}: vars: {e}", r.id()),
            ));
        }
        for (p, o) in marks {
            r.mark(p, o);
        }
    }
    Ok(())
}

type VarValue = (String, String, Origin, Value);

/// kustomize's refvar filter: a string is expanded; a mapping has each string value
/// expanded (one level); a sequence must hold only strings; anything else is left alone.
/// Each expanded leaf is marked with the var's declaration.
fn expand_field(
    v: &mut Value,
    values: &[VarValue],
    path: &str,
    marks: &mut Vec<(String, Origin)>,
) -> Result<(), &'static str> {
    use crate::provenance::{Segment, push_key, push_segment};
    match v {
        Value::Array(a) => {
            if a.iter().any(|x| !x.is_string()) {
                return Err("invalid value type expect a string");
            }
            for (i, x) in a.iter_mut().enumerate() {
                if let Some(o) = expand_string(x, values) {
                    let mut p = path.to_string();
                    push_segment(&mut p, &Segment::Index(i));
                    marks.push((p, o.clone()));
                }
            }
        }
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if let Some(o) = expand_string(x, values) {
                    let mut p = path.to_string();
                    let root = p.is_empty();
                    push_key(&mut p, k, root);
                    marks.push((p, o.clone()));
                }
            }
        }
        _ => {
            if let Some(o) = expand_string(v, values) {
                marks.push((path.to_string(), o.clone()));
            }
        }
    }
    Ok(())
}

/// Expands the references of one string; the origin of the (last) var used, if any.
fn expand_string<'o>(v: &mut Value, values: &'o [VarValue]) -> Option<&'o Origin> {
    let Value::String(s) = v else {
        return None;
    };
    if !s.contains("$(") {
        return None;
    }
    // A field that is exactly one reference takes the referenced value's type.
    if let Some(name) = s.strip_prefix("$(").and_then(|r| r.strip_suffix(')'))
        && let Some((_, _, o, typed)) = values.iter().find(|(n, ..)| n == name)
    {
        *v = typed.clone();
        return Some(o);
    }
    let (out, hit) = expand(s, values);
    *s = out;
    hit
}

/// Kubernetes `$(VAR)` expansion: `$$` is a literal `$`, unknown names stay as written.
fn expand<'o>(
    s: &str,
    values: &'o [(String, String, Origin, Value)],
) -> (String, Option<&'o Origin>) {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut hit = None;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'('
                && let Some(end) = s[i + 2..].find(')')
            {
                let name = &s[i + 2..i + 2 + end];
                if let Some((_, val, o, _)) = values.iter().find(|(n, ..)| n == name) {
                    out.push_str(val);
                    hit = Some(o);
                } else {
                    out.push_str(&s[i..i + 3 + end]);
                }
                i += 3 + end;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    (out, hit)
}

/// A var's field (`spec.ports[0].port`, `metadata.name`) as text.
fn field(v: &Value, path: &str) -> Option<String> {
    match field_value(v, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(crate::yaml::scalar::format_number(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn field_value<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = v;
    for seg in path.split('.') {
        let (key, idx) = match seg.split_once('[') {
            Some((k, rest)) => (
                k,
                rest.strip_suffix(']').and_then(|n| n.parse::<usize>().ok()),
            ),
            None => (seg, None),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_rules() {
        let o = Origin {
            file: "k".into(),
            line: 1,
            col: 1,
            set_by: SetBy::Transformer("vars"),
        };
        let vals = vec![("A".to_string(), "x".to_string(), o, Value::from("x"))];
        assert_eq!(expand("$(A)-$(B)-$$(A)", &vals).0, "x-$(B)-$(A)");
    }
}
