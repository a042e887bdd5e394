//! What the renderer knows about Kubernetes types: merge keys, patch strategies, field specs.
