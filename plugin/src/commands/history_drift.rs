//! `kubectl gitops history --drift`: the agent's drift history ring (on its ApplySet parent),
//! newest first: which fields drifted, who wrote them, and what the agent did.

use std::fmt::Write as _;

use anyhow::Context;
use renderer::protocol::{DriftEvent, PARENT_NAME};
use serde::Serialize;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::session::{Session, block_on};
use crate::cluster::tracked;
use crate::output::printer::Printer;
use crate::output::report::{DataFormat, serialize};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftHistoryReport {
    pub namespace: String,
    /// Newest first.
    pub events: Vec<DriftEvent>,
}

pub fn run(format: DataFormat, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    block_on(async {
        let session = Session::connect(kube).await?;
        let ns = &session.namespace;
        let parent = tracked::read_parent(&session.client, ns)
            .await?
            .with_context(|| {
                format!("no agent in namespace {ns}: ConfigMap {PARENT_NAME} not found")
            })?;
        let report = DriftHistoryReport {
            namespace: ns.clone(),
            events: parent.drift_history.events().rev().cloned().collect(),
        };
        let text = serialize(&report, format).unwrap_or_else(|| format_text(&report));
        printer.result(&text)?;
        Ok(ExitStatus::Success)
    })?
}

pub fn format_text(r: &DriftHistoryReport) -> String {
    let mut out = String::new();
    if r.events.is_empty() {
        let _ = writeln!(out, "no drift recorded in namespace {}", r.namespace);
        return out;
    }
    for e in &r.events {
        out.push_str(&event_line(e));
        out.push('\n');
    }
    out
}

/// One event on one line: when, what, the action, who, which fields.
pub fn event_line(e: &DriftEvent) -> String {
    let mut line = format!(
        "  {}  {}/{}  {}",
        e.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        e.kind,
        e.name,
        e.action.label()
    );
    if let Some(m) = &e.manager {
        let _ = write!(line, "  by {m}");
    }
    if !e.paths.is_empty() {
        let _ = write!(line, "  {}", e.paths.join(", "));
    }
    if e.more_paths > 0 {
        let _ = write!(line, " (+{} more)", e.more_paths);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use renderer::protocol::DriftAction;

    #[test]
    fn one_line_per_event_with_action_manager_and_paths() {
        let mut e = DriftEvent::new(
            "Deployment",
            "api",
            vec!["/spec/template/spec/containers/1".into()],
            Some("kubectl-edit".into()),
            DriftAction::Foreign,
        );
        e.time = "2026-12-03T10:00:00Z".parse().unwrap();
        assert_eq!(
            event_line(&e),
            "  2026-12-03T10:00:00Z  Deployment/api  foreign  by kubectl-edit  /spec/template/spec/containers/1"
        );
        let r = DriftHistoryReport {
            namespace: "shop".into(),
            events: vec![],
        };
        assert_eq!(format_text(&r), "no drift recorded in namespace shop\n");
    }
}
