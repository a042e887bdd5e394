//! Built-in rules for the core kinds, as `kubectl rollout status` and kstatus judge them.

use serde_json::Value;

use super::HealthState;

pub(super) fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The condition of `type_` in `status.conditions`, if present.
pub(super) fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// `Some` while the controller has not yet seen the latest spec.
pub(super) fn unobserved(obj: &Value) -> Option<(HealthState, String)> {
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

pub(super) fn deployment(d: &Value) -> (HealthState, String) {
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

pub(super) fn stateful_set(s: &Value) -> (HealthState, String) {
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

pub(super) fn daemon_set(d: &Value) -> (HealthState, String) {
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

pub(super) fn job(j: &Value) -> (HealthState, String) {
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

pub(super) fn pvc(p: &Value) -> (HealthState, String) {
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

pub(super) fn replica_set(r: &Value) -> (HealthState, String) {
    use HealthState::*;
    if let Some(u) = unobserved(r) {
        return u;
    }
    if let Some(c) = condition(r, "ReplicaFailure")
        && c["status"] == "True"
    {
        let msg = c["message"].as_str().unwrap_or("replica failure");
        return (Degraded, msg.to_string());
    }
    let desired = r["spec"]["replicas"].as_i64().unwrap_or(1);
    let available = int(&r["status"]["availableReplicas"]);
    if available < desired {
        return (
            Progressing,
            format!("{available} of {desired} replicas available"),
        );
    }
    (
        Healthy,
        format!("{available} of {desired} replicas available"),
    )
}

/// Only a Service of type LoadBalancer has something to wait for: its address.
pub(super) fn service(s: &Value) -> (HealthState, String) {
    if s["spec"]["type"] != "LoadBalancer" {
        return (HealthState::Healthy, "exists".into());
    }
    let ingress = s["status"]["loadBalancer"]["ingress"].as_array();
    match ingress.and_then(|i| i.first()) {
        Some(first) => {
            let address = first["ip"]
                .as_str()
                .or_else(|| first["hostname"].as_str())
                .unwrap_or("an address");
            (HealthState::Healthy, format!("load balancer at {address}"))
        }
        None => (
            HealthState::Progressing,
            "waiting for the load balancer's address".into(),
        ),
    }
}

pub(super) fn pod(p: &Value) -> (HealthState, String) {
    use HealthState::*;
    match p["status"]["phase"].as_str() {
        Some("Succeeded") => (Healthy, "completed".into()),
        Some("Failed") => (
            Degraded,
            p["status"]["message"]
                .as_str()
                .unwrap_or("failed")
                .to_string(),
        ),
        _ => {
            if let Some(problem) = super::pod_problem(p) {
                return (Degraded, problem);
            }
            if condition(p, "Ready").is_some_and(|c| c["status"] == "True") {
                (Healthy, "running and ready".into())
            } else {
                (Progressing, "not ready yet".into())
            }
        }
    }
}

#[cfg(test)]
#[path = "builtin_tests.rs"]
mod tests;
