//! The digest of a rendered set: what the agent publishes as `appliedDigest` and
//! `kubectl gitops render --digest` prints, so a reader can prove the preview is what runs.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hex SHA-256 over the rendered objects in render order, each as compact JSON followed by a
/// newline. Taken before the agent's decoration (namespace, ApplySet label), so it depends on
/// the commit's tree and the overlay only.
pub fn render_digest<'a>(objects: impl IntoIterator<Item = &'a Value>) -> String {
    let mut hash = Sha256::new();
    for object in objects {
        hash.update(object.to_string().as_bytes());
        hash.update(b"\n");
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_is_sha256_of_the_json_lines() {
        let a = json!({"kind": "ConfigMap", "metadata": {"name": "a"}});
        let b = json!({"kind": "ConfigMap", "metadata": {"name": "b"}});
        // Oracle: `printf '%s\n%s\n' ... | sha256sum`.
        let text = format!("{a}\n{b}\n");
        let out = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(text.as_bytes())?;
                child.wait_with_output()
            })
            .expect("sha256sum runs");
        let expected = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            render_digest([&a, &b]),
            expected.split_whitespace().next().unwrap()
        );
        assert_ne!(
            render_digest([&b, &a]),
            render_digest([&a, &b]),
            "order is part of it"
        );
    }
}
