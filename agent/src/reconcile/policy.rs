//! Pure per-object decisions: ignored fields, break-glass, and whether an apply changes anything.

use jiff::{SignedDuration, Timestamp};
use renderer::protocol::{
    AGENT_FIELD_MANAGER, BREAK_GLASS_FIELD_MANAGER, BREAK_GLASS_SINCE_ANNOTATION, BreakGlass,
};
use serde_json::Value;

// One implementation with the plugin's preview: what `diff` predicts is what the agent does.
pub use renderer::drift::predict::{mask_ignored, would_change};

/// A break-glass the agent honours: the annotations, with `until` clamped to the maximum.
#[derive(Debug, Clone, PartialEq)]
pub struct Honoured {
    pub break_glass: BreakGlass,
    /// The `until` the annotations asked for, when it was clamped.
    pub requested_until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BreakGlassState {
    None,
    /// Self-heal is suspended for this object until `until`.
    Active(Honoured),
    /// Expired: the object is reconciled back to Git.
    Expired(Honoured),
    /// Not honoured (malformed, half-written, or starting in the future): the object is
    /// reconciled back to Git and the rejection reported.
    Rejected(String),
}

/// How far ahead of the agent's clock a `since` may be (clocks of laptops drift).
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Reads the break-glass annotations of `live` as the agent enforces them: at most `max` long
/// from `since`, and not starting in the future, whatever the annotations say.
pub fn break_glass_state(
    live: Option<&Value>,
    now: Timestamp,
    max: SignedDuration,
) -> BreakGlassState {
    let Some(annotations) = live.and_then(|l| l["metadata"]["annotations"].as_object()) else {
        return BreakGlassState::None;
    };
    let map = annotations
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let mut bg = match BreakGlass::from_annotations(&map) {
        Ok(None) => return BreakGlassState::None,
        Ok(Some(bg)) => bg,
        Err(e) => return BreakGlassState::Rejected(e.to_string()),
    };
    if bg.since > now + CLOCK_SKEW {
        return BreakGlassState::Rejected(format!(
            "annotation {BREAK_GLASS_SINCE_ANNOTATION}: {} is in the future",
            bg.since
        ));
    }
    let latest = bg.since + max;
    let requested_until = (bg.until > latest).then(|| std::mem::replace(&mut bg.until, latest));
    let honoured = Honoured {
        break_glass: bg,
        requested_until,
    };
    if honoured.break_glass.is_active(now) {
        BreakGlassState::Active(honoured)
    } else {
        BreakGlassState::Expired(honoured)
    }
}

/// The managedFields that hand the break-glass manager's fields to the agent, or `None` when there
/// is nothing to take over.
///
/// A forced server-side apply takes back the fields Git declares, but leaves alone what another
/// manager added (an extra env var, a new annotation): apply removes only fields the applier
/// owned and no longer sends. Once a break-glass is over, folding its manager's entries into the
/// agent's own Apply entry makes the next apply remove everything Git does not declare — the
/// same ownership transfer kubectl does when upgrading client-side-applied objects.
pub fn take_over_break_glass_fields(live: &Value) -> Option<Vec<Value>> {
    let entries = live["metadata"]["managedFields"].as_array()?;
    let main_resource = |e: &Value| e["subresource"].as_str().unwrap_or_default().is_empty();
    let ours = entries.iter().position(|e| {
        e["manager"] == AGENT_FIELD_MANAGER && e["operation"] == "Apply" && main_resource(e)
    })?;
    let api_version = &entries[ours]["apiVersion"];
    // Field paths are only comparable within one apiVersion.
    let theirs = |e: &Value| {
        e["manager"] == BREAK_GLASS_FIELD_MANAGER
            && main_resource(e)
            && &e["apiVersion"] == api_version
            && e["fieldsType"] == "FieldsV1"
    };
    if !entries.iter().any(theirs) {
        return None;
    }
    let mut fields = entries[ours]["fieldsV1"].clone();
    for e in entries.iter().filter(|e| theirs(e)) {
        union_fields(&mut fields, &e["fieldsV1"]);
    }
    Some(
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !theirs(e))
            .map(|(i, e)| {
                let mut e = e.clone();
                if i == ours {
                    e["fieldsV1"] = fields.clone();
                }
                e
            })
            .collect(),
    )
}

/// Adds the field set `other` to `target` (FieldsV1: nested objects, `{}` leaves).
fn union_fields(target: &mut Value, other: &Value) {
    let Some(other) = other.as_object() else {
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let map = target.as_object_mut().expect("just made an object");
    for (k, v) in other {
        union_fields(map.entry(k.clone()).or_insert(Value::Null), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use renderer::drift::IgnoreRules;
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

    const DAY: SignedDuration = SignedDuration::from_hours(24);

    fn with_break_glass(since: &str, until: &str) -> Value {
        let mut live = deployment(1);
        let bg = BreakGlass {
            by: "alice".into(),
            reason: "INC-1".into(),
            since: since.parse().unwrap(),
            until: until.parse().unwrap(),
        };
        live["metadata"]["annotations"] = serde_json::to_value(bg.to_annotations()).unwrap();
        live
    }

    #[test]
    fn break_glass_states() {
        let now: Timestamp = "2026-11-26T11:00:00Z".parse().unwrap();
        assert_eq!(
            break_glass_state(Some(&deployment(1)), now, DAY),
            BreakGlassState::None
        );
        let mut live = with_break_glass("2026-11-26T10:00:00Z", "2026-11-26T12:00:00Z");
        let BreakGlassState::Active(h) = break_glass_state(Some(&live), now, DAY) else {
            panic!("not active")
        };
        assert_eq!(h.requested_until, None);
        let later: Timestamp = "2026-11-26T12:00:01Z".parse().unwrap();
        assert!(matches!(
            break_glass_state(Some(&live), later, DAY),
            BreakGlassState::Expired(_)
        ));
        live["metadata"]["annotations"][renderer::protocol::BREAK_GLASS_UNTIL_ANNOTATION] =
            json!("soon");
        let BreakGlassState::Rejected(why) = break_glass_state(Some(&live), now, DAY) else {
            panic!("a malformed until is honoured")
        };
        assert!(
            why.contains("break-glass-until") && why.contains("soon"),
            "{why}"
        );
    }

    #[test]
    fn a_long_break_glass_is_clamped_to_the_maximum() {
        let now: Timestamp = "2026-11-26T11:00:00Z".parse().unwrap();
        let live = with_break_glass("2026-11-26T10:00:00Z", "2027-11-26T10:00:00Z");
        let BreakGlassState::Active(h) = break_glass_state(Some(&live), now, DAY) else {
            panic!("not active")
        };
        assert_eq!(h.break_glass.until, "2026-11-27T10:00:00Z".parse().unwrap());
        assert_eq!(
            h.requested_until,
            Some("2027-11-26T10:00:00Z".parse().unwrap())
        );
        let next_day: Timestamp = "2026-11-27T10:00:01Z".parse().unwrap();
        assert!(
            matches!(break_glass_state(Some(&live), next_day, DAY), BreakGlassState::Expired(h) if h.requested_until.is_some()),
            "over once the maximum has passed, whatever until says"
        );
    }

    #[test]
    fn a_break_glass_starting_in_the_future_is_rejected() {
        let now: Timestamp = "2026-11-26T11:00:00Z".parse().unwrap();
        let live = with_break_glass("2030-01-01T00:00:00Z", "2030-01-01T12:00:00Z");
        let BreakGlassState::Rejected(why) = break_glass_state(Some(&live), now, DAY) else {
            panic!("honoured")
        };
        assert!(why.contains("in the future"), "{why}");
        let skewed = with_break_glass("2026-11-26T11:03:00Z", "2026-11-26T12:00:00Z");
        assert!(
            matches!(
                break_glass_state(Some(&skewed), now, DAY),
                BreakGlassState::Active(_)
            ),
            "a few minutes of clock skew"
        );
    }

    fn managed(manager: &str, operation: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1",
               "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn break_glass_fields_are_folded_into_the_agents_apply_entry() {
        let mut live = deployment(3);
        live["metadata"]["managedFields"] = json!([
            managed(
                AGENT_FIELD_MANAGER,
                "Apply",
                json!({"f:spec": {"f:replicas": {}}})
            ),
            managed(
                "kube-controller-manager",
                "Update",
                json!({"f:status": {".": {}}})
            ),
            managed(
                BREAK_GLASS_FIELD_MANAGER,
                "Update",
                json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"a\"}": {"f:env": {"k:{\"name\":\"LOG_LEVEL\"}": {".": {}}}}}}}}})
            ),
        ]);
        let fields = take_over_break_glass_fields(&live).expect("something to take over");
        let managers: Vec<&str> = fields
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, [AGENT_FIELD_MANAGER, "kube-controller-manager"]);
        assert_eq!(
            fields[0]["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"a\"}": {"f:env": {"k:{\"name\":\"LOG_LEVEL\"}": {".": {}}}}}}}}})
        );
    }

    #[test]
    fn nothing_to_take_over_without_a_break_glass_entry() {
        let mut live = deployment(3);
        live["metadata"]["managedFields"] = json!([
            managed(
                AGENT_FIELD_MANAGER,
                "Apply",
                json!({"f:spec": {"f:replicas": {}}})
            ),
            managed(
                "kubectl-edit",
                "Update",
                json!({"f:spec": {"f:paused": {}}})
            ),
        ]);
        assert_eq!(take_over_break_glass_fields(&live), None);
        // No Apply entry of the agent's to fold them into: left alone.
        live["metadata"]["managedFields"] = json!([managed(
            BREAK_GLASS_FIELD_MANAGER,
            "Update",
            json!({"f:spec": {"f:paused": {}}})
        )]);
        assert_eq!(take_over_break_glass_fields(&live), None);
    }
}
