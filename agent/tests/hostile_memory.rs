//! The agent's peak memory on the hostile repository corpus (issue #14), against the memory
//! limit of its manifest: each input is committed to a real Git repository and rendered the
//! way the agent renders (Git tree source, SOPS decryption, guardrails), in a child process
//! of its own so the peak (VmHWM) is that input's alone.

#[path = "../../renderer/tests/hostile/corpus.rs"]
mod corpus;

use std::path::Path;
use std::process::Command;

const CASE_ENV: &str = "GITOPS_HOSTILE_CASE";

/// `resources.limits.memory` of the agent's container in `manifests/base/deployment.yaml`.
fn manifest_memory_limit_bytes() -> u64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base/deployment.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let after = &text[text.find("limits:").expect("limits in the manifest")..];
    let line = after
        .lines()
        .find(|l| l.trim_start().starts_with("memory:"))
        .expect("a memory limit");
    let value = line.split(':').nth(1).unwrap().trim();
    let (n, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit()).unwrap());
    let mult = match unit {
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        other => panic!("unit {other}"),
    };
    n.parse::<u64>().unwrap() * mult
}

fn commit_tree(dir: &Path) -> (git2::Repository, git2::Oid) {
    let repo = git2::Repository::init(dir).unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    let tree_id = index.write_tree().unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let id = {
        let tree = repo.find_tree(tree_id).unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "hostile", &tree, &[])
            .unwrap()
    };
    (repo, id)
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The child: renders one committed input as the agent does, on a thread with the agent's
/// stack size, and prints its peak memory.
#[test]
#[ignore = "run by agent_memory_stays_under_the_manifest_limit in a child process"]
fn render_one_hostile_input() {
    let dir = std::env::var(CASE_ENV).expect("run by the parent test");
    let outcome = std::thread::Builder::new()
        .stack_size(agent::render::RENDER_STACK_BYTES)
        .spawn(move || {
            let repo = git2::Repository::open(&dir).unwrap();
            let commit = repo.head().unwrap().peel_to_commit().unwrap().id();
            let src = gittree::GitTreeSource::from_commit(repo, commit).unwrap();
            let keys = renderer::sops::AgeKeys::default();
            match agent::render::render(&src, "", &keys, &[]) {
                Ok(objects) => format!("rendered {} objects", objects.len()),
                Err(e) => format!(
                    "refused: {}",
                    e.to_string().chars().take(160).collect::<String>()
                ),
            }
        })
        .unwrap()
        .join()
        .unwrap();
    println!("HOSTILE-RESULT peak={} {outcome}", vm_hwm_kib());
}

#[test]
fn agent_memory_stays_under_the_manifest_limit() {
    let limit = manifest_memory_limit_bytes();
    let exe = std::env::current_exe().unwrap();
    let mut worst = (0u64, String::new());
    let mut over = Vec::new();
    let cases = corpus::cases();
    for case in &cases {
        let tmp = tempfile::tempdir().unwrap();
        case.write(tmp.path());
        commit_tree(tmp.path());
        let out = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "render_one_hostile_input",
                "--nocapture",
            ])
            .env(CASE_ENV, tmp.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("HOSTILE-RESULT"))
            .unwrap_or_else(|| {
                panic!(
                    "{}: the child died ({}): {}",
                    case.name,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let peak: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("peak="))
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024;
        eprintln!(
            "{:<36} peak {:>6.1} MiB  {}",
            case.name,
            peak as f64 / 1048576.0,
            line.splitn(3, ' ').nth(2).unwrap_or("")
        );
        assert!(line.contains("refused"), "{}: {line}", case.name);
        if peak > worst.0 {
            worst = (peak, case.name.to_string());
        }
        if peak > limit {
            over.push(format!("{}: {} MiB", case.name, peak >> 20));
        }
    }
    eprintln!(
        "peak agent memory over {} hostile inputs: {:.1} MiB ({}), limit {} MiB",
        cases.len(),
        worst.0 as f64 / 1048576.0,
        worst.1,
        limit >> 20
    );
    assert!(
        over.is_empty(),
        "over the {} MiB limit: {over:?}",
        limit >> 20
    );
}
