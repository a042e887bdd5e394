//! Offline schema validation: built-in kinds against the Kubernetes 1.36 OpenAPI schema (as
//! k8s-openapi publishes it), custom resources against the `openAPIV3Schema` of CRDs found in
//! the repository. One validator for both, with the API server's structural rules: unknown
//! fields are errors unless the schema leaves the object open, `null` means "not set".

mod builtin;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use renderer::RenderedObject;
use renderer::provenance::{element_segment, push_key, push_segment};
use serde_json::{Map, Value};

use crate::finding::{Finding, describe};
use crate::rules::{SCHEMA_REQUIRED, SCHEMA_TYPE, SCHEMA_UNKNOWN_FIELD, SCHEMA_UNKNOWN_KIND};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/// Deeper than any real object; a bound for hostile input.
const MAX_DEPTH: usize = 64;

struct Builtin {
    kinds: HashMap<(&'static str, &'static str), Value>,
    defs: Map<String, Value>,
}

fn builtin() -> &'static Builtin {
    static BUILTIN: OnceLock<Builtin> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        let mut generator = k8s_openapi::schemars::SchemaGenerator::default();
        let kinds = builtin::all(&mut generator)
            .into_iter()
            .map(|(api, kind, schema)| ((api, kind), schema))
            .collect();
        let mut defs = generator.definitions().clone();
        for def in defs.values_mut() {
            strip_descriptions(def);
        }
        Builtin { kinds, defs }
    })
}

/// Descriptions are most of the schema's size and never read. (`properties` maps field
/// names to schemas: a field may be called `description`, e.g. PriorityClass's.)
fn strip_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("description");
            for (k, v) in map.iter_mut() {
                match (k.as_str(), v) {
                    ("properties", Value::Object(props)) => {
                        props.values_mut().for_each(strip_descriptions)
                    }
                    (_, v) => strip_descriptions(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// Whether the Kubernetes 1.36 API has this kind.
pub fn is_builtin(api_version: &str, kind: &str) -> bool {
    builtin().kinds.contains_key(&(api_version, kind))
}

/// Custom resource schemas, keyed by (apiVersion, kind).
#[derive(Debug, Default, Clone)]
pub struct Crds {
    schemas: HashMap<(String, String), Value>,
    cluster_scoped: HashSet<(String, String)>,
}

impl Crds {
    /// Adds every served version of a CustomResourceDefinition object (others are ignored).
    pub fn add(&mut self, obj: &Value) {
        if obj["kind"] != "CustomResourceDefinition"
            || !obj["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("apiextensions.k8s.io/"))
        {
            return;
        }
        let (Some(group), Some(kind)) = (
            obj["spec"]["group"].as_str(),
            obj["spec"]["names"]["kind"].as_str(),
        ) else {
            return;
        };
        for version in obj["spec"]["versions"].as_array().into_iter().flatten() {
            let Some(name) = version["name"].as_str() else {
                continue;
            };
            let schema = version["schema"]["openAPIV3Schema"].clone();
            // A version without a schema accepts anything.
            let schema = if schema.is_null() {
                serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
            } else {
                schema
            };
            let key = (format!("{group}/{name}"), kind.to_string());
            if obj["spec"]["scope"] == "Cluster" {
                self.cluster_scoped.insert(key.clone());
            }
            self.schemas.insert(key, schema);
        }
    }

    pub fn is_cluster_scoped(&self, api_version: &str, kind: &str) -> bool {
        self.cluster_scoped
            .contains(&(api_version.to_string(), kind.to_string()))
    }

    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a RenderedObject>) -> Self {
        let mut crds = Crds::default();
        for o in objects {
            crds.add(&o.value);
        }
        crds
    }
}

/// Validates one rendered object; findings point at the source lines through provenance.
pub fn check(object: &RenderedObject, crds: &Crds, out: &mut Vec<Finding>) {
    let value = &object.value;
    // A SOPS-encrypted file is decrypted before it is applied; its ciphertext has no schema.
    if value.get("sops").is_some() {
        return;
    }
    let api = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    let b = builtin();
    let mut issues = Vec::new();
    let mut v = Validator {
        defs: &b.defs,
        issues: &mut issues,
    };
    if let Some(schema) = b.kinds.get(&(api, kind)) {
        v.check(value, schema, &mut String::new(), 0);
    } else if let Some(schema) = crds.schemas.get(&(api.to_string(), kind.to_string())) {
        let mut rest = value.clone();
        if let Some(map) = rest.as_object_mut() {
            for k in ["apiVersion", "kind", "metadata"] {
                map.remove(k);
            }
        }
        v.check(&rest, schema, &mut String::new(), 0);
        let meta = serde_json::json!({"$ref": format!("#/$defs/{OBJECT_META}")});
        v.check(&value["metadata"], &meta, &mut "metadata".to_string(), 1);
    } else {
        out.push(Finding::at_field(
            SCHEMA_UNKNOWN_KIND,
            object,
            "kind",
            format!(
                "{} {kind}: no such kind in Kubernetes 1.36 and no CustomResourceDefinition for it in the repository",
                if api.is_empty() { "(no apiVersion)" } else { api }
            ),
        ));
        return;
    }
    let name = describe(value);
    for issue in issues {
        out.push(Finding::at_field(
            issue.rule,
            object,
            &issue.path,
            format!("{name}: {}", issue.message),
        ));
    }
}

/// Follows `$ref`s into the definitions.
fn resolve<'x>(defs: &'x Map<String, Value>, mut schema: &'x Value) -> &'x Value {
    for _ in 0..MAX_DEPTH {
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let name = r.rsplit('/').next().unwrap_or(r);
        match defs.get(name) {
            Some(s) => schema = s,
            None => break,
        }
    }
    schema
}

struct Issue {
    rule: &'static str,
    /// Provenance path of the field (or of the object missing a field).
    path: String,
    message: String,
}

struct Validator<'a> {
    defs: &'a Map<String, Value>,
    issues: &'a mut Vec<Issue>,
}

impl Validator<'_> {
    fn push(&mut self, rule: &'static str, path: &str, message: String) {
        self.issues.push(Issue {
            rule,
            path: path.to_string(),
            message,
        });
    }

    fn check(&mut self, value: &Value, schema: &Value, path: &mut String, depth: usize) {
        if value.is_null() || depth > MAX_DEPTH {
            return;
        }
        let schema = resolve(self.defs, schema);
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(value, part, path, depth + 1);
        }
        let flag = |k: &str| schema.get(k).and_then(Value::as_bool).unwrap_or(false);
        if flag("x-kubernetes-int-or-string") {
            if !(value.is_string() || value.is_number()) {
                let message = format!(
                    "{} must be an integer or a string, not {}",
                    shown(path),
                    type_name(value)
                );
                self.push(SCHEMA_TYPE, path, message);
            }
            return;
        }
        let ty = schema.get("type").and_then(Value::as_str).or_else(|| {
            (schema.get("properties").is_some() || schema.get("additionalProperties").is_some())
                .then_some("object")
        });
        let Some(ty) = ty else { return };
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            let message = format!(
                "{} must be {} {ty}, not {}",
                shown(path),
                if ty == "integer" || ty == "object" || ty == "array" {
                    "an"
                } else {
                    "a"
                },
                type_name(value)
            );
            self.push(SCHEMA_TYPE, path, message);
            return;
        }
        match value {
            Value::Object(map) => self.check_object(map, schema, path, depth),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for i in 0..items.len() {
                        let len = path.len();
                        push_segment(path, &element_segment(items, i));
                        self.check(&items[i], item_schema, path, depth + 1);
                        path.truncate(len);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_object(
        &mut self,
        map: &Map<String, Value>,
        schema: &Value,
        path: &mut String,
        depth: usize,
    ) {
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let open = props.is_none()
            || schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            || additional.is_some_and(|a| a.as_bool() == Some(true));
        for (key, child) in map {
            let len = path.len();
            push_key(path, key, false);
            match props.and_then(|p| p.get(key)) {
                Some(s) => self.check(child, s, path, depth + 1),
                None => match additional.filter(|a| a.is_object()) {
                    Some(s) => self.check(child, s, path, depth + 1),
                    None if open => {}
                    None => {
                        let message = format!("unknown field {:?}", path.as_str());
                        self.push(SCHEMA_UNKNOWN_FIELD, path, message);
                    }
                },
            }
            path.truncate(len);
        }
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if map.get(required).is_none_or(Value::is_null) {
                let mut field = path.clone();
                push_key(&mut field, required, false);
                let message = format!("missing required field {field:?}");
                self.push(SCHEMA_REQUIRED, path, message);
            }
        }
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "the object" } else { path }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests;
