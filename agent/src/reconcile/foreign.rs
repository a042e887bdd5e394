//! Foreign additions at each sync: fields Git never sets, added live by someone other than the
//! agent and the API server's controllers. Reported in the status, the metrics and the drift
//! history; removed only with `--remove-foreign` or the per-object annotation.

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use renderer::drift::IgnoreRules;
use renderer::drift::foreign::{ForeignField, foreign_additions, removal_patch};
use renderer::drift::predict;
use renderer::protocol::{
    AGENT_FIELD_MANAGER, ForeignEntry, IGNORE_FIELDS_ANNOTATION, REMOVE_FOREIGN_ANNOTATION,
};
use serde_json::Value;

use super::cluster::ApiError;
use super::plan::Desired;
use super::{Agent, Inner};
use crate::drift_history::DriftAction;

/// Whether `live` may hold foreign additions: a cheap check on the live object already in
/// memory, so only those objects are read again and dry-run after the sync.
pub fn may_have_foreign(d: &Desired, live: Option<&Value>) -> bool {
    live.is_some_and(|live| {
        foreign_additions(&d.body(), live, None, &[]).is_ok_and(|found| !found.is_empty())
    })
}

impl Agent {
    /// Reads each candidate again, tells foreign additions from server defaults with a dry-run
    /// create of Git's object, removes them when asked, and publishes what it found.
    pub(super) async fn foreign_pass(
        &self,
        inner: &mut Inner,
        candidates: &[&Desired],
        rules: &IgnoreRules,
    ) {
        let mut entries = Vec::new();
        for d in candidates {
            match self.foreign_of(d, rules).await {
                Ok(Some((found, removed))) => {
                    let kind = &d.key.group_kind.kind;
                    for f in &found {
                        entries.push(ForeignEntry::new(kind, &d.key.name, f, removed));
                    }
                    self.note_foreign(inner, d, &found, removed).await;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(object = %d.key, error = %e, "foreign additions not checked")
                }
            }
        }
        inner.status.status.foreign = entries;
    }

    /// The foreign additions of one object, and whether they were removed.
    async fn foreign_of(
        &self,
        d: &Desired,
        rules: &IgnoreRules,
    ) -> Result<Option<(Vec<ForeignField>, bool)>, ApiError> {
        let Some(live) = self.cluster.get(d).await? else {
            return Ok(None);
        };
        let mut body = d.body();
        let extra = live["metadata"]["annotations"][IGNORE_FIELDS_ANNOTATION]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ignored = rules.ignored_pointers_with(&body, &extra);
        predict::mask_ignored(rules, &mut body, Some(&live));
        let candidates = foreign_additions(&body, &live, None, &ignored).unwrap_or_default();
        if candidates.is_empty() {
            return Ok(None);
        }
        let defaults = self.dry_run_create(d, &body).await?;
        let found = foreign_additions(&body, &live, Some(&defaults), &ignored).unwrap_or_default();
        if found.is_empty() {
            return Ok(None);
        }
        let asked =
            |obj: &Value| obj["metadata"]["annotations"][REMOVE_FOREIGN_ANNOTATION] == "true";
        let remove = self.config.remove_foreign || asked(&live) || asked(&body);
        if remove {
            self.remove(d, &removal_patch(&found, &live)).await?;
        }
        Ok(Some((found, remove)))
    }

    async fn note_foreign(
        &self,
        inner: &mut Inner,
        d: &Desired,
        found: &[ForeignField],
        removed: bool,
    ) {
        let mut by_manager: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for f in found {
            by_manager
                .entry(&f.manager)
                .or_default()
                .push(f.pointer.clone());
        }
        // Seen again at every resync until removed: recorded and announced once.
        let mut new = false;
        for (manager, paths) in by_manager {
            let action = if removed {
                DriftAction::ForeignRemoved
            } else {
                DriftAction::Foreign
            };
            new |= inner
                .drift_history
                .push_new(d, paths, Some(manager.to_string()), action);
        }
        if !new {
            return;
        }
        let sensitive: Vec<String> = found.iter().flat_map(|f| f.sensitive.clone()).collect();
        let note = format!(
            "{} foreign addition(s) on {} ({}){}{}",
            found.len(),
            d.key,
            found
                .iter()
                .map(|f| format!("{} by {}", f.pointer, f.manager))
                .collect::<Vec<_>>()
                .join(", "),
            if sensitive.is_empty() {
                String::new()
            } else {
                format!("; security-sensitive: {}", sensitive.join(", "))
            },
            if removed { "; removed" } else { "" },
        );
        tracing::warn!(object = %d.key, "{note}");
        let regarding = inner.status.object_ref(&d.key, &d.api_version);
        inner
            .status
            .event(EventType::Warning, FOREIGN_EVENT_REASON, &note, &regarding)
            .await;
    }

    /// What the API server makes of Git's object created afresh, under a generated name so it
    /// never collides with the live one: the values it fills in by itself.
    async fn dry_run_create(&self, d: &Desired, body: &Value) -> Result<Value, ApiError> {
        let api = self
            .cluster
            .api(&d.api_version, &d.key.group_kind.kind)
            .await?;
        let mut fresh = body.clone();
        if let Some(meta) = fresh["metadata"].as_object_mut() {
            meta.remove("name");
            meta.insert("generateName".into(), Value::from("gitops-defaults-"));
        }
        let what = format!("dry-run create of {}", d.key);
        let object: DynamicObject = serde_json::from_value(fresh).map_err(|e| ApiError {
            what: what.clone(),
            message: e.to_string(),
            code: None,
        })?;
        let params = PostParams {
            dry_run: true,
            field_manager: Some(AGENT_FIELD_MANAGER.into()),
        };
        api.create(&params, &object)
            .await
            .map(|o| serde_json::to_value(o).expect("a DynamicObject serializes"))
            .map_err(|e| ApiError::new(what, &e))
    }

    /// Removes exactly the fields of `patch` (a JSON patch whose `test` ops fail the whole
    /// patch if any field changed since it was read).
    async fn remove(&self, d: &Desired, patch: &Value) -> Result<(), ApiError> {
        let api = self
            .cluster
            .api(&d.api_version, &d.key.group_kind.kind)
            .await?;
        let what = format!("remove foreign additions from {}", d.key);
        let patch: json_patch::Patch =
            serde_json::from_value(patch.clone()).map_err(|e| ApiError {
                what: what.clone(),
                message: e.to_string(),
                code: None,
            })?;
        let params = PatchParams {
            field_manager: Some(AGENT_FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.cluster.check_fence(&what)?;
        api.patch(&d.key.name, &params, &Patch::<()>::Json(patch))
            .await
            .map(|_| ())
            .map_err(|e| ApiError::new(what, &e))
    }
}

/// Event reason of a foreign addition seen (or removed) by the agent.
pub const FOREIGN_EVENT_REASON: &str = "ForeignAddition";
