//! Built-in transformers configured by kustomization fields: namespace, prefix/suffix,
//! labels, annotations, replicas and images. Each records where the values it sets came
//! from (the kustomization line).

use serde_json::{Map, Value};

use super::error::{ErrorKind, RenderError};
use super::fieldspec::{self, FieldSpec};
use super::kfile::KFile;
use super::resource::Resource;
use crate::provenance::{Origin, SetBy};
use crate::schema::FieldSpecs;
use crate::yaml::{Pos, escape_pointer};

/// Whether objects of this type live in a namespace (unknown types do).
pub fn is_namespaceable(api_version: &str, kind: &str) -> bool {
    !crate::schema::is_cluster_scoped(api_version, kind)
}

fn origin(k: &KFile, pos: Pos, name: &'static str) -> Origin {
    Origin {
        file: k.path.clone(),
        line: pos.line,
        col: pos.col,
        set_by: SetBy::Transformer(name),
    }
}

/// `namespace:`
pub fn namespace(
    k: &KFile,
    items: &mut [Resource],
    config: &FieldSpecs,
) -> Result<(), RenderError> {
    let Some(ns) = k.string("namespace")? else {
        return Ok(());
    };
    if ns.is_empty() {
        return Ok(());
    }
    let o = origin(k, k.pos_of("namespace"), "namespace");
    for r in items.iter_mut() {
        let kind = r.kind().to_string();
        let api = r.api_version().to_string();
        r.store_previous_id();
        if is_namespaceable(&api, &kind)
            && let Some(meta) = metadata(&mut r.value)
        {
            meta.insert("namespace".into(), Value::String(ns.clone()));
            r.mark("metadata.namespace".into(), o.clone());
        }
        // The remaining field specs: Namespace names, APIService and CRD webhook services.
        let mut marks = Vec::new();
        for spec in config
            .namespace
            .iter()
            .filter(|s| s.applies_to(&api, &kind))
        {
            // Only the core Namespace kind is renamed: kubectl leaves other groups'
            // `Namespace` kinds their names.
            if kind == "Namespace" && api.contains('/') && spec.path == "metadata/name" {
                continue;
            }
            let create = spec.create;
            fieldspec::visit(&mut r.value, spec, &mut |parent, key, path| {
                if create || parent.contains_key(key) {
                    parent.insert(key.to_string(), Value::String(ns.clone()));
                    marks.push(path.to_string());
                }
            });
        }
        for p in marks {
            r.mark(p, o.clone());
        }
        if kind == "RoleBinding" || kind == "ClusterRoleBinding" {
            set_subject_namespaces(r, &ns, &o);
        }
    }
    Ok(())
}

/// kustomize's default `setRoleBindingSubjects: defaultOnly`: subjects named `default`
/// (whatever their kind or current namespace) move to the new namespace.
fn set_subject_namespaces(r: &mut Resource, ns: &str, o: &Origin) {
    let mut marks = Vec::new();
    if let Some(Value::Array(subjects)) = r.value.get_mut("subjects") {
        let segs: Vec<_> = (0..subjects.len())
            .map(|i| crate::provenance::element_segment(subjects, i))
            .collect();
        for (i, s) in subjects.iter_mut().enumerate() {
            let Value::Object(m) = s else { continue };
            if m.get("name").and_then(Value::as_str) == Some("default") {
                m.insert("namespace".into(), Value::String(ns.to_string()));
                let mut p = "subjects".to_string();
                crate::provenance::push_segment(&mut p, &segs[i]);
                p.push_str(".namespace");
                marks.push(p);
            }
        }
    }
    for p in marks {
        r.mark(p, o.clone());
    }
}

fn metadata(v: &mut Value) -> Option<&mut Map<String, Value>> {
    let m = v.as_object_mut()?;
    let meta = m
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// `namePrefix:` and `nameSuffix:` (kustomize runs them as two transformers), over the
/// field specs of each: `metadata/name` renames the object (those its spec selects by
/// original kind), any other path gets the prefix or suffix added to its string values.
pub fn prefix_suffix(
    k: &KFile,
    items: &mut [Resource],
    prefix_specs: &[FieldSpec],
    suffix_specs: &[FieldSpec],
) -> Result<(), RenderError> {
    let prefix = k.string("namePrefix")?.unwrap_or_default();
    let suffix = k.string("nameSuffix")?.unwrap_or_default();
    if prefix.is_empty() && suffix.is_empty() {
        return Ok(());
    }
    let field = if prefix.is_empty() {
        "nameSuffix"
    } else {
        "namePrefix"
    };
    let o = origin(k, k.pos_of(field), field_name(field));
    let renames = |specs: &[FieldSpec], org: &super::resource::ResId| {
        let api = org_api(org);
        specs
            .iter()
            .any(|s| s.path == "metadata/name" && s.applies_to(&api, &org.kind))
    };
    for r in items.iter_mut() {
        if matches!(r.kind(), "CustomResourceDefinition" | "Namespace")
            || (r.kind() == "APIService" && r.api_version().starts_with("apiregistration.k8s.io/"))
        {
            continue;
        }
        let org = r.original_id();
        let (p, s) = (
            if renames(prefix_specs, &org) {
                prefix.as_str()
            } else {
                ""
            },
            if renames(suffix_specs, &org) {
                suffix.as_str()
            } else {
                ""
            },
        );
        if !p.is_empty() || !s.is_empty() {
            let new = format!("{p}{}{s}", r.name());
            r.store_previous_id();
            if !p.is_empty() {
                r.prefixes.push(p.to_string());
            }
            if !s.is_empty() {
                r.suffixes.push(s.to_string());
            }
            if let Some(meta) = metadata(&mut r.value) {
                meta.insert("name".into(), Value::String(new));
                r.mark("metadata.name".into(), o.clone());
            }
        }
        // Other fields configured for prefixes or suffixes (`configurations:`).
        let api = org_api(&org);
        let mut marks = Vec::new();
        for (specs, affix) in [
            (prefix_specs, (prefix.as_str(), "")),
            (suffix_specs, ("", suffix.as_str())),
        ] {
            if affix.0.is_empty() && affix.1.is_empty() {
                continue;
            }
            for spec in specs
                .iter()
                .filter(|sp| sp.path != "metadata/name" && sp.applies_to(&api, &org.kind))
            {
                fieldspec::visit(&mut r.value, spec, &mut |parent, key, path| {
                    if let Some(Value::String(v)) = parent.get_mut(key) {
                        *v = format!("{}{v}{}", affix.0, affix.1);
                        marks.push(path.to_string());
                    }
                });
            }
        }
        for p in marks {
            r.mark(p, o.clone());
        }
    }
    Ok(())
}

fn org_api(id: &super::resource::ResId) -> String {
    if id.group.is_empty() {
        id.version.clone()
    } else {
        format!("{}/{}", id.group, id.version)
    }
}

fn field_name(f: &str) -> &'static str {
    match f {
        "namePrefix" => "namePrefix",
        "nameSuffix" => "nameSuffix",
        "commonLabels" => "commonLabels",
        "labels" => "labels",
        "commonAnnotations" => "commonAnnotations",
        _ => "transformer",
    }
}

/// Sets every pair under the map each field spec addresses.
fn set_pairs(items: &mut [Resource], specs: &[FieldSpec], pairs: &[(String, String, Origin)]) {
    for r in items.iter_mut() {
        let api = r.api_version().to_string();
        let kind = r.kind().to_string();
        let mut marks: Vec<(String, Origin)> = Vec::new();
        for spec in specs.iter().filter(|s| s.applies_to(&api, &kind)) {
            let create = spec.create;
            fieldspec::visit(&mut r.value, spec, &mut |parent, key, path| {
                let slot = parent.entry(key.to_string()).or_insert(Value::Null);
                if slot.is_null() {
                    if !create {
                        return;
                    }
                    *slot = Value::Object(Map::new());
                }
                let Value::Object(m) = slot else { return };
                for (k, v, o) in pairs {
                    m.insert(k.clone(), Value::String(v.clone()));
                    let mut p = path.to_string();
                    crate::provenance::push_key(&mut p, k, false);
                    marks.push((p, o.clone()));
                }
            });
        }
        for (p, o) in marks {
            r.mark(p, o);
        }
    }
}

/// The pairs of a string map field, each with the position of its value.
fn pairs_of(
    k: &KFile,
    v: &Value,
    pointer: &str,
    name: &'static str,
) -> Result<Vec<(String, String, Origin)>, RenderError> {
    let Value::Object(m) = v else {
        return Err(k.error(ErrorKind::Yaml, pointer, format!("{name} must be a map")));
    };
    m.iter()
        .map(|(key, val)| {
            let p = format!("{pointer}/{}", escape_pointer(key));
            if crate::yaml::scalar::v2_needs_quotes(key) {
                return Err(k.error(ErrorKind::Invalid, &p, yaml11_key(name, key)));
            }
            let text = k.go_string(&p, val, name)?;
            Ok((key.clone(), text, origin(k, k.pos(&p), name)))
        })
        .collect()
}

/// kustomize writes label and annotation keys so that YAML 1.1 reads `n`, `yes`, `1` or
/// `true` as non-strings, and then fails to print the object.
pub fn yaml11_key(field: &str, key: &str) -> String {
    format!(
        "{field} key {key:?} is read back as a non-string; kubectl fails with \"json: unsupported type: map[interface {{}}]interface {{}}\""
    )
}

/// `labels:` entries, then `commonLabels:` (kustomize's order).
pub fn labels(k: &KFile, items: &mut [Resource], config: &FieldSpecs) -> Result<(), RenderError> {
    if let Some(v) = k.get("labels") {
        let Value::Array(entries) = v else {
            return Err(k.error(ErrorKind::Yaml, "/labels", "labels must be a list"));
        };
        for (i, e) in entries.iter().enumerate() {
            let base = format!("/labels/{i}");
            let pairs = match e.get("pairs") {
                Some(p) if !p.is_null() => pairs_of(k, p, &format!("{base}/pairs"), "labels")?,
                _ => vec![],
            };
            let flag = |f: &str| e.get(f).and_then(Value::as_bool).unwrap_or(false);
            let mut specs: Vec<FieldSpec> = match e.get("fields") {
                Some(Value::Array(fs)) => fs.iter().filter_map(FieldSpec::from_value).collect(),
                _ => vec![],
            };
            if flag("includeSelectors") {
                merge_specs(&mut specs, &config.common_labels);
            } else {
                let meta = FieldSpec {
                    group: None,
                    version: None,
                    kind: None,
                    path: "metadata/labels".into(),
                    create: true,
                };
                merge_specs(&mut specs, std::slice::from_ref(&meta));
                if flag("includeTemplates") {
                    merge_specs(&mut specs, &config.template_labels);
                }
            }
            set_pairs(items, &specs, &pairs);
        }
    }
    if let Some(v) = k.get("commonLabels") {
        let pairs = pairs_of(k, v, "/commonLabels", "commonLabels")?;
        set_pairs(items, &config.common_labels, &pairs);
    }
    Ok(())
}

/// kustomize `FsSlice.MergeAll`: specs already present (same GVK and path) are kept once.
fn merge_specs(into: &mut Vec<FieldSpec>, more: &[FieldSpec]) {
    for s in more {
        if !into.iter().any(|x| x.path == s.path && x.gvk() == s.gvk()) {
            into.push(s.clone());
        }
    }
}

/// `commonAnnotations:`
pub fn annotations(
    k: &KFile,
    items: &mut [Resource],
    config: &FieldSpecs,
) -> Result<(), RenderError> {
    let Some(v) = k.get("commonAnnotations") else {
        return Ok(());
    };
    let pairs = pairs_of(k, v, "/commonAnnotations", "commonAnnotations")?;
    set_pairs(items, &config.common_annotations, &pairs);
    Ok(())
}

/// `replicas:`
pub fn replicas(k: &KFile, items: &mut [Resource], config: &FieldSpecs) -> Result<(), RenderError> {
    let Some(v) = k.get("replicas") else {
        return Ok(());
    };
    let Value::Array(entries) = v else {
        return Err(k.error(ErrorKind::Yaml, "/replicas", "replicas must be a list"));
    };
    let specs = &config.replicas;
    for (i, e) in entries.iter().enumerate() {
        let p = format!("/replicas/{i}");
        let name = e.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(count) = e.get("count").and_then(Value::as_i64) else {
            return Err(k.error(
                ErrorKind::Yaml,
                &format!("{p}/count"),
                "replicas count must be an integer",
            ));
        };
        let o = origin(k, k.pos(&format!("{p}/count")), "replicas");
        let mut hit = false;
        for r in items.iter_mut() {
            let matches = r.any_id(|id| id.name == name);
            if !matches {
                continue;
            }
            let (api, kind) = (r.api_version().to_string(), r.kind().to_string());
            let mut marks = Vec::new();
            for spec in specs.iter().filter(|s| s.applies_to(&api, &kind)) {
                hit = true;
                fieldspec::visit(&mut r.value, spec, &mut |parent, key, path| {
                    parent.insert(key.to_string(), Value::from(count));
                    marks.push(path.to_string());
                });
            }
            for m in marks {
                r.mark(m, o.clone());
            }
        }
        if !hit {
            let kinds: Vec<String> = specs
                .iter()
                .filter_map(|s| s.kind.clone())
                .map(|k| format!("{k}.[noVer].[noGrp]"))
                .collect();
            return Err(k.error(
                ErrorKind::Invalid,
                &format!("{p}/name"),
                format!(
                    "resource with name {name} does not match a config with the following GVK [{}]",
                    kinds.join(" ")
                ),
            ));
        }
    }
    Ok(())
}

/// One `images:` entry.
struct ImageRule {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
    origin: Origin,
}

/// `images:` — every `containers`/`initContainers` list anywhere in an object, as
/// kustomize's legacy image filter does.
pub fn images(k: &KFile, items: &mut [Resource], config: &FieldSpecs) -> Result<(), RenderError> {
    let Some(v) = k.get("images") else {
        return Ok(());
    };
    let Value::Array(entries) = v else {
        return Err(k.error(ErrorKind::Yaml, "/images", "images must be a list"));
    };
    let mut rules = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let p = format!("/images/{i}");
        let mut fields = std::collections::HashMap::new();
        for f in ["name", "newName", "newTag", "digest"] {
            if let Some(v) = e.get(f) {
                let text = k.go_string(&format!("{p}/{f}"), v, &format!("images.{f}"))?;
                if !text.is_empty() {
                    fields.insert(f, text);
                }
            }
        }
        let s = |f: &str| fields.get(f).cloned();
        let Some(name) = s("name") else { continue };
        // Provenance points at the field that changed the image most specifically.
        let field = ["digest", "newTag", "newName"]
            .into_iter()
            .find(|f| s(f).is_some());
        let pos = k.pos(&field.map_or(p.clone(), |f| format!("{p}/{f}")));
        rules.push(ImageRule {
            name,
            new_name: s("newName"),
            new_tag: s("newTag"),
            digest: s("digest"),
            origin: origin(k, pos, "images"),
        });
    }
    // The built-in specs only name container images, which the legacy walk covers; custom
    // `configurations` may add other paths.
    let custom: Vec<&FieldSpec> = config
        .images
        .iter()
        .filter(|s| !s.path.contains("ontainers[]/image"))
        .collect();
    for r in items.iter_mut() {
        let mut marks = Vec::new();
        let mut path = String::new();
        walk_images(&mut r.value, &rules, &mut path, &mut marks);
        let (api, kind) = (r.api_version().to_string(), r.kind().to_string());
        for spec in custom.iter().filter(|s| s.applies_to(&api, &kind)) {
            fieldspec::visit(&mut r.value, spec, &mut |parent, key, path| {
                let Some(Value::String(image)) = parent.get_mut(key) else {
                    return;
                };
                if let Some(rule) = rules.iter().find(|rule| image_matches(image, &rule.name)) {
                    *image = apply_image(image, rule);
                    marks.push((path.to_string(), rule.origin.clone()));
                }
            });
        }
        for (p, o) in marks {
            r.mark(p, o);
        }
    }
    Ok(())
}

fn walk_images(
    v: &mut Value,
    rules: &[ImageRule],
    path: &mut String,
    marks: &mut Vec<(String, Origin)>,
) {
    match v {
        Value::Object(m) => {
            for (key, child) in m.iter_mut() {
                let len = path.len();
                crate::provenance::push_key(path, key, path.is_empty());
                if (key == "containers" || key == "initContainers") && child.is_array() {
                    update_containers(child, rules, path, marks);
                } else {
                    walk_images(child, rules, path, marks);
                }
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            let segs: Vec<_> = (0..a.len())
                .map(|i| crate::provenance::element_segment(a, i))
                .collect();
            for (i, child) in a.iter_mut().enumerate() {
                let len = path.len();
                crate::provenance::push_segment(path, &segs[i]);
                walk_images(child, rules, path, marks);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn update_containers(
    list: &mut Value,
    rules: &[ImageRule],
    path: &mut String,
    marks: &mut Vec<(String, Origin)>,
) {
    let Value::Array(a) = list else { return };
    let segs: Vec<_> = (0..a.len())
        .map(|i| crate::provenance::element_segment(a, i))
        .collect();
    for (i, c) in a.iter_mut().enumerate() {
        let Some(Value::String(image)) = c.get_mut("image") else {
            continue;
        };
        for rule in rules {
            if !image_matches(image, &rule.name) {
                continue;
            }
            *image = apply_image(image, rule);
            let len = path.len();
            crate::provenance::push_segment(path, &segs[i]);
            path.push_str(".image");
            marks.push((path.clone(), rule.origin.clone()));
            path.truncate(len);
            break;
        }
    }
}

/// `^NAME(@sha256)?(:[a-zA-Z0-9_.{}-]*)?(@sha256:[a-zA-Z0-9]*)?$`, NAME taken literally.
fn image_matches(image: &str, name: &str) -> bool {
    let Some(mut rest) = image.strip_prefix(name) else {
        return false;
    };
    if let Some(r) = rest.strip_prefix("@sha256") {
        rest = r;
    }
    if let Some(r) = rest.strip_prefix(':') {
        let end = r.find(|c: char| !(c.is_ascii_alphanumeric() || "_.{}-".contains(c)));
        rest = &r[end.unwrap_or(r.len())..];
    }
    if let Some(r) = rest.strip_prefix("@sha256:") {
        rest = r.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    }
    rest.is_empty()
}

/// kustomize's `image.Split`: name, tag, digest; the domain's port colon is not a tag.
pub fn split_image(image: &str) -> (String, String, String) {
    let slash = image.find('/').filter(|&i| i > 0).unwrap_or(0);
    let search = &image[slash..];
    let id = search.find('@');
    let ic = search.find(':');
    match (ic, id) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (ic, Some(id)) if ic.is_none_or(|c| id < c) => {
            let id = id + slash;
            (
                image[..id].to_string(),
                String::new(),
                image[id + 1..].to_string(),
            )
        }
        (Some(ic), Some(id)) => {
            let (ic, id) = (ic + slash, id + slash);
            (
                image[..ic].to_string(),
                image[ic + 1..id].to_string(),
                image[id + 1..].to_string(),
            )
        }
        (None, Some(_)) => unreachable_digest(image),
        (Some(ic), None) => {
            let ic = ic + slash;
            (
                image[..ic].to_string(),
                image[ic + 1..].to_string(),
                String::new(),
            )
        }
    }
}

/// The guard above already takes every digest-without-tag case.
fn unreachable_digest(image: &str) -> (String, String, String) {
    (image.to_string(), String::new(), String::new())
}

fn apply_image(image: &str, rule: &ImageRule) -> String {
    let (mut name, mut tag, mut digest) = split_image(image);
    if let Some(n) = &rule.new_name {
        name = n.clone();
    }
    match (&rule.new_tag, &rule.digest) {
        (Some(t), Some(d)) => {
            tag = t.clone();
            digest = d.clone();
        }
        (Some(t), None) => {
            tag = t.clone();
            digest.clear();
        }
        (None, Some(d)) => {
            tag.clear();
            digest = d.clone();
        }
        (None, None) => {}
    }
    if !tag.is_empty() {
        name = format!("{name}:{tag}");
    }
    if !digest.is_empty() {
        name = format!("{name}@{digest}");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_split_and_match() {
        assert_eq!(
            split_image("reg:5000/app:1.0@sha256:ab"),
            ("reg:5000/app".into(), "1.0".into(), "sha256:ab".into())
        );
        assert!(image_matches("nginx:1.2", "nginx"));
        assert!(!image_matches("nginx-x:1.2", "nginx"));
        assert!(image_matches("nginx@sha256:abc", "nginx"));
    }
}
