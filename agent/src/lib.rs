//! The in-cluster agent: fetch → verify → render → dry-run → apply → prune, and self-heal.
