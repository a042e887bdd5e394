//! Field specs: which paths of which kinds a built-in transformer touches.
//!
//! A local copy of the parts of kustomize's `builtinpluginconsts` the engine needs until
//! `schema::fieldspecs` provides them.

use serde_json::{Map, Value};

use crate::provenance::{element_segment, push_key, push_segment};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    /// `/`-separated; a `[]` suffix marks a list (lists are walked either way).
    pub path: String,
    pub create: bool,
}

impl FieldSpec {
    pub fn new(path: &str, create: bool) -> Self {
        FieldSpec {
            group: None,
            version: None,
            kind: None,
            path: path.into(),
            create,
        }
    }
    fn gvk(
        group: Option<&str>,
        version: Option<&str>,
        kind: &str,
        path: &str,
        create: bool,
    ) -> Self {
        FieldSpec {
            group: group.map(Into::into),
            version: version.map(Into::into),
            kind: Some(kind.into()),
            path: path.into(),
            create,
        }
    }

    /// Whether the spec applies to an object of this apiVersion and kind.
    pub fn applies_to(&self, api_version: &str, kind: &str) -> bool {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.kind.as_deref().is_none_or(|k| k == kind)
            && self.group.as_deref().is_none_or(|g| g == group)
            && self.version.as_deref().is_none_or(|v| v == version)
    }

    /// Parses a field spec from a `configurations` file entry.
    pub fn from_value(v: &Value) -> Option<FieldSpec> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(FieldSpec {
            group: s("group"),
            version: s("version"),
            kind: s("kind"),
            path: s("path")?,
            create: v.get("create").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

const WORKLOADS: [(Option<&str>, Option<&str>, &str); 6] = [
    (None, Some("v1"), "ReplicationController"),
    (None, None, "Deployment"),
    (None, None, "ReplicaSet"),
    (None, None, "DaemonSet"),
    (Some("apps"), None, "StatefulSet"),
    (Some("batch"), None, "Job"),
];

/// `metadataLabelsFieldSpecs` plus CronJob templates: labels without selectors.
pub fn template_labels() -> Vec<FieldSpec> {
    let mut v = vec![];
    for (g, ver, k) in WORKLOADS {
        v.push(FieldSpec::gvk(
            g,
            ver,
            k,
            "spec/template/metadata/labels",
            true,
        ));
    }
    v.push(FieldSpec::gvk(
        Some("batch"),
        None,
        "CronJob",
        "spec/jobTemplate/metadata/labels",
        true,
    ));
    v.push(FieldSpec::gvk(
        Some("batch"),
        None,
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ));
    v.push(FieldSpec::gvk(
        Some("apps"),
        None,
        "StatefulSet",
        "spec/volumeClaimTemplates[]/metadata/labels",
        true,
    ));
    v
}

pub fn common_labels() -> Vec<FieldSpec> {
    let mut v = vec![FieldSpec::new("metadata/labels", true)];
    v.extend(template_labels());
    let aff = [
        "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
    ];
    v.push(FieldSpec::gvk(
        None,
        Some("v1"),
        "Service",
        "spec/selector",
        true,
    ));
    v.push(FieldSpec::gvk(
        None,
        Some("v1"),
        "ReplicationController",
        "spec/selector",
        true,
    ));
    v.push(FieldSpec::gvk(
        None,
        None,
        "Deployment",
        "spec/selector/matchLabels",
        true,
    ));
    for p in aff {
        v.push(FieldSpec::gvk(Some("apps"), None, "Deployment", p, false));
    }
    v.push(FieldSpec::gvk(
        None,
        None,
        "ReplicaSet",
        "spec/selector/matchLabels",
        true,
    ));
    v.push(FieldSpec::gvk(
        None,
        None,
        "DaemonSet",
        "spec/selector/matchLabels",
        true,
    ));
    v.push(FieldSpec::gvk(
        Some("apps"),
        None,
        "StatefulSet",
        "spec/selector/matchLabels",
        true,
    ));
    for p in aff {
        v.push(FieldSpec::gvk(Some("apps"), None, "StatefulSet", p, false));
    }
    v.push(FieldSpec::gvk(
        Some("batch"),
        None,
        "Job",
        "spec/selector/matchLabels",
        false,
    ));
    v.push(FieldSpec::gvk(
        Some("batch"),
        None,
        "CronJob",
        "spec/jobTemplate/spec/selector/matchLabels",
        false,
    ));
    v.push(FieldSpec::gvk(
        Some("policy"),
        None,
        "PodDisruptionBudget",
        "spec/selector/matchLabels",
        false,
    ));
    for p in [
        "spec/podSelector/matchLabels",
        "spec/ingress/from/podSelector/matchLabels",
        "spec/egress/to/podSelector/matchLabels",
    ] {
        v.push(FieldSpec::gvk(
            Some("networking.k8s.io"),
            None,
            "NetworkPolicy",
            p,
            false,
        ));
    }
    v
}

pub fn common_annotations() -> Vec<FieldSpec> {
    let mut v = vec![FieldSpec::new("metadata/annotations", true)];
    for (g, ver, k) in WORKLOADS {
        v.push(FieldSpec::gvk(
            g,
            ver,
            k,
            "spec/template/metadata/annotations",
            true,
        ));
    }
    v.push(FieldSpec::gvk(
        Some("batch"),
        None,
        "CronJob",
        "spec/jobTemplate/metadata/annotations",
        true,
    ));
    v.push(FieldSpec::gvk(
        Some("batch"),
        None,
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/annotations",
        true,
    ));
    v
}

pub fn replicas() -> Vec<FieldSpec> {
    [
        "Deployment",
        "ReplicationController",
        "ReplicaSet",
        "StatefulSet",
    ]
    .into_iter()
    .map(|k| FieldSpec::gvk(None, None, k, "spec/replicas", true))
    .collect()
}

/// The callback of [`visit`]: parent map, final key, field path text.
pub type Visitor<'a> = dyn FnMut(&mut Map<String, Value>, &str, &str) + 'a;

/// Calls `f(parent, key, field_path)` for each place `spec` addresses in `obj`, creating
/// missing maps on the way when the spec says `create`. `f` decides what to do with the
/// (possibly missing) final field.
pub fn visit(obj: &mut Value, spec: &FieldSpec, f: &mut Visitor<'_>) {
    let segs: Vec<&str> = spec.path.split('/').filter(|s| !s.is_empty()).collect();
    let mut path = String::new();
    step(obj, &segs, spec.create, &mut path, f);
}

fn step(node: &mut Value, segs: &[&str], create: bool, path: &mut String, f: &mut Visitor<'_>) {
    if let Value::Array(items) = node {
        let snapshot: Vec<_> = (0..items.len())
            .map(|i| element_segment(items, i))
            .collect();
        for (i, item) in items.iter_mut().enumerate() {
            let len = path.len();
            push_segment(path, &snapshot[i]);
            step(item, segs, create, path, f);
            path.truncate(len);
        }
        return;
    }
    let Some((&first, rest)) = segs.split_first() else {
        return;
    };
    let Value::Object(map) = node else { return };
    let key = first.strip_suffix("[]").unwrap_or(first);
    let len = path.len();
    if rest.is_empty() {
        push_key(path, key, path.is_empty());
        f(map, key, path);
        path.truncate(len);
        return;
    }
    if !map.contains_key(key) || map[key].is_null() {
        if !create {
            return;
        }
        let empty = if first.ends_with("[]") {
            Value::Array(vec![])
        } else {
            Value::Object(Map::new())
        };
        map.insert(key.to_string(), empty);
    }
    push_key(path, key, path.is_empty());
    if let Some(child) = map.get_mut(key) {
        step(child, rest, create, path, f);
    }
    path.truncate(len);
}
