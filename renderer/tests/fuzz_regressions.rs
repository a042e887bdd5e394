//! Inputs the mutation fuzzer (`examples/fuzz.rs`, see FUZZING.md) found, minimised: each
//! must be refused with an error, never a panic or a blow-up.

use std::path::Path;

use renderer::{ErrorKind, FsSource, RenderError, RenderOptions};

fn render(files: &[(&str, &str)]) -> Result<String, RenderError> {
    let tmp = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p: &Path = &tmp.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let src = FsSource::new(tmp.path()).unwrap();
    renderer::render(&src, "", &RenderOptions::default()).map(|r| r.to_yaml())
}

const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - name: http\n    port: 80\n";
const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  port: x\n";

/// Seed 1, iteration 14767: a replacement source path indexing past the end of a list whose
/// elements have distinct names panicked (index out of bounds in `element_segment`).
#[test]
fn replacement_source_index_out_of_range() {
    for index in ["1", "7", "4294967296"] {
        let k = format!(
            "resources:\n- r.yaml\nreplacements:\n- source:\n    kind: Service\n    fieldPath: spec.ports.{index}.port\n  targets:\n  - select:\n      kind: ConfigMap\n    fieldPaths:\n    - data.port\n"
        );
        let e = render(&[
            ("kustomization.yaml", &k),
            ("r.yaml", &format!("{SVC}---\n{CM}")),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("spec.ports"), "{e}");
    }
}

/// Seed 99 (smoke run): an alias bomb in a kustomization or resource expanded until the
/// allocator gave up (abort). go-yaml refuses it as "excessive aliasing"; so do we.
#[test]
fn alias_bomb_is_refused() {
    let mut bomb = String::from("a0: &a0 [\"lol\"]\n");
    for l in 1..10 {
        let refs = vec![format!("*a{}", l - 1); 6].join(", ");
        bomb.push_str(&format!("a{l}: &a{l} [{refs}]\n"));
    }
    bomb.push_str("m: &m {k: *a9}\nn: {<<: [*m, *m], z: *m}\n");
    let e = render(&[("kustomization.yaml", &bomb)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Yaml, "{e}");
    assert!(e.to_string().contains("excessive aliasing"), "{e}");
    let e = render(&[
        ("kustomization.yaml", "resources:\n- r.yaml\n"),
        (
            "r.yaml",
            &format!("{CM}bomb:\n  {}", bomb.replace('\n', "\n  ")),
        ),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("excessive aliasing"), "{e}");
}
