//! One value: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, AES-256-GCM with a 32-byte nonce
//! and the value's key path (`a:b:`) as additional data (sops `aes/cipher.go`).

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

type Gcm = AesGcm<Aes256, U32>;
const TAG_LEN: usize = 16;

/// A decrypted (or to-be-encrypted) leaf, typed as sops types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Comment(String),
}

impl Plain {
    /// sops `ToBytes`: what the MAC hashes and what is encrypted.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Plain::Str(s) | Plain::Comment(s) => s.as_bytes().to_vec(),
            Plain::Int(i) => i.to_string().into_bytes(),
            Plain::Float(f) => go_format_f(*f).into_bytes(),
            Plain::Bool(true) => b"True".to_vec(),
            Plain::Bool(false) => b"False".to_vec(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Plain::Str(_) => "str",
            Plain::Int(_) => "int",
            Plain::Float(_) => "float",
            Plain::Bool(_) => "bool",
            Plain::Comment(_) => "comment",
        }
    }
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: shortest round-trip digits, never an exponent
/// (Rust's `Display` for `f64` has the same contract).
pub fn go_format_f(f: f64) -> String {
    format!("{f}")
}

/// Whether a string is an encrypted sops value.
pub fn is_encrypted(s: &str) -> bool {
    s.starts_with("ENC[AES256_GCM,")
}

/// Why a value did not decrypt. Never carries plaintext.
#[derive(Debug)]
pub enum ValueError {
    Format(String),
    /// Wrong data key or wrong additional data (the value was moved or tampered with).
    Auth,
}

pub fn decrypt(value: &str, key: &[u8; 32], aad: &str) -> Result<Plain, ValueError> {
    if value.is_empty() {
        return Ok(Plain::Str(String::new()));
    }
    let inner = value
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| ValueError::Format("not an ENC[AES256_GCM,…] value".into()))?;
    let mut data = None;
    let mut iv = None;
    let mut tag = None;
    let mut kind = None;
    for part in inner.split(',') {
        let (name, v) = part
            .split_once(':')
            .ok_or_else(|| ValueError::Format(format!("field {part:?} has no ':'")))?;
        match name {
            "data" => data = Some(v),
            "iv" => iv = Some(v),
            "tag" => tag = Some(v),
            "type" => kind = Some(v),
            _ => {}
        }
    }
    let b64 = |name: &str, v: Option<&str>| -> Result<Vec<u8>, ValueError> {
        STANDARD
            .decode(v.ok_or_else(|| ValueError::Format(format!("no {name}")))?)
            .map_err(|e| ValueError::Format(format!("{name}: {e}")))
    };
    let mut sealed = b64("data", data)?;
    let iv = b64("iv", iv)?;
    sealed.extend(b64("tag", tag)?);
    if iv.len() != 32 {
        return Err(ValueError::Format(format!(
            "iv is {} bytes, sops writes 32",
            iv.len()
        )));
    }
    let gcm = Gcm::new(key.into());
    let bytes = gcm
        .decrypt(
            Nonce::<U32>::from_slice(&iv),
            Payload {
                msg: &sealed,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| ValueError::Auth)?;
    let text = String::from_utf8(bytes).map_err(|_| ValueError::Format("not UTF-8".into()))?;
    let bad = |t: &str| ValueError::Format(format!("not a valid {t}"));
    Ok(match kind.unwrap_or("str") {
        "str" | "bytes" | "time" => Plain::Str(text),
        "int" => Plain::Int(text.parse().map_err(|_| bad("int"))?),
        "float" => Plain::Float(text.parse().map_err(|_| bad("float"))?),
        "bool" => Plain::Bool(go_parse_bool(&text).ok_or_else(|| bad("bool"))?),
        "comment" => Plain::Comment(text),
        other => return Err(ValueError::Format(format!("unknown type {other:?}"))),
    })
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub fn encrypt(plain: &Plain, key: &[u8; 32], aad: &str) -> String {
    let bytes = plain.to_bytes();
    if bytes.is_empty() && matches!(plain, Plain::Str(_) | Plain::Comment(_)) {
        return String::new();
    }
    let mut iv = [0u8; 32];
    OsRng.fill_bytes(&mut iv);
    let gcm = Gcm::new(key.into());
    let sealed = gcm
        .encrypt(
            Nonce::<U32>::from_slice(&iv),
            Payload {
                msg: &bytes,
                aad: aad.as_bytes(),
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let (data, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
        STANDARD.encode(data),
        STANDARD.encode(iv),
        STANDARD.encode(tag),
        plain.type_name()
    )
}

/// A fresh random data key.
pub fn data_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aad_binds_the_path() {
        let key = data_key();
        for plain in [
            Plain::Str("hunter2".into()),
            Plain::Int(-42),
            Plain::Float(1.5),
            Plain::Bool(false),
        ] {
            let enc = encrypt(&plain, &key, "data:password:");
            assert!(is_encrypted(&enc), "{enc}");
            assert_eq!(decrypt(&enc, &key, "data:password:").unwrap(), plain);
            assert!(matches!(
                decrypt(&enc, &key, "data:other:"),
                Err(ValueError::Auth)
            ));
        }
    }

    #[test]
    fn bytes_of_values_match_sops_to_bytes() {
        assert_eq!(Plain::Bool(true).to_bytes(), b"True");
        assert_eq!(Plain::Float(1.0).to_bytes(), b"1");
        assert_eq!(Plain::Float(0.000001).to_bytes(), b"0.000001");
        assert_eq!(Plain::Int(7).to_bytes(), b"7");
    }
}
