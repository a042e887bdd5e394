//! The one prediction of what the agent does to an object, shared by the agent and every plugin
//! command that previews it (`diff`, `doctor`, `explain`, `rollback`).
//!
//! Both sides build the apply body with [`apply_body`] and send it as a forced server-side apply
//! under [`crate::protocol::AGENT_FIELD_MANAGER`] (the plugin with `dryRun=All`); [`changes`]
//! then lists what differs between the live object and the API server's answer. Because the
//! dry-run runs as the agent's own field manager, fields the agent owns but Git no longer sets
//! are removed in the answer, and show up as [`ChangeOp::Remove`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ignore::IgnoreRules;
use super::pointer;
use crate::protocol::{AGENT_FIELD_MANAGER, IGNORE_FIELDS_ANNOTATION, decorate};
use crate::redact::{REDACTED, is_secret, is_secret_value};

/// Rewritten by the API server on every write, or never written by an apply: not changes.
const BOOKKEEPING: [&str; 6] = [
    "/metadata/managedFields",
    "/metadata/resourceVersion",
    "/metadata/generation",
    "/metadata/uid",
    "/metadata/creationTimestamp",
    "/status",
];

/// The field manager and apply mode the agent uses: the preview must use the same.
pub const FIELD_MANAGER: &str = AGENT_FIELD_MANAGER;
/// The agent applies with `force=true` (it takes fields back from whoever changed them).
pub const FORCE: bool = true;

/// What the agent sends for one Git object, and the ignored pointers it left alone.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyBody {
    pub body: Value,
    /// Concrete pointers (into Git's object) whose value was taken from live (or dropped).
    pub ignored: Vec<String>,
}

/// Decorates Git's object as the agent does and masks the ignored fields: each is put back with
/// its live value (or Git's, on create), because dropping a field the agent solely owns would
/// make the API server reset it (a Deployment scaled by an HPA would fall back to one replica).
///
/// The ignore rules are the agent's (`rules`), plus the `ignore-fields` annotation of the live
/// object, so the annotation works whether it is set in Git or by hand on the live object.
pub fn apply_body(
    git: &Value,
    namespace: &str,
    set_id: &str,
    rules: &IgnoreRules,
    live: Option<&Value>,
) -> ApplyBody {
    let mut body = git.clone();
    decorate(&mut body, namespace, set_id);
    let ignored = mask_ignored(rules, &mut body, live);
    ApplyBody { body, ignored }
}

/// Masks ignored fields of an already decorated body (see [`apply_body`]).
pub fn mask_ignored(rules: &IgnoreRules, desired: &mut Value, live: Option<&Value>) -> Vec<String> {
    let original = desired.clone();
    let live_annotation = live
        .and_then(|l| l["metadata"]["annotations"][IGNORE_FIELDS_ANNOTATION].as_str())
        .unwrap_or_default();
    let removed = rules.strip_ignored_with(desired, live_annotation);
    for p in &removed {
        let keep = match live {
            Some(live) => live.pointer(p),
            None => original.pointer(p),
        };
        if let Some(value) = keep {
            set_pointer(desired, p, value.clone());
        }
    }
    removed
}

/// Sets `value` at a concrete JSON pointer, creating objects on the way.
fn set_pointer(target: &mut Value, ptr: &str, value: Value) {
    let Some(segments) = pointer::segments(ptr) else {
        return;
    };
    let mut current = target;
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        current = match current {
            Value::Array(items) => match segment.parse::<usize>().ok().filter(|n| *n < items.len())
            {
                Some(n) => &mut items[n],
                None => return,
            },
            other => {
                if !other.is_object() {
                    *other = Value::Object(Default::default());
                }
                let map = other.as_object_mut().expect("just made an object");
                map.entry(segment.clone()).or_insert(Value::Null)
            }
        };
        if last {
            *current = value;
            return;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeOp {
    Add,
    Remove,
    Replace,
}

/// One field the apply changes. Secret values are redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// JSON pointer: into the live object for removals and replacements, into the result for
    /// additions. List items with a `name` are addressed by their index on that side.
    pub pointer: String,
    pub op: ChangeOp,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Change {
    /// What a predicted change and an applied one are compared by (values left out: a
    /// dry-run and a real write answer the same values, but comparing kinds and places is
    /// what the preview promises).
    pub fn key(&self) -> (ChangeOp, String) {
        (self.op, self.pointer.clone())
    }
}

/// What differs between the live object (`None`: it does not exist) and `after`, the API
/// server's answer to the apply (dry-run or real), bookkeeping left out.
pub fn changes(live: Option<&Value>, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    match live {
        None => out.push(Change {
            pointer: String::new(),
            op: ChangeOp::Add,
            before: None,
            after: Some(after.clone()),
        }),
        Some(live) => walk(Some(live), Some(after), &mut Vec::new(), &mut out),
    }
    let secret = live.is_some_and(is_secret) || is_secret(after);
    if secret {
        for c in &mut out {
            let redact = |v: &mut Option<Value>, obj: Option<&Value>| {
                if v.is_some()
                    && (c.pointer.is_empty() || obj.is_some_and(|o| is_secret_value(o, &c.pointer)))
                {
                    *v = Some(Value::from(REDACTED));
                }
            };
            redact(&mut c.before, live);
            redact(&mut c.after, Some(after));
        }
    }
    out
}

/// Whether applying changes anything (the agent skips the write when not).
pub fn would_change(live: Option<&Value>, after: &Value) -> bool {
    live.is_none() || !changes(live, after).is_empty()
}

fn walk(
    before: Option<&Value>,
    after: Option<&Value>,
    at: &mut Vec<String>,
    out: &mut Vec<Change>,
) {
    let here = pointer::join(at);
    if BOOKKEEPING.contains(&here.as_str()) {
        return;
    }
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            for (key, bv) in b {
                at.push(key.clone());
                walk(Some(bv), a.get(key), at, out);
                at.pop();
            }
            for (key, av) in a {
                if !b.contains_key(key) {
                    at.push(key.clone());
                    walk(None, Some(av), at, out);
                    at.pop();
                }
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if named(b) && named(a) => {
            for (i, bv) in b.iter().enumerate() {
                at.push(i.to_string());
                walk(
                    Some(bv),
                    a.iter().find(|x| x["name"] == bv["name"]),
                    at,
                    out,
                );
                at.pop();
            }
            for (i, av) in a.iter().enumerate() {
                if !b.iter().any(|x| x["name"] == av["name"]) {
                    at.push(i.to_string());
                    walk(None, Some(av), at, out);
                    at.pop();
                }
            }
        }
        (Some(b), Some(a)) if b == a => {}
        (b, a) => out.push(Change {
            pointer: here,
            op: match (b, a) {
                (None, _) => ChangeOp::Add,
                (_, None) => ChangeOp::Remove,
                _ => ChangeOp::Replace,
            },
            before: b.cloned(),
            after: a.cloned(),
        }),
    }
}

/// A list whose items are all objects with a string `name`, unique: items are matched by name
/// (containers, env, volumes, ports with names), as the API server merges them.
fn named(items: &[Value]) -> bool {
    let mut names: Vec<&str> = Vec::with_capacity(items.len());
    for item in items {
        match item["name"].as_str() {
            Some(n) if !names.contains(&n) => names.push(n),
            _ => return false,
        }
    }
    !items.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(env: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "resourceVersion": "1", "generation": 1},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "app", "image": "app:1", "env": env}]}}},
               "status": {"replicas": 1}})
    }

    #[test]
    fn removals_additions_and_replacements_by_name() {
        let before = deployment(json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]));
        let mut after =
            deployment(json!([{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]));
        after["metadata"]["resourceVersion"] = json!("2");
        after["metadata"]["generation"] = json!(2);
        after["status"] = json!({});
        let got: Vec<(ChangeOp, String)> = changes(Some(&before), &after)
            .iter()
            .map(Change::key)
            .collect();
        assert_eq!(
            got,
            [
                (
                    ChangeOp::Remove,
                    "/spec/template/spec/containers/0/env/0".to_string()
                ),
                (
                    ChangeOp::Replace,
                    "/spec/template/spec/containers/0/env/1/value".to_string()
                ),
                (
                    ChangeOp::Add,
                    "/spec/template/spec/containers/0/env/1".to_string()
                ),
            ]
        );
        assert!(!would_change(Some(&before), &before));
        assert!(would_change(None, &before));
    }

    #[test]
    fn a_removed_field_is_a_removal() {
        let before =
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let after = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let c = changes(Some(&before), &after);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].op, ChangeOp::Remove);
        assert_eq!(c[0].pointer, "/data/b");
        assert_eq!(c[0].before, Some(json!("2")));
    }

    #[test]
    fn secret_values_are_redacted() {
        let before =
            json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"p": "aHVudGVyMg=="}});
        let after = json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"p": "b3RoZXI="}});
        let c = changes(Some(&before), &after);
        let text = serde_json::to_string(&c).unwrap();
        assert!(
            !text.contains("aHVudGVy") && !text.contains("b3RoZXI"),
            "{text}"
        );
        assert!(text.contains(REDACTED));
        let created = serde_json::to_string(&changes(None, &after)).unwrap();
        assert!(!created.contains("b3RoZXI"), "{created}");
    }

    #[test]
    fn the_live_ignore_annotation_masks_like_the_git_one() {
        let rules = IgnoreRules::new::<&str>(&[]).unwrap();
        let git = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                         "data": {"a": "git", "b": "git"}});
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "c", "annotations": {IGNORE_FIELDS_ANNOTATION: "/data/a"}},
                          "data": {"a": "hand", "b": "old"}});
        let out = apply_body(&git, "shop", "set", &rules, Some(&live));
        assert_eq!(out.ignored, ["/data/a"]);
        assert_eq!(out.body["data"], json!({"a": "hand", "b": "git"}));
        assert_eq!(out.body["metadata"]["namespace"], "shop");
        // Without it, Git's value is sent.
        let out = apply_body(&git, "shop", "set", &rules, None);
        assert_eq!(out.body["data"]["a"], "git");
    }
}
