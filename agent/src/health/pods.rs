//! The pods behind a workload that is not healthy, and what is wrong with each, as a kubelet
//! reports it (`ImagePullBackOff on catalog-api-7c9d8-x2k4j`).

use serde_json::Value;

/// Waiting reasons of a container that is merely starting.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// How many pods a message names before it says how many more there are.
const NAMED_PODS: usize = 3;

/// What is wrong with one pod, if anything: a container waiting for a reason other than
/// starting, a container that exited with an error, a failed phase, or no node to run on.
pub fn pod_problem(pod: &Value) -> Option<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let status = &pod["status"];
    let containers = ["initContainerStatuses", "containerStatuses"]
        .into_iter()
        .filter_map(|key| status[key].as_array())
        .flatten();
    for c in containers {
        let container = c["name"].as_str().unwrap_or("?");
        let waiting = &c["state"]["waiting"];
        if let Some(reason) = waiting["reason"].as_str()
            && !STARTING.contains(&reason)
        {
            return Some(with_detail(
                format!("{reason} on {name}"),
                container,
                waiting["message"].as_str(),
            ));
        }
        let terminated = &c["state"]["terminated"];
        if terminated["exitCode"]
            .as_i64()
            .is_some_and(|code| code != 0)
        {
            let reason = terminated["reason"].as_str().unwrap_or("Error");
            let code = terminated["exitCode"].as_i64().unwrap_or_default();
            return Some(format!(
                "{reason} on {name} ({container} exited with {code})"
            ));
        }
    }
    if status["phase"] == "Failed" {
        let reason = status["reason"].as_str().unwrap_or("Failed");
        return Some(with_detail(
            format!("{reason} on {name}"),
            "pod",
            status["message"].as_str(),
        ));
    }
    let unschedulable = status["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
    });
    if let Some(c) = unschedulable {
        let reason = c["reason"].as_str().unwrap_or("Unschedulable");
        return Some(with_detail(
            format!("{reason} on {name}"),
            "scheduler",
            c["message"].as_str(),
        ));
    }
    None
}

fn with_detail(head: String, who: &str, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{head} ({who}: {m})"),
        None => format!("{head} ({who})"),
    }
}

/// `pods: ImagePullBackOff on a (...); CrashLoopBackOff on b (...) and 2 more`, or `None`
/// when no pod has a problem. Pods are named in name order so the message is stable.
pub fn pod_problems_message(pods: &[Value]) -> Option<String> {
    let mut problems: Vec<(String, String)> = pods
        .iter()
        .filter_map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or("?").to_string();
            pod_problem(p).map(|problem| (name, problem))
        })
        .collect();
    if problems.is_empty() {
        return None;
    }
    problems.sort();
    let more = problems.len().saturating_sub(NAMED_PODS);
    let named: Vec<String> = problems
        .into_iter()
        .take(NAMED_PODS)
        .map(|(_, p)| p)
        .collect();
    let mut message = format!("pods: {}", named.join("; "));
    if more > 0 {
        message.push_str(&format!(" and {more} more"));
    }
    Some(message)
}

/// The label selector (`a=b,c in (d,e),!f`) of a workload's `spec.selector`, or `None` if it
/// has none or one this cannot express.
pub(super) fn selector(workload: &Value) -> Option<String> {
    let sel = &workload["spec"]["selector"];
    let mut terms: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str()?;
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        terms.push(match e["operator"].as_str()? {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    (!terms.is_empty()).then(|| terms.join(","))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "status": status})
    }

    fn waiting(reason: &str, message: &str) -> Value {
        json!({"phase": "Pending", "containerStatuses": [
            {"name": "api", "state": {"waiting": {"reason": reason, "message": message}}}]})
    }

    #[test]
    fn names_the_reason_the_kubelet_gives() {
        let p = pod(
            "catalog-api-7c9d8-x2k4j",
            waiting("ImagePullBackOff", "Back-off pulling image \"x:broken\""),
        );
        assert_eq!(
            pod_problem(&p).unwrap(),
            "ImagePullBackOff on catalog-api-7c9d8-x2k4j (api: Back-off pulling image \"x:broken\")"
        );
        let crash = pod(
            "c",
            json!({"phase": "Running", "containerStatuses": [
            {"name": "api", "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        assert_eq!(pod_problem(&crash).unwrap(), "CrashLoopBackOff on c (api)");
        let exited = pod(
            "e",
            json!({"phase": "Running", "containerStatuses": [
            {"name": "api", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
        );
        assert_eq!(
            pod_problem(&exited).unwrap(),
            "OOMKilled on e (api exited with 137)"
        );
        let init = pod(
            "i",
            json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "migrate", "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
        );
        assert_eq!(pod_problem(&init).unwrap(), "ErrImagePull on i (migrate)");
        let unschedulable = pod(
            "u",
            json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/2 nodes are available"}]}),
        );
        assert_eq!(
            pod_problem(&unschedulable).unwrap(),
            "Unschedulable on u (scheduler: 0/2 nodes are available)"
        );
        let failed = pod(
            "f",
            json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
        );
        assert_eq!(
            pod_problem(&failed).unwrap(),
            "Evicted on f (pod: low on memory)"
        );
    }

    #[test]
    fn starting_and_running_pods_have_no_problem() {
        assert_eq!(
            pod_problem(&pod("s", waiting("ContainerCreating", ""))),
            None
        );
        let running = pod(
            "r",
            json!({"phase": "Running", "containerStatuses": [
            {"name": "api", "ready": true, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}),
        );
        assert_eq!(pod_problem(&running), None);
        let done = pod(
            "d",
            json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "api", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        );
        assert_eq!(pod_problem(&done), None);
    }

    #[test]
    fn message_names_at_most_three_pods_in_order() {
        let pods: Vec<Value> = ["e", "d", "c", "b", "a"]
            .iter()
            .map(|n| pod(n, waiting("ImagePullBackOff", "")))
            .chain([pod("ok", json!({"phase": "Running"}))])
            .collect();
        assert_eq!(
            pod_problems_message(&pods).unwrap(),
            "pods: ImagePullBackOff on a (api); ImagePullBackOff on b (api); \
             ImagePullBackOff on c (api) and 2 more"
        );
        assert_eq!(pod_problems_message(&pods[5..]), None);
    }

    #[test]
    fn selectors_as_label_selector_strings() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]}}});
        assert_eq!(selector(&d).unwrap(), "app=web,tier in (a,b),!canary");
        assert_eq!(selector(&json!({"spec": {}})), None);
        let odd =
            json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]}}});
        assert_eq!(selector(&odd), None);
    }
}
