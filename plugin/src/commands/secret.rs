//! `kubectl gitops secret edit FILE`: a SOPS file decrypted into a private temporary file,
//! opened in `$EDITOR`, encrypted again for the same recipients and rules, and the temporary
//! file overwritten before it is removed. Plaintext never lands in the repository.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use renderer::sops;

use crate::ExitStatus;
use crate::output::printer::Printer;

pub const EXAMPLES: &str = "\
Examples:
  # Change a value of an encrypted Secret (keys found like sops: SOPS_AGE_KEY_FILE, ...)
  kubectl gitops secret edit overlays/prod/db.enc.yaml";

#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub action: SecretAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum SecretAction {
    /// Decrypt FILE into $EDITOR, then write it back encrypted for the same recipients
    Edit {
        /// A SOPS-encrypted file (YAML, JSON, dotenv or binary)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

pub fn run(args: &SecretArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match &args.action {
        SecretAction::Edit { file } => edit(file, printer),
    }
}

fn edit(file: &Path, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).with_context(|| format!("reading {name}"))?;
    let Some((recipients, rules)) = sops::settings(&name, &bytes)? else {
        bail!("{name}: not a SOPS-encrypted file (no sops metadata with a MAC)");
    };
    if recipients.is_empty() {
        bail!("{name}: has no age recipient to encrypt the new version for");
    }
    let keys = crate::git::sops_keys::discover()?;
    let plain = sops::decrypt(&name, &bytes, keys)?
        .ok_or_else(|| anyhow!("{name}: not a SOPS-encrypted file"))?;

    // Same extension, so the editor highlights it; tempfile creates it 0600.
    let suffix = file
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(".kubectl-gitops-secret-")
        .suffix(&suffix)
        .tempfile()
        .context("creating a private temporary file")?;
    let result = edit_in(temp.path(), &plain, &name, &recipients, &rules);
    shred(temp.path());
    drop(temp);
    match result? {
        None => {
            printer.info(&format!("{name}: unchanged"));
            Ok(ExitStatus::Success)
        }
        Some(encrypted) => {
            std::fs::write(file, encrypted).with_context(|| format!("writing {name}"))?;
            printer.info(&format!("{name}: encrypted for {}", recipients.join(", ")));
            Ok(ExitStatus::Success)
        }
    }
}

/// The new encrypted content, or `None` when the editor changed nothing.
fn edit_in(
    temp: &Path,
    plain: &[u8],
    name: &str,
    recipients: &[String],
    rules: &sops::Rules,
) -> anyhow::Result<Option<Vec<u8>>> {
    std::fs::write(temp, plain).context("writing the temporary file")?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_string());
    // Through the shell, as git does, so EDITOR may carry arguments ("code --wait").
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(temp)
        .status()
        .with_context(|| format!("running the editor {editor:?}"))?;
    if !status.success() {
        bail!("the editor {editor:?} exited with {status}; {name} was left as it was");
    }
    let edited = std::fs::read(temp).context("reading the edited file")?;
    if edited == plain {
        return Ok(None);
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Ok(Some(sops::encrypt(name, &edited, recipients, rules, &now)?))
}

/// Overwrites the plaintext before the file is unlinked.
fn shred(path: &Path) {
    if let Ok(len) = std::fs::metadata(path).map(|m| m.len())
        && let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path)
    {
        let _ = f.write_all(&vec![0u8; len as usize]);
        let _ = f.sync_all();
    }
}
