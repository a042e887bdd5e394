//! `kubectl gitops doctor`: "my change is not live" diagnosed in order: does the agent track
//! a revision containing it, does that revision render, what does the agent say, and only
//! then what differs live.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use git2::Oid;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::{ListParams, LogParams};
use renderer::protocol::{SyncResult, SyncStatus};
use serde::Serialize;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::live::{self, Kinds};
use crate::cluster::session::{Session, block_on};
use crate::cluster::tracked::{self, Parent};
use crate::commands::diff::{self, Class};
use crate::git::local_repo::{LocalRepo, short};
use crate::output::printer::{Printer, Style};
use crate::output::report::{DataFormat, serialize};
use crate::plan::desired;

mod health;

pub const EXAMPLES: &str = "\
Examples:
  # Why is my last commit not live in the namespace?
  kubectl gitops doctor -n shop

  # Check for a specific commit rather than the local HEAD
  kubectl gitops doctor -n shop --expect-commit 1a2b3c4d";

/// The name of the agent's Role (and ServiceAccount) in `manifests/base`.
const AGENT_ROLE: &str = "gitops-agent";
/// The label of the agent's pods in `manifests/base`.
const AGENT_POD_SELECTOR: &str = "app.kubernetes.io/name=gitops-agent";
const LOG_LINES: i64 = 200;

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// The commit that should be live (default: the local HEAD)
    #[arg(long, value_name = "SHA")]
    pub expect_commit: Option<String>,
    /// A clone of the tracked repository (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = DataFormat::Text)]
    pub output: DataFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepVerdict {
    Ok,
    Warning,
    Problem,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub name: String,
    pub verdict: StepVerdict,
    pub summary: String,
    pub evidence: Vec<String>,
    /// What to run next if this step is where things went wrong.
    #[serde(skip)]
    pub next: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    pub namespace: String,
    pub steps: Vec<Step>,
    pub cause: String,
    pub next: String,
}

impl Diagnosis {
    fn problem(&self) -> bool {
        self.steps.iter().any(|s| s.verdict == StepVerdict::Problem)
    }
}

pub fn run(args: &DoctorArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    block_on(async {
        let session = Session::connect(kube).await?;
        let diagnosis = diagnose(args, &session, printer).await?;
        let text = match serialize(&diagnosis, args.output) {
            Some(text) => text,
            None => format_text(&diagnosis, printer.color()),
        };
        printer.result(&text).context("writing to stdout")?;
        Ok(if diagnosis.problem() {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        })
    })?
}

fn step(name: &str, verdict: StepVerdict, summary: impl Into<String>) -> Step {
    Step {
        name: name.into(),
        verdict,
        summary: summary.into(),
        evidence: Vec::new(),
        next: String::new(),
    }
}

async fn diagnose(
    args: &DoctorArgs,
    session: &Session,
    printer: &Printer,
) -> anyhow::Result<Diagnosis> {
    let ns = &session.namespace;
    let local = LocalRepo::open(args.repo.as_deref());
    let parent = tracked::read_parent(&session.client, ns).await?;
    let status = parent.as_ref().and_then(|p| p.status.clone());
    let mut steps = vec![revision_step(
        status.as_ref(),
        parent.as_ref(),
        local.as_ref().ok(),
        args.expect_commit.as_deref(),
        ns,
    )];

    printer.info("rendering the tracked revision");
    let (render_step, rendered) = render_step(status.as_ref(), local.as_ref().ok());
    steps.push(render_step);

    printer.info("reading the agent's status, events and logs");
    let events = live::events(&session.client, ns).await.unwrap_or_default();
    let logs = agent_logs(session).await;
    let bindings = role_bindings(session).await;
    steps.push(agent_step(status.as_ref(), &events, &logs, &bindings, ns));

    let live_step = match (&rendered, &status) {
        (Some(rendered), Some(s)) => {
            let kinds = Kinds::discover(&session.client).await?;
            let report = diff::compare_with_live(
                session,
                &kinds,
                parent.as_ref(),
                rendered,
                &s.path,
                tracked::tracked_commit(s).map(str::to_string),
                printer,
            )
            .await?;
            let mut st = live_step(&report, ns);
            health::amend_live_step(&mut st, s, Some(rendered), local.as_ref().ok(), ns);
            st
        }
        _ => step(
            "live",
            StepVerdict::Skipped,
            "skipped: nothing rendered to compare",
        ),
    };
    steps.push(live_step);
    let (cause, next) = conclude(&steps);
    Ok(Diagnosis {
        namespace: ns.clone(),
        steps,
        cause,
        next,
    })
}

/// (1) Which revision the agent tracks, and whether it contains the expected commit.
fn revision_step(
    status: Option<&SyncStatus>,
    parent: Option<&Parent>,
    local: Option<&LocalRepo>,
    expect: Option<&str>,
    ns: &str,
) -> Step {
    let Some(status) = status else {
        let why = match parent {
            None => {
                format!("namespace {ns} has no kubectl-gitops ConfigMap: no agent has synced it")
            }
            Some(p) => format!(
                "the agent's status is unreadable: {}",
                p.status_error.as_deref().unwrap_or("?")
            ),
        };
        let mut s = step("revision", StepVerdict::Problem, why);
        s.next = "kubectl get pods -l app.kubernetes.io/name=gitops-agent -A".into();
        return s;
    };
    let Some(tracked) = tracked::tracked_commit(status) else {
        let mut s = step(
            "revision",
            StepVerdict::Problem,
            format!("the agent has not resolved {} yet", status.tracked_ref),
        );
        s.evidence.push(status.message.clone());
        s.next = format!("kubectl gitops status -n {ns} --watch");
        return s;
    };
    let mut s = step(
        "revision",
        StepVerdict::Ok,
        format!(
            "the agent tracks {} at {} ({})",
            status.tracked_ref,
            short(tracked),
            status.path
        ),
    );
    let Some(local) = local else {
        s.verdict = StepVerdict::Warning;
        s.evidence.push("not inside a clone of the repository: the expected commit was not checked (pass --repo DIR)".into());
        return s;
    };
    let expected = match expect {
        Some(e) => local
            .repo
            .revparse_single(e)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id())
            .ok(),
        None => local.head(),
    };
    let Some(expected) = expected else {
        s.verdict = StepVerdict::Warning;
        s.evidence.push(format!(
            "{} is not a commit in this clone",
            expect.unwrap_or("HEAD")
        ));
        return s;
    };
    let Ok(tracked_oid) = Oid::from_str(tracked) else {
        return s;
    };
    if local.repo.find_commit(tracked_oid).is_err() {
        s.verdict = StepVerdict::Warning;
        s.evidence.push(format!(
            "commit {} is not in this clone: run `git fetch`",
            short(tracked)
        ));
        return s;
    }
    let contains = expected == tracked_oid
        || local
            .repo
            .graph_descendant_of(tracked_oid, expected)
            .unwrap_or(false);
    if contains {
        s.evidence.push(format!(
            "{} contains {}",
            short(tracked),
            short(&expected.to_string())
        ));
    } else {
        let want = short(&expected.to_string()).to_string();
        s.verdict = StepVerdict::Problem;
        s.summary = format!(
            "the agent tracks {} at {}, which does not contain {want}",
            status.tracked_ref,
            short(tracked),
        );
        s.evidence.push(local.relation(tracked).describe());
        let ahead = local
            .repo
            .graph_descendant_of(expected, tracked_oid)
            .unwrap_or(false);
        let on_ref = local.ref_contains(&status.tracked_ref, expected);
        if ahead && on_ref != Some(false) {
            // On the tracked branch (here) and newer: the agent has simply not fetched it.
            s.evidence.push(format!(
                "{want} is {} commit(s) ahead of {}: the agent has not fetched it yet",
                local
                    .repo
                    .graph_ahead_behind(expected, tracked_oid)
                    .map_or(0, |(a, _)| a),
                short(tracked)
            ));
            s.next = format!(
                "git push origin HEAD:{} (if not pushed yet), then kubectl gitops status -n {ns} --watch",
                status.tracked_ref
            );
        } else {
            let branches = branches_containing(local, expected);
            s.evidence.push(format!(
                "{want} is not on {}{}",
                status.tracked_ref,
                if branches.is_empty() {
                    String::new()
                } else {
                    format!("; it is on {}", branches.join(", "))
                }
            ));
            s.next = if on_ref.is_some() && is_branch(local, &status.tracked_ref) {
                format!(
                    "git checkout {} && git merge {want} && git push",
                    status.tracked_ref
                )
            } else {
                format!("point the agent's --revision at a ref that contains {want}")
            };
        }
    }
    s
}

fn is_branch(local: &LocalRepo, reference: &str) -> bool {
    local
        .repo
        .find_branch(reference, git2::BranchType::Local)
        .is_ok()
        || local
            .repo
            .find_branch(&format!("origin/{reference}"), git2::BranchType::Remote)
            .is_ok()
}

/// Local and remote-tracking branches whose tip contains `commit`, for the evidence line.
fn branches_containing(local: &LocalRepo, commit: Oid) -> Vec<String> {
    let Ok(branches) = local.repo.branches(None) else {
        return Vec::new();
    };
    let mut out: Vec<String> = branches
        .flatten()
        .filter_map(|(b, _)| {
            let tip = b.get().peel_to_commit().ok()?.id();
            let contains =
                tip == commit || local.repo.graph_descendant_of(tip, commit).unwrap_or(false);
            contains.then(|| b.name().ok().flatten().map(str::to_string))?
        })
        .collect();
    out.sort();
    out
}

/// (2) Does the overlay render at the tracked revision?
fn render_step(
    status: Option<&SyncStatus>,
    local: Option<&LocalRepo>,
) -> (Step, Option<renderer::Rendered>) {
    let (Some(status), Some(local)) = (status, local) else {
        return (
            step(
                "render",
                StepVerdict::Skipped,
                "skipped: needs the agent's status and a local clone",
            ),
            None,
        );
    };
    let Some(commit) = tracked::tracked_commit(status) else {
        return (
            step("render", StepVerdict::Skipped, "skipped: no tracked commit"),
            None,
        );
    };
    let source = match local.source_at(commit) {
        Ok(s) => s,
        Err(e) => {
            return (
                step("render", StepVerdict::Skipped, format!("skipped: {e:#}")),
                None,
            );
        }
    };
    match desired::render(&source, &status.path) {
        Ok(rendered) => (
            step(
                "render",
                StepVerdict::Ok,
                format!(
                    "{} renders at {} ({} objects)",
                    status.path,
                    short(commit),
                    rendered.objects.len()
                ),
            ),
            Some(rendered),
        ),
        Err(e) => {
            let mut s = step(
                "render",
                StepVerdict::Problem,
                format!("{} does not render at {}", status.path, short(commit)),
            );
            let location = if e.line > 0 {
                format!("{}:{}", e.file, e.line)
            } else {
                e.file.clone()
            };
            s.evidence.push(format!("{location}: {e}"));
            s.next = format!(
                "kubectl gitops render {} --revision {}",
                status.path,
                short(commit)
            );
            (s, None)
        }
    }
}

/// An RBAC denial as the API server words it: `User "U" cannot VERB resource "R" in API
/// group "G"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub user: String,
    pub verb: String,
    pub resource: String,
    pub group: String,
}

impl Denial {
    pub fn parse(message: &str) -> Option<Self> {
        let quoted_after = |marker: &str| -> Option<String> {
            let rest = &message[message.find(marker)? + marker.len()..];
            Some(rest[..rest.find('"')?].to_string())
        };
        let after_cannot = &message[message.find("cannot ")? + "cannot ".len()..];
        let verb = after_cannot.split_whitespace().next()?.to_string();
        Some(Self {
            user: quoted_after("User \"").unwrap_or_default(),
            verb,
            resource: quoted_after("resource \"")?,
            group: quoted_after("in API group \"").unwrap_or_default(),
        })
    }

    fn group_label(&self) -> &str {
        if self.group.is_empty() {
            "core"
        } else {
            &self.group
        }
    }

    /// The one rule that grants what was denied, appended to `role` in `ns`.
    pub fn fix(&self, role: &str, ns: &str) -> String {
        let rule = serde_json::json!([{
            "op": "add",
            "path": "/rules/-",
            "value": {"apiGroups": [self.group], "resources": [self.resource], "verbs": [self.verb]}
        }]);
        format!("kubectl patch role {role} -n {ns} --type=json -p '{rule}'")
    }

    pub fn check(&self, ns: &str) -> String {
        let who = if self.user.is_empty() {
            String::new()
        } else {
            format!(" --as {}", self.user)
        };
        format!(
            "kubectl auth can-i {} {} -n {ns}{who}",
            self.verb, self.resource
        )
    }
}

/// The Role a RoleBinding in the namespace grants to `user`; the agent's default otherwise.
fn role_of(user: &str, bindings: &[RoleBinding]) -> String {
    let sa = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    bindings
        .iter()
        .find(|b| {
            b.role_ref.kind == "Role"
                && b.subjects.iter().flatten().any(|s| match sa {
                    Some((ns, name)) => {
                        s.kind == "ServiceAccount"
                            && s.name == name
                            && s.namespace.as_deref().is_none_or(|n| n == ns)
                    }
                    None => s.name == user,
                })
        })
        .map_or_else(|| AGENT_ROLE.to_string(), |b| b.role_ref.name.clone())
}

/// What kind of failure a message describes, and what to run about it.
pub fn failure_kind(message: &str, ns: &str) -> Option<(&'static str, String)> {
    let m = message.to_ascii_lowercase();
    if m.contains("forbidden") || m.contains("cannot ") && m.contains("rbac") {
        Some((
            "RBAC denial",
            format!(
                "kubectl auth can-i --list -n {ns} --as system:serviceaccount:{ns}:gitops-agent"
            ),
        ))
    } else if m.contains("admission webhook") || m.contains("denied the request") {
        Some((
            "admission rejection",
            format!("kubectl get events -n {ns} --field-selector type=Warning"),
        ))
    } else if m.contains("signature") || m.contains("not signed") || m.contains("signed by") {
        Some(("signature refusal", "git verify-commit HEAD".to_string()))
    } else if m.contains("conflict") {
        Some(("apply conflict", format!("kubectl gitops diff -n {ns}")))
    } else {
        None
    }
}

/// (3) The agent's own account: status, Warning events, log lines that name a failure.
fn agent_step(
    status: Option<&SyncStatus>,
    events: &[Event],
    logs: &[String],
    bindings: &[RoleBinding],
    ns: &str,
) -> Step {
    let Some(status) = status else {
        return step("agent", StepVerdict::Skipped, "skipped: no agent status");
    };
    let mut s = step(
        "agent",
        StepVerdict::Ok,
        format!("last result {}", status.result.as_str()),
    );
    if !status.message.is_empty() {
        s.evidence
            .push(format!("status message: {}", status.message));
    }
    if let Some(warning) = &status.insecure {
        s.verdict = StepVerdict::Warning;
        s.summary = format!("{}; {warning}", s.summary);
        s.evidence.push(format!(
            "the agent fetches {} with --verify={}",
            status.repo,
            status.verify.as_deref().unwrap_or("none")
        ));
        s.next = "reinstall with an https:// or ssh:// --repo, or with --verify and --trusted-keys (kubectl gitops install --help)".into();
    }
    let failing = matches!(status.result, SyncResult::Failed | SyncResult::Refused);
    if failing {
        s.verdict = StepVerdict::Problem;
        s.summary = format!("the agent's last sync: {}", status.result.as_str());
        s.next = format!("kubectl gitops status -n {ns}");
    } else if status.result != SyncResult::Synced {
        s.verdict = StepVerdict::Warning;
    }
    if status.last_applied_revision.is_some()
        && status.last_applied_revision != status.resolved_commit
    {
        s.evidence.push(format!(
            "applied {} but tracking {}",
            status
                .last_applied_revision
                .as_deref()
                .map(short)
                .unwrap_or_default(),
            status
                .resolved_commit
                .as_deref()
                .map(short)
                .unwrap_or_default()
        ));
    }
    let warnings: Vec<&Event> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect();
    for e in warnings.iter().rev().take(5).rev() {
        let what = e.involved_object.name.clone().unwrap_or_default();
        s.evidence.push(format!(
            "event {} on {}/{what}: {}",
            e.reason.as_deref().unwrap_or_default(),
            e.involved_object.kind.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or_default()
        ));
    }
    let mut texts: Vec<&str> = vec![status.message.as_str()];
    texts.extend(warnings.iter().filter_map(|e| e.message.as_deref()));
    let log_hits: Vec<&String> = logs
        .iter()
        .filter(|l| failure_kind(l, ns).is_some())
        .collect();
    for l in log_hits.iter().rev().take(5).rev() {
        s.evidence.push(format!("log: {l}"));
    }
    texts.extend(log_hits.iter().map(|l| l.as_str()));
    if let Some((kind, next)) = texts.iter().find_map(|t| failure_kind(t, ns)) {
        if s.verdict == StepVerdict::Ok {
            s.verdict = StepVerdict::Warning;
        }
        s.summary = format!("{}; {kind} reported", s.summary);
        s.next = next;
    }
    if let Some(denial) = texts.iter().find_map(|t| Denial::parse(t)) {
        let role = role_of(&denial.user, bindings);
        s.summary = format!(
            "{}: the agent may not {} {} (API group {}); Role {role} lacks the verb",
            s.summary,
            denial.verb,
            denial.resource,
            denial.group_label()
        );
        s.evidence.insert(0, format!("check: {}", denial.check(ns)));
        s.next = denial.fix(&role, ns);
    }
    s
}

/// The namespace's RoleBindings, to name the Role to fix; empty when not readable.
async fn role_bindings(session: &Session) -> Vec<RoleBinding> {
    let api: Api<RoleBinding> = Api::namespaced(session.client.clone(), &session.namespace);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The last lines of each agent pod's log; empty when no pod runs or logs are not readable.
async fn agent_logs(session: &Session) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(session.client.clone(), &session.namespace);
    let Ok(list) = pods
        .list(&ListParams::default().labels(AGENT_POD_SELECTOR))
        .await
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pod in list.items {
        let Some(name) = pod.metadata.name else {
            continue;
        };
        let params = LogParams {
            tail_lines: Some(LOG_LINES),
            ..Default::default()
        };
        if let Ok(text) = pods.logs(&name, &params).await {
            out.extend(text.lines().map(|l| format!("{name}: {l}")));
        }
    }
    out
}

/// (4) The live comparison, as `diff` reports it.
fn live_step(report: &diff::DiffReport, ns: &str) -> Step {
    let classes = diff::classes(report);
    let s = &report.summary;
    let mut st = step(
        "live",
        StepVerdict::Ok,
        format!(
            "{} to create, {} to change, {} to prune, {} unchanged",
            s.create, s.change, s.prune, s.unchanged
        ),
    );
    for (class, objects) in &classes {
        st.evidence
            .push(format!("{}: {}", class.label(), objects.join(", ")));
    }
    for o in report.objects.iter().filter(|o| o.error.is_some()) {
        st.evidence.push(format!(
            "{}/{}: {}",
            o.kind,
            o.name,
            o.error.as_deref().unwrap_or_default()
        ));
    }
    if let Some(objects) = classes.get(&Class::HarmfulDrift) {
        st.verdict = StepVerdict::Problem;
        st.next = format!(
            "kubectl gitops explain {} -n {ns}",
            objects[0].to_lowercase()
        );
    } else if s.errors > 0 {
        st.verdict = StepVerdict::Problem;
        st.next = format!("kubectl gitops diff -n {ns}");
    } else if classes.contains_key(&Class::Pending) || classes.contains_key(&Class::BreakGlass) {
        st.verdict = StepVerdict::Warning;
        st.next = format!("kubectl gitops status -n {ns} --watch");
    }
    st
}

/// The most likely cause: the first step, in diagnosis order, that found a problem.
pub fn conclude(steps: &[Step]) -> (String, String) {
    let first = steps
        .iter()
        .find(|s| s.verdict == StepVerdict::Problem)
        .or_else(|| {
            steps
                .iter()
                .find(|s| s.verdict == StepVerdict::Warning && !s.next.is_empty())
        });
    match first {
        Some(s) => {
            let detail = s
                .evidence
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            (format!("{}: {}{detail}", s.name, s.summary), s.next.clone())
        }
        None => (
            "no problem found: the tracked revision is rendered, synced and live".into(),
            String::new(),
        ),
    }
}

pub fn format_text(d: &Diagnosis, color: bool) -> String {
    let mut out = String::new();
    for (i, s) in d.steps.iter().enumerate() {
        let (label, style) = match s.verdict {
            StepVerdict::Ok => ("ok", Style::Green),
            StepVerdict::Warning => ("warning", Style::Yellow),
            StepVerdict::Problem => ("problem", Style::Red),
            StepVerdict::Skipped => ("skipped", Style::Dim),
        };
        let _ = writeln!(
            out,
            "{}. {:<9} [{}] {}",
            i + 1,
            s.name,
            style.paint(label, color),
            s.summary
        );
        for e in &s.evidence {
            let _ = writeln!(out, "     {e}");
        }
    }
    let _ = writeln!(out, "\nMost likely cause: {}", d.cause);
    if !d.next.is_empty() {
        let _ = writeln!(out, "Next: {}", Style::Bold.paint(&d.next, color));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds() {
        let rbac = "apply Deployment/x: deployments.apps \"x\" is forbidden: User \"system:serviceaccount:shop:gitops-agent\" cannot patch";
        assert_eq!(failure_kind(rbac, "shop").unwrap().0, "RBAC denial");
        assert!(
            failure_kind(rbac, "shop")
                .unwrap()
                .1
                .contains("system:serviceaccount:shop:gitops-agent")
        );
        assert_eq!(
            failure_kind("admission webhook \"x\" denied the request", "s")
                .unwrap()
                .0,
            "admission rejection"
        );
        assert_eq!(
            failure_kind("commit abc is not signed by a trusted key", "s")
                .unwrap()
                .0,
            "signature refusal"
        );
        assert_eq!(
            failure_kind(
                "Apply failed with 1 conflict: conflict with \"kubectl-edit\"",
                "s"
            )
            .unwrap()
            .0,
            "apply conflict"
        );
        assert_eq!(failure_kind("all good", "s"), None);
    }

    #[test]
    fn rbac_denials_name_the_verb_resource_and_the_rule_to_add() {
        let message = "dry-run Service/catalog-api: services \"catalog-api\" is forbidden: User \"system:serviceaccount:shop:gitops-agent\" cannot patch resource \"services\" in API group \"\" in the namespace \"shop\"";
        let d = Denial::parse(message).unwrap();
        assert_eq!(
            d,
            Denial {
                user: "system:serviceaccount:shop:gitops-agent".into(),
                verb: "patch".into(),
                resource: "services".into(),
                group: String::new(),
            }
        );
        assert_eq!(
            d.fix("agent-role", "shop"),
            r#"kubectl patch role agent-role -n shop --type=json -p '[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["services"],"verbs":["patch"]}}]'"#
        );
        assert_eq!(
            d.check("shop"),
            "kubectl auth can-i patch services -n shop --as system:serviceaccount:shop:gitops-agent"
        );
        assert_eq!(Denial::parse("all good"), None);

        let binding: RoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "agent-role"},
            "subjects": [{"kind": "ServiceAccount", "name": "gitops-agent", "namespace": "shop"}]
        }))
        .unwrap();
        assert_eq!(role_of(&d.user, &[binding]), "agent-role");
        assert_eq!(role_of(&d.user, &[]), AGENT_ROLE);

        let status = SyncStatus {
            result: SyncResult::Failed,
            message: message.into(),
            ..Default::default()
        };
        let s = agent_step(Some(&status), &[], &[], &[], "shop");
        assert!(
            s.summary
                .contains("the agent may not patch services (API group core)"),
            "{}",
            s.summary
        );
        assert!(
            s.next
                .starts_with("kubectl patch role gitops-agent -n shop"),
            "{}",
            s.next
        );
    }

    fn failed(name: &str, next: &str) -> Step {
        Step {
            evidence: vec!["base/deployment.yaml:7: bad".into()],
            next: next.into(),
            ..step(name, StepVerdict::Problem, "broken")
        }
    }

    #[test]
    fn the_first_problem_in_order_is_the_cause() {
        let steps = vec![
            step("revision", StepVerdict::Ok, "fine"),
            failed(
                "render",
                "kubectl gitops render overlays/prod --revision abc",
            ),
            failed("live", "kubectl gitops explain deployment/x"),
        ];
        let (cause, next) = conclude(&steps);
        assert_eq!(cause, "render: broken (base/deployment.yaml:7: bad)");
        assert_eq!(next, "kubectl gitops render overlays/prod --revision abc");
        let (cause, next) = conclude(&[step("revision", StepVerdict::Ok, "fine")]);
        assert!(cause.starts_with("no problem"), "{cause}");
        assert_eq!(next, "");
    }

    #[test]
    fn agent_step_reads_status_and_logs() {
        let status = SyncStatus {
            result: SyncResult::Failed,
            message: "apply Deployment/x: forbidden".into(),
            ..Default::default()
        };
        let s = agent_step(Some(&status), &[], &[], &[], "shop");
        assert_eq!(s.verdict, StepVerdict::Problem);
        assert!(s.summary.contains("RBAC denial"), "{}", s.summary);
        let ok = SyncStatus {
            result: SyncResult::Synced,
            ..Default::default()
        };
        let s = agent_step(
            Some(&ok),
            &[],
            &["agent-0: commit abc is not signed by a trusted key".into()],
            &[],
            "shop",
        );
        assert_eq!(s.verdict, StepVerdict::Warning);
        assert!(
            s.evidence.iter().any(|e| e.starts_with("log: ")),
            "{:?}",
            s.evidence
        );
    }

    #[test]
    fn text_snapshot() {
        let steps = vec![
            step(
                "revision",
                StepVerdict::Ok,
                "the agent tracks main at 1a2b3c4d5e6f (overlays/prod)",
            ),
            failed(
                "render",
                "kubectl gitops render overlays/prod --revision 1a2b3c4d5e6f",
            ),
            step("agent", StepVerdict::Ok, "last result Synced"),
            step(
                "live",
                StepVerdict::Skipped,
                "skipped: nothing rendered to compare",
            ),
        ];
        let (cause, next) = conclude(&steps);
        let d = Diagnosis {
            namespace: "shop".into(),
            steps,
            cause,
            next,
        };
        insta::assert_snapshot!(format_text(&d, false));
        let json = serde_json::to_value(&d).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["namespace", "steps", "cause", "next"]);
        assert_eq!(json["steps"][1]["verdict"], "problem");
    }
}
