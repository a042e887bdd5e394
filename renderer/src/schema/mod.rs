//! What the renderer knows about Kubernetes types: merge keys, patch strategies, field specs.
//!
//! The built-in merge-key table is generated (`renderer/schema-gen/gen_schema.py`) from the
//! Kubernetes v1.21.2 OpenAPI document, the one `kubectl kustomize` (kustomize v5.5.0) embeds:
//! using a newer schema would merge lists kustomize replaces (e.g. `schedulingGates`,
//! `resourceClaims`) and break byte-identity. `gen_schema.py --diff` lists the differences to
//! newer releases.

mod fieldspecs;
#[rustfmt::skip]
mod fieldspecs_table;
#[rustfmt::skip]
mod k8s_table;
mod table;

pub use fieldspecs::{FieldSpec, FieldSpecs, Gvk, NameBackRef, builtin_field_specs};
pub use table::{Schema, SchemaError, SchemaRef, effective_namespace, is_cluster_scoped};
