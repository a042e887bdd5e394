//! The only channel between plugin and agent: labels, annotations and status on managed objects.
