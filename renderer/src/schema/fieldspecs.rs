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
    /// configs; a conflicting spec is skipped (see [`FieldSpecs::try_merge_config`]).
    pub fn merge_config(&mut self, config: &Value) {
        let _ = self.try_merge_config(config);
    }

    /// kustomize `TransformerConfig.Merge`: a spec whose path equals an existing one that its
    /// group/version/kind selects is already present (an error if `create` differs);
    /// back-references to the same kind are combined.
    pub fn try_merge_config(&mut self, config: &Value) -> Result<(), String> {
        let Some(obj) = config.as_object() else {
            return Ok(());
        };
        let mut result = Ok(());
        for (name, list) in obj {
            let Some(list) = list.as_array() else {
                continue;
            };
            if name == "nameReference" {
                for b in list {
                    if let Err(e) = self.merge_back_ref(b) {
                        result = Err(e);
                    }
                }
                continue;
            }
            if let Some(target) = self.list_mut(name) {
                for spec in list.iter().filter_map(FieldSpec::from_value) {
                    if let Err(e) = merge_one(target, spec) {
                        result = Err(format!("failed to merge {name} fieldSpec: {e}"));
                    }
                }
            }
        }
        result
    }

    /// Adds what kustomize derives from a kustomization's `crds:` file (a map of type name to
    /// `{"Schema": <OpenAPI schema>}`): for every type that has apiVersion, kind and metadata,
    /// properties marked `x-kubernetes-annotation`, `x-kubernetes-label-selector` and
    /// `x-kubernetes-identity` become commonAnnotations, commonLabels and namePrefix specs,
    /// and `x-kubernetes-object-ref-{api-version,kind[,name-key]}` become name references.
    /// Specs carry only the kind (the last `.`-separated part of the type name).
    pub fn merge_crds(&mut self, doc: &Value) {
        let Some(types) = doc.as_object() else { return };
        for (name, def) in types {
            let props = crd_props(def);
            if !["kind", "apiVersion", "metadata"]
                .iter()
                .all(|k| props.is_some_and(|p| p.contains_key(*k)))
            {
                continue;
            }
            let kind = name.rsplit('.').next().unwrap_or(name).to_string();
            self.load_crd_type(types, name, &kind, &mut Vec::new(), 0);
        }
    }

    fn load_crd_type(
        &mut self,
        types: &serde_json::Map<String, Value>,
        type_name: &str,
        kind: &str,
        path: &mut Vec<String>,
        depth: usize,
    ) {
        // A self-referencing schema would recurse forever; kustomize has no guard, we stop.
        if depth > 32 {
            return;
        }
        let Some(props) = types.get(type_name).and_then(crd_props) else {
            return;
        };
        for (prop, schema) in props {
            path.push(prop.clone());
            let spec = |path: &[String]| FieldSpec {
                group: None,
                version: None,
                kind: Some(kind.to_string()),
                path: path.join("/"),
                create: false,
            };
            let ext = |k: &str| schema.get(k).and_then(Value::as_str);
            let add = |list: &mut Vec<FieldSpec>, s: FieldSpec| {
                if !list.contains(&s) {
                    list.push(s);
                }
            };
            if ext("x-kubernetes-annotation").is_some() {
                add(&mut self.common_annotations, spec(path));
            }
            if ext("x-kubernetes-label-selector").is_some() {
                add(&mut self.common_labels, spec(path));
            }
            if ext("x-kubernetes-identity").is_some() {
                add(&mut self.name_prefix, spec(path));
            }
            if let (Some(version), Some(ref_kind)) = (
                ext("x-kubernetes-object-ref-api-version"),
                ext("x-kubernetes-object-ref-kind"),
            ) {
                let key = ext("x-kubernetes-object-ref-name-key").unwrap_or("name");
                let mut p = path.clone();
                p.push(key.to_string());
                let gvk = Gvk {
                    group: String::new(),
                    version: version.into(),
                    kind: ref_kind.into(),
                };
                let referrer = spec(&p);
                match self.name_reference.iter_mut().find(|b| b.gvk == gvk) {
                    Some(b) => add(&mut b.referrers, referrer),
                    None => self.name_reference.push(NameBackRef {
                        gvk,
                        referrers: vec![referrer],
                    }),
                }
            }
            if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
                self.load_crd_type(types, r, kind, path, depth + 1);
            }
            path.pop();
        }
    }

    fn merge_back_ref(&mut self, b: &Value) -> Result<(), String> {
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
                    merge_one(&mut existing.referrers, r)?;
                }
            }
            None => self.name_reference.push(NameBackRef {
                gvk,
                referrers: refs,
            }),
        }
        Ok(())
    }
}

/// kustomize `FsSlice.MergeOne`.
fn merge_one(list: &mut Vec<FieldSpec>, x: FieldSpec) -> Result<(), String> {
    match list
        .iter()
        .find(|s| s.path == x.path && s.gvk().is_selected_by(&x.gvk()))
    {
        Some(s) if s.create != x.create => Err(format!("conflicting fieldspecs for {}", x.path)),
        Some(_) => Ok(()),
        None => {
            list.push(x);
            Ok(())
        }
    }
}

/// `Schema.properties` of one entry of a `crds:` file (Go decodes `Schema` case-insensitively).
fn crd_props(def: &Value) -> Option<&serde_json::Map<String, Value>> {
    let obj = def.as_object()?;
    let schema = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schema"))?
        .1;
    schema.get("properties")?.as_object()
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

    /// Mirrors a `kubectl kustomize` run with `crds: [crd.json]`: the Bee's secretRef.name,
    /// cmName.id, selector and notes are all updated.
    #[test]
    fn crds_file_adds_specs() {
        let mut fs = builtin_field_specs().clone();
        fs.merge_crds(&json!({
            "example.com/pkg/apis/v1.Bee": {"Schema": {"properties": {
                "apiVersion": {}, "kind": {}, "metadata": {},
                "spec": {"$ref": "example.com/pkg/apis/v1.BeeSpec"}
            }}},
            "example.com/pkg/apis/v1.BeeSpec": {"Schema": {"properties": {
                "secretRef": {"x-kubernetes-object-ref-api-version": "v1", "x-kubernetes-object-ref-kind": "Secret"},
                "cmName": {"x-kubernetes-object-ref-api-version": "v1", "x-kubernetes-object-ref-kind": "ConfigMap",
                    "x-kubernetes-object-ref-name-key": "id"},
                "selector": {"x-kubernetes-label-selector": ""},
                "notes": {"x-kubernetes-annotation": ""}
            }}}
        }));
        let bee = |p: &str| FieldSpec {
            group: None,
            version: None,
            kind: Some("Bee".into()),
            path: p.into(),
            create: false,
        };
        let secret = fs
            .name_reference
            .iter()
            .find(|b| b.gvk.kind == "Secret" && b.gvk.group.is_empty())
            .unwrap();
        assert!(secret.referrers.contains(&bee("spec/secretRef/name")));
        let cm = fs
            .name_reference
            .iter()
            .find(|b| b.gvk.kind == "ConfigMap")
            .unwrap();
        assert!(cm.referrers.contains(&bee("spec/cmName/id")));
        assert!(fs.common_labels.contains(&bee("spec/selector")));
        assert!(fs.common_annotations.contains(&bee("spec/notes")));
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
        // A kind-less spec on a path the built-ins already cover is "already there"...
        let n = fs.common_labels.len();
        fs.merge_config(&json!({"commonLabels": [{"path": "spec/selector", "create": true}]}));
        assert_eq!(fs.common_labels.len(), n);
        // ...and differing only in `create` is a conflict.
        let e = fs.try_merge_config(&json!({"commonLabels": [{"path": "metadata/labels"}]}));
        assert!(e.is_err());
    }
}
