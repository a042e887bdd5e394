//! The in-cluster agent: fetch → verify → render → dry-run → apply → prune, and self-heal.
//!
//! One Deployment per namespace, namespaced RBAC only, no CRDs: everything the agent knows and
//! says lives in labels, annotations, the ApplySet parent ConfigMap, and Events.

pub mod applyset;
pub mod config;
pub mod drift_history;
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
use tokio::sync::watch;

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

/// The Lease used with `--leader-elect`.
pub const LEASE_NAME: &str = "gitops-agent";

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
    let webhook_secret = match &config.webhook_secret_file {
        Some(path) => Some(
            std::fs::read(path)
                .map(|s| s.trim_ascii_end().to_vec())
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Config(format!("--listen {}: {e}", config.listen)))?;
    let client = kube_client(&config).await?;
    let interval = config.interval;
    let leader_elect = config.leader_elect;
    let agent = Arc::new(Agent::new(config, client.clone(), namespace)?);
    tracing::info!(namespace = %agent.namespace, set = %agent.set.id, listen = ?listener.local_addr().ok(), "gitops-agent starting");

    // Every background task stops when this flips.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let readiness = Arc::new(http::Readiness::new(leader_elect));
    let state = Arc::new(http::HttpState {
        metrics: agent.metrics.clone(),
        readiness: readiness.clone(),
        webhook_secret,
        trigger: agent.trigger.clone(),
    });
    let server = tokio::spawn(http::serve(listener, state, stopped()));

    let (leading_tx, mut leading) = watch::channel(!leader_elect);
    let elector = leader_elect.then(|| {
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("gitops-agent-{}", std::process::id()));
        let elector = leader::LeaderElector::new(
            client,
            &agent.namespace,
            LEASE_NAME,
            &identity,
            leader::Timing::default(),
        );
        tokio::spawn(elector.run(leading_tx, stopped()))
    });

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watchers = selfheal::Watchers::new(tx);
    let healer = tokio::spawn(selfheal::heal_loop(agent.clone(), rx, leading.clone()));

    tokio::pin!(shutdown);
    let mut loaded = false;
    let mut retry = FIRST_RETRY;
    loop {
        if !*leading.borrow_and_update() {
            readiness.set_leading(false);
            watchers.stop();
            tokio::select! {
                _ = &mut shutdown => break,
                _ = leading.changed() => continue,
            }
        }
        readiness.set_leading(true);
        if !loaded {
            // Read what a previous run (or the previous leader) left on the parent.
            match agent.load().await {
                Ok(()) => loaded = true,
                Err(e) => tracing::warn!(error = %e, "could not read the previous status"),
            }
        }
        let started = std::time::Instant::now();
        let outcome = agent.sync().await;
        let result = match &outcome {
            Ok(()) => renderer::protocol::SyncResult::Synced,
            Err(e) => e.result(),
        };
        agent.metrics.record_reconcile(result, started.elapsed());
        readiness.set_api_reachable(
            !matches!(&outcome, Err(reconcile::SyncError::Api(e)) if e.code.is_none_or(|c| c >= 500)),
        );
        readiness.mark_attempted();
        let delay = match outcome {
            Ok(()) => {
                retry = FIRST_RETRY;
                // Without self-heal the watches still run: drift is reported at once and
                // corrected by the next periodic resync.
                watchers.ensure(&agent).await;
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
            // Without election the sender is gone and `changed` would return at once.
            _ = leading.changed(), if leader_elect => {}
        }
    }
    tracing::info!("shutting down");
    watchers.stop();
    healer.abort();
    stop_tx.send_replace(true);
    if let Some(elector) = elector {
        // Releasing the lease lets a standby take over at once.
        let _ = elector.await;
    }
    let _ = server.await;
    Ok(())
}
