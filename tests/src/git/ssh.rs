use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::run;
use super::signing::SshKey;
use crate::net::{free_port, wait_for_port};

/// Where Debian's `openssh-server` installs the daemon (often not on a non-root PATH).
const SSHD: &str = "/usr/sbin/sshd";

/// The daemon, installed from Debian's `openssh-server` on first use when the tests run as
/// root, so `cargo test --workspace` works on a fresh machine the way the control plane does
/// (built on first use). Once per test binary: concurrent `apt-get` runs fight over dpkg's lock.
fn installed_sshd() -> Result<PathBuf> {
    static INSTALL: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if Path::new(SSHD).is_file() {
        return Ok(PathBuf::from(SSHD));
    }
    let installed = INSTALL.get_or_init(|| {
        if run(Command::new("id").arg("-u")).map_err(|e| format!("{e:#}"))? != "0" {
            return Err("not running as root".to_owned());
        }
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "-q", "openssh-server"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        let updated = || {
            Command::new("apt-get")
                .args(["update", "-q"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        if install() || (updated() && install()) {
            Ok(())
        } else {
            Err("`apt-get install openssh-server` failed".to_owned())
        }
    });
    match installed {
        Ok(()) if Path::new(SSHD).is_file() => Ok(PathBuf::from(SSHD)),
        Ok(()) => bail!("{SSHD} still missing after installing `openssh-server`"),
        Err(reason) => {
            bail!("{SSHD} not found ({reason}); install the Debian package `openssh-server`")
        }
    }
}

/// A real OpenSSH server on `127.0.0.1:<port>` letting one key log in as the current user, so
/// `git-upload-pack` serves any repository on this machine over `ssh://`. It has its own host
/// key, config and authorized_keys in a temporary directory; stopped on drop.
#[derive(Debug)]
pub struct SshGitServer {
    child: Child,
    port: u16,
    user: String,
    dir: tempfile::TempDir,
}

impl SshGitServer {
    /// Serves until dropped; only `client` may log in.
    pub fn serve(client: &SshKey) -> Result<Self> {
        let program = installed_sshd()?;
        let dir = tempfile::Builder::new()
            .prefix("gitops-sshd-")
            .tempdir()
            .context("creating a directory for sshd")?;
        let host_key = dir.path().join("ssh_host_ed25519_key");
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "gitops-test-host",
                "-f",
            ])
            .arg(&host_key))?;
        std::fs::write(
            dir.path().join("authorized_keys"),
            format!("restrict {}\n", client.public_key()),
        )
        .context("writing authorized_keys")?;
        let user = run(Command::new("id").arg("-un"))?;
        if run(Command::new("id").arg("-u"))? == "0" {
            // sshd running as root insists on its privilege-separation directory.
            std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        }
        let mut last_error = None;
        for _ in 0..3 {
            match Self::try_serve(&program, dir.path(), &host_key, &user) {
                Ok((child, port)) => {
                    return Ok(SshGitServer {
                        child,
                        port,
                        user,
                        dir,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    fn try_serve(program: &Path, dir: &Path, host_key: &Path, user: &str) -> Result<(Child, u16)> {
        let port = free_port()?;
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nAllowUsers {user}\n\
                 PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nLogLevel VERBOSE\n",
                host = host_key.display(),
                dir = dir.display(),
            ),
        )
        .context("writing sshd_config")?;
        let log = std::fs::File::create(dir.join("sshd.log")).context("creating sshd.log")?;
        // -D: stay in the foreground so drop can stop it; -e: log to the file above.
        let mut child = Command::new(program)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let ready = wait_for_port(port, Duration::from_secs(10), || {
            match child.try_wait().context("polling sshd")? {
                Some(status) => bail!(
                    "sshd on port {port} exited with {status}: {}",
                    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
                ),
                None => Ok(()),
            }
        });
        match ready {
            Ok(()) => Ok((child, port)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// `ssh://<user>@127.0.0.1:<port><absolute path>` of a repository on this machine.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A known_hosts file listing this server's host key for `[127.0.0.1]:<port>`.
    pub fn known_hosts_path(&self) -> Result<PathBuf> {
        let public = std::fs::read_to_string(self.dir.path().join("ssh_host_ed25519_key.pub"))
            .context("reading the host public key")?;
        let mut fields = public.split_whitespace();
        let (Some(kind), Some(key)) = (fields.next(), fields.next()) else {
            bail!("malformed host public key: {public}");
        };
        let path = self.dir.path().join("known_hosts");
        std::fs::write(&path, format!("[127.0.0.1]:{} {kind} {key}\n", self.port))
            .context("writing known_hosts")?;
        Ok(path)
    }

    /// What sshd logged (authentication failures, commands run), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshGitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
