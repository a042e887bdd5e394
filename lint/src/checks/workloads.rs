//! Pod specs wherever they are nested (Pod, Deployment, CronJob, custom workloads): images,
//! limits, privileges, and replicas an HPA owns.

use renderer::RenderedObject;
use renderer::protocol::IGNORE_FIELDS_ANNOTATION;
use renderer::provenance::{element_segment, push_key, push_segment};
use serde_json::Value;

use crate::finding::{Finding, describe};
use crate::rules::{HPA_REPLICAS, MUTABLE_IMAGES, PRIVILEGED, RESOURCE_LIMITS};

/// Capabilities that amount to root on the node.
const DANGEROUS_CAPABILITIES: &[&str] =
    &["ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE"];
const CONTAINER_LISTS: &[&str] = &["initContainers", "containers"];

/// A container: its provenance path and value.
pub struct Container<'a> {
    pub path: String,
    pub value: &'a Value,
}

/// Every pod spec in `value` (a map with a `containers` list), with its provenance path.
pub fn pod_specs(value: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    find_pod_specs(value, &mut String::new(), &mut out, 0);
    out
}

fn find_pod_specs<'a>(
    value: &'a Value,
    path: &mut String,
    out: &mut Vec<(String, &'a Value)>,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    match value {
        Value::Object(map) => {
            if map.get("containers").is_some_and(Value::is_array) {
                out.push((path.clone(), value));
                return;
            }
            for (k, v) in map {
                let len = path.len();
                push_key(path, k, false);
                find_pod_specs(v, path, out, depth + 1);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let len = path.len();
                push_segment(path, &element_segment(items, i));
                find_pod_specs(v, path, out, depth + 1);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

pub fn containers<'a>(spec_path: &str, spec: &'a Value) -> Vec<Container<'a>> {
    let mut out = Vec::new();
    for list in CONTAINER_LISTS {
        let Some(items) = spec.get(*list).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in items.iter().enumerate() {
            let mut path = spec_path.to_string();
            push_key(&mut path, list, false);
            push_segment(&mut path, &element_segment(items, i));
            out.push(Container { path, value: c });
        }
    }
    out
}

fn field(path: &str, key: &str) -> String {
    let mut p = path.to_string();
    push_key(&mut p, key, false);
    p
}

/// What is mutable about an image reference, if anything.
pub fn image_problem(image: &str, require_digests: bool) -> Option<&'static str> {
    if image.contains('@') {
        return None;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => Some("has no tag (so it means `latest`)"),
        Some((_, "latest")) => Some("uses the `latest` tag"),
        Some((_, "")) => Some("has an empty tag"),
        Some(_) if require_digests => {
            Some("is pinned by tag, and this repository requires digests")
        }
        Some(_) => None,
    }
}

pub fn check(object: &RenderedObject, require_digests: bool, out: &mut Vec<Finding>) {
    let name = describe(&object.value);
    for (spec_path, spec) in pod_specs(&object.value) {
        for key in ["hostNetwork", "hostPID", "hostIPC"] {
            if spec.get(key) == Some(&Value::Bool(true)) {
                out.push(Finding::at_field(
                    PRIVILEGED,
                    object,
                    &field(&spec_path, key),
                    format!("{name}: {key} is true"),
                ));
            }
        }
        for c in containers(&spec_path, spec) {
            let cname = c.value["name"].as_str().unwrap_or("?");
            if let Some(image) = c.value.get("image").and_then(Value::as_str)
                && let Some(problem) = image_problem(image, require_digests)
            {
                out.push(Finding::at_field(
                    MUTABLE_IMAGES,
                    object,
                    &field(&c.path, "image"),
                    format!("{name}: container {cname} image {image} {problem}"),
                ));
            }
            let limits = &c.value["resources"]["limits"];
            let missing: Vec<&str> = ["cpu", "memory"]
                .into_iter()
                .filter(|k| limits.get(*k).is_none_or(Value::is_null))
                .collect();
            if !missing.is_empty() {
                out.push(Finding::at_field(
                    RESOURCE_LIMITS,
                    object,
                    &c.path,
                    format!(
                        "{name}: container {cname} has no {} limit",
                        missing.join(" or ")
                    ),
                ));
            }
            let sc = &c.value["securityContext"];
            let sc_path = field(&c.path, "securityContext");
            for key in ["privileged", "allowPrivilegeEscalation"] {
                if sc.get(key) == Some(&Value::Bool(true)) {
                    out.push(Finding::at_field(
                        PRIVILEGED,
                        object,
                        &field(&sc_path, key),
                        format!("{name}: container {cname} sets {key}: true"),
                    ));
                }
            }
            let added: Vec<&str> = sc["capabilities"]["add"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|c| DANGEROUS_CAPABILITIES.contains(&c.trim_start_matches("CAP_")))
                .collect();
            if !added.is_empty() {
                out.push(Finding::at_field(
                    PRIVILEGED,
                    object,
                    &field(&field(&sc_path, "capabilities"), "add"),
                    format!("{name}: container {cname} adds {}", added.join(", ")),
                ));
            }
        }
    }
}

/// Workloads with `spec.replicas` in Git that an HPA of the same render scales, without an
/// ignore rule for the field.
pub fn check_hpa_replicas(objects: &[RenderedObject], out: &mut Vec<Finding>) {
    let targets: Vec<(&str, &str, &str)> = objects
        .iter()
        .filter(|o| o.value["kind"] == "HorizontalPodAutoscaler")
        .filter_map(|o| {
            let r = &o.value["spec"]["scaleTargetRef"];
            Some((
                r["kind"].as_str()?,
                r["name"].as_str()?,
                o.value["metadata"]["namespace"].as_str().unwrap_or(""),
            ))
        })
        .collect();
    if targets.is_empty() {
        return;
    }
    for o in objects {
        let v = &o.value;
        let (Some(kind), Some(name)) = (v["kind"].as_str(), v["metadata"]["name"].as_str()) else {
            continue;
        };
        let ns = v["metadata"]["namespace"].as_str().unwrap_or("");
        if v["spec"].get("replicas").is_none_or(Value::is_null)
            || !targets.contains(&(kind, name, ns))
        {
            continue;
        }
        let ignored = v["metadata"]["annotations"][IGNORE_FIELDS_ANNOTATION]
            .as_str()
            .is_some_and(|a| a.split(',').any(|p| p.trim() == "/spec/replicas"));
        if !ignored {
            out.push(Finding::at_field(
                HPA_REPLICAS,
                o,
                "spec.replicas",
                format!(
                    "{kind}/{name}: spec.replicas is set in Git and a HorizontalPodAutoscaler scales it"
                ),
            ));
        }
    }
}
