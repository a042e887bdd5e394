//! Health of live objects, judged the way `kubectl rollout status` does: pure, from the object.

use renderer::protocol::HealthEntry;
use serde_json::Value;

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

/// The health of a live object (as returned by the API server, status included).
pub fn assess(obj: &Value) -> HealthEntry {
    let (state, message) = match obj["kind"].as_str().unwrap_or_default() {
        "Deployment" => deployment(obj),
        "StatefulSet" => stateful_set(obj),
        "DaemonSet" => daemon_set(obj),
        "Job" => job(obj),
        "PersistentVolumeClaim" => pvc(obj),
        _ => (HealthState::Healthy, "exists".to_string()),
    };
    entry(obj, state, message)
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

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The condition of `type_` in `status.conditions`, if present.
fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// `Some` while the controller has not yet seen the latest spec.
fn unobserved(obj: &Value) -> Option<(HealthState, String)> {
    let generation = int(&obj["metadata"]["generation"]);
    let observed = int(&obj["status"]["observedGeneration"]);
    (observed < generation).then(|| {
        (
            HealthState::Progressing,
            format!(
                "waiting for the controller to observe generation {generation} (seen {observed})"
            ),
        )
    })
}

fn deployment(d: &Value) -> (HealthState, String) {
    use HealthState::*;
    if d["spec"]["paused"] == true {
        return (Unknown, "rollout is paused".into());
    }
    if let Some(u) = unobserved(d) {
        return u;
    }
    if let Some(c) = condition(d, "Progressing")
        && c["reason"] == "ProgressDeadlineExceeded"
    {
        let msg = c["message"]
            .as_str()
            .unwrap_or("progress deadline exceeded");
        return (Degraded, msg.to_string());
    }
    let s = &d["status"];
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let (updated, total, available) = (
        int(&s["updatedReplicas"]),
        int(&s["replicas"]),
        int(&s["availableReplicas"]),
    );
    if updated < desired {
        return (
            Progressing,
            format!("{updated} of {desired} replicas updated"),
        );
    }
    if total > updated {
        return (
            Progressing,
            format!("{} old replicas pending termination", total - updated),
        );
    }
    if available < updated {
        return (
            Progressing,
            format!("{available} of {updated} updated replicas available"),
        );
    }
    (
        Healthy,
        format!("{available} of {desired} replicas available"),
    )
}

fn stateful_set(s: &Value) -> (HealthState, String) {
    use HealthState::*;
    if let Some(u) = unobserved(s) {
        return u;
    }
    let st = &s["status"];
    let desired = s["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = int(&st["readyReplicas"]);
    if ready < desired {
        return (Progressing, format!("{ready} of {desired} replicas ready"));
    }
    let strategy = &s["spec"]["updateStrategy"];
    if strategy["type"] == "OnDelete" {
        return (
            Healthy,
            format!(
                "{ready} of {desired} replicas ready (OnDelete: updates wait for pod deletion)"
            ),
        );
    }
    if let Some(partition) = strategy["rollingUpdate"]["partition"].as_i64()
        && partition > 0
    {
        let updated = int(&st["updatedReplicas"]);
        let wanted = desired - partition;
        if updated < wanted {
            return (
                Progressing,
                format!("{updated} of {wanted} replicas above partition {partition} updated"),
            );
        }
        return (
            Healthy,
            format!("partitioned rollout: {updated} replicas updated"),
        );
    }
    if st["updateRevision"] != st["currentRevision"] {
        let updated = int(&st["updatedReplicas"]);
        return (
            Progressing,
            format!(
                "{updated} of {desired} replicas updated to revision {}",
                st["updateRevision"].as_str().unwrap_or("?")
            ),
        );
    }
    (Healthy, format!("{ready} of {desired} replicas ready"))
}

fn daemon_set(d: &Value) -> (HealthState, String) {
    use HealthState::*;
    if let Some(u) = unobserved(d) {
        return u;
    }
    let st = &d["status"];
    let desired = int(&st["desiredNumberScheduled"]);
    let updated = int(&st["updatedNumberScheduled"]);
    let available = int(&st["numberAvailable"]);
    if updated < desired {
        return (Progressing, format!("{updated} of {desired} pods updated"));
    }
    if available < desired {
        return (
            Progressing,
            format!("{available} of {desired} pods available"),
        );
    }
    (Healthy, format!("{available} of {desired} pods available"))
}

fn job(j: &Value) -> (HealthState, String) {
    use HealthState::*;
    let is_true = |t: &str| condition(j, t).is_some_and(|c| c["status"] == "True");
    if is_true("Failed") {
        let c = condition(j, "Failed").expect("checked above");
        let reason = c["reason"].as_str().unwrap_or("Failed");
        let msg = c["message"].as_str().unwrap_or_default();
        return (
            Degraded,
            format!("{reason}: {msg}")
                .trim_end_matches(": ")
                .to_string(),
        );
    }
    if is_true("Complete") {
        return (
            Healthy,
            format!("completed ({} succeeded)", int(&j["status"]["succeeded"])),
        );
    }
    if is_true("Suspended") || j["spec"]["suspend"] == true {
        return (Unknown, "suspended".into());
    }
    let st = &j["status"];
    (
        Progressing,
        format!(
            "{} active, {} succeeded, {} failed",
            int(&st["active"]),
            int(&st["succeeded"]),
            int(&st["failed"])
        ),
    )
}

fn pvc(p: &Value) -> (HealthState, String) {
    match p["status"]["phase"].as_str() {
        Some("Bound") => (HealthState::Healthy, "Bound".into()),
        Some("Lost") => (
            HealthState::Degraded,
            "Lost: the bound volume no longer exists".into(),
        ),
        Some(phase) => (HealthState::Progressing, phase.to_string()),
        None => (HealthState::Progressing, "no phase yet".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(obj: &Value) -> String {
        assess(obj).state
    }

    fn deployment(status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 3},
            "status": status
        })
    }

    #[test]
    fn deployment_rollout_states() {
        let done = deployment(json!({
            "observedGeneration": 3, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ]
        }));
        let e = assess(&done);
        assert_eq!(
            (e.kind.as_str(), e.name.as_str(), e.state.as_str()),
            ("Deployment", "web", "Healthy")
        );

        let unobserved = deployment(
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(state(&unobserved), "Progressing");
        assert!(assess(&unobserved).message.contains("generation 3"));

        let surging = deployment(
            json!({"observedGeneration": 3, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(
            assess(&surging).message,
            "1 old replicas pending termination"
        );

        let half = deployment(
            json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 3}),
        );
        assert_eq!(assess(&half).message, "1 of 3 replicas updated");

        let unavailable = deployment(
            json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
        );
        assert_eq!(state(&unavailable), "Progressing");
    }

    #[test]
    fn deployment_past_its_deadline_is_degraded() {
        let stuck = deployment(json!({
            "observedGeneration": 3, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                            "message": "ReplicaSet \"web-7d9\" has timed out progressing."}]
        }));
        let e = assess(&stuck);
        assert_eq!(e.state, "Degraded");
        assert!(e.message.contains("timed out"), "{}", e.message);
    }

    #[test]
    fn stateful_set_states() {
        let sts = |status: Value, strategy: Value| {
            json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "db", "generation": 2},
                "spec": {"replicas": 3, "updateStrategy": strategy},
                "status": status
            })
        };
        let rolling = json!({"type": "RollingUpdate"});
        let ok = sts(
            json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3,
                            "currentRevision": "db-1", "updateRevision": "db-1"}),
            rolling.clone(),
        );
        assert_eq!(state(&ok), "Healthy");
        let rolling_out = sts(
            json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1,
                                     "currentRevision": "db-1", "updateRevision": "db-2"}),
            rolling.clone(),
        );
        assert_eq!(state(&rolling_out), "Progressing");
        let not_ready = sts(
            json!({"observedGeneration": 2, "readyReplicas": 1}),
            rolling,
        );
        assert_eq!(assess(&not_ready).message, "1 of 3 replicas ready");
        let partitioned = sts(
            json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1,
                   "currentRevision": "db-1", "updateRevision": "db-2"}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
        );
        assert_eq!(state(&partitioned), "Healthy");
    }

    #[test]
    fn daemon_set_states() {
        let ds = |updated: i64, available: i64| {
            json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                           "updatedNumberScheduled": updated, "numberAvailable": available}
            })
        };
        assert_eq!(state(&ds(2, 2)), "Healthy");
        assert_eq!(assess(&ds(1, 2)).message, "1 of 2 pods updated");
        assert_eq!(state(&ds(2, 1)), "Progressing");
    }

    #[test]
    fn job_states() {
        let job = |conditions: Value, status: Value| {
            let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"}, "status": status});
            j["status"]["conditions"] = conditions;
            j
        };
        let done = job(
            json!([{"type": "Complete", "status": "True"}]),
            json!({"succeeded": 1}),
        );
        assert_eq!(state(&done), "Healthy");
        let failed = job(
            json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit"}]),
            json!({"failed": 7}),
        );
        let e = assess(&failed);
        assert_eq!(e.state, "Degraded");
        assert_eq!(
            e.message,
            "BackoffLimitExceeded: Job has reached the specified backoff limit"
        );
        let running = job(json!([]), json!({"active": 1}));
        assert_eq!(assess(&running).message, "1 active, 0 succeeded, 0 failed");
        assert_eq!(assess(&running).state, "Progressing");
    }

    #[test]
    fn pvc_and_other_kinds() {
        let pvc = |phase: &str| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                       "metadata": {"name": "data"}, "status": {"phase": phase}})
        };
        assert_eq!(state(&pvc("Bound")), "Healthy");
        assert_eq!(state(&pvc("Pending")), "Progressing");
        assert_eq!(state(&pvc("Lost")), "Degraded");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(state(&cm), "Healthy");
        assert_eq!(missing("Service", "web").state, "Degraded");
    }
}
