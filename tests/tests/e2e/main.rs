//! One integration-test binary; each module is a scenario family.
//!
//! Run with `cargo test -p tests`. The first run on a machine builds the control plane
//! (see `scripts/dev-cluster`); set `GITOPS_TEST_KUBECONFIG` to reuse a running cluster.

mod agent_admission;
mod agent_breakglass;
mod agent_breakglass_limits;
mod agent_core;
mod agent_fetch;
mod agent_guardrails;
mod agent_harness;
mod agent_health;
mod agent_hook;
mod agent_image;
mod agent_leader;
mod agent_metrics;
mod agent_privilege;
mod agent_prune;
mod agent_prune_guard;
mod agent_prune_options;
mod agent_restart;
mod agent_revision;
mod agent_selfheal;
mod agent_selfheal_off;
mod agent_signatures;
mod agent_sops;
mod agent_sync;
mod agent_verify;
mod cluster;
mod drift_backfill;
mod drift_predict;
mod drift_property;
mod fault_apiserver;
mod fault_cache;
mod fault_discovery;
mod fault_kill;
mod fault_leader;
mod fault_throttle;
mod git;
mod monitoring;
mod packaging;
mod plugin_backfill;
mod plugin_breakglass;
mod plugin_diff;
mod plugin_doctor;
mod plugin_explain;
mod plugin_fleet;
mod plugin_harness;
mod plugin_install;
mod plugin_promote;
mod plugin_push;
mod plugin_sops;
mod plugin_status;
mod rollout;
