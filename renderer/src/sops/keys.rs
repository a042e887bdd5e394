//! age identities that open a file's data key, and age recipients that seal a new one.

use std::io::{Read, Write};
use std::str::FromStr;

use super::SopsError;
use super::metadata::{AgeStanza, Metadata};

/// The age private keys available to decrypt (a `keys.txt`, `SOPS_AGE_KEY`, the agent's
/// mounted Secret). Reading them from disk or the environment is the caller's job.
#[derive(Default)]
pub struct AgeKeys {
    identities: Vec<age::x25519::Identity>,
    /// Where the keys came from, for "no key" messages.
    sources: Vec<String>,
}

impl std::fmt::Debug for AgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private keys, only how many there are and where they came from.
        f.debug_struct("AgeKeys")
            .field("identities", &self.identities.len())
            .field("sources", &self.sources)
            .finish()
    }
}

impl AgeKeys {
    /// Adds every `AGE-SECRET-KEY-1…` line of `text` (the `age-keygen` file format:
    /// `#` comments, blank lines). `source` names where it came from in errors.
    pub fn add(&mut self, text: &str, source: &str) -> Result<(), String> {
        let mut added = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let identity = age::x25519::Identity::from_str(line).map_err(|_| {
                format!(
                    "{source}: line {}: not an age identity (AGE-SECRET-KEY-1…)",
                    n + 1
                )
            })?;
            self.identities.push(identity);
            added += 1;
        }
        if added == 0 {
            return Err(format!("{source}: no age identity in it"));
        }
        self.sources.push(source.to_string());
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// The public keys (`age1…`) of the identities.
    pub fn recipients(&self) -> Vec<String> {
        self.identities
            .iter()
            .map(|i| i.to_public().to_string())
            .collect()
    }

    pub(crate) fn data_key(&self, file: &str, meta: &Metadata) -> Result<[u8; 32], SopsError> {
        let no_key = || SopsError::NoKey {
            file: file.to_string(),
            recipients: meta.recipients().join(", "),
            hint: if self.sources.is_empty() {
                "; no age key was given (SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt, or the agent's --sops-age-key-file)".to_string()
            } else {
                format!("; keys tried: {}", self.sources.join(", "))
            },
        };
        if self.identities.is_empty() {
            return Err(no_key());
        }
        let ours = self.recipients();
        // Try the stanzas addressed to our own keys first: each attempt costs an X25519.
        let mut order: Vec<&AgeStanza> = meta.age.iter().collect();
        order.sort_by_key(|s| !ours.contains(&s.recipient));
        for stanza in order {
            if let Some(key) = self.open(&stanza.enc) {
                return Ok(key);
            }
        }
        Err(no_key())
    }

    fn open(&self, armored: &str) -> Option<[u8; 32]> {
        let reader = age::armor::ArmoredReader::new(armored.trim_start().as_bytes());
        let decryptor = age::Decryptor::new(reader).ok()?;
        let mut stream = decryptor
            .decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
            .ok()?;
        let mut key = Vec::with_capacity(32);
        stream.read_to_end(&mut key).ok()?;
        key.try_into().ok()
    }
}

/// Seals `data_key` for each recipient separately, as sops does (one stanza per recipient).
pub(crate) fn seal(
    file: &str,
    data_key: &[u8; 32],
    recipients: &[String],
) -> Result<Vec<AgeStanza>, SopsError> {
    let fail = |message: String| SopsError::Encrypt {
        file: file.to_string(),
        message,
    };
    if recipients.is_empty() {
        return Err(fail("no age recipient".into()));
    }
    recipients
        .iter()
        .map(|r| {
            let recipient = age::x25519::Recipient::from_str(r.trim())
                .map_err(|e| fail(format!("{r:?} is not an age recipient (age1…): {e}")))?;
            let encryptor =
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .map_err(|e| fail(e.to_string()))?;
            let mut out = Vec::new();
            let io = |e: std::io::Error| fail(e.to_string());
            let armor =
                age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                    .map_err(io)?;
            let mut w = encryptor.wrap_output(armor).map_err(io)?;
            w.write_all(data_key).map_err(io)?;
            w.finish().and_then(|a| a.finish()).map_err(io)?;
            let mut enc = String::from_utf8(out).map_err(|e| fail(e.to_string()))?;
            if !enc.ends_with('\n') {
                enc.push('\n');
            }
            Ok(AgeStanza {
                recipient: r.trim().to_string(),
                enc,
            })
        })
        .collect()
}
