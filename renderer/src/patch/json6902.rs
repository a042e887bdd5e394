//! JSON patch (RFC 6902) as kustomize applies it: evanphx/json-patch v4, quirks included.
//!
//! - a path's first segment is never looked up: `a/b` addresses root key `b` like `/b`;
//! - negative array indices count from the end;
//! - `replace` of a missing *object* key adds it (only array indices are checked);
//! - `add` at index `len` appends, past it fails.

use serde_json::Value;

use super::PatchError;

fn err(index: usize, op: &str, message: impl Into<String>) -> PatchError {
    PatchError::Json6902 {
        index,
        op: op.to_string(),
        message: message.into(),
    }
}

/// Applies a decoded JSON patch (the list of operations) to `doc`.
pub fn apply(mut doc: Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| err(0, "", "a JSON patch must be a list of operations"))?;
    for (i, op) in ops.iter().enumerate() {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = || -> Result<String, PatchError> {
            op.get("path")
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| err(i, kind, "operation missing path field"))
        };
        let from = || -> Result<String, PatchError> {
            op.get("from")
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| err(i, kind, "operation missing from field"))
        };
        let value = || op.get("value").cloned().unwrap_or(Value::Null);
        match kind {
            "add" => {
                let p = path()?;
                let (con, key) = find(&mut doc, &p).ok_or_else(|| missing(i, kind, &p))?;
                add(con, &key, value()).map_err(|m| err(i, kind, format!("path {p:?}: {m}")))?;
            }
            "remove" => {
                let p = path()?;
                let (con, key) = find(&mut doc, &p).ok_or_else(|| missing(i, kind, &p))?;
                remove(con, &key).map_err(|m| err(i, kind, format!("path {p:?}: {m}")))?;
            }
            "replace" => {
                let p = path()?;
                if p.is_empty() {
                    let v = value();
                    if !v.is_object() && !v.is_array() {
                        return Err(err(
                            i,
                            kind,
                            "replace operation value must be object or array",
                        ));
                    }
                    doc = v;
                    continue;
                }
                let (con, key) = find(&mut doc, &p).ok_or_else(|| missing(i, kind, &p))?;
                if let Value::Array(_) = con {
                    get(con, &key)
                        .map_err(|m| err(i, kind, format!("doc is missing key {p:?}: {m}")))?;
                }
                set(con, &key, value()).map_err(|m| err(i, kind, format!("path {p:?}: {m}")))?;
            }
            "move" | "copy" => {
                let f = from()?;
                let (con, key) = find(&mut doc, &f).ok_or_else(|| missing(i, kind, &f))?;
                let v = get(con, &key)
                    .map_err(|m| err(i, kind, format!("from {f:?}: {m}")))?
                    .cloned()
                    .unwrap_or(Value::Null);
                if kind == "move" {
                    remove(con, &key).map_err(|m| err(i, kind, format!("from {f:?}: {m}")))?;
                }
                let p = path()?;
                let (con, key) = find(&mut doc, &p).ok_or_else(|| missing(i, kind, &p))?;
                add(con, &key, v).map_err(|m| err(i, kind, format!("path {p:?}: {m}")))?;
            }
            "test" => {
                let p = path()?;
                let ok = if p.is_empty() {
                    doc == value()
                } else {
                    let (con, key) = find(&mut doc, &p).ok_or_else(|| missing(i, kind, &p))?;
                    match get(con, &key).map_err(|m| err(i, kind, format!("path {p:?}: {m}")))? {
                        // evanphx dereferences the missing value and kubectl panics.
                        None => match op.get("value") {
                            Some(v) => v.is_null(),
                            None => {
                                return Err(err(i, kind, "test of a missing key needs a value"));
                            }
                        },
                        Some(v) => *v == value(),
                    }
                };
                if !ok {
                    return Err(err(i, kind, format!("testing value {p} failed")));
                }
            }
            other => return Err(err(i, other, format!("Unexpected kind: {other}"))),
        }
    }
    Ok(doc)
}

fn missing(i: usize, kind: &str, p: &str) -> PatchError {
    err(i, kind, format!("doc is missing path: {p:?}"))
}

fn decode(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

/// evanphx `findObject`: the container holding the last segment, and that segment decoded.
fn find<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let split: Vec<&str> = path.split('/').collect();
    if split.len() < 2 {
        return None;
    }
    let mut cur = doc;
    for part in &split[1..split.len() - 1] {
        let key = decode(part);
        cur = match cur {
            Value::Object(m) => m.get_mut(&key).filter(|v| !v.is_null())?,
            Value::Array(a) => {
                let i = index(&key, a.len()).ok()?;
                a.get_mut(i).filter(|v| !v.is_null())?
            }
            _ => return None,
        };
        if !cur.is_object() && !cur.is_array() {
            return None;
        }
    }
    Some((cur, decode(split[split.len() - 1])))
}

/// An existing element index; negative counts from the end.
fn index(key: &str, len: usize) -> Result<usize, String> {
    let i: i64 = key
        .parse()
        .map_err(|_| format!("invalid array index {key:?}"))?;
    let len_i = len as i64;
    let j = if i < 0 { i + len_i } else { i };
    if i < -len_i || j >= len_i {
        return Err(format!("Unable to access invalid index: {i}"));
    }
    Ok(j as usize)
}

fn get<'a>(con: &'a Value, key: &str) -> Result<Option<&'a Value>, String> {
    match con {
        Value::Object(m) => Ok(m.get(key)),
        Value::Array(a) => Ok(Some(&a[index(key, a.len())?])),
        _ => Err("not a container".into()),
    }
}

fn set(con: &mut Value, key: &str, v: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), v);
            Ok(())
        }
        Value::Array(a) => {
            let i = index(key, a.len())?;
            a[i] = v;
            Ok(())
        }
        _ => Err("not a container".into()),
    }
}

fn add(con: &mut Value, key: &str, v: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), v);
            Ok(())
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(v);
                return Ok(());
            }
            let i: i64 = key
                .parse()
                .map_err(|_| format!("value was not a proper array index: '{key}'"))?;
            let size = a.len() as i64 + 1;
            if i >= size || i < -size {
                return Err(format!("Unable to access invalid index: {i}"));
            }
            let at = if i < 0 { i + size } else { i } as usize;
            a.insert(at, v);
            Ok(())
        }
        _ => Err("not a container".into()),
    }
}

fn remove(con: &mut Value, key: &str) -> Result<(), String> {
    match con {
        Value::Object(m) => match m.shift_remove(key) {
            Some(_) => Ok(()),
            None => Err(format!(
                "Unable to remove nonexistent key: {key}: missing value"
            )),
        },
        Value::Array(a) => {
            let i = index(key, a.len())?;
            a.remove(i);
            Ok(())
        }
        _ => Err("not a container".into()),
    }
}
