//! SSH signatures (`SSHSIG`, as `git -c gpg.format=ssh` writes them) and allowed-signers files
//! (the `ssh-keygen -Y verify` format, see ssh-keygen(1) "ALLOWED SIGNERS").

use ssh_key::{HashAlg, PublicKey, SshSig};

use super::{Signer, VerifyError};

pub(super) const PEM_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
/// The namespace git signs commits and tags in.
const GIT_NAMESPACE: &str = "git";

/// One line of an allowed-signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    /// The comma-separated principals column.
    pub principals: String,
    pub key: PublicKey,
    /// From the `namespaces="…"` option; `None` allows every namespace.
    pub namespaces: Option<Vec<String>>,
}

/// Parses `principals [options] keytype base64 [comment]` lines; `#` comments and blank lines
/// are skipped. Certificate-authority lines are refused: the agent trusts keys, not CAs.
pub(super) fn parse_allowed_signers(text: &str) -> Result<Vec<AllowedSigner>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |reason: String| format!("line {}: {reason}", n + 1);
        let (principals, rest) = split_token(line);
        let rest = rest.trim_start();
        // Options are present exactly when what follows the principals is not a key.
        let (options, key_text) = match PublicKey::from_openssh(rest) {
            Ok(_) => ("", rest),
            Err(_) => {
                let (opts, key) = split_token(rest);
                (opts, key.trim_start())
            }
        };
        let key = PublicKey::from_openssh(key_text)
            .map_err(|e| at(format!("not a public key ({e}): {key_text:.40}")))?;
        let mut namespaces = None;
        for opt in split_options(options) {
            let (name, value) = opt.split_once('=').unwrap_or((opt, ""));
            match name.to_ascii_lowercase().as_str() {
                "namespaces" => {
                    let value = value.trim_matches('"');
                    namespaces = Some(value.split(',').map(|s| s.trim().to_string()).collect());
                }
                "cert-authority" => return Err(at("cert-authority keys are not supported".into())),
                // valid-after/valid-before need the signature time, which SSHSIG lacks; git
                // itself checks them against the commit date. Accepting them unchecked would
                // silently widen trust, so refuse.
                other => return Err(at(format!("option {other:?} is not supported"))),
            }
        }
        out.push(AllowedSigner {
            principals: principals.to_string(),
            key,
            namespaces,
        });
    }
    if out.is_empty() {
        return Err("no allowed signers".into());
    }
    Ok(out)
}

/// The first whitespace-separated token (double quotes may hold spaces) and the rest.
fn split_token(s: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&s[..i], &s[i..]),
            _ => {}
        }
    }
    (s, "")
}

/// Comma-separated options, commas inside quotes kept.
fn split_options(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().filter(|o| !o.is_empty()).collect()
}

pub(super) fn verify(
    signers: &[AllowedSigner],
    object: &str,
    armored: &str,
    payload: &[u8],
) -> Result<Signer, VerifyError> {
    let sig = SshSig::from_pem(armored.trim()).map_err(|e| VerifyError::Malformed {
        object: object.to_string(),
        reason: e.to_string(),
    })?;
    let key_name = PublicKey::from(sig.public_key().clone())
        .fingerprint(HashAlg::Sha256)
        .to_string();
    let trusted = signers.iter().find(|s| {
        s.key.key_data() == sig.public_key()
            && s.namespaces
                .as_ref()
                .is_none_or(|ns| ns.iter().any(|n| n == GIT_NAMESPACE))
    });
    let Some(signer) = trusted else {
        return Err(VerifyError::UnknownKey {
            object: object.to_string(),
            key: key_name,
        });
    };
    signer
        .key
        .verify(GIT_NAMESPACE, payload, &sig)
        .map_err(|e| VerifyError::BadSignature {
            object: object.to_string(),
            key: key_name.clone(),
            reason: e.to_string(),
        })?;
    Ok(Signer {
        identity: signer.principals.clone(),
        fingerprint: key_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDVfFmR0t7tTf6ekIV5W/X61dihg7UoPfQsw5Ej6dzzH";

    #[test]
    fn parses_principals_options_and_comments() {
        let text = format!(
            "# release managers\n\nalice@example.com {KEY} alice laptop\n\
             bob@example.com,ci@example.com namespaces=\"git,file\" {KEY}\n"
        );
        let signers = parse_allowed_signers(&text).unwrap();
        assert_eq!(signers.len(), 2);
        assert_eq!(signers[0].principals, "alice@example.com");
        assert_eq!(signers[0].namespaces, None);
        assert_eq!(signers[1].principals, "bob@example.com,ci@example.com");
        assert_eq!(
            signers[1].namespaces.as_deref(),
            Some(&["git".to_string(), "file".to_string()][..])
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let err = parse_allowed_signers(&format!("a@x cert-authority {KEY}")).unwrap_err();
        assert!(err.starts_with("line 1: cert-authority"), "{err}");
        let err =
            parse_allowed_signers(&format!("a@x valid-before=\"20300101\" {KEY}")).unwrap_err();
        assert!(err.contains("valid-before"), "{err}");
        let err = parse_allowed_signers("# only\n\na@x ssh-ed25519 notbase64!").unwrap_err();
        assert!(err.starts_with("line 3: not a public key"), "{err}");
        assert_eq!(
            parse_allowed_signers("# none\n").unwrap_err(),
            "no allowed signers"
        );
    }
}
