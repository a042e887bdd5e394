//! Leader election against the real API server: one holder at a time, hand-over on release,
//! take-over after expiry, and the campaign loop publishing who leads.

use std::time::Duration;

use agent::fence::Fence;
use agent::leader::{LeaderElector, Timing};
use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tests::cluster::{TestNamespace, admin_client};
use tokio::sync::{oneshot, watch};

const LEASE: &str = "gitops-agent-leader";

fn fast() -> Timing {
    Timing {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
    }
}

async fn holder(api: &Api<Lease>) -> Result<(Option<String>, i32)> {
    let lease = api.get(LEASE).await.context("reading the lease")?;
    let spec = lease.spec.unwrap_or_default();
    Ok((spec.holder_identity, spec.lease_transitions.unwrap_or(0)))
}

#[tokio::test]
async fn one_holder_release_and_expiry() -> Result<()> {
    let ns = TestNamespace::create("leader").await?;
    let client = admin_client().await?;
    let api: Api<Lease> = Api::namespaced(client.clone(), ns.name());
    let mut a = LeaderElector::new(client.clone(), ns.name(), LEASE, "agent-a", fast());
    let mut b = LeaderElector::new(client.clone(), ns.name(), LEASE, "agent-b", fast());

    assert!(a.try_acquire_or_renew().await?, "a creates the lease");
    assert!(
        !b.try_acquire_or_renew().await?,
        "b must not take a held lease"
    );
    assert!(a.try_acquire_or_renew().await?, "a renews");
    assert_eq!(holder(&api).await?, (Some("agent-a".into()), 0));

    // Release hands over at once, without waiting for expiry.
    a.release().await?;
    assert_eq!(holder(&api).await?.0, None);
    assert!(
        b.try_acquire_or_renew().await?,
        "b takes the released lease"
    );
    assert!(!a.try_acquire_or_renew().await?);
    assert_eq!(holder(&api).await?, (Some("agent-b".into()), 1));

    // b stops renewing (crashed): a takes over only after a full lease duration.
    assert!(!a.try_acquire_or_renew().await?);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !a.try_acquire_or_renew().await?,
        "the lease has not expired yet"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        a.try_acquire_or_renew().await?,
        "a takes over the expired lease"
    );
    assert_eq!(holder(&api).await?, (Some("agent-a".into()), 2));
    assert!(!b.try_acquire_or_renew().await?, "b, back, finds a leading");
    Ok(())
}

#[tokio::test]
async fn campaign_loop_fails_over_on_shutdown() -> Result<()> {
    let ns = TestNamespace::create("leader-run").await?;
    let client = admin_client().await?;
    let start = |id: &str| {
        let elector = LeaderElector::new(client.clone(), ns.name(), LEASE, id, fast());
        let (tx, rx) = watch::channel(false);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(tx, Fence::elected(), async {
            let _ = stopped.await;
        }));
        (rx, stop, task)
    };
    let (mut a_leads, a_stop, a_task) = start("agent-a");
    tokio::time::timeout(Duration::from_secs(10), a_leads.wait_for(|l| *l))
        .await
        .context("a never led")??;
    let (mut b_leads, b_stop, b_task) = start("agent-b");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!*b_leads.borrow(), "two leaders at once");

    a_stop.send(()).unwrap();
    a_task.await?;
    assert!(!*a_leads.borrow(), "a still claims to lead after shutdown");
    // a released the lease, so b leads within a retry period or two, not a lease duration.
    tokio::time::timeout(Duration::from_secs(2), b_leads.wait_for(|l| *l))
        .await
        .context("b did not take over after a released")??;
    b_stop.send(()).unwrap();
    b_task.await?;
    Ok(())
}

/// A client for the admin user whose connections go through `relay` (TLS passes through it).
async fn client_through(relay_port: u16) -> Result<kube::Client> {
    let path = tests::cluster::kubeconfig_path()?;
    let mut config = kube::config::Kubeconfig::read_from(path)?;
    for cluster in &mut config.clusters {
        if let Some(c) = cluster.cluster.as_mut() {
            let server = c.server.clone().context("cluster without a server")?;
            let (scheme_host, _port) = server.rsplit_once(':').context("server without a port")?;
            c.server = Some(format!("{scheme_host}:{relay_port}"));
        }
    }
    let options = kube::config::KubeConfigOptions {
        context: Some(tests::cluster::ADMIN_CONTEXT.into()),
        ..Default::default()
    };
    // No read timeout: a renewal on a silent connection hangs as long as the elector lets it.
    let config = kube::Config::from_custom_kubeconfig(config, &options).await?;
    Ok(kube::Client::try_from(config)?)
}

fn api_server_port() -> Result<u16> {
    let config = kube::config::Kubeconfig::read_from(tests::cluster::kubeconfig_path()?)?;
    let server = config
        .clusters
        .iter()
        .find_map(|c| c.cluster.as_ref()?.server.clone())
        .context("no server in the kubeconfig")?;
    server
        .rsplit_once(':')
        .and_then(|(_, p)| p.trim_end_matches('/').parse().ok())
        .context("no port in the server URL")
}

/// Issue #14: a renewal that hangs (the path to the API server black-holed, the connection
/// open and silent) kept the old leader leading, since the election loop waited on it forever.
/// Now each attempt has the renew deadline, and the fence every write checks runs out by the
/// clock: the old leader stops writing before the standby may take over.
#[tokio::test]
async fn a_hung_renewal_ends_leadership_before_another_replica_takes_over() -> Result<()> {
    let ns = TestNamespace::create("leader-hang").await?;
    let relay = tests::git::StallingRelay::start(api_server_port()?)?;
    let a_client = client_through(relay.port()).await?;
    let a = LeaderElector::new(a_client, ns.name(), LEASE, "agent-a", fast());
    let (tx, mut a_leads) = watch::channel(false);
    let a_fence = Fence::elected();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(a.run(tx, a_fence.clone(), async {
        let _ = stopped.await;
    }));
    tokio::time::timeout(Duration::from_secs(10), a_leads.wait_for(|l| *l))
        .await
        .context("a never led")??;
    assert!(a_fence.is_valid(), "the leader's fence is closed");

    relay.freeze();
    let frozen_at = std::time::Instant::now();
    tokio::time::timeout(
        fast().renew_deadline + Duration::from_millis(1500),
        a_leads.wait_for(|l| !*l),
    )
    .await
    .context("a hung renewal kept a leading")??;
    assert!(a_fence.check().is_err(), "writes still allowed");

    // b takes over only after the lease expired; a had stopped writing before that.
    let client = admin_client().await?;
    let mut b = LeaderElector::new(client, ns.name(), LEASE, "agent-b", fast());
    let mut b_led_at = None;
    while frozen_at.elapsed() < Duration::from_secs(15) {
        if b.try_acquire_or_renew().await? {
            b_led_at = Some(frozen_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let b_led_at = b_led_at.context("b never took over the abandoned lease")?;
    assert!(
        b_led_at >= fast().renew_deadline,
        "b led after {b_led_at:?}"
    );
    assert!(a_fence.check().is_err());
    relay.resume();
    stop.send(()).ok();
    tokio::time::timeout(Duration::from_secs(10), task).await??;
    Ok(())
}
