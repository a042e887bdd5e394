//! Everything the user sees: the printer, machine-readable reports, and diffs.

pub mod printer;
pub mod report;
pub mod terminal;
pub mod unified_diff;

pub use printer::{ColorChoice, OutputArgs};
