//! Server-side apply field ownership: `metadata.managedFields[].fieldsV1` decoded into paths, and
//! which manager owns a field of a live object.
//!
//! The encoding (sigs.k8s.io/structured-merge-diff `fieldpath`): each key of a nested object is
//! one path element — `f:<name>` a field, `k:<json object>` the list item with those key fields,
//! `v:<json>` the set item with that value, `i:<n>` the item at an index — and `.` marks the
//! node itself as owned. A leaf `{}` is owned too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pointer;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldsError {
    #[error("fieldsV1 at {at}: {key:?} is not an f:, k:, v: or i: element")]
    BadElement { at: String, key: String },
    #[error("fieldsV1 at {at}: {key:?} holds invalid JSON: {reason}")]
    BadJson {
        at: String,
        key: String,
        reason: String,
    },
    #[error("fieldsV1 at {at}: expected an object")]
    NotAnObject { at: String },
    #[error("metadata.managedFields[{index}]: {reason}")]
    BadEntry { index: usize, reason: String },
}

/// One step of a field path. Values are kept as canonical JSON text so paths are ordered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    Field(String),
    /// An associative-list item, by its key fields (sorted by name).
    Key(Vec<(String, String)>),
    /// A set-list item, by value.
    Value(String),
    Index(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(pub Vec<PathElement>);

impl fmt::Display for FieldPath {
    /// `.spec.template.spec.containers[name="app"].image`, as Kubernetes prints paths.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for el in &self.0 {
            match el {
                PathElement::Field(name) => write!(f, ".{name}")?,
                PathElement::Key(kv) => {
                    let parts: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    write!(f, "[{}]", parts.join(","))?;
                }
                PathElement::Value(v) => write!(f, "[={v}]")?,
                PathElement::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

impl FieldPath {
    /// The concrete JSON pointer of this path in `obj`, if every step exists there.
    pub fn resolve(&self, obj: &Value) -> Option<String> {
        let mut cur = obj;
        let mut segs = Vec::with_capacity(self.0.len());
        for el in &self.0 {
            let (seg, next) = match (el, cur) {
                (PathElement::Field(name), Value::Object(map)) => (name.clone(), map.get(name)?),
                (PathElement::Index(i), Value::Array(items)) => (i.to_string(), items.get(*i)?),
                (PathElement::Key(kv), Value::Array(items)) => {
                    let wanted: Vec<(&str, Value)> = kv
                        .iter()
                        .map(|(k, v)| Some((k.as_str(), serde_json::from_str(v).ok()?)))
                        .collect::<Option<_>>()?;
                    let i = items
                        .iter()
                        .position(|item| wanted.iter().all(|(k, v)| item.get(*k) == Some(v)))?;
                    (i.to_string(), &items[i])
                }
                (PathElement::Value(v), Value::Array(items)) => {
                    let wanted: Value = serde_json::from_str(v).ok()?;
                    let i = items.iter().position(|item| *item == wanted)?;
                    (i.to_string(), &items[i])
                }
                _ => return None,
            };
            segs.push(seg);
            cur = next;
        }
        Some(pointer::join(&segs))
    }

    /// The path with list items collapsed to `*`, e.g. `/spec/containers/*/ports`: the shape
    /// [`FieldSet::list_kinds`] is keyed by.
    fn schema_pointer(elements: &[PathElement]) -> String {
        let segs: Vec<&str> = elements
            .iter()
            .map(|el| match el {
                PathElement::Field(name) => name.as_str(),
                _ => "*",
            })
            .collect();
        pointer::join(&segs)
    }
}

/// How the API server merges a list, as learnt from the `k:`/`v:` elements under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// Items are matched by these key fields.
    Map(Vec<String>),
    /// Items are matched by value.
    Set,
}

/// A set of owned field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<FieldPath>,
}

impl FieldSet {
    /// Decodes a `fieldsV1` object.
    pub fn from_fields_v1(fields: &Value) -> Result<Self, FieldsError> {
        let mut set = Self::default();
        decode(fields, &mut Vec::new(), &mut set.members)?;
        Ok(set)
    }

    pub fn contains(&self, path: &FieldPath) -> bool {
        self.members.contains(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldPath> {
        self.members.iter()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn union(&mut self, other: &FieldSet) {
        self.members.extend(other.members.iter().cloned());
    }

    /// Every member that exists in `obj`, as concrete JSON pointers.
    pub fn pointers(&self, obj: &Value) -> BTreeSet<String> {
        self.members.iter().filter_map(|p| p.resolve(obj)).collect()
    }

    /// For every list the set reaches into: how its items are identified, keyed by the list's
    /// schema pointer (items as `*`). This is the API server's own merge-key knowledge, so drift
    /// comparison needs no built-in schema.
    pub fn list_kinds(&self) -> BTreeMap<String, ListKind> {
        let mut out = BTreeMap::new();
        for path in &self.members {
            for (i, el) in path.0.iter().enumerate() {
                let kind = match el {
                    PathElement::Key(kv) => {
                        ListKind::Map(kv.iter().map(|(k, _)| k.clone()).collect())
                    }
                    PathElement::Value(_) => ListKind::Set,
                    _ => continue,
                };
                out.entry(FieldPath::schema_pointer(&path.0[..i]))
                    .or_insert(kind);
            }
        }
        out
    }
}

fn decode(
    node: &Value,
    at: &mut Vec<PathElement>,
    out: &mut BTreeSet<FieldPath>,
) -> Result<(), FieldsError> {
    let map = node.as_object().ok_or_else(|| FieldsError::NotAnObject {
        at: FieldPath(at.clone()).to_string(),
    })?;
    if !at.is_empty() && (map.is_empty() || map.contains_key(".")) {
        out.insert(FieldPath(at.clone()));
    }
    for (key, child) in map {
        if key == "." {
            continue;
        }
        at.push(parse_element(key, at)?);
        decode(child, at, out)?;
        at.pop();
    }
    Ok(())
}

fn parse_element(key: &str, at: &[PathElement]) -> Result<PathElement, FieldsError> {
    let where_ = || FieldPath(at.to_vec()).to_string();
    let json = |text: &str| -> Result<Value, FieldsError> {
        serde_json::from_str(text).map_err(|e| FieldsError::BadJson {
            at: where_(),
            key: key.to_string(),
            reason: e.to_string(),
        })
    };
    let (prefix, rest) = key.split_at(key.len().min(2));
    Ok(match prefix {
        "f:" => PathElement::Field(rest.to_string()),
        "v:" => PathElement::Value(json(rest)?.to_string()),
        "i:" => PathElement::Index(rest.parse().map_err(|_| FieldsError::BadElement {
            at: where_(),
            key: key.to_string(),
        })?),
        "k:" => match json(rest)? {
            Value::Object(kv) => {
                let mut kv: Vec<(String, String)> =
                    kv.into_iter().map(|(k, v)| (k, v.to_string())).collect();
                kv.sort();
                PathElement::Key(kv)
            }
            _ => {
                return Err(FieldsError::BadElement {
                    at: where_(),
                    key: key.to_string(),
                });
            }
        },
        _ => {
            return Err(FieldsError::BadElement {
                at: where_(),
                key: key.to_string(),
            });
        }
    })
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagerInfo {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub time: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ManagedFieldsEntry {
    pub info: ManagerInfo,
    pub fields: FieldSet,
}

/// The decoded `metadata.managedFields` of a live object.
#[derive(Debug, Clone, Default)]
pub struct ManagedFields {
    pub entries: Vec<ManagedFieldsEntry>,
}

impl ManagedFields {
    pub fn from_object(live: &Value) -> Result<Self, FieldsError> {
        let Some(list) = live["metadata"]["managedFields"].as_array() else {
            return Ok(Self::default());
        };
        let entries = list
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let info: ManagerInfo =
                    serde_json::from_value(entry.clone()).map_err(|e| FieldsError::BadEntry {
                        index,
                        reason: e.to_string(),
                    })?;
                let fields = match entry.get("fieldsV1") {
                    Some(f) => FieldSet::from_fields_v1(f)?,
                    None => FieldSet::default(),
                };
                Ok(ManagedFieldsEntry { info, fields })
            })
            .collect::<Result<_, FieldsError>>()?;
        Ok(Self { entries })
    }

    /// Everything `manager` owns through server-side apply on the main resource.
    pub fn applied_by(&self, manager: &str) -> FieldSet {
        let mut set = FieldSet::default();
        for e in &self.entries {
            if e.info.manager == manager
                && e.info.operation == "Apply"
                && e.info.subresource.is_empty()
            {
                set.union(&e.fields);
            }
        }
        set
    }

    /// The entries owning the field at concrete `pointer` of `live` (e.g. `/spec/replicas`):
    /// what `explain` prints. Several managers may share a field they applied with equal values.
    pub fn owners(&self, live: &Value, pointer: &str) -> Vec<&ManagerInfo> {
        self.entries
            .iter()
            .filter(|e| {
                e.fields
                    .iter()
                    .any(|p| p.resolve(live).as_deref() == Some(pointer))
            })
            .map(|e| &e.info)
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A Deployment as the API server returns it after `gitops-agent` applied it and an HPA
    /// controller (an Update) scaled it.
    pub(crate) fn live_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "shop", "generation": 4, "uid": "1c7e",
                "resourceVersion": "812", "creationTimestamp": "2026-11-26T10:00:00Z",
                "labels": {"app": "web"},
                "finalizers": ["example.com/keep"],
                "managedFields": [
                    {"manager": "gitops-agent", "operation": "Apply", "apiVersion": "apps/v1",
                     "time": "2026-11-26T10:00:00Z", "fieldsType": "FieldsV1",
                     "fieldsV1": {
                        "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"example.com/keep\"": {}}},
                        "f:spec": {"f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {},
                                "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}
                        }}}}
                     }},
                    {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
                     "time": "2026-11-26T10:05:00Z", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
                     "subresource": "status", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:status": {"f:replicas": {}}}}
                ]
            },
            "spec": {"replicas": 5, "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "mesh:1"},
                {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent",
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}]}
            ]}}},
            "status": {"replicas": 5}
        })
    }

    #[test]
    fn decodes_fields_keys_values_and_dot() {
        let live = live_deployment();
        let mf = ManagedFields::from_object(&live).unwrap();
        let agent = mf.applied_by("gitops-agent");
        let printed: Vec<String> = agent.iter().map(ToString::to_string).collect();
        assert!(
            printed.contains(&".metadata.labels.app".to_string()),
            "{printed:?}"
        );
        assert!(printed.contains(&".metadata.finalizers[=\"example.com/keep\"]".to_string()));
        assert!(printed.contains(&".spec.template.spec.containers[name=\"app\"]".to_string()));
        assert!(printed.contains(
            &".spec.template.spec.containers[name=\"app\"].ports[containerPort=8080,protocol=\"TCP\"].containerPort"
                .to_string()
        ));
        // Intermediate nodes without "." are not owned themselves.
        assert!(!printed.contains(&".spec.template".to_string()));
    }

    #[test]
    fn resolves_keys_against_the_live_order() {
        let live = live_deployment();
        let agent = ManagedFields::from_object(&live)
            .unwrap()
            .applied_by("gitops-agent");
        let pointers = agent.pointers(&live);
        // "app" is the second container live: the sidecar was injected in front of it.
        assert!(
            pointers.contains("/spec/template/spec/containers/1/image"),
            "{pointers:?}"
        );
        assert!(pointers.contains("/spec/template/spec/containers/1/ports/0/containerPort"));
        assert!(pointers.contains("/metadata/finalizers/0"));
    }

    #[test]
    fn owners_name_the_manager_of_replicas() {
        let live = live_deployment();
        let mf = ManagedFields::from_object(&live).unwrap();
        let owners: Vec<&str> = mf
            .owners(&live, "/spec/replicas")
            .iter()
            .map(|o| o.manager.as_str())
            .collect();
        assert_eq!(owners, ["kube-controller-manager"]);
        let img = mf.owners(&live, "/spec/template/spec/containers/1/image");
        assert_eq!(img.len(), 1);
        assert_eq!(img[0].manager, "gitops-agent");
        assert_eq!(img[0].operation, "Apply");
        assert!(
            mf.owners(&live, "/spec/template/spec/containers/0/image")
                .is_empty()
        );
    }

    #[test]
    fn list_kinds_come_from_key_elements() {
        let agent = ManagedFields::from_object(&live_deployment())
            .unwrap()
            .applied_by("gitops-agent");
        let kinds = agent.list_kinds();
        assert_eq!(
            kinds["/spec/template/spec/containers"],
            ListKind::Map(vec!["name".into()])
        );
        assert_eq!(
            kinds["/spec/template/spec/containers/*/ports"],
            ListKind::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(kinds["/metadata/finalizers"], ListKind::Set);
    }

    #[test]
    fn malformed_fields_v1_names_the_place() {
        let err = FieldSet::from_fields_v1(&json!({"f:spec": {"x:bad": {}}})).unwrap_err();
        assert_eq!(
            err,
            FieldsError::BadElement {
                at: ".spec".into(),
                key: "x:bad".into()
            }
        );
        let err = FieldSet::from_fields_v1(&json!({"f:spec": {"k:{nope": {}}})).unwrap_err();
        assert!(err.to_string().contains("k:{nope"), "{err}");
        assert!(FieldSet::from_fields_v1(&json!({"f:a": {"i:2": {}}})).is_ok());
    }
}
