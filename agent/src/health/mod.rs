//! Health of live objects, judged the way kstatus (Flux) does and Argo CD's users expect.
//!
//! Pure and from the object alone ([`assess`]): built-in rules for the core kinds
//! ([`builtin`]), users' CEL rules per kind ([`rules`]), and for every other kind the standard
//! conditions and `observedGeneration` ([`generic`]). [`live`] adds what needs the cluster:
//! whether a kind has a status at all, the rules from the agent's ConfigMap, and the pods and
//! their reasons behind a workload that is not healthy ([`pods`]).

mod builtin;
mod generic;
mod live;
mod pods;
pub mod rules;

use std::time::Duration;

use jiff::Timestamp;
use renderer::protocol::HealthEntry;
use serde_json::Value;

pub use live::LiveHealth;
pub use pods::{pod_problem, pod_problems_message};
pub use rules::{HealthRule, HealthRules};

/// How long an object of a kind that has a status may go without one before it counts as
/// healthy: a controller that has not yet seen a new object must not make it look done
/// (fluxcd/kustomize-controller#387).
pub const SETTLE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    Progressing,
    Degraded,
    Unknown,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::Progressing => "Progressing",
            Self::Degraded => "Degraded",
            Self::Unknown => "Unknown",
        }
    }
}

/// What the judge knows besides the object itself.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub now: Timestamp,
    /// The kind has a `status` subresource (discovery), so an object without a status has
    /// not been seen by its controller yet.
    pub has_status: bool,
    pub rules: &'a HealthRules,
}

impl Facts<'_> {
    /// No rules, no status subresource, now.
    pub fn plain() -> Facts<'static> {
        static NONE: std::sync::OnceLock<HealthRules> = std::sync::OnceLock::new();
        Facts {
            now: Timestamp::now(),
            has_status: false,
            rules: NONE.get_or_init(HealthRules::default),
        }
    }
}

/// The health of a live object (as returned by the API server, status included).
pub fn assess(obj: &Value, facts: &Facts) -> HealthEntry {
    let (state, message) = judge(obj, facts);
    entry(obj, state, message)
}

fn judge(obj: &Value, facts: &Facts) -> (HealthState, String) {
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return (HealthState::Progressing, "being deleted".into());
    }
    if let Some(verdict) = facts.rules.assess(obj) {
        return verdict;
    }
    let group = obj["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map_or("", |(g, _)| g);
    match (group, obj["kind"].as_str().unwrap_or_default()) {
        ("apps", "Deployment") => builtin::deployment(obj),
        ("apps", "StatefulSet") => builtin::stateful_set(obj),
        ("apps", "DaemonSet") => builtin::daemon_set(obj),
        ("apps", "ReplicaSet") => builtin::replica_set(obj),
        ("batch", "Job") => builtin::job(obj),
        ("", "PersistentVolumeClaim") => builtin::pvc(obj),
        ("", "Service") => builtin::service(obj),
        ("", "Pod") => builtin::pod(obj),
        _ => generic::assess(obj, facts),
    }
}

/// An object Git declares that is not in the cluster.
pub fn missing(kind: &str, name: &str) -> HealthEntry {
    HealthEntry {
        kind: kind.to_string(),
        name: name.to_string(),
        state: HealthState::Degraded.as_str().to_string(),
        message: "not found in the cluster".to_string(),
    }
}

/// Puts `entry` in place of the entry for the same object; whether anything changed.
pub fn replace(health: &mut [HealthEntry], entry: HealthEntry) -> bool {
    match health
        .iter_mut()
        .find(|h| h.kind == entry.kind && h.name == entry.name)
    {
        Some(old) if *old == entry => false,
        Some(old) => {
            *old = entry;
            true
        }
        None => false,
    }
}

fn entry(obj: &Value, state: HealthState, message: String) -> HealthEntry {
    HealthEntry {
        kind: obj["kind"].as_str().unwrap_or_default().to_string(),
        name: obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        state: state.as_str().to_string(),
        message,
    }
}
