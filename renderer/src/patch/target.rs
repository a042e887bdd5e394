//! Patch targets (`patches[].target`, also used by replacements): kustomize's `Selector`.
//!
//! group/version/kind/name/namespace are RE2 regexes anchored as `^(?:…)$`; name and
//! namespace match either the original or the current id; label and annotation selectors use
//! the Kubernetes selector syntax.

use std::collections::BTreeSet;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::PatchError;
use crate::schema::effective_namespace;

/// A `target:` as written in a kustomization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub label_selector: String,
    pub annotation_selector: String,
}

/// A compiled [`Target`].
#[derive(Debug, Clone)]
pub struct TargetMatcher {
    group: Option<Pattern>,
    version: Option<Pattern>,
    kind: Option<Pattern>,
    name: Option<Pattern>,
    namespace: Option<Pattern>,
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
}

/// One field of a target: an anchored regex, or text without regex syntax, which the
/// anchored regex would match only in full.
#[derive(Debug, Clone)]
enum Pattern {
    Literal(String),
    Regex(Regex),
}

impl Pattern {
    fn is_match(&self, v: &str) -> bool {
        match self {
            Pattern::Literal(l) => l == v,
            Pattern::Regex(r) => r.is_match(v),
        }
    }
}

/// What a target is matched against besides the object itself: its id before any rename
/// (kustomize's `OrgId`), when it differs from the current one.
#[derive(Debug, Clone, Copy, Default)]
pub struct OriginalId<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
}

impl Target {
    pub fn compile(&self) -> Result<TargetMatcher, PatchError> {
        let re = |field: &str, p: &str| -> Result<Option<Pattern>, PatchError> {
            if p.is_empty() {
                return Ok(None);
            }
            // Most targets name a kind or object outright: comparing saves compiling a
            // regex per patch (a thousand per 1000-app render).
            if p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Ok(Some(Pattern::Literal(p.to_string())));
            }
            Regex::new(&format!("^(?:{p})$"))
                .map(|r| Some(Pattern::Regex(r)))
                .map_err(|e| PatchError::Target {
                    message: format!("{field} {p:?}: {e}"),
                })
        };
        Ok(TargetMatcher {
            group: re("group", &self.group)?,
            version: re("version", &self.version)?,
            kind: re("kind", &self.kind)?,
            name: re("name", &self.name)?,
            namespace: re("namespace", &self.namespace)?,
            labels: parse_selector(&self.label_selector)?,
            annotations: parse_selector(&self.annotation_selector)?,
        })
    }
}

impl TargetMatcher {
    /// Whether `obj` is selected. `original` is the object's id before renames, if any.
    pub fn matches(&self, obj: &Value, original: Option<OriginalId<'_>>) -> bool {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
        let api = s("/apiVersion");
        let kind = s("/kind");
        let (group, version) = api.split_once('/').unwrap_or(("", api));
        let cur_ns = effective_namespace(api, kind, s("/metadata/namespace"));
        let org = original.unwrap_or(OriginalId {
            name: s("/metadata/name"),
            namespace: s("/metadata/namespace"),
        });
        let org_ns = effective_namespace(api, kind, org.namespace);
        let hit = |r: &Option<Pattern>, v: &str| r.as_ref().is_none_or(|r| r.is_match(v));
        (hit(&self.namespace, org_ns) || hit(&self.namespace, cur_ns))
            && (hit(&self.name, org.name) || hit(&self.name, s("/metadata/name")))
            && hit(&self.group, group)
            && hit(&self.version, version)
            && hit(&self.kind, kind)
            && self
                .labels
                .iter()
                .all(|r| r.matches(obj.pointer("/metadata/labels")))
            && self
                .annotations
                .iter()
                .all(|r| r.matches(obj.pointer("/metadata/annotations")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    In,
    NotIn,
    Gt,
    Lt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: BTreeSet<String>,
}

impl Requirement {
    fn matches(&self, map: Option<&Value>) -> bool {
        let v = map.and_then(|m| m.get(&self.key)).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        match self.op {
            Op::Exists => v.is_some(),
            Op::NotExists => v.is_none(),
            Op::In => v.is_some_and(|v| self.values.contains(&v)),
            Op::NotIn => v.is_none_or(|v| !self.values.contains(&v)),
            Op::Gt | Op::Lt => {
                let (Some(have), Some(want)) = (
                    v.and_then(|v| v.parse::<i64>().ok()),
                    self.values
                        .iter()
                        .next()
                        .and_then(|w| w.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::Gt {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

fn sel_err(selector: &str, message: impl Into<String>) -> PatchError {
    PatchError::Target {
        message: format!("selector {selector:?}: {}", message.into()),
    }
}

/// Kubernetes `labels.Parse`: `a`, `!a`, `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`,
/// `a>1`, `a<1`, comma-separated.
fn parse_selector(sel: &str) -> Result<Vec<Requirement>, PatchError> {
    let mut out = Vec::new();
    let mut rest = sel.trim();
    while !rest.is_empty() {
        let (req, tail) = parse_requirement(rest).map_err(|m| sel_err(sel, m))?;
        out.push(req);
        rest = tail.trim_start();
        if let Some(t) = rest.strip_prefix(',') {
            rest = t.trim_start();
            if rest.is_empty() {
                return Err(sel_err(sel, "found end of selector after ','"));
            }
        } else if !rest.is_empty() {
            return Err(sel_err(sel, format!("unexpected {rest:?}")));
        }
    }
    Ok(out)
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn parse_requirement(s: &str) -> Result<(Requirement, &str), String> {
    let req = |key: &str, op, values: BTreeSet<String>| Requirement {
        key: key.into(),
        op,
        values,
    };
    if let Some(t) = s.strip_prefix('!') {
        let t = t.trim_start();
        let end = t.find(|c: char| !is_key_char(c)).unwrap_or(t.len());
        if end == 0 {
            return Err("expected a key after '!'".into());
        }
        return Ok((req(&t[..end], Op::NotExists, BTreeSet::new()), &t[end..]));
    }
    let end = s.find(|c: char| !is_key_char(c)).unwrap_or(s.len());
    if end == 0 {
        return Err(format!("expected a key at {s:?}"));
    }
    let key = &s[..end];
    let t = s[end..].trim_start();
    let value = |t: &str| -> (String, usize) {
        let t2 = t.trim_start();
        let skip = t.len() - t2.len();
        let n = t2.find(|c: char| !is_key_char(c)).unwrap_or(t2.len());
        (t2[..n].to_string(), skip + n)
    };
    let one = |v: String| BTreeSet::from([v]);
    for (tok, op) in [
        ("==", Op::In),
        ("!=", Op::NotIn),
        ("=", Op::In),
        (">", Op::Gt),
        ("<", Op::Lt),
    ] {
        if let Some(r) = t.strip_prefix(tok) {
            let (v, n) = value(r);
            if matches!(op, Op::Gt | Op::Lt) && v.parse::<i64>().is_err() {
                return Err(format!("{key}{tok}: want an integer"));
            }
            return Ok((req(key, op, one(v)), &r[n..]));
        }
    }
    for (word, op) in [("notin", Op::NotIn), ("in", Op::In)] {
        if let Some(r) = t
            .strip_prefix(word)
            .filter(|r| r.trim_start().starts_with('('))
        {
            let r = r.trim_start();
            let close = r
                .find(')')
                .ok_or_else(|| format!("{key} {word}: missing ')'"))?;
            let values = r[1..close]
                .split(',')
                .map(|v| v.trim().to_string())
                .collect();
            return Ok((req(key, op, values), &r[close + 1..]));
        }
    }
    Ok((req(key, Op::Exists, BTreeSet::new()), t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(t: Value) -> TargetMatcher {
        serde_json::from_value::<Target>(t)
            .unwrap()
            .compile()
            .unwrap()
    }

    #[test]
    fn regexes_are_anchored() {
        let d =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web-1"}});
        assert!(m(json!({"kind": "Deploy.*"})).matches(&d, None));
        assert!(!m(json!({"kind": "Deploy"})).matches(&d, None));
        assert!(m(json!({"name": "web-.", "group": "apps", "version": "v1"})).matches(&d, None));
        assert!(
            m(json!({"namespace": "default"})).matches(&d, None),
            "empty ns is default"
        );
        assert!(!m(json!({"group": "extensions"})).matches(&d, None));
    }

    #[test]
    fn original_name_also_matches() {
        let d = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p-cm"}});
        let t = m(json!({"name": "cm"}));
        assert!(!t.matches(&d, None));
        assert!(t.matches(
            &d,
            Some(OriginalId {
                name: "cm",
                namespace: ""
            })
        ));
    }

    #[test]
    fn label_and_annotation_selectors() {
        let d = json!({"kind": "X", "metadata": {"name": "a",
            "labels": {"app": "web", "tier": "fe", "n": "5"}, "annotations": {"x": "y"}}});
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=fe", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("n>4", true),
            ("n<4", false),
            ("", true),
        ] {
            assert_eq!(
                m(json!({"labelSelector": sel})).matches(&d, None),
                want,
                "{sel}"
            );
        }
        assert!(m(json!({"annotationSelector": "x=y"})).matches(&d, None));
        assert!(!m(json!({"annotationSelector": "x=z"})).matches(&d, None));
        let bad: Target = serde_json::from_value(json!({"labelSelector": "a in (b"})).unwrap();
        assert!(bad.compile().is_err());
        let bad: Target = serde_json::from_value(json!({"name": "("})).unwrap();
        assert!(bad.compile().is_err());
    }
}
