//! Strategic merge against expectations recorded from `kubectl kustomize`
//! (`testdata/oracle.py smp_cases.yaml > smp_cases.json`).

use serde_json::Value;

use super::{PatchOptions, apply_strategic_merge};
use crate::schema::Schema;

fn matches(resource: &Value, patch: &Value, target: Option<&Value>) -> bool {
    let field = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    match target {
        Some(t) => ["kind", "name"].iter().all(|k| {
            let want = t.get(*k).and_then(Value::as_str);
            let have = if *k == "kind" {
                field(resource, "/kind")
            } else {
                field(resource, "/metadata/name")
            };
            want.is_none_or(|w| Some(w.to_string()) == have)
        }),
        None => {
            field(resource, "/kind") == field(patch, "/kind")
                && field(resource, "/metadata/name") == field(patch, "/metadata/name")
        }
    }
}

#[test]
fn smp_cases_match_kubectl_kustomize() {
    let cases: Vec<Value> = serde_json::from_str(include_str!("testdata/smp_cases.json")).unwrap();
    let schema = Schema::builtin();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let resources = match &case["resource"] {
            Value::Array(a) => a.clone(),
            r => vec![r.clone()],
        };
        let patch = &case["patch"];
        let target = case.get("target");
        let opts = case.get("options");
        let options = PatchOptions {
            allow_name_change: opts.and_then(|o| o.get("allowNameChange"))
                == Some(&Value::Bool(true)),
            allow_kind_change: opts.and_then(|o| o.get("allowKindChange"))
                == Some(&Value::Bool(true)),
        };
        let mut out = Vec::new();
        let mut err = None;
        for r in &resources {
            if !matches(r, patch, target) {
                out.push(r.clone());
                continue;
            }
            match apply_strategic_merge(r, patch, schema, target.is_some(), options) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => {}
                Err(e) => err = Some(e),
            }
        }
        let expected = &case["expected"];
        match (expected.get("error"), err) {
            (Some(_), Some(_)) => {}
            (Some(_), None) => failures.push(format!("{name}: expected an error, got {out:?}")),
            (None, Some(e)) => failures.push(format!("{name}: unexpected error {e}")),
            (None, None) => {
                if Value::Array(out.clone()) != *expected {
                    failures.push(format!(
                        "{name}:\n  got:  {}\n  want: {}",
                        serde_json::to_string(&out).unwrap(),
                        serde_json::to_string(expected).unwrap()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
