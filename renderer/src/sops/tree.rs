//! The walk sops makes over a document (`sops.go`: `Tree.Encrypt` / `Tree.Decrypt`): maps in
//! file order, list items under their parent's path, additional data `key:key:`, and the MAC
//! (SHA-512 over every value's bytes, upper-case hex, itself encrypted with the
//! `lastmodified` text as additional data).

use serde_json::{Number, Value};
use sha2::{Digest, Sha512};

use super::SopsError;
use super::cipher::{self, Plain, ValueError};
use super::metadata::{CompiledRules, Metadata};

/// `sha256("sops")`: sops seeds the MAC with it when `mac_only_encrypted` is set.
const MAC_ONLY_ENCRYPTED_SEED: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// One decrypted value: where it is (JSON pointer in its document) and what it holds.
pub(crate) struct Change {
    pub doc: usize,
    pub pointer: String,
    pub plain: Plain,
}

struct Walk<'a> {
    file: &'a str,
    rules: &'a CompiledRules,
    key: &'a [u8; 32],
    hash: Sha512,
    changes: Vec<Change>,
    encrypt: bool,
}

fn new_hash(rules: &CompiledRules) -> Sha512 {
    let mut hash = Sha512::new();
    if rules.mac_only_encrypted() {
        hash.update(MAC_ONLY_ENCRYPTED_SEED);
    }
    hash
}

pub(crate) fn plain_of(v: &Value) -> Option<Plain> {
    Some(match v {
        Value::String(s) => Plain::Str(s.clone()),
        Value::Bool(b) => Plain::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Plain::Int(i),
            None => Plain::Float(n.as_f64()?),
        },
        _ => return None,
    })
}

pub(crate) fn value_of(p: &Plain) -> Value {
    match p {
        Plain::Str(s) | Plain::Comment(s) => Value::String(s.clone()),
        Plain::Int(i) => Value::Number((*i).into()),
        Plain::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Plain::Bool(b) => Value::Bool(*b),
    }
}

impl Walk<'_> {
    fn node(
        &mut self,
        doc: usize,
        v: &mut Value,
        path: &mut Vec<String>,
        ptr: &mut String,
    ) -> Result<(), SopsError> {
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&crate::yaml::escape_pointer(k));
                    path.push(k.clone());
                    self.node(doc, child, path, ptr)?;
                    path.pop();
                    ptr.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter_mut().enumerate() {
                    let len = ptr.len();
                    ptr.push_str(&format!("/{i}"));
                    self.node(doc, child, path, ptr)?;
                    ptr.truncate(len);
                }
            }
            Value::Null => {}
            leaf => self.leaf(doc, leaf, path, ptr)?,
        }
        Ok(())
    }

    fn leaf(
        &mut self,
        doc: usize,
        v: &mut Value,
        path: &[String],
        ptr: &str,
    ) -> Result<(), SopsError> {
        let encrypted = self.rules.should_encrypt(path);
        let aad = format!("{}:", path.join(":"));
        let plain = if self.encrypt {
            let plain = plain_of(v).expect("leaf is a scalar");
            if encrypted {
                *v = Value::String(cipher::encrypt(&plain, self.key, &aad));
            }
            plain
        } else if encrypted {
            let Value::String(s) = v else {
                return Err(SopsError::malformed(
                    self.file,
                    format!("{}: expected an encrypted value, found {v}", path.join(".")),
                ));
            };
            let tampered = || SopsError::Tampered {
                file: self.file.to_string(),
                path: path.join("."),
            };
            if !s.is_empty() && !cipher::is_encrypted(s) {
                // Written in the clear where the rules say encrypted: edited by hand.
                return Err(tampered());
            }
            let plain = cipher::decrypt(s, self.key, &aad).map_err(|e| match e {
                ValueError::Auth => tampered(),
                ValueError::Format(m) => {
                    SopsError::malformed(self.file, format!("{}: {m}", path.join(".")))
                }
            })?;
            *v = value_of(&plain);
            self.changes.push(Change {
                doc,
                pointer: ptr.to_string(),
                plain: plain.clone(),
            });
            plain
        } else {
            plain_of(v).expect("leaf is a scalar")
        };
        if !self.rules.mac_only_encrypted() || encrypted {
            self.hash.update(plain.to_bytes());
        }
        Ok(())
    }
}

/// Decrypts every encrypted value of `docs` in place and checks the MAC.
pub(crate) fn decrypt(
    file: &str,
    docs: &mut [Value],
    key: &[u8; 32],
    meta: &Metadata,
) -> Result<Vec<Change>, SopsError> {
    let (computed, changes) = walk_all(file, docs, key, meta, false)?;
    let stored = cipher::decrypt(&meta.mac, key, &meta.last_modified);
    match stored {
        Ok(Plain::Str(mac)) if mac == computed => Ok(changes),
        _ => Err(SopsError::MacMismatch {
            file: file.to_string(),
        }),
    }
}

/// Encrypts the values of `docs` that the rules select, in place; returns the encrypted MAC.
pub(crate) fn encrypt(
    file: &str,
    docs: &mut [Value],
    key: &[u8; 32],
    meta: &Metadata,
) -> Result<String, SopsError> {
    let (mac, _) = walk_all(file, docs, key, meta, true)?;
    Ok(cipher::encrypt(&Plain::Str(mac), key, &meta.last_modified))
}

/// Walks every document once, encrypting or decrypting what the rules select; the MAC over
/// the plaintext values (hex, upper case) and the changed values.
fn walk_all(
    file: &str,
    docs: &mut [Value],
    key: &[u8; 32],
    meta: &Metadata,
    encrypt: bool,
) -> Result<(String, Vec<Change>), SopsError> {
    let rules = meta.rules.compile(file)?;
    let mut walk = Walk {
        file,
        rules: &rules,
        key,
        hash: new_hash(&rules),
        changes: Vec::new(),
        encrypt,
    };
    for (i, doc) in docs.iter_mut().enumerate() {
        walk.node(i, doc, &mut Vec::new(), &mut String::new())?;
    }
    Ok((hex_upper(&walk.hash.finalize()), walk.changes))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
