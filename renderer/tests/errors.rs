//! Error cases: the message names the right file and line, and the kustomization chain;
//! kubectl refuses the same trees.

mod common;

use std::path::Path;

use renderer::{ErrorKind, FsSource, RenderError, RenderOptions};

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// Renders `dir` of a tree made of `files`; asserts kubectl fails too; returns our error.
fn fail(files: &[(&str, &str)], dir: &str) -> RenderError {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), files);
    fail_in(tmp.path(), dir)
}

fn fail_in(root: &Path, dir: &str) -> RenderError {
    let oracle = common::oracle(&root.join(dir), renderer::Reorder::Legacy);
    assert!(oracle.is_err(), "kubectl accepted the tree: {oracle:?}");
    let src = FsSource::new(root).unwrap();
    match renderer::render(&src, dir, &RenderOptions::default()) {
        Ok(r) => panic!("rendered instead of failing:\n{}", r.to_yaml()),
        Err(e) => e,
    }
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";

#[test]
fn malformed_resource_yaml_names_file_and_line() {
    let e = fail(
        &[
            ("app/kustomization.yaml", "resources:\n- cm.yaml\n"),
            (
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [c\n",
            ),
        ],
        "app",
    );
    assert_eq!(e.kind, ErrorKind::Yaml);
    assert_eq!(e.file, "app/cm.yaml");
    assert!(e.line >= 4, "{e}");
    assert_eq!(e.chain, vec!["app/kustomization.yaml"]);
}

#[test]
fn malformed_kustomization_names_its_line() {
    let e = fail(
        &[(
            "kustomization.yaml",
            "resources:\n- a.yaml\nnamePrefix: [x\n",
        )],
        "",
    );
    assert_eq!(e.kind, ErrorKind::Yaml);
    assert_eq!(e.file, "kustomization.yaml");
    assert!(e.line >= 3, "{e}");
}

#[test]
fn unknown_field_names_its_line() {
    let e = fail(
        &[
            (
                "kustomization.yaml",
                "resources:\n- cm.yaml\nnamePrefx: a-\n",
            ),
            ("cm.yaml", CM),
        ],
        "",
    );
    assert_eq!(e.kind, ErrorKind::UnknownField);
    assert_eq!((e.file.as_str(), e.line), ("kustomization.yaml", 3));
    assert!(e.to_string().contains("namePrefx"), "{e}");
}

#[test]
fn missing_resource_names_the_entry() {
    let e = fail(
        &[
            ("overlay/kustomization.yaml", "resources:\n- ../base\n"),
            (
                "base/kustomization.yaml",
                "resources:\n- cm.yaml\n- gone.yaml\n",
            ),
            ("base/cm.yaml", CM),
        ],
        "overlay",
    );
    assert_eq!(e.kind, ErrorKind::Missing);
    assert_eq!((e.file.as_str(), e.line), ("base/kustomization.yaml", 3));
    assert_eq!(
        e.chain,
        vec!["overlay/kustomization.yaml", "base/kustomization.yaml"]
    );
    assert!(
        e.to_string()
            .contains("overlay/kustomization.yaml -> base/kustomization.yaml")
    );
}

#[test]
fn missing_kustomization_in_base_names_the_referencing_line() {
    let e = fail(
        &[
            (
                "overlay/kustomization.yaml",
                "namePrefix: x-\nresources:\n- ../base\n",
            ),
            ("base/cm.yaml", CM),
        ],
        "overlay",
    );
    assert_eq!(e.kind, ErrorKind::Missing);
    assert_eq!((e.file.as_str(), e.line), ("overlay/kustomization.yaml", 3));
}

#[test]
fn file_above_the_kustomization_is_refused() {
    let e = fail(
        &[
            ("cm.yaml", CM),
            ("app/kustomization.yaml", "resources:\n- ../cm.yaml\n"),
        ],
        "app",
    );
    assert_eq!(e.kind, ErrorKind::OutsideRoot);
    assert_eq!((e.file.as_str(), e.line), ("app/kustomization.yaml", 2));
}

#[test]
fn directory_outside_the_root_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        &[("outside/kustomization.yaml", "resources: []\n")],
    );
    write(
        tmp.path(),
        &[(
            "repo/app/kustomization.yaml",
            "resources:\n- ../../outside\n",
        )],
    );
    let src = FsSource::new(tmp.path().join("repo")).unwrap();
    let e = renderer::render(&src, "app", &RenderOptions::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::OutsideRoot);
    assert_eq!((e.file.as_str(), e.line), ("app/kustomization.yaml", 2));
}

#[cfg(unix)]
#[test]
fn symlink_escaping_the_root_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        &[
            ("secret.yaml", CM),
            ("repo/app/kustomization.yaml", "resources:\n- cm.yaml\n"),
        ],
    );
    std::os::unix::fs::symlink(
        tmp.path().join("secret.yaml"),
        tmp.path().join("repo/app/cm.yaml"),
    )
    .unwrap();
    let src = FsSource::new(tmp.path().join("repo")).unwrap();
    let e = renderer::render(&src, "app", &RenderOptions::default()).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::OutsideRoot | ErrorKind::Missing),
        "{e}"
    );
    assert_eq!(e.file, "app/kustomization.yaml");
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn cycles_report_the_chain() {
    let e = fail(
        &[
            ("a/kustomization.yaml", "resources:\n- ../b\n"),
            ("b/kustomization.yaml", "resources:\n- ../c\n"),
            ("c/kustomization.yaml", "resources:\n- ../a\n"),
        ],
        "a",
    );
    assert_eq!(e.kind, ErrorKind::Cycle);
    assert_eq!((e.file.as_str(), e.line), ("c/kustomization.yaml", 2));
    let msg = e.to_string();
    assert!(
        msg.contains("a/kustomization.yaml -> b/kustomization.yaml -> c/kustomization.yaml -> a/kustomization.yaml"),
        "{msg}"
    );
}

#[test]
fn duplicate_ids_name_both_files() {
    let e = fail(
        &[
            ("kustomization.yaml", "resources:\n- one.yaml\n- two.yaml\n"),
            ("one.yaml", CM),
            ("two.yaml", CM),
        ],
        "",
    );
    assert_eq!(e.kind, ErrorKind::DuplicateId);
    assert_eq!((e.file.as_str(), e.line), ("kustomization.yaml", 3));
    let msg = e.to_string();
    assert!(
        msg.contains("one.yaml") && msg.contains("two.yaml"),
        "{msg}"
    );
}

#[test]
fn remote_resources_are_not_supported() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        &[(
            "kustomization.yaml",
            "resources:\n- https://github.com/example/repo//base?ref=v1\n",
        )],
    );
    let src = FsSource::new(tmp.path()).unwrap();
    let e = renderer::render(&src, "", &RenderOptions::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotSupported);
    assert_eq!(e.line, 2);
}

#[test]
fn helm_charts_are_not_supported() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        &[(
            "kustomization.yaml",
            "resources: []\nhelmCharts:\n- name: x\n  repo: https://example.com\n",
        )],
    );
    let src = FsSource::new(tmp.path()).unwrap();
    let e = renderer::render(&src, "", &RenderOptions::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotSupported);
    assert_eq!((e.file.as_str(), e.line), ("kustomization.yaml", 3));
}

#[test]
fn component_listed_as_resource_is_refused() {
    let e = fail(
        &[
            ("kustomization.yaml", "resources:\n- comp\n"),
            (
                "comp/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n",
            ),
        ],
        "",
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!((e.file.as_str(), e.line), ("kustomization.yaml", 2));
}

#[test]
fn kustomization_listed_as_component_is_refused() {
    let e = fail(
        &[
            ("kustomization.yaml", "components:\n- comp\n"),
            ("comp/kustomization.yaml", "resources: []\n"),
        ],
        "",
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!((e.file.as_str(), e.line), ("kustomization.yaml", 2));
}

#[test]
fn untargeted_patch_without_match_names_the_patch() {
    let e = fail(
        &[
            (
                "kustomization.yaml",
                "resources:\n- cm.yaml\npatches:\n- path: p.yaml\n",
            ),
            ("cm.yaml", CM),
            (
                "p.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  a: b\n",
            ),
        ],
        "",
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.file, "p.yaml");
    assert_eq!(e.line, 1);
}

#[test]
fn control_characters_are_refused() {
    let e = fail(
        &[
            ("kustomization.yaml", "resources:\n- cm.yaml\n"),
            (
                "cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"x\u{7}y\"\n",
            ),
        ],
        "",
    );
    assert_eq!(e.kind, ErrorKind::Yaml);
    assert_eq!((e.file.as_str(), e.line), ("cm.yaml", 6));
}

#[test]
fn escaped_c1_controls_cannot_be_printed() {
    let e = fail(
        &[
            ("kustomization.yaml", "resources:\n- cm.yaml\n"),
            (
                "cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"x\\x7fy\"\n",
            ),
        ],
        "",
    );
    assert_eq!(e.kind, ErrorKind::Yaml);
    assert_eq!(e.file, "cm.yaml");
}

/// Arbitrary bytes never make the renderer panic.
#[test]
fn garbage_never_panics() {
    let samples: Vec<String> = {
        let mut v = vec![
            String::new(),
            "-".into(),
            "---\n---\n".into(),
            "[".into(),
            "{a: [b, {c: d}]".into(),
            "a: &x\n  b: *x\n".into(),
            "a: *nope\n".into(),
            "? [a]\n: b\n".into(),
            "resources: 3\n".into(),
            "resources: [1, 2]\n".into(),
            "namePrefix: {a: b}\n".into(),
            "images: [{name: 3}]\n".into(),
            "replicas: [{name: x, count: many}]\n".into(),
            "labels: [{pairs: [1]}]\n".into(),
            "commonLabels: [a]\n".into(),
            "patches: [{patch: '- op: add'}]\n".into(),
            "patches: [{target: {name: '('}, patch: 'a: b'}]\n".into(),
            "sortOptions: {order: random}\n".into(),
            "kind: Nonsense\n".into(),
            "\u{feff}resources: []\n".into(),
            "a:\n\t- b\n".into(),
            "x".repeat(10_000),
            "[".repeat(2_000),
            "- ".repeat(2_000),
        ];
        // A cheap deterministic generator over YAML-ish characters.
        let alphabet: Vec<char> = "ab:- \n[]{}&*!|>'\"%@`#,?~0123456789.\t\\"
            .chars()
            .collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..300 {
            let mut s = String::new();
            for _ in 0..(seed % 60) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            v.push(s);
        }
        v
    };
    for text in samples {
        let _ = renderer::yaml::parse_documents(&text);
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            &[("kustomization.yaml", &text), ("r.yaml", &text)],
        );
        let src = FsSource::new(tmp.path()).unwrap();
        let _ = renderer::render(&src, "", &RenderOptions::default());
        write(
            tmp.path(),
            &[("kustomization.yaml", "resources:\n- r.yaml\n")],
        );
        if let Ok(r) = renderer::render(&src, "", &RenderOptions::default()) {
            let _ = r.to_yaml();
        }
    }
}
