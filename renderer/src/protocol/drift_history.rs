//! The drift history: a bounded ring of the drift the agent saw and what it did, stored as JSON
//! under its own data key of the parent ([`super::DRIFT_HISTORY_DATA_KEY`]). It keeps field
//! paths and managers, never values, and is capped in bytes well under the 1 MiB object limit.

use std::collections::VecDeque;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The most bytes of JSON the ring may take in the parent (a quarter of the object limit,
/// leaving room for the status next to it).
pub const DRIFT_HISTORY_MAX_BYTES: usize = 256 * 1024;
/// Paths kept per event; the rest are counted in `more_paths`.
const MAX_PATHS: usize = 16;
/// A path longer than this is cut (paths come from objects, whose keys a user chose).
const MAX_PATH_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DriftAction {
    /// The agent put Git's value back.
    Repaired,
    /// Left alone: an ignore rule (HPA, `--ignore-field`, annotation) gives the field away.
    Ignored,
    /// Left alone: an active break-glass holds the object.
    HeldByBreakGlass,
    /// A foreign addition, reported and left in place.
    Foreign,
    /// A foreign addition, removed (`--remove-foreign` or the annotation).
    ForeignRemoved,
}

impl DriftAction {
    pub fn label(self) -> &'static str {
        match self {
            Self::Repaired => "repaired",
            Self::Ignored => "ignored",
            Self::HeldByBreakGlass => "held by break-glass",
            Self::Foreign => "foreign",
            Self::ForeignRemoved => "foreign, removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftEvent {
    pub time: Timestamp,
    pub kind: String,
    pub name: String,
    /// JSON pointers of the fields (empty when the whole object was concerned).
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_paths: usize,
    /// Who wrote the drift, when known.
    #[serde(default)]
    pub manager: Option<String>,
    pub action: DriftAction,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl DriftEvent {
    pub fn new(
        kind: &str,
        name: &str,
        mut paths: Vec<String>,
        manager: Option<String>,
        action: DriftAction,
    ) -> Self {
        let more_paths = paths.len().saturating_sub(MAX_PATHS);
        paths.truncate(MAX_PATHS);
        for p in &mut paths {
            if p.len() > MAX_PATH_LEN {
                let mut cut = MAX_PATH_LEN;
                while !p.is_char_boundary(cut) {
                    cut -= 1;
                }
                p.truncate(cut);
            }
        }
        Self {
            time: Timestamp::now(),
            kind: kind.to_string(),
            name: name.to_string(),
            paths,
            more_paths,
            manager,
            action,
        }
    }
}

/// The ring, oldest first. Pushing drops the oldest events until the JSON fits the cap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriftHistory {
    events: VecDeque<(DriftEvent, usize)>,
    /// Bytes of the JSON array: the events' sizes plus separators and brackets.
    bytes: usize,
}

impl DriftHistory {
    /// Reads the stored JSON; unreadable history (a newer agent's, or edited by hand) starts
    /// empty rather than stopping the agent.
    pub fn from_json(text: &str) -> Self {
        let events: Vec<DriftEvent> = serde_json::from_str(text).unwrap_or_default();
        let mut ring = Self::default();
        for e in events {
            ring.push(e);
        }
        ring
    }

    pub fn push(&mut self, event: DriftEvent) {
        let size = serde_json::to_string(&event).map_or(0, |s| s.len());
        self.events.push_back((event, size));
        self.bytes += size + 1;
        while self.json_len() > DRIFT_HISTORY_MAX_BYTES && self.events.len() > 1 {
            if let Some((_, size)) = self.events.pop_front() {
                self.bytes -= size + 1;
            }
        }
    }

    /// The exact length of [`Self::to_json`].
    pub fn json_len(&self) -> usize {
        // `[` + events joined by `,` + `]`: each event counted with one separator, the last
        // one's standing for `]`, plus `[`.
        self.bytes + 1 + usize::from(self.events.is_empty())
    }

    pub fn to_json(&self) -> String {
        let events: Vec<&DriftEvent> = self.events.iter().map(|(e, _)| e).collect();
        serde_json::to_string(&events).expect("drift events serialize")
    }

    pub fn events(&self) -> impl DoubleEndedIterator<Item = &DriftEvent> {
        self.events.iter().map(|(e, _)| e)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_events_stay_under_the_cap_and_keep_the_newest() {
        let mut ring = DriftHistory::default();
        let actions = [
            DriftAction::Repaired,
            DriftAction::Ignored,
            DriftAction::HeldByBreakGlass,
            DriftAction::Foreign,
            DriftAction::ForeignRemoved,
        ];
        for i in 0..10_000 {
            let paths = (0..(i % 40))
                .map(|j| format!("/spec/template/spec/containers/0/env/{j}"))
                .collect();
            ring.push(DriftEvent::new(
                "Deployment",
                &format!("app-{i}"),
                paths,
                Some("kubectl-edit".into()),
                actions[i % actions.len()],
            ));
            assert!(ring.json_len() <= DRIFT_HISTORY_MAX_BYTES);
        }
        let json = ring.to_json();
        assert_eq!(json.len(), ring.json_len(), "the running size is exact");
        assert!(json.len() <= DRIFT_HISTORY_MAX_BYTES, "{}", json.len());
        assert!(
            ring.len() > 100,
            "the cap keeps a useful number: {}",
            ring.len()
        );
        assert_eq!(ring.events().next_back().unwrap().name, "app-9999");
        let back = DriftHistory::from_json(&json);
        assert_eq!(back, ring);
        // Paths beyond the per-event limit are counted, not stored.
        let last = ring.events().next_back().unwrap();
        assert_eq!((last.paths.len(), last.more_paths), (16, 39 - 16));
    }

    #[test]
    fn empty_and_garbage_read_as_empty() {
        assert_eq!(DriftHistory::default().to_json(), "[]");
        assert_eq!(DriftHistory::default().json_len(), 2);
        assert!(DriftHistory::from_json("{not json").is_empty());
        let mut one = DriftHistory::default();
        one.push(DriftEvent::new(
            "ConfigMap",
            "c",
            vec!["/data/a".into()],
            None,
            DriftAction::Repaired,
        ));
        assert_eq!(one.to_json().len(), one.json_len());
    }
}
