use std::process::ExitCode;

use clap::Parser;
use plugin::ExitStatus;
use plugin::cli::Cli;
use plugin::output::printer::Printer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer::from_args(&cli.output);
    match plugin::run(cli, &printer) {
        Ok(status) => status.into(),
        // `kubectl gitops render | head` closing the pipe early is not a failure.
        Err(err) if plugin::output::printer::is_broken_pipe(&err) => ExitStatus::Success.into(),
        Err(err) => {
            printer.error(&err);
            ExitStatus::Error.into()
        }
    }
}
