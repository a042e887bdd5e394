//! `kubectl gitops explain KIND/NAME [FIELD_PATH]`: for each field, the live value, Git's
//! value, the file:line that sets it and the commit that last touched that line, who owns it
//! live, and a verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use git2::Oid;
use jiff::Timestamp;
use renderer::drift::predict;
use renderer::drift::{ManagedFields, ManagerInfo, REDACTED, compare, is_secret_value};
use renderer::protocol::{
    AGENT_FIELD_MANAGER, BreakGlass, GroupKind, REVISION_ANNOTATION, decorate,
};
use renderer::provenance::FieldPath;
use renderer::{FieldOrigin, RenderedObject, SetBy};
use serde::Serialize;
use serde_json::Value;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::live::{self, Kinds, annotations};
use crate::cluster::session::{Session, block_on};
use crate::cluster::tracked;
use crate::git::blame::{Blamer, LineCommit};
use crate::git::local_repo::{LocalRepo, resolve_target, short};
use crate::output::printer::{Printer, Style};
use crate::output::report::{DataFormat, serialize};
use crate::plan::desired::{self, path_covers, pointer_of, pointers_overlap};

pub const EXAMPLES: &str = "\
Examples:
  # Why does the Deployment run 3 replicas, and who decided that?
  kubectl gitops explain deployment/catalog-api spec.replicas -n shop

  # One container's CPU limit: Git's file:line and commit, the live owner, the verdict
  kubectl gitops explain deploy/catalog-api \\
      'spec.template.spec.containers[name=api].resources.limits.cpu'

  # Every field of the object, grouped by the file that sets it, as JSON
  kubectl gitops explain svc/catalog-api -o json";

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// The object, as KIND/NAME (kubectl's kind names and short names work)
    #[arg(value_name = "KIND/NAME")]
    pub object: String,
    /// A field, e.g. spec.replicas or spec.template.spec.containers[name=api].image; a
    /// parent path selects every field under it; all fields when omitted
    #[arg(value_name = "FIELD_PATH")]
    pub field: Option<String>,
    /// A clone of the tracked repository (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Explain against this revision instead of the one the agent tracks
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// The overlay directory inside the repository (default: the agent's)
    #[arg(long, value_name = "DIR")]
    pub path: Option<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = DataFormat::Text)]
    pub output: DataFormat,
}

/// The `-o json` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// The commit Git's values come from.
    pub revision: String,
    pub path: String,
    pub live_exists: bool,
    /// The commit the agent last applied to this object (its revision annotation).
    pub live_revision: Option<String>,
    pub break_glass: Option<BreakGlassInfo>,
    pub fields: Vec<FieldReport>,
    /// Fields Git never sets, added live by someone else (as `diff` reports them).
    pub foreign: Vec<crate::commands::diff::FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassInfo {
    #[serde(flatten)]
    pub break_glass: BreakGlass,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldReport {
    pub path: String,
    pub live: Option<Value>,
    pub desired: Option<Value>,
    pub origin: Option<OriginView>,
    /// The last commit that touched the origin line, at `revision`.
    pub commit: Option<LineCommit>,
    pub managers: Vec<ManagerInfo>,
    pub verdict: Verdict,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OriginView {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// `resource`, `patch`, `generator`, or the kustomization field, e.g. `images`.
    pub set_by: String,
    /// The kustomization files the value passed through, innermost first.
    pub chain: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    InSync,
    Drifted,
    Ignored,
    BreakGlass,
    Pending,
    NotInGit,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::InSync => "in sync",
            Verdict::Drifted => "drifted",
            Verdict::Ignored => "ignored",
            Verdict::BreakGlass => "overridden by break-glass",
            Verdict::Pending => "pending",
            Verdict::NotInGit => "not set by Git",
        }
    }

    fn style(self) -> Style {
        match self {
            Verdict::InSync => Style::Green,
            Verdict::Drifted => Style::Red,
            Verdict::Ignored | Verdict::NotInGit => Style::Dim,
            Verdict::BreakGlass | Verdict::Pending => Style::Yellow,
        }
    }
}

/// What is known about one field, before judging it.
#[derive(Debug, Clone, Default)]
pub struct FieldFacts {
    pub in_git: bool,
    pub live_exists: bool,
    /// Why the field is ignored, if it is.
    pub ignored: Option<String>,
    pub drifted: bool,
    pub break_glass: Option<BreakGlass>,
    /// The object's live revision is not the one explained: the agent has not applied it yet.
    pub pending: Option<String>,
    pub managers: Vec<String>,
}

/// The verdict and its one-line reason.
pub fn judge(f: &FieldFacts, now: Timestamp) -> (Verdict, String) {
    let others: Vec<&str> = f
        .managers
        .iter()
        .map(String::as_str)
        .filter(|m| *m != AGENT_FIELD_MANAGER)
        .collect();
    if !f.in_git {
        let owners = if f.managers.is_empty() {
            "no field manager".to_string()
        } else {
            f.managers.join(", ")
        };
        return (
            Verdict::NotInGit,
            format!("Git does not set it; owned by {owners}"),
        );
    }
    if !f.live_exists {
        return (Verdict::Pending, "the object does not exist yet".into());
    }
    if let Some(why) = &f.ignored {
        return (Verdict::Ignored, why.clone());
    }
    if !f.drifted {
        return (Verdict::InSync, "live matches Git".into());
    }
    if let Some(bg) = f.break_glass.as_ref().filter(|bg| bg.is_active(now)) {
        return (
            Verdict::BreakGlass,
            format!("break-glass by {} until {}: {}", bg.by, bg.until, bg.reason),
        );
    }
    if let Some(live_revision) = &f.pending {
        return (
            Verdict::Pending,
            format!(
                "Git changed it; the agent has applied {} so far",
                short(live_revision)
            ),
        );
    }
    if others.is_empty() {
        (Verdict::Drifted, "live differs from Git".into())
    } else {
        (
            Verdict::Drifted,
            format!("changed by {}", others.join(", ")),
        )
    }
}

pub fn run(args: &ExplainArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let local = LocalRepo::open(args.repo.as_deref())?;
    block_on(async {
        let session = Session::connect(kube).await?;
        let explanation = explain(args, &session, &local, printer).await?;
        let text = match serialize(&explanation, args.output) {
            Some(text) => text,
            None => format_text(&explanation, args.field.is_some(), printer.color()),
        };
        printer.result(&text).context("writing to stdout")?;
        let troubled = explanation.fields.iter().any(|f| {
            matches!(
                f.verdict,
                Verdict::Drifted | Verdict::BreakGlass | Verdict::Pending
            )
        });
        Ok(if troubled {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        })
    })?
}

async fn explain(
    args: &ExplainArgs,
    session: &Session,
    local: &LocalRepo,
    printer: &Printer,
) -> anyhow::Result<Explanation> {
    let ns = &session.namespace;
    let parent = tracked::read_parent(&session.client, ns).await?;
    let status = parent.as_ref().and_then(|p| p.status.as_ref());
    let (commit, path) = resolve_target(
        local,
        status,
        args.revision.as_deref(),
        args.path.as_deref(),
    )?;
    printer.verbose(&format!("rendering {path} at {}", short(&commit)));
    let source = local.source_at(&commit)?;
    let rendered = desired::render(&source, &path)
        .map_err(|e| anyhow!("rendering {path} at {}: {e}", short(&commit)))?;

    let kinds = Kinds::discover(&session.client).await?;
    let (kind_text, name) = args.object.split_once('/').ok_or_else(|| {
        anyhow!(
            "{}: expected KIND/NAME, e.g. deployment/catalog-api",
            args.object
        )
    })?;
    let object = find_object(&rendered.objects, &kinds, kind_text, name).ok_or_else(|| {
        anyhow!(
            "{} is not rendered by {path} at {}",
            args.object,
            short(&commit)
        )
    })?;
    let resource = kinds
        .for_object(&object.value)
        .ok_or_else(|| anyhow!("the API server does not serve {}", object.value["kind"]))?;
    let live = live::get(&session.client, ns, &resource, name).await?;
    let hpas = live::hpas(&session.client, ns, &kinds).await?;
    let agent_rules = desired::AgentRules::new(&rendered, &hpas, status);
    let rules = &agent_rules.rules;

    let mut body = object.value.clone();
    decorate(&mut body, ns, &tracked::set_id(ns));
    let ignored = rules.ignored_pointers(&body);
    let mut stripped = body.clone();
    rules.strip_ignored(&mut stripped);
    let managed = match &live {
        Some(l) => ManagedFields::from_object(l)
            .with_context(|| format!("{}/{name}: reading managedFields", resource.0.kind))?,
        None => ManagedFields::default(),
    };
    let drift = match &live {
        Some(l) => compare(&stripped, l, &managed.applied_by(AGENT_FIELD_MANAGER)),
        None => Vec::new(),
    };
    let live_annotations = live.as_ref().map(annotations).unwrap_or_default();
    // The commit that last changed the live object: recorded on the parent by the agent (an
    // agent before 0.2 annotated the object itself instead).
    let live_revision = live.as_ref().and_then(|l| {
        let recorded = parent.as_ref().and_then(|p| {
            p.member_commit(
                l["apiVersion"].as_str()?,
                l["kind"].as_str()?,
                l["metadata"]["name"].as_str()?,
            )
        });
        recorded
            .map(str::to_string)
            .or_else(|| live_annotations.get(REVISION_ANNOTATION).cloned())
    });
    let break_glass = BreakGlass::from_annotations(&live_annotations)
        .ok()
        .flatten();
    // Git's change is pending while the agent has not applied the commit explained yet.
    let applied = status
        .and_then(|s| s.last_applied_revision.clone())
        .or_else(|| live_annotations.get(REVISION_ANNOTATION).cloned());
    let pending = applied.filter(|r| *r != commit);

    let oid = Oid::from_str(&commit).context("tracked commit id")?;
    let mut blamer = Blamer::new(&local.repo, oid);
    let now = Timestamp::now();
    let wanted = args
        .field
        .as_deref()
        .map(|f| string_data_alias(&object.value, normalise(f)));
    let selected: Vec<(&String, &FieldOrigin)> = object
        .provenance()
        .iter()
        .filter(|(p, _)| wanted.as_deref().is_none_or(|f| path_covers(f, p)))
        .collect();
    let mut fields = Vec::new();
    for (text, origin) in &selected {
        let path: FieldPath = text
            .parse()
            .with_context(|| format!("provenance path {text}"))?;
        let Some(dptr) = pointer_of(&path, &object.value) else {
            continue;
        };
        let lptr = live.as_ref().and_then(|l| pointer_of(&path, l));
        let owners = match (&live, &lptr) {
            (Some(l), Some(p)) => managed.owners(l, p).into_iter().cloned().collect(),
            _ => Vec::new(),
        };
        let facts = FieldFacts {
            in_git: true,
            live_exists: live.is_some(),
            ignored: ignored
                .iter()
                .find(|p| dptr == **p || dptr.starts_with(&format!("{p}/")))
                .map(|p| agent_rules.reason(p, &body)),
            drifted: drift.iter().any(|d| pointers_overlap(&d.pointer, &dptr)),
            break_glass: break_glass.clone(),
            pending: pending.clone(),
            managers: owners
                .iter()
                .map(|m: &ManagerInfo| m.manager.clone())
                .collect(),
        };
        let (verdict, reason) = judge(&facts, now);
        let secret = is_secret_value(&object.value, &dptr);
        let shown = |v: Option<&Value>| {
            v.map(|v| {
                if secret {
                    Value::from(REDACTED)
                } else {
                    v.clone()
                }
            })
        };
        fields.push(FieldReport {
            path: text.to_string(),
            live: shown(
                live.as_ref()
                    .zip(lptr.as_ref())
                    .and_then(|(l, p)| l.pointer(p)),
            ),
            desired: shown(object.value.pointer(&dptr)),
            origin: Some(origin_view(origin)),
            commit: blamer.line(&origin.origin.file, origin.origin.line),
            managers: owners,
            verdict,
            reason,
        });
    }
    if let (Some(field), true) = (&args.field, fields.is_empty()) {
        fields.push(not_in_git(field, live.as_ref(), &managed, now)?);
    }
    let foreign = match &live {
        Some(l) => {
            let prepared =
                predict::apply_body(&object.value, ns, &tracked::set_id(ns), rules, Some(l));
            crate::commands::diff::foreign_fields(
                session,
                &resource,
                &prepared.body,
                l,
                &prepared.ignored,
            )
            .await?
        }
        None => Vec::new(),
    };
    Ok(Explanation {
        api_version: object.value["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        kind: object.value["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        name: name.to_string(),
        namespace: ns.clone(),
        revision: commit,
        path,
        live_exists: live.is_some(),
        live_revision,
        break_glass: break_glass.map(|bg| BreakGlassInfo {
            active: bg.is_active(now),
            break_glass: bg,
        }),
        fields,
        foreign,
    })
}

/// A field Git does not set: only the live side can be shown.
fn not_in_git(
    field: &str,
    live: Option<&Value>,
    managed: &ManagedFields,
    now: Timestamp,
) -> anyhow::Result<FieldReport> {
    let path: FieldPath = field.parse()?;
    let lptr = live.and_then(|l| pointer_of(&path, l));
    let owners: Vec<ManagerInfo> = match (live, &lptr) {
        (Some(l), Some(p)) => managed.owners(l, p).into_iter().cloned().collect(),
        _ => Vec::new(),
    };
    let facts = FieldFacts {
        live_exists: live.is_some(),
        managers: owners.iter().map(|m| m.manager.clone()).collect(),
        ..Default::default()
    };
    let (verdict, reason) = judge(&facts, now);
    if live.is_some_and(|l| l["kind"] == "Secret") {
        bail!("{field}: not set by Git; Secret values are not shown");
    }
    Ok(FieldReport {
        path: path.to_string(),
        live: live
            .zip(lptr.as_ref())
            .and_then(|(l, p)| l.pointer(p))
            .cloned(),
        desired: None,
        origin: None,
        commit: None,
        managers: owners,
        verdict,
        reason,
    })
}

/// A user's path in the provenance spelling (`a.b[name=c]`), so prefixes compare as text.
/// `data.K` of a Secret that Git writes as `stringData.K` (as SOPS files usually do): the
/// API server stores it under `data`, so that is the name users see live.
fn string_data_alias(git: &Value, field: String) -> String {
    match field.strip_prefix("data.") {
        Some(key)
            if renderer::drift::is_secret(git)
                && git["data"].get(key).is_none()
                && git["stringData"].get(key).is_some() =>
        {
            format!("stringData.{key}")
        }
        _ => field,
    }
}

fn normalise(field: &str) -> String {
    field
        .parse::<FieldPath>()
        .map(|p| p.to_string())
        .unwrap_or_else(|_| field.to_string())
}

fn find_object<'a>(
    objects: &'a [RenderedObject],
    kinds: &Kinds,
    kind_text: &str,
    name: &str,
) -> Option<&'a RenderedObject> {
    let wanted = kinds.by_name(kind_text);
    objects.iter().find(|o| {
        let gk = GroupKind::from_api_version(
            o.value["apiVersion"].as_str().unwrap_or_default(),
            o.value["kind"].as_str().unwrap_or_default(),
        );
        let kind_matches = match &wanted {
            Some(w) => *w == gk,
            None => gk.kind.eq_ignore_ascii_case(kind_text),
        };
        kind_matches && o.value["metadata"]["name"] == name
    })
}

fn origin_view(o: &FieldOrigin) -> OriginView {
    OriginView {
        file: o.origin.file.to_string(),
        line: o.origin.line,
        column: o.origin.col,
        set_by: match o.origin.set_by {
            SetBy::Resource => "resource".into(),
            SetBy::Patch => "patch".into(),
            SetBy::Generator => "generator".into(),
            SetBy::Transformer(name) => name.into(),
        },
        chain: o.chain.iter().map(ToString::to_string).collect(),
    }
}

/// A value as people read it: strings bare, everything else as compact JSON.
pub fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn origin_text(o: &OriginView) -> String {
    let mut text = format!("{}:{}:{} ({})", o.file, o.line, o.column, o.set_by);
    let via: Vec<&str> = o
        .chain
        .iter()
        .map(String::as_str)
        .filter(|f| *f != o.file)
        .collect();
    if !via.is_empty() {
        let _ = write!(text, " via {}", via.join(" -> "));
    }
    text
}

fn commit_text(c: &LineCommit) -> String {
    format!(
        "{} {} {} <{}>: {}",
        short(&c.sha),
        c.date.strftime("%Y-%m-%d"),
        c.author,
        c.email,
        c.subject
    )
}

fn managers_text(managers: &[ManagerInfo]) -> String {
    if managers.is_empty() {
        return "none".into();
    }
    managers
        .iter()
        .map(|m| format!("{} ({})", m.manager, m.operation))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Text output: every detail for selected fields, one line per field grouped by file for a
/// whole object.
pub fn format_text(e: &Explanation, detailed: bool, color: bool) -> String {
    let mut out = format!(
        "{}/{} in namespace {}: Git {} ({})",
        e.kind,
        e.name,
        e.namespace,
        short(&e.revision),
        e.path
    );
    match (&e.live_revision, e.live_exists) {
        (_, false) => out.push_str(", not created yet"),
        (Some(r), true) => {
            let _ = write!(out, ", live from {}", short(r));
        }
        (None, true) => out.push_str(", live not applied by the agent"),
    }
    out.push('\n');
    if let Some(bg) = &e.break_glass {
        let state = if bg.active { "active" } else { "expired" };
        let _ = writeln!(
            out,
            "Break-glass {state} until {} by {}: {}",
            bg.break_glass.until, bg.break_glass.by, bg.break_glass.reason
        );
    }
    if !e.foreign.is_empty() {
        out.push_str("Foreign additions:\n");
        for f in &e.foreign {
            let _ = writeln!(out, "  {}", crate::commands::diff::foreign_line(f, color));
        }
    }
    let verdict = |f: &FieldReport| {
        f.verdict
            .style()
            .paint(f.verdict.label(), color)
            .into_owned()
    };
    if detailed || e.fields.len() == 1 {
        for f in &e.fields {
            let _ = writeln!(out, "\n{}", Style::Bold.paint(&f.path, color));
            let _ = writeln!(out, "  verdict:   {}: {}", verdict(f), f.reason);
            let _ = writeln!(out, "  live:      {}", show(f.live.as_ref()));
            let _ = writeln!(out, "  git:       {}", show(f.desired.as_ref()));
            if let Some(o) = &f.origin {
                let _ = writeln!(out, "  set in:    {}", origin_text(o));
            }
            if let Some(c) = &f.commit {
                let _ = writeln!(out, "  commit:    {}", commit_text(c));
            }
            let _ = writeln!(out, "  managers:  {}", managers_text(&f.managers));
        }
        return out;
    }
    let mut by_file: BTreeMap<&str, Vec<&FieldReport>> = BTreeMap::new();
    for f in &e.fields {
        by_file
            .entry(
                f.origin
                    .as_ref()
                    .map_or("(not in Git)", |o| o.file.as_str()),
            )
            .or_default()
            .push(f);
    }
    for (file, mut fields) in by_file {
        fields.sort_by_key(|f| f.origin.as_ref().map(|o| (o.line, o.column)));
        let _ = writeln!(out, "\n{}", Style::Bold.paint(file, color));
        for f in fields {
            let line = f.origin.as_ref().map_or(0, |o| o.line);
            let _ = write!(
                out,
                "  {line:>4}  {} = {}  [{}]",
                f.path,
                show(f.desired.as_ref()),
                verdict(f)
            );
            if f.verdict != Verdict::InSync {
                let _ = write!(out, " live {}; {}", show(f.live.as_ref()), f.reason);
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    fn facts() -> FieldFacts {
        FieldFacts {
            in_git: true,
            live_exists: true,
            managers: vec![AGENT_FIELD_MANAGER.into()],
            ..Default::default()
        }
    }

    fn bg(until: &str) -> BreakGlass {
        BreakGlass {
            by: "alice".into(),
            reason: "INC-42".into(),
            since: "2026-11-26T10:00:00Z".parse().unwrap(),
            until: until.parse().unwrap(),
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(&facts(), now()).0, Verdict::InSync);
        let drifted = FieldFacts {
            drifted: true,
            managers: vec!["kubectl-set".into()],
            ..facts()
        };
        assert_eq!(
            judge(&drifted, now()),
            (Verdict::Drifted, "changed by kubectl-set".into())
        );
        let ignored = FieldFacts {
            ignored: Some("HorizontalPodAutoscaler/web owns the replica count".into()),
            ..drifted.clone()
        };
        assert_eq!(judge(&ignored, now()).0, Verdict::Ignored);
        let glass = FieldFacts {
            break_glass: Some(bg("2026-11-26T13:00:00Z")),
            ..drifted.clone()
        };
        let (v, why) = judge(&glass, now());
        assert_eq!(v, Verdict::BreakGlass);
        assert!(why.contains("alice") && why.contains("INC-42"), "{why}");
        let expired = FieldFacts {
            break_glass: Some(bg("2026-11-26T11:00:00Z")),
            ..drifted.clone()
        };
        assert_eq!(judge(&expired, now()).0, Verdict::Drifted);
        let pending = FieldFacts {
            pending: Some("0123456789abcdef".into()),
            managers: vec![AGENT_FIELD_MANAGER.into()],
            ..drifted.clone()
        };
        let (v, why) = judge(&pending, now());
        assert_eq!(v, Verdict::Pending);
        assert!(why.contains("0123456789ab"), "{why}");
        let absent = FieldFacts {
            live_exists: false,
            ..facts()
        };
        assert_eq!(judge(&absent, now()).0, Verdict::Pending);
        let foreign = FieldFacts {
            in_git: false,
            managers: vec!["kube-controller-manager".into()],
            ..facts()
        };
        let (v, why) = judge(&foreign, now());
        assert_eq!(v, Verdict::NotInGit);
        assert!(why.contains("kube-controller-manager"), "{why}");
    }

    fn explanation() -> Explanation {
        let origin = |file: &str, line, set_by: &str| OriginView {
            file: file.into(),
            line,
            column: 3,
            set_by: set_by.into(),
            chain: vec![
                "base/kustomization.yaml".into(),
                "overlays/prod/kustomization.yaml".into(),
            ],
        };
        Explanation {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "catalog-api".into(),
            namespace: "shop".into(),
            revision: "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d".into(),
            path: "overlays/prod".into(),
            live_exists: true,
            live_revision: Some("1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d".into()),
            break_glass: None,
            foreign: vec![],
            fields: vec![
                FieldReport {
                    path: "spec.replicas".into(),
                    live: Some(json!(5)),
                    desired: Some(json!(3)),
                    origin: Some(origin("overlays/prod/deployment-prod.yaml", 6, "patch")),
                    commit: Some(LineCommit {
                        sha: "9f8e7d6c5b4a9f8e7d6c5b4a9f8e7d6c5b4a9f8e".into(),
                        author: "Ada".into(),
                        email: "ada@example.com".into(),
                        date: "2026-11-20T09:00:00Z".parse().unwrap(),
                        subject: "prod: 3 replicas".into(),
                    }),
                    managers: vec![ManagerInfo {
                        manager: "gitops-agent".into(),
                        operation: "Apply".into(),
                        subresource: String::new(),
                        time: None,
                    }],
                    verdict: Verdict::Ignored,
                    reason: "HorizontalPodAutoscaler/catalog-api owns the replica count".into(),
                },
                FieldReport {
                    path: "spec.template.spec.containers[name=api].image".into(),
                    live: Some(json!("registry.example.com/catalog-api:1.4.2")),
                    desired: Some(json!("registry.example.com/catalog-api:1.4.2")),
                    origin: Some(origin("overlays/prod/kustomization.yaml", 9, "images")),
                    commit: None,
                    managers: vec![],
                    verdict: Verdict::InSync,
                    reason: "live matches Git".into(),
                },
            ],
        }
    }

    #[test]
    fn text_snapshots() {
        insta::assert_snapshot!("explain_detailed", format_text(&explanation(), true, false));
        insta::assert_snapshot!("explain_grouped", format_text(&explanation(), false, false));
    }

    #[test]
    fn json_field_names_are_stable() {
        let json = serde_json::to_value(explanation()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "apiVersion",
                "kind",
                "name",
                "namespace",
                "revision",
                "path",
                "liveExists",
                "liveRevision",
                "breakGlass",
                "fields",
                "foreign"
            ]
        );
        let field = &json["fields"][0];
        let keys: Vec<&str> = field
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "path", "live", "desired", "origin", "commit", "managers", "verdict", "reason"
            ]
        );
        assert_eq!(field["verdict"], "ignored");
        assert_eq!(field["origin"]["setBy"], "patch");
        assert_eq!(field["commit"]["subject"], "prod: 3 replicas");
        assert_eq!(json["fields"][1]["verdict"], "inSync");
    }

    #[test]
    fn user_paths_are_normalised() {
        assert_eq!(
            normalise("spec.template.spec.containers[name=api]"),
            "spec.template.spec.containers[name=api]"
        );
        assert_eq!(
            normalise("metadata.annotations[\"a.b/c\"]"),
            "metadata.annotations[\"a.b/c\"]"
        );
    }
}
