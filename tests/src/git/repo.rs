use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::signing::Signer;
use super::{git_command, require_program, run};

/// Author and committer of every commit and tag the helpers make.
pub const AUTHOR_NAME: &str = "Gitops Test";
pub const AUTHOR_EMAIL: &str = "test@kubectl-gitops.invalid";

/// A non-bare repository on branch `main`, in a directory that can be served as a base path
/// ([`Repo::root`]) under the name [`Repo::name`].
#[derive(Debug)]
pub struct Repo {
    // None when the caller owns the parent directory (`Repo::init_in`).
    _tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    name: String,
    path: PathBuf,
}

impl Repo {
    /// A repository named `repo` in a fresh temporary directory, removed on drop.
    pub fn new() -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("gitops-repo-")
            .tempdir()
            .context("creating a temporary directory for a repository")?;
        let mut repo = Self::init_in(tmp.path(), "repo")?;
        repo._tmp = Some(tmp);
        Ok(repo)
    }

    /// A repository at `root/name`; several can share one `root` and one server.
    pub fn init_in(root: &Path, name: &str) -> Result<Self> {
        require_program("git", "git")?;
        let path = root.join(name);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        run(git_command(&path).args(["init", "--quiet", "--initial-branch=main"]))?;
        Ok(Repo {
            _tmp: None,
            root: root.to_path_buf(),
            name: name.to_owned(),
            path,
        })
    }

    /// The working tree (and `.git`) of this repository.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory to pass to [`super::GitDaemon::serve`] / [`super::HttpGitServer::serve`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The repository's path below [`Repo::root`], as used in server URLs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `file://` URL of this repository.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// Writes `contents` to `rel` (creating parent directories) without committing.
    pub fn write(&self, rel: &str, contents: &str) -> Result<()> {
        let file = self.path.join(rel);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&file, contents).with_context(|| format!("writing {}", file.display()))
    }

    /// Removes file `rel` from the working tree without committing.
    pub fn remove(&self, rel: &str) -> Result<()> {
        let file = self.path.join(rel);
        std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))
    }

    /// Commits every change in the working tree (empty commits allowed); returns the sha.
    pub fn commit(&self, message: &str) -> Result<String> {
        self.commit_with(message, None)
    }

    /// Writes `(path, contents)` pairs and commits them; returns the sha.
    pub fn commit_files(&self, files: &[(&str, &str)], message: &str) -> Result<String> {
        for (rel, contents) in files {
            self.write(rel, contents)?;
        }
        self.commit(message)
    }

    /// Like [`Repo::commit`], signed with `signer`.
    pub fn commit_signed(&self, message: &str, signer: &dyn Signer) -> Result<String> {
        self.commit_with(message, Some(signer))
    }

    fn commit_with(&self, message: &str, signer: Option<&dyn Signer>) -> Result<String> {
        run(git_command(&self.path).args(["add", "--all"]))?;
        let mut cmd = git_command(&self.path);
        if let Some(signer) = signer {
            signer.configure(&mut cmd);
        }
        cmd.args(["commit", "--quiet", "--allow-empty", "-m", message]);
        if signer.is_some() {
            cmd.arg("--gpg-sign");
        } else {
            cmd.arg("--no-gpg-sign");
        }
        run(&mut cmd)?;
        self.rev_parse("HEAD")
    }

    /// Creates annotated tag `name` on `target`; returns the tag object's sha.
    pub fn tag(&self, name: &str, target: &str, message: &str) -> Result<String> {
        run(git_command(&self.path).args(["tag", "--annotate", "-m", message, name, target]))?;
        self.rev_parse(&format!("refs/tags/{name}"))
    }

    /// Like [`Repo::tag`], signed with `signer`.
    pub fn tag_signed(
        &self,
        name: &str,
        target: &str,
        message: &str,
        signer: &dyn Signer,
    ) -> Result<String> {
        let mut cmd = git_command(&self.path);
        signer.configure(&mut cmd);
        run(cmd.args(["tag", "--sign", "-m", message, name, target]))?;
        self.rev_parse(&format!("refs/tags/{name}"))
    }

    /// The sha of `HEAD`.
    pub fn head(&self) -> Result<String> {
        self.rev_parse("HEAD")
    }

    /// The object id `rev` names (without peeling tags).
    pub fn rev_parse(&self, rev: &str) -> Result<String> {
        run(git_command(&self.path).args(["rev-parse", "--verify", rev]))
    }

    /// Checks the signature on commit `rev` with `signer`'s trust settings (for SSH: its
    /// allowed-signers file); returns git's verification message on success.
    pub fn verify_commit(&self, rev: &str, signer: &dyn Signer) -> Result<String> {
        self.verify("verify-commit", rev, signer)
    }

    /// Checks the signature on tag `name` like [`Repo::verify_commit`].
    pub fn verify_tag(&self, name: &str, signer: &dyn Signer) -> Result<String> {
        self.verify("verify-tag", name, signer)
    }

    fn verify(&self, subcommand: &str, rev: &str, signer: &dyn Signer) -> Result<String> {
        let mut cmd = git_command(&self.path);
        signer.configure(&mut cmd);
        let output = super::output(cmd.args([subcommand, rev]))?;
        // git reports verification results on stderr.
        let report = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if !output.status.success() {
            bail!(
                "git {subcommand} {rev} in {} failed: {report}",
                self.path.display()
            );
        }
        Ok(report)
    }

    /// Runs `git <args>` in this repository; returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        run(git_command(&self.path).args(args))
    }
}
