//! Kustomize's built-in transformer field specs (api/konfig/builtinpluginconsts).
