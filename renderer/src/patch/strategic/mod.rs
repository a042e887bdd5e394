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

mod lists;

use lists::{
    append_list, element_setter, element_values, find_element, is_stable_merge_list, merge_values,
    used_keys, validate_keys,
};

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
