//! Pure per-object decisions: ignored fields, break-glass, and whether an apply changes anything.

use jiff::Timestamp;
use renderer::drift::IgnoreRules;
use renderer::drift::pointer;
use renderer::protocol::BreakGlass;
use serde_json::Value;

/// Applies the shared ignore rules to an apply body. The stripped fields are put back with their
/// live value (or Git's, on create): dropping a field the agent solely owns would make the API
/// server reset it — e.g. a Deployment scaled by an HPA would fall back to one replica.
pub fn mask_ignored(rules: &IgnoreRules, desired: &mut Value, live: Option<&Value>) -> Vec<String> {
    let original = desired.clone();
    let removed = rules.strip_ignored(desired);
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

#[derive(Debug, Clone, PartialEq)]
pub enum BreakGlassState {
    None,
    /// Self-heal is suspended for this object until `until`.
    Active(BreakGlass),
    /// Expired: the object is reconciled back to Git.
    Expired(BreakGlass),
    /// Half-written annotations: reported, and the object is left alone until fixed.
    Invalid(String),
}

pub fn break_glass_state(live: Option<&Value>, now: Timestamp) -> BreakGlassState {
    let Some(annotations) = live.and_then(|l| l["metadata"]["annotations"].as_object()) else {
        return BreakGlassState::None;
    };
    let map = annotations
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    match BreakGlass::from_annotations(&map) {
        Ok(None) => BreakGlassState::None,
        Ok(Some(bg)) if bg.is_active(now) => BreakGlassState::Active(bg),
        Ok(Some(bg)) => BreakGlassState::Expired(bg),
        Err(e) => BreakGlassState::Invalid(e.to_string()),
    }
}

/// Whether applying would change the live object: the dry-run result differs from it in
/// anything but bookkeeping the API server rewrites on every request.
pub fn would_change(live: Option<&Value>, dry_run: &Value) -> bool {
    let Some(live) = live else { return true };
    normalise(live) != normalise(dry_run)
}

fn normalise(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}})
    }

    fn hpa_rules() -> IgnoreRules {
        IgnoreRules::default().with_hpas(&[json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}
        })])
    }

    #[test]
    fn hpa_replicas_keep_the_live_value() {
        let mut desired = deployment(3);
        let removed = mask_ignored(&hpa_rules(), &mut desired, Some(&deployment(7)));
        assert_eq!(removed, ["/spec/replicas"]);
        assert_eq!(desired["spec"]["replicas"], 7);
        assert_eq!(
            desired["spec"]["template"],
            deployment(3)["spec"]["template"]
        );
    }

    #[test]
    fn hpa_replicas_come_from_git_on_create() {
        let mut desired = deployment(3);
        mask_ignored(&hpa_rules(), &mut desired, None);
        assert_eq!(desired["spec"]["replicas"], 3);
    }

    #[test]
    fn flag_rules_mask_nested_fields() {
        let rules =
            IgnoreRules::new(&["Deployment:/spec/template/spec/containers/0/image"]).unwrap();
        let mut desired = deployment(3);
        let mut live = deployment(3);
        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("a:hotfix");
        mask_ignored(&rules, &mut desired, Some(&live));
        assert_eq!(
            desired["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:hotfix"
        );
    }

    #[test]
    fn unchanged_dry_run_is_no_change() {
        let mut live = deployment(3);
        live["metadata"]["resourceVersion"] = json!("10");
        live["metadata"]["managedFields"] = json!([{"manager": "gitops-agent", "time": "t1"}]);
        let mut dry = deployment(3);
        dry["metadata"]["resourceVersion"] = json!("10");
        dry["metadata"]["managedFields"] = json!([{"manager": "gitops-agent", "time": "t2"}]);
        assert!(!would_change(Some(&live), &dry));
        assert!(would_change(Some(&live), &deployment(4)));
        assert!(would_change(None, &dry));
    }

    #[test]
    fn break_glass_states() {
        let now: Timestamp = "2026-11-26T11:00:00Z".parse().unwrap();
        let mut live = deployment(1);
        assert_eq!(break_glass_state(Some(&live), now), BreakGlassState::None);
        let bg = BreakGlass {
            by: "alice".into(),
            reason: "INC-1".into(),
            since: "2026-11-26T10:00:00Z".parse().unwrap(),
            until: "2026-11-26T12:00:00Z".parse().unwrap(),
        };
        live["metadata"]["annotations"] = serde_json::to_value(bg.to_annotations()).unwrap();
        assert!(matches!(
            break_glass_state(Some(&live), now),
            BreakGlassState::Active(_)
        ));
        let later: Timestamp = "2026-11-26T12:00:01Z".parse().unwrap();
        assert!(matches!(
            break_glass_state(Some(&live), later),
            BreakGlassState::Expired(_)
        ));
        live["metadata"]["annotations"][renderer::protocol::BREAK_GLASS_UNTIL_ANNOTATION] =
            json!("soon");
        assert!(matches!(
            break_glass_state(Some(&live), now),
            BreakGlassState::Invalid(_)
        ));
    }
}
