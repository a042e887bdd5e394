//! The cluster side: kubeconfig and connection, the live objects and the agent's ApplySet parent.

pub mod kube_context;
pub mod live;
pub mod session;
pub mod tracked;

pub use kube_context::{KubeArgs, RequestTimeout};
