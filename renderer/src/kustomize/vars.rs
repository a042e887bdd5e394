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
    pub kind: String,
    pub api_version: String,
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
        let field_path = match s("/fieldref/fieldpath") {
            f if f.is_empty() => "metadata.name".to_string(),
            f => f,
        };
        out.push(VarDef {
            name,
            kind: s("/objref/kind"),
            api_version: s("/objref/apiVersion"),
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

/// Resolves every var against the final objects and expands references.
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
        let (group, version) = v
            .api_version
            .split_once('/')
            .unwrap_or(("", &v.api_version));
        let found: Vec<&Resource> = items
            .iter()
            .filter(|r| {
                r.any_id(|id| {
                    id.name == v.obj_name
                        && (v.kind.is_empty() || id.kind == v.kind)
                        && (version.is_empty() || id.version == version)
                        && (group.is_empty() || id.group == group)
                        && (v.namespace.is_empty() || id.namespace == v.namespace)
                })
            })
            .collect();
        let r = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(RenderError::new(
                    ErrorKind::Invalid,
                    &v.origin.file,
                    v.origin.line,
                    format!(
                        "var '{}' cannot be mapped to a field in the set of known resources",
                        v.name
                    ),
                ));
            }
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
        for spec in specs.iter().filter(|s| s.applies_to(&api, &kind)) {
            fieldspec::visit(&mut r.value, spec, &mut |parent, key, path| {
                let Some(slot) = parent.get_mut(key) else {
                    return;
                };
                expand_value(slot, &values, &mut |o| {
                    marks.push((path.to_string(), o.clone()))
                });
            });
        }
        for (p, o) in marks {
            r.mark(p, o);
        }
    }
    Ok(())
}

fn expand_value(
    v: &mut Value,
    values: &[(String, String, Origin, Value)],
    used: &mut dyn FnMut(&Origin),
) {
    match v {
        Value::String(s) if s.contains("$(") => {
            // A field that is exactly one reference takes the referenced value's type.
            if let Some(name) = s.strip_prefix("$(").and_then(|r| r.strip_suffix(')'))
                && let Some((_, _, o, typed)) = values.iter().find(|(n, ..)| n == name)
            {
                used(o);
                *v = typed.clone();
                return;
            }
            let (out, hit) = expand(s, values);
            if let Some(o) = hit {
                used(o);
            }
            *s = out;
        }
        Value::Array(a) => {
            for x in a {
                expand_value(x, values, used);
            }
        }
        _ => {}
    }
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
