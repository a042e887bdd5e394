//! Updating references when a referenced object's name changes (prefix, suffix, hash).
