//! Git's side of a comparison: render the overlay, shape objects as the agent applies them,
//! and address their fields.

use renderer::drift::{IgnoreRules, pointer};
use renderer::protocol::APPLYSET_PART_OF_LABEL;
use renderer::provenance::{FieldPath, Segment};
use renderer::{RenderOptions, Rendered, Source};
use serde_json::Value;

/// Renders `dir` of `source`; errors keep the renderer's file:line.
pub fn render(source: &dyn Source, dir: &str) -> Result<Rendered, renderer::RenderError> {
    let dir = match dir.trim_matches('/') {
        "." => "",
        d => d,
    };
    renderer::render(source, dir, &RenderOptions::default())
}

/// What the agent sets on every object besides Git's content (the revision annotation is
/// left out: it changes with every commit and is never drift).
pub fn decorate(body: &mut Value, namespace: &str, set_id: &str) {
    let meta = &mut body["metadata"];
    meta["namespace"] = Value::from(namespace);
    if !meta["labels"].is_object() {
        meta["labels"] = Value::Object(Default::default());
    }
    meta["labels"][APPLYSET_PART_OF_LABEL] = Value::from(set_id);
}

/// The ignore rules the agent applies: HPAs from Git and live, and each object's annotation.
/// The agent's own `--ignore-field` flags are not visible from outside the agent.
pub fn ignore_rules(rendered: &Rendered, live_hpas: &[Value]) -> IgnoreRules {
    let mut hpas: Vec<Value> = rendered
        .objects
        .iter()
        .filter(|o| o.value["kind"] == "HorizontalPodAutoscaler")
        .map(|o| o.value.clone())
        .collect();
    hpas.extend(live_hpas.iter().cloned());
    IgnoreRules::default().with_hpas(&hpas)
}

/// The concrete JSON pointer of a provenance field path in `obj` (`[name=api]` is looked up
/// by name, so the same path finds the container in Git and live even if order differs).
pub fn pointer_of(path: &FieldPath, obj: &Value) -> Option<String> {
    let mut current = obj;
    let mut segments = Vec::with_capacity(path.0.len());
    for segment in &path.0 {
        match segment {
            Segment::Key(key) => {
                current = current.as_object()?.get(key)?;
                segments.push(key.clone());
            }
            Segment::Index(i) => {
                current = current.as_array()?.get(*i)?;
                segments.push(i.to_string());
            }
            Segment::Match(key, value) => {
                let items = current.as_array()?;
                let i = items
                    .iter()
                    .position(|item| item.get(key).and_then(Value::as_str) == Some(value))?;
                current = &items[i];
                segments.push(i.to_string());
            }
        }
    }
    Some(pointer::join(&segments))
}

/// The pointer in `live` of the field at `desired_pointer` in `desired`: list items that
/// have a `name` are found by name, because the API server may order or inject items.
pub fn live_pointer(desired: &Value, live: &Value, desired_pointer: &str) -> Option<String> {
    let segments = pointer::segments(desired_pointer)?;
    let (mut d, mut l) = (Some(desired), live);
    let mut out = Vec::with_capacity(segments.len());
    for segment in segments {
        match l {
            Value::Array(items) => {
                let index: usize = segment.parse().ok()?;
                let name = d
                    .and_then(|d| d.get(index))
                    .and_then(|i| i.get("name"))
                    .and_then(Value::as_str);
                let at = match name {
                    Some(name) => items
                        .iter()
                        .position(|i| i.get("name").and_then(Value::as_str) == Some(name))?,
                    None => index,
                };
                d = d.and_then(|d| d.get(index));
                l = items.get(at)?;
                out.push(at.to_string());
            }
            Value::Object(map) => {
                d = d.and_then(|d| d.get(&segment));
                l = map.get(&segment)?;
                out.push(segment);
            }
            _ => return None,
        }
    }
    Some(pointer::join(&out))
}

/// Whether `leaf` is `prefix` or lies under it (`spec.template` covers
/// `spec.template.spec.containers[name=api].image`).
pub fn path_covers(prefix: &str, leaf: &str) -> bool {
    prefix.is_empty()
        || leaf == prefix
        || leaf
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Whether a drift reported at `drift` concerns the field at `field` (same field, a parent
/// that is missing or atomic, or a child).
pub fn pointers_overlap(drift: &str, field: &str) -> bool {
    drift == field
        || field
            .strip_prefix(drift)
            .is_some_and(|r| r.starts_with('/'))
        || drift
            .strip_prefix(field)
            .is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_follow_names_not_positions() {
        let git = json!({"spec": {"containers": [{"name": "api", "image": "a:1"}]}});
        let live =
            json!({"spec": {"containers": [{"name": "istio"}, {"name": "api", "image": "a:2"}]}});
        let path: FieldPath = "spec.containers[name=api].image".parse().unwrap();
        assert_eq!(
            pointer_of(&path, &git).as_deref(),
            Some("/spec/containers/0/image")
        );
        assert_eq!(
            pointer_of(&path, &live).as_deref(),
            Some("/spec/containers/1/image")
        );
        let missing: FieldPath = "spec.containers[name=db].image".parse().unwrap();
        assert_eq!(pointer_of(&missing, &live), None);
        let quoted: FieldPath = "metadata.annotations[\"a.b/c\"]".parse().unwrap();
        let obj = json!({"metadata": {"annotations": {"a.b/c": "x"}}});
        assert_eq!(
            pointer_of(&quoted, &obj).as_deref(),
            Some("/metadata/annotations/a.b~1c")
        );
    }

    #[test]
    fn live_pointers_find_items_by_name() {
        let git = json!({"spec": {"containers": [{"name": "api", "image": "a:1"}], "args": ["x"]}});
        let live = json!({"spec": {"containers": [{"name": "istio"}, {"name": "api", "image": "a:2"}], "args": ["x"]}});
        assert_eq!(
            live_pointer(&git, &live, "/spec/containers/0/image").as_deref(),
            Some("/spec/containers/1/image")
        );
        assert_eq!(
            live_pointer(&git, &live, "/spec/args/0").as_deref(),
            Some("/spec/args/0")
        );
        assert_eq!(live_pointer(&git, &live, "/spec/missing"), None);
    }

    #[test]
    fn coverage_and_overlap() {
        assert!(path_covers("spec.replicas", "spec.replicas"));
        assert!(path_covers("spec.template", "spec.template.spec.x"));
        assert!(path_covers(
            "spec.template.spec.containers",
            "spec.template.spec.containers[name=a].image"
        ));
        assert!(!path_covers("spec.rep", "spec.replicas"));
        assert!(path_covers("", "kind"));
        assert!(pointers_overlap("/spec/args", "/spec/args/0"));
        assert!(pointers_overlap("/a/b", "/a/b"));
        assert!(!pointers_overlap("/a/b", "/a/bc"));
    }

    #[test]
    fn decorate_sets_namespace_and_membership() {
        let mut obj = json!({"kind": "ConfigMap", "metadata": {"name": "c"}});
        decorate(&mut obj, "shop", "applyset-x-v1");
        assert_eq!(obj["metadata"]["namespace"], "shop");
        assert_eq!(
            obj["metadata"]["labels"][APPLYSET_PART_OF_LABEL],
            "applyset-x-v1"
        );
    }
}
