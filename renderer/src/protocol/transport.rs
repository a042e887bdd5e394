//! Whether the agent can be fed commits by anyone on the network path: no signature
//! verification, over a transport that does not authenticate the server. The agent publishes
//! the warning in its status; `install` prints it before applying.

/// The URL schemes that carry Git without authenticating the server.
const UNAUTHENTICATED: [&str; 2] = ["git://", "http://"];

/// The warning for an agent fetching `url` with `--verify=verify` (`none`, `ssh`, `openpgp`),
/// or `None` when either the transport or the signatures authenticate what it applies.
pub fn insecure_transport_warning(url: &str, verify: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = UNAUTHENTICATED.iter().find(|s| lower.starts_with(*s))?;
    (verify == "none").then(|| {
        format!(
            "UNVERIFIED over an unauthenticated transport: the repository is fetched over {scheme} \
             and --verify=none, so anyone on the network path can make the agent apply anything; \
             use https:// or ssh://, or --verify=ssh|openpgp with --trusted-keys"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unverified_plain_transports_warn() {
        for url in ["git://git.example.com/r.git", "HTTP://10.0.0.1/r.git"] {
            let w = insecure_transport_warning(url, "none").expect(url);
            assert!(w.starts_with("UNVERIFIED"), "{w}");
        }
        assert!(
            insecure_transport_warning("git://h/r", "none")
                .unwrap()
                .contains("git://")
        );
        for (url, verify) in [
            ("git://h/r.git", "ssh"),
            ("http://h/r.git", "openpgp"),
            ("https://h/r.git", "none"),
            ("ssh://git@h/r.git", "none"),
            ("git@h:r.git", "none"),
            ("file:///srv/r", "none"),
        ] {
            assert_eq!(
                insecure_transport_warning(url, verify),
                None,
                "{url} {verify}"
            );
        }
    }
}
