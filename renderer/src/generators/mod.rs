//! ConfigMap and Secret generators, with kustomize's name hash.
