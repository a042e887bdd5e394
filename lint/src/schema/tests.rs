use crate::rules::{SCHEMA_REQUIRED, SCHEMA_TYPE, SCHEMA_UNKNOWN_FIELD, SCHEMA_UNKNOWN_KIND};
use crate::testutil::{DEPLOYMENT, Repo, findings_of};

#[test]
fn a_valid_deployment_passes() {
    for rule in [
        SCHEMA_UNKNOWN_FIELD,
        SCHEMA_TYPE,
        SCHEMA_REQUIRED,
        SCHEMA_UNKNOWN_KIND,
    ] {
        assert_eq!(findings_of(rule, DEPLOYMENT), vec![], "{rule}");
    }
}

#[test]
fn unknown_field_points_at_its_source_line() {
    let bad = DEPLOYMENT.replace(
        "        image:",
        "        imagePullPolicyy: Always\n        image:",
    );
    let f = findings_of(SCHEMA_UNKNOWN_FIELD, &bad);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].file.as_str(), f[0].line), ("app/r.yaml", 16));
    assert!(
        f[0].message.contains("imagePullPolicyy"),
        "{}",
        f[0].message
    );
}

#[test]
fn wrong_type_points_at_its_source_line() {
    let bad = DEPLOYMENT.replace(
        "spec:\n  selector:",
        "spec:\n  replicas: three\n  selector:",
    );
    let f = findings_of(SCHEMA_TYPE, &bad);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].file.as_str(), f[0].line), ("app/r.yaml", 6));
    assert!(
        f[0].message.contains("spec.replicas must be an integer"),
        "{}",
        f[0].message
    );
}

#[test]
fn wrong_type_set_by_a_patch_points_at_the_patch() {
    let repo = Repo::new(&[
        ("base/kustomization.yaml", "resources:\n- d.yaml\n"),
        ("base/d.yaml", DEPLOYMENT),
        (
            "prod/kustomization.yaml",
            "resources:\n- ../base\npatches:\n- path: p.yaml\n",
        ),
        (
            "prod/p.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: \"3\"\n",
        ),
    ]);
    let f: Vec<_> = repo
        .lint()
        .into_iter()
        .filter(|f| f.rule == SCHEMA_TYPE)
        .collect();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].file.as_str(), f[0].line), ("prod/p.yaml", 6));
}

#[test]
fn missing_required_field() {
    let bad = DEPLOYMENT.replace("      - name: app\n        image:", "      - image:");
    let f = findings_of(SCHEMA_REQUIRED, &bad);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].message.contains("name"), "{}", f[0].message);
    assert_eq!(f[0].file, "app/r.yaml");
}

#[test]
fn quantities_and_int_or_string_take_both() {
    let ok = DEPLOYMENT.replace("cpu: 500m", "cpu: 1");
    assert_eq!(findings_of(SCHEMA_TYPE, &ok), vec![]);
}

#[test]
fn unknown_kind() {
    let f = findings_of(
        SCHEMA_UNKNOWN_KIND,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].file.as_str(), f[0].line), ("app/r.yaml", 2));
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names:
    kind: Widget
    plural: widgets
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size:
                type: integer
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
";

#[test]
fn custom_resources_follow_their_crd() {
    let repo = |widget: &str| {
        Repo::new(&[
            (
                "app/kustomization.yaml",
                "resources:\n- crd.yaml\n- w.yaml\n",
            ),
            ("app/crd.yaml", CRD),
            ("app/w.yaml", widget),
        ])
    };
    let head = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n";
    let good = repo(&format!("{head}  size: 3\n  extra:\n    anything: 1\n")).lint();
    assert!(
        good.iter().all(|f| !f.rule.starts_with("schema")),
        "{good:?}"
    );
    let bad = repo(&format!("{head}  size: big\n  colour: red\n")).lint();
    let rules: Vec<(&str, u32)> = bad
        .iter()
        .filter(|f| f.rule.starts_with("schema"))
        .map(|f| (f.rule, f.line))
        .collect();
    assert_eq!(
        rules,
        [(SCHEMA_TYPE, 6), (SCHEMA_UNKNOWN_FIELD, 7)],
        "{bad:?}"
    );
    let missing = repo(&format!("{head}  extra: {{}}\n")).lint();
    assert!(
        missing.iter().any(|f| f.rule == SCHEMA_REQUIRED),
        "{missing:?}"
    );
}

#[test]
fn a_field_called_description_is_known() {
    // Schema descriptions are dropped to save memory; PriorityClass has a real `description`.
    let pc = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\ndescription: for the checkout path\n";
    for rule in [SCHEMA_UNKNOWN_FIELD, SCHEMA_TYPE, SCHEMA_REQUIRED] {
        assert_eq!(findings_of(rule, pc), vec![], "{rule}");
    }
    let bad = pc.replace("value: 1000", "value: high");
    assert_eq!(findings_of(SCHEMA_TYPE, &bad).len(), 1);
}

#[test]
fn hostile_nesting_is_bounded() {
    let mut deep =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n");
    let mut indent = String::from("  ");
    for i in 0..100 {
        deep.push_str(&format!("{indent}k{i}:\n"));
        indent.push_str("  ");
    }
    deep.push_str(&format!("{indent}leaf: x\n"));
    // The renderer refuses nesting this deep, or the schema says data values are strings:
    // either way one finding with a line, no stack overflow, no hang.
    let f: Vec<_> = crate::testutil::single(&deep)
        .lint()
        .into_iter()
        .filter(|f| f.rule == SCHEMA_TYPE || f.rule == crate::rules::RENDER_ERROR)
        .collect();
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].line >= 1, "{f:?}");
}
