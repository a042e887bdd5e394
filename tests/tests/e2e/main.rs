//! One integration-test binary; each module is a scenario family.
//!
//! Run with `cargo test -p tests`. The first run on a machine builds the control plane
//! (see `scripts/dev-cluster`); set `GITOPS_TEST_KUBECONFIG` to reuse a running cluster.

mod cluster;
mod git;
mod agent_harness;
mod agent_sync;
mod agent_selfheal;
mod agent_prune;
mod agent_restart;
mod agent_breakglass;
mod agent_leader;
mod agent_verify;
mod plugin_harness;
mod plugin_status;
mod plugin_diff;
mod plugin_explain;
mod plugin_doctor;
