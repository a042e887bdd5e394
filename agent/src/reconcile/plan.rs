//! The pure planner: desired set + live inventory → what to apply, prune, or leave alone.
//!
//! No I/O: the executor feeds it the render and the listed members, so every rule about what
//! the agent may touch is unit-tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};

use renderer::protocol::{
    APPLYSET_PART_OF_LABEL, GroupKind, PARENT_NAME, PRUNE_ANNOTATION, PRUNE_DISABLED,
    PRUNE_ENABLED, PruneCandidate, decorate,
};
use serde_json::Value;

/// An object's identity within the managed namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group_kind: GroupKind,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.group_kind, self.name)
    }
}

/// One rendered object, with where it came from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub key: ObjectKey,
    pub api_version: String,
    /// The object as compact JSON. Parsed trees of a thousand objects were the largest part of
    /// the agent's memory; the text is a seventh of that and is parsed one object at a time.
    json: Box<str>,
    /// `file:line` of the manifest that declared it, when the renderer knows.
    pub origin: Option<String>,
}

impl Desired {
    /// Reads identity from the object itself; `None` when apiVersion/kind/name is missing.
    pub fn from_object(body: Value, origin: Option<String>) -> Result<Self, String> {
        let api_version = body["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = body["kind"].as_str().unwrap_or_default().to_string();
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let at = origin
            .as_deref()
            .map(|o| format!("{o}: "))
            .unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(format!(
                "{at}object without apiVersion, kind or metadata.name"
            ));
        }
        let group_kind = GroupKind::from_api_version(&api_version, &kind);
        Ok(Self {
            key: ObjectKey { group_kind, name },
            api_version,
            json: body.to_string().into_boxed_str(),
            origin,
        })
    }

    /// The object, parsed.
    pub fn body(&self) -> Value {
        serde_json::from_str(&self.json).expect("serialised from a Value by from_object")
    }

    /// The object as the compact JSON it is kept in.
    pub fn json(&self) -> &str {
        &self.json
    }

    fn set_body(&mut self, body: &Value) {
        self.json = body.to_string().into_boxed_str();
    }

    fn describe(&self) -> String {
        match &self.origin {
            Some(o) => format!("{} ({o})", self.key),
            None => self.key.to_string(),
        }
    }
}

/// A listed member of the set (selected by its part-of label).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveMember {
    pub key: ObjectKey,
    pub api_version: String,
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Whether a group-kind is namespaced, as discovery says; `None` when the cluster has no such kind.
pub trait ScopeLookup {
    fn namespaced(&self, gk: &GroupKind) -> Option<bool>;
}

impl<F: Fn(&GroupKind) -> Option<bool>> ScopeLookup for F {
    fn namespaced(&self, gk: &GroupKind) -> Option<bool> {
        self(gk)
    }
}

pub struct PlanInput<'a> {
    pub namespace: &'a str,
    pub set_id: &'a str,
    pub desired: Vec<Desired>,
    pub allow_empty: bool,
}

/// What stays and what goes, given the applies of a revision and the listed members.
#[derive(Debug, Default, PartialEq)]
pub struct Prunes {
    /// In delete order (reverse of apply order).
    pub prunes: Vec<LiveMember>,
    pub prune_skipped: Vec<PruneCandidate>,
    /// Group-kinds of everything that stays a member after this plan.
    pub group_kinds: BTreeSet<GroupKind>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// The revision declares objects this agent may not own: nothing is applied.
    #[error("{}", .0.join("; "))]
    Refused(Vec<String>),
    /// The render is unusable as a whole (duplicates, unknown kinds).
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error(
        "the render produced no objects; refusing to prune the whole namespace (start the agent with --allow-empty to allow it)"
    )]
    EmptyRender,
}

/// Validates a render and turns it into the applies: in apply order, with namespace, part-of
/// label set. Depends only on the revision, so it is done once per commit.
pub fn applies(input: PlanInput<'_>, scopes: &dyn ScopeLookup) -> Result<Vec<Desired>, PlanError> {
    let PlanInput {
        namespace,
        set_id,
        desired,
        allow_empty,
    } = input;
    if desired.is_empty() && !allow_empty {
        return Err(PlanError::EmptyRender);
    }

    let mut refused = Vec::new();
    let mut invalid = Vec::new();
    let mut seen = BTreeSet::new();
    for d in &desired {
        let body = d.body();
        if !seen.insert(d.key.clone()) {
            invalid.push(format!("{} is declared more than once", d.describe()));
        }
        match scopes.namespaced(&d.key.group_kind) {
            None => invalid.push(format!(
                "{}: the cluster has no API resource for {} ({})",
                d.describe(),
                d.key.group_kind,
                d.api_version
            )),
            Some(false) => refused.push(format!(
                "{} is cluster-scoped; this agent manages only namespace {namespace}",
                d.describe()
            )),
            Some(true) => {}
        }
        if let Some(ns) = body["metadata"]["namespace"].as_str()
            && ns != namespace
        {
            refused.push(format!(
                "{} targets namespace {ns}; this agent manages only namespace {namespace}",
                d.describe()
            ));
        }
        if d.key.group_kind == GroupKind::new("", "ConfigMap") && d.key.name == PARENT_NAME {
            refused.push(format!(
                "{}: ConfigMap {PARENT_NAME} is the agent's own ApplySet parent",
                d.describe()
            ));
        }
    }
    if !refused.is_empty() {
        return Err(PlanError::Refused(refused));
    }
    if !invalid.is_empty() {
        return Err(PlanError::Invalid(invalid));
    }

    let mut applies: Vec<Desired> = desired
        .into_iter()
        .map(|mut d| {
            let mut body = d.body();
            decorate(&mut body, namespace, set_id);
            d.set_body(&body);
            d
        })
        .collect();
    applies.sort_by_key(|d| apply_rank(&d.key.group_kind));
    Ok(applies)
}

/// The members of the set that `applies` no longer declares: pruned, or reported as kept.
pub fn prunes(applies: &[Desired], members: Vec<LiveMember>, set_id: &str, prune: bool) -> Prunes {
    let declared: BTreeSet<&ObjectKey> = applies.iter().map(|d| &d.key).collect();
    let mut group_kinds: BTreeSet<GroupKind> =
        applies.iter().map(|d| d.key.group_kind.clone()).collect();
    let mut prunes = Vec::new();
    let mut prune_skipped = Vec::new();
    for m in members {
        // The listing selects by label already; this guards against a caller's mistake.
        if m.labels.get(APPLYSET_PART_OF_LABEL).map(String::as_str) != Some(set_id)
            || declared.contains(&m.key)
        {
            continue;
        }
        let skip_reason = if m.annotations.get(PRUNE_ANNOTATION).map(String::as_str)
            == Some(PRUNE_DISABLED)
        {
            Some(format!("{PRUNE_ANNOTATION}={PRUNE_DISABLED}"))
        } else if !prune {
            Some("--no-prune".to_string())
        } else if m.key.group_kind == GroupKind::new("", "PersistentVolumeClaim")
            && m.annotations.get(PRUNE_ANNOTATION).map(String::as_str) != Some(PRUNE_ENABLED)
        {
            Some(format!(
                "a PersistentVolumeClaim's data goes with it: pruned only with {PRUNE_ANNOTATION}={PRUNE_ENABLED}"
            ))
        } else {
            None
        };
        match skip_reason {
            Some(reason) => {
                group_kinds.insert(m.key.group_kind.clone());
                prune_skipped.push(PruneCandidate {
                    api_version: m.api_version.clone(),
                    kind: m.key.group_kind.kind.clone(),
                    name: m.key.name.clone(),
                    reason,
                });
            }
            None => prunes.push(m),
        }
    }
    prunes.sort_by_key(|m| std::cmp::Reverse(apply_rank(&m.key.group_kind)));
    Prunes {
        prunes,
        prune_skipped,
        group_kinds,
    }
}

/// Dependencies first: what pods mount or run as exists before the workloads that use it.
pub fn apply_rank(gk: &GroupKind) -> usize {
    const ORDER: &[&str] = &[
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "PodDisruptionBudget",
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Role",
        "RoleBinding",
        "Service",
        "Pod",
        "ReplicaSet",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "HorizontalPodAutoscaler",
        "Ingress",
    ];
    ORDER
        .iter()
        .position(|k| *k == gk.kind)
        .unwrap_or(ORDER.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use renderer::protocol::REVISION_ANNOTATION;
    use serde_json::json;

    const NS: &str = "team-a";
    const SET: &str = "applyset-abc-v1";

    fn obj(api_version: &str, kind: &str, name: &str) -> Desired {
        Desired::from_object(
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}),
            Some(format!("overlays/prod/{}.yaml:1", name)),
        )
        .unwrap()
    }

    fn member(api_version: &str, kind: &str, name: &str) -> LiveMember {
        LiveMember {
            key: ObjectKey {
                group_kind: GroupKind::from_api_version(api_version, kind),
                name: name.into(),
            },
            api_version: api_version.into(),
            uid: Some(format!("uid-{name}")),
            labels: BTreeMap::from([(APPLYSET_PART_OF_LABEL.to_string(), SET.to_string())]),
            annotations: BTreeMap::new(),
        }
    }

    fn scopes(gk: &GroupKind) -> Option<bool> {
        match gk.kind.as_str() {
            "Namespace" | "ClusterRole" => Some(false),
            "Widget" => None,
            _ => Some(true),
        }
    }

    struct Input {
        desired: Vec<Desired>,
        members: Vec<LiveMember>,
        prune: bool,
        allow_empty: bool,
    }

    fn input(desired: Vec<Desired>, members: Vec<LiveMember>) -> Input {
        Input {
            desired,
            members,
            prune: true,
            allow_empty: false,
        }
    }

    #[derive(Debug)]
    struct Plan {
        applies: Vec<Desired>,
        prunes: Vec<LiveMember>,
        prune_skipped: Vec<PruneCandidate>,
        group_kinds: BTreeSet<GroupKind>,
    }

    /// Both halves, as one sync runs them.
    fn plan(input: Input, scopes: &dyn ScopeLookup) -> Result<Plan, PlanError> {
        let applies = super::applies(
            PlanInput {
                namespace: NS,
                set_id: SET,
                desired: input.desired,
                allow_empty: input.allow_empty,
            },
            scopes,
        )?;
        let p = super::prunes(&applies, input.members, SET, input.prune);
        Ok(Plan {
            applies,
            prunes: p.prunes,
            prune_skipped: p.prune_skipped,
            group_kinds: p.group_kinds,
        })
    }

    fn with_namespace(d: Desired, ns: &str) -> Desired {
        let mut body = d.body();
        body["metadata"]["namespace"] = json!(ns);
        Desired::from_object(body, d.origin).unwrap()
    }

    #[test]
    fn orders_dependencies_before_workloads_and_decorates() {
        let p = plan(
            input(
                vec![
                    obj("apps/v1", "Deployment", "api"),
                    obj("v1", "Service", "api"),
                    obj("rbac.authorization.k8s.io/v1", "RoleBinding", "rb"),
                    obj("v1", "ConfigMap", "cfg"),
                    obj("v1", "ServiceAccount", "api"),
                ],
                vec![],
            ),
            &scopes,
        )
        .unwrap();
        let kinds: Vec<&str> = p
            .applies
            .iter()
            .map(|d| d.key.group_kind.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ConfigMap",
                "RoleBinding",
                "Service",
                "Deployment"
            ]
        );
        let body = p.applies[0].body();
        let meta = &body["metadata"];
        assert_eq!(meta["namespace"], NS);
        assert_eq!(meta["labels"][APPLYSET_PART_OF_LABEL], SET);
        // Nothing that changes with a commit: the parent records which commit changed what.
        assert!(meta["annotations"].get(REVISION_ANNOTATION).is_none());
        assert!(p.prunes.is_empty());
    }

    #[test]
    fn refuses_cluster_scoped_and_foreign_namespace() {
        let foreign = with_namespace(obj("v1", "ConfigMap", "x"), "kube-system");
        let err = plan(
            input(
                vec![
                    obj("v1", "Namespace", "team-b"),
                    foreign,
                    obj("v1", "Service", "ok"),
                ],
                vec![],
            ),
            &scopes,
        )
        .unwrap_err();
        let PlanError::Refused(reasons) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(reasons.len(), 2);
        assert!(
            reasons[0].contains("Namespace/team-b (overlays/prod/team-b.yaml:1) is cluster-scoped"),
            "{err}"
        );
        assert!(
            reasons[1].contains("targets namespace kube-system"),
            "{err}"
        );
    }

    #[test]
    fn same_namespace_is_fine() {
        let cm = with_namespace(obj("v1", "ConfigMap", "x"), NS);
        assert!(plan(input(vec![cm], vec![]), &scopes).is_ok());
    }

    #[test]
    fn refuses_to_manage_the_parent() {
        let err = plan(
            input(vec![obj("v1", "ConfigMap", PARENT_NAME)], vec![]),
            &scopes,
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::Refused(_)));
    }

    #[test]
    fn unknown_kinds_and_duplicates_are_invalid() {
        let err = plan(
            input(
                vec![
                    obj("example.com/v1", "Widget", "w"),
                    obj("v1", "Service", "a"),
                    obj("v1", "Service", "a"),
                ],
                vec![],
            ),
            &scopes,
        )
        .unwrap_err();
        let PlanError::Invalid(reasons) = &err else {
            panic!("{err:?}")
        };
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("no API resource for Widget.example.com")),
            "{err}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("Service/a") && r.contains("more than once")),
            "{err}"
        );
    }

    #[test]
    fn prunes_members_no_longer_rendered_in_reverse_order() {
        let p = plan(
            input(
                vec![obj("v1", "Service", "api")],
                vec![
                    member("v1", "Service", "api"),
                    member("v1", "ConfigMap", "old-cfg"),
                    member("apps/v1", "Deployment", "old"),
                ],
            ),
            &scopes,
        )
        .unwrap();
        let pruned: Vec<String> = p.prunes.iter().map(|m| m.key.to_string()).collect();
        assert_eq!(pruned, ["Deployment.apps/old", "ConfigMap/old-cfg"]);
        assert_eq!(
            p.group_kinds,
            BTreeSet::from([GroupKind::new("", "Service")])
        );
    }

    /// Issue #14: a PersistentVolumeClaim dropped from Git was deleted with its data.
    #[test]
    fn persistent_volume_claims_are_pruned_only_when_they_opt_in() {
        let mut opted_in = member("v1", "PersistentVolumeClaim", "scratch");
        opted_in
            .annotations
            .insert(PRUNE_ANNOTATION.into(), PRUNE_ENABLED.into());
        let p = plan(
            input(
                vec![obj("v1", "Service", "api")],
                vec![member("v1", "PersistentVolumeClaim", "data"), opted_in],
            ),
            &scopes,
        )
        .unwrap();
        let pruned: Vec<String> = p.prunes.iter().map(|m| m.key.to_string()).collect();
        assert_eq!(pruned, ["PersistentVolumeClaim/scratch"]);
        assert_eq!(p.prune_skipped.len(), 1);
        assert_eq!(p.prune_skipped[0].name, "data");
        assert!(p.prune_skipped[0].reason.contains("prune=enabled"));
    }

    #[test]
    fn never_prunes_objects_of_another_set() {
        let mut other = member("v1", "Service", "theirs");
        other
            .labels
            .insert(APPLYSET_PART_OF_LABEL.into(), "applyset-other-v1".into());
        let mut unlabelled = member("v1", "Service", "nodeport");
        unlabelled.labels.clear();
        let p = plan(
            input(vec![obj("v1", "Service", "api")], vec![other, unlabelled]),
            &scopes,
        )
        .unwrap();
        assert!(p.prunes.is_empty());
        assert!(p.prune_skipped.is_empty());
    }

    #[test]
    fn opt_out_annotation_and_no_prune_are_reported() {
        let mut keep = member("v1", "ConfigMap", "keep");
        keep.annotations
            .insert(PRUNE_ANNOTATION.into(), PRUNE_DISABLED.into());
        let p = plan(
            input(vec![obj("v1", "Service", "api")], vec![keep.clone()]),
            &scopes,
        )
        .unwrap();
        assert!(p.prunes.is_empty());
        assert_eq!(p.prune_skipped[0].name, "keep");
        assert!(p.prune_skipped[0].reason.contains(PRUNE_ANNOTATION));
        assert!(
            p.group_kinds.contains(&GroupKind::new("", "ConfigMap")),
            "a kept member stays in the set"
        );

        let mut no_prune = input(
            vec![obj("v1", "Service", "api")],
            vec![member("v1", "Secret", "s")],
        );
        no_prune.prune = false;
        let p = plan(no_prune, &scopes).unwrap();
        assert!(p.prunes.is_empty());
        assert_eq!(p.prune_skipped[0].reason, "--no-prune");
    }

    #[test]
    fn empty_render_never_prunes_unless_allowed() {
        let err = plan(input(vec![], vec![member("v1", "Service", "api")]), &scopes).unwrap_err();
        assert_eq!(err, PlanError::EmptyRender);
        let mut allowed = input(vec![], vec![member("v1", "Service", "api")]);
        allowed.allow_empty = true;
        assert_eq!(plan(allowed, &scopes).unwrap().prunes.len(), 1);
    }

    #[test]
    fn missing_identity_names_the_file() {
        let err = Desired::from_object(json!({"kind": "Service"}), Some("base/svc.yaml:3".into()))
            .unwrap_err();
        assert!(err.starts_with("base/svc.yaml:3:"), "{err}");
    }
}
