//! Plaintext Secrets and credentials in ConfigMaps and env values. Findings name keys and
//! kinds of credential, never a value.

use std::sync::OnceLock;

use base64::Engine as _;
use regex::Regex;
use renderer::RenderedObject;
use renderer::provenance::push_key;
use serde_json::Value;

use super::workloads::{containers, pod_specs};
use crate::finding::{Finding, describe};
use crate::rules::{CREDENTIALS, PLAINTEXT_SECRETS};

/// Shannon entropy (bits per character) above which a long token counts as a secret. Random
/// base64 of 32+ characters scores about 5; words, paths, URLs and hex hashes stay below.
const ENTROPY_BITS: f64 = 4.5;
/// Shortest token judged by entropy alone.
const ENTROPY_MIN_LEN: usize = 32;
/// Under a password-like key, a shorter value with this much entropy is already a credential.
const KEYWORD_ENTROPY_BITS: f64 = 3.0;
const KEYWORD_MIN_LEN: usize = 8;

/// Known token formats (as gitleaks and GitHub secret scanning know them).
fn detectors() -> &'static [(&'static str, Regex)] {
    static DETECTORS: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    DETECTORS.get_or_init(|| {
        [
            (
                "an AWS access key ID",
                r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
            ),
            (
                "a GitHub token",
                r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b",
            ),
            (
                "a GitHub fine-grained token",
                r"\bgithub_pat_[A-Za-z0-9_]{50,}\b",
            ),
            ("a Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
            (
                "a private key",
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
            ),
            (
                "a JSON Web Token",
                r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            ),
            ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
            (
                "a Stripe secret key",
                r"\b(?:sk|rk)_live_[0-9A-Za-z]{20,}\b",
            ),
        ]
        .into_iter()
        .map(|(name, re)| (name, Regex::new(re).expect("detector regex compiles")))
        .collect()
    })
}

fn keyword() -> &'static Regex {
    static KEYWORD: OnceLock<Regex> = OnceLock::new();
    KEYWORD.get_or_init(|| {
        Regex::new(r"(?i)(passw(or)?d|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)")
            .expect("keyword regex compiles")
    })
}

/// `key = value` / `key: value` lines inside a larger text (properties, env files, YAML).
fn assignment() -> &'static Regex {
    static ASSIGNMENT: OnceLock<Regex> = OnceLock::new();
    ASSIGNMENT.get_or_init(|| {
        Regex::new(r#"(?m)^\s*([A-Za-z0-9_.-]+)\s*[:=]\s*["']?([^\s"']+)"#)
            .expect("assignment regex compiles")
    })
}

pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// Values that look random but are references, not secrets.
fn is_reference(token: &str) -> bool {
    token.contains("sha256:")
        || token.starts_with("$(")
        || token.starts_with("${")
        || token.contains("://")
        || token.starts_with('/')
}

/// What kind of credential `value` (stored under `key`) holds, if any.
pub fn credential_kind(key: &str, value: &str) -> Option<&'static str> {
    if let Some((name, _)) = detectors().iter().find(|(_, re)| re.is_match(value)) {
        return Some(name);
    }
    // Letters and digits mixed: host names, words and durations under a `token_*` key stay out.
    let keyed = |k: &str, v: &str| {
        keyword().is_match(k)
            && v.len() >= KEYWORD_MIN_LEN
            && !is_reference(v)
            && v.chars().any(|c| c.is_ascii_digit())
            && v.chars().any(|c| c.is_alphabetic())
            && entropy(v) >= KEYWORD_ENTROPY_BITS
    };
    if !value.contains('\n') && keyed(key, value.trim()) {
        return Some("a password-like value");
    }
    for cap in assignment().captures_iter(value) {
        if keyed(&cap[1], &cap[2]) {
            return Some("a password-like value");
        }
    }
    value
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | '='))
        .filter(|t| t.len() >= ENTROPY_MIN_LEN && !is_reference(t))
        .any(|t| entropy(t) >= ENTROPY_BITS)
        .then_some("a high-entropy string")
}

fn is_v1(obj: &Value, kind: &str) -> bool {
    obj["kind"] == kind && obj["apiVersion"] == "v1"
}

/// SOPS leaves `ENC[...]` values and its metadata (`sops:` block, `sops_*` keys of dotenv files).
fn is_sops_value(text: &str) -> bool {
    text.starts_with("ENC[")
        || text.contains("sops_mac=")
        || text
            .lines()
            .any(|l| l == "sops:" || l.starts_with("\"sops\":"))
}

fn secret_values(obj: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for field in ["data", "stringData"] {
        for (k, v) in obj[field].as_object().into_iter().flatten() {
            let Some(text) = v.as_str() else { continue };
            let decoded = if field == "data" {
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|| text.to_string())
            } else {
                text.to_string()
            };
            let mut path = field.to_string();
            push_key(&mut path, k, false);
            out.push((path, decoded));
        }
    }
    out
}

pub fn check_plaintext_secret(object: &RenderedObject, out: &mut Vec<Finding>) {
    let v = &object.value;
    if !is_v1(v, "Secret") || v.get("sops").is_some() {
        return;
    }
    let values = secret_values(v);
    let encrypted = values.iter().any(|(k, _)| k.contains("sops_"))
        || values.iter().any(|(_, text)| is_sops_value(text));
    if values.is_empty() || encrypted {
        return;
    }
    let keys: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
    out.push(Finding::at_field(
        PLAINTEXT_SECRETS,
        object,
        keys[0],
        format!(
            "{}: {} plaintext value{} in Git ({}; values not shown)",
            describe(v),
            keys.len(),
            if keys.len() == 1 { "" } else { "s" },
            keys.join(", ")
        ),
    ));
}

pub fn check_credentials(object: &RenderedObject, out: &mut Vec<Finding>) {
    let v = &object.value;
    let name = describe(v);
    if is_v1(v, "ConfigMap") {
        for field in ["data", "binaryData"] {
            for (k, val) in v[field].as_object().into_iter().flatten() {
                let Some(text) = val.as_str() else { continue };
                let text = if field == "binaryData" {
                    match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
                        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                        Err(_) => continue,
                    }
                } else {
                    text.to_string()
                };
                if let Some(kind) = credential_kind(k, &text) {
                    let mut path = field.to_string();
                    push_key(&mut path, k, false);
                    out.push(Finding::at_field(
                        CREDENTIALS,
                        object,
                        &path,
                        format!("{name}: {path} holds {kind} (value not shown)"),
                    ));
                }
            }
        }
    }
    for (spec_path, spec) in pod_specs(v) {
        for c in containers(&spec_path, spec) {
            let Some(env) = c.value["env"].as_array() else {
                continue;
            };
            for (i, e) in env.iter().enumerate() {
                let (Some(key), Some(text)) = (e["name"].as_str(), e["value"].as_str()) else {
                    continue;
                };
                if let Some(kind) = credential_kind(key, text) {
                    let mut path = c.path.clone();
                    push_key(&mut path, "env", false);
                    renderer::provenance::push_segment(
                        &mut path,
                        &renderer::provenance::element_segment(env, i),
                    );
                    push_key(&mut path, "value", false);
                    out.push(Finding::at_field(
                        CREDENTIALS,
                        object,
                        &path,
                        format!(
                            "{name}: env {key} of container {} holds {kind} (value not shown)",
                            c.value["name"].as_str().unwrap_or("?")
                        ),
                    ));
                }
            }
        }
    }
}
