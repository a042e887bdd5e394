//! The guard: a corpus of deliberately odd but valid inputs (`tests/guard/`). Each case
//! either renders byte-identically to `kubectl kustomize` or fails naming a file and a
//! line — a render that differs from kubectl without an error is the one outcome refused.
//! Cases kubectl refuses must be refused by us too (naming at least the file). Both
//! `--reorder` modes are checked.
//!
//! The difference from `differential.rs`: there, refusing what kubectl renders is a
//! failure; here it is allowed (the construct is not implemented), but only loudly.

mod common;

use std::path::{Path, PathBuf};

use common::{first_difference, oracle};
use renderer::{FsSource, RenderOptions, Reorder};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guard")
}

/// What one case did in one mode.
enum Outcome {
    Identical,
    /// Ours refused with file and line; kubectl rendered it.
    Refused(String),
    /// Both refused.
    BothRefused,
}

fn check(case: &Path, rel: &str, mode: Reorder) -> Result<Outcome, String> {
    let expected = oracle(&case.join(rel), mode);
    let src = FsSource::new(case).map_err(|e| e.to_string())?;
    let ours = renderer::render(&src, rel, &RenderOptions { reorder: mode });
    match (expected, ours) {
        (Ok(e), Ok(a)) => match first_difference(&e, &a.to_yaml()) {
            None => Ok(Outcome::Identical),
            Some(d) => Err(format!("{mode:?}: SILENTLY DIFFERENT from kubectl: {d}")),
        },
        (Err(e), Ok(_)) => Err(format!(
            "{mode:?}: kubectl refuses ({}), ours rendered",
            e.trim()
        )),
        (Ok(_), Err(e)) if e.file.is_empty() || e.line == 0 => Err(format!(
            "{mode:?}: refused what kubectl renders without naming a file and line: {e}"
        )),
        (Ok(_), Err(e)) => Ok(Outcome::Refused(e.to_string())),
        (Err(_), Err(e)) if e.file.is_empty() => {
            Err(format!("{mode:?}: refused without naming a file: {e}"))
        }
        (Err(_), Err(_)) => Ok(Outcome::BothRefused),
    }
}

#[test]
fn odd_inputs_render_identically_or_fail_loudly() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "the corpus holds {} cases", cases.len());
    let (mut identical, mut refused, mut both) = (0, Vec::new(), 0);
    let mut failures = Vec::new();
    for case in &cases {
        let rel = std::fs::read_to_string(case.join("target"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        for mode in [Reorder::Legacy, Reorder::None] {
            match check(case, &rel, mode) {
                Ok(Outcome::Identical) => identical += 1,
                Ok(Outcome::Refused(e)) => refused.push(format!("{name}: {e}")),
                Ok(Outcome::BothRefused) => both += 1,
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    println!(
        "guard corpus: {} cases x 2 modes: {identical} identical, {} refused loudly, {both} refused by both",
        cases.len(),
        refused.len()
    );
    for r in &refused {
        println!("  refused: {r}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
