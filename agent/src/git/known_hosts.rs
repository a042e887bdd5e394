//! Host-key checking against a mounted known_hosts file, so ssh never trusts on first use.

use base64::Engine as _;

/// True when `known_hosts` lists `host` (or `[host]:port`) with exactly `key`.
/// Hashed entries (`|1|…`) are not supported: write the host names in clear.
pub fn is_known(known_hosts: &str, host: &str, port: Option<u16>, key: &[u8]) -> bool {
    let wanted = match port {
        Some(p) if p != 22 => format!("[{host}]:{p}"),
        _ => host.to_string(),
    };
    known_hosts
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('@'))
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let hosts = fields.next()?;
            let _key_type = fields.next()?;
            let encoded = fields.next()?;
            Some((hosts, encoded))
        })
        .filter(|(hosts, _)| hosts.split(',').any(|h| h == wanted))
        .any(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .is_ok_and(|k| k == key)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_host_and_key() {
        let key = b"\x00\x00\x00\x0bssh-ed25519key";
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        let file = format!(
            "# comment\ngit.example.com,10.0.0.1 ssh-ed25519 {encoded}\n[localhost]:2222 ssh-ed25519 {encoded}\n"
        );
        assert!(is_known(&file, "git.example.com", None, key));
        assert!(is_known(&file, "10.0.0.1", Some(22), key));
        assert!(is_known(&file, "localhost", Some(2222), key));
        assert!(!is_known(&file, "localhost", None, key));
        assert!(!is_known(&file, "git.example.com", None, b"other"));
    }
}
