//! Which fields the agent leaves to someone else: neither applied nor reported as drift.

use std::collections::BTreeSet;
use std::str::FromStr;

use serde_json::Value;

use super::pointer;
use crate::protocol::IGNORE_FIELDS_ANNOTATION;

/// Kinds an HPA scales whose `/spec/replicas` it then owns.
const HPA_SCALABLE_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "ReplicaSet"];
const REPLICAS_POINTER: &str = "/spec/replicas";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IgnoreRuleError {
    #[error("ignore rule {rule:?}: expected KIND:/json/pointer (or *:/json/pointer)")]
    NoKind { rule: String },
    #[error("ignore rule {rule:?}: {pointer:?} is not a JSON pointer (it must start with '/')")]
    BadPointer { rule: String, pointer: String },
}

/// One agent-wide rule: `KIND:POINTER`, where KIND is `*`, `Kind` (any group) or `Kind.group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreRule {
    kind: Option<String>,
    group: Option<String>,
    pointer: String,
}

impl FromStr for IgnoreRule {
    type Err = IgnoreRuleError;

    fn from_str(rule: &str) -> Result<Self, Self::Err> {
        let (kind, pointer) = rule
            .split_once(':')
            .ok_or_else(|| IgnoreRuleError::NoKind {
                rule: rule.to_string(),
            })?;
        let (kind, pointer) = (kind.trim(), pointer.trim());
        if kind.is_empty() {
            return Err(IgnoreRuleError::NoKind {
                rule: rule.to_string(),
            });
        }
        if pointer::segments(pointer).is_none() {
            return Err(IgnoreRuleError::BadPointer {
                rule: rule.to_string(),
                pointer: pointer.to_string(),
            });
        }
        let (kind, group) = match kind {
            "*" => (None, None),
            k => match k.split_once('.') {
                Some((k, g)) => (Some(k.to_string()), Some(g.to_string())),
                None => (Some(k.to_string()), None),
            },
        };
        Ok(Self {
            kind,
            group,
            pointer: pointer.to_string(),
        })
    }
}

impl IgnoreRule {
    fn applies_to(&self, kind: &str, group: &str) -> bool {
        self.kind.as_deref().is_none_or(|k| k == kind)
            && self.group.as_deref().is_none_or(|g| g == group)
    }

    /// The concrete pointers of `obj` this rule alone covers (to say which rule ignores a field).
    pub fn pointers_in(&self, obj: &Value) -> Vec<String> {
        let (kind, group) = kind_and_group(obj);
        if !self.applies_to(kind, group) {
            return Vec::new();
        }
        pointer::segments(&self.pointer)
            .map(|segs| pointer::expand(obj, &segs))
            .unwrap_or_default()
    }
}

fn kind_and_group(obj: &Value) -> (&str, &str) {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let group = obj["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map_or("", |(g, _)| g);
    (kind, group)
}

/// Parses the ignore-fields annotation value: comma-separated JSON pointers.
pub fn parse_ignore_annotation(value: &str) -> Result<Vec<String>, IgnoreRuleError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match pointer::segments(p) {
            Some(_) => Ok(p.to_string()),
            None => Err(IgnoreRuleError::BadPointer {
                rule: format!("{IGNORE_FIELDS_ANNOTATION}={value}"),
                pointer: p.to_string(),
            }),
        })
        .collect()
}

/// Every ignore rule in force: agent-wide flags, HPA targets, and (per object) the annotation.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<IgnoreRule>,
    /// (namespace or "", kind, name) of objects an HPA scales.
    hpa_targets: BTreeSet<(String, String, String)>,
}

impl IgnoreRules {
    /// From the agent's `KIND:POINTER` flags.
    pub fn new<S: AsRef<str>>(flags: &[S]) -> Result<Self, IgnoreRuleError> {
        let rules = flags
            .iter()
            .map(|f| f.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            hpa_targets: BTreeSet::new(),
        })
    }

    /// Leaves `/spec/replicas` of every Deployment/StatefulSet/ReplicaSet that one of `hpas`
    /// (autoscaling/v1 or v2 HorizontalPodAutoscaler objects, from Git or live) scales.
    pub fn with_hpas(mut self, hpas: &[Value]) -> Self {
        for hpa in hpas {
            if hpa["kind"] != "HorizontalPodAutoscaler" {
                continue;
            }
            let target = &hpa["spec"]["scaleTargetRef"];
            let (Some(kind), Some(name)) = (target["kind"].as_str(), target["name"].as_str())
            else {
                continue;
            };
            if HPA_SCALABLE_KINDS.contains(&kind) {
                let ns = namespace(hpa).to_string();
                self.hpa_targets
                    .insert((ns, kind.to_string(), name.to_string()));
            }
        }
        self
    }

    /// The concrete pointers of `obj` that are ignored (wildcards expanded, absent ones dropped).
    /// Invalid annotation entries are skipped here; [`parse_ignore_annotation`] reports them.
    pub fn ignored_pointers(&self, obj: &Value) -> Vec<String> {
        self.ignored_pointers_with(obj, "")
    }

    /// [`Self::ignored_pointers`] plus the pointers of an `ignore-fields` annotation found
    /// elsewhere (the live object's), in the same comma-separated form.
    pub fn ignored_pointers_with(&self, obj: &Value, extra_annotation: &str) -> Vec<String> {
        let (kind, group) = kind_and_group(obj);
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();

        let mut patterns: Vec<&str> = self
            .rules
            .iter()
            .filter(|r| r.applies_to(kind, group))
            .map(|r| r.pointer.as_str())
            .collect();
        let key = (
            namespace(obj).to_string(),
            kind.to_string(),
            name.to_string(),
        );
        if self.hpa_targets.contains(&key) {
            patterns.push(REPLICAS_POINTER);
        }
        let annotated = obj["metadata"]["annotations"][IGNORE_FIELDS_ANNOTATION]
            .as_str()
            .unwrap_or_default();
        patterns.extend(
            annotated
                .split(',')
                .chain(extra_annotation.split(','))
                .map(str::trim)
                .filter(|p| !p.is_empty()),
        );

        let mut out: Vec<String> = patterns
            .into_iter()
            .filter_map(pointer::segments)
            .flat_map(|segs| pointer::expand(obj, &segs))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Removes the ignored fields from `desired` so the apply does not take them over from the
    /// controller that owns them. Returns the pointers removed.
    pub fn strip_ignored(&self, desired: &mut Value) -> Vec<String> {
        self.strip_ignored_with(desired, "")
    }

    /// [`Self::strip_ignored`] with the pointers of another `ignore-fields` annotation too.
    pub fn strip_ignored_with(&self, desired: &mut Value, extra_annotation: &str) -> Vec<String> {
        let mut pointers = self.ignored_pointers_with(desired, extra_annotation);
        // Deepest and highest-index first, so earlier removals do not shift later pointers.
        pointers.sort_by_key(|p| std::cmp::Reverse(order_for_removal(p)));
        pointers.retain(|p| pointer::remove(desired, p).is_some());
        pointers.sort();
        pointers
    }

    /// Whether `pointer` (concrete) is ignored on `obj`, or lies under an ignored field.
    pub fn is_ignored(&self, obj: &Value, pointer: &str) -> bool {
        self.ignored_pointers(obj)
            .iter()
            .any(|p| pointer == p || pointer.starts_with(&format!("{p}/")))
    }
}

/// Sort key: segments with array indices compared numerically.
fn order_for_removal(pointer: &str) -> Vec<(u64, String)> {
    pointer::segments(pointer)
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.parse().unwrap_or(0), s))
        .collect()
}

fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(name: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy:1"}
            ]}}}
        })
    }

    fn hpa(api_version: &str, target_kind: &str, target: &str) -> Value {
        json!({
            "apiVersion": api_version, "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": target},
                     "minReplicas": 2, "maxReplicas": 10}
        })
    }

    #[test]
    fn hpa_v2_and_v1_take_replicas_of_their_target_only() {
        let rules = IgnoreRules::default().with_hpas(&[
            hpa("autoscaling/v2", "Deployment", "web"),
            hpa("autoscaling/v1", "StatefulSet", "db"),
        ]);
        assert_eq!(
            rules.ignored_pointers(&deployment("web")),
            ["/spec/replicas"]
        );
        assert!(rules.ignored_pointers(&deployment("other")).is_empty());
        let mut sts = deployment("db");
        sts["kind"] = json!("StatefulSet");
        assert_eq!(rules.ignored_pointers(&sts), ["/spec/replicas"]);
    }

    #[test]
    fn hpa_targeting_a_deployment_strips_replicas_but_nothing_else() {
        let rules = IgnoreRules::default().with_hpas(&[hpa("autoscaling/v2", "Deployment", "web")]);
        let mut d = deployment("web");
        assert_eq!(rules.strip_ignored(&mut d), ["/spec/replicas"]);
        assert!(d["spec"].get("replicas").is_none());
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "app:1"
        );
    }

    #[test]
    fn agent_wide_rules_match_kind_group_and_star() {
        let rules = IgnoreRules::new(&[
            "Deployment.apps:/spec/template/spec/containers/*/image",
            "Service:/spec/clusterIP",
            "*:/metadata/labels/team",
        ])
        .unwrap();
        let mut d = deployment("web");
        d["metadata"]["labels"] = json!({"team": "a", "app": "web"});
        assert_eq!(
            rules.ignored_pointers(&d),
            [
                "/metadata/labels/team",
                "/spec/template/spec/containers/0/image",
                "/spec/template/spec/containers/1/image",
            ]
        );
        let image: IgnoreRule = "Deployment.apps:/spec/template/spec/containers/*/image"
            .parse()
            .unwrap();
        assert_eq!(
            image.pointers_in(&d),
            [
                "/spec/template/spec/containers/0/image",
                "/spec/template/spec/containers/1/image",
            ]
        );
        let service: IgnoreRule = "Service:/spec/clusterIP".parse().unwrap();
        assert!(service.pointers_in(&d).is_empty());
        rules.strip_ignored(&mut d);
        assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app"}, {"name": "proxy"}])
        );
    }

    #[test]
    fn annotation_lists_pointers_per_object() {
        let mut d = deployment("web");
        d["metadata"]["annotations"] = json!({
            IGNORE_FIELDS_ANNOTATION: " /spec/replicas , /spec/template/spec/containers/1 ,nonsense"
        });
        let rules = IgnoreRules::default();
        assert_eq!(
            rules.ignored_pointers(&d),
            ["/spec/replicas", "/spec/template/spec/containers/1"]
        );
        assert!(rules.is_ignored(&d, "/spec/template/spec/containers/1/image"));
        assert!(!rules.is_ignored(&d, "/spec/template/spec/containers/0/image"));
        rules.strip_ignored(&mut d);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn stripping_several_array_elements_removes_the_right_ones() {
        let rules = IgnoreRules::new(&["*:/l/0", "*:/l/2"]).unwrap();
        let mut v = json!({"kind": "X", "l": ["a", "b", "c", "d"]});
        assert_eq!(rules.strip_ignored(&mut v), ["/l/0", "/l/2"]);
        assert_eq!(v["l"], json!(["b", "d"]));
    }

    #[test]
    fn bad_rules_and_annotations_say_why() {
        assert!(matches!(
            IgnoreRules::new(&["/spec/replicas"]),
            Err(IgnoreRuleError::NoKind { .. })
        ));
        let err = IgnoreRules::new(&["Deployment:spec.replicas"]).unwrap_err();
        assert!(err.to_string().contains("spec.replicas"), "{err}");
        assert!(parse_ignore_annotation("/a, b").is_err());
        assert_eq!(parse_ignore_annotation("/a, /b").unwrap(), ["/a", "/b"]);
    }
}
