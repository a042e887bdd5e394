//! Shared helpers for the differential tests: run the oracle, compare outputs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use renderer::{FsSource, RenderOptions, Reorder};

pub mod tools;

pub use tools::KUBECTL;

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `kubectl kustomize DIR --reorder MODE`: Ok(stdout) or Err(stderr).
pub fn oracle(dir: &Path, reorder: Reorder) -> Result<String, String> {
    let mode = match reorder {
        Reorder::Legacy => "legacy",
        Reorder::None => "none",
    };
    let out = Command::new(KUBECTL)
        .arg("kustomize")
        .arg(dir)
        .arg("--reorder")
        .arg(mode)
        .output()
        .expect("run kubectl");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("utf-8 output"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Ours, rendering `rel` below `root`.
pub fn ours(root: &Path, rel: &str, reorder: Reorder) -> Result<String, String> {
    let src = FsSource::new(root).map_err(|e| e.to_string())?;
    renderer::render(&src, rel, &RenderOptions { reorder })
        .map(|r| r.to_yaml())
        .map_err(|e| e.to_string())
}

/// None when equal; otherwise a description of the first differing line.
pub fn first_difference(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (e, a): (Vec<&str>, Vec<&str>) =
        (expected.split('\n').collect(), actual.split('\n').collect());
    for i in 0..e.len().max(a.len()) {
        let (el, al) = (e.get(i), a.get(i));
        if el != al {
            return Some(format!(
                "line {}:\n  kubectl: {:?}\n  ours:    {:?}",
                i + 1,
                el.copied().unwrap_or("<end>"),
                al.copied().unwrap_or("<end>")
            ));
        }
    }
    Some("outputs differ".into())
}

/// Compares ours with the oracle for `root/rel` in one mode; Err describes the mismatch.
pub fn compare(root: &Path, rel: &str, reorder: Reorder) -> Result<(), String> {
    let dir = root.join(rel);
    let expected = oracle(&dir, reorder);
    let actual = ours(root, rel, reorder);
    match (expected, actual) {
        (Ok(e), Ok(a)) => match first_difference(&e, &a) {
            None => Ok(()),
            Some(d) => Err(format!("{reorder:?}: {d}")),
        },
        (Ok(_), Err(a)) => Err(format!("{reorder:?}: kubectl succeeded, ours failed: {a}")),
        (Err(e), Ok(_)) => Err(format!(
            "{reorder:?}: kubectl failed ({}), ours succeeded",
            e.trim()
        )),
        // Both refuse: error texts differ by design (ours name file and line).
        (Err(_), Err(_)) => Ok(()),
    }
}
