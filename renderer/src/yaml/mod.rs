//! YAML with source positions in, and YAML out exactly as `kubectl kustomize` prints it.

pub mod emit;
pub mod parse;
pub mod scalar;

pub use emit::{key_cmp, to_yaml, to_yaml_stream};
pub use parse::{Document, Pos, Positions, YamlError, escape_pointer, parse_documents};
