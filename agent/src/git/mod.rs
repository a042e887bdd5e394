//! Git: fetch into a bare cache and resolve the tracked revision; the `gittree` crate reads
//! the tree in place.
//!
//! Nothing is ever checked out: the renderer reads blobs straight from the fetched commit, so a
//! half-fetched or broken revision never reaches a working tree the cluster could be fed from.

mod fetch;
mod known_hosts;
mod resolve;

pub use fetch::{Credentials, Fetcher};
pub use resolve::{Resolved, resolve};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("fetching {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("revision {revision:?}: {message}")]
    Resolve { revision: String, message: String },
    #[error("reading {path}: {message}")]
    Credentials { path: String, message: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// Sets libgit2's process-wide server deadlines: connecting, and each wait for data (a server
/// that accepts and then says nothing fails the fetch after `timeout` instead of hanging).
/// Call before any other thread exists: libgit2 keeps them in unsynchronised globals.
#[allow(unsafe_code)]
pub fn set_server_timeouts(timeout: std::time::Duration) {
    let ms = i32::try_from(timeout.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    // SAFETY: called once from `main` before the runtime (or any thread) starts, as git2
    // requires for these setters; the values are plain integers.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
    }
}

/// The URL as it may appear in status and logs: any `user:password@` part is dropped.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_credentials() {
        assert_eq!(
            super::redact_url("https://u:secret@git.example.com/team/repo.git"),
            "https://git.example.com/team/repo.git"
        );
        assert_eq!(super::redact_url("file:///srv/repo"), "file:///srv/repo");
        assert_eq!(
            super::redact_url("git@host:team/repo"),
            "git@host:team/repo"
        );
    }
}
