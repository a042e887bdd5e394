//! Users' health rules per kind, as CEL expressions with Flux's field names (`current`,
//! `inProgress`, `failed`), so rules from Flux's `healthCheckExprs` and its community library
//! copy over. They live in the agent's ConfigMap ([`crate::health::LiveHealth`]):
//!
//! ```yaml
//! - apiVersion: example.com/v1
//!   kind: Widget
//!   inProgress: "status.phase == 'Provisioning'"
//!   failed: "status.phase == 'Failed'"
//!   current: "status.phase == 'Ready'"
//! ```
//!
//! The object's top-level fields (`metadata`, `spec`, `status`, ...) are the variables. As in
//! Flux, an object whose `status.observedGeneration` is behind is in progress, then
//! `inProgress`, `failed` and `current` are tried in that order and the first that is true
//! wins; when none is, the object is in progress. A rule matches its kind in its API group,
//! whatever the version.

use std::fmt;

use renderer::yaml::{Document, parse_documents};
use serde_json::Value;

use super::HealthState;
use super::builtin::unobserved;

#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}: {message}")]
pub struct RulesError {
    pub origin: String,
    pub line: u32,
    pub message: String,
}

/// One compiled expression and where it was written.
struct Expr {
    source: String,
    program: cel::Program,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[derive(Debug)]
pub struct HealthRule {
    pub group: String,
    pub kind: String,
    current: Expr,
    in_progress: Option<Expr>,
    failed: Option<Expr>,
}

#[derive(Debug, Default)]
pub struct HealthRules {
    rules: Vec<HealthRule>,
}

impl HealthRules {
    /// Parses and compiles every rule of `text` (a YAML list, or Flux's `healthCheckExprs:`
    /// holding one); `origin` names the text in errors. One bad rule rejects them all.
    pub fn parse(text: &str, origin: &str) -> Result<Self, RulesError> {
        let docs = parse_documents(text).map_err(|e| RulesError {
            origin: origin.to_string(),
            line: e.line,
            message: e.message,
        })?;
        let mut rules = Vec::new();
        for doc in &docs {
            let (list, base) = match &doc.value {
                Value::Null => continue,
                Value::Array(list) => (list, String::new()),
                Value::Object(map) if map.get("healthCheckExprs").is_some_and(Value::is_array) => (
                    map["healthCheckExprs"].as_array().expect("checked"),
                    "/healthCheckExprs".to_string(),
                ),
                _ => {
                    return Err(error(
                        origin,
                        doc,
                        "",
                        "expected a list of rules (or healthCheckExprs: [...])".into(),
                    ));
                }
            };
            for (i, item) in list.iter().enumerate() {
                rules.push(rule(item, origin, doc, &format!("{base}/{i}"))?);
            }
        }
        Ok(Self { rules })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The verdict of the rule for `obj`'s kind, if there is one.
    pub fn assess(&self, obj: &Value) -> Option<(HealthState, String)> {
        let (group, kind) = group_kind(obj);
        let rule = self
            .rules
            .iter()
            .find(|r| r.kind == kind && r.group == group)?;
        if obj["status"]["observedGeneration"].is_i64()
            && let Some(u) = unobserved(obj)
        {
            return Some(u);
        }
        let mut errors = Vec::new();
        let mut check = |name: &str, expr: &Expr| match evaluate(expr, obj) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{name}: {e}"));
                false
            }
        };
        let verdict = if rule
            .in_progress
            .as_ref()
            .is_some_and(|e| check("inProgress", e))
        {
            Some((HealthState::Progressing, "inProgress", &rule.in_progress))
        } else if rule.failed.as_ref().is_some_and(|e| check("failed", e)) {
            Some((HealthState::Degraded, "failed", &rule.failed))
        } else if check("current", &rule.current) {
            return Some((
                HealthState::Healthy,
                format!("health rule: current ({})", rule.current.source),
            ));
        } else {
            None
        };
        Some(match verdict {
            Some((state, name, Some(expr))) => {
                (state, format!("health rule: {name} ({})", expr.source))
            }
            _ if !errors.is_empty() => (
                HealthState::Progressing,
                format!("health rule: none true ({})", errors.join("; ")),
            ),
            _ => (
                HealthState::Progressing,
                "health rule: none of inProgress, failed, current is true".into(),
            ),
        })
    }
}

fn group_kind(obj: &Value) -> (&str, &str) {
    let group = obj["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map_or("", |(g, _)| g);
    (group, obj["kind"].as_str().unwrap_or_default())
}

fn evaluate(expr: &Expr, obj: &Value) -> Result<bool, String> {
    let mut context = cel::Context::default();
    if let Some(fields) = obj.as_object() {
        for (name, value) in fields {
            context
                .add_variable(name.as_str(), value)
                .map_err(|e| e.to_string())?;
        }
    }
    match expr.program.execute(&context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("evaluated to {other:?}, not a bool")),
        Err(e) => Err(e.to_string()),
    }
}

fn rule(item: &Value, origin: &str, doc: &Document, at: &str) -> Result<HealthRule, RulesError> {
    let text = |key: &str| item[key].as_str().map(str::to_string);
    let api_version = text("apiVersion")
        .ok_or_else(|| error(origin, doc, at, "apiVersion is required".into()))?;
    let kind = text("kind").ok_or_else(|| error(origin, doc, at, "kind is required".into()))?;
    if let Some(map) = item.as_object()
        && let Some(unknown) = map.keys().find(|k| {
            !["apiVersion", "kind", "current", "inProgress", "failed"].contains(&k.as_str())
        })
    {
        return Err(error(
            origin,
            doc,
            &format!("{at}/{unknown}"),
            format!("unknown field {unknown:?} (expected current, inProgress, failed)"),
        ));
    }
    let compile = |key: &str| -> Result<Option<Expr>, RulesError> {
        let Some(source) = text(key) else {
            return Ok(None);
        };
        cel::Program::compile(&source)
            .map(|program| {
                Some(Expr {
                    source: source.clone(),
                    program,
                })
            })
            .map_err(|e| {
                error(
                    origin,
                    doc,
                    &format!("{at}/{key}"),
                    format!("{kind} {key}: invalid CEL: {e}"),
                )
            })
    };
    let current = compile("current")?.ok_or_else(|| {
        error(
            origin,
            doc,
            at,
            format!("the rule for {kind} needs a current expression"),
        )
    })?;
    let group = api_version
        .rsplit_once('/')
        .map_or("", |(g, _)| g)
        .to_string();
    Ok(HealthRule {
        group,
        kind: kind.clone(),
        current,
        in_progress: compile("inProgress")?,
        failed: compile("failed")?,
    })
}

fn error(origin: &str, doc: &Document, pointer: &str, message: String) -> RulesError {
    let line = doc
        .positions
        .get(pointer)
        .map_or(doc.start.line, |p| p.line);
    RulesError {
        origin: origin.to_string(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Rules written the way Flux documents them (a Ready condition, a phase).
    const FLUX_STYLE: &str = r#"
- apiVersion: example.com/v1
  kind: Widget
  inProgress: "has(status.phase) && status.phase == 'Provisioning'"
  failed: "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')"
  current: "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')"
"#;

    fn widget(status: Value) -> Value {
        json!({"apiVersion": "example.com/v2", "kind": "Widget",
               "metadata": {"name": "w", "generation": 1}, "status": status})
    }

    fn verdict(rules: &HealthRules, obj: &Value) -> HealthState {
        rules.assess(obj).expect("a rule matches").0
    }

    #[test]
    fn rules_decide_in_flux_order() {
        let rules = HealthRules::parse(FLUX_STYLE, "rules.yaml").unwrap();
        assert_eq!(rules.len(), 1);
        let ready = widget(json!({"conditions": [{"type": "Ready", "status": "True"}]}));
        assert_eq!(verdict(&rules, &ready), HealthState::Healthy);
        let failed = widget(json!({"conditions": [{"type": "Ready", "status": "False"}]}));
        assert_eq!(verdict(&rules, &failed), HealthState::Degraded);
        let (_, message) = rules.assess(&failed).unwrap();
        assert!(message.starts_with("health rule: failed"), "{message}");
        // inProgress is tried first, even when failed would also be true.
        let provisioning = widget(json!({"phase": "Provisioning",
            "conditions": [{"type": "Ready", "status": "False"}]}));
        assert_eq!(verdict(&rules, &provisioning), HealthState::Progressing);
        // No conditions: the expressions cannot be evaluated; in progress, saying why.
        let (state, message) = rules.assess(&widget(json!({}))).unwrap();
        assert_eq!(state, HealthState::Progressing);
        assert!(message.contains("current:"), "{message}");
    }

    #[test]
    fn observed_generation_behind_is_in_progress_before_the_rule() {
        let rules = HealthRules::parse(FLUX_STYLE, "rules.yaml").unwrap();
        let mut stale = widget(json!({"observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True"}]}));
        stale["metadata"]["generation"] = json!(2);
        assert_eq!(verdict(&rules, &stale), HealthState::Progressing);
    }

    #[test]
    fn rules_match_group_and_kind_only() {
        let rules = HealthRules::parse(FLUX_STYLE, "rules.yaml").unwrap();
        let other_group = json!({"apiVersion": "other.io/v1", "kind": "Widget", "metadata": {}});
        assert!(rules.assess(&other_group).is_none());
        let other_kind = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {}});
        assert!(rules.assess(&other_kind).is_none());
    }

    #[test]
    fn flux_healthcheckexprs_block_is_accepted() {
        let text = "healthCheckExprs:\n- apiVersion: v1\n  kind: ConfigMap\n  current: \"has(data.ready)\"\n";
        let rules = HealthRules::parse(text, "rules.yaml").unwrap();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {"ready": "1"}});
        assert_eq!(verdict(&rules, &cm), HealthState::Healthy);
    }

    #[test]
    fn bad_rules_name_the_line() {
        let bad_cel = "- apiVersion: example.com/v1\n  kind: Widget\n  current: \"status.(\"\n";
        let e = HealthRules::parse(bad_cel, "cm/rules.yaml").unwrap_err();
        assert_eq!((e.origin.as_str(), e.line), ("cm/rules.yaml", 3), "{e}");
        assert!(e.message.contains("invalid CEL"), "{e}");

        let no_current = "- apiVersion: example.com/v1\n  kind: Widget\n  failed: \"true\"\n";
        let e = HealthRules::parse(no_current, "r").unwrap_err();
        assert!(e.message.contains("needs a current"), "{e}");

        let typo = "- apiVersion: v1\n  kind: Widget\n  current: \"true\"\n  curent: \"true\"\n";
        let e = HealthRules::parse(typo, "r").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("curent"), "{e}");

        let not_list = "kind: Widget\n";
        assert!(HealthRules::parse(not_list, "r").is_err());
        let yaml = "- [unclosed\n";
        assert!(HealthRules::parse(yaml, "r").is_err());
    }

    #[test]
    fn a_non_boolean_result_is_reported() {
        let text = "- apiVersion: v1\n  kind: Thing\n  current: \"'yes'\"\n";
        let rules = HealthRules::parse(text, "r").unwrap();
        let (state, message) = rules
            .assess(&json!({"apiVersion": "v1", "kind": "Thing", "metadata": {}}))
            .unwrap();
        assert_eq!(state, HealthState::Progressing);
        assert!(message.contains("not a bool"), "{message}");
    }
}
