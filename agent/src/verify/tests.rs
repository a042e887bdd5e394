//! Real signatures made by the real `git`, `ssh-keygen` and `gpg` in temporary directories.

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{Oid, Repository};
use tempfile::TempDir;

use super::*;

fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Repo {
    dir: TempDir,
    /// Extra environment for git (GNUPGHOME).
    env: Vec<(&'static str, PathBuf)>,
    /// `-c` settings that make `git commit -S` / `git tag -s` use a given key.
    sign_config: Vec<String>,
}

impl Repo {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let r = Self {
            dir,
            env: Vec::new(),
            sign_config: Vec::new(),
        };
        r.git(&["init", "-q", "-b", "main"]);
        r.git(&["config", "user.name", "Alice"]);
        r.git(&["config", "user.email", "alice@example.com"]);
        r
    }

    fn git(&self, args: &[&str]) -> String {
        let mut full: Vec<&str> = Vec::new();
        for c in &self.sign_config {
            full.extend(["-c", c.as_str()]);
        }
        full.extend(args);
        let env: Vec<(&str, &Path)> = self.env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        run(self.dir.path(), "git", &full, &env)
    }

    fn commit(&self, file: &str, signed: bool) -> Oid {
        std::fs::write(self.dir.path().join(file), file).unwrap();
        self.git(&["add", file]);
        let mut args = vec!["commit", "-q", "-m", "deploy v2"];
        if signed {
            args.push("-S");
        }
        self.git(&args);
        Oid::from_str(&self.git(&["rev-parse", "HEAD"])).unwrap()
    }

    fn tag(&self, name: &str, signed: bool) -> Oid {
        self.git(&[
            "tag",
            if signed { "-s" } else { "-a" },
            name,
            "-m",
            "release",
        ]);
        Oid::from_str(&self.git(&["rev-parse", &format!("refs/tags/{name}")])).unwrap()
    }

    /// A copy of the signed commit at HEAD with its message changed and the signature kept.
    fn tampered_head(&self) -> Oid {
        let raw = self.git(&["cat-file", "commit", "HEAD"]);
        let forged = raw.replace("deploy v2", "deploy v2 with a backdoor");
        assert_ne!(raw, forged);
        let path = self.dir.path().join("forged");
        std::fs::write(&path, format!("{forged}\n")).unwrap();
        Oid::from_str(&self.git(&["hash-object", "-t", "commit", "-w", "forged"])).unwrap()
    }

    fn repo(&self) -> Repository {
        Repository::open(self.dir.path()).unwrap()
    }
}

fn ssh_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    run(
        dir,
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            name,
            "-f",
            path.to_str().unwrap(),
        ],
        &[],
    );
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

fn ssh_repo(signing_key: &Path) -> Repo {
    let mut r = Repo::new();
    r.sign_config = vec![
        "gpg.format=ssh".into(),
        format!("user.signingkey={}", signing_key.display()),
    ];
    r
}

fn ssh_verifier(public: &str) -> Verifier {
    Verifier::from_text(
        Format::Ssh,
        &format!("alice@example.com namespaces=\"git\" {public}\n"),
    )
    .unwrap()
}

#[test]
fn ssh_signed_commit_by_trusted_key_verifies() {
    let keys = TempDir::new().unwrap();
    let (private, public) = ssh_key(keys.path(), "alice");
    let r = ssh_repo(&private);
    let oid = r.commit("a.yaml", true);
    let signer = ssh_verifier(&public).verify_commit(&r.repo(), oid).unwrap();
    assert_eq!(signer.identity, "alice@example.com");
    assert!(signer.fingerprint.starts_with("SHA256:"), "{signer}");
}

#[test]
fn ssh_unsigned_untrusted_and_tampered_are_refused() {
    let keys = TempDir::new().unwrap();
    let (alice, alice_pub) = ssh_key(keys.path(), "alice");
    let (mallory, _) = ssh_key(keys.path(), "mallory");
    let verifier = ssh_verifier(&alice_pub);

    let r = ssh_repo(&alice);
    let unsigned = r.commit("a.yaml", false);
    let err = verifier.verify_commit(&r.repo(), unsigned).unwrap_err();
    assert!(matches!(err, VerifyError::Unsigned { .. }), "{err}");
    assert_eq!(err.to_string(), format!("commit {unsigned} is not signed"));

    r.commit("b.yaml", true);
    let tampered = r.tampered_head();
    let err = verifier.verify_commit(&r.repo(), tampered).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains(&tampered.to_string()), "{err}");

    let m = ssh_repo(&mallory);
    let by_mallory = m.commit("c.yaml", true);
    let err = verifier.verify_commit(&m.repo(), by_mallory).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKey { .. }), "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");
}

#[test]
fn ssh_key_limited_to_other_namespaces_is_not_trusted_for_git() {
    let keys = TempDir::new().unwrap();
    let (alice, alice_pub) = ssh_key(keys.path(), "alice");
    let r = ssh_repo(&alice);
    let oid = r.commit("a.yaml", true);
    let verifier = Verifier::from_text(
        Format::Ssh,
        &format!("alice@example.com namespaces=\"file\" {alice_pub}"),
    )
    .unwrap();
    let err = verifier.verify_commit(&r.repo(), oid).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKey { .. }), "{err}");
}

#[test]
fn ssh_signed_annotated_tag_verifies_and_unsigned_tag_does_not() {
    let keys = TempDir::new().unwrap();
    let (alice, alice_pub) = ssh_key(keys.path(), "alice");
    let r = ssh_repo(&alice);
    let commit = r.commit("a.yaml", false);
    let signed = r.tag("v1.0.0", true);
    let verifier = ssh_verifier(&alice_pub);
    assert_eq!(
        verifier.verify_tag(&r.repo(), signed).unwrap().identity,
        "alice@example.com"
    );

    let unsigned = r.tag("v1.0.1", false);
    let err = verifier.verify_tag(&r.repo(), unsigned).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("tag v1.0.1 ({unsigned}) is not signed")
    );
    let err = verifier.verify_tag(&r.repo(), commit).unwrap_err();
    assert!(matches!(err, VerifyError::Malformed { .. }), "{err}");
}

/// A throw-away GnuPG home with one key per name; the agent it starts is stopped on drop.
struct Gpg {
    home: TempDir,
}

impl Gpg {
    fn new(names: &[&str]) -> Self {
        let home = TempDir::new().unwrap();
        let g = Self { home };
        for name in names {
            g.run(&[
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                &format!("{name} <{name}@example.com>"),
                "ed25519",
                "sign",
                "never",
            ]);
        }
        g
    }

    fn run(&self, args: &[&str]) -> String {
        run(
            self.home.path(),
            "gpg",
            args,
            &[("GNUPGHOME", self.home.path())],
        )
    }

    fn export(&self, name: &str) -> String {
        self.run(&["--armor", "--export", &format!("{name}@example.com")])
    }

    fn repo(&self, name: &str) -> Repo {
        let mut r = Repo::new();
        r.env = vec![("GNUPGHOME", self.home.path().to_path_buf())];
        r.sign_config = vec![
            "gpg.format=openpgp".into(),
            format!("user.signingkey={name}@example.com"),
        ];
        r
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", self.home.path())
            .status();
    }
}

#[test]
fn openpgp_commits_and_tags() {
    let gpg = Gpg::new(&["alice", "mallory"]);
    let verifier = Verifier::from_text(Format::OpenPgp, &gpg.export("alice")).unwrap();

    let r = gpg.repo("alice");
    let signed = r.commit("a.yaml", true);
    let signer = verifier.verify_commit(&r.repo(), signed).unwrap();
    assert_eq!(signer.identity, "alice <alice@example.com>");
    assert_eq!(signer.fingerprint.len(), 40, "{signer}");

    let tag = r.tag("v2.0.0", true);
    assert_eq!(verifier.verify_tag(&r.repo(), tag).unwrap(), signer);

    let tampered = r.tampered_head();
    let err = verifier.verify_commit(&r.repo(), tampered).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");

    let unsigned = r.commit("b.yaml", false);
    assert!(matches!(
        verifier.verify_commit(&r.repo(), unsigned),
        Err(VerifyError::Unsigned { .. })
    ));

    let m = gpg.repo("mallory");
    let by_mallory = m.commit("c.yaml", true);
    let err = verifier.verify_commit(&m.repo(), by_mallory).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKey { .. }), "{err}");
}

#[test]
fn wrong_signature_format_is_named() {
    let keys = TempDir::new().unwrap();
    let (alice, _) = ssh_key(keys.path(), "alice");
    let r = ssh_repo(&alice);
    let oid = r.commit("a.yaml", true);
    let gpg = Gpg::new(&["alice"]);
    let verifier = Verifier::from_text(Format::OpenPgp, &gpg.export("alice")).unwrap();
    let err = verifier.verify_commit(&r.repo(), oid).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "commit {oid} is signed with an SSH signature, but the agent verifies OpenPGP signatures"
        )
    );
}

#[test]
fn key_file_errors_name_the_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("allowed_signers");
    std::fs::write(&path, "alice@example.com ssh-ed25519 AAAA!!\n").unwrap();
    let err = Verifier::from_file(Format::Ssh, &path).err().unwrap();
    assert!(err.to_string().contains("allowed_signers: line 1"), "{err}");
    let missing = Verifier::from_file(Format::OpenPgp, &dir.path().join("nope"))
        .err()
        .unwrap();
    assert!(missing.to_string().contains("nope"), "{missing}");
    assert!(Verifier::from_text(Format::OpenPgp, "not armor").is_err());
}

/// A `gpg` wrapper for `gpg.program` that runs gpg at a fixed past time, so a key can be made
/// and used in its valid days and judged now, after they ended.
fn gpg_at(dir: &Path, time: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("gpg-at");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nexec gpg --faked-system-time '{time}!' \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Issue #14: a key that expired (here in 2020, one day after it was made) must not verify,
/// although its signature, made while it was valid, is mathematically good.
#[test]
fn openpgp_signature_by_an_expired_key_is_refused() {
    let gpg = Gpg::new(&["alice"]);
    let wrapper = gpg_at(gpg.home.path(), "20200101T120000");
    gpg.run(&[
        "--batch",
        "--passphrase",
        "",
        "--faked-system-time",
        "20200101T000000!",
        "--quick-gen-key",
        "old <old@example.com>",
        "ed25519",
        "sign",
        "1d",
    ]);
    let verifier = Verifier::from_text(Format::OpenPgp, &gpg.export("old")).unwrap();
    let mut r = gpg.repo("old");
    r.sign_config
        .push(format!("gpg.program={}", wrapper.display()));
    let signed = r.commit("a.yaml", true);
    let err = verifier.verify_commit(&r.repo(), signed).unwrap_err();
    assert!(matches!(err, VerifyError::KeyUnusable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("old <old@example.com>") && text.contains("expired on 2020-01-02T00:00:00Z"),
        "{text}"
    );
    let tag = r.tag("v1.0.0", true);
    assert!(matches!(
        verifier.verify_tag(&r.repo(), tag),
        Err(VerifyError::KeyUnusable { .. })
    ));

    // A key with an expiry still ahead verifies.
    gpg.run(&[
        "--batch",
        "--passphrase",
        "",
        "--quick-gen-key",
        "bob <bob@example.com>",
        "ed25519",
        "sign",
        "1y",
    ]);
    let verifier = Verifier::from_text(Format::OpenPgp, &gpg.export("bob")).unwrap();
    let b = gpg.repo("bob");
    let ok = b.commit("b.yaml", true);
    assert_eq!(
        verifier.verify_commit(&b.repo(), ok).unwrap().identity,
        "bob <bob@example.com>"
    );
}

/// The fingerprint gpg gave `name`'s primary key.
fn fingerprint(gpg: &Gpg, name: &str) -> String {
    gpg.run(&[
        "--with-colons",
        "--list-keys",
        &format!("{name}@example.com"),
    ])
    .lines()
    .find_map(|l| l.strip_prefix("fpr:"))
    .map(|l| l.trim_matches(':').to_string())
    .unwrap()
}

/// Issue #14: after the owner revokes the key (gpg's own revocation certificate, imported),
/// commits it signed before no longer verify; the trusted-keys file carries the revocation.
#[test]
fn openpgp_signature_by_a_revoked_key_is_refused() {
    let gpg = Gpg::new(&["alice"]);
    let r = gpg.repo("alice");
    let signed = r.commit("a.yaml", true);
    let before = Verifier::from_text(Format::OpenPgp, &gpg.export("alice")).unwrap();
    assert!(before.verify_commit(&r.repo(), signed).is_ok());

    let fpr = fingerprint(&gpg, "alice");
    let cert = gpg.home.path().join(format!("openpgp-revocs.d/{fpr}.rev"));
    // gpg writes the certificate with a ':' before the armor so it is not imported by mistake.
    let text = std::fs::read_to_string(&cert)
        .unwrap()
        .replace(":-----BEGIN", "-----BEGIN");
    std::fs::write(&cert, text).unwrap();
    gpg.run(&["--batch", "--import", cert.to_str().unwrap()]);

    let after = Verifier::from_text(Format::OpenPgp, &gpg.export("alice")).unwrap();
    let err = after.verify_commit(&r.repo(), signed).unwrap_err();
    assert!(matches!(err, VerifyError::KeyUnusable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("key {fpr} was revoked on ")),
        "{text}"
    );
}

/// A signing subkey that expired, under a primary key that did not, is refused too.
#[test]
fn openpgp_signature_by_an_expired_subkey_is_refused() {
    let gpg = Gpg::new(&[]);
    gpg.run(&[
        "--batch",
        "--passphrase",
        "",
        "--faked-system-time",
        "20200101T000000!",
        "--quick-gen-key",
        "carol <carol@example.com>",
        "ed25519",
        "cert",
        "never",
    ]);
    let fpr = fingerprint(&gpg, "carol");
    gpg.run(&[
        "--batch",
        "--passphrase",
        "",
        "--faked-system-time",
        "20200101T000100!",
        "--quick-add-key",
        &fpr,
        "ed25519",
        "sign",
        "1d",
    ]);
    let wrapper = gpg_at(gpg.home.path(), "20200101T120000");
    let verifier = Verifier::from_text(Format::OpenPgp, &gpg.export("carol")).unwrap();
    let mut r = gpg.repo("carol");
    r.sign_config
        .push(format!("gpg.program={}", wrapper.display()));
    let signed = r.commit("a.yaml", true);
    let err = verifier.verify_commit(&r.repo(), signed).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("signing subkey") && text.contains(&format!("of key {fpr} expired on")),
        "{text}"
    );
}
