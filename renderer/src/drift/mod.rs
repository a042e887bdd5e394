//! What counts as drift: ignore rules shared by the agent and `kubectl gitops diff` (Secret
//! redaction is [`crate::redact`], re-exported here for drift reports).

mod compare;
mod fields;
pub mod foreign;
mod ignore;
pub mod pointer;
pub mod predict;

pub use crate::redact::{REDACTED, is_secret, is_secret_value};
pub use compare::{FieldDrift, compare, normalise_secret};
pub use fields::{
    FieldPath, FieldSet, FieldsError, ListKind, ManagedFields, ManagedFieldsEntry, ManagerInfo,
    PathElement,
};
pub use ignore::{IgnoreRule, IgnoreRuleError, IgnoreRules, parse_ignore_annotation};
