//! Embeds the Git commit so `kubectl gitops version` can say exactly what was built.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GITOPS_GIT_COMMIT");
    // Builds from a tarball have no .git; an env var lets packagers supply the commit.
    let commit = std::env::var("GITOPS_GIT_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    if let Some(commit) = commit.filter(|c| !c.is_empty()) {
        println!("cargo:rustc-env=GITOPS_GIT_COMMIT={commit}");
    }
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
    }
}
