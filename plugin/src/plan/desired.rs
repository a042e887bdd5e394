//! Git's side of a comparison: render the overlay, shape objects as the agent applies them,
//! and address their fields.

use renderer::drift::{IgnoreRule, IgnoreRules, pointer};
use renderer::protocol::{IGNORE_FIELDS_ANNOTATION, SyncStatus};
use renderer::provenance::{FieldPath, Segment};
use renderer::sops::{AgeKeys, DecryptingSource, Failure, Strictness};
use renderer::{RenderOptions, Rendered, Source};
use serde_json::Value;

/// Renders `dir` of `source`, SOPS files decrypted with the keys `sops` would use (see
/// [`render_decrypting`]); errors keep the renderer's file:line.
pub fn render(source: &dyn Source, dir: &str) -> Result<Rendered, renderer::RenderError> {
    render_decrypting(source, dir, &RenderOptions::default()).map(|(r, _)| r)
}

/// Renders with SOPS files decrypted as they are read. A file that does not decrypt (no
/// key, tampered) is rendered encrypted and returned in the list, for the caller to name.
pub fn render_decrypting(
    source: &dyn Source,
    dir: &str,
    options: &RenderOptions,
) -> Result<(Rendered, Vec<Failure>), renderer::RenderError> {
    let dir = match dir.trim_matches('/') {
        "." => "",
        d => d,
    };
    static NO_KEYS: std::sync::LazyLock<AgeKeys> = std::sync::LazyLock::new(AgeKeys::default);
    // A broken key file is reported by the failures it causes, with the file named.
    let keys = crate::git::sops_keys::discover().unwrap_or(&NO_KEYS);
    let decrypting = DecryptingSource::new(source, keys, Strictness::Lenient);
    let rendered = renderer::render(&decrypting, dir, options)?;
    Ok((rendered, decrypting.failures()))
}

/// The digest of the rendered set, as the agent computes it for what it applied.
pub fn digest(rendered: &Rendered) -> String {
    renderer::protocol::render_digest(rendered.objects.iter().map(|o| &o.value))
}

/// HPA and annotation rules only, for callers without the agent's status at hand.
pub fn ignore_rules(rendered: &Rendered, live_hpas: &[Value]) -> IgnoreRules {
    AgentRules::new(rendered, live_hpas, None).rules
}

/// The ignore rules the agent applies, and why each field is ignored: HPAs from Git and live,
/// the agent's own `--ignore-field` flags (published in its status), and each object's
/// annotation.
pub struct AgentRules {
    pub rules: IgnoreRules,
    hpas: Vec<Value>,
    /// The agent's `--ignore-field` rules, as it spells them and parsed.
    flags: Vec<(String, IgnoreRule)>,
}

impl AgentRules {
    pub fn new(rendered: &Rendered, live_hpas: &[Value], status: Option<&SyncStatus>) -> Self {
        let mut hpas: Vec<Value> = rendered
            .objects
            .iter()
            .filter(|o| o.value["kind"] == "HorizontalPodAutoscaler")
            .map(|o| o.value.clone())
            .collect();
        hpas.extend(live_hpas.iter().cloned());
        // The agent refuses to start with a bad rule, so one here comes from a newer agent's
        // syntax; leaving it out only shows more, never hides a change.
        let flags: Vec<(String, IgnoreRule)> = status
            .map(|s| s.ignore_fields.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| Some((f.clone(), f.parse().ok()?)))
            .collect();
        let texts: Vec<&str> = flags.iter().map(|(text, _)| text.as_str()).collect();
        let rules = IgnoreRules::new(&texts)
            .expect("each rule parsed on its own")
            .with_hpas(&hpas);
        Self { rules, hpas, flags }
    }

    /// Who leaves the (ignored) field at `pointer` of `body` to someone else, for people.
    pub fn reason(&self, pointer: &str, body: &Value) -> String {
        if pointer == "/spec/replicas" {
            let kind = body["kind"].as_str().unwrap_or_default();
            let name = body["metadata"]["name"].as_str().unwrap_or_default();
            let hpa = self.hpas.iter().find(|h| {
                h["spec"]["scaleTargetRef"]["kind"] == kind
                    && h["spec"]["scaleTargetRef"]["name"] == name
            });
            if let Some(hpa) = hpa {
                return format!(
                    "HorizontalPodAutoscaler/{} owns the replica count",
                    hpa["metadata"]["name"].as_str().unwrap_or_default()
                );
            }
        }
        let covers = |p: &String| pointer == p || pointer.starts_with(&format!("{p}/"));
        let flag = self
            .flags
            .iter()
            .find(|(_, rule)| rule.pointers_in(body).iter().any(covers));
        if let Some((text, _)) = flag {
            return format!("the agent runs with --ignore-field {text}");
        }
        format!("{pointer} is listed in {IGNORE_FIELDS_ANNOTATION}")
    }
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
    fn agent_rules_come_from_status_hpas_and_annotations_and_say_which() {
        let status = SyncStatus {
            ignore_fields: vec![
                "Deployment:/spec/template/spec/containers/*/image".into(),
                "not a rule".into(),
            ],
            ..Default::default()
        };
        let hpa = json!({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}}});
        let rendered = Rendered { objects: vec![] };
        let rules = AgentRules::new(&rendered, &[hpa], Some(&status));
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop",
                "annotations": {IGNORE_FIELDS_ANNOTATION: "/spec/paused"}},
            "spec": {"replicas": 3, "paused": false,
                "template": {"spec": {"containers": [{"name": "api", "image": "a:1"}]}}}});
        assert_eq!(
            rules.rules.ignored_pointers(&body),
            [
                "/spec/paused",
                "/spec/replicas",
                "/spec/template/spec/containers/0/image"
            ]
        );
        assert_eq!(
            rules.reason("/spec/template/spec/containers/0/image", &body),
            "the agent runs with --ignore-field Deployment:/spec/template/spec/containers/*/image"
        );
        assert_eq!(
            rules.reason("/spec/replicas", &body),
            "HorizontalPodAutoscaler/web owns the replica count"
        );
        assert!(
            rules
                .reason("/spec/paused", &body)
                .contains(IGNORE_FIELDS_ANNOTATION)
        );
        // Without an agent status only HPAs and annotations apply.
        let none = AgentRules::new(&rendered, &[], None);
        assert_eq!(none.rules.ignored_pointers(&body), ["/spec/paused"]);
    }
}
