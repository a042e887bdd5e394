//! One module per subcommand. Each exposes `run(args, printer) -> anyhow::Result<ExitStatus>`.

pub mod completion;
pub mod render;
pub mod version;
