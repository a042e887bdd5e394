//! Pure planning: the desired objects as the agent would send them, and edits to write back to Git.

pub mod backfill_edit;
pub mod backfill_secret;
pub mod change_plan;
pub mod desired;
