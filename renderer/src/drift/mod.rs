//! What counts as drift: ignore rules shared by the agent and `kubectl gitops diff`, and redaction.
