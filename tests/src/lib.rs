//! Test support: a real control plane per test run, a namespace per test, real Git servers.
