//! Where the external tools of the differential tests and the benchmark are: `kubectl` on
//! `PATH`, and the shared benchmark generator in `../shared` next to the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Run through `PATH`, so any machine with kubectl v5.5's kustomize is an oracle.
pub const KUBECTL: &str = "kubectl";

/// `<repo>/../shared/bench/gen_infra_repo.py`. In a linked git worktree the repository's
/// `../shared` is next to the main checkout, so that is tried second.
pub fn gen_infra_repo(repo_root: &Path) -> PathBuf {
    let rel = Path::new("../shared/bench/gen_infra_repo.py");
    let mut tried = vec![repo_root.join(rel)];
    let common = Command::new("git")
        .arg("-C")
        .arg(repo_root)
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(main_checkout) = common.as_deref().and_then(Path::parent) {
        tried.push(main_checkout.join(rel));
    }
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("gen_infra_repo.py not found; tried {tried:?}"))
}
