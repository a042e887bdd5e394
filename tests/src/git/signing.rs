use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow};

use super::{require_program, run};

/// A key that git can sign and verify commits and tags with.
pub trait Signer {
    /// Adds the `-c` options and environment that make `git` sign with, and trust, this key.
    fn configure(&self, cmd: &mut Command);
}

/// An ed25519 SSH signing key (`gpg.format=ssh`) with an allowed-signers file trusting it for
/// its email. Files live in a temporary directory removed on drop.
#[derive(Debug)]
pub struct SshKey {
    dir: tempfile::TempDir,
    email: String,
    public_key: String,
}

impl SshKey {
    /// Generates a new key (no passphrase) whose principal is `email`.
    pub fn generate(email: &str) -> Result<Self> {
        require_program("ssh-keygen", "openssh-client")?;
        let dir = tempfile::Builder::new()
            .prefix("gitops-ssh-key-")
            .tempdir()
            .context("creating a directory for an SSH key")?;
        let key = dir.path().join("id_ed25519");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", email, "-f"])
            .arg(&key))?;
        let pub_path = key.with_extension("pub");
        let public_key = std::fs::read_to_string(&pub_path)
            .with_context(|| format!("reading {}", pub_path.display()))?
            .trim()
            .to_owned();
        let signers = dir.path().join("allowed_signers");
        std::fs::write(
            &signers,
            format!("{email} namespaces=\"git\" {public_key}\n"),
        )
        .with_context(|| format!("writing {}", signers.display()))?;
        Ok(SshKey {
            dir,
            email: email.to_owned(),
            public_key,
        })
    }

    /// The private key file (OpenSSH format, unencrypted).
    pub fn private_key_path(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// The public key line, `ssh-ed25519 AAAA... <email>`.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// An allowed-signers file (`ssh-keygen -Y verify -f`, `gpg.ssh.allowedSignersFile`)
    /// trusting this key for [`SshKey::email`] in namespace `git`.
    pub fn allowed_signers_path(&self) -> PathBuf {
        self.dir.path().join("allowed_signers")
    }

    pub fn email(&self) -> &str {
        &self.email
    }
}

impl Signer for SshKey {
    fn configure(&self, cmd: &mut Command) {
        let key = self.private_key_path();
        let signers = self.allowed_signers_path();
        cmd.args(["-c", "gpg.format=ssh"])
            .arg("-c")
            .arg(format!("user.signingkey={}", key.display()))
            .arg("-c")
            .arg(format!("gpg.ssh.allowedSignersFile={}", signers.display()));
    }
}

/// An OpenPGP ed25519 signing key in its own temporary `GNUPGHOME`. Dropping it stops the
/// `gpg-agent` that gpg started for that home and removes the directory.
#[derive(Debug)]
pub struct GpgKey {
    home: tempfile::TempDir,
    fingerprint: String,
    email: String,
}

impl GpgKey {
    /// Generates a key for `Name <email>` without a passphrase.
    pub fn generate(name: &str, email: &str) -> Result<Self> {
        require_program("gpg", "gpg")?;
        require_program("gpg-agent", "gpg-agent")?;
        // Short path: gpg-agent's socket path must fit in sockaddr_un (108 bytes).
        let home = tempfile::Builder::new()
            .prefix("gpg-")
            .tempdir_in("/tmp")
            .context("creating a GNUPGHOME")?;
        // Built before generation so Drop stops the agent even when generation fails.
        let mut key = GpgKey {
            home,
            fingerprint: String::new(),
            email: email.to_owned(),
        };
        run(key
            .gpg()
            .args(["--passphrase", "", "--quick-gen-key"])
            .arg(format!("{name} <{email}>"))
            .args(["ed25519", "sign", "never"]))
        .with_context(|| format!("generating an OpenPGP key for {email}"))?;
        let listing = run(key
            .gpg()
            .args(["--with-colons", "--list-secret-keys", email]))?;
        let fingerprint = listing
            .lines()
            .find_map(|line| line.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|field| !field.is_empty()))
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no fingerprint in gpg --list-secret-keys output: {listing}"))?;
        key.fingerprint = fingerprint;
        Ok(key)
    }

    /// A `gpg --batch` command using this key's home.
    pub fn gpg(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", self.home.path()).arg("--batch");
        cmd
    }

    /// The `GNUPGHOME` holding the secret key.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The primary key's 40-hex-digit fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    /// The public key, ASCII-armored, e.g. to configure a verifier's keyring.
    pub fn public_key_armored(&self) -> Result<String> {
        run(self.gpg().args(["--armor", "--export", &self.fingerprint]))
    }
}

impl Signer for GpgKey {
    fn configure(&self, cmd: &mut Command) {
        cmd.env("GNUPGHOME", self.home.path())
            .args(["-c", "gpg.format=openpgp"])
            .arg("-c")
            .arg(format!("user.signingkey={}", self.fingerprint));
    }
}

impl Drop for GpgKey {
    fn drop(&mut self) {
        // Best effort: a leftover agent only holds a socket in a deleted directory.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}
