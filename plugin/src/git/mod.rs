//! The local clone: who committed each line, and what the tracked revision holds.

pub mod blame;
pub mod local_repo;
