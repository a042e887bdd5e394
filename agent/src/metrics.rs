//! Prometheus metrics, in the text exposition format (hand-rolled: a handful of series does not
//! need a registry crate).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use renderer::protocol::{SyncResult, SyncStatus};

/// Every result the `gitops_sync_result` state set has a series for, whatever the current one.
const RESULTS: [SyncResult; 6] = [
    SyncResult::Synced,
    SyncResult::OutOfSync,
    SyncResult::Failed,
    SyncResult::Refused,
    SyncResult::Suspended,
    SyncResult::Pending,
];

/// Health states of managed objects (see `crate::health`); anything else counts as Unknown.
const HEALTH_STATES: [&str; 4] = ["Healthy", "Progressing", "Degraded", "Unknown"];

/// Upper bounds (seconds) of the reconcile-duration histogram.
const DURATION_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

#[derive(Debug, Default)]
struct Counters {
    reconciles: BTreeMap<&'static str, u64>,
    /// Cumulative counts per bucket, plus sum and count.
    duration_buckets: [u64; DURATION_BUCKETS.len()],
    duration_sum: f64,
    duration_count: u64,
    applied: u64,
    pruned: u64,
    drift_corrected: u64,
    webhooks: BTreeMap<&'static str, u64>,
    last_success: Option<Timestamp>,
    /// What the status last said; gauges, not counters.
    observed: Observed,
}

/// The gauges taken from the status the agent last published.
#[derive(Debug, Default)]
struct Observed {
    result: SyncResult,
    tracked_ref: String,
    revision: String,
    health: BTreeMap<&'static str, u64>,
    break_glass_active: u64,
    break_glass_expiry: Option<Timestamp>,
    /// Foreign additions still live (not removed), and how many of them are security-sensitive.
    foreign: (u64, u64),
}

/// Shared by the reconcile loop (writes) and `/metrics` (reads).
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

/// Outcome of a webhook request, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Accepted,
    /// Bad or missing signature/token.
    Rejected,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        // A panic while holding the lock cannot leave counters inconsistent in a harmful way.
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c)
    }

    /// One reconcile attempt finished with `result` after `duration`.
    pub fn record_reconcile(&self, result: SyncResult, duration: Duration) {
        let secs = duration.as_secs_f64();
        self.with(|c| {
            *c.reconciles.entry(result.as_str()).or_default() += 1;
            for (count, bound) in c.duration_buckets.iter_mut().zip(DURATION_BUCKETS) {
                if secs <= bound {
                    *count += 1;
                }
            }
            c.duration_sum += secs;
            c.duration_count += 1;
            if result == SyncResult::Synced {
                c.last_success = Some(Timestamp::now());
            }
        });
    }

    pub fn add_applied(&self, n: u64) {
        self.with(|c| c.applied += n);
    }

    pub fn add_pruned(&self, n: u64) {
        self.with(|c| c.pruned += n);
    }

    pub fn add_drift_corrected(&self, n: u64) {
        self.with(|c| c.drift_corrected += n);
    }

    /// Mirrors the status the agent is about to publish: result, tracked revision, health and
    /// break-glass, so alerts see what `kubectl gitops status` sees.
    pub fn observe_status(&self, status: &SyncStatus) {
        let mut health = BTreeMap::new();
        for h in &status.health {
            let state = HEALTH_STATES
                .into_iter()
                .find(|s| *s == h.state)
                .unwrap_or("Unknown");
            *health.entry(state).or_default() += 1;
        }
        let active: Vec<Timestamp> = status
            .break_glass
            .iter()
            .filter(|e| e.active)
            .map(|e| e.break_glass.until)
            .collect();
        let observed = Observed {
            result: status.result,
            tracked_ref: status.tracked_ref.clone(),
            revision: status
                .resolved_commit
                .clone()
                .or_else(|| status.last_applied_revision.clone())
                .unwrap_or_default(),
            health,
            break_glass_active: active.len() as u64,
            break_glass_expiry: active.into_iter().min(),
            foreign: (
                status.foreign.iter().filter(|f| !f.removed).count() as u64,
                status
                    .foreign
                    .iter()
                    .filter(|f| !f.removed && !f.sensitive.is_empty())
                    .count() as u64,
            ),
        };
        self.with(|c| c.observed = observed);
    }

    pub fn record_webhook(&self, outcome: WebhookOutcome) {
        let label = match outcome {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::Rejected => "rejected",
        };
        self.with(|c| *c.webhooks.entry(label).or_default() += 1);
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        self.with(|c| {
            let mut out = String::new();
            let w = &mut out;
            header(
                w,
                "gitops_reconcile_total",
                "counter",
                "Reconcile attempts by result.",
            );
            for r in [
                SyncResult::Synced,
                SyncResult::OutOfSync,
                SyncResult::Failed,
                SyncResult::Refused,
                SyncResult::Suspended,
            ] {
                let n = c.reconciles.get(r.as_str()).copied().unwrap_or(0);
                let _ = writeln!(w, "gitops_reconcile_total{{result=\"{}\"}} {n}", r.as_str());
            }
            header(
                w,
                "gitops_reconcile_duration_seconds",
                "histogram",
                "Duration of reconcile attempts.",
            );
            for (count, bound) in c.duration_buckets.iter().zip(DURATION_BUCKETS) {
                let _ = writeln!(
                    w,
                    "gitops_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                w,
                "gitops_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                c.duration_count
            );
            let _ = writeln!(
                w,
                "gitops_reconcile_duration_seconds_sum {}",
                c.duration_sum
            );
            let _ = writeln!(
                w,
                "gitops_reconcile_duration_seconds_count {}",
                c.duration_count
            );
            for (name, help, value) in [
                (
                    "gitops_objects_applied_total",
                    "Objects applied.",
                    c.applied,
                ),
                ("gitops_objects_pruned_total", "Objects pruned.", c.pruned),
                (
                    "gitops_drift_corrections_total",
                    "Drifted objects reconciled back to Git.",
                    c.drift_corrected,
                ),
            ] {
                header(w, name, "counter", help);
                let _ = writeln!(w, "{name} {value}");
            }
            header(
                w,
                "gitops_webhook_requests_total",
                "counter",
                "Webhook requests by outcome.",
            );
            for label in ["accepted", "rejected"] {
                let n = c.webhooks.get(label).copied().unwrap_or(0);
                let _ = writeln!(
                    w,
                    "gitops_webhook_requests_total{{outcome=\"{label}\"}} {n}"
                );
            }
            render_observed(w, &c.observed);
            header(
                w,
                "gitops_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last Synced reconcile (0: none yet).",
            );
            let ts = c
                .last_success
                .map_or(0.0, |t| t.as_millisecond() as f64 / 1000.0);
            let _ = writeln!(w, "gitops_last_success_timestamp_seconds {ts}");
            out
        })
    }
}

fn render_observed(w: &mut String, o: &Observed) {
    header(
        w,
        "gitops_sync_info",
        "gauge",
        "The revision the agent follows: the configured ref and the commit it resolved to (always 1).",
    );
    let _ = writeln!(
        w,
        "gitops_sync_info{{tracked_ref=\"{}\",revision=\"{}\"}} 1",
        escape(&o.tracked_ref),
        escape(&o.revision)
    );
    header(
        w,
        "gitops_sync_result",
        "gauge",
        "The current sync result: 1 for the result in the status, 0 for the others.",
    );
    for r in RESULTS {
        let v = u8::from(r == o.result);
        let _ = writeln!(w, "gitops_sync_result{{result=\"{}\"}} {v}", r.as_str());
    }
    header(
        w,
        "gitops_managed_objects",
        "gauge",
        "Objects applied from the current revision, by health.",
    );
    for state in HEALTH_STATES {
        let n = o.health.get(state).copied().unwrap_or(0);
        let _ = writeln!(w, "gitops_managed_objects{{health=\"{state}\"}} {n}");
    }
    header(
        w,
        "gitops_break_glass_objects",
        "gauge",
        "Objects held by an active break-glass override (not self-healed).",
    );
    let _ = writeln!(w, "gitops_break_glass_objects {}", o.break_glass_active);
    header(
        w,
        "gitops_break_glass_expiry_timestamp_seconds",
        "gauge",
        "Unix time the earliest active break-glass override ends (0: none active).",
    );
    let expiry = o.break_glass_expiry.map_or(0, |t| t.as_second());
    let _ = writeln!(w, "gitops_break_glass_expiry_timestamp_seconds {expiry}");
    header(
        w,
        "gitops_foreign_additions",
        "gauge",
        "Fields on managed objects that Git never sets, added by someone else, by whether they are security-sensitive.",
    );
    let (all, sensitive) = o.foreign;
    let _ = writeln!(
        w,
        "gitops_foreign_additions{{sensitive=\"true\"}} {sensitive}"
    );
    let _ = writeln!(
        w,
        "gitops_foreign_additions{{sensitive=\"false\"}} {}",
        all - sensitive
    );
}

/// A label value as the exposition format needs it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn counts_reconciles_and_fills_histogram_buckets() {
        let m = Metrics::new();
        m.record_reconcile(SyncResult::Synced, Duration::from_millis(300));
        m.record_reconcile(SyncResult::Failed, Duration::from_secs(7));
        m.record_reconcile(SyncResult::Synced, Duration::from_secs(400));
        m.add_applied(5);
        m.add_pruned(2);
        m.add_drift_corrected(1);
        let t = m.render();
        assert_eq!(value(&t, "gitops_reconcile_total{result=\"Synced\"}"), 2.0);
        assert_eq!(value(&t, "gitops_reconcile_total{result=\"Failed\"}"), 1.0);
        assert_eq!(value(&t, "gitops_reconcile_total{result=\"Refused\"}"), 0.0);
        assert_eq!(
            value(&t, "gitops_reconcile_duration_seconds_bucket{le=\"0.5\"}"),
            1.0
        );
        assert_eq!(
            value(&t, "gitops_reconcile_duration_seconds_bucket{le=\"10\"}"),
            2.0
        );
        assert_eq!(
            value(&t, "gitops_reconcile_duration_seconds_bucket{le=\"300\"}"),
            2.0
        );
        assert_eq!(
            value(&t, "gitops_reconcile_duration_seconds_bucket{le=\"+Inf\"}"),
            3.0
        );
        assert_eq!(value(&t, "gitops_reconcile_duration_seconds_count"), 3.0);
        assert!((value(&t, "gitops_reconcile_duration_seconds_sum") - 407.3).abs() < 1e-9);
        assert_eq!(value(&t, "gitops_objects_applied_total"), 5.0);
        assert_eq!(value(&t, "gitops_objects_pruned_total"), 2.0);
        assert_eq!(value(&t, "gitops_drift_corrections_total"), 1.0);
        assert!(value(&t, "gitops_last_success_timestamp_seconds") > 1.7e9);
    }

    #[test]
    fn gauges_follow_the_published_status() {
        use renderer::protocol::{BreakGlass, BreakGlassEntry, HealthEntry};
        let health = |state: &str| HealthEntry {
            kind: "Deployment".into(),
            name: state.to_lowercase(),
            state: state.into(),
            message: String::new(),
        };
        let entry = |until: &str, active| BreakGlassEntry {
            kind: "Deployment".into(),
            name: "api".into(),
            break_glass: BreakGlass {
                by: "alice".into(),
                reason: "INC-1".into(),
                since: "2026-11-26T10:00:00Z".parse().unwrap(),
                until: until.parse().unwrap(),
            },
            active,
            requested_until: None,
        };
        let m = Metrics::new();
        m.observe_status(&SyncStatus {
            tracked_ref: ">=1.0.0 \"stable\"".into(),
            resolved_commit: Some("abc123".into()),
            result: SyncResult::OutOfSync,
            health: vec![health("Degraded"), health("Healthy"), health("Weird")],
            break_glass: vec![
                entry("2026-11-26T12:00:00Z", true),
                entry("2026-11-26T11:00:00Z", true),
                entry("2026-11-26T09:00:00Z", false),
            ],
            ..Default::default()
        });
        let t = m.render();
        assert_eq!(
            value(
                &t,
                r#"gitops_sync_info{tracked_ref=">=1.0.0 \"stable\"",revision="abc123"}"#
            ),
            1.0
        );
        assert_eq!(value(&t, "gitops_sync_result{result=\"OutOfSync\"}"), 1.0);
        assert_eq!(value(&t, "gitops_sync_result{result=\"Synced\"}"), 0.0);
        assert_eq!(value(&t, "gitops_sync_result{result=\"Pending\"}"), 0.0);
        assert_eq!(
            value(&t, "gitops_managed_objects{health=\"Degraded\"}"),
            1.0
        );
        assert_eq!(value(&t, "gitops_managed_objects{health=\"Unknown\"}"), 1.0);
        assert_eq!(
            value(&t, "gitops_managed_objects{health=\"Progressing\"}"),
            0.0
        );
        assert_eq!(value(&t, "gitops_break_glass_objects"), 2.0);
        let earliest: Timestamp = "2026-11-26T11:00:00Z".parse().unwrap();
        assert_eq!(
            value(&t, "gitops_break_glass_expiry_timestamp_seconds"),
            earliest.as_second() as f64
        );
    }

    #[test]
    fn every_series_has_help_and_type() {
        let t = Metrics::new().render();
        assert_eq!(value(&t, "gitops_last_success_timestamp_seconds"), 0.0);
        assert_eq!(value(&t, "gitops_sync_result{result=\"Pending\"}"), 1.0);
        assert_eq!(
            value(&t, "gitops_break_glass_expiry_timestamp_seconds"),
            0.0
        );
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(t.contains(&format!("# TYPE {base} ")), "no TYPE for {name}");
        }
    }
}
