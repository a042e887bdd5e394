//! JSON6902 patches and targets against expectations recorded from `kubectl kustomize`
//! (`testdata/oracle.py json6902_cases.yaml > json6902_cases.json`).

use serde_json::Value;

use super::{Target, apply_json6902, apply_json6902_plain};

#[test]
fn json6902_cases_match_kubectl_kustomize() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("testdata/json6902_cases.json")).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let resources = match &case["resource"] {
            Value::Array(a) => a.clone(),
            r => vec![r.clone()],
        };
        let target: Target = serde_json::from_value(case["target"].clone()).unwrap();
        let matcher = target.compile().unwrap();
        let mut out = Vec::new();
        let mut err = None;
        for r in &resources {
            if !matcher.matches(r, None) {
                out.push(r.clone());
                continue;
            }
            match apply_json6902(r, &case["patch"]) {
                Ok(v) => out.push(v),
                Err(e) => err = Some(e),
            }
        }
        let expected = &case["expected"];
        match (expected.get("error"), err) {
            (Some(_), Some(_)) => {}
            (Some(_), None) => failures.push(format!("{name}: expected an error, got {out:?}")),
            (None, Some(e)) => failures.push(format!("{name}: unexpected error {e}")),
            (None, None) if Value::Array(out.clone()) != *expected => failures.push(format!(
                "{name}:\n  got:  {}\n  want: {}",
                serde_json::to_string(&out).unwrap(),
                serde_json::to_string(expected).unwrap()
            )),
            (None, None) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn errors_name_the_operation() {
    let doc = serde_json::json!({"a": 1});
    let ops = serde_json::json!([{"op": "add", "path": "/a", "value": 2}, {"op": "remove", "path": "/b"}]);
    let e = apply_json6902_plain(&doc, &ops).unwrap_err().to_string();
    assert!(
        e.contains("operation 1 (remove)") && e.contains("/b"),
        "{e}"
    );
}

/// `kubectl kustomize`: with no annotations on the ConfigMap, `add /metadata/annotations/x`
/// succeeds (kustomize's build annotations are there), `add /metadata/labels/y` fails, and a
/// `copy` of the annotations sees the previous-id annotations.
#[test]
fn build_annotations_are_visible_to_operations() {
    use super::{apply_json6902_in_build, previous_id_annotations};
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
    let internal = previous_id_annotations([("ConfigMap", "a", "default")]);
    let ok = serde_json::json!([{"op": "add", "path": "/metadata/annotations/x", "value": "1"}]);
    assert_eq!(
        apply_json6902_in_build(&cm, &ok, &internal).unwrap()["metadata"],
        serde_json::json!({"name": "a", "annotations": {"x": "1"}})
    );
    let bad = serde_json::json!([{"op": "add", "path": "/metadata/labels/y", "value": "2"}]);
    assert!(apply_json6902_in_build(&cm, &bad, &internal).is_err());
    let copy =
        serde_json::json!([{"op": "copy", "from": "/metadata/annotations", "path": "/data/ann"}]);
    let out = apply_json6902_in_build(&cm, &copy, &internal).unwrap();
    assert_eq!(
        out,
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
            "data": {"k": "v", "ann": {
                "internal.config.kubernetes.io/previousKinds": "ConfigMap",
                "internal.config.kubernetes.io/previousNames": "a",
                "internal.config.kubernetes.io/previousNamespaces": "default"}}})
    );
}
