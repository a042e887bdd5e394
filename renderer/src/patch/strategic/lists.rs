//! kyaml's list primitives (`ElementValuesList`, `ElementMatcher`, `ElementSetter`,
//! `appendListNode`, `validateKeys`, `mergeValues`) on JSON values: the parts of
//! strategic merge whose exact quirks decide element order and de-duplication.

use std::collections::HashSet;

use serde_json::Value;

use super::{empty_map, scalar_text};
use crate::patch::PatchError;

/// kyaml's `ElementValuesList` over the patch then the target (prepend order), de-duplicated.
pub(super) fn element_values(
    origin: Option<&Vec<Value>>,
    dest: &[Value],
    keys: &[String],
) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    for src in origin
        .map(|o| o.as_slice())
        .into_iter()
        .chain(std::iter::once(dest))
    {
        for elem in src {
            let vals: Vec<String> = keys
                .iter()
                .map(|k| match elem.get(k) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::Object(m)) if m.is_empty() => String::new(),
                    Some(Value::Array(a)) if a.is_empty() => String::new(),
                    Some(v) => scalar_text(v),
                })
                .collect();
            if vals.is_empty() || !seen.insert(vals.clone()) {
                continue;
            }
            out.push(vals);
        }
    }
    out
}

/// Whether kyaml's walk of a merge list with no patch side returns it unchanged: every
/// element a non-empty map with a distinct, non-empty scalar for each key (or, for a
/// primitive list, distinct non-null scalars).
pub(super) fn is_stable_merge_list(items: &[Value], keys: &[String]) -> bool {
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    items.iter().all(|e| {
        let tuple: Option<Vec<String>> = if keys.is_empty() {
            match e {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(vec![scalar_text(e)]),
                _ => None,
            }
        } else {
            e.as_object().filter(|m| !m.is_empty()).and_then(|m| {
                keys.iter()
                    .map(|k| match m.get(k) {
                        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(scalar_text(v)),
                        _ => None,
                    })
                    .collect()
            })
        };
        tuple.is_some_and(|t| seen.insert(t))
    })
}

pub(super) fn merge_values(list: &mut [Vec<String>]) {
    for i in 0..list.len() {
        for j in 0..list.len() {
            if let Some(m) = match_values(&list[i], &list[j]) {
                list[i] = m.clone();
                list[j] = m;
            }
        }
    }
}

pub(super) fn match_values(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut res = Vec::new();
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            res.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else if !x.is_empty() {
            res.push(x.clone());
        } else {
            res.push(y.clone());
        }
    }
    common.then_some(res)
}

/// The keys that have a non-empty value in some element (kyaml `validateKeys`' key set).
pub(super) fn used_keys(all: &[Vec<String>], keys: &[String]) -> Vec<bool> {
    let mut used = vec![false; keys.len()];
    for vs in all {
        for (i, v) in vs.iter().enumerate() {
            if !v.is_empty() && i < used.len() {
                used[i] = true;
            }
        }
    }
    used
}

/// kyaml `validateKeys`: drop the keys no element uses, and their empty values.
pub(super) fn validate_keys(
    used: &[bool],
    values: &[String],
    keys: &[String],
) -> (Vec<String>, Vec<String>) {
    if !used.iter().any(|u| *u) {
        return (keys.to_vec(), values.to_vec());
    }
    let vk = keys
        .iter()
        .zip(used)
        .filter(|(_, u)| **u)
        .map(|(k, _)| k.clone())
        .collect();
    let vv = values
        .iter()
        .enumerate()
        .filter(|(i, v)| !v.is_empty() || used.get(*i).copied().unwrap_or(false))
        .map(|(_, v)| v.clone())
        .collect();
    (vk, vv)
}

/// kyaml `FieldMatcher`: an empty wanted value matches any element that has the field.
pub(super) fn field_matches(elem: &Value, key: &str, want: &str) -> bool {
    if key.is_empty() {
        // `GetValue` of a null is empty, and nulls never match.
        return !elem.is_null() && text_eq(elem, want);
    }
    match elem.as_object().and_then(|m| m.get(key)) {
        None => false,
        Some(v) => want.is_empty() || text_eq(v, want),
    }
}

/// Whether a node's `yaml.Node.Value` (scalar text, empty for collections) is `want`.
pub(super) fn text_eq(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        Value::Null => want == "null",
        Value::Number(n) => n.to_string() == want,
        Value::Object(_) | Value::Array(_) => want.is_empty(),
    }
}

/// kyaml `ElementMatcher` (`ElementList`): the first element matching all key/value pairs.
pub(super) fn find_element(list: &[Value], keys: &[String], values: &[String]) -> Option<usize> {
    if keys.is_empty() || keys[0].is_empty() {
        let want = values.first().map(String::as_str).unwrap_or("");
        return list.iter().position(|e| text_eq(e, want));
    }
    if keys.len() != values.len() {
        return None;
    }
    // `MatchField` sets a value node, so an empty wanted value matches only an empty one
    // (unlike ElementSetter's matcher, where empty means "has the field").
    list.iter().position(|e| {
        e.is_object()
            && keys
                .iter()
                .zip(values)
                .all(|(k, v)| e.get(k.as_str()).is_some_and(|x| text_eq(x, v)))
    })
}

/// kyaml `ElementSetter`: replace every match with `element` (or delete when `None`), append
/// when nothing matched. Like kyaml it drops null and empty-map elements on the way.
pub(super) fn element_setter(
    list: &mut Vec<Value>,
    element: Option<Value>,
    keys: &[String],
    values: &[String],
) -> Result<(), PatchError> {
    let primitive = keys.first().is_none_or(|k| k.is_empty());
    let deleting = element.is_none();
    let mut pending = element;
    let mut first: Option<usize> = None;
    let mut out = Vec::with_capacity(list.len() + 1);
    for elem in list.drain(..) {
        if empty_map(Some(&elem)) {
            continue;
        }
        if !elem.is_object() && !primitive {
            out.push(elem);
            continue;
        }
        let mut found = !values.is_empty();
        for (j, want) in values.iter().enumerate() {
            let key = if primitive {
                ""
            } else {
                keys.get(j).map(String::as_str).unwrap_or("")
            };
            if j >= keys.len().max(1) {
                break;
            }
            if key.is_empty() && elem.is_object() {
                return Err(PatchError::KindMismatch {
                    path: "list element".into(),
                });
            }
            if !field_matches(&elem, key, want) {
                found = false;
                break;
            }
        }
        if !found {
            if !values.is_empty() {
                out.push(elem);
            }
            continue;
        }
        if deleting {
            first = first.or(Some(usize::MAX));
            continue;
        }
        // The first match takes the element; later ones get copies of it.
        match pending.take() {
            Some(e) => {
                first = Some(out.len());
                out.push(e);
            }
            None => {
                let copy = first.and_then(|f| out.get(f)).cloned().unwrap_or_default();
                out.push(copy);
            }
        }
    }
    *list = out;
    match pending {
        Some(Value::Null) | None => {}
        Some(e) if first.is_none() => list.push(e),
        Some(_) => {}
    }
    Ok(())
}

/// kyaml `appendListNode(dst, src, keys)`.
pub(super) fn append_list(
    dst: &mut Vec<Value>,
    src: Vec<Value>,
    keys: &[String],
) -> Result<(), PatchError> {
    for elem in src {
        if keys.first().is_none_or(|k| k.is_empty()) {
            let text = scalar_text(&elem);
            element_setter(dst, Some(elem), &[String::new()], &[text])?;
            continue;
        }
        let Some(m) = elem.as_object() else {
            return Err(PatchError::KindMismatch {
                path: "list element".into(),
            });
        };
        let mut v = Vec::new();
        let mut missing = false;
        for key in keys {
            match m.get(key) {
                None => missing = true,
                Some(x) => v.push(scalar_text(x)),
            }
        }
        if missing {
            // kyaml appends an element lacking a key once per missing key.
            for key in keys {
                if !m.contains_key(key) {
                    dst.push(elem.clone());
                }
            }
        }
        if keys.len() > 1 {
            element_setter(dst, None, keys, &v)?;
        }
        element_setter(dst, Some(elem), keys, &v)?;
    }
    Ok(())
}
