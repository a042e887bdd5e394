//! OpenPGP signatures (what `git commit -S` writes with gpg) against armored public keys.

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

use super::{Signer, VerifyError};

pub(super) const ARMOR_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";

/// Every public key in `text` (one or more armored blocks, e.g. concatenated `gpg --export -a`).
pub(super) fn parse_keys(text: &str) -> Result<Vec<SignedPublicKey>, String> {
    let (keys, _) = SignedPublicKey::from_string_many(text).map_err(|e| e.to_string())?;
    let keys: Vec<SignedPublicKey> = keys
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unreadable public key: {e}"))?;
    for key in &keys {
        key.verify_bindings().map_err(|e| {
            format!(
                "key {:X}: self-signatures do not verify: {e}",
                key.fingerprint()
            )
        })?;
    }
    if keys.is_empty() {
        return Err("no OpenPGP public keys".into());
    }
    Ok(keys)
}

pub(super) fn verify(
    keys: &[SignedPublicKey],
    object: &str,
    armored: &str,
    payload: &[u8],
) -> Result<Signer, VerifyError> {
    let (sig, _) = DetachedSignature::from_string(armored).map_err(|e| VerifyError::Malformed {
        object: object.to_string(),
        reason: e.to_string(),
    })?;
    let issuer_fps = sig.signature.issuer_fingerprint();
    let issuer_ids = sig.signature.issuer_key_id();
    let issued_by = |fp: pgp::types::Fingerprint, id: pgp::types::KeyId| {
        issuer_fps.iter().any(|f| f.as_bytes() == fp.as_bytes())
            || issuer_ids.iter().any(|i| i.as_ref() == id.as_ref())
    };
    let issuer_name = issuer_fps
        .first()
        .map(|f| format!("{f:X}"))
        .or_else(|| issuer_ids.first().map(|i| hex(i.as_ref())))
        .unwrap_or_else(|| "(no issuer recorded)".into());

    for key in keys {
        let signer = || Signer {
            identity: key
                .details
                .users
                .first()
                .and_then(|u| u.id.as_str())
                .unwrap_or("(no user ID)")
                .to_string(),
            fingerprint: format!("{:X}", key.fingerprint()),
        };
        let bad = |e: pgp::errors::Error| VerifyError::BadSignature {
            object: object.to_string(),
            key: format!("{issuer_name} ({})", signer().identity),
            reason: e.to_string(),
        };
        let revoked_or_expired = |sub| {
            super::openpgp_validity::unusable(key, sub, super::openpgp_validity::now()).map(
                |reason| VerifyError::KeyUnusable {
                    object: object.to_string(),
                    key: signer().to_string(),
                    reason,
                },
            )
        };
        if issued_by(key.fingerprint(), key.legacy_key_id()) {
            sig.verify(key, payload).map_err(bad)?;
            if let Some(e) = revoked_or_expired(None) {
                return Err(e);
            }
            return Ok(signer());
        }
        for sub in &key.public_subkeys {
            if issued_by(sub.fingerprint(), sub.legacy_key_id()) {
                // Only a subkey the primary key really bound may sign for it.
                sub.verify_bindings(&key.primary_key).map_err(bad)?;
                sig.verify(sub, payload).map_err(bad)?;
                if let Some(e) = revoked_or_expired(Some(sub)) {
                    return Err(e);
                }
                return Ok(signer());
            }
        }
    }
    Err(VerifyError::UnknownKey {
        object: object.to_string(),
        key: issuer_name,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
