//! Kustomize's built-in transformer field specs (internal/konfig/builtinpluginconsts of
//! kustomize v5.5.0), generated into `fieldspecs_table.rs` by `schema-gen/gen_fieldspecs.py`.
//!
//! Kept verbatim, quirks included: e.g. the IngressClass back-reference carries the group
//! `networking.k8s.io/v1`, which matches no object, so kustomize never renames
//! `ingressClassName`; we must not either.

use std::sync::OnceLock;

use serde_json::Value;

use super::fieldspecs_table::{NAME_REFS, SPECS, Spec};

/// Group, version and kind; an empty part matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn from_api_version(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    /// kustomize `Gvk.IsSelected`: every non-empty part of `selector` must equal ours.
    pub fn is_selected_by(&self, selector: &Gvk) -> bool {
        (selector.group.is_empty() || selector.group == self.group)
            && (selector.version.is_empty() || selector.version == self.version)
            && (selector.kind.is_empty() || selector.kind == self.kind)
    }
}

/// A path a transformer touches in objects of matching group/version/kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    /// `/`-separated; a `[]` suffix marks a list (lists are walked either way).
    pub path: String,
    /// Whether the transformer creates the field when missing.
    pub create: bool,
}

impl FieldSpec {
    pub fn gvk(&self) -> Gvk {
        let s = |o: &Option<String>| o.clone().unwrap_or_default();
        Gvk {
            group: s(&self.group),
            version: s(&self.version),
            kind: s(&self.kind),
        }
    }

    /// Whether the spec applies to an object of this apiVersion and kind.
    pub fn applies_to(&self, api_version: &str, kind: &str) -> bool {
        Gvk::from_api_version(api_version, kind).is_selected_by(&self.gvk())
    }

    /// Parses one entry of a `configurations` file (`{path, create, group, version, kind}`).
    pub fn from_value(v: &Value) -> Option<FieldSpec> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        Some(FieldSpec {
            group: s("group"),
            version: s("version"),
            kind: s("kind"),
            path: s("path")?,
            create: v.get("create").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    fn from_tuple(t: &Spec) -> FieldSpec {
        let o = |s: &str| (!s.is_empty()).then(|| s.to_string());
        FieldSpec {
            group: o(t.0),
            version: o(t.1),
            kind: o(t.2),
            path: t.3.into(),
            create: t.4,
        }
    }
}

/// A kind whose renames propagate, and the fields (in other objects) that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameBackRef {
    pub gvk: Gvk,
    pub referrers: Vec<FieldSpec>,
}

/// Every built-in transformer's field specs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSpecs {
    pub common_labels: Vec<FieldSpec>,
    /// `labels[].includeTemplates` (and `commonLabels`' template part).
    pub template_labels: Vec<FieldSpec>,
    pub common_annotations: Vec<FieldSpec>,
    pub name_prefix: Vec<FieldSpec>,
    pub name_suffix: Vec<FieldSpec>,
    pub namespace: Vec<FieldSpec>,
    pub images: Vec<FieldSpec>,
    pub replicas: Vec<FieldSpec>,
    pub var_reference: Vec<FieldSpec>,
    pub name_reference: Vec<NameBackRef>,
}

/// The defaults `kubectl kustomize` uses.
pub fn builtin_field_specs() -> &'static FieldSpecs {
    static SPECS_ONCE: OnceLock<FieldSpecs> = OnceLock::new();
    SPECS_ONCE.get_or_init(|| {
        let mut fs = FieldSpecs::default();
        for (name, specs) in SPECS {
            if let Some(list) = fs.list_mut(name) {
                list.extend(specs.iter().map(FieldSpec::from_tuple));
            }
        }
        fs.name_reference = NAME_REFS
            .iter()
            .map(|(g, v, k, refs)| NameBackRef {
                gvk: Gvk {
                    group: g.to_string(),
                    version: v.to_string(),
                    kind: k.to_string(),
                },
                referrers: refs.iter().map(FieldSpec::from_tuple).collect(),
            })
            .collect();
        fs
    })
}

impl FieldSpecs {
    fn list_mut(&mut self, name: &str) -> Option<&mut Vec<FieldSpec>> {
        Some(match name {
            "commonLabels" => &mut self.common_labels,
            "templateLabels" => &mut self.template_labels,
            "commonAnnotations" => &mut self.common_annotations,
            "namePrefix" => &mut self.name_prefix,
            "nameSuffix" => &mut self.name_suffix,
            "namespace" => &mut self.namespace,
            "images" => &mut self.images,
            "replicas" => &mut self.replicas,
            "varReference" => &mut self.var_reference,
            _ => return None,
        })
    }

    /// Adds a `configurations` file (already parsed) the way kustomize merges transformer
    /// configs: specs are appended unless already present; back-references to the same kind
    /// are combined.
    pub fn merge_config(&mut self, config: &Value) {
        let Some(obj) = config.as_object() else {
            return;
        };
        for (name, list) in obj {
            let Some(list) = list.as_array() else {
                continue;
            };
            if name == "nameReference" {
                for b in list {
                    self.merge_back_ref(b);
                }
                continue;
            }
            if let Some(target) = self.list_mut(name) {
                for spec in list.iter().filter_map(FieldSpec::from_value) {
                    if !target.contains(&spec) {
                        target.push(spec);
                    }
                }
            }
        }
    }

    fn merge_back_ref(&mut self, b: &Value) {
        let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let gvk = Gvk {
            group: s("group"),
            version: s("version"),
            kind: s("kind"),
        };
        let refs: Vec<FieldSpec> = b
            .get("fieldSpecs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(FieldSpec::from_value)
            .collect();
        match self.name_reference.iter_mut().find(|r| r.gvk == gvk) {
            Some(existing) => {
                for r in refs {
                    if !existing.referrers.contains(&r) {
                        existing.referrers.push(r);
                    }
                }
            }
            None => self.name_reference.push(NameBackRef {
                gvk,
                referrers: refs,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_tables_are_loaded() {
        let fs = builtin_field_specs();
        assert!(
            fs.common_labels
                .iter()
                .any(|s| s.path == "spec/selector/matchLabels"
                    && s.kind.as_deref() == Some("Deployment")
                    && s.create)
        );
        assert_eq!(
            fs.name_prefix,
            vec![FieldSpec::from_value(&json!({"path": "metadata/name"})).unwrap()]
        );
        assert!(
            fs.namespace
                .iter()
                .any(|s| s.path == "metadata/name" && s.kind.as_deref() == Some("Namespace"))
        );
        let cm = fs
            .name_reference
            .iter()
            .find(|b| b.gvk.kind == "ConfigMap")
            .unwrap();
        assert!(
            cm.referrers
                .iter()
                .any(|s| s.path == "spec/template/spec/volumes/configMap/name"
                    && s.kind.as_deref() == Some("Deployment"))
        );
        assert!(!fs.images.is_empty() && !fs.replicas.is_empty());
    }

    #[test]
    fn gvk_selection() {
        let spec =
            FieldSpec::from_value(&json!({"path": "x", "group": "apps", "kind": "Deployment"}));
        let spec = spec.unwrap();
        assert!(spec.applies_to("apps/v1", "Deployment"));
        assert!(!spec.applies_to("extensions/v1beta1", "Deployment"));
        assert!(!spec.applies_to("apps/v1", "StatefulSet"));
    }

    #[test]
    fn merge_configurations() {
        let mut fs = builtin_field_specs().clone();
        let before = fs.common_labels.len();
        fs.merge_config(&json!({
            "commonLabels": [{"path": "spec/labels", "kind": "Foo", "create": true}],
            "nameReference": [
                {"kind": "ConfigMap", "version": "v1", "fieldSpecs": [{"path": "spec/cm", "kind": "Foo"}]},
                {"kind": "Bar", "fieldSpecs": [{"path": "spec/bar", "kind": "Foo"}]}
            ]
        }));
        assert_eq!(fs.common_labels.len(), before + 1);
        let cm = fs
            .name_reference
            .iter()
            .find(|b| b.gvk.kind == "ConfigMap")
            .unwrap();
        assert!(cm.referrers.iter().any(|s| s.path == "spec/cm"));
        assert!(fs.name_reference.iter().any(|b| b.gvk.kind == "Bar"));
    }
}
