//! JSON and binary files: the sops JSON store, printed as sops prints it (Go's
//! `encoding/json` escaping, tab indentation, a final newline).

use serde_json::{Map, Value};

use super::metadata::Metadata;
use super::{AgeKeys, SopsError, cipher, keys, tree};

pub(crate) fn parse(file: &str, bytes: &[u8]) -> Result<Value, SopsError> {
    serde_json::from_slice(bytes).map_err(|e| {
        SopsError::malformed(
            file,
            format!("line {}, column {}: {e}", e.line(), e.column()),
        )
    })
}

/// `Some(metadata)` when `value` is a JSON object carrying a sops block with a MAC.
pub(crate) fn metadata(file: &str, value: &Value) -> Result<Option<Metadata>, SopsError> {
    match value.get("sops") {
        Some(m) if m.get("mac").is_some() => Metadata::from_value(file, m).map(Some),
        _ => Ok(None),
    }
}

/// The decrypted document (without its `sops` block), or `None` when it is not a SOPS file.
pub(crate) fn decrypt(
    file: &str,
    bytes: &[u8],
    keys: &AgeKeys,
) -> Result<Option<Value>, SopsError> {
    let mut value = parse(file, bytes)?;
    let Some(meta) = metadata(file, &value)? else {
        return Ok(None);
    };
    value.as_object_mut().map(|m| m.shift_remove("sops"));
    let key = keys.data_key(file, &meta)?;
    tree::decrypt(file, std::slice::from_mut(&mut value), &key, &meta)?;
    Ok(Some(value))
}

/// Encrypts `value` (a JSON object) and adds the sops block.
pub(crate) fn encrypt(
    file: &str,
    mut value: Value,
    meta: &mut Metadata,
    data_key: &[u8; 32],
) -> Result<Value, SopsError> {
    if !value.is_object() {
        return Err(SopsError::Encrypt {
            file: file.into(),
            message: "SOPS encrypts JSON objects only".into(),
        });
    }
    meta.mac = tree::encrypt(file, std::slice::from_mut(&mut value), data_key, meta)?;
    value
        .as_object_mut()
        .expect("checked above")
        .insert("sops".into(), meta.to_value());
    Ok(value)
}

/// The binary store: the whole file is one string under `data`.
pub(crate) fn encrypt_binary(
    file: &str,
    plaintext: &[u8],
    meta: &mut Metadata,
    data_key: &[u8; 32],
) -> Result<Vec<u8>, SopsError> {
    let text = String::from_utf8(plaintext.to_vec()).map_err(|_| SopsError::Encrypt {
        file: file.into(),
        message:
            "binary files must be UTF-8 for sops' binary store (it keeps them as a JSON string)"
                .into(),
    })?;
    let mut m = Map::new();
    m.insert("data".into(), Value::String(text));
    let value = encrypt(file, Value::Object(m), meta, data_key)?;
    Ok(to_go_json(&value).into_bytes())
}

pub(crate) fn binary_plaintext(file: &str, value: &Value) -> Result<Vec<u8>, SopsError> {
    match value.get("data") {
        Some(Value::String(s)) => Ok(s.clone().into_bytes()),
        _ => Err(SopsError::malformed(
            file,
            "binary SOPS file without a string `data`",
        )),
    }
}

/// `json.Indent(json.Marshal(v), "", "\t")` followed by a newline, as `sops -d` prints JSON.
pub fn to_go_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, 0, &mut out);
    out.push('\n');
    out
}

fn indent(level: usize, out: &mut String) {
    out.push('\n');
    for _ in 0..level {
        out.push('\t');
    }
}

fn write_value(v: &Value, level: usize, out: &mut String) {
    match v {
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(level + 1, out);
                crate::generators::hash::go_string(k, out);
                out.push_str(": ");
                write_value(v, level + 1, out);
            }
            indent(level, out);
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(level + 1, out);
                write_value(v, level + 1, out);
            }
            indent(level, out);
            out.push(']');
        }
        Value::String(s) => crate::generators::hash::go_string(s, out),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&go_json_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

/// Go's `encoding/json` float format: `%f` style between 1e-6 and 1e21, else exponent.
fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Go writes e-07 / e+21: sign always, at least two exponent digits.
        let (mant, exp) = s.split_once('e').expect("exponent form");
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        format!("{mant}e{sign}{digits:0>2}")
    } else {
        cipher::go_format_f(f)
    }
}

/// A new metadata block for `recipients`, with the data key sealed for each.
pub(crate) fn new_metadata(
    file: &str,
    data_key: &[u8; 32],
    recipients: &[String],
    rules: &super::Rules,
    now: &str,
) -> Result<Metadata, SopsError> {
    Ok(Metadata {
        age: keys::seal(file, data_key, recipients)?,
        others: Vec::new(),
        last_modified: now.to_string(),
        mac: String::new(),
        rules: rules.clone(),
        version: super::SOPS_FORMAT_VERSION.to_string(),
    })
}
