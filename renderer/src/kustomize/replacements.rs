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
    Key(String),
    Match(String, String),
    Index(usize),
}

/// kyaml's `SmarterPathSplitter`: split on `.` outside brackets.
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
        // kyaml only reads `[k=v]` / `[0]` as whole segments; `a[k=v]` is a plain key.
        match part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            Some(inner) => match inner.split_once('=') {
                Some((k, v)) => steps.push(Step::Match(k.to_string(), v.to_string())),
                None => steps.push(Step::Index(
                    inner
                        .parse()
                        .map_err(|_| format!("invalid index in field path {path:?}"))?,
                )),
            },
            None if part == "*" => {
                return Err(format!("wildcard in field path {path:?} is not supported"));
            }
            None => steps.push(Step::Key(part.to_string())),
        }
    }
    Ok(steps)
}

/// The node at `steps`, and its field path text.
fn lookup<'v>(v: &'v Value, steps: &[Step]) -> Option<(&'v Value, String)> {
    let mut cur = v;
    let mut path = String::new();
    for s in steps {
        match (s, cur) {
            (Step::Key(k), Value::Object(m)) => {
                push_key(&mut path, k, false);
                cur = m.get(k)?;
            }
            (Step::Index(i), Value::Array(a)) => {
                let seg = element_segment(a, *i);
                cur = a.get(*i)?;
                push_segment(&mut path, &seg);
            }
            (Step::Match(k, want), Value::Array(a)) => {
                let i = a
                    .iter()
                    .position(|e| e.get(k).is_some_and(|x| scalar_text(x) == *want))?;
                push_segment(&mut path, &element_segment(a, i));
                cur = &a[i];
            }
            (Step::Key(k), _) if k.parse::<usize>().is_ok() => {
                let Value::Array(a) = cur else { return None };
                let i: usize = k.parse().ok()?;
                push_segment(&mut path, &element_segment(a, i));
                cur = a.get(i)?;
            }
            _ => return None,
        }
    }
    Some((cur, path))
}

/// Sets the node at `steps` to `value`, creating maps and list elements when `create`.
/// Returns the field path text of the node, or None when it is missing and not created.
fn set(v: &mut Value, steps: &[Step], value: Value, create: bool) -> Option<String> {
    let mut cur = v;
    let mut path = String::new();
    let mut created = false;
    for (n, s) in steps.iter().enumerate() {
        let last = n + 1 == steps.len();
        match s {
            Step::Key(k) => {
                let Value::Object(m) = cur else { return None };
                if !m.contains_key(k) || m[k].is_null() {
                    if !create {
                        return None;
                    }
                    created = true;
                    let fresh = match steps.get(n + 1) {
                        Some(Step::Match(..)) | Some(Step::Index(_)) => Value::Array(vec![]),
                        _ => Value::Object(Map::new()),
                    };
                    m.insert(k.clone(), fresh);
                }
                push_key(&mut path, k, false);
                cur = m.get_mut(k)?;
            }
            Step::Match(k, want) => {
                let Value::Array(a) = cur else { return None };
                let i = match a
                    .iter()
                    .position(|e| e.get(k).is_some_and(|x| scalar_text(x) == *want))
                {
                    Some(i) => i,
                    None if create => {
                        let mut m = Map::new();
                        m.insert(k.clone(), Value::String(want.clone()));
                        a.push(Value::Object(m));
                        a.len() - 1
                    }
                    None => return None,
                };
                push_segment(&mut path, &element_segment(a, i));
                cur = &mut a[i];
            }
            Step::Index(i) => {
                let Value::Array(a) = cur else { return None };
                if *i >= a.len() {
                    return None;
                }
                push_segment(&mut path, &element_segment(a, *i));
                cur = &mut a[*i];
            }
        }
        if last {
            // A scalar replacing a scalar keeps the target's type (kyaml copies the value
            // text into the existing node).
            // A created node is untyped: its text is read back by YAML rules.
            *cur = match (&*cur, value) {
                (_, Value::String(t)) if created => crate::yaml::scalar::resolve_plain(&t),
                (Value::String(_), v @ (Value::Number(_) | Value::Bool(_))) => {
                    Value::String(scalar_text(&v))
                }
                (Value::Number(_) | Value::Bool(_), Value::String(t)) => {
                    crate::yaml::scalar::resolve_plain(&t)
                }
                (_, v) => v,
            };
            return Some(path);
        }
    }
    None
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) => crate::yaml::scalar::format_number(n),
        other => other.to_string(),
    }
}

/// Exact-match selection by group/version/kind/name/namespace and label/annotation selectors.
fn selected(sel: &Value, r: &Resource) -> bool {
    let want = |f: &str| sel.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
    let api = r.api_version();
    let (group, version) = api.split_once('/').unwrap_or(("", api));
    let meta = |f: &str| r.value.get("metadata").and_then(|m| m.get(f));
    let ns = meta("namespace").and_then(Value::as_str).unwrap_or("");
    want("group").is_none_or(|g| g == group)
        && want("version").is_none_or(|v| v == version)
        && want("kind").is_none_or(|k| k == r.kind())
        && want("name").is_none_or(|n| n == r.name())
        && want("namespace").is_none_or(|n| n == ns)
        && want("labelSelector")
            .is_none_or(|s| label_selector_matches(s, meta("labels").and_then(Value::as_object)))
        && want("annotationSelector").is_none_or(|s| {
            label_selector_matches(s, meta("annotations").and_then(Value::as_object))
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
                docs.into_iter()
                    .flat_map(|d| match d.value {
                        Value::Array(a) => a,
                        Value::Null => vec![],
                        other => vec![other],
                    })
                    .collect()
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
        .filter(|&i| selected(src, &items[i]))
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
    let Some((node, src_path)) = lookup(&items[si].value, &steps) else {
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
            if !selected(sel, r) || rejects.iter().any(|rj| selected(rj, r)) {
                continue;
            }
            for fp in &paths {
                let steps = parse_path(fp).map_err(&err)?;
                let mut new = value.clone();
                if let Some(d) = delim {
                    let Some((Value::String(cur), _)) = lookup(&r.value, &steps) else {
                        return Err(err(
                            "delimiter option can only be used with scalar nodes".into()
                        ));
                    };
                    let mut parts: Vec<String> = cur.split(d).map(str::to_string).collect();
                    let v = scalar_text(&value);
                    if idx < 0 {
                        parts.insert(0, v);
                    } else if idx as usize >= parts.len() {
                        parts.push(v);
                    } else {
                        parts[idx as usize] = v;
                    }
                    new = Value::String(parts.join(d));
                }
                match set(&mut r.value, &steps, new, create) {
                    Some(p) => r.mark(p, origin.clone()),
                    None => {
                        return Err(err(format!(
                            "unable to find field \"{fp}\" in replacement target {}",
                            r.id()
                        )));
                    }
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
