//! SOPS files encrypted for age recipients, read and written the way the `sops` tool does
//! (checked against sops v3.13.3 built from its Go module; see `tests/tests/sops_interop.rs`).
//!
//! The format is picked from the file name as sops picks it: `.yaml`/`.yml`, `.json`,
//! `.env`, anything else binary. INI files are not supported.

mod cipher;
mod dotenv;
mod error;
mod json;
mod keys;
mod metadata;
mod source;
mod tree;
mod yaml;

pub use error::SopsError;
pub use json::to_go_json;
pub use keys::AgeKeys;
pub use metadata::{DEFAULT_UNENCRYPTED_SUFFIX, Rules};
pub use source::{DecryptingSource, Failure, Strictness};

/// The `version` this project writes into the files it encrypts: the sops release whose
/// format it follows.
pub const SOPS_FORMAT_VERSION: &str = "3.13.3";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Ini,
    Binary,
}

impl Format {
    /// sops' choice by extension.
    pub fn from_path(path: &str) -> Format {
        let name = path.rsplit('/').next().unwrap_or(path);
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            Some("ini") => Format::Ini,
            _ => Format::Binary,
        }
    }
}

/// A cheap look at the bytes: could this be a SOPS file? (Decryption then decides.)
pub fn looks_encrypted(path: &str, bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    if !text.contains("sops") {
        return false;
    }
    match Format::from_path(path) {
        Format::Yaml => yaml::looks_encrypted(text),
        Format::Dotenv => dotenv::is_encrypted(text),
        Format::Ini => text.contains("[sops]"),
        Format::Json | Format::Binary => {
            text.trim_start().starts_with('{') && text.contains("\"mac\"")
        }
    }
}

/// The recipients a SOPS file was encrypted for, without decrypting it.
pub fn recipients(path: &str, bytes: &[u8]) -> Result<Vec<String>, SopsError> {
    let meta = match Format::from_path(path) {
        Format::Json | Format::Binary => json::metadata(path, &json::parse(path, bytes)?)?,
        Format::Yaml => {
            let text =
                std::str::from_utf8(bytes).map_err(|_| SopsError::malformed(path, "not UTF-8"))?;
            crate::yaml::parse_documents(text)
                .ok()
                .and_then(|docs| docs.into_iter().find_map(|d| d.value.get("sops").cloned()))
                .map(|m| metadata::Metadata::from_value(path, &m))
                .transpose()?
        }
        _ => None,
    };
    Ok(meta.map(|m| m.recipients()).unwrap_or_default())
}

/// What `sops -d FILE` prints, or `None` when the file carries no SOPS metadata.
pub fn decrypt(path: &str, bytes: &[u8], keys: &AgeKeys) -> Result<Option<Vec<u8>>, SopsError> {
    match Format::from_path(path) {
        Format::Yaml => yaml::decrypt(path, bytes, keys, yaml::Mode::Sops),
        Format::Dotenv => dotenv::decrypt(path, bytes, keys),
        Format::Json => Ok(json::decrypt(path, bytes, keys)?.map(|v| to_go_json(&v).into_bytes())),
        Format::Binary => json::decrypt(path, bytes, keys)?
            .map(|v| json::binary_plaintext(path, &v))
            .transpose(),
        Format::Ini => Err(SopsError::Unsupported {
            file: path.into(),
            message: "INI files".into(),
        }),
    }
}

/// Like [`decrypt`], but YAML keeps every line where it was in the encrypted file, so that
/// rendered fields point at the right line of it.
pub fn decrypt_for_render(
    path: &str,
    bytes: &[u8],
    keys: &AgeKeys,
) -> Result<Option<Vec<u8>>, SopsError> {
    match Format::from_path(path) {
        Format::Yaml => yaml::decrypt(path, bytes, keys, yaml::Mode::KeepLines),
        _ => decrypt(path, bytes, keys),
    }
}

/// Encrypts `plaintext` for `recipients` (age public keys) as sops would for a file named
/// `path`, with `rules` deciding which values are encrypted. `now` is the `lastmodified`
/// time, RFC 3339 in UTC (`2026-01-02T03:04:05Z`).
pub fn encrypt(
    path: &str,
    plaintext: &[u8],
    recipients: &[String],
    rules: &Rules,
    now: &str,
) -> Result<Vec<u8>, SopsError> {
    let key = cipher::data_key();
    let mut meta = json::new_metadata(path, &key, recipients, rules, now)?;
    match Format::from_path(path) {
        Format::Yaml => yaml::encrypt(path, plaintext, &mut meta, &key),
        Format::Dotenv => dotenv::encrypt(path, plaintext, &mut meta, &key),
        Format::Json => {
            let value = json::parse(path, plaintext)?;
            Ok(to_go_json(&json::encrypt(path, value, &mut meta, &key)?).into_bytes())
        }
        Format::Binary => json::encrypt_binary(path, plaintext, &mut meta, &key),
        Format::Ini => Err(SopsError::Unsupported {
            file: path.into(),
            message: "INI files".into(),
        }),
    }
}
