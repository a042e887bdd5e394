//! The real `sops` (v3.13.3, built from its Go module by `scripts/sops-tool`) and real age
//! keys (`age-keygen`, Debian package `age`), for the SOPS interoperability tests.
//!
//! Nothing is skipped: without Go or `age-keygen` these helpers fail the test, naming what is
//! missing (`.ci/run` installs both).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

use crate::cluster::workspace_root;

/// `scripts/sops-tool build`: the path of the cached `sops` binary.
pub fn sops_binary() -> Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        let script = workspace_root().join("scripts/sops-tool");
        let out = Command::new(&script)
            .arg("build")
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} build failed ({}): the SOPS interop tests need the real sops",
                script.display(),
                out.status
            ));
        }
        let path = PathBuf::from(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .trim(),
        );
        if !path.is_file() {
            return Err(format!("sops-tool printed {}, not a file", path.display()));
        }
        Ok(path)
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// An age key pair made by `age-keygen`.
#[derive(Debug, Clone)]
pub struct AgeKey {
    /// The `age-keygen` file (comments and the `AGE-SECRET-KEY-1…` line).
    pub file_text: String,
    pub recipient: String,
}

pub fn age_keygen() -> Result<AgeKey> {
    let out = Command::new("age-keygen").output().context(
        "running age-keygen (install the Debian package `age`; .ci/run does): the SOPS tests need real age keys",
    )?;
    if !out.status.success() {
        bail!(
            "age-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let file_text = String::from_utf8(out.stdout)?;
    let recipient = file_text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .ok_or_else(|| anyhow!("age-keygen printed no public key"))?
        .trim()
        .to_string();
    Ok(AgeKey {
        file_text,
        recipient,
    })
}

/// Runs `sops ARGS` in `dir` with `key_file` as `SOPS_AGE_KEY_FILE` (and nothing inherited
/// that could point sops at other keys).
pub fn sops(dir: &Path, key_file: Option<&Path>, args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(sops_binary()?);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join(".no-config"));
    if let Some(k) = key_file {
        cmd.env("SOPS_AGE_KEY_FILE", k);
    }
    cmd.output().context("running sops")
}

/// `sops ARGS`, which must succeed; its stdout.
pub fn sops_ok(dir: &Path, key_file: Option<&Path>, args: &[&str]) -> Result<Vec<u8>> {
    let out = sops(dir, key_file, args)?;
    if !out.status.success() {
        bail!(
            "sops {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}
