//! Cargo resolves `[build-dependencies]` (here: the proc-macro side of the feature union)
//! only for a package that has a build script.
fn main() {}
