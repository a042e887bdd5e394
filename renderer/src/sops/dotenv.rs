//! dotenv files (`KEY=VALUE` lines, `#` comments, metadata as flattened `sops_…` keys).

use serde_json::{Map, Value};

use super::cipher::{self, Plain};
use super::metadata::{self, Metadata};
use super::{AgeKeys, SopsError, tree};

const PREFIX: &str = "sops_";

enum Line {
    Comment(String),
    Pair(String, String),
}

fn parse(file: &str, text: &str) -> Result<Vec<Line>, SopsError> {
    let mut lines = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            lines.push(Line::Comment(c.to_string()));
        } else {
            let (k, v) = line.split_once('=').ok_or_else(|| {
                SopsError::malformed(file, format!("line {}: no '=' in a dotenv line", n + 1))
            })?;
            lines.push(Line::Pair(k.to_string(), v.replace("\\n", "\n")));
        }
    }
    Ok(lines)
}

pub(crate) fn is_encrypted(text: &str) -> bool {
    text.split('\n').any(|l| l.starts_with("sops_mac="))
}

/// The decrypted file as `sops -d` prints it, or `None` when it has no sops metadata.
pub(crate) fn decrypt(
    file: &str,
    bytes: &[u8],
    keys: &AgeKeys,
) -> Result<Option<Vec<u8>>, SopsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SopsError::malformed(file, "not UTF-8"))?;
    if !is_encrypted(text) {
        return Ok(None);
    }
    let lines = parse(file, text)?;
    let mut meta_items = Vec::new();
    let mut body = Vec::new();
    for line in lines {
        match line {
            Line::Pair(k, v) if k.starts_with(PREFIX) => {
                meta_items.push((k[PREFIX.len()..].to_string(), v));
            }
            other => body.push(other),
        }
    }
    let meta = Metadata::from_value(file, &metadata::unflatten(file, &meta_items)?)?;
    let key = keys.data_key(file, &meta)?;
    let mut map = Map::new();
    for line in &body {
        if let Line::Pair(k, v) = line {
            map.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let mut doc = Value::Object(map);
    tree::decrypt(file, std::slice::from_mut(&mut doc), &key, &meta)?;
    let mut out = String::new();
    for line in &body {
        match line {
            Line::Comment(c) => {
                // Comments are encrypted with the top-level path (":"); one that does not
                // decrypt was written in the clear, and sops keeps it as it is too.
                let shown = match cipher::decrypt(c, &key, ":") {
                    Ok(Plain::Comment(p) | Plain::Str(p)) if cipher::is_encrypted(c) => p,
                    _ => c.clone(),
                };
                out.push_str(&format!("#{shown}\n"));
            }
            Line::Pair(k, _) => {
                let v = match &doc[k.as_str()] {
                    Value::String(s) => s.replace('\n', "\\n"),
                    other => other.to_string(),
                };
                out.push_str(&format!("{k}={v}\n"));
            }
        }
    }
    Ok(Some(out.into_bytes()))
}

pub(crate) fn encrypt(
    file: &str,
    plaintext: &[u8],
    meta: &mut Metadata,
    key: &[u8; 32],
) -> Result<Vec<u8>, SopsError> {
    let text = std::str::from_utf8(plaintext).map_err(|_| SopsError::encrypt(file, "not UTF-8"))?;
    let lines = parse(file, text)?;
    let mut map = Map::new();
    for line in &lines {
        if let Line::Pair(k, v) = line {
            map.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let mut doc = Value::Object(map);
    meta.mac = tree::encrypt(file, std::slice::from_mut(&mut doc), key, meta)?;
    let mut out = String::new();
    for line in &lines {
        match line {
            Line::Comment(c) => {
                let enc = cipher::encrypt(&Plain::Comment(c.clone()), key, ":");
                out.push_str(&format!("#{enc}\n"));
            }
            Line::Pair(k, _) => {
                let v = doc[k.as_str()]
                    .as_str()
                    .unwrap_or_default()
                    .replace('\n', "\\n");
                out.push_str(&format!("{k}={v}\n"));
            }
        }
    }
    let mut flat = Vec::new();
    metadata::flatten("", &meta.to_value(), &mut flat);
    for (k, v) in flat {
        out.push_str(&format!("{PREFIX}{k}={}\n", v.replace('\n', "\\n")));
    }
    Ok(out.into_bytes())
}
