//! Name references against `kubectl kustomize` output. Each `testdata/<case>/` kustomization
//! was rendered by the oracle into `<case>.expected.json`; `<case>.input.json` is the state
//! the engine hands to nameref: names already prefixed/suffixed/hashed, references untouched,
//! previous ids and affixes as kustomize records them.

use serde::Deserialize;
use serde_json::Value;

use super::*;
use crate::schema::builtin_field_specs;

#[derive(Deserialize)]
struct Input {
    object: Value,
    previous_ids: Vec<Prev>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

#[derive(Deserialize)]
struct Prev {
    kind: String,
    name: String,
    namespace: String,
}

fn run_case(input: &str, expected: &str) {
    let inputs: Vec<Input> = serde_json::from_str(input).unwrap();
    let expected: Vec<Value> = serde_json::from_str(expected).unwrap();
    let prevs: Vec<Vec<PrevId>> = inputs
        .iter()
        .map(|i| {
            i.previous_ids
                .iter()
                .map(|p| PrevId {
                    kind: p.kind.clone(),
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                })
                .collect()
        })
        .collect();
    let views: Vec<RefResource<'_>> = inputs
        .iter()
        .zip(&prevs)
        .map(|(i, p)| RefResource {
            object: &i.object,
            previous_ids: p,
            prefixes: &i.prefixes,
            suffixes: &i.suffixes,
        })
        .collect();
    let changes = fix_name_references(&views, &builtin_field_specs().name_reference).unwrap();
    let mut objects: Vec<Value> = inputs.iter().map(|i| i.object.clone()).collect();
    apply_changes(&mut objects, &changes);
    for obj in &objects {
        let want = expected
            .iter()
            .find(|e| {
                e["kind"] == obj["kind"]
                    && e["metadata"]["name"] == obj["metadata"]["name"]
                    && e["metadata"]["namespace"] == obj["metadata"]["namespace"]
            })
            .unwrap_or_else(|| panic!("no expected object for {}", obj["metadata"]["name"]));
        assert_eq!(obj, want, "{}", obj["metadata"]["name"]);
    }
}

#[test]
fn prefix_suffix_and_hash_renames_propagate() {
    run_case(
        include_str!("testdata/prefix_suffix_hash.input.json"),
        include_str!("testdata/prefix_suffix_hash.expected.json"),
    );
}

#[test]
fn affix_lists_compare_by_ending() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(same_ending(&v(&[]), &v(&[])));
    assert!(!same_ending(&v(&[]), &v(&["a"])));
    assert!(same_ending(&v(&["b"]), &v(&["a", "b"])));
    assert!(!same_ending(&v(&["a"]), &v(&["a", "b"])));
}

#[test]
fn namespaces_pick_the_right_candidate() {
    run_case(
        include_str!("testdata/namespaces.input.json"),
        include_str!("testdata/namespaces.expected.json"),
    );
}

/// `kubectl kustomize` fails: a namespace-less ServiceAccount subject matches `sa` in two
/// namespaces.
#[test]
fn ambiguous_referral_is_an_error() {
    let inputs: Vec<Input> =
        serde_json::from_str(include_str!("testdata/ambiguous.input.json")).unwrap();
    let prevs: Vec<Vec<PrevId>> = inputs
        .iter()
        .map(|i| {
            i.previous_ids
                .iter()
                .map(|p| PrevId {
                    kind: p.kind.clone(),
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                })
                .collect()
        })
        .collect();
    let views: Vec<RefResource<'_>> = inputs
        .iter()
        .zip(&prevs)
        .map(|(i, p)| RefResource {
            object: &i.object,
            previous_ids: p,
            prefixes: &i.prefixes,
            suffixes: &i.suffixes,
        })
        .collect();
    let err = fix_name_references(&views, &builtin_field_specs().name_reference).unwrap_err();
    assert!(
        err.to_string()
            .contains("found multiple possible referrals"),
        "{err}"
    );
}
