//! The last good render on disk (the cache directory, an `emptyDir`), so an agent restarted
//! while Git is unreachable still guards its namespace: self-heal resumes from it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::reconcile::plan::Desired;

const FILE_NAME: &str = "last-good.json";

/// What a file must match to be used: another repository, overlay or namespace is not ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub repo: String,
    pub path: String,
    pub namespace: String,
    /// A fingerprint of everything else the render depends on (the agent's build and its render
    /// flags): a render taken up from the file stands for rendering the same commit again.
    #[serde(default)]
    pub render: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    identity: Identity,
    revision: String,
    /// The render digest of the objects (absent in files of older agents).
    #[serde(default)]
    digest: Option<String>,
    objects: Vec<StoredObject>,
}

/// A render taken up from the cache directory.
pub struct Loaded {
    pub revision: String,
    pub digest: Option<String>,
    pub applies: Vec<Desired>,
}

#[derive(Serialize, Deserialize)]
struct StoredObject {
    origin: Option<String>,
    /// The object's compact JSON, as the agent holds it.
    object: String,
}

pub fn path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(FILE_NAME)
}

/// Writes atomically (a temporary file renamed over the old one): a crash mid-write leaves the
/// previous render.
pub fn save(
    cache_dir: &Path,
    identity: &Identity,
    revision: &str,
    digest: &str,
    applies: &[Desired],
) -> std::io::Result<()> {
    let objects = applies
        .iter()
        .map(|d| StoredObject {
            origin: d.origin.clone(),
            object: d.json().to_string(),
        })
        .collect();
    let stored = Stored {
        identity: identity.clone(),
        revision: revision.to_string(),
        digest: Some(digest.to_string()),
        objects,
    };
    std::fs::create_dir_all(cache_dir)?;
    let final_path = path(cache_dir);
    let tmp = cache_dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    serde_json::to_writer(&mut file, &stored)?;
    file.flush()?;
    file.sync_all()?;
    std::fs::rename(tmp, final_path)
}

/// The stored render, if there is one for this identity. Any unreadable file is reported and
/// ignored: the next good sync replaces it.
pub fn load(cache_dir: &Path, identity: &Identity) -> Option<Loaded> {
    let path = path(cache_dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the last good render");
            return None;
        }
    };
    let stored: Stored = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable last good render");
            return None;
        }
    };
    if stored.identity != *identity {
        tracing::info!(path = %path.display(), "the cached render is for another repository, path, namespace, agent build or render flags; ignored");
        return None;
    }
    let mut applies = Vec::with_capacity(stored.objects.len());
    for o in stored.objects {
        let body = serde_json::from_str(&o.object).ok()?;
        applies.push(Desired::from_object(body, o.origin).ok()?);
    }
    Some(Loaded {
        revision: stored.revision,
        digest: stored.digest,
        applies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(ns: &str) -> Identity {
        Identity {
            repo: "git://127.0.0.1/r".into(),
            path: "overlays/prod".into(),
            namespace: ns.into(),
            render: "build-1".into(),
        }
    }

    #[test]
    fn round_trips_and_refuses_another_identity_or_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let d = Desired::from_object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {"k": "v"}}),
            Some("app/cm.yaml:3".into()),
        )
        .unwrap();
        assert!(load(dir.path(), &identity("shop")).is_none());
        save(
            dir.path(),
            &identity("shop"),
            "abc123",
            "digest-1",
            std::slice::from_ref(&d),
        )
        .unwrap();
        let back = load(dir.path(), &identity("shop")).unwrap();
        assert_eq!(back.revision, "abc123");
        assert_eq!(back.digest.as_deref(), Some("digest-1"));
        assert_eq!(back.applies, vec![d]);
        assert!(load(dir.path(), &identity("other")).is_none());
        // Another build or other render flags: the file no longer stands for a render.
        let rebuilt = Identity {
            render: "build-2".into(),
            ..identity("shop")
        };
        assert!(load(dir.path(), &rebuilt).is_none());
        std::fs::write(path(dir.path()), b"{not json").unwrap();
        assert!(load(dir.path(), &identity("shop")).is_none());
    }
}
