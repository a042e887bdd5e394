//! `rollback --wait`: follow the agent until it runs the target commit and everything it
//! applied is Healthy, printing each change of the rollout on the way.

use std::time::{Duration, Instant};

use anyhow::bail;
use renderer::protocol::{SyncResult, SyncStatus};

use crate::cluster::session::Session;
use crate::cluster::tracked;
use crate::git::local_repo::short;
use crate::output::printer::Printer;

/// How often the agent's status is read while waiting.
const POLL: Duration = Duration::from_secs(1);

/// Waits until the agent in `session`'s namespace has applied `commit` and reports every
/// object Healthy; fails after `timeout`, naming what is not healthy.
pub async fn until_healthy(
    session: &Session,
    commit: &str,
    timeout: Duration,
    printer: &Printer,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last_line = String::new();
    loop {
        let parent = tracked::read_parent(&session.client, &session.namespace).await?;
        let status = parent.and_then(|p| p.status);
        let line = progress(status.as_ref(), commit);
        if line != last_line {
            printer.info(&line);
            last_line = line;
        }
        if let Some(s) = &status
            && rolled_out(s, commit)
        {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            bail!(
                "not healthy at {} after {}s: {last_line}",
                short(commit),
                timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The agent runs `commit`, Synced, and every object it applied is Healthy.
pub fn rolled_out(s: &SyncStatus, commit: &str) -> bool {
    s.result == SyncResult::Synced
        && s.last_applied_revision.as_deref() == Some(commit)
        && !s.health.is_empty()
        && s.health.iter().all(|h| h.state == "Healthy")
}

/// One line saying where the rollout is: the revision, then each object not yet healthy.
pub fn progress(status: Option<&SyncStatus>, commit: &str) -> String {
    let Some(s) = status else {
        return "waiting for the agent's status".into();
    };
    let applied = s.last_applied_revision.as_deref().unwrap_or_default();
    if applied != commit {
        return format!(
            "waiting for the agent to apply {} (it runs {}, {})",
            short(commit),
            if applied.is_empty() {
                "nothing"
            } else {
                short(applied)
            },
            s.result.as_str()
        );
    }
    let pending: Vec<String> = s
        .health
        .iter()
        .filter(|h| h.state != "Healthy")
        .map(|h| format!("{}/{} {}: {}", h.kind, h.name, h.state, h.message))
        .collect();
    if pending.is_empty() {
        format!(
            "{} applied; all {} objects Healthy",
            short(commit),
            s.health.len()
        )
    } else {
        format!("{} applied; {}", short(commit), pending.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use renderer::protocol::HealthEntry;

    use super::*;

    fn status(applied: &str, states: &[&str]) -> SyncStatus {
        SyncStatus {
            result: SyncResult::Synced,
            last_applied_revision: Some(applied.into()),
            health: states
                .iter()
                .enumerate()
                .map(|(i, s)| HealthEntry {
                    kind: "Deployment".into(),
                    name: format!("d{i}"),
                    state: (*s).into(),
                    message: "m".into(),
                })
                .collect(),
            ..SyncStatus::default()
        }
    }

    #[test]
    fn rolled_out_needs_the_commit_and_all_healthy() {
        let c = "a".repeat(40);
        assert!(rolled_out(&status(&c, &["Healthy", "Healthy"]), &c));
        assert!(!rolled_out(&status(&c, &["Healthy", "Progressing"]), &c));
        assert!(!rolled_out(&status(&"b".repeat(40), &["Healthy"]), &c));
        assert!(!rolled_out(&status(&c, &[]), &c));
        let line = progress(Some(&status(&c, &["Healthy", "Degraded"])), &c);
        assert!(line.ends_with("Deployment/d1 Degraded: m"), "{line}");
    }
}
