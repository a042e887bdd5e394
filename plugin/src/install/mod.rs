//! `install`/`uninstall`: the agent's manifests for a namespace and the agent objects in the cluster.

pub mod live;
pub mod manifests;
pub mod stop;
