//! Strategic merge exactly as kustomize applies it: kyaml's `merge2.Merge` with
//! `ListIncreaseDirection: Prepend` (not apimachinery's strategicpatch).
//!
//! The port keeps kyaml's observable quirks because `kubectl kustomize` output is the spec:
//! - elements named in the patch come first, in patch order, then the untouched ones;
//! - lists with several merge keys (container `ports`) move matched elements to the end;
//! - `$setElementOrder/…`, `$retainKeys` and `$deleteFromPrimitiveList/…` are not directives
//!   to kyaml: they are copied into the output like any field;
//! - a `$patch: replace` list *element* leaves the existing element in place;
//! - lists of unknown types (no schema) are replaced, never merged.
//!
//! kyaml mutates the target's nodes in place and later compares by identity; here every
//! walk reports whether its result *is* the (mutated) target node, and the list code writes
//! such results back, which reproduces the aliasing without sharing.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::PatchError;
use crate::schema::{Schema, SchemaRef};

const DIRECTIVE: &str = "$patch";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

/// The result of walking one node: the value (None = clear the field) and whether kyaml would
/// have returned the destination node itself, mutated.
struct Walked {
    value: Option<Value>,
    is_dest: bool,
}

impl Walked {
    fn clear() -> Self {
        Walked {
            value: None,
            is_dest: false,
        }
    }
}

/// Merges `patch` into `target`. `Ok(None)` means the patch deleted the object.
pub fn merge(target: Value, patch: Value, schema: &Schema) -> Result<Option<Value>, PatchError> {
    let mut w = Walker {
        schema,
        path: Vec::new(),
    };
    Ok(w.walk(Some(target), Some(patch), None)?
        .value
        .filter(|v| !v.is_null()))
}

struct Walker<'s> {
    schema: &'s Schema,
    path: Vec<String>,
}

#[derive(PartialEq)]
enum Kind {
    Map,
    Seq,
    Scalar,
    Empty,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Object(_) => Kind::Map,
        Value::Array(_) => Kind::Seq,
        Value::Null => Kind::Empty,
        _ => Kind::Scalar,
    }
}

fn missing_or_null(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

fn empty_map(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        _ => false,
    }
}

/// The text kyaml compares for a scalar node (`yaml.Node.Value`); non-scalars have none.
pub(crate) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => String::new(),
    }
}

impl<'s> Walker<'s> {
    fn path(&self) -> String {
        if self.path.is_empty() {
            "<root>".into()
        } else {
            self.path.join(".")
        }
    }

    fn walk(
        &mut self,
        dest: Option<Value>,
        origin: Option<Value>,
        schema: Option<SchemaRef<'s>>,
    ) -> Result<Walked, PatchError> {
        let schema = schema.or_else(|| {
            [&dest, &origin]
                .into_iter()
                .flatten()
                .filter(|v| v.is_object())
                .find_map(|v| self.schema.for_object(v))
        });
        if origin.is_none()
            && let Some(mut d) = dest
        {
            if !d.is_null() {
                self.untouched(&mut d, schema)?;
                return Ok(Walked {
                    value: Some(d),
                    is_dest: true,
                });
            }
            return self.walk_map(Some(d), None, schema);
        }
        let kind = [&dest, &origin]
            .into_iter()
            .flatten()
            .map(kind_of)
            .find(|k| *k != Kind::Empty)
            .unwrap_or(Kind::Empty);
        for v in [&dest, &origin].into_iter().flatten() {
            let k = kind_of(v);
            if k != Kind::Empty && k != kind && kind != Kind::Empty {
                return Err(PatchError::KindMismatch { path: self.path() });
            }
        }
        match kind {
            Kind::Map | Kind::Empty => self.walk_map(dest, origin, schema),
            Kind::Seq if schema.is_some_and(|s| s.is_associative()) => {
                self.walk_assoc(dest, origin, schema.expect("checked"))
            }
            Kind::Seq | Kind::Scalar => {
                let is_dest = origin.is_none();
                Ok(Walked {
                    value: origin.or(dest),
                    is_dest,
                })
            }
        }
    }

    /// A subtree the patch does not reach. kyaml still walks it, and that only matters for
    /// merge lists (it de-duplicates keys, drops null and empty elements, reorders some
    /// multi-key lists); lists already in a form it leaves alone are only descended into,
    /// in place, and the rest goes through the full walk.
    fn untouched(
        &mut self,
        v: &mut Value,
        schema: Option<SchemaRef<'s>>,
    ) -> Result<(), PatchError> {
        match v {
            Value::Object(m) => {
                for (name, child) in m.iter_mut() {
                    if child.is_null() || !(child.is_object() || child.is_array()) {
                        continue;
                    }
                    let s = schema.and_then(|s| s.field(name)).or_else(|| {
                        child
                            .is_object()
                            .then(|| self.schema.for_object(child))
                            .flatten()
                    });
                    self.path.push(name.clone());
                    self.untouched(child, s)?;
                    self.path.pop();
                }
                Ok(())
            }
            Value::Array(items) => {
                let Some(s) = schema.filter(|s| s.is_associative()) else {
                    return Ok(());
                };
                if !is_stable_merge_list(items, s.merge_keys()) {
                    let list = std::mem::take(v);
                    let walked = self.walk_assoc(Some(list), None, s)?;
                    *v = walked.value.unwrap_or(Value::Null);
                    return Ok(());
                }
                let elem = s.elements();
                for item in items.iter_mut() {
                    let es = elem.or_else(|| {
                        item.is_object()
                            .then(|| self.schema.for_object(item))
                            .flatten()
                    });
                    self.untouched(item, es)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn walk_map(
        &mut self,
        dest: Option<Value>,
        mut origin: Option<Value>,
        schema: Option<SchemaRef<'s>>,
    ) -> Result<Walked, PatchError> {
        let (node, is_dest) = if missing_or_null(dest.as_ref()) {
            if map_directive(origin.as_mut()).ok() == Some(Directive::Delete) {
                return Ok(Walked::clear());
            }
            (origin.clone(), false)
        } else {
            if matches!(origin, Some(Value::Null)) {
                return Ok(Walked::clear());
            }
            match map_directive(origin.as_mut()).map_err(|v| self.unknown(v))? {
                Directive::Delete => return Ok(Walked::clear()),
                Directive::Replace => (origin.clone(), false),
                Directive::Merge => (dest, true),
            }
        };
        let Some(Value::Object(mut node)) = node else {
            return Ok(Walked {
                value: node,
                is_dest,
            });
        };
        // When the walked node is the patch itself, kyaml walks the patch against itself.
        let origin = match origin {
            Some(Value::Object(m)) => Some(if is_dest { m } else { node.clone() }),
            _ => None,
        };
        let mut names: Vec<String> = node.keys().cloned().collect();
        if let Some(o) = &origin {
            names.extend(o.keys().cloned());
        }
        names.sort();
        names.dedup();
        for name in names {
            let o = origin.as_ref().and_then(|o| o.get(&name).cloned());
            if o.is_none() && matches!(node.get(&name), Some(Value::Null)) {
                continue; // kyaml keeps an explicit null the patch does not mention
            }
            // The field's old value is replaced by the walk's result either way: move it out.
            let d = node.get_mut(&name).map(std::mem::take);
            let child = schema.and_then(|s| s.field(&name));
            self.path.push(name.clone());
            let r = self.walk(d, o, child)?;
            self.path.pop();
            set_field(&mut node, &name, r.value);
        }
        Ok(Walked {
            value: Some(Value::Object(node)),
            is_dest,
        })
    }

    fn unknown(&self, v: String) -> PatchError {
        PatchError::UnknownDirective {
            path: self.path(),
            value: v,
        }
    }

    fn walk_assoc(
        &mut self,
        dest: Option<Value>,
        mut origin: Option<Value>,
        schema: SchemaRef<'s>,
    ) -> Result<Walked, PatchError> {
        let (node, is_dest) = if missing_or_null(dest.as_ref()) {
            (origin.take(), false)
        } else if matches!(origin, Some(Value::Null)) {
            return Ok(Walked::clear());
        } else {
            match seq_directive(origin.as_mut()).map_err(|v| self.unknown(v))? {
                Directive::Delete => return Ok(Walked::clear()),
                Directive::Replace => (origin.take(), false),
                Directive::Merge => (dest, true),
            }
        };
        let Some(Value::Array(node)) = node else {
            return Ok(Walked {
                value: node,
                is_dest,
            });
        };
        // When the walked node is the patch itself, kyaml merges the patch with itself; the
        // patch side then adds nothing, so only the node is kept (`aliased`).
        let origin: Option<Vec<Value>> = match origin {
            Some(Value::Array(a)) if is_dest => Some(a),
            _ => None,
        };
        let aliased = !is_dest;
        let keys: Vec<String> = schema.merge_keys().to_vec();
        let mut values = element_values(origin.as_ref(), &node, &keys);
        let result = if !values.is_empty() || !keys.is_empty() {
            self.set_elements(&mut values, &keys, node, origin, aliased, schema)?
        } else {
            let mut prim: Vec<Vec<String>> = Vec::new();
            let mut seen = HashSet::new();
            for v in origin.iter().flatten().chain(node.iter()) {
                let t = scalar_text(v);
                if seen.insert(t.clone()) {
                    prim.push(vec![t]);
                }
            }
            self.set_elements(&mut prim, &[String::new()], node, origin, aliased, schema)?
        };
        Ok(Walked {
            value: result,
            is_dest,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn set_elements(
        &mut self,
        values_list: &mut [Vec<String>],
        keys: &[String],
        mut dest: Vec<Value>,
        origin: Option<Vec<Value>>,
        aliased: bool,
        schema: SchemaRef<'s>,
    ) -> Result<Option<Value>, PatchError> {
        let elem_schema = schema.elements();
        let mut items: Vec<Value> = Vec::new();
        if keys.len() > 1 {
            merge_values(values_list);
        }
        let used = used_keys(values_list, keys);
        let mut valid_keys: Vec<String> = Vec::new();
        for values in values_list.iter() {
            if values.is_empty() {
                continue;
            }
            let (vk, vv) = validate_keys(&used, values, keys);
            valid_keys.clone_from(&vk);
            let (lk, lv) = validate_keys(&used_keys(std::slice::from_ref(&vv), &vk), &vv, &vk);
            let di = find_element(&dest, &lk, &lv);
            let oi = if aliased {
                None
            } else {
                origin.as_ref().and_then(|o| find_element(o, &lk, &lv))
            };
            let o = oi.and_then(|i| origin.as_ref().map(|o| o[i].clone()));
            // An element the patch does not touch comes back as the walk's result: move it.
            let (d, taken) = match di {
                Some(i) if o.is_none() && !aliased => (Some(std::mem::take(&mut dest[i])), true),
                Some(i) => (Some(dest[i].clone()), false),
                None => (None, false),
            };
            let o = if aliased { d.clone() } else { o };
            self.path.push(format!("[{}]", vv.join(",")));
            let walked = self.walk(d, o, elem_schema)?;
            self.path.pop();
            let mut val = walked.value;
            if let Some(i) = di {
                if walked.is_dest
                    && let Some(v) = &val
                {
                    dest[i] = v.clone();
                } else if taken {
                    // Only a null element walks to something other than itself.
                    dest[i] = Value::Null;
                }
            }
            let mut exit = false;
            for (j, key) in vk.iter().enumerate() {
                if empty_map(val.as_ref()) {
                    element_setter(&mut dest, None, &vk, &vv)?;
                    exit = true;
                } else if let (false, Some(Value::Object(m))) = (key.is_empty(), val.as_mut())
                    && !m.contains_key(key)
                    && !vv[j].is_empty()
                {
                    m.insert(key.clone(), Value::String(vv[j].clone()));
                    if walked.is_dest
                        && let Some(i) = di
                    {
                        dest[i] = Value::Object(m.clone());
                    }
                }
            }
            if exit {
                continue;
            }
            element_setter(&mut items, val, &vk, &vv)?;
        }
        if !values_list.is_empty() {
            append_list(&mut items, dest, &valid_keys)?;
            return Ok(Some(Value::Array(items)));
        }
        Ok(Some(Value::Array(dest)))
    }
}

fn set_field(node: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    match value {
        None | Some(Value::Null) => {
            node.shift_remove(name);
        }
        Some(v) => {
            node.insert(name.to_string(), v);
        }
    }
}

/// Reads and removes a map's `$patch`; `Err(value)` for an unknown directive.
fn map_directive(patch: Option<&mut Value>) -> Result<Directive, String> {
    let Some(Value::Object(m)) = patch else {
        return Ok(Directive::Merge);
    };
    let Some(v) = m.get(DIRECTIVE) else {
        return Ok(Directive::Merge);
    };
    let d = parse_directive(v)?;
    m.shift_remove(DIRECTIVE);
    Ok(d)
}

fn parse_directive(v: &Value) -> Result<Directive, String> {
    match v.as_str() {
        Some("merge") => Ok(Directive::Merge),
        Some("replace") => Ok(Directive::Replace),
        Some("delete") => Ok(Directive::Delete),
        _ => Err(scalar_text(v)),
    }
}

/// A list directive is an element `{$patch: X}` with no other field; kyaml then removes every
/// element with that `$patch` value (and, as its ElementSetter does, null/empty elements).
fn seq_directive(patch: Option<&mut Value>) -> Result<Directive, String> {
    let Some(Value::Array(list)) = patch else {
        return Ok(Directive::Merge);
    };
    let Some(elem) = list
        .iter()
        .find_map(|e| e.as_object().filter(|m| m.contains_key(DIRECTIVE)))
    else {
        return Ok(Directive::Merge);
    };
    if elem.len() > 1 {
        return Ok(Directive::Merge);
    }
    let v = elem[DIRECTIVE].clone();
    let d = parse_directive(&v)?;
    element_setter(list, None, &[DIRECTIVE.to_string()], &[scalar_text(&v)])
        .map_err(|_| String::new())?;
    Ok(d)
}

/// kyaml's `ElementValuesList` over the patch then the target (prepend order), de-duplicated.
fn element_values(
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
fn is_stable_merge_list(items: &[Value], keys: &[String]) -> bool {
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

fn merge_values(list: &mut [Vec<String>]) {
    for i in 0..list.len() {
        for j in 0..list.len() {
            if let Some(m) = match_values(&list[i], &list[j]) {
                list[i] = m.clone();
                list[j] = m;
            }
        }
    }
}

fn match_values(a: &[String], b: &[String]) -> Option<Vec<String>> {
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
fn used_keys(all: &[Vec<String>], keys: &[String]) -> Vec<bool> {
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
fn validate_keys(used: &[bool], values: &[String], keys: &[String]) -> (Vec<String>, Vec<String>) {
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
fn field_matches(elem: &Value, key: &str, want: &str) -> bool {
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
fn text_eq(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        Value::Null => want == "null",
        Value::Number(n) => n.to_string() == want,
        Value::Object(_) | Value::Array(_) => want.is_empty(),
    }
}

/// kyaml `ElementMatcher` (`ElementList`): the first element matching all key/value pairs.
fn find_element(list: &[Value], keys: &[String], values: &[String]) -> Option<usize> {
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
fn element_setter(
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
fn append_list(dst: &mut Vec<Value>, src: Vec<Value>, keys: &[String]) -> Result<(), PatchError> {
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
