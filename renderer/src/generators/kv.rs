//! Key/value sources of a generator, as kustomize's api/kv reads them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{GeneratorArgs, GeneratorError, ReadFile};

/// Pairs in kustomize's order: env files, then literals, then files. Values are bytes because
/// a file may hold binary data (it then lands in `binaryData`).
pub(super) fn load_pairs(
    kind: &'static str,
    args: &GeneratorArgs,
    read: &mut ReadFile<'_>,
) -> Result<Vec<(String, Vec<u8>)>, GeneratorError> {
    let mut out = Vec::new();
    let read_err = |source| GeneratorError::Read {
        kind,
        name: args.name.clone(),
        source,
    };
    let envs = args
        .envs
        .iter()
        .chain((!args.env.is_empty()).then_some(&args.env));
    for path in envs {
        let bytes = read(path).map_err(read_err)?;
        let pairs = parse_env_file(&bytes).map_err(|line| GeneratorError::EnvUtf8 {
            kind,
            name: args.name.clone(),
            path: path.clone(),
            line,
        })?;
        out.extend(pairs.into_iter().map(|(k, v)| (k, v.into_bytes())));
    }
    for lit in &args.literals {
        let (k, v) = parse_literal(lit).ok_or_else(|| GeneratorError::Literal {
            kind,
            name: args.name.clone(),
            source_text: lit.clone(),
        })?;
        out.push((k, v.into_bytes()));
    }
    for src in &args.files {
        let (k, path) = parse_file_source(src).map_err(|message| GeneratorError::FileSource {
            kind,
            name: args.name.clone(),
            source_text: src.clone(),
            message,
        })?;
        out.push((k, read(&path).map_err(read_err)?));
    }
    Ok(out)
}

/// `key=value`; one pair of matching outer quotes (`"` or `'`) is removed from the value.
pub fn parse_literal(source: &str) -> Option<(String, String)> {
    let (k, v) = source.split_once('=')?;
    if k.is_empty() {
        return None;
    }
    let b = v.as_bytes();
    let v = if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        &v[1..v.len() - 1]
    } else {
        v
    };
    Some((k.to_string(), v.to_string()))
}

/// `key=path` or a bare `path` (key = its last path element). Errors are kustomize's texts.
pub fn parse_file_source(source: &str) -> Result<(String, String), String> {
    let n = source.matches('=').count();
    if n == 0 {
        return Ok((path_base(source), source.to_string()));
    }
    if n > 1 {
        return Err(format!(
            "source {source:?} key name or file path contains '='"
        ));
    }
    let (k, p) = source.split_once('=').expect("one '='");
    if k.is_empty() {
        return Err(format!(
            "missing key name for file path {p:?} in source {source:?}"
        ));
    }
    if p.is_empty() {
        return Err(format!(
            "missing file path for key name {k:?} in source {source:?}"
        ));
    }
    Ok((k.to_string(), p.to_string()))
}

/// Go's `path.Base`.
fn path_base(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() { ".".into() } else { "/".into() };
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// An env file as kustomize reads it: lines split at `\n` (a trailing `\r` dropped), a BOM
/// stripped from the first, leading whitespace trimmed, blank and `#` lines skipped,
/// `KEY=VALUE` split at the first `=` with the value kept verbatim (no unquoting), and a bare
/// `KEY` meaning an empty value; a line with an empty key is skipped. `Err(line)` (0-based) for a line that is not UTF-8.
pub fn parse_env_file(content: &[u8]) -> Result<Vec<(String, String)>, usize> {
    let mut out = Vec::new();
    let mut lines: Vec<&[u8]> = content.split(|b| *b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for (i, raw) in lines.into_iter().enumerate() {
        let mut line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(line).map_err(|_| i)?;
        if i == 0 {
            line = text.strip_prefix('\u{feff}').unwrap_or(text).as_bytes();
        }
        let text = std::str::from_utf8(line).map_err(|_| i)?.trim_start();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let (k, v) = text.split_once('=').unwrap_or((text, ""));
        if !k.is_empty() {
            out.push((k.to_string(), v.to_string()));
        }
    }
    Ok(out)
}

/// kustomize's `encodeBase64`: standard base64, and once it reaches 70 characters it is cut
/// into 70-character lines, each ending in `\n`.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let enc = STANDARD.encode(bytes);
    if enc.len() < LINE {
        return enc;
    }
    let mut out = String::with_capacity(enc.len() + enc.len() / LINE + 1);
    for chunk in enc.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        out.push('\n');
    }
    out
}
