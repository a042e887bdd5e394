//! What counts as drift: ignore rules shared by the agent and `kubectl gitops diff`, and redaction.

mod compare;
mod fields;
mod ignore;
pub mod pointer;
mod redact;

pub use compare::{FieldDrift, compare, normalise_secret};
pub use fields::{
    FieldPath, FieldSet, FieldsError, ListKind, ManagedFields, ManagedFieldsEntry, ManagerInfo,
    PathElement,
};
pub use ignore::{IgnoreRule, IgnoreRuleError, IgnoreRules, parse_ignore_annotation};
pub use redact::{REDACTED, is_secret, is_secret_value, redact_secret};
