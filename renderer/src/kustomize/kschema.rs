//! The shape of kustomize v5.5.0's `Kustomization` Go type, for decoding field names the way
//! kubectl does.
//!
//! kubectl turns a kustomization into JSON (keys sorted, duplicates already collapsed by the
//! YAML decoder, last wins) and decodes it with `encoding/json`, which matches a key to a
//! struct field case-insensitively (`nameprefix` is `namePrefix`, `fieldPath` is
//! `fieldpath`) and, with `DisallowUnknownFields`, refuses any other key. [`canonicalize`]
//! renames every key to its field's spelling so the rest of the engine reads one spelling,
//! and names the file and line of a key that is no field.

use serde_json::{Map, Value};

/// What a field holds. Maps of free-form keys (`commonLabels`, `openapi`) and scalars are
/// [`Shape::Leaf`]: their keys are data, not field names.
#[derive(Debug)]
pub enum Shape {
    Leaf,
    /// A Go `string`: a plain scalar YAML 1.1 types otherwise (`yes`, `n`, `1`) fails.
    Str,
    /// A `map[string]string`: keys are data; values must decode as Go strings.
    StrMap,
    Struct(&'static [(&'static str, Shape)]),
    List(&'static Shape),
}

use Shape::{Leaf, List, Str, StrMap, Struct};

const GENERATOR_OPTIONS: &[(&str, Shape)] = &[
    ("labels", StrMap),
    ("annotations", StrMap),
    ("disableNameSuffixHash", Leaf),
    ("immutable", Leaf),
];

/// `types.ResId` with its inlined `Gvk`, and the selectors built on it.
const SELECTOR: &[(&str, Shape)] = &[
    ("group", Str),
    ("version", Str),
    ("kind", Str),
    ("name", Str),
    ("namespace", Str),
    ("annotationSelector", Str),
    ("labelSelector", Str),
];

const FIELD_OPTIONS: &[(&str, Shape)] = &[
    ("delimiter", Str),
    ("index", Leaf),
    ("encoding", Str),
    ("create", Leaf),
];

const FIELD_SPEC: &[(&str, Shape)] = &[
    ("group", Str),
    ("version", Str),
    ("kind", Str),
    ("path", Str),
    ("create", Leaf),
];

const PATCH: &[(&str, Shape)] = &[
    ("path", Str),
    ("patch", Str),
    ("target", Struct(SELECTOR)),
    ("options", Leaf),
];

const REPLACEMENT: &[(&str, Shape)] = &[
    ("path", Str),
    (
        "source",
        Struct(&[
            ("group", Str),
            ("version", Str),
            ("kind", Str),
            ("name", Str),
            ("namespace", Str),
            ("fieldPath", Str),
            ("options", Struct(FIELD_OPTIONS)),
        ]),
    ),
    (
        "targets",
        List(&Struct(&[
            ("select", Struct(SELECTOR)),
            ("reject", List(&Struct(SELECTOR))),
            ("fieldPaths", Leaf),
            ("options", Struct(FIELD_OPTIONS)),
        ])),
    ),
];

/// A `replacements:` file holds a list of these (without `path`).
pub const REPLACEMENT_LIST: Shape = List(&Struct(REPLACEMENT));

const GENERATOR_ARGS: &[(&str, Shape)] = &[
    ("namespace", Str),
    ("name", Str),
    ("behavior", Str),
    ("literals", Leaf),
    ("files", Leaf),
    ("envs", Leaf),
    ("env", Str),
    ("options", Struct(GENERATOR_OPTIONS)),
];

/// `secretGenerator` entries: the generator arguments and `type`.
const SECRET_ARGS: &[(&str, Shape)] = &[
    ("namespace", Str),
    ("name", Str),
    ("behavior", Str),
    ("literals", Leaf),
    ("files", Leaf),
    ("envs", Leaf),
    ("env", Str),
    ("options", Struct(GENERATOR_OPTIONS)),
    ("type", Str),
];

const IMAGE: &[(&str, Shape)] = &[
    ("name", Str),
    ("newName", Str),
    ("tagSuffix", Str),
    ("newTag", Str),
    ("digest", Str),
];

/// Every field of `types.Kustomization`.
pub const KUSTOMIZATION: Shape = Struct(&[
    ("apiVersion", Str),
    ("kind", Str),
    (
        "metadata",
        Struct(&[
            ("name", Str),
            ("namespace", Str),
            ("labels", StrMap),
            ("annotations", StrMap),
        ]),
    ),
    ("openapi", StrMap),
    ("namePrefix", Str),
    ("nameSuffix", Str),
    ("namespace", Str),
    ("commonLabels", StrMap),
    (
        "labels",
        List(&Struct(&[
            ("pairs", StrMap),
            ("includeSelectors", Leaf),
            ("includeTemplates", Leaf),
            ("fields", List(&Struct(FIELD_SPEC))),
        ])),
    ),
    ("commonAnnotations", StrMap),
    ("patchesStrategicMerge", Leaf),
    ("patchesJson6902", List(&Struct(PATCH))),
    ("patches", List(&Struct(PATCH))),
    ("images", List(&Struct(IMAGE))),
    ("imageTags", List(&Struct(IMAGE))),
    ("replacements", List(&Struct(REPLACEMENT))),
    ("replicas", List(&Struct(&[("name", Str), ("count", Leaf)]))),
    (
        "vars",
        List(&Struct(&[
            ("name", Str),
            (
                "objref",
                Struct(&[
                    ("apiVersion", Str),
                    ("group", Str),
                    ("version", Str),
                    ("kind", Str),
                    ("name", Str),
                    ("namespace", Str),
                ]),
            ),
            ("fieldref", Struct(&[("fieldPath", Str)])),
        ])),
    ),
    (
        "sortOptions",
        Struct(&[
            ("order", Str),
            (
                "legacySortOptions",
                Struct(&[("orderFirst", Leaf), ("orderLast", Leaf)]),
            ),
        ]),
    ),
    ("resources", Leaf),
    ("components", Leaf),
    ("crds", Leaf),
    ("bases", Leaf),
    ("configMapGenerator", List(&Struct(GENERATOR_ARGS))),
    ("secretGenerator", List(&Struct(SECRET_ARGS))),
    ("helmGlobals", Leaf),
    ("helmCharts", Leaf),
    ("helmChartInflationGenerator", Leaf),
    ("generatorOptions", Struct(GENERATOR_OPTIONS)),
    ("configurations", Leaf),
    ("generators", Leaf),
    ("transformers", Leaf),
    ("validators", Leaf),
    ("buildMetadata", Leaf),
]);

/// A key that names no field: its JSON pointer (as written) and the key.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownKey {
    pub pointer: String,
    pub key: String,
}

/// One renamed key: the pointer as written and the pointer after renaming.
pub type Rename = (String, String);

/// Renames every field key of `v` to the spelling of its Go field, in place. Keys that
/// fold to the same field keep the value of the one that sorts last (encoding/json sees
/// them in sorted order and the later assignment wins; objects merge, as decoding into an
/// existing struct or map does). Returns the renames (outermost first) so positions can
/// follow, or the first key that is no field.
pub fn canonicalize(v: &mut Value, shape: &Shape, strict: bool) -> Result<Vec<Rename>, UnknownKey> {
    let mut renames = Vec::new();
    walk(v, shape, &mut String::new(), strict, &mut renames)?;
    Ok(renames)
}

fn walk(
    v: &mut Value,
    shape: &Shape,
    ptr: &mut String,
    strict: bool,
    renames: &mut Vec<Rename>,
) -> Result<(), UnknownKey> {
    match (shape, v) {
        (Leaf | Str | StrMap, _) => Ok(()),
        (List(item), Value::Array(items)) => {
            for (i, it) in items.iter_mut().enumerate() {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&i.to_string());
                walk(it, item, ptr, strict, renames)?;
                ptr.truncate(len);
            }
            Ok(())
        }
        (Struct(fields), Value::Object(map)) => {
            if map.keys().all(|k| fields.iter().any(|(f, _)| f == k)) {
                // The common case: every key already spelled as its field.
                for (f, s) in *fields {
                    if let Some(child) = map.get_mut(*f) {
                        let len = ptr.len();
                        ptr.push('/');
                        ptr.push_str(&crate::yaml::escape_pointer(f));
                        walk(child, s, ptr, strict, renames)?;
                        ptr.truncate(len);
                    }
                }
                return Ok(());
            }
            let mut keys: Vec<String> = map.keys().cloned().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                let value = map.remove(&key).expect("key listed");
                let escaped = crate::yaml::escape_pointer(&key).into_owned();
                let Some((field, _)) = fields.iter().find(|(f, _)| fold_eq(f, &key)) else {
                    if strict {
                        return Err(UnknownKey {
                            pointer: format!("{ptr}/{escaped}"),
                            key,
                        });
                    }
                    continue;
                };
                if key != *field {
                    renames.push((
                        format!("{ptr}/{escaped}"),
                        format!("{ptr}/{}", crate::yaml::escape_pointer(field)),
                    ));
                }
                match (out.get_mut(*field), value) {
                    (Some(Value::Object(prev)), Value::Object(next)) => prev.extend(next),
                    (_, value) => {
                        out.insert((*field).to_string(), value);
                    }
                }
            }
            for (f, s) in *fields {
                if let Some(child) = out.get_mut(*f) {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&crate::yaml::escape_pointer(f));
                    walk(child, s, ptr, strict, renames)?;
                    ptr.truncate(len);
                }
            }
            *map = out;
            Ok(())
        }
        // Wrong types are reported by the readers of each field, with their own messages.
        _ => Ok(()),
    }
}

/// JSON pointers of every Go `string` of `v` (string fields, values of `map[string]string`
/// fields), with the field's name, so their YAML 1.1 typing can be checked.
pub fn go_strings(v: &Value, shape: &Shape) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    collect_maps(v, shape, &mut String::new(), "", &mut out);
    out
}

fn collect_maps(
    v: &Value,
    shape: &Shape,
    ptr: &mut String,
    name: &'static str,
    out: &mut Vec<(String, &'static str)>,
) {
    match (shape, v) {
        (Str, v) if !v.is_object() && !v.is_array() => out.push((ptr.clone(), name)),
        (StrMap, Value::Object(m)) => {
            for k in m.keys() {
                out.push((format!("{ptr}/{}", crate::yaml::escape_pointer(k)), name));
            }
        }
        (List(item), Value::Array(items)) => {
            for (i, it) in items.iter().enumerate() {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&i.to_string());
                collect_maps(it, item, ptr, name, out);
                ptr.truncate(len);
            }
        }
        (Struct(fields), Value::Object(m)) => {
            for (f, s) in *fields {
                if let Some(child) = m.get(*f) {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&crate::yaml::escape_pointer(f));
                    collect_maps(child, s, ptr, f, out);
                    ptr.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// encoding/json's case folding: ASCII case, plus the two non-ASCII letters that fold to
/// ASCII ones (`ſ` to `s`, the Kelvin sign to `k`).
fn fold_eq(field: &str, key: &str) -> bool {
    let fold = |c: char| match c {
        'ſ' => 's',
        '\u{212a}' => 'k',
        c => c.to_ascii_lowercase(),
    };
    field.chars().map(fold).eq(key.chars().map(fold))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_fold_to_fields_and_last_sorted_wins() {
        let mut v = json!({
            "namePrefix": "a-",
            "nameprefix": "b-",
            "vars": [{"name": "X", "ObjRef": {"Kind": "Service"}, "fieldRef": {"fieldpath": "data.x"}}],
            "commonLabels": {"App": "x"},
        });
        let renames = canonicalize(&mut v, &KUSTOMIZATION, true).unwrap();
        assert_eq!(v["namePrefix"], "b-");
        assert!(v.get("nameprefix").is_none());
        assert_eq!(v["vars"][0]["objref"]["kind"], "Service");
        assert_eq!(v["vars"][0]["fieldref"]["fieldPath"], "data.x");
        // Map keys are data: never renamed.
        assert_eq!(v["commonLabels"]["App"], "x");
        assert!(renames.contains(&("/vars/0/ObjRef".into(), "/vars/0/objref".into())));
    }

    #[test]
    fn unknown_keys_are_named() {
        let mut v = json!({"vars": [{"name": "X", "fieldref": {"fieldpath": "a", "bar": 1}}]});
        let e = canonicalize(&mut v, &KUSTOMIZATION, true).unwrap_err();
        assert_eq!(e.pointer, "/vars/0/fieldref/bar");
        let mut v = json!([{"source": {"kind": "A", "extra": 1}}]);
        canonicalize(&mut v, &REPLACEMENT_LIST, false).unwrap();
        assert!(v[0]["source"].get("extra").is_none());
    }

    #[test]
    fn go_strings_are_found_at_every_depth() {
        let v = json!({
            "metadata": {"namespace": "n", "labels": {"a": "b"}},
            "images": [{"name": "x", "newTag": "1"}],
            "resources": ["a.yaml"],
            "replicas": [{"name": "r", "count": 2}],
        });
        let found: Vec<String> = go_strings(&v, &KUSTOMIZATION)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        for p in [
            "/metadata/namespace",
            "/metadata/labels/a",
            "/images/0/name",
            "/images/0/newTag",
            "/replicas/0/name",
        ] {
            assert!(found.iter().any(|f| f == p), "{p} missing from {found:?}");
        }
        assert!(
            !found
                .iter()
                .any(|f| f.starts_with("/resources") || f.ends_with("/count"))
        );
    }

    #[test]
    fn folding_matches_encoding_json() {
        assert!(fold_eq("namePrefix", "NAMEPREFIX"));
        assert!(fold_eq("kind", "\u{212a}ind"));
        assert!(!fold_eq("namePrefix", "name_prefix"));
    }
}
