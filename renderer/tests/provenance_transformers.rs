//! Provenance through vars, replacements, components, custom openapi schemas and
//! `configurations`: each field names the file, line and column its value was written at
//! (the source field for a replacement, the var's declaration for an expanded `$(VAR)`),
//! and the kustomization chain. Line numbers below are those of the texts in this file.

mod common;

use renderer::{FsSource, RenderOptions, RenderedObject, SetBy};

const APP_KUST: &str = "\
resources:
- res.yaml
components:
- ../comp
configurations:
- params.yaml
namePrefix: p-
vars:
- name: SVC_NS
  ObjRef: {kind: Service, name: svc, apiVersion: v1}
  FieldRef: {FieldPath: metadata.namespace}
replacements:
- source:
    kind: ConfigMap
    name: settings
    fieldPath: data.[log.level]
  targets:
  - select: {kind: Deployment}
    fieldPaths:
    - spec.template.spec.containers.0.env.0.value
    - spec.template.spec.containers.*.args.0
";

const APP_RES: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: svc
  namespace: team
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  log.level: debug
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    ns: $(SVC_NS)
spec:
  template:
    spec:
      containers:
      - name: web
        image: nginx
        args: [x]
        env:
        - name: LEVEL
          value: info
      - name: side
        image: busybox
        args: [y]
---
apiVersion: example.io/v1
kind: Widget
metadata:
  name: w
spec:
  configRef: settings
  items:
  - name: a
    size: 1
";

const PARAMS: &str = "\
varReference:
- path: metadata/annotations
  kind: Deployment
nameReference:
- kind: ConfigMap
  fieldSpecs:
  - kind: Widget
    path: spec/configRef
";

const COMP_KUST: &str = "\
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
openapi:
  path: schema.yaml
patches:
- path: widget.yaml
";

const COMP_SCHEMA: &str = "\
definitions:
  io.example.v1.Widget:
    x-kubernetes-group-version-kind:
    - {group: example.io, kind: Widget, version: v1}
    properties:
      spec:
        properties:
          items:
            type: array
            x-kubernetes-patch-merge-key: name
            x-kubernetes-patch-strategy: merge
            items: {type: object}
";

const COMP_PATCH: &str = "\
apiVersion: example.io/v1
kind: Widget
metadata:
  name: w
spec:
  items:
  - name: b
    size: 2
";

fn write_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (p, t) in [
        ("app/kustomization.yaml", APP_KUST),
        ("app/res.yaml", APP_RES),
        ("app/params.yaml", PARAMS),
        ("comp/kustomization.yaml", COMP_KUST),
        ("comp/schema.yaml", COMP_SCHEMA),
        ("comp/widget.yaml", COMP_PATCH),
    ] {
        let path = tmp.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, t).unwrap();
    }
    tmp
}

fn render() -> Vec<RenderedObject> {
    let tmp = write_tree();
    let src = FsSource::new(tmp.path()).unwrap();
    renderer::render(&src, "app", &RenderOptions::default())
        .unwrap()
        .objects
}

fn find<'a>(objs: &'a [RenderedObject], kind: &str) -> &'a RenderedObject {
    objs.iter().find(|o| o.value["kind"] == kind).unwrap()
}

/// (file, line, col, what set it) of a field.
fn at(o: &RenderedObject, field: &str) -> (String, u32, u32, SetBy) {
    let f = o.provenance().get(field).unwrap_or_else(|| {
        panic!(
            "no provenance for {field}; have {:?}",
            o.provenance().keys().collect::<Vec<_>>()
        )
    });
    (
        f.origin.file.to_string(),
        f.origin.line,
        f.origin.col,
        f.origin.set_by,
    )
}

#[test]
fn a_var_in_an_annotation_points_at_its_declaration() {
    let objs = render();
    let d = find(&objs, "Deployment");
    assert_eq!(d.value["metadata"]["annotations"]["ns"], "team");
    // `- name: SVC_NS` is line 9 of the kustomization, its entry starting at column 3.
    assert_eq!(
        at(d, "metadata.annotations.ns"),
        (
            "app/kustomization.yaml".into(),
            9,
            3,
            SetBy::Transformer("vars")
        )
    );
}

#[test]
fn replacement_targets_point_at_the_source_field() {
    let objs = render();
    let d = find(&objs, "Deployment");
    let containers = &d.value["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["env"][0]["value"], "debug");
    // `log.level: debug` is line 12 of res.yaml, its value at column 14.
    let source = ("app/res.yaml".to_string(), 12, 14, SetBy::Resource);
    assert_eq!(
        at(
            d,
            "spec.template.spec.containers[name=web].env[name=LEVEL].value"
        ),
        source
    );
    // The wildcard target set both containers' first argument.
    for c in ["web", "side"] {
        assert_eq!(
            at(
                d,
                &format!("spec.template.spec.containers[name={c}].args[0]")
            ),
            source
        );
    }
    assert_eq!(containers[1]["args"][0], "debug");
}

#[test]
fn a_component_patch_merged_by_a_custom_schema_points_into_the_component() {
    let objs = render();
    let w = find(&objs, "Widget");
    let items = w.value["spec"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "merged by name, not replaced: {items:?}");
    // `size: 2` is line 8 of widget.yaml.
    assert_eq!(
        at(w, "spec.items[name=b].size"),
        ("comp/widget.yaml".into(), 8, 11, SetBy::Patch)
    );
    // Untouched base fields keep their own file.
    assert_eq!(at(w, "spec.items[name=a].size").0, "app/res.yaml");
    // Components transform in place: the chain is that of the including kustomization.
    let chain: Vec<String> = w.provenance()["spec.items[name=b].size"]
        .chain
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(chain, vec!["app/kustomization.yaml"]);
}

#[test]
fn a_configurations_name_reference_points_where_it_was_written() {
    let objs = render();
    let w = find(&objs, "Widget");
    // The reference follows the prefixed ConfigMap, as built-in references do, and keeps
    // the origin of the reference as written: `  configRef: settings`, line 39, column 14.
    assert_eq!(w.value["spec"]["configRef"], "p-settings");
    assert_eq!(
        at(w, "spec.configRef"),
        ("app/res.yaml".into(), 39, 14, SetBy::Resource)
    );
}

#[test]
fn the_tree_renders_as_kubectl_does() {
    let tmp = write_tree();
    for mode in [renderer::Reorder::Legacy, renderer::Reorder::None] {
        common::compare(tmp.path(), "app", mode).unwrap();
    }
}

#[test]
fn config_file_plugins_point_at_their_configuration() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plugins-config-files-and-iam");
    let src = FsSource::new(&root).unwrap();
    let objs = renderer::render(&src, "", &RenderOptions::default())
        .unwrap()
        .objects;
    let sa = |name: &str| {
        objs.iter()
            .find(|o| o.value["kind"] == "ServiceAccount" && o.value["metadata"]["name"] == name)
            .unwrap()
    };
    let ann = "metadata.annotations[\"iam.gke.io/gcp-service-account\"]";
    // A generator file: its document starts on line 1.
    assert_eq!(
        at(sa("ksa"), ann),
        ("iam.yaml".into(), 1, 1, SetBy::Generator)
    );
    // An inline generator: `apiVersion: builtin` is line 7 of the kustomization.
    assert_eq!(
        at(sa("inline-ksa"), ann),
        ("kustomization.yaml".into(), 7, 1, SetBy::Generator)
    );
    // A transformer file: the label points into its configuration.
    let d = objs
        .iter()
        .find(|o| o.value["kind"] == "Deployment")
        .unwrap();
    assert_eq!(d.value["metadata"]["labels"]["owner"], "team");
    assert_eq!(at(d, "metadata.labels.owner").0, "labels.yaml");
}
