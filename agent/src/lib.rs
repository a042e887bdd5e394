//! The in-cluster agent: fetch → verify → render → dry-run → apply → prune, and self-heal.
//!
//! One Deployment per namespace, namespaced RBAC only, no CRDs: everything the agent knows and
//! says lives in labels, annotations, the ApplySet parent ConfigMap, and Events.

pub mod applyset;
pub mod backoff;
pub mod client;
pub mod config;
pub mod drift_history;
pub mod fence;
pub mod git;
pub mod health;
pub mod http;
pub mod lastgood;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod seen;
pub mod selfheal;
pub mod status;
pub mod verify;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

pub use client::{Clients, kube_clients};
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

/// After a restart from the cached render, how long the first sync has to begin its own check of
/// every object before self-heal checks them from the cache (Git down or slow).
const RESUME_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The Lease used with `--leader-elect`.
pub const LEASE_NAME: &str = "gitops-agent";

/// Runs the agent until `shutdown` resolves. Bad repository content never ends it: failures are
/// written to status and retried; only configuration errors return.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let namespace = config.resolve_namespace().ok_or(Error::NoNamespace)?;
    let webhook_secret = match &config.webhook_secret_file {
        Some(path) => Some(http::webhook::read_secret(path).map_err(Error::Config)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Config(format!("--listen {}: {e}", config.listen)))?;
    let clients = kube_clients(&config).await?;
    let client = clients.election.clone();
    let leader_elect = config.leader_elect;
    let lease_duration = config.lease_duration;
    let unready_after = config.unready_after();
    let agent = Arc::new(Agent::new(config, clients, namespace)?);
    tracing::info!(namespace = %agent.namespace, set = %agent.set.id, listen = ?listener.local_addr().ok(), "gitops-agent starting");

    // Every background task stops when this flips.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let readiness = Arc::new(http::Readiness::new(leader_elect, unready_after));
    let state = Arc::new(http::HttpState {
        metrics: agent.metrics.clone(),
        readiness: readiness.clone(),
        webhook_secret,
        trigger: agent.trigger.clone(),
    });
    let server = tokio::spawn(http::serve(listener, state, stopped()));

    let (leading_tx, mut leading) = watch::channel(!leader_elect);
    let elector = leader_elect.then(|| {
        let elector = leader::LeaderElector::new(
            client,
            &agent.namespace,
            LEASE_NAME,
            &leader::identity(),
            leader::Timing::for_lease(lease_duration),
        );
        tokio::spawn(elector.run(leading_tx, agent.cluster.fence().clone(), stopped()))
    });

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let heal_tx = tx.clone();
    let mut watchers = selfheal::Watchers::new(tx);
    let healer = tokio::spawn(selfheal::heal_loop(agent.clone(), rx, leading.clone()));

    tokio::pin!(shutdown);
    let mut loaded = false;
    let mut resumed = false;
    loop {
        if !*leading.borrow_and_update() {
            readiness.set_leading(false);
            watchers.stop(&agent.seen);
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
        if !resumed {
            resumed = true;
            // Guard the namespace from the cached render before Git answers (or if it never
            // does): watches start now, and every object is checked once, unless the first
            // sync gets to check them all first (it held the lock behind a second full pass,
            // doubling a restart's sync at 1000 objects).
            if agent.resume_from_cache().await.is_some() {
                watchers.ensure(&agent).await;
                let agent = agent.clone();
                let heal_tx = heal_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RESUME_GRACE).await;
                    if !agent.has_swept() {
                        let _ = heal_tx.send(reconcile::HealRequest::All);
                    }
                });
            }
        }
        let started = std::time::Instant::now();
        readiness.start_attempt();
        let outcome = agent.sync().await;
        memory::release_free_heap();
        let result = match &outcome {
            Ok(()) => renderer::protocol::SyncResult::Synced,
            Err(e) => e.result(),
        };
        agent.metrics.record_reconcile(result, started.elapsed());
        readiness.set_api_reachable(
            !matches!(&outcome, Err(reconcile::SyncError::Api(e)) if e.code.is_none_or(|c| c >= 500)),
        );
        readiness.finish_attempt(outcome.is_ok());
        // Without self-heal the watches still run: drift is reported at once and corrected by
        // the next periodic resync. After a failure they follow the last good revision.
        watchers.ensure(&agent).await;
        let delay = agent.next_delay();
        match &outcome {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?delay, "sync failed")
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "sync failed; keeping the last good state")
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(delay) => {}
            _ = agent.trigger.notified() => {}
            // Without election the sender is gone and `changed` would return at once.
            _ = leading.changed(), if leader_elect => {}
        }
    }
    tracing::info!("shutting down");
    watchers.stop(&agent.seen);
    healer.abort();
    stop_tx.send_replace(true);
    if let Some(elector) = elector {
        // Releasing the lease lets a standby take over at once.
        let _ = elector.await;
    }
    let _ = server.await;
    Ok(())
}
