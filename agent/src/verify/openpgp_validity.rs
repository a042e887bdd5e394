//! Whether an OpenPGP key may still sign: revocation and expiry, as `git verify-commit` (gpg)
//! judges them. A signature by a revoked or expired key (`REVKEYSIG`, `EXPKEYSIG`) fails there,
//! so it fails here too, whatever the signature's own time says: a stolen key is revoked
//! precisely because its holder can backdate signatures.

use pgp::composed::{SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{Signature, SignatureType};
use pgp::types::KeyDetails;

/// The first reason key `key` (or its signing subkey `sub`) may not sign at `now` (Unix
/// seconds), if any.
pub(super) fn unusable(
    key: &SignedPublicKey,
    sub: Option<&SignedPublicSubKey>,
    now: u64,
) -> Option<String> {
    let primary = format!("key {:X}", key.fingerprint());
    if let Some(sig) = key
        .details
        .revocation_signatures
        .iter()
        .find(|s| s.typ() == Some(SignatureType::KeyRevocation))
    {
        return Some(format!("{primary} was revoked{}", revocation_detail(sig)));
    }
    let self_sigs = key
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(key.details.direct_signatures.iter())
        .filter(|s| {
            s.issuer_fingerprint()
                .iter()
                .any(|f| f.as_bytes() == key.fingerprint().as_bytes())
                || s.issuer_key_id()
                    .iter()
                    .any(|i| i.as_ref() == key.legacy_key_id().as_ref())
        });
    if let Some(end) = expiry(key.created_at().as_secs(), newest(self_sigs))
        && end <= now
    {
        return Some(format!("{primary} expired on {}", date(end)));
    }
    let sub = sub?;
    let name = format!("signing subkey {:X} of {primary}", sub.key.fingerprint());
    if let Some(sig) = sub
        .signatures
        .iter()
        .find(|s| s.typ() == Some(SignatureType::SubkeyRevocation))
    {
        return Some(format!("{name} was revoked{}", revocation_detail(sig)));
    }
    let bindings = sub
        .signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding));
    match expiry(sub.key.created_at().as_secs(), newest(bindings)) {
        Some(end) if end <= now => Some(format!("{name} expired on {}", date(end))),
        _ => None,
    }
}

/// The most recent of some self-signatures: the one in force (RFC 9580, 5.2.3.10).
fn newest<'a>(sigs: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    sigs.max_by_key(|s| s.created().map_or(0, |t| t.as_secs()))
}

/// When a key created at `created` expires under self-signature `sig` (none: never; a
/// lifetime of 0 means no expiry too).
fn expiry(created: u32, sig: Option<&Signature>) -> Option<u64> {
    let lifetime = sig?.key_expiration_time()?.as_secs();
    (lifetime != 0).then(|| u64::from(created) + u64::from(lifetime))
}

fn revocation_detail(sig: &Signature) -> String {
    let when = sig
        .created()
        .map(|t| format!(" on {}", date(u64::from(t.as_secs()))))
        .unwrap_or_default();
    let why = sig
        .revocation_reason_string()
        .map(|r| {
            let text: String = String::from_utf8_lossy(r)
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            text.trim().to_string()
        })
        .filter(|r| !r.is_empty())
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!("{when}{why}")
}

fn date(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| format!("@{secs}"), |t| t.to_string())
}

/// Now, in Unix seconds.
pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
