//! The Kustomize engine: kustomization files, resources, components, transformers, ordering.
