//! Writes the drift history ring to its own data key of the parent. A JSON merge patch under
//! its own field manager: the status apply (which does not declare the key) never removes it.

use kube::api::{Patch, PatchParams};
use renderer::protocol::{DRIFT_HISTORY_DATA_KEY, PARENT_NAME};
pub use renderer::protocol::{DriftAction, DriftEvent, DriftHistory};
use serde_json::json;

use crate::reconcile::cluster::{ApiError, Cluster};
use crate::reconcile::plan::Desired;
use renderer::drift::ManagedFields;
use renderer::drift::foreign::is_foreign_manager;
use renderer::drift::predict::changes;
use serde_json::Value;

/// How far back [`DriftLog::push_new`] looks for the same event (a watch fires on every write).
const REPEAT_WINDOW: usize = 64;

/// What an apply is about to change on a live object, and who wrote the live values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriftSeen {
    pub paths: Vec<String>,
    pub manager: Option<String>,
}

impl DriftSeen {
    pub fn of(live: &Value, dry_run: &Value) -> Self {
        let paths: Vec<String> = changes(Some(live), dry_run)
            .into_iter()
            .map(|c| c.pointer)
            .filter(|p| !p.starts_with("/metadata/annotations/kubectl-gitops.dev~1revision"))
            .collect();
        let manager = ManagedFields::from_object(live).ok().and_then(|m| {
            paths.iter().find_map(|p| {
                m.owners(live, p)
                    .into_iter()
                    .find(|o| is_foreign_manager(&o.manager, &o.subresource))
                    .map(|o| o.manager.clone())
            })
        });
        Self { paths, manager }
    }
}

/// Field manager of the history key, apart from the agent's apply of the parent.
pub const HISTORY_FIELD_MANAGER: &str = "gitops-agent-drift-history";

/// The ring and whether it changed since it was last written.
#[derive(Debug, Default)]
pub struct DriftLog {
    pub ring: DriftHistory,
    dirty: bool,
}

impl DriftLog {
    pub fn push(&mut self, event: DriftEvent) {
        self.ring.push(event);
        self.dirty = true;
    }

    /// Records drift on `d`, unless the same object's latest recent event says the same.
    /// Returns whether it was recorded.
    pub fn push_new(
        &mut self,
        d: &Desired,
        paths: Vec<String>,
        manager: Option<String>,
        action: DriftAction,
    ) -> bool {
        let kind = &d.key.group_kind.kind;
        let repeat = self
            .ring
            .events()
            .rev()
            .take(REPEAT_WINDOW)
            .find(|e| &e.kind == kind && e.name == d.key.name)
            .is_some_and(|e| e.action == action && e.paths == paths && e.manager == manager);
        if !repeat {
            self.push(DriftEvent::new(kind, &d.key.name, paths, manager, action));
        }
        !repeat
    }

    /// Reads what a previous run left (absent or unreadable: empty).
    pub async fn load(&mut self, cluster: &Cluster) -> Result<(), ApiError> {
        let api = cluster.api("v1", "ConfigMap").await?;
        if let Some(parent) = api
            .get_opt(PARENT_NAME)
            .await
            .map_err(|e| ApiError::new("read the drift history", &e))?
            && let Some(text) = parent.data["data"][DRIFT_HISTORY_DATA_KEY].as_str()
        {
            self.ring = DriftHistory::from_json(text);
        }
        Ok(())
    }

    /// Writes the ring if it changed (the parent must exist: the status is written first).
    pub async fn flush(&mut self, cluster: &Cluster) -> Result<(), ApiError> {
        if !self.dirty {
            return Ok(());
        }
        let api = cluster.api("v1", "ConfigMap").await?;
        let patch = json!({"data": {DRIFT_HISTORY_DATA_KEY: self.ring.to_json()}});
        let params = PatchParams {
            field_manager: Some(HISTORY_FIELD_MANAGER.into()),
            ..Default::default()
        };
        cluster.check_fence("write the drift history")?;
        api.patch(PARENT_NAME, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| ApiError::new("write the drift history", &e))?;
        self.dirty = false;
        Ok(())
    }
}
