use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::ExitStatus;
use crate::cli::{Cli, CompletionArgs, CompletionShell};
use crate::constants::BIN_NAME;
use crate::printer::Printer;

/// The script completes the `kubectl-gitops` executable. Completing `kubectl gitops …`
/// goes through kubectl instead, which runs `kubectl_complete-gitops` (see `complete.rs`).
pub fn script(shell: CompletionShell) -> String {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN_NAME, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

pub fn run(args: &CompletionArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    printer
        .result(&script(args.shell))
        .context("writing to stdout")?;
    Ok(ExitStatus::Success)
}
