//! `promote`, `rollback`, `history`: release tags and the production agent's pinned revision.

pub mod config_map;
pub mod plan;
pub mod provenance;
pub mod repo;
pub mod rollback_allowance;
pub mod rules;
pub mod wait;
