//! Leader election with a `coordination.k8s.io/v1` Lease, so only one of several replicas
//! reconciles. The algorithm is client-go's: expiry is judged by when *this* replica last saw
//! the lease change, never by comparing clocks with the holder.

use std::future::Future;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::fence::Fence;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Timing of the election (client-go's defaults).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// The leader gives up leading when it could not renew for this long (< lease_duration,
    /// so it stops before anyone else may start).
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self::for_lease(Duration::from_secs(15))
    }
}

impl Timing {
    /// client-go's proportions (15s / 10s / 2s) for any lease duration.
    pub fn for_lease(lease_duration: Duration) -> Self {
        Self {
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: lease_duration * 2 / 15,
        }
    }
}

/// This replica's identity: `POD_NAME` if set, else host name, pid and a random suffix. Two
/// replicas never share it: in containers every agent is pid 1, and a host name alone repeats
/// when two processes run on one machine.
pub fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.trim().is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "gitops-agent".into());
    format!("{host}-{}-{:08x}", std::process::id(), random_u32())
}

/// 32 random bits from the OS (std seeds `RandomState` from it; a fresh one per call).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    RandomState::new().hash_one(n) as u32
}

/// One replica's view of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: Timing,
    /// The lease spec last seen and when it was first seen in that state.
    observed: Option<(LeaseSpec, Instant)>,
}

impl LeaderElector {
    /// `identity` must be unique per replica (the pod name).
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    /// One attempt: creates, renews or takes over the lease. `Ok(true)`: this replica leads.
    /// Losing a race (409 Conflict/AlreadyExists) is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let now = MicroTime(Timestamp::now());
        let existing = match self.api.get_opt(&self.name).await {
            Ok(lease) => lease,
            Err(e) => return Err(self.err(e)),
        };
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now.clone(), now, 0)),
            };
            return self.write(self.api.create(&PostParams::default(), &lease).await);
        };

        let spec = lease.spec.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != spec) {
            self.observed = Some((spec.clone(), Instant::now()));
        }
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = match holder {
            Some(h) if h == self.identity => {
                let acquired = spec.acquire_time.clone().unwrap_or(now.clone());
                self.spec(acquired, now, transitions)
            }
            Some(_) if !self.expired(&spec) => return Ok(false),
            _ => self.spec(now.clone(), now, transitions + 1),
        };
        // resourceVersion stays set: the replace fails with 409 if anyone wrote in between.
        lease.spec = Some(new_spec);
        self.write(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
    }

    fn expired(&self, spec: &LeaseSpec) -> bool {
        let duration = spec
            .lease_duration_seconds
            .map_or(self.timing.lease_duration, |s| {
                Duration::from_secs(s.max(0) as u64)
            });
        self.observed
            .as_ref()
            .is_none_or(|(_, since)| since.elapsed() > duration)
    }

    fn spec(&self, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_duration.as_secs() as i32),
            acquire_time: Some(acquired),
            renew_time: Some(renewed),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    fn write(&mut self, result: Result<Lease, kube::Error>) -> Result<bool, LeaderError> {
        match result {
            Ok(lease) => {
                self.observed = lease.spec.map(|s| (s, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Gives the lease up if this replica holds it, so a standby takes over at once instead of
    /// after the lease expires.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            // Someone else wrote it: it is no longer ours to release.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Campaigns until `shutdown`, publishing whether this replica leads on `leading` and
    /// keeping `fence` (checked before every write) in step; releases the lease on the way out.
    /// The reconcile loop runs only while `leading` is true.
    pub async fn run(
        mut self,
        leading: watch::Sender<bool>,
        fence: Fence,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let started = Instant::now();
            // A renewal that hangs (a stalled connection) must not outlive the renew deadline:
            // the leader would go on leading on a lease nobody renews.
            let attempt =
                tokio::time::timeout(self.timing.renew_deadline, self.try_acquire_or_renew()).await;
            match attempt {
                Ok(Ok(true)) => fence.renewed(started, self.timing.renew_deadline),
                Ok(Ok(false)) => fence.revoke(),
                Ok(Err(e)) => {
                    // Keep leading through short API outages: the fence runs out by itself
                    // before the lease can expire for the other replicas.
                    tracing::warn!(error = %e, "leader election: could not acquire or renew");
                }
                Err(_) => tracing::warn!(
                    deadline = ?self.timing.renew_deadline,
                    "leader election: no answer from the API server within the renew deadline"
                ),
            }
            let is_leader = fence.is_valid();
            if *leading.borrow() != is_leader {
                tracing::info!(identity = %self.identity, leading = is_leader, "leadership changed");
            }
            leading.send_replace(is_leader);
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.timing.retry_period) => {}
            }
        }
        leading.send_replace(false);
        fence.revoke();
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "leader election: could not release the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replicas_without_pod_name_have_different_identities() {
        // In containers every replica is pid 1 on a host named after the pod; two calls in
        // one process stand for two replicas started alike.
        if std::env::var_os("POD_NAME").is_some() {
            return;
        }
        let (a, b) = (super::identity(), super::identity());
        assert_ne!(a, b, "two replicas would share the lease identity {a}");
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    }
}
