//! Fencing: with `--leader-elect`, every write and prune first asks whether this replica still
//! holds the lease *by its own monotonic clock*.
//!
//! A replica frozen (SIGSTOP, a long GC-like stall, a paused VM) past its lease wakes up with
//! its sync mid-flight and its `leading` flag still set, while another replica already leads.
//! The flag is only cleared once the election loop runs again, which may be after the sync's
//! next write. The fence does not wait for that: leadership is valid until the last successful
//! renewal *started* plus the renew deadline, which is shorter than the lease duration other
//! replicas wait before taking over, so the old leader's writes stop before a new leader starts.
//! The monotonic clock keeps running while the process is stopped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared by the election loop (which extends or revokes it) and every writer (which checks it).
#[derive(Clone, Debug, Default)]
pub struct Fence {
    /// `None`: no election, writes are always allowed.
    valid_until: Option<Arc<Mutex<Option<Instant>>>>,
}

/// A write refused because this replica may no longer be the leader.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not the leader: {0}")]
pub struct Fenced(String);

impl Fence {
    /// No leader election: every write is allowed.
    pub fn open() -> Self {
        Self { valid_until: None }
    }

    /// Leader election: closed until the first successful renewal.
    pub fn elected() -> Self {
        Self {
            valid_until: Some(Arc::default()),
        }
    }

    fn slot(&self) -> Option<std::sync::MutexGuard<'_, Option<Instant>>> {
        self.valid_until
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A renewal that started at `attempt_started` succeeded: writes are allowed until
    /// `attempt_started + renew_deadline`.
    pub fn renewed(&self, attempt_started: Instant, renew_deadline: Duration) {
        if let Some(mut slot) = self.slot() {
            *slot = Some(attempt_started + renew_deadline);
        }
    }

    /// The lease is held by someone else (or was released): no more writes.
    pub fn revoke(&self) {
        if let Some(mut slot) = self.slot() {
            *slot = None;
        }
    }

    /// Whether a write may go out now.
    pub fn check(&self) -> Result<(), Fenced> {
        let Some(slot) = self.slot() else {
            return Ok(());
        };
        match *slot {
            Some(until) if Instant::now() < until => Ok(()),
            Some(until) => Err(Fenced(format!(
                "the lease was last renewed more than {:.1}s ago; writes stop until it is renewed",
                (Instant::now() - until).as_secs_f64()
            ))),
            None => Err(Fenced("another replica holds the lease".into())),
        }
    }

    pub fn is_valid(&self) -> bool {
        self.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_fence_always_allows() {
        assert!(Fence::open().check().is_ok());
        Fence::open().revoke();
        assert!(Fence::open().is_valid());
    }

    #[test]
    fn elected_fence_follows_renewals_and_expires_by_the_clock() {
        let fence = Fence::elected();
        assert!(fence.check().is_err(), "closed before the first renewal");
        fence.renewed(Instant::now(), Duration::from_millis(200));
        assert!(fence.is_valid());
        let writer = fence.clone();
        std::thread::sleep(Duration::from_millis(250));
        // Nobody revoked it: a frozen election loop must not keep the writers going.
        let err = writer.check().unwrap_err().to_string();
        assert!(err.contains("last renewed"), "{err}");
        fence.renewed(Instant::now(), Duration::from_secs(10));
        assert!(writer.is_valid());
        fence.revoke();
        assert!(
            writer
                .check()
                .unwrap_err()
                .to_string()
                .contains("another replica")
        );
    }
}
