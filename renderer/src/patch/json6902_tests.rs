//! JSON6902 patches and targets against expectations recorded from `kubectl kustomize`
//! (`testdata/oracle.py json6902_cases.yaml > json6902_cases.json`).

use serde_json::Value;

use super::{Target, apply_json6902};

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
    let e = apply_json6902(&doc, &ops).unwrap_err().to_string();
    assert!(
        e.contains("operation 1 (remove)") && e.contains("/b"),
        "{e}"
    );
}
