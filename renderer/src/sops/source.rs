//! A [`Source`] that hands the renderer decrypted SOPS files: encrypted resources and the
//! files a `secretGenerator` reads are decrypted as they are read, so every Kustomize
//! transformer and the generator's hash see plaintext, as in Flux.

use std::sync::Mutex;

use super::{AgeKeys, SopsError, decrypt_for_render, looks_encrypted};
use crate::source::{EntryKind, Source, SourceError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// A file that does not decrypt fails the read, so the render fails (the agent).
    Strict,
    /// A file that does not decrypt is passed on encrypted and recorded (`render` without
    /// a key: it says which files it could not decrypt).
    Lenient,
}

/// A file that was not decrypted, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub path: String,
    pub error: SopsError,
}

pub struct DecryptingSource<'a> {
    inner: &'a dyn Source,
    keys: &'a AgeKeys,
    strictness: Strictness,
    failures: Mutex<Vec<Failure>>,
    decrypted: Mutex<Vec<String>>,
}

impl<'a> DecryptingSource<'a> {
    pub fn new(inner: &'a dyn Source, keys: &'a AgeKeys, strictness: Strictness) -> Self {
        Self {
            inner,
            keys,
            strictness,
            failures: Mutex::new(Vec::new()),
            decrypted: Mutex::new(Vec::new()),
        }
    }

    /// Files that did not decrypt (lenient mode), each once, in the order they were read.
    pub fn failures(&self) -> Vec<Failure> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Files that were decrypted, each once.
    pub fn decrypted(&self) -> Vec<String> {
        self.decrypted.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

impl Source for DecryptingSource<'_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let bytes = self.inner.read(path)?;
        if !looks_encrypted(path, &bytes) {
            return Ok(bytes);
        }
        match decrypt_for_render(path, &bytes, self.keys) {
            Ok(None) => Ok(bytes),
            Ok(Some(plain)) => {
                if let Ok(mut d) = self.decrypted.lock()
                    && !d.iter().any(|p| p == path)
                {
                    d.push(path.to_string());
                }
                Ok(plain)
            }
            Err(error) => match self.strictness {
                Strictness::Strict => Err(SourceError::Other {
                    path: path.to_string(),
                    message: error.to_string(),
                }),
                Strictness::Lenient => {
                    if let Ok(mut f) = self.failures.lock()
                        && !f.iter().any(|x| x.path == path)
                    {
                        f.push(Failure {
                            path: path.to_string(),
                            error,
                        });
                    }
                    Ok(bytes)
                }
            },
        }
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        self.inner.kind(path)
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        self.inner.list(path)
    }

    fn size(&self, path: &str) -> Option<u64> {
        self.inner.size(path)
    }

    fn canonical(&self, path: &str) -> Option<String> {
        self.inner.canonical(path)
    }
}
