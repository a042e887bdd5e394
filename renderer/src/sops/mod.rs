//! SOPS files encrypted for age recipients, read and written the way the `sops` tool does
//! (checked against sops v3.13.3 built from its Go module; see `tests/tests/sops_interop.rs`).
//!
//! The format is picked from the file name as sops picks it: `.yaml`/`.yml`, `.json`,
//! `.env`, `.ini`, anything else binary.

mod cipher;
mod dotenv;
mod error;
mod ini;
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
        Format::Ini => ini::is_encrypted(text),
        Format::Json | Format::Binary => {
            text.trim_start().starts_with('{') && text.contains("\"mac\"")
        }
    }
}

fn metadata_of(path: &str, bytes: &[u8]) -> Result<Option<metadata::Metadata>, SopsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SopsError::malformed(path, "not UTF-8"))?;
    let value = match Format::from_path(path) {
        Format::Json | Format::Binary => json::parse(path, bytes)?.get("sops").cloned(),
        Format::Yaml => crate::yaml::parse_documents(text)
            .ok()
            .and_then(|docs| docs.into_iter().find_map(|d| d.value.get("sops").cloned())),
        Format::Dotenv => {
            let items: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| l.strip_prefix("sops_")?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.replace("\\n", "\n")))
                .collect();
            (!items.is_empty())
                .then(|| metadata::unflatten(path, &items))
                .transpose()?
        }
        Format::Ini => {
            let mut in_sops = false;
            let items: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| {
                    let t = l.trim();
                    if t.starts_with('[') {
                        in_sops = t == "[sops]";
                        return None;
                    }
                    let (k, v) = t.split_once('=').filter(|_| in_sops)?;
                    Some((k.trim().to_string(), v.trim().replace("\\n", "\n")))
                })
                .collect();
            (!items.is_empty())
                .then(|| metadata::unflatten(path, &items))
                .transpose()?
        }
    };
    value
        .filter(|m| m.get("mac").is_some())
        .map(|m| metadata::Metadata::from_value(path, &m))
        .transpose()
}

/// The recipients a SOPS file was encrypted for, without decrypting it.
pub fn recipients(path: &str, bytes: &[u8]) -> Result<Vec<String>, SopsError> {
    Ok(metadata_of(path, bytes)?
        .map(|m| m.recipients())
        .unwrap_or_default())
}

/// The age recipients and encryption rules of a SOPS file, to encrypt a new version of it
/// the same way (`None`: not a SOPS file).
pub fn settings(path: &str, bytes: &[u8]) -> Result<Option<(Vec<String>, Rules)>, SopsError> {
    Ok(metadata_of(path, bytes)?.map(|m| {
        (
            m.age.iter().map(|a| a.recipient.clone()).collect(),
            m.rules.clone(),
        )
    }))
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
        Format::Ini => ini::decrypt(path, bytes, keys),
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
        Format::Ini => ini::encrypt(path, plaintext, &mut meta, &key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (AgeKeys, String) {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let mut keys = AgeKeys::default();
        use age::secrecy::ExposeSecret;
        keys.add(identity.to_string().expose_secret(), "test")
            .unwrap();
        (keys, recipient)
    }

    /// Truncated or corrupted files give an error naming the file (or, when the damage hit
    /// nothing that matters, the plaintext), never a panic.
    #[test]
    fn damaged_files_never_panic() {
        let (keys, recipient) = keys();
        let cases: [(&str, &[u8]); 5] = [
            ("s.ini", b"[a]\nk = v\n; c\nj = w x\n"),
            ("s.yaml", b"a: 1\nb:\n  c: [x, 2.5, true]\n"),
            ("s.json", br#"{"a": {"b": [1, "x"]}}"#),
            ("s.env", b"# c\nA=1\nB=x\n"),
            ("s.bin", b"raw\tbytes\n"),
        ];
        for (name, plain) in cases {
            let enc = encrypt(
                name,
                plain,
                std::slice::from_ref(&recipient),
                &Rules::default(),
                "2026-01-02T03:04:05Z",
            )
            .unwrap();
            assert!(decrypt(name, &enc, &keys).unwrap().is_some(), "{name}");
            let step = (enc.len() / 97).max(1);
            for cut in (0..enc.len()).step_by(step) {
                let mut damaged = enc.clone();
                damaged.truncate(cut);
                if let Err(e) = decrypt(name, &damaged, &keys) {
                    assert_eq!(e.file(), name);
                }
                let mut flipped = enc.clone();
                flipped[cut] ^= 0x41;
                if let Err(e) = decrypt(name, &flipped, &keys) {
                    assert_eq!(e.file(), name);
                }
            }
        }
    }

    #[test]
    fn formats_follow_the_file_name_as_sops_does() {
        assert_eq!(Format::from_path("a/b.enc.yaml"), Format::Yaml);
        assert_eq!(Format::from_path("x.yml"), Format::Yaml);
        assert_eq!(Format::from_path("x.json"), Format::Json);
        assert_eq!(Format::from_path("app.env"), Format::Dotenv);
        assert_eq!(Format::from_path("tls.crt"), Format::Binary);
        assert_eq!(Format::from_path("noext"), Format::Binary);
    }
}
