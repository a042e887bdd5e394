//! Retry delays after failed reconciles: doubling from [`FIRST_RETRY`] up to the interval, with
//! jitter so that many agents failing on the same Git server do not retry in step.

use std::time::Duration;

/// Retries after a transient failure start here.
pub const FIRST_RETRY: Duration = Duration::from_secs(2);

/// Jitter: each delay is drawn from [delay × (1 − JITTER), delay].
const JITTER: f64 = 0.2;

#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Counts a failure and returns how long to wait before the next attempt. `transient`
    /// failures (network, API server) back off from [`FIRST_RETRY`]; others (bad content) wait
    /// for the interval, since retrying sooner cannot help.
    pub fn failed(&mut self, transient: bool, interval: Duration) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let base = if transient {
            let doubling = 2u32.saturating_pow(self.failures.saturating_sub(1).min(20));
            FIRST_RETRY.saturating_mul(doubling).min(interval)
        } else {
            interval
        };
        jittered(base, unit_random())
    }
}

/// `base` shortened by up to [`JITTER`], by `r` in [0, 1).
pub(crate) fn jittered(base: Duration, r: f64) -> Duration {
    base.mul_f64(1.0 - JITTER * r.clamp(0.0, 1.0))
}

/// Not cryptographic: it only spreads retries apart.
pub(crate) fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_double_up_to_the_interval_with_jitter() {
        let interval = Duration::from_secs(60);
        let mut b = Backoff::default();
        let bounds = [2, 4, 8, 16, 32, 60, 60];
        for max in bounds {
            let d = b.failed(true, interval);
            let max = Duration::from_secs(max);
            assert!(d <= max && d >= max.mul_f64(0.8), "{d:?} for {max:?}");
        }
        assert_eq!(b.failures(), bounds.len() as u32);
        b.succeeded();
        assert_eq!(b.failures(), 0);
        assert!(b.failed(true, interval) <= FIRST_RETRY);
    }

    #[test]
    fn content_failures_wait_for_the_interval() {
        let mut b = Backoff::default();
        let d = b.failed(false, Duration::from_secs(30));
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(24));
    }

    #[test]
    fn jitter_spans_the_range() {
        let base = Duration::from_secs(10);
        assert_eq!(jittered(base, 0.0), base);
        assert_eq!(jittered(base, 0.5), Duration::from_secs(9));
        assert!(jittered(base, 0.999_999) > Duration::from_secs(8));
    }
}
