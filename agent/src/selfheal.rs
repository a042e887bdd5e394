//! Watches the managed kinds and turns changes made by others into prompt heals.
//!
//! Watch events are debounced (a `kubectl apply` touching several objects heals once), the
//! agent's own writes are recognised by resourceVersion and ignored, a watch's (re)list checks
//! the members it did not list as the agent left them, and an expiring break-glass triggers a
//! check of everything.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use renderer::protocol::GroupKind;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::reconcile::plan::ObjectKey;
use crate::reconcile::{Agent, HealRequest};
use crate::seen::SeenVersions;

/// How long to gather watch events before healing.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// One watcher per managed kind, started and stopped as the set's kinds change.
pub struct Watchers {
    tx: UnboundedSender<HealRequest>,
    running: HashMap<GroupKind, JoinHandle<()>>,
}

impl Watchers {
    pub fn new(tx: UnboundedSender<HealRequest>) -> Self {
        Self {
            tx,
            running: HashMap::new(),
        }
    }

    /// Watches exactly the kinds of `agent`'s last good revision.
    pub async fn ensure(&mut self, agent: &Agent) {
        let wanted: HashMap<GroupKind, String> = match &agent.inner.lock().await.last_good {
            Some(good) => good
                .applies
                .iter()
                .map(|d| (d.key.group_kind.clone(), d.api_version.clone()))
                .collect(),
            None => return,
        };
        let seen = &agent.seen;
        self.running.retain(|gk, handle| {
            let keep = wanted.contains_key(gk);
            if !keep {
                handle.abort();
                seen.restart(gk);
            }
            keep
        });
        for (gk, api_version) in wanted {
            if self.running.contains_key(&gk) {
                continue;
            }
            match agent.cluster.resource(&api_version, &gk.kind).await {
                Ok(Some((ar, true))) => {
                    let api = Api::<Meta>::namespaced_with(
                        agent.watch_client.clone(),
                        agent.cluster.namespace(),
                        &ar,
                    );
                    let handle =
                        tokio::spawn(watch(api, gk.clone(), self.tx.clone(), agent.seen.clone()));
                    self.running.insert(gk, handle);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, kind = %gk, "cannot watch"),
            }
        }
    }

    pub fn stop(&mut self, seen: &SeenVersions) {
        for (gk, handle) in self.running.drain() {
            handle.abort();
            seen.restart(&gk);
        }
    }
}

/// Metadata is all a watch needs (name, resourceVersion, break-glass annotations), and a
/// fraction of the size of whole objects.
type Meta = PartialObjectMeta<DynamicObject>;

/// Objects per page of the watch's initial list (it is read only for its resourceVersion).
const WATCH_PAGE: u32 = 100;

/// A watch's first retry after an error, doubling up to [`WATCH_RETRY_MAX`].
const WATCH_RETRY_FIRST: Duration = Duration::from_millis(250);
/// kube's default backoff (800 ms doubling to 30 s) grew to 5.6 s while the API server
/// restarted, then waited 11 s more after the "too old resource version" (410) the restarted
/// server answers the resumed watch with, before listing again: a member deleted as the server
/// came back was repaired 16 s later. One request per kind every 2 s while the server is away
/// costs it nothing worth saving.
const WATCH_RETRY_MAX: Duration = Duration::from_secs(2);

/// Jittered, so the watches of many agents do not come back in step; reset by the watch's
/// next event. Applied in [`watch`] rather than by kube's `StreamBackoff`, which waits after
/// every error alike.
struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            next: WATCH_RETRY_FIRST,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (base * 2).min(WATCH_RETRY_MAX);
        Some(crate::backoff::jittered(
            base,
            crate::backoff::unit_random(),
        ))
    }
}

impl WatchBackoff {
    fn reset(&mut self) {
        *self = Self::default();
    }
}

async fn watch(
    api: Api<Meta>,
    gk: GroupKind,
    tx: UnboundedSender<HealRequest>,
    seen: Arc<SeenVersions>,
) {
    let config = watcher::Config::default().page_size(WATCH_PAGE);
    let mut stream = watcher::watcher(api, config).boxed();
    let mut backoff = WatchBackoff::default();
    let record = |obj: &Meta| {
        if let (Some(k), Some(rv)) = (key_of(&gk, obj), &obj.metadata.resource_version) {
            seen.record(k, rv.clone());
        }
    };
    while let Some(event) = stream.next().await {
        if event.is_ok() {
            backoff.reset();
        }
        let request = match event {
            Ok(Event::Apply(obj)) => {
                record(&obj);
                key_of(&gk, &obj)
                    .map(|k| HealRequest::Object(k, obj.metadata.resource_version.clone()))
            }
            Ok(Event::Delete(obj)) => key_of(&gk, &obj).map(|k| {
                seen.forget(&k);
                HealRequest::Object(k, None)
            }),
            Ok(Event::Init) => {
                seen.restart(&gk);
                None
            }
            Ok(Event::InitApply(obj)) => {
                record(&obj);
                None
            }
            // A member deleted or changed while no watch was following the kind (before its
            // first list, which starts after the sync that confirmed the members, or while it
            // was down, e.g. the API server restarting) is in no event, only missing or at
            // another version in this list. Only those are checked: checking every member
            // costs a GET and a dry-run each.
            Ok(Event::InitDone) => {
                seen.listed(&gk);
                Some(HealRequest::Listed(gk.clone()))
            }
            Err(e) => {
                tracing::warn!(error = %e, kind = %gk, "watch error (retrying)");
                // The server answered, but no longer has the history to resume from (410: a
                // restarted API server, or compacted etcd): the watcher lists again at once.
                if !matches!(&e, watcher::Error::WatchError(s) if s.code == 410) {
                    tokio::time::sleep(backoff.next().unwrap_or(WATCH_RETRY_MAX)).await;
                }
                None
            }
        };
        if let Some(r) = request
            && tx.send(r).is_err()
        {
            return;
        }
    }
}

fn key_of(gk: &GroupKind, obj: &Meta) -> Option<ObjectKey> {
    Some(ObjectKey {
        group_kind: gk.clone(),
        name: obj.metadata.name.clone()?,
    })
}

/// Runs until `rx` closes: debounces requests, drops echoes of the agent's own writes, heals.
pub async fn heal_loop(
    agent: Arc<Agent>,
    mut rx: UnboundedReceiver<HealRequest>,
    leading: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let expiry = agent.inner.lock().await.next_expiry;
        let wake = expiry.map(|t| {
            let wait = t.duration_since(Timestamp::now()).as_millis().max(0) as u64;
            // A little after `until`, so the break-glass is expired when looked at.
            Duration::from_millis(wait) + Duration::from_millis(100)
        });
        let first = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => r,
                None => return,
            },
            _ = tokio::time::sleep(wake.unwrap_or(Duration::from_secs(3600))), if wake.is_some() => HealRequest::All,
        };
        let mut requests = vec![first];
        let deadline = tokio::time::Instant::now() + DEBOUNCE;
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            requests.push(r);
        }
        let mut keys = BTreeSet::new();
        let mut all = false;
        for r in requests {
            match r {
                HealRequest::All => all = true,
                HealRequest::Object(key, Some(rv)) if agent.is_own_write(&key, &rv).await => {}
                HealRequest::Object(key, _) => {
                    keys.insert(key);
                }
                // Before any sync has swept, nothing is confirmed: a watch listing the cached
                // render's kinds after a restart would have every member checked, a second full
                // pass beside the first sync's (or, if that sync cannot start, the resume's).
                HealRequest::Listed(_) if !agent.has_swept() => {}
                HealRequest::Listed(gk) => keys.extend(agent.unconfirmed(&gk).await),
            }
        }
        // A standby replica never writes; the leader heals what it sees.
        if (!all && keys.is_empty()) || !*leading.borrow() {
            continue;
        }
        let target = if all { None } else { Some(keys) };
        if let Err(e) = agent.heal(target).await {
            tracing::warn!(error = %e, "self-heal failed; the next sync retries");
        }
        crate::memory::release_free_heap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_retries_within_two_seconds_however_long_the_server_is_away() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = b.by_ref().take(20).collect();
        assert!(delays[0] <= WATCH_RETRY_FIRST, "{delays:?}");
        assert!(delays.iter().all(|d| *d <= WATCH_RETRY_MAX), "{delays:?}");
        // Jitter shortens by at most a fifth.
        assert!(delays[19] >= WATCH_RETRY_MAX.mul_f64(0.8), "{delays:?}");
        b.reset();
        assert!(b.next().unwrap() <= WATCH_RETRY_FIRST);
    }
}
