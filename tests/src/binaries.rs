//! Paths to the workspace's own binaries (`gitops-agent`, `kubectl-gitops`) for tests that
//! spawn them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};

use crate::cluster::workspace_root;

/// Path of binary `bin` of workspace package `package`, e.g.
/// `workspace_binary("agent", "gitops-agent")`.
///
/// Runs `cargo build -p <package> --bin <bin>` into the target directory this test executable
/// lives in (a no-op when it is up to date), so a test never runs a stale binary. Set
/// `GITOPS_TEST_PREBUILT=1` to skip cargo and only look next to the test executable (CI that
/// built everything beforehand). Built at most once per test process.
pub fn workspace_binary(package: &str, bin: &str) -> Result<PathBuf> {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    let key = format!("{package}/{bin}");
    if let Some(path) = built.get(&key) {
        return Ok(path.clone());
    }

    let path = build(package, bin, &[])?;
    built.insert(key, path.clone());
    Ok(path)
}

/// A copy at `copy_to` of binary `bin` built with extra cargo arguments (e.g.
/// `--no-default-features`), for a benchmark that runs two builds side by side. Build it
/// before [`workspace_binary`]: both land on the same path in the target directory.
pub fn workspace_binary_variant(
    package: &str,
    bin: &str,
    cargo_args: &[&str],
    copy_to: &Path,
) -> Result<PathBuf> {
    if std::env::var_os("GITOPS_TEST_PREBUILT").is_some() {
        bail!(
            "{bin} {cargo_args:?}: a build variant is never prebuilt (unset GITOPS_TEST_PREBUILT)"
        );
    }
    let path = build(package, bin, cargo_args)?;
    std::fs::copy(&path, copy_to)
        .with_context(|| format!("copying {} to {}", path.display(), copy_to.display()))?;
    Ok(copy_to.to_path_buf())
}

/// The cargo profile the agent ships with (`Cargo.toml`): a release build made for size.
pub const AGENT_PROFILE: &str = "agent-release";

fn build(package: &str, bin: &str, cargo_args: &[&str]) -> Result<PathBuf> {
    let (target_dir, mut profile_dir) = target_dirs()?;
    let release = profile_dir
        .file_name()
        .is_some_and(|name| name == "release");
    // A variant may name its profile; otherwise benchmarks measure the agent as it ships.
    let named = cargo_args
        .iter()
        .position(|a| *a == "--profile")
        .and_then(|i| cargo_args.get(i + 1));
    let shipped_agent = named.is_none() && release && package == "agent";
    if let Some(profile) = named {
        profile_dir = target_dir.join(profile);
    } else if shipped_agent {
        profile_dir = target_dir.join(AGENT_PROFILE);
    }
    let path = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    if std::env::var_os("GITOPS_TEST_PREBUILT").is_none() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", package, "--bin", bin])
            .args(cargo_args)
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(workspace_root());
        without_test_cargo_env(&mut cmd);
        if shipped_agent {
            cmd.args(["--profile", AGENT_PROFILE]);
        } else if release && named.is_none() {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .with_context(|| format!("running cargo build -p {package} --bin {bin}"))?;
        if !status.success() {
            bail!("cargo build -p {package} --bin {bin} failed with {status}");
        }
    }
    if !path.is_file() {
        bail!(
            "binary {bin} of package {package} not found at {}",
            path.display()
        );
    }
    Ok(path)
}

/// The target directory the running test executable was built into (`CARGO_TARGET_DIR` for a
/// script that runs cargo, so it reuses this build's directory).
pub fn target_dir() -> Result<PathBuf> {
    Ok(target_dirs()?.0)
}

/// The target directory and its profile directory (`debug`/`release`), derived from the
/// running test executable at `<target>/<profile>/deps/<test>-<hash>`.
fn target_dirs() -> Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().context("locating the running test executable")?;
    let deps = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent", exe.display()))?;
    let profile = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent()
    } else {
        Some(deps)
    }
    .ok_or_else(|| anyhow!("{} has no profile directory", exe.display()))?;
    let target = profile
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("{} has no target directory", profile.display()))?;
    Ok((target, profile.to_path_buf()))
}

/// Removes what cargo sets for the running test (its package's CARGO_MANIFEST_DIR,
/// CARGO_PKG_NAME, …) from a command that runs cargo. Inherited, they reach dependencies that
/// read them (ring's build tracks CARGO_MANIFEST_DIR) and make cargo rebuild ring, rustls and
/// kube for this build and again for the next one outside the tests.
pub fn without_test_cargo_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_BIN_NAME",
                "OUT_DIR",
            ]
            .contains(&name.as_ref())
        {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd
}
