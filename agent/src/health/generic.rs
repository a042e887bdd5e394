//! Any other kind, custom resources included: kstatus's generic rules over the standard
//! conditions (`Stalled`, `Reconciling`, `Ready`) and `observedGeneration`.

use serde_json::Value;

use super::builtin::{condition, unobserved};
use super::{Facts, HealthState, SETTLE};

pub(super) fn assess(obj: &Value, facts: &Facts) -> (HealthState, String) {
    use HealthState::*;
    let status = &obj["status"];
    let reported = status.as_object().is_some_and(|s| !s.is_empty());
    if !reported {
        if !facts.has_status {
            return (Healthy, "exists".into());
        }
        let age = obj["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|created| facts.now.duration_since(created));
        let settled = age.is_some_and(|a| a.unsigned_abs() >= SETTLE);
        return if settled {
            (
                Healthy,
                format!("no status reported within {}s", SETTLE.as_secs()),
            )
        } else {
            (
                Progressing,
                "waiting for the controller to report a status".into(),
            )
        };
    }
    // Only a status that reports observedGeneration can be behind (kstatus).
    if status["observedGeneration"].is_i64()
        && let Some(u) = unobserved(obj)
    {
        return u;
    }
    let is_true = |t: &str| condition(obj, t).filter(|c| c["status"] == "True");
    if let Some(c) = is_true("Stalled") {
        return (Degraded, describe("Stalled", c));
    }
    if let Some(c) = is_true("Reconciling") {
        return (Progressing, describe("Reconciling", c));
    }
    if let Some(c) = condition(obj, "Ready") {
        return match c["status"].as_str() {
            Some("True") => (Healthy, describe("Ready", c)),
            // kstatus: Ready=False means not there yet; Stalled is what says it never will be.
            _ => (Progressing, describe("not Ready", c)),
        };
    }
    (Healthy, "exists".into())
}

/// `Stalled: InstallFailed: chart not found`, leaving out what the condition does not say.
fn describe(what: &str, c: &Value) -> String {
    let mut parts = vec![what];
    for key in ["reason", "message"] {
        if let Some(text) = c[key].as_str().filter(|t| !t.is_empty()) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::{Facts, HealthRules, assess};

    fn widget(status: Value) -> Value {
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": status
        })
    }

    fn facts<'a>(now: &str, rules: &'a HealthRules) -> Facts<'a> {
        Facts {
            now: now.parse().unwrap(),
            has_status: true,
            rules,
        }
    }

    const SOON: &str = "2026-01-01T00:00:05Z";
    const LATER: &str = "2026-01-01T00:10:00Z";

    #[test]
    fn no_status_yet_is_in_progress_until_it_settles() {
        let rules = HealthRules::default();
        let mut w = widget(json!(null));
        w.as_object_mut().unwrap().remove("status");
        let e = assess(&w, &facts(SOON, &rules));
        assert_eq!(e.state, "Progressing");
        assert!(e.message.contains("report a status"), "{}", e.message);
        assert_eq!(assess(&w, &facts(LATER, &rules)).state, "Healthy");
        // An empty status is no status either.
        let empty = widget(json!({}));
        assert_eq!(assess(&empty, &facts(SOON, &rules)).state, "Progressing");
        // A kind without a status subresource is judged by existing.
        let plain = Facts {
            has_status: false,
            ..facts(SOON, &rules)
        };
        assert_eq!(assess(&w, &plain).state, "Healthy");
    }

    #[test]
    fn standard_conditions() {
        let rules = HealthRules::default();
        let f = facts(LATER, &rules);
        let cond = |t: &str, s: &str| {
            widget(json!({"observedGeneration": 2, "conditions": [
                {"type": t, "status": s, "reason": "Because", "message": "it said so"}]}))
        };
        let stalled = assess(&cond("Stalled", "True"), &f);
        assert_eq!(stalled.state, "Degraded");
        assert_eq!(stalled.message, "Stalled: Because: it said so");
        assert_eq!(
            assess(&cond("Reconciling", "True"), &f).state,
            "Progressing"
        );
        assert_eq!(assess(&cond("Ready", "False"), &f).state, "Progressing");
        assert_eq!(assess(&cond("Ready", "Unknown"), &f).state, "Progressing");
        assert_eq!(assess(&cond("Ready", "True"), &f).state, "Healthy");
        assert_eq!(assess(&cond("Stalled", "False"), &f).state, "Healthy");
    }

    #[test]
    fn an_unobserved_generation_is_in_progress() {
        let rules = HealthRules::default();
        let w = widget(json!({"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True"}]}));
        let e = assess(&w, &facts(LATER, &rules));
        assert_eq!(e.state, "Progressing");
        assert!(e.message.contains("generation 2 (seen 1)"), "{}", e.message);
        // A status without observedGeneration says nothing about generations.
        let silent = widget(json!({"conditions": [{"type": "Ready", "status": "True"}]}));
        assert_eq!(assess(&silent, &facts(LATER, &rules)).state, "Healthy");
    }

    #[test]
    fn objects_being_deleted_are_in_progress() {
        let rules = HealthRules::default();
        let mut w = widget(json!({"conditions": [{"type": "Ready", "status": "True"}]}));
        w["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
        assert_eq!(assess(&w, &facts(LATER, &rules)).state, "Progressing");
    }
}
