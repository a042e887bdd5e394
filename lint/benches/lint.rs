//! `kubectl gitops lint`'s engine against `kubectl kustomize` of the same overlays, in the
//! same run, on repositories from `shared/bench/gen_infra_repo.py`.
//!
//! `cargo bench -p lint` (sizes from `BENCH_APPS`, default `200,1000`): lint builds every root
//! kustomization of the generated repository (`clusters/dev`, `clusters/staging`,
//! `clusters/prod`) and runs every rule, schema validation included; kubectl only renders
//! those three overlays. The generator is found next to the repository (`<repo>/../shared`,
//! or higher up for worktrees), never by an absolute path.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const GENERATOR: &str = "shared/bench/gen_infra_repo.py";
const RUNS: usize = 3;

fn generator() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    repo.ancestors()
        .skip(1)
        .map(|dir| dir.join(GENERATOR))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{GENERATOR} not found next to the repository"))
}

/// CPU time (user + system) of this process so far, all threads: fields 14 and 15 of
/// /proc/self/stat, in 10 ms clock ticks.
fn cpu_now() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((tick(11) + tick(12)) * 10)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_APPS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![200, 1000]);
    let generator = generator();
    println!(
        "{:>6} {:>8} {:>10} {:>10} {:>9} {:>12} {:>12} {:>8} {:>8}",
        "apps",
        "objects",
        "lint ms",
        "lint cpu",
        "findings",
        "kubectl ms",
        "kubectl cpu",
        "wall x",
        "cpu x"
    );
    for n in sizes {
        let tmp = tempfile::tempdir().expect("tempdir");
        let st = Command::new("python3")
            .arg(&generator)
            .arg(tmp.path())
            .args(["--apps", &n.to_string()])
            .status()
            .expect("run generator");
        assert!(st.success(), "generator failed");
        let source = renderer::FsSource::new(tmp.path()).expect("source");
        let mut best = (Duration::MAX, Duration::MAX);
        let mut report = None;
        for _ in 0..RUNS {
            let (start, cpu0) = (Instant::now(), cpu_now());
            let r = lint::lint(&source, None).expect("lint runs");
            best = (best.0.min(start.elapsed()), best.1.min(cpu_now() - cpu0));
            report = Some(r);
        }
        let report = report.expect("ran");
        assert_eq!(report.targets.len(), 3, "{:?}", report.targets);
        assert!(
            report
                .findings
                .iter()
                .all(|f| f.rule != lint::rules::RENDER_ERROR),
            "every overlay renders"
        );
        let (mut k_wall, mut k_cpu) = (Duration::ZERO, Duration::ZERO);
        for target in &report.targets {
            let (wall, cpu) = kubectl_kustomize(&tmp.path().join(target));
            k_wall += wall;
            k_cpu += cpu;
        }
        println!(
            "{:>6} {:>8} {:>10.1} {:>10.1} {:>9} {:>12.1} {:>12.1} {:>7.1}x {:>7.1}x",
            n,
            report.objects,
            ms(best.0),
            ms(best.1),
            report.findings.len(),
            ms(k_wall),
            ms(k_cpu),
            ms(k_wall) / ms(best.0),
            ms(k_cpu) / ms(best.1).max(1.0)
        );
    }
}

/// Wall and CPU (user + system, from GNU time) of one `kubectl kustomize DIR`.
fn kubectl_kustomize(dir: &Path) -> (Duration, Duration) {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "cpu_s %U %S", "kubectl", "kustomize"])
        .arg(dir)
        .output()
        .expect("run kubectl");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cpu = stderr
        .lines()
        .find_map(|l| l.strip_prefix("cpu_s "))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|x| x.parse::<f64>().ok())
                .sum::<f64>()
        })
        .unwrap_or(0.0);
    (wall, Duration::from_secs_f64(cpu))
}
