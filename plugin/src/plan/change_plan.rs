//! Pure planning for `break-glass`: how long it lasts, and which patch each change flag sends.
//! No I/O here, so every rule is unit tested without a cluster.

use jiff::SignedDuration;
use serde_json::{Map, Value, json};

/// The agent clamps longer overrides (and the admission policy denies them), so asking for more
/// would promise what the agent will not keep.
pub const MAX_BREAK_GLASS: SignedDuration =
    SignedDuration::from_hours(renderer::protocol::DEFAULT_MAX_BREAK_GLASS_HOURS);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("--for {0:?}: expected a duration such as 30m, 2h or 1h30m (units s, m, h, d)")]
    BadDuration(String),
    #[error("--for {0:?}: must be longer than zero")]
    ZeroDuration(String),
    #[error(
        "--for {0:?}: at most 24h (the agent's default --break-glass-max); a longer change belongs in Git"
    )]
    TooLong(String),
    #[error("{flag} {value:?}: expected {expected}")]
    BadArg {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{object}: {kind} has no pod template; {flag} applies to workloads")]
    NoPodTemplate {
        object: String,
        kind: String,
        flag: &'static str,
    },
    #[error("{object}: no container named {name:?} (containers: {known})")]
    NoContainer {
        object: String,
        name: String,
        known: String,
    },
    #[error(
        "{object}: {kind} has no spec.replicas; --scale applies to Deployments, StatefulSets and ReplicaSets"
    )]
    NotScalable { object: String, kind: String },
    #[error("--scale {0}: must not be negative")]
    NegativeScale(i64),
}

/// `--for`: Go-style `1h30m`, plus `d` for days. Bare numbers are refused: minutes or hours
/// is exactly the ambiguity an emergency does not need.
pub fn parse_duration(text: &str) -> Result<SignedDuration, PlanError> {
    let bad = || PlanError::BadDuration(text.to_string());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = SignedDuration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 || digits == rest.len() {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let secs_per_unit = match &rest[digits..digits + unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        let secs = n.checked_mul(secs_per_unit).ok_or_else(bad)?;
        total = total
            .checked_add(SignedDuration::from_secs(secs))
            .ok_or_else(bad)?;
        rest = &rest[digits + unit_len..];
    }
    if total.is_zero() {
        return Err(PlanError::ZeroDuration(text.to_string()));
    }
    if total > MAX_BREAK_GLASS {
        return Err(PlanError::TooLong(text.to_string()));
    }
    Ok(total)
}

/// `--set-image CONTAINER=IMAGE`.
pub fn parse_image_arg(text: &str) -> Result<(String, String), PlanError> {
    match text.split_once('=') {
        Some((c, i)) if !c.is_empty() && !i.is_empty() => Ok((c.to_string(), i.to_string())),
        _ => Err(PlanError::BadArg {
            flag: "--set-image",
            value: text.to_string(),
            expected: "CONTAINER=IMAGE",
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSet {
    /// `None`: every container, as `kubectl set env` does.
    pub container: Option<String>,
    pub name: String,
    pub value: String,
}

/// `--set-env [CONTAINER:]NAME=VALUE`. The value may contain `=` and `:`.
pub fn parse_env_arg(text: &str) -> Result<EnvSet, PlanError> {
    let bad = || PlanError::BadArg {
        flag: "--set-env",
        value: text.to_string(),
        expected: "[CONTAINER:]NAME=VALUE",
    };
    let (target, value) = text.split_once('=').ok_or_else(bad)?;
    let (container, name) = match target.split_once(':') {
        Some((c, n)) if !c.is_empty() => (Some(c.to_string()), n),
        Some(_) => return Err(bad()),
        None => (None, target),
    };
    if name.is_empty() {
        return Err(bad());
    }
    Ok(EnvSet {
        container,
        name: name.to_string(),
        value: value.to_string(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PatchType {
    Strategic,
    Merge,
    Json,
}

/// One change to send, and what it does in words (printed before asking).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPatch {
    pub patch_type: PatchType,
    pub body: Value,
    pub summary: Vec<String>,
}

/// Where a kind keeps its pod spec, as a list of keys.
pub fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some(&["spec", "template", "spec"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        "Pod" => Some(&["spec"]),
        _ => None,
    }
}

fn object_key(live: &Value) -> (String, String) {
    let kind = live["kind"].as_str().unwrap_or_default().to_string();
    let name = live["metadata"]["name"].as_str().unwrap_or_default();
    (format!("{kind}/{name}"), kind)
}

/// Wraps `leaf` in the keys of `path`: `["spec","template"]`, x -> `{"spec":{"template":x}}`.
fn nest(path: &[&str], leaf: Value) -> Value {
    path.iter()
        .rev()
        .fold(leaf, |inner, key| json!({ *key: inner }))
}

fn containers<'a>(
    live: &'a Value,
    flag: &'static str,
) -> Result<(&'static [&'static str], Vec<&'a Value>), PlanError> {
    let (object, kind) = object_key(live);
    let path = pod_spec_path(&kind).ok_or(PlanError::NoPodTemplate {
        object,
        kind: kind.clone(),
        flag,
    })?;
    let spec = path.iter().fold(live, |v, k| &v[*k]);
    let list = spec["containers"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    Ok((path, list))
}

fn find_container<'a>(
    live: &Value,
    list: &[&'a Value],
    name: &str,
) -> Result<&'a Value, PlanError> {
    list.iter()
        .copied()
        .find(|c| c["name"] == name)
        .ok_or_else(|| PlanError::NoContainer {
            object: object_key(live).0,
            name: name.to_string(),
            known: list
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A strategic-merge patch setting one container's image (containers merge by name).
pub fn plan_set_image(live: &Value, sets: &[(String, String)]) -> Result<PlannedPatch, PlanError> {
    let (path, list) = containers(live, "--set-image")?;
    let (object, _) = object_key(live);
    let mut patch_containers = Vec::new();
    let mut summary = Vec::new();
    for (container, image) in sets {
        let current = find_container(live, &list, container)?;
        summary.push(format!(
            "{object}: container {container}: image {} -> {image}",
            current["image"].as_str().unwrap_or("(none)")
        ));
        patch_containers.push(json!({"name": container, "image": image}));
    }
    Ok(PlannedPatch {
        patch_type: PatchType::Strategic,
        body: nest(path, json!({ "containers": patch_containers })),
        summary,
    })
}

/// A strategic-merge patch setting env vars (env merges by name). `valueFrom: null` because a
/// variable read from a ConfigMap would otherwise end up with both and be rejected.
pub fn plan_set_env(live: &Value, sets: &[EnvSet]) -> Result<PlannedPatch, PlanError> {
    let (path, list) = containers(live, "--set-env")?;
    let (object, _) = object_key(live);
    let mut per_container: Vec<(String, Vec<Value>)> = Vec::new();
    let mut summary = Vec::new();
    for set in sets {
        let targets: Vec<&Value> = match &set.container {
            Some(name) => vec![find_container(live, &list, name)?],
            None => list.clone(),
        };
        for c in targets {
            let cname = c["name"].as_str().unwrap_or_default().to_string();
            let current = c["env"]
                .as_array()
                .and_then(|env| env.iter().find(|e| e["name"] == set.name.as_str()))
                .map(|e| match e["value"].as_str() {
                    Some(v) => format!("{v:?}"),
                    None => "(from a reference)".to_string(),
                })
                .unwrap_or_else(|| "(unset)".to_string());
            summary.push(format!(
                "{object}: container {cname}: env {} {current} -> {:?}",
                set.name, set.value
            ));
            let entry = json!({"name": set.name, "value": set.value, "valueFrom": null});
            match per_container.iter_mut().find(|(n, _)| *n == cname) {
                Some((_, env)) => env.push(entry),
                None => per_container.push((cname, vec![entry])),
            }
        }
    }
    let patch_containers: Vec<Value> = per_container
        .into_iter()
        .map(|(name, env)| json!({"name": name, "env": env}))
        .collect();
    Ok(PlannedPatch {
        patch_type: PatchType::Strategic,
        body: nest(path, json!({ "containers": patch_containers })),
        summary,
    })
}

pub fn plan_scale(live: &Value, replicas: i64) -> Result<PlannedPatch, PlanError> {
    let (object, kind) = object_key(live);
    if replicas < 0 {
        return Err(PlanError::NegativeScale(replicas));
    }
    if !matches!(
        kind.as_str(),
        "Deployment" | "StatefulSet" | "ReplicaSet" | "ReplicationController"
    ) {
        return Err(PlanError::NotScalable { object, kind });
    }
    let current = live["spec"]["replicas"]
        .as_i64()
        .map_or("(unset)".to_string(), |r| r.to_string());
    Ok(PlannedPatch {
        patch_type: PatchType::Merge,
        body: json!({"spec": {"replicas": replicas}}),
        summary: vec![format!("{object}: replicas {current} -> {replicas}")],
    })
}

/// The RFC 7386 merge patch turning `from` into `to` (what `kubectl edit` sends for types
/// without a strategic schema; lists are replaced whole).
pub fn merge_diff(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for (key, old) in a {
                match b.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new) => {
                        if let Some(d) = merge_diff(old, new) {
                            patch.insert(key.clone(), d);
                        }
                    }
                }
            }
            for (key, new) in b {
                if !a.contains_key(key) {
                    patch.insert(key.clone(), new.clone());
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if from == to => None,
        _ => Some(to.clone()),
    }
}

/// The top-level paths a merge patch touches, for the summary (`spec.replicas`, …).
pub fn touched_paths(patch: &Value) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, inner) in map {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, inner, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    walk("", patch, &mut out);
    out.sort();
    out
}

/// What `--edit` shows: the live object without the bookkeeping nobody edits by hand.
pub fn editable(live: &Value) -> Value {
    let mut obj = live.clone();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "api", "image": "reg/api:1", "env": [{"name": "LOG", "value": "info"}]},
                {"name": "proxy", "image": "reg/proxy:2"}]}}}})
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30m").unwrap(),
            SignedDuration::from_mins(30)
        );
        assert_eq!(
            parse_duration("1h30m").unwrap(),
            SignedDuration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("1d").unwrap(),
            SignedDuration::from_hours(24)
        );
        assert_eq!(
            parse_duration("45s").unwrap(),
            SignedDuration::from_secs(45)
        );
        for bad in ["", "30", "m", "1x", "1.5h", "h1", "-1h"] {
            assert!(
                matches!(parse_duration(bad), Err(PlanError::BadDuration(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_duration("0m"),
            Err(PlanError::ZeroDuration("0m".into()))
        );
        assert_eq!(parse_duration("2d"), Err(PlanError::TooLong("2d".into())));
        assert_eq!(
            parse_duration("24h1s"),
            Err(PlanError::TooLong("24h1s".into()))
        );
        assert!(parse_duration("1d").is_ok());
    }

    #[test]
    fn image_and_env_args() {
        assert_eq!(
            parse_image_arg("api=reg/api:2").unwrap(),
            ("api".into(), "reg/api:2".into())
        );
        assert!(parse_image_arg("api").is_err());
        assert!(parse_image_arg("=x").is_err());
        assert_eq!(
            parse_env_arg("api:URL=http://x:80/?a=b").unwrap(),
            EnvSet {
                container: Some("api".into()),
                name: "URL".into(),
                value: "http://x:80/?a=b".into()
            }
        );
        assert_eq!(parse_env_arg("LOG=").unwrap().container, None);
        assert!(parse_env_arg("LOG").is_err());
        assert!(parse_env_arg(":LOG=1").is_err());
        assert!(parse_env_arg("=1").is_err());
    }

    #[test]
    fn set_image_patches_only_the_named_container() {
        let plan = plan_set_image(&deploy(), &[("proxy".into(), "reg/proxy:3".into())]).unwrap();
        assert_eq!(plan.patch_type, PatchType::Strategic);
        assert_eq!(
            plan.body,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "proxy", "image": "reg/proxy:3"}]}}}})
        );
        assert_eq!(
            plan.summary,
            ["Deployment/api: container proxy: image reg/proxy:2 -> reg/proxy:3"]
        );
        let err = plan_set_image(&deploy(), &[("web".into(), "x".into())]).unwrap_err();
        assert!(err.to_string().contains("api, proxy"), "{err}");
    }

    #[test]
    fn set_env_without_container_targets_all() {
        let sets = [parse_env_arg("LOG=debug").unwrap()];
        let plan = plan_set_env(&deploy(), &sets).unwrap();
        let containers = &plan.body["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2);
        assert_eq!(containers[1]["env"][0]["value"], "debug");
        assert!(containers[1]["env"][0]["valueFrom"].is_null());
        assert_eq!(
            plan.summary[0],
            "Deployment/api: container api: env LOG \"info\" -> \"debug\""
        );
        assert!(plan.summary[1].contains("(unset)"), "{:?}", plan.summary);
    }

    #[test]
    fn set_env_groups_by_container() {
        let sets = [
            parse_env_arg("api:A=1").unwrap(),
            parse_env_arg("api:B=2").unwrap(),
        ];
        let plan = plan_set_env(&deploy(), &sets).unwrap();
        assert_eq!(
            plan.body["spec"]["template"]["spec"]["containers"],
            json!([{"name": "api", "env": [
                {"name": "A", "value": "1", "valueFrom": null},
                {"name": "B", "value": "2", "valueFrom": null}]}])
        );
    }

    #[test]
    fn workload_only_flags_refuse_other_kinds() {
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(matches!(
            plan_set_image(&cm, &[("a".into(), "b".into())]),
            Err(PlanError::NoPodTemplate { .. })
        ));
        assert!(matches!(
            plan_scale(&cm, 2),
            Err(PlanError::NotScalable { .. })
        ));
        let cron = json!({"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate":
            {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "i"}]}}}}}});
        let plan = plan_set_image(&cron, &[("x".into(), "j".into())]).unwrap();
        assert_eq!(
            plan.body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
            "j"
        );
    }

    #[test]
    fn scale() {
        let plan = plan_scale(&deploy(), 5).unwrap();
        assert_eq!(plan.body, json!({"spec": {"replicas": 5}}));
        assert_eq!(plan.summary, ["Deployment/api: replicas 3 -> 5"]);
        assert_eq!(plan_scale(&deploy(), -1), Err(PlanError::NegativeScale(-1)));
    }

    #[test]
    fn merge_diff_is_minimal() {
        let a = json!({"spec": {"replicas": 3, "paused": true, "list": [1, 2]}, "x": 1});
        let b = json!({"spec": {"replicas": 4, "list": [1, 2], "new": "y"}, "x": 1});
        let patch = merge_diff(&a, &b).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {"replicas": 4, "paused": null, "new": "y"}})
        );
        assert_eq!(
            touched_paths(&patch),
            ["spec.new", "spec.paused", "spec.replicas"]
        );
        assert_eq!(merge_diff(&a, &a), None);
        let mut applied = a.clone();
        json_merge(&mut applied, &patch);
        assert_eq!(applied, b);
    }

    /// RFC 7386 applied, to prove `merge_diff` round-trips.
    fn json_merge(target: &mut Value, patch: &Value) {
        if let Value::Object(p) = patch {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        } else {
            *target = patch.clone();
        }
    }

    #[test]
    fn editable_drops_managed_fields() {
        let mut live = deploy();
        live["metadata"]["managedFields"] = json!([{"manager": "x"}]);
        assert!(editable(&live)["metadata"].get("managedFields").is_none());
        assert_eq!(editable(&live)["spec"], deploy()["spec"]);
    }
}
