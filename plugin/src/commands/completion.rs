use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::ExitStatus;
use crate::cli::{Cli, CompletionArgs, CompletionShell};
use crate::constants::BIN_NAME;
use crate::output::printer::Printer;

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

pub fn run(args: &CompletionArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    printer
        .result(&script(args.shell))
        .context("writing to stdout")?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bash_dispatch_target_has_a_case() {
        let bash = script(CompletionShell::Bash);
        let targets: Vec<&str> = bash
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("cmd=\"")
                    .and_then(|r| r.strip_suffix('"'))
            })
            .filter(|target| !target.is_empty())
            .collect();
        assert!(targets.len() >= 4, "{targets:?}");
        for target in targets {
            assert!(
                bash.contains(&format!("\n        {target})\n")),
                "no case for {target}"
            );
        }
    }
}
