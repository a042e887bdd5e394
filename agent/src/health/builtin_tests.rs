use super::super::{Facts, missing};
use super::*;
use renderer::protocol::HealthEntry;

fn assess(obj: &Value) -> HealthEntry {
    super::super::assess(obj, &Facts::plain())
}
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
