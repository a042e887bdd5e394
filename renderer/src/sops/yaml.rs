//! YAML files. Decryption rewrites the encrypted file's text in place (values replaced,
//! the `sops` block dropped) rather than re-printing it, so that:
//! - for rendering, every line keeps its number: `explain` points at the encrypted file;
//! - for `sops -d` output, the layout sops gave the file (go-yaml v3, indent 4) is kept and
//!   only scalars are printed, in go-yaml's style.

use serde_json::Value;

use super::cipher::{self, Plain};
use super::metadata::Metadata;
use super::{AgeKeys, SopsError, tree};
use crate::yaml::{Document, parse_documents, scalar};

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    /// Same line numbers as the encrypted file; values as JSON-style double-quoted scalars.
    KeepLines,
    /// What `sops -d` prints.
    Sops,
}

pub(crate) fn looks_encrypted(text: &str) -> bool {
    text.contains("mac:")
        && (text.starts_with("sops:") || text.contains("\nsops:") || text.contains("\"sops\""))
}

fn parse(file: &str, text: &str) -> Result<Vec<Document>, SopsError> {
    parse_documents(text).map_err(|e| {
        SopsError::malformed(
            file,
            format!("line {}, column {}: {}", e.line, e.col, e.message),
        )
    })
}

pub(crate) fn decrypt(
    file: &str,
    bytes: &[u8],
    keys: &AgeKeys,
    mode: Mode,
) -> Result<Option<Vec<u8>>, SopsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SopsError::malformed(file, "not UTF-8"))?;
    if !looks_encrypted(text) {
        return Ok(None);
    }
    let docs = parse(file, text)?;
    let Some(meta_value) = docs
        .iter()
        .find_map(|d| d.value.get("sops").filter(|m| m.get("mac").is_some()))
    else {
        return Ok(None);
    };
    let meta = Metadata::from_value(file, meta_value)?;
    let key = keys.data_key(file, &meta)?;
    let mut values: Vec<Value> = docs
        .iter()
        .map(|d| {
            let mut v = d.value.clone();
            if let Some(m) = v.as_object_mut() {
                m.shift_remove("sops");
            }
            v
        })
        .collect();
    let changes = tree::decrypt(file, &mut values, &key, &meta)?;

    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    for change in &changes {
        let Some(pos) = docs[change.doc].positions.get(&change.pointer) else {
            continue;
        };
        let idx = (pos.line as usize).saturating_sub(1);
        let Some(line) = lines.get(idx) else { continue };
        let start = line
            .char_indices()
            .nth((pos.col as usize).saturating_sub(1))
            .map_or(line.len(), |(i, _)| i);
        let rest = &line[start..];
        let len = if rest.starts_with("ENC[") {
            rest.find(']').map_or(rest.len(), |i| i + 1)
        } else {
            // An empty value: sops writes `""`, which stays as it is.
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let shown = match mode {
            Mode::KeepLines => keep_lines_scalar(&change.plain),
            Mode::Sops => go_yaml_scalar(&change.plain, indent),
        };
        lines[idx] = format!("{}{}{}", &line[..start], shown, &rest[len..]);
    }
    let ends_with_newline = text.ends_with('\n');
    drop_sops_blocks(&mut lines, mode);
    if mode == Mode::Sops && ends_with_newline {
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines.push(String::new());
    }
    if mode == Mode::Sops {
        decrypt_comments(&mut lines, &key, &values);
    }
    Ok(Some(lines.join("\n").into_bytes()))
}

/// Removes each top-level `sops:` entry (blanking it in [`Mode::KeepLines`]).
fn drop_sops_blocks(lines: &mut Vec<String>, mode: Mode) {
    let mut out = Vec::with_capacity(lines.len());
    let mut in_block = false;
    for line in lines.drain(..) {
        let top_level = line.starts_with(|c: char| !c.is_whitespace());
        if line.starts_with("sops:") {
            in_block = true;
        } else if in_block && top_level {
            in_block = false;
        }
        if in_block {
            if mode == Mode::KeepLines {
                out.push(String::new());
            }
        } else {
            out.push(line);
        }
    }
    *lines = out;
}

/// sops encrypts comments too, with the path of the mapping they sit in as additional data.
/// Comments carry no path in the parsed tree, so each candidate path is tried: a wrong one
/// fails authentication, it cannot decrypt to something else.
fn decrypt_comments(lines: &mut [String], key: &[u8; 32], docs: &[Value]) {
    let mut paths = vec![String::new()];
    for d in docs {
        collect_paths(d, &mut Vec::new(), &mut paths);
    }
    for line in lines.iter_mut() {
        let trimmed = line.trim_start();
        let Some(enc) = trimmed.strip_prefix('#') else {
            continue;
        };
        if !cipher::is_encrypted(enc) {
            continue;
        }
        let lead = line.len() - trimmed.len();
        for p in &paths {
            let aad = format!("{p}:");
            if let Ok(Plain::Comment(c) | Plain::Str(c)) = cipher::decrypt(enc, key, &aad) {
                *line = format!("{}#{c}", &line[..lead]);
                break;
            }
        }
    }
}

fn collect_paths(v: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if !path.is_empty() {
                out.push(path.join(":"));
            }
            for (k, v) in m {
                path.push(k.clone());
                collect_paths(v, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            if !path.is_empty() {
                out.push(path.join(":"));
            }
            a.iter().for_each(|v| collect_paths(v, path, out));
        }
        _ => {}
    }
}

/// One line, read back as the same value by any YAML parser.
fn keep_lines_scalar(p: &Plain) -> String {
    match p {
        Plain::Str(s) | Plain::Comment(s) => serde_json::to_string(s).expect("strings serialize"),
        other => String::from_utf8_lossy(&other.to_bytes()).to_lowercase(),
    }
}

/// A scalar as go-yaml v3 prints it for sops (`yaml.Node.Encode`, indent 4).
fn go_yaml_scalar(p: &Plain, indent: usize) -> String {
    let s = match p {
        Plain::Str(s) | Plain::Comment(s) => s,
        Plain::Bool(b) => return b.to_string(),
        other => return String::from_utf8_lossy(&other.to_bytes()).into_owned(),
    };
    if s.contains('\n') && !s.chars().any(special) {
        return literal(s, indent + 4);
    }
    let resolves_elsewhere = !matches!(scalar::resolve_plain(s), Value::String(_))
        || scalar::parse_timestamp(s).is_some()
        || is_old_bool(s)
        || is_base60_float(s);
    if resolves_elsewhere || s.chars().any(special) || s.contains('\n') {
        return double_quoted(s);
    }
    if plain_allowed(s) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn is_base60_float(s: &str) -> bool {
    let t = s.trim_start_matches(['+', '-']);
    t.contains(':')
        && t.split(':').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_digit() || c == '_' || c == '.')
        })
        && t.starts_with(|c: char| c.is_ascii_digit())
}

/// Characters libyaml will not write plain or single-quoted.
fn special(c: char) -> bool {
    let u = c as u32;
    !(c == '\n'
        || (0x20..=0x7e).contains(&u)
        || u == 0x85
        || (0xa0..=0xd7ff).contains(&u)
        || (0xe000..=0xfffd).contains(&u) && u != 0xfeff
        || (0x10000..=0x10ffff).contains(&u))
}

/// libyaml's `yaml_emitter_analyze_scalar` for a plain scalar in block context.
fn plain_allowed(s: &str) -> bool {
    if s.is_empty() || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') {
        return false;
    }
    let first = s.chars().next().expect("non-empty");
    let second = s.chars().nth(1);
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) && second.is_none_or(|c| c == ' ') {
        return false;
    }
    if s.ends_with(':') || s.contains(": ") || s.contains(" #") {
        return false;
    }
    true
}

fn literal(s: &str, indent: usize) -> String {
    let chomp = if !s.ends_with('\n') {
        "-"
    } else if s.ends_with("\n\n") || s == "\n" {
        "+"
    } else {
        ""
    };
    let hint = if s.starts_with(' ') || s.starts_with('\n') {
        "4"
    } else {
        ""
    };
    let pad = " ".repeat(indent);
    let body = s.strip_suffix('\n').unwrap_or(s);
    let mut out = format!("|{hint}{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if special(c) => {
                let u = c as u32;
                if u <= 0xff {
                    out.push_str(&format!("\\x{u:02X}"));
                } else if u <= 0xffff {
                    out.push_str(&format!("\\u{u:04X}"));
                } else {
                    out.push_str(&format!("\\U{u:08X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Encrypts a YAML stream. Keys come out sorted (this project's YAML printer sorts them), so
/// the values are walked, and the MAC computed, in that order.
pub(crate) fn encrypt(
    file: &str,
    plaintext: &[u8],
    meta: &mut Metadata,
    key: &[u8; 32],
) -> Result<Vec<u8>, SopsError> {
    let text = std::str::from_utf8(plaintext).map_err(|_| SopsError::encrypt(file, "not UTF-8"))?;
    let mut values: Vec<Value> = parse(file, text)?
        .into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .map(sorted)
        .collect();
    if values.is_empty() || values.iter().any(|v| !v.is_object()) {
        return Err(SopsError::Encrypt {
            file: file.into(),
            message: "SOPS encrypts YAML documents that are mappings".into(),
        });
    }
    meta.mac = tree::encrypt(file, &mut values, key, meta)?;
    if let Some(m) = values[0].as_object_mut() {
        m.insert("sops".into(), meta.to_value());
    }
    let values: Vec<Value> = values.into_iter().map(sorted).collect();
    Ok(crate::yaml::to_yaml_stream(values.iter()).into_bytes())
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| crate::yaml::key_cmp(&a.0, &b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_print_as_go_yaml_does() {
        let s = |t: &str| go_yaml_scalar(&Plain::Str(t.into()), 4);
        assert_eq!(s("hunter2"), "hunter2");
        assert_eq!(s("123"), "\"123\"");
        assert_eq!(s("true"), "\"true\"");
        assert_eq!(s("yes"), "\"yes\"");
        assert_eq!(s("a: b"), "'a: b'");
        assert_eq!(s("- x"), "'- x'");
        assert_eq!(s("tab\there"), "\"tab\\there\"");
        assert_eq!(s("a\nb"), "|-\n        a\n        b");
        assert_eq!(s("a\nb\n"), "|\n        a\n        b");
    }
}
