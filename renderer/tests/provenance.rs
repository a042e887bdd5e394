//! Provenance: every field names the file, line and column where its value was set, and the
//! kustomization chain it came through.

use std::path::Path;

use renderer::{FsSource, RenderOptions, RenderedObject, SetBy};

const BASE_KUST: &str = "\
resources:
- deployment.yaml
configMapGenerator:
- name: settings
  literals:
  - LOG_LEVEL=info
  - MODE=fast
";

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: api
        image: registry.example.com/api:1.0
        ports:
        - name: http
          containerPort: 8080
        envFrom:
        - configMapRef:
            name: settings
";

const OVERLAY_KUST: &str = "\
resources:
- ../base
namePrefix: prod-
labels:
- pairs:
    team: payments
images:
- name: registry.example.com/api
  newTag: \"2.0\"
patches:
- path: replicas.yaml
- target:
    kind: Deployment
  patch: |-
    - op: add
      path: /spec/minReadySeconds
      value: 10
";

const REPLICAS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 3
";

fn render() -> Vec<RenderedObject> {
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        ("base/kustomization.yaml", BASE_KUST),
        ("base/deployment.yaml", DEPLOYMENT),
        ("overlay/kustomization.yaml", OVERLAY_KUST),
        ("overlay/replicas.yaml", REPLICAS),
    ];
    for (p, t) in files {
        let path = tmp.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, t).unwrap();
    }
    let src = FsSource::new(tmp.path()).unwrap();
    let r = renderer::render(&src, "overlay", &RenderOptions::default()).unwrap();
    let _ = Path::new("");
    r.objects
}

fn find<'a>(objs: &'a [RenderedObject], kind: &str) -> &'a RenderedObject {
    objs.iter().find(|o| o.value["kind"] == kind).unwrap()
}

/// (file, line, col, chain) of a field.
fn at(o: &RenderedObject, field: &str) -> (String, u32, u32, Vec<String>) {
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
        f.chain.iter().map(|c| c.to_string()).collect(),
    )
}

const BOTH: [&str; 2] = ["base/kustomization.yaml", "overlay/kustomization.yaml"];

#[test]
fn base_fields_point_at_the_base_file() {
    let objs = render();
    let d = find(&objs, "Deployment");
    let port = "spec.template.spec.containers[name=api].ports[name=http].containerPort";
    assert_eq!(
        at(d, port),
        (
            "base/deployment.yaml".into(),
            14,
            26,
            BOTH.map(String::from).to_vec()
        )
    );
    assert_eq!(d.provenance()[port].origin.set_by, SetBy::Resource);
}

#[test]
fn name_prefix_points_at_the_overlay_line() {
    let objs = render();
    let d = find(&objs, "Deployment");
    assert_eq!(d.value["metadata"]["name"], "prod-api");
    assert_eq!(
        at(d, "metadata.name"),
        (
            "overlay/kustomization.yaml".into(),
            3,
            13,
            vec!["overlay/kustomization.yaml".into()]
        )
    );
    assert_eq!(
        d.provenance()["metadata.name"].origin.set_by,
        SetBy::Transformer("namePrefix")
    );
}

#[test]
fn labels_point_at_their_pair() {
    let objs = render();
    let d = find(&objs, "Deployment");
    assert_eq!(
        at(d, "metadata.labels.team").0,
        "overlay/kustomization.yaml"
    );
    assert_eq!(at(d, "metadata.labels.team").1, 6);
}

#[test]
fn images_point_at_the_new_tag() {
    let objs = render();
    let d = find(&objs, "Deployment");
    let f = "spec.template.spec.containers[name=api].image";
    assert_eq!(
        d.value["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/api:2.0"
    );
    assert_eq!(
        at(d, f),
        (
            "overlay/kustomization.yaml".into(),
            9,
            11,
            vec!["overlay/kustomization.yaml".into()]
        )
    );
}

#[test]
fn strategic_merge_patch_points_at_the_patch_file() {
    let objs = render();
    let d = find(&objs, "Deployment");
    assert_eq!(
        at(d, "spec.replicas"),
        (
            "overlay/replicas.yaml".into(),
            6,
            13,
            vec!["overlay/kustomization.yaml".into()]
        )
    );
    assert_eq!(d.provenance()["spec.replicas"].origin.set_by, SetBy::Patch);
}

#[test]
fn inline_json_patch_points_into_the_kustomization() {
    let objs = render();
    let d = find(&objs, "Deployment");
    let (file, line, _, _) = at(d, "spec.minReadySeconds");
    assert_eq!((file.as_str(), line), ("overlay/kustomization.yaml", 17));
}

#[test]
fn generated_data_points_at_the_literal() {
    let objs = render();
    let cm = find(&objs, "ConfigMap");
    assert!(
        cm.value["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("prod-settings-")
    );
    assert_eq!(
        at(cm, "data.MODE"),
        (
            "base/kustomization.yaml".into(),
            7,
            5,
            BOTH.map(String::from).to_vec()
        )
    );
    assert_eq!(cm.provenance()["data.MODE"].origin.set_by, SetBy::Generator);
}

#[test]
fn every_leaf_has_provenance() {
    for o in render() {
        let mut missing = Vec::new();
        renderer::provenance::for_each_leaf(&o.value, &mut |p, _| {
            if !o.provenance().contains_key(p) {
                missing.push(p.to_string());
            }
        });
        assert!(
            missing.is_empty(),
            "{}: no provenance for {missing:?}",
            o.value["kind"]
        );
    }
}
