//! One integration-test binary; each module is a scenario family.
