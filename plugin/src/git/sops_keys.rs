//! age keys for SOPS files, found where `sops` finds them: `SOPS_AGE_KEY` (the keys
//! themselves), `SOPS_AGE_KEY_FILE`, else `$XDG_CONFIG_HOME/sops/age/keys.txt`
//! (`~/.config/sops/age/keys.txt`).

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::anyhow;
use renderer::sops::AgeKeys;

use crate::constants::{SOPS_AGE_KEY_ENV, SOPS_AGE_KEY_FILE_ENV};

fn default_key_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("sops/age/keys.txt"))
}

/// Reads the keys once per process. A key file that is named but unreadable is an error;
/// no keys at all is not (files then fail to decrypt, naming themselves).
pub fn discover() -> anyhow::Result<&'static AgeKeys> {
    static KEYS: OnceLock<Result<AgeKeys, String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = AgeKeys::default();
        if let Ok(inline) = std::env::var(SOPS_AGE_KEY_ENV)
            && !inline.trim().is_empty()
        {
            keys.add(&inline, SOPS_AGE_KEY_ENV)?;
        }
        match std::env::var_os(SOPS_AGE_KEY_FILE_ENV) {
            Some(file) => {
                let file = PathBuf::from(file);
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("{SOPS_AGE_KEY_FILE_ENV}={}: {e}", file.display()))?;
                keys.add(&text, &file.display().to_string())?;
            }
            None => {
                if let Some(file) = default_key_file()
                    && let Ok(text) = std::fs::read_to_string(&file)
                {
                    keys.add(&text, &file.display().to_string())?;
                }
            }
        }
        Ok(keys)
    })
    .as_ref()
    .map_err(|e| anyhow!("{e}"))
}
