use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{exec_path, isolated};
use crate::net::{free_port, wait_for_port};

/// `git daemon` serving every repository below a directory on `git://127.0.0.1:<port>/`,
/// with push (`receive-pack`) enabled. Stopped on drop.
#[derive(Debug)]
pub struct GitDaemon {
    child: Child,
    port: u16,
    base: PathBuf,
}

impl GitDaemon {
    /// Serves the repositories below `base` (e.g. [`super::Repo::root`]).
    pub fn serve(base: &Path) -> Result<Self> {
        // Run git-daemon itself: `git daemon` would fork it as a child that outlives a kill.
        let program = exec_path()?.join("git-daemon");
        if !program.is_file() {
            bail!(
                "{} not found; install the Debian package `git`",
                program.display()
            );
        }
        let base = base
            .canonicalize()
            .with_context(|| format!("resolving git daemon base path {}", base.display()))?;
        // The port is only reserved until we release it; retry if someone else takes it.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::try_serve(&program, &base) {
                Ok(daemon) => return Ok(daemon),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    fn try_serve(program: &Path, base: &Path) -> Result<Self> {
        let port = free_port()?;
        let mut child = isolated(Command::new(program), base)
            .args([
                "--reuseaddr",
                "--export-all",
                "--informative-errors",
                "--listen=127.0.0.1",
            ])
            .args(["--enable=receive-pack", "--enable=upload-archive"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting git daemon for {}", base.display()))?;
        let ready = wait_for_port(port, Duration::from_secs(10), || {
            match child.try_wait().context("polling git daemon")? {
                Some(status) => bail!("git daemon on port {port} exited with {status}"),
                None => Ok(()),
            }
        });
        let daemon = GitDaemon {
            child,
            port,
            base: base.to_path_buf(),
        };
        ready.map(|()| daemon)
    }

    /// `git://127.0.0.1:<port>/<path>` for a repository at `<base>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "git://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base(&self) -> &Path {
        &self.base
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
