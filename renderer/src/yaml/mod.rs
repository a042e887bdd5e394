//! YAML with source positions in, and YAML out exactly as `kubectl kustomize` prints it.
