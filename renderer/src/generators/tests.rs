//! Expectations recorded from `kubectl kustomize testdata/` (testdata/expected.json).

use serde_json::{Value, json};

use super::*;

fn read_testdata(path: &str) -> Result<Vec<u8>, SourceError> {
    match path {
        "app.env" => Ok(include_bytes!("testdata/app.env").to_vec()),
        "file.txt" => Ok(include_bytes!("testdata/file.txt").to_vec()),
        "bin.dat" => Ok(include_bytes!("testdata/bin.dat").to_vec()),
        _ => Err(SourceError::NotFound { path: path.into() }),
    }
}

fn expected(kind: &str, name_prefix: &str) -> Value {
    let all: Vec<Value> = serde_json::from_str(include_str!("testdata/expected.json")).unwrap();
    all.into_iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(name_prefix)
        })
        .unwrap()
}

fn global() -> GeneratorOptions {
    serde_json::from_value(
        json!({"labels": {"a": "global", "g": "1"}, "annotations": {"note": "x"}}),
    )
    .unwrap()
}

fn finish(mut g: Generated) -> Value {
    if g.needs_hash {
        let h = name_hash(&g.object).unwrap();
        let name = format!("{}-{h}", g.object["metadata"]["name"].as_str().unwrap());
        g.object["metadata"]["name"] = name.into();
    }
    g.object
}

#[test]
fn config_map_from_envs_literals_and_files() {
    let args: GeneratorArgs = serde_json::from_value(json!({
        "name": "cm", "envs": ["app.env"],
        "literals": ["L1=plain", "L2='single'", "L3=\"double\"", "L4==eq", "L5="],
        "files": ["file.txt", "other=bin.dat"]
    }))
    .unwrap();
    let g = generate_config_map(&args, Some(&global()), &mut read_testdata).unwrap();
    assert_eq!(finish(g), expected("ConfigMap", "cm-"));
}

#[test]
fn empty_config_map_has_no_data_field() {
    let args = GeneratorArgs {
        name: "empty".into(),
        ..Default::default()
    };
    let g = generate_config_map(&args, Some(&global()), &mut read_testdata).unwrap();
    assert_eq!(finish(g), expected("ConfigMap", "empty-"));
}

#[test]
fn secret_with_type_and_long_value() {
    let args: GeneratorArgs = serde_json::from_value(json!({
        "name": "sec", "type": "kubernetes.io/basic-auth",
        "literals": ["password=s3cr3t", format!("long={}", "a".repeat(79))]
    }))
    .unwrap();
    let g = generate_secret(&args, Some(&global()), &mut read_testdata).unwrap();
    assert_eq!(finish(g), expected("Secret", "sec-"));
}

#[test]
fn secret_options_immutable_no_hash_local_labels_win() {
    let args: GeneratorArgs = serde_json::from_value(json!({
        "name": "empty-sec",
        "options": {"disableNameSuffixHash": true, "immutable": true, "labels": {"b": "2", "a": "1"}}
    }))
    .unwrap();
    let g = generate_secret(&args, Some(&global()), &mut read_testdata).unwrap();
    assert!(!g.needs_hash);
    assert_eq!(finish(g), expected("Secret", "empty-sec"));
}

#[test]
fn hash_encoding() {
    assert_eq!(encode_hash("0123456789abcdef"), "gh2k456789");
}

#[test]
fn literal_and_file_source_parsing() {
    assert_eq!(parse_literal("a=\"b\""), Some(("a".into(), "b".into())));
    assert_eq!(parse_literal("a='b\""), Some(("a".into(), "'b\"".into())));
    assert_eq!(parse_literal("=b"), None);
    assert_eq!(parse_literal("ab"), None);
    assert_eq!(
        parse_file_source("dir/f.txt"),
        Ok(("f.txt".into(), "dir/f.txt".into()))
    );
    assert_eq!(
        parse_file_source("k=dir/f"),
        Ok(("k".into(), "dir/f".into()))
    );
    assert!(parse_file_source("=f").is_err());
    assert!(parse_file_source("k=").is_err());
    assert!(parse_file_source("a=b=c").is_err());
}

#[test]
fn env_file_parsing() {
    let pairs =
        parse_env_file(b"\xef\xbb\xbfA=1\r\n  # c\n\nB\n=skipped\n C= x \nD=\"q\"").unwrap();
    let want: Vec<(String, String)> = [("A", "1"), ("B", ""), ("C", " x "), ("D", "\"q\"")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(pairs, want);
    assert_eq!(parse_env_file(b"A=1\nB=\xff\n"), Err(1));
}

#[test]
fn duplicate_keys_and_missing_files_error() {
    let args = GeneratorArgs {
        name: "d".into(),
        literals: vec!["a=1".into(), "a=2".into()],
        ..Default::default()
    };
    let e = generate_config_map(&args, None, &mut read_testdata).unwrap_err();
    assert_eq!(e.to_string(), "configmap d illegally repeats the key `a`");
    let args = GeneratorArgs {
        name: "d".into(),
        files: vec!["nope".into()],
        ..Default::default()
    };
    assert!(generate_config_map(&args, None, &mut read_testdata).is_err());
}

/// `kubectl kustomize` of a base generating m, r, s (namespace basens) and an overlay merging
/// into m and s and replacing r.
#[test]
fn behavior_merge_and_replace() {
    let gen_cm = |args: Value| {
        let args: GeneratorArgs = serde_json::from_value(args).unwrap();
        generate_config_map(&args, None, &mut read_testdata).unwrap()
    };
    let in_ns = |mut g: Generated| {
        g.object["metadata"]["namespace"] = "basens".into();
        g
    };
    let base_m = in_ns(gen_cm(json!({"name": "m", "literals": ["a=1", "b=1"],
        "options": {"labels": {"x": "base", "w": "base"}, "annotations": {"k": "base"}}})));
    let ov_m = gen_cm(
        json!({"name": "m", "behavior": "merge", "literals": ["b=2", "c=2"],
        "options": {"labels": {"w": "ov"}}}),
    );
    let m = apply_behavior(Some((&base_m.object, base_m.needs_hash)), ov_m).unwrap();
    assert_eq!(
        finish(m),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "data": {"a": "1", "b": "2", "c": "2"},
            "metadata": {"annotations": {"k": "base"}, "labels": {"w": "ov", "x": "base"},
                "name": "m-gmcbm69h57", "namespace": "basens"}})
    );

    let base_r = in_ns(gen_cm(
        json!({"name": "r", "literals": ["a=1"], "options": {"labels": {"x": "base"}}}),
    ));
    let ov_r = gen_cm(
        json!({"name": "r", "behavior": "replace", "literals": ["z=9"],
        "options": {"disableNameSuffixHash": true}}),
    );
    let r = apply_behavior(Some((&base_r.object, base_r.needs_hash)), ov_r).unwrap();
    assert_eq!(
        finish(r),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"z": "9"},
            "metadata": {"labels": {"x": "base"}, "name": "r", "namespace": "basens"}})
    );

    let sec = |args: Value| {
        let args: GeneratorArgs = serde_json::from_value(args).unwrap();
        generate_secret(&args, None, &mut read_testdata).unwrap()
    };
    let base_s = in_ns(sec(
        json!({"name": "s", "literals": ["a=1"], "options": {"disableNameSuffixHash": true}}),
    ));
    let ov_s = sec(json!({"name": "s", "behavior": "merge", "literals": ["b=2"]}));
    let s = apply_behavior(Some((&base_s.object, base_s.needs_hash)), ov_s).unwrap();
    assert_eq!(
        finish(s),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {"a": "MQ==", "b": "Mg=="},
            "metadata": {"name": "s", "namespace": "basens"}})
    );

    let create = gen_cm(json!({"name": "m"}));
    assert!(apply_behavior(Some((&base_m.object, true)), create).is_err());
    assert!(apply_behavior(None, gen_cm(json!({"name": "q", "behavior": "merge"}))).is_err());
}
