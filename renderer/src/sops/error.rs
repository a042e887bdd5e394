/// Why a SOPS file could not be read, decrypted or written. Every variant names the file;
/// none carries a decrypted value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SopsError {
    #[error(
        "{file}: cannot decrypt the SOPS data key: no age identity matches the recipients it was encrypted for ({recipients}){hint}"
    )]
    NoKey {
        file: String,
        recipients: String,
        hint: String,
    },
    #[error(
        "{file}: SOPS MAC mismatch: the file was changed without re-encrypting it (edit it with `sops {file}`), refused"
    )]
    MacMismatch { file: String },
    #[error(
        "{file}: SOPS value {path} does not authenticate: it was changed or moved without re-encrypting, refused"
    )]
    Tampered { file: String, path: String },
    #[error("{file}: malformed SOPS file: {message}")]
    Malformed { file: String, message: String },
    #[error("{file}: {message} (not supported by kubectl-gitops; decrypt it with `sops`)")]
    Unsupported { file: String, message: String },
    #[error("{file}: cannot encrypt: {message}")]
    Encrypt { file: String, message: String },
}

impl SopsError {
    pub(crate) fn malformed(file: &str, message: impl Into<String>) -> Self {
        SopsError::Malformed {
            file: file.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn encrypt(file: &str, message: impl Into<String>) -> Self {
        SopsError::Encrypt {
            file: file.to_string(),
            message: message.into(),
        }
    }

    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            SopsError::NoKey { file, .. }
            | SopsError::MacMismatch { file }
            | SopsError::Tampered { file, .. }
            | SopsError::Malformed { file, .. }
            | SopsError::Unsupported { file, .. }
            | SopsError::Encrypt { file, .. } => file,
        }
    }
}
