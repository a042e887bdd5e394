//! Strategic-merge and JSON6902 patches, and patch target selection.
