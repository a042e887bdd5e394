//! The production agent's revision when it manages itself (`--config-path`): the `revision`
//! key of ConfigMap `gitops-agent` rendered from that directory. Found and edited as text,
//! like the `--revision=` argument, so the rest of the file stays byte for byte.

use std::path::Path;

use anyhow::{Context, bail};
use renderer::protocol::{AGENT_CONFIG_NAME, AGENT_CONFIG_REVISION_KEY};

use crate::release::repo::{AgentManifest, RevisionSetting, yaml_files};
use crate::release::rules::{AgentArgs, ReleaseError};

/// The `revision:` line of the `gitops-agent` ConfigMap in `text`, if the file holds it.
pub fn find_config_revision(text: &str) -> Option<AgentArgs> {
    let key = format!("{AGENT_CONFIG_REVISION_KEY}:");
    let name = format!("name: {AGENT_CONFIG_NAME}");
    let (mut kind, mut named, mut in_data) = (false, false, false);
    let mut found: Option<AgentArgs> = None;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            if kind && named && found.is_some() {
                return found;
            }
            (kind, named, in_data, found) = (false, false, false, None);
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        let trimmed = line.trim();
        if !indented && !trimmed.is_empty() {
            in_data = trimmed == "data:";
            kind |= trimmed == "kind: ConfigMap";
        } else if trimmed == name || trimmed == format!("name: \"{AGENT_CONFIG_NAME}\"") {
            named = true;
        } else if in_data && let Some(value) = trimmed.strip_prefix(&key) {
            found = Some(AgentArgs {
                line: i as u32 + 1,
                revision: unquote(value),
                path: None,
            });
        }
    }
    found.filter(|_| kind && named)
}

fn unquote(value: &str) -> String {
    let value = value.split(" #").next().unwrap_or_default().trim();
    match value.chars().next() {
        Some(q @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(q) => {
            value[1..value.len() - 1].to_string()
        }
        _ => value.to_string(),
    }
}

/// `text` with the `revision:` value on 1-based `line` set to `revision`, quoted when YAML
/// would read it as something else (a range starts with `>`).
pub fn set_config_revision(
    file: &str,
    text: &str,
    line: u32,
    revision: &str,
) -> Result<String, ReleaseError> {
    let plain = revision
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/-+".contains(c))
        && !revision.starts_with(['-', '.']);
    let value = if plain {
        revision.to_string()
    } else {
        serde_json::to_string(revision).expect("a string serialises")
    };
    super::rules::edit_line(file, text, line, |original| {
        let key = format!("{AGENT_CONFIG_REVISION_KEY}:");
        let at = original.find(&key)?;
        let ending = if original.ends_with('\n') { "\n" } else { "" };
        Some(format!("{}{key} {value}{ending}", &original[..at]))
    })
}

/// The file under `config_path` of the clone that holds the `gitops-agent` ConfigMap.
pub fn find_config_manifest(root: &Path, config_path: &str) -> anyhow::Result<AgentManifest> {
    let dir = root.join(config_path.trim_matches('/'));
    if !dir.is_dir() {
        bail!(
            "the agent reads its revision from {config_path} (--config-path), which is not a directory of {}",
            root.display()
        );
    }
    let mut found = Vec::new();
    for path in yaml_files(&dir) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if let Some(args) = find_config_revision(&text) {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            found.push(AgentManifest {
                rel,
                text,
                args,
                setting: RevisionSetting::ConfigMap,
            });
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "no ConfigMap {AGENT_CONFIG_NAME} with data.{AGENT_CONFIG_REVISION_KEY} under {config_path}"
        ),
        _ => bail!(
            "several ConfigMaps {AGENT_CONFIG_NAME} under {config_path}: {}",
            found
                .iter()
                .map(|m| m.rel.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "# production's agent follows this\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gitops-agent\ndata:\n  revision: v1.4.2 # promote edits this\n";

    #[test]
    fn finds_the_revision_of_the_agent_config_map() {
        let args = find_config_revision(CONFIG).unwrap();
        assert_eq!((args.line, args.revision.as_str()), (7, "v1.4.2"));
        let quoted = CONFIG.replace("v1.4.2 # promote edits this", "'>=1.4.0 <2.0.0'");
        assert_eq!(
            find_config_revision(&quoted).unwrap().revision,
            ">=1.4.0 <2.0.0"
        );
        let other = CONFIG.replace("name: gitops-agent", "name: settings");
        assert_eq!(find_config_revision(&other), None);
        let two = format!("kind: Service\nmetadata:\n  name: x\n---\n{CONFIG}");
        assert_eq!(find_config_revision(&two).unwrap().line, 11);
        let labels =
            "kind: ConfigMap\nmetadata:\n  name: gitops-agent\n  labels:\n    revision: x\n";
        assert_eq!(find_config_revision(labels), None, "only under data:");
    }

    #[test]
    fn sets_one_line_and_quotes_what_yaml_would_misread() {
        let out = set_config_revision("c.yaml", CONFIG, 7, "v1.5.0").unwrap();
        assert_eq!(out, CONFIG.replace("v1.4.2 # promote edits this", "v1.5.0"));
        let range = set_config_revision("c.yaml", CONFIG, 7, ">=1.5.0 <2.0.0").unwrap();
        assert!(
            range.ends_with("  revision: \">=1.5.0 <2.0.0\"\n"),
            "{range}"
        );
        assert_eq!(
            find_config_revision(&range).unwrap().revision,
            ">=1.5.0 <2.0.0"
        );
        assert!(set_config_revision("c.yaml", CONFIG, 2, "v1").is_err());
    }
}
