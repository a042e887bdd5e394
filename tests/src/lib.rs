//! Test support: a real control plane per test run, a namespace per test, real Git servers.
//!
//! Nothing here is a mock. [`cluster`] runs the upstream kube-apiserver on embedded etcd
//! (built from `tests/control-plane` by `scripts/dev-cluster`), and [`git`] drives the real
//! `git` CLI and serves repositories over `git://`, smart HTTP and `file://`.
//!
//! Helpers return `anyhow::Result` with context naming the operation and the path or object,
//! because their only callers are tests.

pub mod binaries;
pub mod cluster;
pub mod etcd;
pub mod git;
mod net;
pub mod promtool;
pub mod sops;
