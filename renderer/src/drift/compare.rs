//! Drift: where live state differs from what Git sets. Only fields present in the desired
//! object are compared, so server defaults and controller-written fields never count.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde_json::Value;

use super::fields::{FieldSet, ListKind};
use super::pointer;
use crate::protocol::REVISION_ANNOTATION;
use crate::redact::{REDACTED, is_secret, is_secret_value};

/// Written by the API server or changes with every apply: never drift even if Git has them.
const NOT_DRIFT: [&str; 9] = [
    "/status",
    "/metadata/managedFields",
    "/metadata/resourceVersion",
    "/metadata/uid",
    "/metadata/generation",
    "/metadata/creationTimestamp",
    "/metadata/selfLink",
    "/metadata/deletionTimestamp",
    "/metadata/deletionGracePeriodSeconds",
];

fn is_not_drift(pointer: &str) -> bool {
    NOT_DRIFT.contains(&pointer)
        || pointer
            .strip_prefix("/metadata/annotations/")
            .is_some_and(|key| key == pointer::escape(REVISION_ANNOTATION))
}

/// One field Git sets whose live value differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDrift {
    /// JSON pointer into the desired object.
    pub pointer: String,
    pub desired: Value,
    /// `None`: absent live.
    pub live: Option<Value>,
}

impl fmt::Display for FieldDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.live {
            Some(live) => write!(f, "{}: Git {}, live {}", self.pointer, self.desired, live),
            None => write!(f, "{}: Git {}, absent live", self.pointer, self.desired),
        }
    }
}

/// Compares `desired` (already passed through `IgnoreRules::strip_ignored`) with `live`.
/// `owned_by_agent` (the agent's managed fields on `live`, empty if unknown) tells how the API
/// server keys each list; without it, lists of objects with a `name` are keyed by name, lists
/// of scalars are atomic, and other lists are compared by index. Secret values are redacted in
/// the result.
pub fn compare(desired: &Value, live: &Value, owned_by_agent: &FieldSet) -> Vec<FieldDrift> {
    let desired = normalise_secret(desired);
    let mut walk = Walk {
        list_kinds: owned_by_agent.list_kinds(),
        out: Vec::new(),
    };
    walk.node(&desired, Some(live), &mut Vec::new(), &mut Vec::new());
    if is_secret(&desired) {
        for d in &mut walk.out {
            if is_secret_value(&desired, &d.pointer) {
                d.desired = Value::String(REDACTED.into());
                d.live = d.live.as_ref().map(|_| Value::String(REDACTED.into()));
            }
        }
    }
    walk.out
}

struct Walk {
    list_kinds: BTreeMap<String, ListKind>,
    out: Vec<FieldDrift>,
}

impl Walk {
    /// `at`: concrete segments in desired; `schema`: the same with list items as `*`.
    fn node(
        &mut self,
        desired: &Value,
        live: Option<&Value>,
        at: &mut Vec<String>,
        schema: &mut Vec<String>,
    ) {
        let here = pointer::join(at);
        if is_not_drift(&here) {
            return;
        }
        let Some(live) = live else {
            // Field by field, so server-owned ones (e.g. the revision annotation) stay out.
            match desired {
                Value::Object(d) if !d.is_empty() => {
                    for (key, dv) in d {
                        at.push(key.clone());
                        schema.push(key.clone());
                        self.node(dv, None, at, schema);
                        at.pop();
                        schema.pop();
                    }
                }
                _ => self.drift(&here, desired, None),
            }
            return;
        };
        match (desired, live) {
            (Value::Object(d), Value::Object(l)) => {
                for (key, dv) in d {
                    at.push(key.clone());
                    schema.push(key.clone());
                    self.node(dv, l.get(key), at, schema);
                    at.pop();
                    schema.pop();
                }
            }
            (Value::Array(d), Value::Array(l)) => self.list(d, l, at, schema),
            (d, l) if scalars_equal(d, l, at) => {}
            (d, l) => self.drift(&here, d, Some(l)),
        }
    }

    fn list(
        &mut self,
        desired: &[Value],
        live: &[Value],
        at: &mut Vec<String>,
        schema: &mut Vec<String>,
    ) {
        let kind = self
            .list_kinds
            .get(&pointer::join(schema))
            .cloned()
            .or_else(|| {
                let named = !desired.is_empty() && desired.iter().all(|i| i["name"].is_string());
                named.then(|| ListKind::Map(vec!["name".into()]))
            });
        let scalars = desired.iter().all(|i| !i.is_object() && !i.is_array());
        schema.push("*".into());
        match kind {
            Some(ListKind::Map(keys)) => {
                for (i, d) in desired.iter().enumerate() {
                    // Only the keys Git spells: a defaulted key (protocol: TCP) still matches.
                    let matched = live.iter().find(|l| {
                        keys.iter()
                            .filter(|k| d.get(k.as_str()).is_some())
                            .all(|k| d.get(k.as_str()) == l.get(k.as_str()))
                    });
                    at.push(i.to_string());
                    match matched {
                        Some(l) => self.node(d, Some(l), at, schema),
                        // A whole item is missing: one entry, not one per field.
                        None => self.drift(&pointer::join(at), d, None),
                    }
                    at.pop();
                }
            }
            Some(ListKind::Set) => {
                for (i, d) in desired.iter().enumerate() {
                    if !live.contains(d) {
                        at.push(i.to_string());
                        self.drift(&pointer::join(at), d, None);
                        at.pop();
                    }
                }
            }
            None if scalars => {
                if desired != live {
                    let here = pointer::join(at);
                    self.drift(
                        &here,
                        &Value::Array(desired.to_vec()),
                        Some(&Value::Array(live.to_vec())),
                    );
                }
            }
            None => {
                for (i, d) in desired.iter().enumerate() {
                    at.push(i.to_string());
                    self.node(d, live.get(i), at, schema);
                    at.pop();
                }
                if live.len() > desired.len() {
                    let here = pointer::join(at);
                    self.drift(
                        &here,
                        &Value::Array(desired.to_vec()),
                        Some(&Value::Array(live.to_vec())),
                    );
                }
            }
        }
        schema.pop();
    }

    fn drift(&mut self, pointer: &str, desired: &Value, live: Option<&Value>) {
        self.out.push(FieldDrift {
            pointer: pointer.to_string(),
            desired: desired.clone(),
            live: live.cloned(),
        });
    }
}

/// `stringData` is write-only: the API server merges it into `data`, base64-encoded.
pub fn normalise_secret(desired: &Value) -> Value {
    let mut d = desired.clone();
    if !is_secret(&d) {
        return d;
    }
    let Some(Value::Object(string_data)) =
        d.as_object_mut().and_then(|m| m.shift_remove("stringData"))
    else {
        return d;
    };
    let data = d
        .as_object_mut()
        .expect("a Secret is an object")
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(k, Value::String(encoded));
        }
    }
    d
}

/// Quantities are canonicalised by the API server (`0.5` → `500m`, `1024Mi` → `1Gi`).
fn scalars_equal(desired: &Value, live: &Value, at: &[String]) -> bool {
    if desired == live {
        return true;
    }
    let quantity_field = at.iter().any(|s| {
        matches!(
            s.as_str(),
            "resources" | "limits" | "requests" | "hard" | "capacity"
        )
    });
    quantity_field
        && matches!((quantity(desired), quantity(live)), (Some(a), Some(b)) if (a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
}

/// The value of a Kubernetes quantity (`250m`, `1.5Gi`, `2e3`, `4`).
fn quantity(v: &Value) -> Option<f64> {
    if let Some(n) = v.as_f64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let base: f64 = num.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(base * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::fields::ManagedFields;
    use crate::drift::fields::tests::live_deployment;
    use serde_json::json;

    fn desired() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                         "annotations": {"kubectl-gitops.dev/revision": "abc"},
                         "finalizers": ["example.com/keep"]},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:1", "ports": [{"containerPort": 8080}]}
            ]}}}
        })
    }

    fn agent_fields(live: &Value) -> FieldSet {
        ManagedFields::from_object(live)
            .unwrap()
            .applied_by("gitops-agent")
    }

    #[test]
    fn in_sync_despite_defaults_injected_items_and_server_fields() {
        let live = live_deployment();
        let mut live_with_rev = live.clone();
        live_with_rev["metadata"]["annotations"] = json!({"kubectl-gitops.dev/revision": "old"});
        // Sidecar injected first, imagePullPolicy and protocol defaulted, status and
        // managedFields present, replicas owned by the HPA: none of it is drift.
        let drift = compare(&desired(), &live_with_rev, &agent_fields(&live));
        assert_eq!(drift, []);
        // Same without managed-fields knowledge: the `name` heuristic matches containers.
        assert_eq!(
            compare(&desired(), &live_with_rev, &FieldSet::default()),
            []
        );
    }

    #[test]
    fn reports_changed_and_missing_fields_git_sets() {
        let mut live = live_deployment();
        live["spec"]["template"]["spec"]["containers"][1]["image"] = json!("app:hotfix");
        live["metadata"]["labels"] = json!({});
        live["metadata"]["finalizers"] = json!([]);
        let drift = compare(&desired(), &live, &agent_fields(&live_deployment()));
        let text: Vec<String> = drift.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "/metadata/labels/app: Git \"web\", absent live",
                "/metadata/finalizers/0: Git \"example.com/keep\", absent live",
                "/spec/template/spec/containers/0/image: Git \"app:1\", live \"app:hotfix\"",
            ]
        );
    }

    #[test]
    fn git_replicas_differ_unless_stripped() {
        let live = live_deployment();
        let mut d = desired();
        d["spec"]["replicas"] = json!(3);
        let drift = compare(&d, &live, &agent_fields(&live));
        assert_eq!(drift.len(), 1);
        assert_eq!(drift[0].pointer, "/spec/replicas");
        assert_eq!(drift[0].live, Some(json!(5)));
    }

    #[test]
    fn a_deleted_container_is_one_entry() {
        let mut d = desired();
        d["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "worker", "image": "worker:1"}));
        let live = live_deployment();
        let drift = compare(&d, &live, &agent_fields(&live));
        assert_eq!(drift.len(), 1, "{drift:?}");
        assert_eq!(drift[0].pointer, "/spec/template/spec/containers/1");
        assert_eq!(drift[0].live, None);
    }

    #[test]
    fn atomic_lists_compare_whole() {
        let d = json!({"kind": "Pod", "spec": {"args": ["--a", "--b"]}});
        let l = json!({"kind": "Pod", "spec": {"args": ["--a"]}});
        let drift = compare(&d, &l, &FieldSet::default());
        assert_eq!(drift[0].pointer, "/spec/args");
        assert_eq!(compare(&d, &d, &FieldSet::default()), []);
    }

    #[test]
    fn quantities_compare_by_value() {
        let d = json!({"kind": "Pod", "spec": {"resources": {"limits": {"cpu": 0.5, "memory": "1024Mi"}}}});
        let l = json!({"kind": "Pod", "spec": {"resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}});
        assert_eq!(compare(&d, &l, &FieldSet::default()), []);
        let l2 = json!({"kind": "Pod", "spec": {"resources": {"limits": {"cpu": "600m", "memory": "1Gi"}}}});
        assert_eq!(compare(&d, &l2, &FieldSet::default()).len(), 1);
    }

    #[test]
    fn secret_drift_is_detected_through_string_data_and_redacted() {
        let d = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                       "stringData": {"password": "hunter2"}});
        let same = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                          "data": {"password": "aHVudGVyMg=="}});
        assert_eq!(compare(&d, &same, &FieldSet::default()), []);
        let changed = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                             "data": {"password": "b3RoZXI="}});
        let drift = compare(&d, &changed, &FieldSet::default());
        assert_eq!(drift.len(), 1);
        assert_eq!(drift[0].pointer, "/data/password");
        let shown = drift[0].to_string();
        assert!(
            !shown.contains("aHVudGVyMg") && !shown.contains("b3RoZXI"),
            "{shown}"
        );
        assert!(shown.contains(REDACTED));
    }
}
