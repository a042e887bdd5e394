//! Bounds on what one client can hold of the listener (slowloris and the like).
//!
//! Every connection has a deadline for its request head, for its body and for its whole life,
//! and a peer holds at most [`Limits::per_peer`] connections at once, so a client that opens
//! connections and trickles bytes never keeps a webhook delivery or a scrape from another
//! address out; [`Limits::connections`] bounds the file descriptors all peers hold. A connection
//! over a cap is closed as soon as it is accepted. (Behind an ingress controller every delivery
//! comes from its address; controllers buffer a request before passing it on, so a slow client
//! stops there.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once, all peers together.
    pub connections: usize,
    /// Connections open at once from one IP address.
    pub per_peer: usize,
    /// Until the request head has arrived.
    pub header_timeout: Duration,
    /// Until the whole body has arrived, once the head has.
    pub body_timeout: Duration,
    /// The longest a connection stays open (keep-alive included).
    pub lifetime: Duration,
    /// The largest webhook body read (push payloads are small).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 128,
            per_peer: 16,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(60),
            max_body: 1 << 20,
        }
    }
}

/// Who holds how many connections.
pub struct Admission {
    limits: Limits,
    total: Arc<Semaphore>,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Held for as long as a connection is served; frees its slots when dropped.
pub struct Slot {
    _total: OwnedSemaphorePermit,
    peer: IpAddr,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = peers.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Self {
            total: Arc::new(Semaphore::new(limits.connections)),
            peers: Arc::default(),
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A slot for a new connection from `peer`, or `None` when a cap is reached.
    pub fn admit(&self, peer: IpAddr) -> Option<Slot> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let held = peers.get(&peer).copied().unwrap_or(0);
        if held >= self.limits.per_peer {
            return None;
        }
        let total = self.total.clone().try_acquire_owned().ok()?;
        peers.insert(peer, held + 1);
        Some(Slot {
            _total: total,
            peer,
            peers: self.peers.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_peer_and_in_total_and_frees_on_drop() {
        let admission = Admission::new(Limits {
            connections: 3,
            per_peer: 2,
            ..Limits::default()
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = admission.admit(a).unwrap();
        let _a2 = admission.admit(a).unwrap();
        assert!(admission.admit(a).is_none(), "a third from one peer");
        let b1 = admission.admit(b).unwrap();
        assert!(admission.admit(b).is_none(), "over the total");
        drop(b1);
        let _b1 = admission.admit(b).unwrap();
        drop(a1);
        assert!(admission.admit(a).is_some(), "a freed slot is reused");
    }
}
