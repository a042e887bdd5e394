//! Real Git repositories, signing keys and servers for tests.
//!
//! Everything shells out to the `git` CLI (Debian package `git`), isolated from the user's and
//! system's Git configuration. Signing needs `ssh-keygen` (`openssh-client`) and, for
//! OpenPGP, `gpg` + `gpg-agent` (`gpg`, `gpg-agent`). [`SshGitServer`] runs `/usr/sbin/sshd`
//! (`openssh-server`).
//!
//! ```no_run
//! # fn t() -> anyhow::Result<()> {
//! use tests::git::{GitDaemon, Repo, SshKey};
//! let repo = Repo::new()?;
//! let first = repo.commit_files(&[("app/kustomization.yaml", "resources: []\n")], "init")?;
//! let key = SshKey::generate("signer@example.com")?;
//! let signed = repo.commit_signed("signed change", &key)?;
//! let daemon = GitDaemon::serve(repo.root())?;
//! let url = daemon.url(repo.name()); // git://127.0.0.1:<port>/repo
//! # Ok(()) }
//! ```

mod daemon;
mod http;
mod repo;
mod signing;
mod ssh;
mod stall;

pub use daemon::GitDaemon;
pub use http::{BasicAuth, HttpGitServer};
pub use repo::{AUTHOR_EMAIL, AUTHOR_NAME, Repo};
pub use signing::{GpgKey, Signer, SshKey};
pub use ssh::SshGitServer;
pub use stall::StallingRelay;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// A `git` command isolated from the host's configuration, with a fixed author/committer.
pub fn git_command(dir: &Path) -> Command {
    isolated(Command::new("git"), dir)
}

/// Applies [`git_command`]'s isolation to another git program (e.g. `git-daemon`).
pub(crate) fn isolated(mut cmd: Command, dir: &Path) -> Command {
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
        .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
        .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
        .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    cmd
}

/// Runs `cmd`, failing with its stderr if it exits non-zero; returns trimmed stdout.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let output = output(cmd)?;
    if !output.status.success() {
        bail!(
            "{} failed with {}: {}",
            describe(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

pub(crate) fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("running {}", describe(cmd)))
}

fn describe(cmd: &Command) -> String {
    let args: Vec<_> = cmd.get_args().map(OsStr::to_string_lossy).collect();
    let dir = cmd
        .get_current_dir()
        .map(|d| format!(" in {}", d.display()))
        .unwrap_or_default();
    format!(
        "`{} {}`{dir}",
        cmd.get_program().to_string_lossy(),
        args.join(" ")
    )
}

/// Fails with an install hint when a required program is missing.
pub(crate) fn require_program(program: &str, debian_package: &str) -> Result<()> {
    match Command::new(program).arg("--version").output() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("`{program}` not found on PATH; install the Debian package `{debian_package}`")
        }
        Err(e) => Err(e).with_context(|| format!("running {program} --version")),
    }
}

/// The directory holding git's helper programs (`git-http-backend`, `git-daemon`).
pub(crate) fn exec_path() -> Result<std::path::PathBuf> {
    require_program("git", "git")?;
    let dir = run(Command::new("git").arg("--exec-path"))?;
    Ok(dir.into())
}
