//! The local clone: who committed each line, what the tracked revision holds, and the age keys that open its SOPS files.

pub mod blame;
pub mod local_repo;
pub mod sops_keys;
