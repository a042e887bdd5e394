//! Self-management (`--config-path`): the revision the agent follows is itself in Git.
//!
//! A small kustomization on the default branch (`--config-revision`) renders one ConfigMap,
//! `gitops-agent`, whose `revision` key replaces `--revision`. Every cycle the agent reads it
//! from the commit it just fetched, applies it to its namespace (so `kubectl get cm
//! gitops-agent` shows what the agent follows; a hand edit is put back), and resolves that
//! revision. `promote` and `rollback` edit the file and commit (and push): the running agent
//! moves at its next fetch, with no restart and no CRD.

use kube::runtime::events::EventType;
use renderer::protocol::{
    AGENT_CONFIG_ALLOW_ROLLBACK_KEY, AGENT_CONFIG_NAME, AGENT_CONFIG_REVISION_KEY, GroupKind,
    event_reason,
};
use renderer::sops::AgeKeys;
use serde_json::Value;

use super::plan::Desired;
use super::{Agent, Inner, SyncError};
use crate::git;
use crate::verify::Verifier;

/// Where the agent's own configuration lives.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The branch it is read from.
    pub revision: String,
    /// The directory (normalised) of its kustomization.
    pub path: String,
}

/// What the self-management path says at one commit.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub revision: String,
    /// `allow-rollback-to`: the one commit `kubectl gitops rollback` moved back to.
    pub allow_rollback_to: Option<String>,
    pub commit: String,
    pub config_map: Desired,
}

impl ConfigSource {
    /// Reads the settings at the tip of the configuration branch of a fetched repository
    /// (blocking: call it where the fetch runs). With a verifier, that commit must be signed
    /// by a trusted key too: it decides which revision production runs.
    pub fn read(
        &self,
        repo: &git2::Repository,
        verifier: Option<&Verifier>,
    ) -> Result<AgentSettings, SyncError> {
        let fail = |message: String| {
            SyncError::Config(format!(
                "--config-path {} at {}: {message}",
                self.path, self.revision
            ))
        };
        let resolved = git::resolve(repo, &self.revision)?;
        if let Some(v) = verifier {
            v.verify_commit(repo, resolved.commit)
                .map_err(|e| SyncError::Verify(format!("--config-path {}: {e}", self.path)))?;
        }
        let open = git2::Repository::open(repo.path()).map_err(|e| fail(e.to_string()))?;
        let source = gittree::GitTreeSource::from_commit(open, resolved.commit)
            .map_err(|e| fail(e.message().to_string()))?;
        let objects = crate::render::render(&source, &self.path, &AgeKeys::default(), &[])
            .map_err(|e| fail(e.to_string()))?;
        let config_map = objects
            .into_iter()
            .find(|d| {
                d.key.group_kind == GroupKind::new("", "ConfigMap")
                    && d.key.name == AGENT_CONFIG_NAME
            })
            .ok_or_else(|| fail(format!("renders no ConfigMap {AGENT_CONFIG_NAME}")))?;
        let body = config_map.body();
        let revision = settings_revision(&body).map_err(fail)?;
        let allow_rollback_to = match body["data"][AGENT_CONFIG_ALLOW_ROLLBACK_KEY].as_str() {
            None => None,
            Some(sha) => Some(crate::config::parse_commit_sha(sha).map_err(|e| {
                fail(format!(
                    "ConfigMap {AGENT_CONFIG_NAME} data.{AGENT_CONFIG_ALLOW_ROLLBACK_KEY}: {e}"
                ))
            })?),
        };
        Ok(AgentSettings {
            revision,
            allow_rollback_to,
            commit: resolved.commit.to_string(),
            config_map,
        })
    }
}

/// The `revision` key of the ConfigMap: a non-empty single line.
pub fn settings_revision(config_map: &Value) -> Result<String, String> {
    let value = config_map["data"][AGENT_CONFIG_REVISION_KEY]
        .as_str()
        .map(str::trim)
        .unwrap_or_default();
    if value.is_empty() || value.contains('\n') {
        return Err(format!(
            "ConfigMap {AGENT_CONFIG_NAME} needs data.{AGENT_CONFIG_REVISION_KEY}: a branch, tag, commit or semver range"
        ));
    }
    Ok(value.to_string())
}

impl Agent {
    /// The configuration source, when `--config-path` is set.
    pub(super) fn config_source(&self) -> Option<ConfigSource> {
        self.config.config_path.as_ref().map(|p| ConfigSource {
            revision: self.config.config_revision.clone(),
            path: crate::config::normalise_path(p),
        })
    }

    /// Publishes new settings: applies the ConfigMap when its commit changed, puts the
    /// revision in status, and records a switch of revision in an Event.
    pub(super) async fn adopt_settings(
        &self,
        inner: &mut Inner,
        settings: &AgentSettings,
    ) -> Result<(), SyncError> {
        let previous = inner.config_commit.clone();
        if previous.as_deref() != Some(settings.commit.as_str()) {
            let mut body = settings.config_map.body();
            body["metadata"]["namespace"] = Value::from(self.namespace.as_str());
            self.cluster
                .apply(&settings.config_map, &body, false)
                .await?;
            inner.config_commit = Some(settings.commit.clone());
        }
        let s = &mut inner.status.status;
        s.config_path = self.config_source().map(|c| c.path);
        if s.tracked_ref != settings.revision {
            let note = format!(
                "now following {} (was {}), as {} says at {} {}",
                settings.revision,
                s.tracked_ref,
                self.config.config_path.as_deref().unwrap_or_default(),
                self.config.config_revision,
                &settings.commit[..settings.commit.len().min(12)]
            );
            s.tracked_ref = settings.revision.clone();
            tracing::info!("{note}");
            if previous.is_some() {
                let parent = inner.status.parent_ref();
                inner
                    .status
                    .event(
                        EventType::Normal,
                        event_reason::REVISION_SWITCHED,
                        &note,
                        &parent,
                    )
                    .await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_revision_key_is_required_and_one_line() {
        let cm = |data: Value| json!({"kind": "ConfigMap", "data": data});
        assert_eq!(
            settings_revision(&cm(json!({"revision": " v1.5.0 "}))).unwrap(),
            "v1.5.0"
        );
        assert_eq!(
            settings_revision(&cm(json!({"revision": ">=1.0.0 <2.0.0"}))).unwrap(),
            ">=1.0.0 <2.0.0"
        );
        for bad in [
            json!({}),
            json!({"revision": ""}),
            json!({"revision": "a\nb"}),
        ] {
            let err = settings_revision(&cm(bad)).unwrap_err();
            assert!(err.contains("data.revision"), "{err}");
        }
    }
}
