//! Break-glass: an audited, time-limited emergency override the agent respects.
//!
//! The plugin writes four annotations on the live object; the agent does not self-heal that
//! object while `until` is in the future, and reconciles it back to Git once it has passed.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::keys::{
    BREAK_GLASS_BY_ANNOTATION, BREAK_GLASS_REASON_ANNOTATION, BREAK_GLASS_SINCE_ANNOTATION,
    BREAK_GLASS_UNTIL_ANNOTATION,
};

/// The agent's default `--break-glass-max`, in hours; the plugin refuses to ask for longer, and
/// `manifests/policies/` enforces the same bound at admission. Longer overrides belong in Git.
pub const DEFAULT_MAX_BREAK_GLASS_HOURS: i64 = 24;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakGlass {
    /// The kube identity that opened it (from SelfSubjectReview).
    pub by: String,
    pub reason: String,
    pub since: Timestamp,
    pub until: Timestamp,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BreakGlassError {
    #[error("annotation {key} is missing")]
    Missing { key: &'static str },
    #[error("annotation {key}: {value:?} is not an RFC 3339 timestamp")]
    BadTime { key: &'static str, value: String },
    #[error("break-glass ends ({until}) before it starts ({since})")]
    EndsBeforeStart { since: Timestamp, until: Timestamp },
}

impl BreakGlass {
    /// Reads the annotations of an object. `Ok(None)`: no break-glass at all. A half-written or
    /// unparsable set is an error, so the agent reports it instead of silently self-healing.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Option<Self>, BreakGlassError> {
        let keys = [
            BREAK_GLASS_BY_ANNOTATION,
            BREAK_GLASS_REASON_ANNOTATION,
            BREAK_GLASS_SINCE_ANNOTATION,
            BREAK_GLASS_UNTIL_ANNOTATION,
        ];
        if keys.iter().all(|k| !annotations.contains_key(*k)) {
            return Ok(None);
        }
        let get = |key: &'static str| {
            annotations
                .get(key)
                .cloned()
                .ok_or(BreakGlassError::Missing { key })
        };
        let time = |key: &'static str| {
            let value = get(key)?;
            value
                .parse::<Timestamp>()
                .map_err(|_| BreakGlassError::BadTime { key, value })
        };
        let bg = Self {
            by: get(BREAK_GLASS_BY_ANNOTATION)?,
            reason: get(BREAK_GLASS_REASON_ANNOTATION)?,
            since: time(BREAK_GLASS_SINCE_ANNOTATION)?,
            until: time(BREAK_GLASS_UNTIL_ANNOTATION)?,
        };
        if bg.until < bg.since {
            return Err(BreakGlassError::EndsBeforeStart {
                since: bg.since,
                until: bg.until,
            });
        }
        Ok(Some(bg))
    }

    /// The annotations to write (seconds precision, UTC, so they read well in `kubectl get`).
    pub fn to_annotations(&self) -> BTreeMap<String, String> {
        let fmt = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        BTreeMap::from([
            (BREAK_GLASS_BY_ANNOTATION.to_string(), self.by.clone()),
            (
                BREAK_GLASS_REASON_ANNOTATION.to_string(),
                self.reason.clone(),
            ),
            (BREAK_GLASS_SINCE_ANNOTATION.to_string(), fmt(self.since)),
            (BREAK_GLASS_UNTIL_ANNOTATION.to_string(), fmt(self.until)),
        ])
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        now < self.until
    }

    /// Every annotation key break-glass uses, for removing them when it ends.
    pub fn annotation_keys() -> [&'static str; 4] {
        [
            BREAK_GLASS_BY_ANNOTATION,
            BREAK_GLASS_REASON_ANNOTATION,
            BREAK_GLASS_SINCE_ANNOTATION,
            BREAK_GLASS_UNTIL_ANNOTATION,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bg() -> BreakGlass {
        BreakGlass {
            by: "alice@example.com".into(),
            reason: "INC-42: hot loop in v1.4.2".into(),
            since: "2026-11-26T10:00:00Z".parse().unwrap(),
            until: "2026-11-26T12:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn round_trips_through_annotations() {
        let ann = bg().to_annotations();
        assert_eq!(ann[BREAK_GLASS_UNTIL_ANNOTATION], "2026-11-26T12:00:00Z");
        assert_eq!(BreakGlass::from_annotations(&ann).unwrap(), Some(bg()));
    }

    #[test]
    fn absent_is_none_and_partial_is_an_error() {
        assert_eq!(
            BreakGlass::from_annotations(&BTreeMap::new()).unwrap(),
            None
        );
        let mut ann = bg().to_annotations();
        ann.remove(BREAK_GLASS_REASON_ANNOTATION);
        assert_eq!(
            BreakGlass::from_annotations(&ann),
            Err(BreakGlassError::Missing {
                key: BREAK_GLASS_REASON_ANNOTATION
            })
        );
    }

    #[test]
    fn bad_time_names_the_key() {
        let mut ann = bg().to_annotations();
        ann.insert(BREAK_GLASS_UNTIL_ANNOTATION.into(), "tomorrow".into());
        let err = BreakGlass::from_annotations(&ann).unwrap_err();
        assert!(
            err.to_string().contains(BREAK_GLASS_UNTIL_ANNOTATION),
            "{err}"
        );
    }

    #[test]
    fn active_until_expiry() {
        let b = bg();
        assert!(b.is_active("2026-11-26T11:59:59Z".parse().unwrap()));
        assert!(!b.is_active("2026-11-26T12:00:00Z".parse().unwrap()));
    }
}
