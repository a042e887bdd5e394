//! Health with what only the cluster knows: the rules in the agent's ConfigMap, whether a
//! kind has a status subresource, and the pods behind a workload that is not healthy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};
use kube::core::GroupVersionKind;
use kube::{Client, discovery};
use renderer::protocol::HealthEntry;
use serde_json::Value;

use super::rules::HealthRules;
use super::{Facts, assess, pods};

/// The key of the agent's health ConfigMap that holds the rules.
pub const RULES_KEY: &str = "rules.yaml";

/// How long rules read from the ConfigMap are used before it is read again.
const RULES_TTL: Duration = Duration::from_secs(5);

/// Kinds whose unhealthy objects are explained by their pods.
const POD_OWNERS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
];

pub struct LiveHealth {
    client: Client,
    namespace: String,
    /// The ConfigMap holding [`RULES_KEY`]; a missing one means no rules.
    configmap: String,
    /// Async so that one caller reads the ConfigMap while the others wait for its answer: a
    /// sync assesses sixteen objects at once, and each used to read it when the rules expired.
    rules: tokio::sync::Mutex<Option<(Instant, Arc<HealthRules>)>>,
    /// The last rules error logged, so a bad ConfigMap is reported once, not every 5 s.
    last_error: Mutex<Option<String>>,
    has_status: Mutex<HashMap<(String, String), bool>>,
}

impl LiveHealth {
    pub fn new(client: Client, namespace: &str, configmap: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            configmap: configmap.to_string(),
            rules: tokio::sync::Mutex::new(None),
            last_error: Mutex::new(None),
            has_status: Mutex::new(HashMap::new()),
        }
    }

    /// The health of a live object, with the pods behind it named when it is not healthy.
    pub async fn assess(&self, obj: &Value) -> HealthEntry {
        let rules = self.rules().await;
        let has_status = self.has_status(obj).await;
        let facts = Facts {
            now: Timestamp::now(),
            has_status,
            rules: &rules,
        };
        let mut entry = assess(obj, &facts);
        if entry.state != "Healthy"
            && let Some(problems) = self.pod_problems(obj).await
        {
            entry.message = format!("{}; {problems}", entry.message);
        }
        entry
    }

    async fn rules(&self) -> Arc<HealthRules> {
        let mut slot = self.rules.lock().await;
        if let Some((at, rules)) = &*slot
            && at.elapsed() < RULES_TTL
        {
            return rules.clone();
        }
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace);
        let fresh = match api.get_opt(&self.configmap).await {
            Ok(None) => Ok(HealthRules::default()),
            Ok(Some(cm)) => {
                let text = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get(RULES_KEY))
                    .map(String::as_str)
                    .unwrap_or_default();
                let origin = format!(
                    "ConfigMap {}/{} {RULES_KEY}",
                    self.namespace, self.configmap
                );
                HealthRules::parse(text, &origin).map_err(|e| e.to_string())
            }
            Err(e) => Err(format!("reading ConfigMap {}: {e}", self.configmap)),
        };
        let rules = match fresh {
            Ok(rules) => {
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Arc::new(rules)
            }
            Err(e) => {
                let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
                if last.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "health rules not loaded; keeping the previous ones");
                    *last = Some(e);
                }
                slot.as_ref().map(|(_, r)| r.clone()).unwrap_or_default()
            }
        };
        *slot = Some((Instant::now(), rules.clone()));
        rules
    }

    /// Whether the object's kind has a `status` subresource (discovery, cached per kind).
    async fn has_status(&self, obj: &Value) -> bool {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let key = (api_version, kind);
        if let Some(hit) = self
            .has_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return *hit;
        }
        let (group, version) = key.0.rsplit_once('/').unwrap_or(("", &key.0));
        let gvk = GroupVersionKind::gvk(group, version, &key.1);
        let found = match discovery::pinned_kind(&self.client, &gvk).await {
            Ok((_, caps)) => caps
                .subresources
                .iter()
                .any(|(ar, _)| ar.plural == "status"),
            // Unknown now; asked again next time.
            Err(_) => return false,
        };
        self.has_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, found);
        found
    }

    /// What is wrong with the pods of a workload, if it owns pods and any has a problem.
    async fn pod_problems(&self, obj: &Value) -> Option<String> {
        let group = obj["apiVersion"]
            .as_str()
            .and_then(|v| v.rsplit_once('/'))
            .map_or("", |(g, _)| g);
        let kind = obj["kind"].as_str().unwrap_or_default();
        if !POD_OWNERS.contains(&(group, kind)) || !controller_has_seen(obj) {
            return None;
        }
        let selector = pods::selector(obj)?;
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        let list = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list,
            Err(e) => {
                // Without `list pods` (an older Role) health still works, unexplained.
                tracing::debug!(error = %e, "cannot list pods to explain health");
                return None;
            }
        };
        let pods: Vec<Value> = list
            .items
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect();
        pods::pod_problems_message(&pods)
    }
}

/// Whether the workload's controller has acted on its current spec. Until it has (an object
/// just created or changed by the sync), no pod can explain anything, and listing pods for each
/// of a thousand fresh workloads was a quarter of a first sync's requests.
fn controller_has_seen(obj: &Value) -> bool {
    let status = &obj["status"];
    if status.as_object().is_none_or(|s| s.is_empty()) {
        return false;
    }
    match (
        status["observedGeneration"].as_i64(),
        obj["metadata"]["generation"].as_i64(),
    ) {
        (Some(observed), Some(generation)) => observed >= generation,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::controller_has_seen;

    #[test]
    fn pods_are_looked_at_only_once_the_controller_saw_the_spec() {
        let fresh = json!({"metadata": {"generation": 1}});
        assert!(!controller_has_seen(&fresh));
        let empty = json!({"metadata": {"generation": 1}, "status": {}});
        assert!(!controller_has_seen(&empty));
        let behind = json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 2}});
        assert!(!controller_has_seen(&behind));
        let seen = json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 3}});
        assert!(controller_has_seen(&seen));
        // A Job has no observedGeneration: any status means its controller acted.
        let job = json!({"metadata": {"generation": 1}, "status": {"active": 1}});
        assert!(controller_has_seen(&job));
    }
}
