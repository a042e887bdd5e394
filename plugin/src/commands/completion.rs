use anyhow::Context;
use clap::{Args, ValueEnum};
use clap_complete::Shell;

use crate::ExitStatus;
use crate::constants::BIN_NAME;
use crate::output::printer::Printer;

pub const EXAMPLES: &str = "\
Examples:
  # Load completions for `kubectl-gitops` into the current bash session
  source <(kubectl gitops completion bash)

  # Install zsh completions
  kubectl gitops completion zsh > \"${fpath[1]}/_kubectl-gitops\"

  # Complete `kubectl gitops <TAB>` through kubectl (kubectl >= 1.26):
  # put the kubectl_complete-gitops executable next to kubectl-gitops on PATH";

#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell to generate the script for
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// The script completes the `kubectl-gitops` executable. Completing `kubectl gitops …`
/// goes through kubectl instead, which runs `kubectl_complete-gitops` (see `complete.rs`).
/// `cli` is the whole command line, passed in because `cli.rs` is built on the commands.
pub fn script(shell: CompletionShell, cli: &mut clap::Command) -> String {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, cli, BIN_NAME, &mut buf);
    let script = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        Shell::Bash => fix_bash_dashes(&script),
        _ => script,
    }
}

/// clap_complete's bash generator names the per-subcommand cases with `-` turned into
/// `__subcmd__`, but dispatches to them with `-` turned into `__`, so every subcommand of a
/// dashed binary falls through to no completion. Align the case labels with the dispatch.
fn fix_bash_dashes(script: &str) -> String {
    let dispatch = BIN_NAME.replace('-', "__");
    let broken = BIN_NAME.replace('-', "__subcmd__");
    script.replace(
        &format!("{broken}__subcmd__"),
        &format!("{dispatch}__subcmd__"),
    )
}

pub fn run(
    args: &CompletionArgs,
    cli: &mut clap::Command,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    printer
        .result(&script(args.shell, cli))
        .context("writing to stdout")?;
    Ok(ExitStatus::Success)
}
