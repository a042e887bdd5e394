//! The in-cluster agent: fetch → verify → render → dry-run → apply → prune, and self-heal.
//!
//! One Deployment per namespace, namespaced RBAC only, no CRDs: everything the agent knows and
//! says lives in labels, annotations, the ApplySet parent ConfigMap, and Events.

pub mod applyset;
pub mod config;
pub mod git;
pub mod health;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod selfheal;
pub mod status;
pub mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use config::Config;
pub use reconcile::Agent;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("no namespace: pass --namespace (or GITOPS_NAMESPACE) outside a pod")]
    NoNamespace,
    #[error("kubernetes client: {0}")]
    Client(String),
}

/// Retries after a transient failure start here and double up to the interval.
const FIRST_RETRY: Duration = Duration::from_secs(2);

/// A client from `--kubeconfig`/KUBECONFIG, else the in-cluster service account.
pub async fn kube_client(config: &Config) -> Result<kube::Client, Error> {
    let err = |e: &dyn std::fmt::Display| Error::Client(e.to_string());
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| err(&format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| err(&e))?
        }
        None => kube::Config::incluster().map_err(|e| err(&e))?,
    };
    kube::Client::try_from(kube_config).map_err(|e| err(&e))
}

/// Runs the agent until `shutdown` resolves. Bad repository content never ends it: failures are
/// written to status and retried; only configuration errors return.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let namespace = config.resolve_namespace().ok_or(Error::NoNamespace)?;
    let client = kube_client(&config).await?;
    let interval = config.interval;
    let agent = Arc::new(Agent::new(config, client, namespace)?);
    tracing::info!(namespace = %agent.namespace, set = %agent.set.id, "gitops-agent starting");
    if let Err(e) = agent.load().await {
        tracing::warn!(error = %e, "could not read the previous status; starting fresh");
    }

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watchers = selfheal::Watchers::new(tx);
    let healer = tokio::spawn(selfheal::heal_loop(agent.clone(), rx));

    tokio::pin!(shutdown);
    let mut retry = FIRST_RETRY;
    loop {
        let delay = match agent.sync().await {
            Ok(()) => {
                retry = FIRST_RETRY;
                if agent.config.self_heal_enabled() {
                    watchers.ensure(&agent).await;
                }
                interval
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?retry, "sync failed");
                let delay = retry;
                retry = (retry * 2).min(interval);
                delay
            }
            Err(e) => {
                tracing::warn!(error = %e, "sync failed; keeping the last good state");
                interval
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(delay) => {}
            _ = agent.trigger.notified() => {}
        }
    }
    tracing::info!("shutting down");
    watchers.stop();
    healer.abort();
    Ok(())
}
