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

/// `openapi: {path: schema.json}` replaces the built-in schema: the CRD list merges by its
/// declared key while Deployment containers (no longer described) are replaced, with the
/// `$patch: delete` element kept verbatim (recorded from `kubectl kustomize`).
#[test]
fn custom_openapi_schema_replaces_builtin() {
    let doc = serde_json::json!({"definitions": {
        "com.example.v1.Foo": {
            "x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Foo"}],
            "properties": {"spec": {"$ref": "#/definitions/com.example.v1.FooSpec"}}
        },
        "com.example.v1.FooSpec": {"properties": {"items": {
            "type": "array", "items": {"type": "object"},
            "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"
        }}}
    }});
    let schema = Schema::from_openapi(&doc).unwrap();
    let foo = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Foo", "metadata": {"name": "foo"},
        "spec": {"items": [{"name": "a", "v": 1}, {"name": "b", "v": 2}]}});
    let patch = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Foo", "metadata": {"name": "foo"},
        "spec": {"items": [{"name": "b", "w": 3}, {"name": "c"}]}});
    let out = apply_strategic_merge(&foo, &patch, &schema, false, PatchOptions::default()).unwrap();
    assert_eq!(
        out.unwrap()["spec"]["items"],
        serde_json::json!([{"name": "b", "v": 2, "w": 3}, {"name": "c"}, {"name": "a", "v": 1}])
    );
    let dep = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
    let patch = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "b", "env": [{"name": "E", "$patch": "delete"}]}]}}}});
    let out = apply_strategic_merge(&dep, &patch, &schema, false, PatchOptions::default()).unwrap();
    assert_eq!(
        out.unwrap()["spec"]["template"]["spec"]["containers"],
        serde_json::json!([{"name": "b", "env": [{"name": "E", "$patch": "delete"}]}])
    );
}
