//! The `kubectl gitops` plugin: one module per subcommand, one printer for all output.
//!
//! `main.rs` only parses, calls [`run`], and turns the [`ExitStatus`] into a process exit code.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod complete;
pub mod constants;
pub mod git;
pub mod install;
pub mod output;
pub mod plan;
pub mod release;

use cli::{Cli, Command};
use output::printer::Printer;

/// Exit codes follow `kubectl diff`: scripts can tell "differences" from "broken".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Nothing to report.
    Success,
    /// The command worked and found differences or problems.
    Failure,
    /// The command could not do its job.
    Error,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
        })
    }
}

/// Runs one parsed invocation.
pub fn run(cli: Cli, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match cli.command {
        Command::Render(args) => commands::render::run(&args, printer),
        Command::Version(args) => commands::version::run(&args, printer),
        Command::Completion(args) => commands::completion::run(
            &args,
            &mut <Cli as clap::CommandFactory>::command(),
            printer,
        ),
        Command::Status(args) => commands::status::run(&args, &cli.kube, printer),
        Command::Explain(args) => commands::explain::run(&args, &cli.kube, printer),
        Command::Diff(args) => commands::diff::run(&args, &cli.kube, printer),
        Command::Doctor(args) => commands::doctor::run(&args, &cli.kube, printer),
        Command::BreakGlass(args) => commands::break_glass::run(&args, &cli.kube, printer),
        Command::Backfill(args) => commands::backfill::run(&args, &cli.kube, printer),
        Command::Install(args) => commands::install::run(&args, &cli.kube, printer),
        Command::Uninstall(args) => commands::uninstall::run(&args, &cli.kube, printer),
        Command::Promote(args) => commands::promote::run(&args, &cli.kube, printer),
        Command::Rollback(args) => commands::rollback::run(&args, &cli.kube, printer),
        Command::Prune(args) => commands::prune::run(&args, &cli.kube, printer),
        Command::History(args) => commands::history::run(&args, &cli.kube, printer),
        Command::Secret(args) => commands::secret::run(&args, printer),
        Command::Lint(args) => commands::lint::run(&args, printer),
    }
}
