use anyhow::Context;
use clap::Args;

use crate::ExitStatus;
use crate::constants::BIN_NAME;
use crate::output::printer::Printer;

pub const EXAMPLES: &str = "\
Examples:
  # Print the plugin version and the commit it was built from
  kubectl gitops version";

#[derive(Debug, Clone, Args)]
pub struct VersionArgs {}

/// The commit the binary was built from, when build.rs could find one.
pub const GIT_COMMIT: Option<&str> = option_env!("GITOPS_GIT_COMMIT");

pub fn version_line() -> String {
    let version = env!("CARGO_PKG_VERSION");
    match GIT_COMMIT {
        Some(commit) => format!("{BIN_NAME} {version} ({commit})\n"),
        None => format!("{BIN_NAME} {version}\n"),
    }
}

pub fn run(_args: &VersionArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    printer
        .result(&version_line())
        .context("writing to stdout")?;
    Ok(ExitStatus::Success)
}
