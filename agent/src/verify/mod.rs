//! Signed-commit and signed-tag verification against trusted keys, in pure Rust (the agent
//! image has no ssh-keygen or gpg).

mod openpgp;
mod openpgp_validity;
mod ssh;

use std::fmt;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

pub use ssh::AllowedSigner;

/// Which kind of signature the trusted keys are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `SSHSIG` signatures (namespace `git`) against an allowed-signers file.
    Ssh,
    /// OpenPGP signatures against armored public keys.
    OpenPgp,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ssh => "SSH",
            Self::OpenPgp => "OpenPGP",
        })
    }
}

/// Who signed: what the trusted-keys file calls them, and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// SSH: the allowed-signers principals; OpenPGP: the key's first user ID.
    pub identity: String,
    /// SSH: `SHA256:…`; OpenPGP: the primary key's fingerprint (upper-case hex).
    pub fingerprint: String,
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.identity, self.fingerprint)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{object} is not signed")]
    Unsigned { object: String },
    #[error("{object} is signed with {found}, but the agent verifies {expected} signatures")]
    WrongFormat {
        object: String,
        expected: Format,
        found: &'static str,
    },
    #[error("{object} is signed by key {key}, which is not trusted")]
    UnknownKey { object: String, key: String },
    #[error("{object}: bad signature by {key}: {reason}")]
    BadSignature {
        object: String,
        key: String,
        reason: String,
    },
    /// The signature is good but the key may no longer sign (revoked or expired).
    #[error("{object} is signed by {key}, which may not sign any more: {reason}")]
    KeyUnusable {
        object: String,
        key: String,
        reason: String,
    },
    #[error("{object}: unreadable signature: {reason}")]
    Malformed { object: String, reason: String },
    #[error("{object}: {source}")]
    Git {
        object: String,
        #[source]
        source: git2::Error,
    },
    #[error("trusted keys {}: {reason}", path.display())]
    Keys { path: PathBuf, reason: String },
}

/// Trusted keys of one format.
pub struct Verifier {
    keys: Keys,
}

enum Keys {
    Ssh(Vec<AllowedSigner>),
    OpenPgp(Vec<pgp::composed::SignedPublicKey>),
}

impl Verifier {
    /// Reads an allowed-signers file (`Format::Ssh`) or armored public keys (`Format::OpenPgp`).
    pub fn from_file(format: Format, path: &Path) -> Result<Self, VerifyError> {
        let text = std::fs::read_to_string(path).map_err(|e| VerifyError::Keys {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_text(format, &text).map_err(|reason| VerifyError::Keys {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// As [`Self::from_file`], from the file's text; the error is the reason only.
    pub fn from_text(format: Format, text: &str) -> Result<Self, String> {
        let keys = match format {
            Format::Ssh => Keys::Ssh(ssh::parse_allowed_signers(text)?),
            Format::OpenPgp => Keys::OpenPgp(openpgp::parse_keys(text)?),
        };
        Ok(Self { keys })
    }

    pub fn format(&self) -> Format {
        match self.keys {
            Keys::Ssh(_) => Format::Ssh,
            Keys::OpenPgp(_) => Format::OpenPgp,
        }
    }

    /// Verifies the signature of commit `oid`.
    pub fn verify_commit(&self, repo: &Repository, oid: Oid) -> Result<Signer, VerifyError> {
        let object = format!("commit {oid}");
        let (signature, payload) = match repo.extract_signature(&oid, None) {
            Ok((sig, data)) => (sig.to_vec(), data.to_vec()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                // NotFound is also "no such commit": tell the two apart.
                return match repo.find_commit(oid) {
                    Ok(_) => Err(VerifyError::Unsigned { object }),
                    Err(source) => Err(VerifyError::Git { object, source }),
                };
            }
            Err(source) => return Err(VerifyError::Git { object, source }),
        };
        self.verify_signature(&object, &signature, &payload)
    }

    /// Verifies the signature of annotated tag `oid` (the tag object, not the commit it names).
    pub fn verify_tag(&self, repo: &Repository, oid: Oid) -> Result<Signer, VerifyError> {
        let object = format!("tag {oid}");
        let git = |source| VerifyError::Git {
            object: object.clone(),
            source,
        };
        let odb = repo.odb().map_err(git)?;
        let raw = odb.read(oid).map_err(git)?;
        if raw.kind() != ObjectType::Tag {
            return Err(VerifyError::Malformed {
                object,
                reason: format!("a {} is not an annotated tag", raw.kind()),
            });
        }
        let name = repo
            .find_tag(oid)
            .ok()
            .and_then(|t| t.name().ok().map(str::to_string));
        let object = match name {
            Some(name) => format!("tag {name} ({oid})"),
            None => object,
        };
        let (payload, signature) =
            split_tag_signature(raw.data()).ok_or(VerifyError::Unsigned {
                object: object.clone(),
            })?;
        self.verify_signature(&object, signature, payload)
    }

    fn verify_signature(
        &self,
        object: &str,
        signature: &[u8],
        payload: &[u8],
    ) -> Result<Signer, VerifyError> {
        let text = std::str::from_utf8(signature).map_err(|_| VerifyError::Malformed {
            object: object.to_string(),
            reason: "signature is not text".into(),
        })?;
        let found = if text.contains(ssh::PEM_BEGIN) {
            "an SSH signature"
        } else if text.contains(openpgp::ARMOR_BEGIN) {
            "an OpenPGP signature"
        } else {
            "an unknown signature type (X.509?)"
        };
        match &self.keys {
            Keys::Ssh(signers) if text.contains(ssh::PEM_BEGIN) => {
                ssh::verify(signers, object, text, payload)
            }
            Keys::OpenPgp(keys) if text.contains(openpgp::ARMOR_BEGIN) => {
                openpgp::verify(keys, object, text, payload)
            }
            _ => Err(VerifyError::WrongFormat {
                object: object.to_string(),
                expected: self.format(),
                found,
            }),
        }
    }
}

/// A signed tag object is the tag text with the armored signature appended: the payload is
/// everything before the line that starts the signature.
fn split_tag_signature(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    [ssh::PEM_BEGIN, openpgp::ARMOR_BEGIN]
        .iter()
        .filter_map(|marker| {
            let needle = format!("\n{marker}");
            raw.windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .map(|i| i + 1)
        })
        .min()
        .map(|start| raw.split_at(start))
}

#[cfg(test)]
mod tests;
