//! Hostile repository content (issue #14): every input of the corpus fails with an error
//! naming a file, within seconds, without a panic. The agent's peak memory on the same
//! corpus is measured in `agent/tests/hostile_memory.rs`.

mod common;
#[path = "hostile/corpus.rs"]
mod corpus;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use renderer::{FsSource, RenderOptions};

/// Far above what any case needs once the limits hold; a hang or exponential fan-out
/// blows it.
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn every_hostile_input_fails_clearly() {
    let cases = corpus::cases();
    assert!(cases.len() >= 30, "the corpus holds {} inputs", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let tmp = tempfile::tempdir().unwrap();
        case.write(tmp.path());
        let root = tmp.path().to_path_buf();
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || {
                let src = FsSource::new(&root).unwrap();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    renderer::render(&src, ".", &RenderOptions::default())
                }));
                let _ = tx.send(r.map_err(|_| ()).map(|r| r.map(|ok| ok.to_yaml())));
            })
            .unwrap();
        let outcome = match rx.recv_timeout(DEADLINE) {
            Err(_) => Err(format!("no answer within {DEADLINE:?} (hang or fan-out)")),
            Ok(Err(())) => Err("panicked".to_string()),
            Ok(Ok(Ok(yaml))) => Err(format!(
                "rendered ({} bytes) instead of failing",
                yaml.len()
            )),
            Ok(Ok(Err(e))) if e.file.is_empty() => Err(format!("error names no file: {e}")),
            Ok(Ok(Err(e))) if !e.to_string().to_lowercase().contains(case.expect) => {
                Err(format!("error does not say {:?}: {e}", case.expect))
            }
            Ok(Ok(Err(e))) => Ok(e),
        };
        match outcome {
            Ok(e) => eprintln!(
                "{:<36} {:>6} ms  {}",
                case.name,
                started.elapsed().as_millis(),
                short(&e.to_string())
            ),
            Err(why) => {
                eprintln!("{:<36} FAILED: {}", case.name, short(&why));
                failures.push(format!("{}: {}", case.name, short(&why)));
            }
        }
        // A hung case's thread still holds the tree; leak it rather than wait.
        std::mem::forget(tmp);
    }
    assert!(
        failures.is_empty(),
        "{} of the corpus failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn short(s: &str) -> String {
    if s.len() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The cycles through symlinks are refused by `kubectl kustomize` too, so refusing them
/// keeps the renderer a drop-in for it.
#[test]
fn symlink_cycles_are_refused_by_kubectl_as_well() {
    for case in corpus::cases() {
        if !matches!(case.name, "symlinks-to-dot-fan-out" | "symlink-to-parent") {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        case.write(tmp.path());
        let oracle = common::oracle(tmp.path(), renderer::Reorder::Legacy);
        assert!(oracle.is_err(), "{}: kubectl rendered it", case.name);
        let src = FsSource::new(tmp.path()).unwrap();
        let e = renderer::render(&src, ".", &RenderOptions::default()).unwrap_err();
        assert!(e.message.contains("cycle detected"), "{}: {e}", case.name);
    }
}
