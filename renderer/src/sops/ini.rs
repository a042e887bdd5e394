//! INI files (sops' INI store, go-ini underneath): sections of `key = value`, the metadata
//! flattened into a `[sops]` section. Decryption rewrites values in place, so the layout go-ini
//! gave the file (aligned `=`, `;` comments) stays as `sops -d` prints it.

use serde_json::{Map, Value};

use super::cipher::{self, Plain};
use super::metadata::{self, Metadata};
use super::{AgeKeys, SopsError, tree};

/// go-ini's name for keys before any `[section]`.
const DEFAULT_SECTION: &str = "DEFAULT";

enum Line {
    Section(String),
    Comment {
        lead: String,
        text: String,
    },
    Pair {
        key: String,
        sep: String,
        value: String,
    },
    Other,
}

fn unquote(v: &str) -> String {
    for q in ["\"\"\"", "`", "\""] {
        if v.len() >= 2 * q.len()
            && let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q))
        {
            return inner.to_string();
        }
    }
    v.to_string()
}

/// go-ini's quoting when it writes a value.
fn quote(v: &str) -> String {
    if v.contains(['\n', '`']) {
        format!("\"\"\"{v}\"\"\"")
    } else if v.contains(['#', ';']) {
        format!("`{v}`")
    } else if v.trim() != v {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn parse(text: &str) -> Vec<Line> {
    text.split('\n')
        .map(|line| {
            let t = line.trim();
            if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                Line::Section(name.trim().to_string())
            } else if t.starts_with(';') || t.starts_with('#') {
                let body = t.trim_start_matches([';', '#', ' ']);
                let lead = t[..t.len() - body.len()].to_string();
                Line::Comment {
                    lead,
                    text: body.to_string(),
                }
            } else if let Some(i) = line.find(['=', ':']).filter(|_| !t.is_empty()) {
                let rest = &line[i + 1..];
                let value = rest.trim_start();
                Line::Pair {
                    key: line[..i].trim().to_string(),
                    sep: line[..i + 1 + (rest.len() - value.len())].to_string(),
                    value: unquote(value.trim_end()),
                }
            } else {
                Line::Other
            }
        })
        .collect()
}

pub(crate) fn is_encrypted(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[sops]")
}

pub(crate) fn decrypt(
    file: &str,
    bytes: &[u8],
    keys: &AgeKeys,
) -> Result<Option<Vec<u8>>, SopsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SopsError::malformed(file, "not UTF-8"))?;
    if !is_encrypted(text) {
        return Ok(None);
    }
    let lines = parse(text);
    let mut section = DEFAULT_SECTION.to_string();
    let mut meta_items = Vec::new();
    let mut doc = Map::new();
    for line in &lines {
        match line {
            Line::Section(name) => section = name.clone(),
            Line::Pair { key, value, .. } if section == "sops" => {
                meta_items.push((key.clone(), value.replace("\\n", "\n")));
            }
            Line::Pair { key, value, .. } => {
                let entry = doc
                    .entry(section.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(key.clone(), Value::String(value.clone()));
                }
            }
            _ => {}
        }
    }
    if meta_items.is_empty() {
        return Ok(None);
    }
    let meta = Metadata::from_value(file, &metadata::unflatten(file, &meta_items)?)?;
    let key = keys.data_key(file, &meta)?;
    let mut doc = Value::Object(doc);
    tree::decrypt(file, std::slice::from_mut(&mut doc), &key, &meta)?;

    let mut sections: Vec<String> = vec![String::new(), DEFAULT_SECTION.to_string()];
    sections.extend(doc.as_object().into_iter().flat_map(|m| m.keys().cloned()));
    let mut out: Vec<String> = Vec::new();
    let mut section = DEFAULT_SECTION.to_string();
    let raw: Vec<&str> = text.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        match line {
            Line::Section(name) => {
                section = name.clone();
                if section != "sops" {
                    out.push(raw[i].to_string());
                }
            }
            _ if section == "sops" => {}
            Line::Pair { key, sep, .. } => {
                let v = doc[section.as_str()][key.as_str()]
                    .as_str()
                    .unwrap_or_default();
                out.push(format!("{sep}{}", quote(v)));
            }
            Line::Comment { lead, text } if cipher::is_encrypted(text) => {
                let plain = sections.iter().find_map(|s| {
                    match cipher::decrypt(text, &key, &format!("{s}:")) {
                        Ok(Plain::Comment(c) | Plain::Str(c)) => Some(c),
                        _ => None,
                    }
                });
                out.push(format!("{lead}{}", plain.as_deref().unwrap_or(text)));
            }
            _ => out.push(raw[i].to_string()),
        }
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.push(String::new());
    Ok(Some(out.join("\n").into_bytes()))
}

pub(crate) fn encrypt(
    file: &str,
    plaintext: &[u8],
    meta: &mut Metadata,
    key: &[u8; 32],
) -> Result<Vec<u8>, SopsError> {
    let text = std::str::from_utf8(plaintext).map_err(|_| SopsError::encrypt(file, "not UTF-8"))?;
    let mut doc = Map::new();
    let mut section = DEFAULT_SECTION.to_string();
    for line in parse(text) {
        match line {
            Line::Section(name) => section = name,
            Line::Pair { key, value, .. } => {
                if let Value::Object(m) = doc
                    .entry(section.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    m.insert(key, Value::String(value));
                }
            }
            _ => {}
        }
    }
    let mut doc = Value::Object(doc);
    meta.mac = tree::encrypt(file, std::slice::from_mut(&mut doc), key, meta)?;
    let mut out = String::new();
    for (name, keys) in doc.as_object().into_iter().flatten() {
        out.push_str(&format!("[{name}]\n"));
        for (k, v) in keys.as_object().into_iter().flatten() {
            out.push_str(&format!("{k} = {}\n", v.as_str().unwrap_or_default()));
        }
        out.push('\n');
    }
    let mut flat = Vec::new();
    metadata::flatten("", &meta.to_value(), &mut flat);
    out.push_str("[sops]\n");
    for (k, v) in flat {
        out.push_str(&format!("{k} = {}\n", v.replace('\n', "\\n")));
    }
    Ok(out.into_bytes())
}
