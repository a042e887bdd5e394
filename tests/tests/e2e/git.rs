//! The Git helpers serve real repositories over git://, smart HTTP and file://, and sign
//! commits and tags with real SSH and OpenPGP keys.

use std::cell::Cell;
use std::path::Path;

use anyhow::{Context, Result};
use git2::build::RepoBuilder;
use git2::{Cred, FetchOptions, RemoteCallbacks, Repository};
use tests::git::{BasicAuth, GitDaemon, GpgKey, HttpGitServer, Repo, SshKey};

fn clone(url: &str, into: &Path, auth: Option<&BasicAuth>) -> Result<Repository, git2::Error> {
    let mut callbacks = RemoteCallbacks::new();
    let attempts = Cell::new(0);
    callbacks.credentials(move |_url, _username, _allowed| {
        // libgit2 asks again after every 401; answer once so wrong credentials fail fast.
        attempts.set(attempts.get() + 1);
        match auth {
            Some(auth) if attempts.get() == 1 => {
                Cred::userpass_plaintext(&auth.username, &auth.password)
            }
            _ => Err(git2::Error::from_str("no (more) credentials")),
        }
    });
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks);
    RepoBuilder::new().fetch_options(fetch).clone(url, into)
}

fn head_of(repo: &Repository) -> Result<String> {
    Ok(repo.head()?.peel_to_commit()?.id().to_string())
}

fn sample_repo() -> Result<(Repo, String)> {
    let repo = Repo::new()?;
    repo.commit_files(
        &[("app/kustomization.yaml", "resources: [cm.yaml]\n")],
        "init",
    )?;
    let head = repo.commit_files(&[("app/cm.yaml", "kind: ConfigMap\n")], "add cm")?;
    Ok((repo, head))
}

#[test]
fn clone_over_git_protocol() -> Result<()> {
    let (repo, head) = sample_repo()?;
    let tag = repo.tag("v1.0.0", &head, "release 1.0.0")?;
    let daemon = GitDaemon::serve(repo.root())?;
    let dest = tempfile::tempdir()?;
    let cloned = clone(&daemon.url(repo.name()), dest.path(), None)?;
    assert_eq!(head_of(&cloned)?, head);
    let cm = std::fs::read_to_string(dest.path().join("app/cm.yaml"))?;
    assert_eq!(cm, "kind: ConfigMap\n");
    let fetched_tag = cloned.refname_to_id("refs/tags/v1.0.0")?;
    assert_eq!(fetched_tag.to_string(), tag);
    assert_ne!(tag, head, "an annotated tag is its own object");
    Ok(())
}

#[test]
fn git_daemon_stops_on_drop() -> Result<()> {
    let (repo, _) = sample_repo()?;
    let daemon = GitDaemon::serve(repo.root())?;
    let url = daemon.url(repo.name());
    drop(daemon);
    let dest = tempfile::tempdir()?;
    assert!(
        clone(&url, dest.path(), None).is_err(),
        "cloned {url} after the daemon stopped"
    );
    Ok(())
}

#[test]
fn clone_over_smart_http_with_basic_auth() -> Result<()> {
    let (repo, head) = sample_repo()?;
    let auth = BasicAuth::new("reader", "s3cret");
    let server = HttpGitServer::serve(repo.root(), Some(auth.clone()))?;
    let url = server.url(repo.name());

    let dest = tempfile::tempdir()?;
    let cloned = clone(&url, dest.path(), Some(&auth)).context("clone with good credentials")?;
    assert_eq!(head_of(&cloned)?, head);

    let wrong = BasicAuth::new("reader", "wrong");
    let dest = tempfile::tempdir()?;
    let Err(err) = clone(&url, dest.path(), Some(&wrong)) else {
        panic!("clone with a wrong password succeeded");
    };
    assert!(err.message().contains("credentials"), "{err}");

    let dest = tempfile::tempdir()?;
    assert!(
        clone(&url, dest.path(), None).is_err(),
        "anonymous clone succeeded"
    );
    assert!(
        server.unauthorized_count() >= 2,
        "401s: {}",
        server.unauthorized_count()
    );
    Ok(())
}

#[test]
fn smart_http_serves_the_git_cli_and_accepts_authenticated_push() -> Result<()> {
    let (repo, head) = sample_repo()?;
    let auth = BasicAuth::new("writer", "pw");
    let server = HttpGitServer::serve(repo.root(), Some(auth))?;
    let url = server
        .url(repo.name())
        .replace("http://", "http://writer:pw@");
    let work = tempfile::tempdir()?;
    let clone = Repo::init_in(work.path(), "clone")?;
    clone.git(&["fetch", "--quiet", &url, "main"])?;
    assert_eq!(clone.rev_parse("FETCH_HEAD")?, head);
    clone.git(&["reset", "--quiet", "--hard", "FETCH_HEAD"])?;
    let pushed = clone.commit_files(&[("app/new.yaml", "x: 1\n")], "pushed over http")?;
    clone.git(&["push", "--quiet", &url, "HEAD:refs/heads/feature"])?;
    assert_eq!(repo.rev_parse("refs/heads/feature")?, pushed);
    Ok(())
}

#[test]
fn clone_over_file_url() -> Result<()> {
    let (repo, head) = sample_repo()?;
    let dest = tempfile::tempdir()?;
    let cloned = clone(&repo.file_url(), dest.path(), None)?;
    assert_eq!(head_of(&cloned)?, head);
    Ok(())
}

#[test]
fn ssh_signed_commit_and_tag_verify_with_allowed_signers() -> Result<()> {
    let (repo, _) = sample_repo()?;
    let key = SshKey::generate("signer@example.com")?;
    let signed = repo.commit_files_signed(&key)?;
    let report = repo.verify_commit(&signed, &key)?;
    assert!(report.contains("Good \"git\" signature"), "{report}");

    // The signature travels with the commit: check it in a clone with ssh-keygen directly.
    let daemon = GitDaemon::serve(repo.root())?;
    let dest = tempfile::tempdir()?;
    let cloned = clone(&daemon.url(repo.name()), dest.path(), None)?;
    let (signature, payload) = cloned.extract_signature(&git2::Oid::from_str(&signed)?, None)?;
    let signature = std::str::from_utf8(&signature)?;
    assert!(
        signature.starts_with("-----BEGIN SSH SIGNATURE-----"),
        "{signature}"
    );
    assert!(
        ssh_verify(&key, signature, &payload)?,
        "ssh-keygen -Y verify rejected the commit"
    );
    let mut tampered = payload.to_vec();
    tampered.extend_from_slice(b"tampered");
    assert!(
        !ssh_verify(&key, signature, &tampered)?,
        "ssh-keygen accepted a tampered payload"
    );

    // Another key's allowed-signers file must not trust this signature.
    let stranger = SshKey::generate("stranger@example.com")?;
    assert!(repo.verify_commit(&signed, &stranger).is_err());

    let tag = repo.tag_signed("v2.0.0", &signed, "signed release", &key)?;
    assert!(repo.verify_tag("v2.0.0", &key)?.contains("Good"));
    assert_ne!(tag, signed);

    let unsigned = repo.commit("unsigned")?;
    assert!(
        repo.verify_commit(&unsigned, &key).is_err(),
        "unsigned commit verified"
    );
    Ok(())
}

#[test]
fn openpgp_signed_commit_and_tag_verify() -> Result<()> {
    let (repo, _) = sample_repo()?;
    let key = GpgKey::generate("Release Bot", "release@example.com")?;
    assert_eq!(key.fingerprint().len(), 40);
    assert!(
        key.public_key_armored()?
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    );
    let signed = repo.commit_files_signed(&key)?;
    let report = repo.verify_commit(&signed, &key)?;
    assert!(report.contains("Good signature"), "{report}");

    let git_repo = Repository::open(repo.path())?;
    let (signature, _) = git_repo.extract_signature(&git2::Oid::from_str(&signed)?, None)?;
    assert!(std::str::from_utf8(&signature)?.starts_with("-----BEGIN PGP SIGNATURE-----"));

    repo.tag_signed("v3.0.0", &signed, "gpg release", &key)?;
    assert!(repo.verify_tag("v3.0.0", &key)?.contains("Good signature"));

    // A different keyring does not know the signer.
    let other = GpgKey::generate("Someone Else", "else@example.com")?;
    assert!(repo.verify_commit(&signed, &other).is_err());
    Ok(())
}

/// `ssh-keygen -Y verify` with the key's allowed-signers file, namespace `git`.
fn ssh_verify(key: &SshKey, signature: &str, payload: &[u8]) -> Result<bool> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir()?;
    let sig_path = dir.path().join("commit.sig");
    std::fs::write(&sig_path, signature)?;
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "git", "-I", key.email(), "-f"])
        .arg(key.allowed_signers_path())
        .arg("-s")
        .arg(&sig_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .context("ssh-keygen stdin")?
        .write_all(payload)?;
    Ok(child.wait()?.success())
}

trait CommitSigned {
    fn commit_files_signed(&self, signer: &dyn tests::git::Signer) -> Result<String>;
}

impl CommitSigned for Repo {
    fn commit_files_signed(&self, signer: &dyn tests::git::Signer) -> Result<String> {
        self.write("app/signed.yaml", "signed: true\n")?;
        self.commit_signed("signed change", signer)
    }
}
