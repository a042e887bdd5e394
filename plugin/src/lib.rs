//! The `kubectl gitops` plugin: one module per subcommand, one printer for all output.
