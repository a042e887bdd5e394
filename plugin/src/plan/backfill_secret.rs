//! `backfill` of a Secret: the live values go back into the SOPS file the Secret is rendered
//! from, re-encrypted for the recipients the repository's `.sops.yaml` names for that path
//! (its `creation_rules`, first `path_regex` that matches), so plaintext never reaches Git.

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use renderer::RenderedObject;
use renderer::sops::{self, Rules};
use serde_json::{Map, Value};

/// The recipients and rules for a new encryption of `rel` (relative to the repository root).
#[derive(Debug, Clone, PartialEq)]
pub struct CreationRule {
    pub recipients: Vec<String>,
    pub rules: Rules,
    /// Where they came from, for the user.
    pub from: String,
}

/// The nearest `.sops.yaml` above `rel` (up to the root), and its first rule matching `rel`
/// (matched relative to the directory of `.sops.yaml`, as sops does).
pub fn creation_rule(root: &Path, rel: &str) -> anyhow::Result<Option<CreationRule>> {
    let mut dir = Path::new(rel).parent();
    while let Some(d) = dir {
        let config = root.join(d).join(".sops.yaml");
        if config.is_file() {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            let from = d.join(".sops.yaml").display().to_string();
            let inside = Path::new(rel)
                .strip_prefix(d)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| rel.to_string());
            return parse_rules(&text, &from, &inside);
        }
        dir = d.parent();
    }
    Ok(None)
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s
            .split(',')
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect(),
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

pub fn parse_rules(text: &str, from: &str, path: &str) -> anyhow::Result<Option<CreationRule>> {
    let docs = renderer::yaml::parse_documents(text).map_err(|e| anyhow!("{from}: {e}"))?;
    let Some(doc) = docs.into_iter().next() else {
        return Ok(None);
    };
    for (i, rule) in doc.value["creation_rules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(re) = rule["path_regex"].as_str() {
            let re = regex::Regex::new(re)
                .map_err(|e| anyhow!("{from}: creation_rules[{i}].path_regex: {e}"))?;
            if !re.is_match(path) {
                continue;
            }
        }
        let mut recipients = strings(&rule["age"]);
        for group in rule["key_groups"].as_array().into_iter().flatten() {
            recipients.extend(strings(&group["age"]));
        }
        if recipients.is_empty() {
            bail!("{from}: creation_rules[{i}] matches {path} but names no age recipient");
        }
        let text = |k: &str| rule[k].as_str().map(str::to_string);
        return Ok(Some(CreationRule {
            recipients,
            rules: Rules {
                unencrypted_suffix: text("unencrypted_suffix"),
                encrypted_suffix: text("encrypted_suffix"),
                unencrypted_regex: text("unencrypted_regex"),
                encrypted_regex: text("encrypted_regex"),
                mac_only_encrypted: rule["mac_only_encrypted"] == Value::Bool(true),
            },
            from: format!("{from} creation_rules[{i}]"),
        }));
    }
    Ok(None)
}

/// The SOPS file the Secret's values come from: where its `data`/`stringData` were written.
fn source_file(object: &RenderedObject) -> Option<String> {
    object
        .provenance()
        .iter()
        .find(|(path, _)| path.starts_with("data.") || path.starts_with("stringData."))
        .or_else(|| {
            object
                .provenance()
                .iter()
                .find(|(p, _)| p.as_str() == "metadata.name")
        })
        .map(|(_, o)| o.origin.file.to_string())
}

/// The values to write, in the style the file used: `stringData` when it had it and every
/// value is text, else base64 `data`.
fn new_values(doc: &mut Value, live: &Value) {
    let live_data = live["data"].as_object().cloned().unwrap_or_default();
    let decoded: Option<Map<String, Value>> = live_data
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str()?)
                .ok()?;
            Some((k.clone(), Value::String(String::from_utf8(bytes).ok()?)))
        })
        .collect();
    let obj = doc.as_object_mut().expect("a Secret document is a mapping");
    match decoded {
        Some(text) if obj.contains_key("stringData") => {
            obj.insert("stringData".into(), Value::Object(text));
            obj.shift_remove("data");
        }
        _ => {
            obj.insert("data".into(), Value::Object(live_data));
            obj.shift_remove("stringData");
        }
    }
}

/// The new content of the Secret's SOPS file (relative path, before, after), re-encrypted.
pub fn plan(
    root: &Path,
    object: &RenderedObject,
    live: &Value,
    now: &str,
) -> anyhow::Result<(String, String, String)> {
    let key = crate::cluster::live::object_key(live);
    let rel = source_file(object).ok_or_else(|| anyhow!("{key}: no file declares it"))?;
    let before =
        std::fs::read_to_string(root.join(&rel)).with_context(|| format!("reading {rel}"))?;
    if !sops::looks_encrypted(&rel, before.as_bytes())
        || sops::Format::from_path(&rel) != sops::Format::Yaml
    {
        bail!(
            "{key} comes from {rel}, which is not a SOPS-encrypted YAML file: Secret values are \
             never written to Git in plaintext. Encrypt it with sops (or keep the value in your \
             secret store), then backfill again"
        );
    }
    let keys = crate::git::sops_keys::discover()?;
    let plain = sops::decrypt(&rel, before.as_bytes(), keys)
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("{rel}: no SOPS metadata"))?;
    let text = String::from_utf8(plain).map_err(|_| anyhow!("{rel}: not UTF-8"))?;
    let mut docs: Vec<Value> = renderer::yaml::parse_documents(&text)
        .map_err(|e| anyhow!("{rel}: {e}"))?
        .into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .collect();
    let secrets: Vec<usize> = (0..docs.len())
        .filter(|&i| docs[i]["kind"] == "Secret")
        .collect();
    let index = match secrets.as_slice() {
        [one] => *one,
        many => *many
            .iter()
            .find(|&&i| {
                docs[i]["metadata"]["name"].as_str().is_some_and(|n| {
                    live["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(n)
                })
            })
            .ok_or_else(|| anyhow!("{rel}: cannot tell which document is {key}"))?,
    };
    new_values(&mut docs[index], live);
    let rule = match creation_rule(root, &rel)? {
        Some(rule) => rule,
        None => bail!(
            "{rel}: no .sops.yaml creation rule matches it; add one naming the age recipients \
             (creation_rules: [{{path_regex: ..., age: age1...}}])"
        ),
    };
    let yaml = renderer::yaml::to_yaml_stream(docs.iter());
    let after = sops::encrypt(&rel, yaml.as_bytes(), &rule.recipients, &rule.rules, now)
        .map_err(|e| anyhow!("{e}"))?;
    let after = String::from_utf8(after).expect("encrypted YAML is text");
    Ok((rel, before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_creation_rule_wins() {
        let text = "creation_rules:\n- path_regex: ^overlays/prod/.*\\.yaml$\n  age: age1prod, age1ops\n  encrypted_regex: ^(data|stringData)$\n- age: age1default\n";
        let prod = parse_rules(text, ".sops.yaml", "overlays/prod/db.yaml")
            .unwrap()
            .unwrap();
        assert_eq!(prod.recipients, vec!["age1prod", "age1ops"]);
        assert_eq!(
            prod.rules.encrypted_regex.as_deref(),
            Some("^(data|stringData)$")
        );
        let other = parse_rules(text, ".sops.yaml", "overlays/dev/db.yaml")
            .unwrap()
            .unwrap();
        assert_eq!(other.recipients, vec!["age1default"]);
        assert!(
            parse_rules("creation_rules: []\n", "f", "x")
                .unwrap()
                .is_none()
        );
    }
}
