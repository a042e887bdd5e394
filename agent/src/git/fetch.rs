//! Fetching into a bare cache repository with git2.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, FetchOptions, FetchPrune,
    RemoteCallbacks, Repository,
};
use sha2::{Digest, Sha256};

use super::{GitError, known_hosts, redact_url};

/// Credentials read from mounted files. Re-read on every fetch so rotated Secrets take effect.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub token_file: Option<PathBuf>,
    pub username_file: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub ssh_key_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
}

fn read_secret(path: &Path) -> Result<String, GitError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| GitError::Credentials {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

pub struct Fetcher {
    url: String,
    repo_dir: PathBuf,
    credentials: Credentials,
    /// Wall-clock limit of one fetch (`--fetch-timeout`).
    limit: Duration,
    /// Fetches in a row that failed in the cache itself (not on the network).
    cache_failures: AtomicU32,
}

/// After this many fetches in a row fail in the cache (a corrupt object, a lock nobody holds),
/// the cache is removed and cloned again: a broken cache never heals by itself.
pub const RECLONE_AFTER: u32 = 3;

impl Fetcher {
    /// The cache directory is keyed by the URL so changing `--repo` never mixes histories.
    pub fn new(url: &str, cache_dir: &Path, credentials: Credentials, limit: Duration) -> Self {
        let key = Sha256::digest(url.as_bytes());
        let name: String = key.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Self {
            url: url.to_string(),
            repo_dir: cache_dir.join(format!("{name}.git")),
            credentials,
            limit,
            cache_failures: AtomicU32::new(0),
        }
    }

    /// Removes `*.lock` files a killed fetch left behind (a ref, `packed-refs`, `config`):
    /// libgit2 refuses to update anything whose lock file exists, so every later fetch would
    /// fail. Only safe while no fetch runs: call it at start, before the first one. Returns how
    /// many were removed.
    pub fn clear_stale_locks(&self) -> usize {
        let mut removed = 0;
        let mut stack = vec![self.repo_dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "lock")
                    && std::fs::remove_file(&path).is_ok()
                {
                    tracing::warn!(file = %path.display(), "removed a stale lock file from the Git cache");
                    removed += 1;
                }
            }
        }
        removed
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    pub fn repo_dir(&self) -> &Path {
        &self.repo_dir
    }

    pub fn open(&self) -> Result<Repository, GitError> {
        Ok(Repository::open_bare(&self.repo_dir)?)
    }

    /// Mirrors branches and tags into the bare cache (blocking; run it off the async runtime).
    /// After [`RECLONE_AFTER`] failures in a row in the cache itself, fetches into a new one.
    pub fn fetch(&self) -> Result<Repository, GitError> {
        match self.fetch_once() {
            Ok(repo) => {
                self.cache_failures.store(0, Ordering::Relaxed);
                Ok(repo)
            }
            Err((e, true)) => {
                let failures = self.cache_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures < RECLONE_AFTER {
                    return Err(e);
                }
                tracing::warn!(error = %e, failures, cache = %self.repo_dir.display(),
                    "the Git cache keeps failing; removing it and cloning again");
                self.cache_failures.store(0, Ordering::Relaxed);
                if let Err(io) = std::fs::remove_dir_all(&self.repo_dir) {
                    return Err(GitError::Fetch {
                        url: redact_url(&self.url),
                        message: format!(
                            "{e}; removing the cache {} failed: {io}",
                            self.repo_dir.display()
                        ),
                    });
                }
                self.fetch_once().map_err(|(e, _)| e)
            }
            Err((e, false)) => Err(e),
        }
    }

    /// One fetch; the error says whether the cache (rather than the network or the server)
    /// failed.
    fn fetch_once(&self) -> Result<Repository, (GitError, bool)> {
        let err = |message: String| GitError::Fetch {
            url: redact_url(&self.url),
            message,
        };
        let in_cache = |e: git2::Error| (err(e.message().to_string()), is_cache_error(&e));
        let repo = match Repository::open_bare(&self.repo_dir) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(&self.repo_dir).map_err(|e| (err(e.to_string()), true))?;
                Repository::init_bare(&self.repo_dir)
                    .map_err(|e| (err(e.message().to_string()), true))?
            }
        };
        let user_pass = self.user_pass().map_err(|e| (e, false))?;
        let ssh_key = self.credentials.ssh_key_file.clone();
        let known_hosts = match &self.credentials.known_hosts_file {
            Some(p) => Some(read_secret(p).map_err(|e| (e, false))?),
            None => None,
        };
        let port = url_port(&self.url);
        // libgit2's server timeout (see `set_server_timeouts`) ends a server that stops
        // answering; this ends one that answers too slowly, at the next progress report.
        let deadline = Instant::now() + self.limit;

        let mut callbacks = RemoteCallbacks::new();
        let mut attempts = 0;
        callbacks.credentials(move |_url, username, allowed| {
            // libgit2 keeps asking while credentials are refused; give up instead of looping.
            attempts += 1;
            if attempts > 3 {
                return Err(git2::Error::from_str("credentials refused"));
            }
            if allowed.contains(CredentialType::SSH_KEY)
                && let Some(key) = &ssh_key
            {
                return Cred::ssh_key(username.unwrap_or("git"), None, key, None);
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
                && let Some((user, pass)) = &user_pass
            {
                return Cred::userpass_plaintext(user, pass);
            }
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(username.unwrap_or("git"));
            }
            Err(git2::Error::from_str(
                "no credentials configured for this repository",
            ))
        });
        callbacks.certificate_check(move |cert, host| {
            let (Some(known), Some(hostkey)) = (
                known_hosts.as_deref(),
                cert.as_hostkey().and_then(|h| h.hostkey()),
            ) else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            if known_hosts::is_known(known, host, port, hostkey) {
                Ok(CertificateCheckStatus::CertificateOk)
            } else {
                Err(git2::Error::from_str(&format!(
                    "host key of {host} is not in known_hosts"
                )))
            }
        });

        callbacks.transfer_progress(move |_| Instant::now() < deadline);
        callbacks.sideband_progress(move |_| Instant::now() < deadline);

        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks);
        options.prune(FetchPrune::On);
        options.download_tags(AutotagOption::All);
        let mut remote = repo.remote_anonymous(&self.url).map_err(in_cache)?;
        remote
            .fetch(
                &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                Some(&mut options),
                None,
            )
            .map_err(|e| {
                if Instant::now() >= deadline {
                    (
                        err(format!(
                            "timed out after {}s (--fetch-timeout)",
                            self.limit.as_secs()
                        )),
                        false,
                    )
                } else {
                    in_cache(e)
                }
            })?;
        drop(remote);
        Ok(repo)
    }

    fn user_pass(&self) -> Result<Option<(String, String)>, GitError> {
        let c = &self.credentials;
        if let Some(token) = &c.token_file {
            let user = match &c.username_file {
                Some(p) => read_secret(p)?,
                None => "git".to_string(),
            };
            return Ok(Some((user, read_secret(token)?)));
        }
        match (&c.username_file, &c.password_file) {
            (Some(u), Some(p)) => Ok(Some((read_secret(u)?, read_secret(p)?))),
            _ => Ok(None),
        }
    }
}

/// Whether a libgit2 error is the cache's own (a lock, a broken object or ref, the file
/// system) rather than the network's, the server's or the credentials'.
fn is_cache_error(e: &git2::Error) -> bool {
    use git2::{ErrorClass, ErrorCode};
    if matches!(e.code(), ErrorCode::Locked) {
        return true;
    }
    if matches!(e.code(), ErrorCode::Auth | ErrorCode::Certificate) {
        return false;
    }
    !matches!(
        e.class(),
        ErrorClass::Net
            | ErrorClass::Http
            | ErrorClass::Ssh
            | ErrorClass::Ssl
            | ErrorClass::Callback
            | ErrorClass::None
    )
}

/// The explicit port of an `ssh://host:port/…` URL (scp-like URLs have none).
fn url_port(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("ssh://")?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports() {
        assert_eq!(
            super::url_port("ssh://git@localhost:2222/repo.git"),
            Some(2222)
        );
        assert_eq!(super::url_port("ssh://git@localhost/repo.git"), None);
        assert_eq!(super::url_port("git@localhost:repo.git"), None);
    }
}
