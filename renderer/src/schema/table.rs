//! Type schemas as kustomize's kyaml `openapi.ResourceSchema` sees them: per field, the patch
//! strategy, merge keys and shape. Only what strategic merge consults is represented.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::k8s_table;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("openapi schema: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default)]
struct Node {
    strategy: String,
    keys: Vec<String>,
    shape: Shape,
}

#[derive(Debug, Clone, Default)]
enum Shape {
    #[default]
    Leaf,
    Type(usize),
    Array(Box<Node>),
    Map(Box<Node>),
}

#[derive(Debug, Default)]
struct TypeDef {
    /// Properties; `"*"` holds `additionalProperties`.
    fields: HashMap<String, Node>,
}

/// A set of type schemas, addressable by `(apiVersion, kind)`.
#[derive(Debug, Default)]
pub struct Schema {
    types: Vec<TypeDef>,
    /// apiVersion → kind → type index (nested so lookups need no allocation).
    kinds: HashMap<String, HashMap<String, usize>>,
}

/// A position in a [`Schema`]: the schema of one field, list or object.
#[derive(Debug, Clone, Copy)]
pub struct SchemaRef<'s> {
    schema: &'s Schema,
    node: NodeRef<'s>,
}

#[derive(Debug, Clone, Copy)]
enum NodeRef<'s> {
    Node(&'s Node),
    Type(usize),
}

const EMPTY: &[String] = &[];

impl Schema {
    /// The schema `kubectl kustomize` uses when the kustomization sets no `openapi` field.
    pub fn builtin() -> &'static Schema {
        static BUILTIN: OnceLock<Schema> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let types = k8s_table::TYPES
                .iter()
                .map(|(_, fields)| TypeDef {
                    fields: fields
                        .iter()
                        .map(|(n, enc)| (n.to_string(), decode(enc)))
                        .collect(),
                })
                .collect();
            let mut kinds: HashMap<String, HashMap<String, usize>> = HashMap::new();
            for (api, kind, i) in k8s_table::KINDS {
                kinds
                    .entry(api.to_string())
                    .or_default()
                    .insert(kind.to_string(), *i as usize);
            }
            Schema { types, kinds }
        })
    }

    /// Builds a schema from an OpenAPI v2 document (`{"definitions": {...}}`), as given by a
    /// kustomization's `openapi: {path: ...}`. Kustomize replaces the built-in schema with it.
    pub fn from_openapi(doc: &Value) -> Result<Schema, SchemaError> {
        let defs = doc
            .get("definitions")
            .and_then(Value::as_object)
            .ok_or_else(|| SchemaError::Invalid("no \"definitions\" object".into()))?;
        let index: HashMap<&str, usize> = defs
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        // Definitions keep their indexes; inline object schemas get types after them.
        let mut schema = Schema {
            types: defs.iter().map(|_| TypeDef::default()).collect(),
            ..Schema::default()
        };
        for (i, (name, def)) in defs.iter().enumerate() {
            schema.types[i] = type_def(def, &index, &mut schema.types);
            for gvk in def
                .get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let s = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("");
                let api = match s("group") {
                    "" => s("version").to_string(),
                    g => format!("{g}/{}", s("version")),
                };
                schema
                    .kinds
                    .entry(api)
                    .or_default()
                    .insert(s("kind").to_string(), i);
            }
            let _ = name;
        }
        Ok(schema)
    }

    /// The schema of a whole object of this type, if the type is known.
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Option<SchemaRef<'_>> {
        let i = *self.kinds.get(api_version)?.get(kind)?;
        Some(SchemaRef {
            schema: self,
            node: NodeRef::Type(i),
        })
    }

    /// Looks an object up by its own `apiVersion` and `kind`, as kyaml does for any map
    /// without a schema of its own.
    pub fn for_object(&self, obj: &Value) -> Option<SchemaRef<'_>> {
        let api = obj.get("apiVersion")?.as_str()?;
        let kind = obj.get("kind")?.as_str()?;
        if api.is_empty() || kind.is_empty() {
            return None;
        }
        self.for_kind(api, kind)
    }
}

/// Whether kustomize knows this type to be cluster-scoped (kyaml `IsCertainlyClusterScoped`
/// over the built-in schema). Unknown types, CRDs included, count as namespaced.
pub fn is_cluster_scoped(api_version: &str, kind: &str) -> bool {
    // The generated table is sorted by (apiVersion, kind).
    k8s_table::CLUSTER_SCOPED
        .binary_search_by(|(a, k)| (*a, *k).cmp(&(api_version, kind)))
        .is_ok()
}

/// kustomize `ResId.EffectiveNamespace`: `_non_namespaceable_` for cluster-scoped types,
/// `default` for an empty or `default` namespace, else the namespace.
pub fn effective_namespace<'a>(api_version: &str, kind: &str, namespace: &'a str) -> &'a str {
    if is_cluster_scoped(api_version, kind) {
        "_non_namespaceable_"
    } else if namespace.is_empty() || namespace == "default" {
        "default"
    } else {
        namespace
    }
}

impl<'s> SchemaRef<'s> {
    fn node(&self) -> Option<&'s Node> {
        match self.node {
            NodeRef::Node(n) => Some(n),
            NodeRef::Type(_) => None,
        }
    }

    fn type_index(&self) -> Option<usize> {
        match self.node {
            NodeRef::Type(i) => Some(i),
            NodeRef::Node(Node {
                shape: Shape::Type(i),
                ..
            }) => Some(*i),
            _ => None,
        }
    }

    /// `x-kubernetes-patch-strategy`, e.g. `"merge"` or `"merge,retainKeys"`; empty if none.
    pub fn patch_strategy(&self) -> &'s str {
        self.node().map(|n| n.strategy.as_str()).unwrap_or("")
    }

    /// The merge keys (`x-kubernetes-list-map-keys`, else `x-kubernetes-patch-merge-key`),
    /// only when a patch strategy is present, as kyaml reads them.
    pub fn merge_keys(&self) -> &'s [String] {
        self.node().map(|n| n.keys.as_slice()).unwrap_or(EMPTY)
    }

    /// Whether kyaml merges this list element-wise: its strategy includes `merge`.
    pub fn is_associative(&self) -> bool {
        self.patch_strategy().split(',').any(|s| s == "merge")
    }

    /// The schema of field `name` of this object (or of any value, for a map type).
    pub fn field(&self, name: &str) -> Option<SchemaRef<'s>> {
        let node = match self.type_index() {
            Some(i) => {
                let fields = &self.schema.types[i].fields;
                fields.get(name).or_else(|| fields.get("*"))?
            }
            None => match &self.node()?.shape {
                Shape::Map(inner) => inner,
                _ => return None,
            },
        };
        Some(SchemaRef {
            schema: self.schema,
            node: NodeRef::Node(node),
        })
    }

    /// The schema of this list's elements.
    pub fn elements(&self) -> Option<SchemaRef<'s>> {
        match &self.node()?.shape {
            Shape::Array(inner) => Some(SchemaRef {
                schema: self.schema,
                node: NodeRef::Node(inner),
            }),
            _ => None,
        }
    }
}

/// Decodes the generator's `STRATEGY;KEYS;SHAPE` encoding.
fn decode(enc: &str) -> Node {
    let mut parts = enc.splitn(3, ';');
    let strategy = parts.next().unwrap_or("").to_string();
    let keys = parts.next().unwrap_or("");
    let shape = parts.next().unwrap_or("");
    let keys = if keys.is_empty() {
        Vec::new()
    } else {
        keys.split(',').map(String::from).collect()
    };
    let shape = if let Some(n) = shape.strip_prefix('#') {
        Shape::Type(n.parse().unwrap_or(0))
    } else if let Some(rest) = shape.strip_prefix("a:") {
        Shape::Array(Box::new(decode(rest)))
    } else if let Some(rest) = shape.strip_prefix("m:") {
        Shape::Map(Box::new(decode(rest)))
    } else {
        Shape::Leaf
    };
    Node {
        strategy,
        keys,
        shape,
    }
}

/// The fields of an object schema (`properties`, `additionalProperties` as `*`).
fn type_def(def: &Value, index: &HashMap<&str, usize>, types: &mut Vec<TypeDef>) -> TypeDef {
    let mut td = TypeDef::default();
    if let Some(props) = def.get("properties").and_then(Value::as_object) {
        for (field, fs) in props {
            td.fields.insert(field.clone(), convert(fs, index, types));
        }
    }
    if let Some(add) = def.get("additionalProperties").filter(|a| a.is_object()) {
        td.fields.insert("*".into(), convert(add, index, types));
    }
    td
}

/// Mirrors the generator's `node()` for user-supplied schemas (without pruning). An
/// inline object schema (`properties` without a `$ref`) becomes a type of its own, so
/// merge keys below it are found as kyaml finds them.
fn convert(s: &Value, index: &HashMap<&str, usize>, types: &mut Vec<TypeDef>) -> Node {
    let strategy = s
        .get("x-kubernetes-patch-strategy")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut keys: Vec<String> = match s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
    {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        None => s
            .get("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
            .map(|k| vec![k.to_string()])
            .unwrap_or_default(),
    };
    if strategy.is_empty() {
        keys.clear();
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        return match index.get(name) {
            Some(i) => Node {
                shape: Shape::Type(*i),
                ..Node::default()
            },
            None => Node::default(),
        };
    }
    let shape = if s.get("type").and_then(Value::as_str) == Some("array") {
        match s.get("items") {
            Some(items) => Shape::Array(Box::new(convert(items, index, types))),
            None => Shape::Leaf,
        }
    } else if s.get("properties").is_some_and(Value::is_object) {
        let td = type_def(s, index, types);
        types.push(td);
        Shape::Type(types.len() - 1)
    } else if let Some(add) = s.get("additionalProperties").filter(|a| a.is_object()) {
        Shape::Map(Box::new(convert(add, index, types)))
    } else {
        Shape::Leaf
    };
    Node {
        strategy: strategy.to_string(),
        keys,
        shape,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name() {
        let s = Schema::builtin();
        let dep = s.for_kind("apps/v1", "Deployment").unwrap();
        let c = dep.field("spec").unwrap().field("template").unwrap();
        let c = c.field("spec").unwrap().field("containers").unwrap();
        assert!(c.is_associative());
        assert_eq!(c.merge_keys(), ["name"]);
        let ports = c.elements().unwrap().field("ports").unwrap();
        assert_eq!(ports.merge_keys(), ["containerPort", "protocol"]);
        let args = c.elements().unwrap().field("args").unwrap();
        assert!(!args.is_associative());
        assert!(
            c.elements().unwrap().field("image").is_none(),
            "scalars are pruned"
        );
    }

    #[test]
    fn finalizers_are_a_primitive_merge_list() {
        let s = Schema::builtin();
        let fin = s
            .for_kind("v1", "Pod")
            .unwrap()
            .field("metadata")
            .unwrap()
            .field("finalizers");
        let fin = fin.unwrap();
        assert!(fin.is_associative());
        assert!(fin.merge_keys().is_empty());
    }

    #[test]
    fn v1_21_schema_has_no_scheduling_gates() {
        let pod = Schema::builtin().for_kind("v1", "Pod").unwrap();
        assert!(
            pod.field("spec")
                .unwrap()
                .field("schedulingGates")
                .is_none()
        );
        assert!(
            Schema::builtin()
                .for_kind("example.com/v1", "Foo")
                .is_none()
        );
    }

    #[test]
    fn scope() {
        assert!(is_cluster_scoped(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole"
        ));
        assert!(!is_cluster_scoped("v1", "ConfigMap"));
        assert!(!is_cluster_scoped("example.com/v1", "Cluster"));
        assert_eq!(
            effective_namespace("v1", "Namespace", "x"),
            "_non_namespaceable_"
        );
        assert_eq!(effective_namespace("v1", "ConfigMap", ""), "default");
        assert_eq!(effective_namespace("v1", "ConfigMap", "a"), "a");
    }

    #[test]
    fn custom_schema() {
        let doc = json!({"definitions": {
            "com.example.v1.Foo": {
                "x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Foo"}],
                "properties": {"spec": {"$ref": "#/definitions/com.example.v1.FooSpec"}}
            },
            "com.example.v1.FooSpec": {"properties": {"items": {
                "type": "array", "items": {"type": "object"},
                "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "id"
            }}}
        }});
        let s = Schema::from_openapi(&doc).unwrap();
        let items = s
            .for_kind("example.com/v1", "Foo")
            .unwrap()
            .field("spec")
            .unwrap();
        assert_eq!(items.field("items").unwrap().merge_keys(), ["id"]);
        assert!(Schema::from_openapi(&json!({})).is_err());
    }
}
