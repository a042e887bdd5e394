//! Webhook authentication: GitHub's HMAC signature and GitLab's shared token.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
pub const GITLAB_TOKEN_HEADER: &str = "x-gitlab-token";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("no {GITHUB_SIGNATURE_HEADER} or {GITLAB_TOKEN_HEADER} header")]
    Unauthenticated,
    #[error("{GITHUB_SIGNATURE_HEADER} is not of the form sha256=<64 hex digits>")]
    MalformedSignature,
    #[error("{GITHUB_SIGNATURE_HEADER} does not match the body")]
    BadSignature,
    #[error("{GITLAB_TOKEN_HEADER} does not match the configured secret")]
    BadToken,
    #[error("no webhook secret is configured")]
    NoSecret,
}

/// Reads `--webhook-secret-file`, refusing one that is empty or only whitespace: such a
/// secret would accept an empty `X-Gitlab-Token` (or a signature anyone can compute).
pub fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("--webhook-secret-file {}: {e}", path.display()))?;
    let secret = bytes.trim_ascii_end().to_vec();
    if secret.trim_ascii().is_empty() {
        return Err(format!(
            "--webhook-secret-file {}: the secret is empty or only whitespace",
            path.display()
        ));
    }
    Ok(secret)
}

/// Checks a webhook request against `secret`. `github_signature`/`gitlab_token` are the header
/// values, if present; GitHub's is checked first when both are sent.
pub fn authenticate(
    secret: &[u8],
    body: &[u8],
    github_signature: Option<&[u8]>,
    gitlab_token: Option<&[u8]>,
) -> Result<(), WebhookError> {
    if secret.trim_ascii().is_empty() {
        return Err(WebhookError::NoSecret);
    }
    if let Some(sig) = github_signature {
        let expected = sig
            .strip_prefix(b"sha256=")
            .and_then(decode_hex)
            .ok_or(WebhookError::MalformedSignature)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
        mac.update(body);
        // verify_slice compares in constant time.
        return mac
            .verify_slice(&expected)
            .map_err(|_| WebhookError::BadSignature);
    }
    if let Some(token) = gitlab_token {
        // ct_eq on unequal lengths returns false at once; the length of the secret is not secret.
        return if bool::from(token.ct_eq(secret)) {
            Ok(())
        } else {
            Err(WebhookError::BadToken)
        };
    }
    Err(WebhookError::Unauthenticated)
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    hex.chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// `sha256=<hex>` of `body` under `secret`, as GitHub sends it (for tests and tooling).
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #14: an empty (or whitespace) secret authenticated an empty GitLab token.
    #[test]
    fn empty_secrets_authenticate_nothing_and_are_refused_at_start() {
        for secret in [&b""[..], b" ", b"\t \n"] {
            assert_eq!(
                authenticate(secret, b"{}", None, Some(secret)),
                Err(WebhookError::NoSecret)
            );
            let sig = github_signature(secret, b"{}");
            assert_eq!(
                authenticate(secret, b"{}", Some(sig.as_bytes()), None),
                Err(WebhookError::NoSecret)
            );
        }
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [("empty", ""), ("blank", " \n\t\n")] {
            let path = dir.path().join(name);
            std::fs::write(&path, body).unwrap();
            let e = read_secret(&path).unwrap_err();
            assert!(
                e.contains("--webhook-secret-file") && e.contains("empty"),
                "{e}"
            );
        }
        let path = dir.path().join("good");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read_secret(&path).unwrap(), b"s3cret");
    }

    #[test]
    fn github_documented_vector() {
        // The example in GitHub's "Validating webhook deliveries" documentation.
        let sig = github_signature(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            sig,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert_eq!(
            authenticate(
                b"It's a Secret to Everybody",
                b"Hello, World!",
                Some(sig.as_bytes()),
                None
            ),
            Ok(())
        );
    }

    #[test]
    fn github_rejects_wrong_body_secret_or_format() {
        let sig = github_signature(b"s3cret", b"{\"ref\":\"refs/heads/main\"}");
        let check = |body: &[u8], secret: &[u8], sig: &str| {
            authenticate(secret, body, Some(sig.as_bytes()), None)
        };
        assert_eq!(
            check(b"{\"ref\":\"refs/heads/evil\"}", b"s3cret", &sig),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            check(b"{\"ref\":\"refs/heads/main\"}", b"other", &sig),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            check(b"x", b"s3cret", "sha1=abcd"),
            Err(WebhookError::MalformedSignature)
        );
        assert_eq!(
            check(b"x", b"s3cret", &format!("sha256={}", "zz".repeat(32))),
            Err(WebhookError::MalformedSignature)
        );
    }

    #[test]
    fn gitlab_token_and_missing_headers() {
        assert_eq!(authenticate(b"tok", b"{}", None, Some(b"tok")), Ok(()));
        assert_eq!(
            authenticate(b"tok", b"{}", None, Some(b"tok2")),
            Err(WebhookError::BadToken)
        );
        assert_eq!(
            authenticate(b"tok", b"{}", None, Some(b"")),
            Err(WebhookError::BadToken)
        );
        assert_eq!(
            authenticate(b"tok", b"{}", None, None),
            Err(WebhookError::Unauthenticated)
        );
    }
}
