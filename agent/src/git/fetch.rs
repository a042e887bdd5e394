//! Fetching into a bare cache repository with git2.

use std::path::{Path, PathBuf};
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
}

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
        }
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
    pub fn fetch(&self) -> Result<Repository, GitError> {
        let err = |message: String| GitError::Fetch {
            url: redact_url(&self.url),
            message,
        };
        let repo = match Repository::open_bare(&self.repo_dir) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(&self.repo_dir).map_err(|e| err(e.to_string()))?;
                Repository::init_bare(&self.repo_dir).map_err(|e| err(e.message().to_string()))?
            }
        };
        let user_pass = self.user_pass()?;
        let ssh_key = self.credentials.ssh_key_file.clone();
        let known_hosts = match &self.credentials.known_hosts_file {
            Some(p) => Some(read_secret(p)?),
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
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| err(e.message().to_string()))?;
        remote
            .fetch(
                &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                Some(&mut options),
                None,
            )
            .map_err(|e| {
                if Instant::now() >= deadline {
                    err(format!(
                        "timed out after {}s (--fetch-timeout)",
                        self.limit.as_secs()
                    ))
                } else {
                    err(e.message().to_string())
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
