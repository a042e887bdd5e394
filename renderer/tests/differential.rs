//! Differential tests: our output must be byte-identical to `kubectl kustomize`.
//!
//! Every directory under `tests/fixtures/` is a case: a small repository whose root holds
//! the kustomization to render (or, if the case has a file named `target`, the directory
//! named in it). Adding a case is adding a directory. Both `--reorder` modes are checked.

mod common;

use std::path::Path;

use common::{compare, fixtures_dir, repo_root};
use renderer::Reorder;

fn case_target(case: &Path) -> String {
    std::fs::read_to_string(case.join("target"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn run_cases(cases: Vec<(std::path::PathBuf, String)>) {
    let failures = std::sync::Mutex::new(Vec::new());
    let chunks: Vec<_> = cases
        .chunks(cases.len().div_ceil(4).max(1))
        .map(<[_]>::to_vec)
        .collect();
    std::thread::scope(|s| {
        for chunk in &chunks {
            let failures = &failures;
            s.spawn(move || {
                for (root, rel) in chunk {
                    for mode in [Reorder::Legacy, Reorder::None] {
                        if let Err(e) = compare(root, rel, mode) {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{}/{rel}: {e}", root.display()));
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from kubectl kustomize:\n{}",
        failures.len(),
        cases.len() * 2,
        failures.join("\n")
    );
}

#[test]
fn fixtures_match_kubectl() {
    let mut cases = Vec::new();
    let filter = std::env::var("FIXTURE").ok();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let rel = case_target(&path);
        cases.push((path, rel));
    }
    cases.sort();
    assert!(!cases.is_empty());
    run_cases(cases);
}

#[test]
fn examples_match_kubectl() {
    let root = repo_root();
    let mut cases = Vec::new();
    let mut stack = vec![root.join("examples")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "kustomization.yaml") {
                let rel = p.parent().unwrap().strip_prefix(&root).unwrap();
                cases.push((root.clone(), rel.to_string_lossy().into_owned()));
            }
        }
    }
    cases.sort();
    assert!(!cases.is_empty());
    run_cases(cases);
}

#[test]
fn generated_infra_repo_matches_kubectl() {
    let tmp = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("python3")
        .arg(common::tools::gen_infra_repo(&repo_root()))
        .arg(tmp.path())
        // More entries than the engine's parallel threshold, so cluster builds run threaded.
        .args(["--apps", "20"])
        .status()
        .expect("run gen_infra_repo.py");
    assert!(status.success());
    let mut cases = Vec::new();
    for env in ["dev", "staging", "prod"] {
        cases.push((tmp.path().to_path_buf(), format!("clusters/{env}")));
        cases.push((
            tmp.path().to_path_buf(),
            format!("applications/app-001/overlays/{env}"),
        ));
    }
    cases.push((
        tmp.path().to_path_buf(),
        "applications/app-000/base".to_string(),
    ));
    run_cases(cases);
}
