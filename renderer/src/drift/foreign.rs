//! Foreign additions: fields present live that Git never sets, written by someone other than
//! the agent and the API server's own controllers (an extra env var, a sidecar, a `hostPath`
//! volume). A forced apply leaves them in place — they are not the agent's — so they are a
//! class of drift of their own, found through `metadata.managedFields`.

use serde::Serialize;
use serde_json::Value;

use super::fields::{FieldPath, FieldsError, ManagedFields, PathElement};
use crate::protocol::{AGENT_FIELD_MANAGER, BREAK_GLASS_FIELD_MANAGER, PLUGIN_FIELD_MANAGER};

/// Field managers of the API server and its built-in controllers: what they write (status,
/// revision annotations, allocated IPs) is the cluster working, not someone's edit.
pub const SERVER_MANAGERS: [&str; 5] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "before-first-apply",
];

/// Annotation prefixes that are bookkeeping or instructions to this project, never drift.
const NOT_FOREIGN_ANNOTATIONS: [&str; 2] = [
    "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
    "/metadata/annotations/kubectl-gitops.dev~1",
];

/// One field (or whole subtree: a container, a volume) added live by someone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForeignField {
    /// JSON pointer into the live object.
    pub pointer: String,
    /// The same place as Kubernetes spells field paths (`.spec...containers[name="x"]`).
    pub path: String,
    pub manager: String,
    /// When the manager last wrote the object (from `managedFields[].time`).
    pub time: Option<String>,
    /// Why it matters for security (`new container "debug"`, `adds capabilities NET_ADMIN`);
    /// empty when it does not.
    pub sensitive: Vec<String>,
}

impl ForeignField {
    pub fn is_sensitive(&self) -> bool {
        !self.sensitive.is_empty()
    }
}

/// Whether fields written by `manager` (operation on `subresource`) can be foreign.
pub fn is_foreign_manager(manager: &str, subresource: &str) -> bool {
    subresource != "status"
        && ![
            AGENT_FIELD_MANAGER,
            BREAK_GLASS_FIELD_MANAGER,
            PLUGIN_FIELD_MANAGER,
        ]
        .contains(&manager)
        && !SERVER_MANAGERS.contains(&manager)
}

/// The foreign additions on `live`, given the object the agent applies (`git`, decorated) and,
/// when known, `defaults`: the API server's answer to creating Git's object afresh (a dry-run),
/// whose values the server fills in by itself and are never foreign. `ignored` pointers (left
/// to someone else by ignore rules) are not reported either.
pub fn foreign_additions(
    git: &Value,
    live: &Value,
    defaults: Option<&Value>,
    ignored: &[String],
) -> Result<Vec<ForeignField>, FieldsError> {
    let managed = ManagedFields::from_object(live)?;
    let mut out: Vec<ForeignField> = Vec::new();
    for entry in &managed.entries {
        if !is_foreign_manager(&entry.info.manager, &entry.info.subresource) {
            continue;
        }
        for path in entry.fields.iter() {
            let Some(top) = first_absent(&path.0, git) else {
                continue;
            };
            let top = FieldPath(path.0[..top].to_vec());
            let Some(pointer) = top.resolve(live) else {
                continue;
            };
            if out.iter().any(|f| f.pointer == pointer)
                || NOT_FOREIGN_ANNOTATIONS
                    .iter()
                    .any(|p| pointer.starts_with(p))
                || ignored
                    .iter()
                    .any(|i| pointer == *i || pointer.starts_with(&format!("{i}/")))
            {
                continue;
            }
            let value = live.pointer(&pointer);
            if defaults
                .is_some_and(|d| d.pointer(&pointer).is_some() && d.pointer(&pointer) == value)
            {
                continue;
            }
            out.push(ForeignField {
                sensitive: value
                    .map(|v| sensitive(live["kind"].as_str().unwrap_or_default(), &pointer, v))
                    .unwrap_or_default(),
                pointer,
                path: top.to_string(),
                manager: entry.info.manager.clone(),
                time: entry.info.time.clone(),
            });
        }
    }
    // A field under one already reported (the sidecar's image under the sidecar) is part of it.
    let pointers: Vec<String> = out.iter().map(|f| f.pointer.clone()).collect();
    out.retain(|f| {
        !pointers
            .iter()
            .any(|p| p != &f.pointer && f.pointer.starts_with(&format!("{p}/")))
    });
    out.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    Ok(out)
}

/// The length of the shortest prefix of `path` that Git does not have, or `None` if Git has
/// the whole path (then the field is Git's, and a different value is ordinary drift).
fn first_absent(path: &[PathElement], git: &Value) -> Option<usize> {
    let mut cur = git;
    for (i, el) in path.iter().enumerate() {
        let next = match (el, cur) {
            (PathElement::Field(name), Value::Object(map)) => map.get(name),
            (PathElement::Index(n), Value::Array(items)) => items.get(*n),
            (PathElement::Key(kv), Value::Array(items)) => items.iter().find(|item| {
                kv.iter().all(|(k, v)| {
                    serde_json::from_str::<Value>(v).ok().as_ref() == item.get(k.as_str())
                })
            }),
            (PathElement::Value(v), Value::Array(items)) => {
                let wanted: Option<Value> = serde_json::from_str(v).ok();
                items.iter().find(|item| Some(*item) == wanted.as_ref())
            }
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return Some(i + 1),
        }
    }
    None
}

/// The security-relevant things a foreign addition does, found anywhere inside it.
pub fn sensitive(kind: &str, pointer: &str, value: &Value) -> Vec<String> {
    let mut why = Vec::new();
    let segments: Vec<&str> = pointer.split('/').collect();
    if let [.., list, index] = segments.as_slice()
        && ["containers", "initContainers", "ephemeralContainers"].contains(list)
        && index.parse::<usize>().is_ok()
    {
        why.push(format!(
            "new container {}",
            value["name"].as_str().unwrap_or_default()
        ));
    }
    if kind == "Service"
        && pointer == "/spec/type"
        && let Some(t @ ("NodePort" | "LoadBalancer")) = value.as_str()
    {
        why.push(format!("service type {t}"));
    }
    let last = segments.last().copied().unwrap_or_default();
    scan(last, value, &mut why);
    why.dedup();
    why
}

fn scan(key: &str, value: &Value, why: &mut Vec<String>) {
    match (key, value) {
        ("privileged", Value::Bool(true)) => why.push("privileged".into()),
        ("allowPrivilegeEscalation", Value::Bool(true)) => {
            why.push("allows privilege escalation".into());
        }
        ("hostNetwork" | "hostPID" | "hostIPC" | "hostUsers", Value::Bool(b))
            if (*b) != (key == "hostUsers") =>
        {
            why.push(format!("{key}: {b}"));
        }
        ("hostPath", Value::Object(_)) => why.push(format!(
            "hostPath volume {}",
            value["path"].as_str().unwrap_or_default()
        )),
        ("hostPort", Value::Number(n)) => why.push(format!("hostPort {n}")),
        ("add", Value::Array(caps)) if !caps.is_empty() => {
            let caps: Vec<&str> = caps.iter().filter_map(Value::as_str).collect();
            why.push(format!("adds capabilities {}", caps.join(",")));
        }
        _ => {}
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                scan(k, v, why);
            }
        }
        Value::Array(items) => {
            for v in items {
                scan(key, v, why);
            }
        }
        _ => {}
    }
}

/// A JSON patch (RFC 6902) removing exactly `fields` from `live`, each guarded by a `test` of
/// its current value so a field changed in the meantime is not removed blindly. List items are
/// removed from the highest index down so earlier removals do not shift later ones.
pub fn removal_patch(fields: &[ForeignField], live: &Value) -> Value {
    let mut pointers: Vec<&str> = fields.iter().map(|f| f.pointer.as_str()).collect();
    pointers.sort_by_key(|p| std::cmp::Reverse(sort_key(p)));
    let mut ops = Vec::new();
    for p in pointers {
        if let Some(v) = live.pointer(p) {
            ops.push(serde_json::json!({"op": "test", "path": p, "value": v}));
            ops.push(serde_json::json!({"op": "remove", "path": p}));
        }
    }
    Value::Array(ops)
}

fn sort_key(pointer: &str) -> Vec<(u64, String)> {
    pointer
        .split('/')
        .map(|s| match s.parse::<u64>() {
            Ok(n) => (n, String::new()),
            Err(_) => (0, s.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "2"},
                "managedFields": [
                    {"manager": "gitops-agent", "operation": "Apply", "time": "2026-01-01T00:00:00Z",
                     "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}},
                    {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-02T00:00:00Z",
                     "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"app\"}": {"f:env": {".": {}, "k:{\"name\":\"DEBUG\"}": {".": {}, "f:name": {}, "f:value": {}}}},
                        "k:{\"name\":\"sidecar\"}": {".": {}, "f:name": {}, "f:image": {},
                            "f:imagePullPolicy": {}, "f:securityContext": {"f:capabilities": {"f:add": {}}}}}}}}}},
                    {"manager": "kube-controller-manager", "operation": "Update",
                     "fieldsV1": {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}}}
                ]},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent",
                 "env": [{"name": "DEBUG", "value": "1"}]},
                {"name": "sidecar", "image": "tools", "imagePullPolicy": "Always",
                 "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}
            ]}}}
        })
    }

    fn git() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}})
    }

    #[test]
    fn env_var_and_sidecar_are_foreign_with_manager_and_time() {
        let found = foreign_additions(&git(), &live(), None, &[]).unwrap();
        let shown: Vec<(&str, &str, bool)> = found
            .iter()
            .map(|f| (f.pointer.as_str(), f.manager.as_str(), f.is_sensitive()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "/spec/template/spec/containers/0/env",
                    "kubectl-edit",
                    false
                ),
                ("/spec/template/spec/containers/1", "kubectl-edit", true),
            ]
        );
        assert_eq!(
            found[1].sensitive,
            ["new container sidecar", "adds capabilities NET_ADMIN"]
        );
        assert_eq!(found[1].time.as_deref(), Some("2026-01-02T00:00:00Z"));
        assert_eq!(
            found[1].path,
            ".spec.template.spec.containers[name=\"sidecar\"]"
        );
    }

    #[test]
    fn git_fields_defaults_and_ignored_fields_are_not_foreign() {
        let mut git = git();
        git["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "DEBUG", "value": "0"}]);
        // The sidecar is what the server would produce from Git itself: a default.
        let mut defaults = live();
        defaults["metadata"]["managedFields"] = json!([]);
        let found = foreign_additions(&git, &live(), Some(&defaults), &[]).unwrap();
        assert_eq!(found, []);
        let found = foreign_additions(
            &git,
            &live(),
            None,
            &["/spec/template/spec/containers/1".to_string()],
        )
        .unwrap();
        assert_eq!(found, []);
    }

    #[test]
    fn removal_patch_names_exactly_the_fields_highest_index_first() {
        let live = live();
        let found = foreign_additions(&git(), &live, None, &[]).unwrap();
        let patch = removal_patch(&found, &live);
        let paths: Vec<(&str, &str)> = patch
            .as_array()
            .unwrap()
            .iter()
            .map(|op| (op["op"].as_str().unwrap(), op["path"].as_str().unwrap()))
            .collect();
        assert_eq!(
            paths,
            [
                ("test", "/spec/template/spec/containers/1"),
                ("remove", "/spec/template/spec/containers/1"),
                ("test", "/spec/template/spec/containers/0/env"),
                ("remove", "/spec/template/spec/containers/0/env"),
            ]
        );
    }

    #[test]
    fn sensitive_subset() {
        assert_eq!(
            sensitive("Service", "/spec/type", &json!("NodePort")),
            ["service type NodePort"]
        );
        assert_eq!(
            sensitive("Pod", "/spec/hostNetwork", &json!(true)),
            ["hostNetwork: true"]
        );
        assert_eq!(
            sensitive(
                "Pod",
                "/spec/volumes/1",
                &json!({"name": "h", "hostPath": {"path": "/"}})
            ),
            ["hostPath volume /"]
        );
        assert_eq!(
            sensitive(
                "Pod",
                "/spec/containers/0/securityContext",
                &json!({"privileged": true})
            ),
            ["privileged"]
        );
        assert!(sensitive("Pod", "/spec/containers/0/env/1", &json!({"name": "A"})).is_empty());
    }
}
