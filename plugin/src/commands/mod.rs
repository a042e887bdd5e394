//! One module per subcommand. Each exposes `run(args, printer) -> anyhow::Result<ExitStatus>`.

pub mod backfill;
pub mod break_glass;
pub mod completion;
pub mod diff;
pub mod doctor;
pub mod explain;
pub mod history;
pub mod history_drift;
pub mod install;
pub mod lint;
pub mod promote;
pub mod prune;
pub mod render;
pub mod rollback;
pub mod secret;
pub mod status;
pub mod uninstall;
pub mod version;
