//! `replacements:` — copy a field of one object into fields of others (kustomize's
//! ReplacementTransformer, the last built-in transformer of a kustomization).

use serde_json::{Map, Value};

use super::error::{ErrorKind, RenderError};
use super::kfile::{KFile, is_within, read_text, resolve};
use super::resource::Resource;
use super::select::label_selector_matches;
use crate::provenance::{Origin, SetBy, element_segment, push_key, push_segment};
use crate::source::Source;
use crate::yaml::parse_documents;

/// One step of a replacement field path (`spec.containers.[name=web].image`).
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A field, or a list index when it is a number (`containers.0`).
    Key(String),
    /// `[field=value]`: list elements whose field matches (a regex in targets).
    Match(String, String),
    /// `*`: every element.
    Every,
}

/// kyaml's `SmarterPathSplitter`: split on `.` outside brackets; a bracketed segment
/// without `=` is a key that may hold dots (`[traffic.sidecar.istio.io/ports]`).
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                parts.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&path[start..]);
    let mut steps = Vec::new();
    for part in parts {
        // kyaml only reads `[k=v]` as whole segments; `a[k=v]` is a plain key.
        match part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            Some(inner) => match inner.split_once('=') {
                Some((k, v)) => steps.push(Step::Match(k.to_string(), v.to_string())),
                None => steps.push(Step::Key(inner.to_string())),
            },
            None if part == "*" => steps.push(Step::Every),
            None => steps.push(Step::Key(part.to_string())),
        }
    }
    Ok(steps)
}

/// kyaml's `IsIdxNumber`.
fn index_of(key: &str) -> Option<usize> {
    key.parse().ok()
}

/// The node at `steps` (kyaml's `Lookup`: exact `[k=v]` matches), and its field path text.
fn lookup<'v>(v: &'v Value, steps: &[Step]) -> Option<(&'v Value, String)> {
    let mut cur = v;
    let mut path = String::new();
    for s in steps {
        match (s, cur) {
            (Step::Key(k), Value::Array(a)) if index_of(k).is_some() => {
                let i = index_of(k)?;
                push_segment(&mut path, &element_segment(a, i));
                cur = a.get(i)?;
            }
            (Step::Key(k), Value::Object(m)) => {
                push_key(&mut path, k, false);
                cur = m.get(k)?;
            }
            (Step::Match(k, want), Value::Array(a)) => {
                let i = a
                    .iter()
                    .position(|e| e.get(k).is_some_and(|x| scalar_text(x) == *want))?;
                push_segment(&mut path, &element_segment(a, i));
                cur = &a[i];
            }
            _ => return None,
        }
    }
    Some((cur, path))
}

/// What a target path walk found: the field paths set, or why it stopped.
type SetResult = Result<Vec<String>, String>;

/// Sets every node `steps` matches to `value`, as kyaml's `PathMatcher` (with `Create`
/// when `create`) finds them: numbers index lists (appending at the end when creating),
/// `[k=v]` matches elements whose `k` matches the regex `v`, `*` takes every element.
/// Returns the field paths set; empty when nothing matched.
fn set(
    v: &mut Value,
    steps: &[Step],
    value: &Value,
    create: bool,
    delimiter: Option<(&str, i64)>,
) -> SetResult {
    let mut out = Vec::new();
    let w = Walk {
        value,
        create,
        delimiter,
    };
    w.set_into(v, steps, String::new(), false, &mut out)?;
    Ok(out)
}

/// One target field path being set.
struct Walk<'a> {
    value: &'a Value,
    create: bool,
    /// `options.delimiter` and `options.index`: the value replaces (or, with an index out
    /// of range, is added to) one part of each matched field's text.
    delimiter: Option<(&'a str, i64)>,
}

fn fresh_for(next: Option<&Step>) -> Value {
    match next {
        Some(Step::Match(..) | Step::Every) => Value::Array(vec![]),
        Some(Step::Key(k)) if index_of(k).is_some() => Value::Array(vec![]),
        _ => Value::Object(Map::new()),
    }
}

impl Walk<'_> {
    fn set_into(
        &self,
        cur: &mut Value,
        steps: &[Step],
        path: String,
        created: bool,
        out: &mut Vec<String>,
    ) -> Result<(), String> {
        let create = self.create;
        let Some((step, rest)) = steps.split_first() else {
            let new = match self.delimiter {
                None => self.value.clone(),
                Some((d, idx)) => {
                    let text = match cur {
                        _ if created => String::new(),
                        Value::String(_) | Value::Number(_) | Value::Bool(_) => scalar_text(cur),
                        _ => {
                            return Err(
                                "delimiter option can only be used with scalar nodes".into()
                            );
                        }
                    };
                    let mut parts: Vec<String> = text.split(d).map(str::to_string).collect();
                    let v = scalar_text(self.value);
                    match usize::try_from(idx) {
                        Err(_) => parts.insert(0, v),
                        Ok(i) if i >= parts.len() => parts.push(v),
                        Ok(i) => parts[i] = v,
                    }
                    Value::String(parts.join(d))
                }
            };
            *cur = leaf_value(cur, &new, created);
            out.push(path);
            return Ok(());
        };
        match step {
            Step::Key(k) if index_of(k).is_some() => {
                let i = index_of(k).unwrap_or(0);
                let Value::Array(a) = cur else {
                    return Err(format!("wrong node kind: expected SequenceNode at {k:?}"));
                };
                let mut made = false;
                if create && a.len() == i {
                    a.push(fresh_for(rest.first()));
                    made = true;
                }
                if a.len() < i + 1 {
                    return Err(format!(
                        "index {i} specified but only {} elements found",
                        a.len()
                    ));
                }
                let mut p = path;
                push_segment(&mut p, &element_segment(a, i));
                self.set_into(&mut a[i], rest, p, made, out)
            }
            Step::Key(k) => {
                let Value::Object(m) = cur else {
                    return Ok(());
                };
                let mut made = false;
                if m.get(k).is_none_or(Value::is_null) {
                    if !create {
                        return Ok(());
                    }
                    m.insert(k.clone(), fresh_for(rest.first()));
                    made = true;
                }
                let mut p = path;
                push_key(&mut p, k, false);
                match m.get_mut(k) {
                    Some(child) => self.set_into(child, rest, p, made, out),
                    None => Ok(()),
                }
            }
            Step::Match(k, want) => {
                let Value::Array(a) = cur else {
                    return Ok(());
                };
                let re = regex::Regex::new(want).map_err(|e| e.to_string())?;
                let hits = |a: &[Value]| -> Vec<usize> {
                    (0..a.len())
                        .filter(|&i| {
                            a[i].get(k.as_str())
                                .filter(|x| !x.is_null())
                                .is_some_and(|x| re.is_match(scalar_text(x).trim()))
                        })
                        .collect()
                };
                let mut found = hits(a);
                let mut made = false;
                if found.is_empty() && create {
                    let mut m = Map::new();
                    m.insert(k.clone(), Value::String(want.clone()));
                    a.push(Value::Object(m));
                    found = vec![a.len() - 1];
                    made = true;
                }
                for i in found {
                    let mut p = path.clone();
                    push_segment(&mut p, &element_segment(a, i));
                    self.set_into(&mut a[i], rest, p, made, out)?;
                }
                Ok(())
            }
            Step::Every => {
                let Value::Array(a) = cur else {
                    return Err("wrong node kind: expected SequenceNode for \"*\"".into());
                };
                for i in 0..a.len() {
                    let mut p = path.clone();
                    push_segment(&mut p, &element_segment(a, i));
                    self.set_into(&mut a[i], rest, p, false, out)?;
                }
                Ok(())
            }
        }
    }
}

/// A scalar replacing a scalar keeps the target's type (kyaml copies the value text into
/// the existing node); a created node is untyped: its text is read back by YAML rules.
fn leaf_value(cur: &Value, value: &Value, created: bool) -> Value {
    match (cur, value) {
        (_, Value::String(t)) if created => crate::yaml::scalar::resolve_plain(t),
        (Value::String(_), v @ (Value::Number(_) | Value::Bool(_))) => {
            Value::String(scalar_text(v))
        }
        (Value::Number(_) | Value::Bool(_), Value::String(t)) => {
            crate::yaml::scalar::resolve_plain(t)
        }
        (_, v) => v.clone(),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) => crate::yaml::scalar::format_number(n),
        other => other.to_string(),
    }
}

/// kustomize's `ResId.IsSelectedBy`: empty selector fields are wildcards.
fn id_matches(sel: &Value, id: &super::resource::ResId) -> bool {
    let want = |f: &str| sel.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
    let namespace = want("namespace").map(|n| if n == "default" { "" } else { n });
    want("group").is_none_or(|g| g == id.group)
        && want("version").is_none_or(|v| v == id.version)
        && want("kind").is_none_or(|k| k == id.kind)
        && want("name").is_none_or(|n| n == id.name)
        && namespace.is_none_or(|n| n == id.namespace)
}

/// Whether a selector names any id field (kustomize's `ResId.IsEmpty` negated).
fn has_id(sel: &Value) -> bool {
    ["group", "version", "kind", "name", "namespace"]
        .iter()
        .any(|f| {
            sel.get(*f)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        })
}

fn has_meta_selector(sel: &Value) -> bool {
    ["labelSelector", "annotationSelector"].iter().any(|f| {
        sel.get(*f)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    })
}

/// The label and annotation selectors of `sel` on the object as it is now.
fn meta_selected(sel: &Value, r: &Resource) -> bool {
    let want = |f: &str| sel.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
    let meta = |f: &str| r.value.get("metadata").and_then(|m| m.get(f));
    want("labelSelector")
        .is_none_or(|s| label_selector_matches(s, meta("labels").and_then(Value::as_object)))
        && want("annotationSelector").is_none_or(|s| {
            label_selector_matches(s, meta("annotations").and_then(Value::as_object))
        })
}

/// A target as kustomize's `applyReplacement` selects it: label/annotation selectors on
/// the object as it is now (a reject with either rejects on its own), then ids — every id
/// the object has had (`makeResIds`: current and previous names, namespaces and kinds), so
/// the name it was written with selects it too; an id selected and not rejected is enough.
fn target_selected(sel: &Value, rejects: &[&Value], r: &Resource) -> bool {
    meta_selected(sel, r)
        && !rejects
            .iter()
            .any(|rj| has_meta_selector(rj) && meta_selected(rj, r))
        && r.any_id(|id| {
            id_matches(sel, id) && !rejects.iter().any(|rj| has_id(rj) && id_matches(rj, id))
        })
}

/// Runs every replacement of `k` over `items`.
pub fn run(source: &dyn Source, k: &KFile, items: &mut [Resource]) -> Result<(), RenderError> {
    let Some(v) = k.get("replacements") else {
        return Ok(());
    };
    let Value::Array(entries) = v else {
        return Err(k.error(
            ErrorKind::Yaml,
            "/replacements",
            "replacements must be a list",
        ));
    };
    for (i, e) in entries.iter().enumerate() {
        let ptr = format!("/replacements/{i}");
        let list: Vec<Value> = match e.get("path").and_then(Value::as_str) {
            Some(rel) => {
                let path = resolve(&k.dir, rel)
                    .filter(|p| is_within(&k.dir, p))
                    .ok_or_else(|| {
                        k.error(
                            ErrorKind::OutsideRoot,
                            &ptr,
                            format!("security; file '{rel}' is not in or below '{}'", k.dir),
                        )
                    })?;
                let text = read_text(source, &path)?;
                let docs = parse_documents(&text).map_err(|err| {
                    RenderError::new(ErrorKind::Yaml, &path, err.line, err.message)
                        .at(err.line, err.col)
                })?;
                let mut list = Value::Array(
                    docs.into_iter()
                        .flat_map(|d| match d.value {
                            Value::Array(a) => a,
                            Value::Null => vec![],
                            other => vec![other],
                        })
                        .collect(),
                );
                // Read with sigs.k8s.io/yaml's lenient decoding: field names fold, and
                // keys that are no field are dropped, not refused.
                let _ = super::kschema::canonicalize(
                    &mut list,
                    &super::kschema::REPLACEMENT_LIST,
                    false,
                );
                match list {
                    Value::Array(a) => a,
                    _ => vec![],
                }
            }
            None => vec![e.clone()],
        };
        for rep in &list {
            apply(k, &ptr, rep, items)?;
        }
    }
    Ok(())
}

fn apply(k: &KFile, ptr: &str, rep: &Value, items: &mut [Resource]) -> Result<(), RenderError> {
    let err = |m: String| k.error(ErrorKind::Invalid, ptr, m);
    let (Some(src), Some(Value::Array(targets))) = (rep.get("source"), rep.get("targets")) else {
        return Err(err(
            "replacements must specify a source and at least one target".into(),
        ));
    };
    let matches: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].any_id(|id| id_matches(src, id)))
        .collect();
    let si = match matches.as_slice() {
        [one] => *one,
        [] => return Err(err(format!("found no matches for source {}", compact(src)))),
        _ => {
            return Err(err(format!(
                "more than one match for source {}",
                compact(src)
            )));
        }
    };
    let field = src
        .get("fieldPath")
        .and_then(Value::as_str)
        .unwrap_or("metadata.name");
    let steps = parse_path(field).map_err(&err)?;
    if steps.contains(&Step::Every) {
        return Err(err(format!(
            "wildcard in replacement source fieldPath `{field}` is not supported"
        )));
    }
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    let Some((node, src_path)) = lookup(&items[si].value, &steps).filter(|(n, _)| !empty(n)) else {
        return Err(err(format!(
            "fieldPath `{field}` is missing for replacement source {}",
            compact(src)
        )));
    };
    let mut value = node.clone();
    let src_origin = items[si].marks.get(&src_path).map(|m| m.origin.clone());
    if let Some(delim) = src
        .pointer("/options/delimiter")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
    {
        let idx = src
            .pointer("/options/index")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let text = scalar_text(&value);
        let parts: Vec<&str> = text.split(delim).collect();
        let part = usize::try_from(idx)
            .ok()
            .and_then(|i| parts.get(i))
            .ok_or_else(|| {
                err(format!(
                    "options.index {idx} is out of bounds for value {text}"
                ))
            })?;
        value = Value::String(part.to_string());
    }
    let pos = k.pos(ptr);
    let origin = src_origin.unwrap_or(Origin {
        file: k.path.clone(),
        line: pos.line,
        col: pos.col,
        set_by: SetBy::Transformer("replacements"),
    });
    for t in targets {
        let Some(sel) = t.get("select") else {
            return Err(err("target must specify resources to select".into()));
        };
        let rejects: Vec<&Value> = t
            .get("reject")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let paths: Vec<String> = match t.get("fieldPaths").and_then(Value::as_array) {
            Some(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            None => vec!["metadata.name".into()],
        };
        let create = t
            .pointer("/options/create")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let delim = t
            .pointer("/options/delimiter")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty());
        let idx = t
            .pointer("/options/index")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        for r in items.iter_mut() {
            if !target_selected(sel, &rejects, r) {
                continue;
            }
            for fp in &paths {
                let steps = parse_path(fp).map_err(&err)?;
                let set_paths = set(
                    &mut r.value,
                    &steps,
                    &value,
                    create,
                    delim.map(|d| (d, idx)),
                )
                .map_err(|e| {
                    err(format!(
                        "unable to find field \"{fp}\" in replacement target {}: {e}",
                        r.id()
                    ))
                })?;
                if set_paths.is_empty() {
                    return Err(err(format!(
                        "unable to find field \"{fp}\" in replacement target {}",
                        r.id()
                    )));
                }
                for p in set_paths {
                    r.mark(p, origin.clone());
                }
            }
        }
    }
    Ok(())
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_like_kyaml() {
        assert_eq!(
            parse_path("spec.containers.[name=web].image").unwrap(),
            vec![
                Step::Key("spec".into()),
                Step::Key("containers".into()),
                Step::Match("name".into(), "web".into()),
                Step::Key("image".into())
            ]
        );
        assert_eq!(parse_path("a[b=c.d].e").unwrap().len(), 2);
    }
}
