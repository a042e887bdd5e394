//! `kubectl gitops diff [DIR] [--revision REV]`: what applying Git would change, judged by
//! the API server (server-side apply dry-run), with the agent's ignore rules, and why each
//! difference exists.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use jiff::Timestamp;
use kube::discovery::{ApiCapabilities, ApiResource};
use renderer::drift::predict::{self, ApplyBody, ChangeOp};
use renderer::drift::{ManagedFields, compare, foreign};
use renderer::protocol::{
    AGENT_FIELD_MANAGER, APPLYSET_PART_OF_LABEL, BreakGlass, GroupKind, PLUGIN_FIELD_MANAGER,
    PRUNE_ANNOTATION, PRUNE_DISABLED, REVISION_ANNOTATION, SyncStatus, decorate,
};
use renderer::{FsSource, Rendered, Source};
use serde::Serialize;
use serde_json::Value;
use tokio::task::{JoinError, JoinSet};

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::live::{self, Kinds, annotations, object_key, without_server_fields};
use crate::cluster::session::{Session, block_on};
use crate::cluster::tracked::{self, Parent};
use crate::constants::DIFF_CONCURRENCY;
use crate::git::local_repo::LocalRepo;
use crate::output::printer::{Printer, Style};
use crate::output::report::{DataFormat, serialize};
use crate::output::unified_diff::{DiffOptions, object_diff};
use crate::plan::desired::{self, AgentRules, live_pointer};

pub const EXAMPLES: &str = "\
Examples:
  # What would the agent change? (the tracked overlay, from the working tree)
  kubectl gitops diff -n shop

  # A specific overlay directory, as committed at a tag
  kubectl gitops diff overlays/prod --revision v1.5.0

  # In CI: exit 1 when anything differs, details as JSON
  kubectl gitops diff overlays/prod -o json";

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The kustomization directory (default: the overlay the agent tracks)
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Render the tree of this commit, tag or branch instead of the working tree
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// A clone of the tracked repository (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = DataFormat::Text)]
    pub output: DataFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Create,
    Change,
    Prune,
    Unchanged,
    /// Git declares it, but the live object is someone else's (see `renderer::protocol::adoption`):
    /// the agent leaves it alone and reports it.
    Refused,
}

/// Why an object differs; ordered by how much attention it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Class {
    /// Left as an operator set it until break-glass expires.
    BreakGlass,
    /// Someone other than the agent changed a field Git sets.
    HarmfulDrift,
    /// Someone other than the agent added a field Git never sets; the agent leaves it unless
    /// told to remove foreign additions.
    Foreign,
    /// Git differs from what the agent applied: the next sync changes it.
    Pending,
    /// Differences Git does not own: defaults, webhooks, other controllers, ignored fields.
    Expected,
}

impl Class {
    pub fn label(self) -> &'static str {
        match self {
            Class::BreakGlass => "break-glass",
            Class::HarmfulDrift => "harmful drift",
            Class::Foreign => "foreign addition",
            Class::Pending => "pending change",
            Class::Expected => "expected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// JSON pointer into Git's object.
    pub pointer: String,
    pub git: Value,
    pub live: Option<Value>,
    /// Live field managers of the field.
    pub managers: Vec<String>,
    pub class: Class,
    /// Who the field is left to, when an ignore rule covers it (class `expected`).
    pub ignored_by: Option<String>,
    /// The agent removes the field: it owns it and Git no longer sets it (`git` is null).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// For a foreign addition: when its manager wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// For a foreign addition: why it matters for security (empty when it does not).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDiff {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub action: Action,
    pub class: Option<Class>,
    /// Exists live without the ApplySet label: applying adopts it.
    pub unmanaged: bool,
    pub fields: Vec<FieldChange>,
    /// Fields left to someone else (HPA, ignore-fields annotation).
    pub ignored: Vec<String>,
    pub break_glass: Option<BreakGlass>,
    /// Why a member no longer rendered is kept.
    pub note: Option<String>,
    /// Why the agent will not adopt the live object (action `refused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub diff: Option<String>,
    pub error: Option<String>,
    /// What the agent's apply changes, field by field (live against the dry-run as the
    /// agent): the prediction the property test holds the agent to. A create is one `add`
    /// of the whole object at `""`, its value left out.
    pub changes: Vec<predict::Change>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub create: usize,
    pub change: usize,
    pub prune: usize,
    pub unchanged: usize,
    pub unmanaged: usize,
    pub harmful_drift: usize,
    pub foreign: usize,
    pub pending: usize,
    pub expected: usize,
    pub break_glass: usize,
    pub errors: usize,
    /// Objects the agent will not adopt (someone else's); absent when none, as before.
    #[serde(skip_serializing_if = "is_zero")]
    pub refused: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    pub namespace: String,
    /// The commit rendered, or `None` for the working tree.
    pub revision: Option<String>,
    pub path: String,
    /// Whether an agent status was found; without one nothing is pruned or pending.
    pub agent: bool,
    /// Digest of this render, and whether it equals the one the agent applied (`None`:
    /// the agent published none).
    pub render_digest: String,
    pub matches_applied: Option<bool>,
    pub objects: Vec<ObjectDiff>,
    pub summary: Summary,
}

impl DiffReport {
    pub fn exit_status(&self) -> ExitStatus {
        if self.summary.errors > 0 {
            ExitStatus::Error
        } else if self.objects.iter().any(|o| o.action != Action::Unchanged) {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        }
    }
}

pub fn run(args: &DiffArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    block_on(async {
        let session = Session::connect(kube).await?;
        let report = diff(args, &session, printer).await?;
        let text = match serialize(&report, args.output) {
            Some(text) => text,
            None => format_text(&report, printer.color()),
        };
        printer.result(&text).context("writing to stdout")?;
        Ok(report.exit_status())
    })?
}

/// What to render: a source, the directory inside it, and the commit if not the working tree.
struct Input {
    source: Box<dyn Source>,
    dir: String,
    revision: Option<String>,
}

fn input(args: &DiffArgs, status: Option<&SyncStatus>) -> anyhow::Result<Input> {
    let local = LocalRepo::open(args.repo.as_deref().or(args.dir.as_deref()));
    let dir = match (&args.dir, &local) {
        (Some(dir), Ok(local)) => relative_to(dir, &local.root)?,
        (Some(dir), Err(_)) if args.revision.is_none() => {
            // Outside any clone: render from the filesystem, as `render` does.
            let real = dir
                .canonicalize()
                .with_context(|| format!("{}: no such directory", dir.display()))?;
            let root = PathBuf::from("/");
            return Ok(Input {
                source: Box::new(FsSource::new(&root).context("opening /")?),
                dir: relative_to(&real, &root)?,
                revision: None,
            });
        }
        (None, _) => match status {
            Some(s) => s.path.clone(),
            None => bail!("no agent status in the namespace: pass the overlay DIR"),
        },
        (Some(_), Err(e)) => bail!("{e:#}"),
    };
    let local = local?;
    match &args.revision {
        Some(rev) => {
            let source = local.source_at(rev)?;
            let commit = source.commit().map(|c| c.to_string());
            Ok(Input {
                source: Box::new(source),
                dir,
                revision: commit,
            })
        }
        None => Ok(Input {
            source: Box::new(
                FsSource::new(&local.root).with_context(|| local.root.display().to_string())?,
            ),
            dir,
            revision: None,
        }),
    }
}

fn relative_to(dir: &Path, root: &Path) -> anyhow::Result<String> {
    let real = dir
        .canonicalize()
        .with_context(|| format!("{}: no such directory", dir.display()))?;
    let root = root
        .canonicalize()
        .with_context(|| root.display().to_string())?;
    let rel = real
        .strip_prefix(&root)
        .with_context(|| format!("{} is not inside {}", dir.display(), root.display()))?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts
        .map(|p| p.join("/"))
        .ok_or_else(|| anyhow!("{}: path is not valid UTF-8", dir.display()))
}

async fn diff(args: &DiffArgs, session: &Session, printer: &Printer) -> anyhow::Result<DiffReport> {
    let start = Instant::now();
    let ns = &session.namespace;
    let spinner = printer.spinner("reading the agent's status");
    let parent = tracked::read_parent(&session.client, ns).await?;
    spinner.finish_and_clear();
    let status = parent.as_ref().and_then(|p| p.status.as_ref());
    let input = input(args, status)?;
    let spinner = printer.spinner(&format!(
        "rendering {}",
        if input.dir.is_empty() {
            "."
        } else {
            &input.dir
        }
    ));
    let rendered =
        desired::render_decrypting(input.source.as_ref(), &input.dir, &Default::default());
    spinner.finish_and_clear();
    let (rendered, undecrypted) = rendered.map_err(|e| {
        anyhow!(
            "rendering {}: {e}",
            if input.dir.is_empty() {
                "."
            } else {
                &input.dir
            }
        )
    })?;
    // Their objects are compared encrypted: every encrypted value shows as a change.
    for failure in &undecrypted {
        printer.warn(&format!("not decrypted: {}", failure.error));
    }
    let spinner = printer.spinner("discovering the API server's kinds");
    let kinds = Kinds::discover(&session.client).await?;
    spinner.finish_and_clear();
    let report = compare_with_live(
        session,
        &kinds,
        parent.as_ref(),
        &rendered,
        &input.dir,
        input.revision,
        printer,
    )
    .await?;
    printer.info(&format!(
        "compared {} objects with namespace {ns} in {:.1}s",
        report.objects.len(),
        start.elapsed().as_secs_f64()
    ));
    Ok(report)
}

/// The comparison itself, shared with `doctor`.
pub async fn compare_with_live(
    session: &Session,
    kinds: &Kinds,
    parent: Option<&Parent>,
    rendered: &Rendered,
    path: &str,
    revision: Option<String>,
    printer: &Printer,
) -> anyhow::Result<DiffReport> {
    let ns = &session.namespace;
    let set_id = tracked::set_id(ns);
    let hpas = live::hpas(&session.client, ns, kinds).await?;
    let rules = Arc::new(AgentRules::new(
        rendered,
        &hpas,
        parent.and_then(|p| p.status.as_ref()),
    ));
    let now = Timestamp::now();
    let bar = printer.progress(rendered.objects.len() as u64, "server-side dry-runs");
    let mut objects = Vec::with_capacity(rendered.objects.len());
    let mut rendered_keys = BTreeSet::new();
    // Each object is a GET and a dry-run apply: waiting for them one at a time leaves the
    // API server idle, so a bounded number are in flight at once.
    let mut in_flight = JoinSet::new();
    for object in &rendered.objects {
        let gk = group_kind(&object.value);
        let name = object.value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        rendered_keys.insert((gk, name));
        if in_flight.len() >= DIFF_CONCURRENCY {
            objects.push(joined(in_flight.join_next().await)?);
            bar.inc(1);
        }
        let (session, rules, value, set_id) = (
            session.clone(),
            rules.clone(),
            object.value.clone(),
            set_id.clone(),
        );
        let resource = kinds.for_object(&value);
        in_flight.spawn(async move {
            diff_object(&session, resource, &rules, &value, &set_id, now)
                .await
                .unwrap_or_else(|e| errored(&value, e))
        });
    }
    while let Some(done) = in_flight.join_next().await {
        objects.push(joined(Some(done))?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(parent) = parent {
        let spinner = printer.spinner("listing the ApplySet's members");
        let members =
            live::members(&session.client, ns, kinds, &parent.group_kinds, &set_id).await?;
        spinner.finish_and_clear();
        for member in members {
            let key = (
                group_kind(&member),
                member["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            if !rendered_keys.contains(&key) {
                objects.push(pruned(member));
            }
        }
    }
    objects.sort_by(|a, b| (a.action, &a.kind, &a.name).cmp(&(b.action, &b.kind, &b.name)));
    let summary = summarise(&objects);
    Ok(DiffReport {
        namespace: ns.clone(),
        revision,
        path: path.to_string(),
        agent: parent.and_then(|p| p.status.as_ref()).is_some(),
        render_digest: desired::digest(rendered),
        matches_applied: parent
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.applied_digest.as_deref())
            .map(|applied| applied == desired::digest(rendered)),
        objects,
        summary,
    })
}

fn joined(done: Option<Result<ObjectDiff, JoinError>>) -> anyhow::Result<ObjectDiff> {
    done.expect("called with tasks in flight")
        .context("a dry-run task failed")
}

fn group_kind(obj: &Value) -> GroupKind {
    GroupKind::from_api_version(
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default(),
    )
}

fn skeleton(obj: &Value, action: Action) -> ObjectDiff {
    ObjectDiff {
        api_version: obj["apiVersion"].as_str().unwrap_or_default().to_string(),
        kind: obj["kind"].as_str().unwrap_or_default().to_string(),
        name: obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        action,
        class: None,
        unmanaged: false,
        fields: Vec::new(),
        ignored: Vec::new(),
        break_glass: None,
        note: None,
        refused: None,
        diff: None,
        error: None,
        changes: Vec::new(),
    }
}

fn errored(obj: &Value, e: anyhow::Error) -> ObjectDiff {
    ObjectDiff {
        error: Some(format!("{e:#}")),
        ..skeleton(obj, Action::Change)
    }
}

fn pruned(member: Value) -> ObjectDiff {
    let keep = annotations(&member)
        .get(PRUNE_ANNOTATION)
        .map(String::as_str)
        == Some(PRUNE_DISABLED);
    ObjectDiff {
        note: keep.then(|| format!("kept: {PRUNE_ANNOTATION}={PRUNE_DISABLED}")),
        diff: (!keep)
            .then(|| {
                object_diff(
                    Some(without_server_fields(&member)),
                    None,
                    ("live", "git"),
                    &object_key(&member),
                    DiffOptions::default(),
                )
            })
            .flatten(),
        class: (!keep).then_some(Class::Pending),
        ..skeleton(
            &member,
            if keep {
                Action::Unchanged
            } else {
                Action::Prune
            },
        )
    }
}

async fn diff_object(
    session: &Session,
    resource: Option<(ApiResource, ApiCapabilities)>,
    rules: &AgentRules,
    value: &Value,
    set_id: &str,
    now: Timestamp,
) -> anyhow::Result<ObjectDiff> {
    let ns = &session.namespace;
    let key = object_key(value);
    let resource = resource.ok_or_else(|| {
        anyhow!(
            "{key}: the API server does not serve {}",
            value["apiVersion"]
        )
    })?;
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    let (live, ApplyBody { body, ignored }, after) =
        live::live_and_agent_apply(&session.client, ns, &resource, name, |live| {
            predict::apply_body(value, ns, set_id, &rules.rules, live)
        })
        .await?;
    let mut git_body = value.clone();
    decorate(&mut git_body, ns, set_id);
    let mut out = skeleton(
        value,
        if live.is_some() {
            Action::Change
        } else {
            Action::Create
        },
    );
    out.ignored = ignored;
    out.changes = match &live {
        Some(l) => predict::changes(Some(l), &after),
        None => vec![predict::Change {
            pointer: String::new(),
            op: ChangeOp::Add,
            before: None,
            after: None,
        }],
    };
    let Some(live) = live else {
        out.class = Some(Class::Pending);
        out.diff = text_diff(None, &after, &key);
        return Ok(out);
    };
    out.unmanaged = live["metadata"]["labels"][APPLYSET_PART_OF_LABEL].as_str() != Some(set_id);
    // One rule with the agent: someone else's object is not applied, so nothing changes.
    if let Some(why) = renderer::protocol::adoption(Some(&live), set_id).refusal() {
        out.action = Action::Refused;
        out.refused = Some(why);
        out.changes = Vec::new();
        return Ok(out);
    }
    out.break_glass = BreakGlass::from_annotations(&annotations(&live))
        .ok()
        .flatten()
        .filter(|bg| bg.is_active(now));
    out.diff = text_diff(Some(&live), &after, &key);
    let managed = ManagedFields::from_object(&live)
        .with_context(|| format!("{key}: reading managedFields"))?;
    let owners = |pointer: &str| -> Vec<String> {
        live_pointer(&git_body, &live, pointer)
            .map(|p| {
                managed
                    .owners(&live, &p)
                    .into_iter()
                    .map(|m| m.manager.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let expected = ignored_differences(rules, &git_body, &live, &out.ignored, &owners);
    let foreign = foreign_fields(session, &resource, &body, &live, &out.ignored).await?;
    if out.diff.is_none() {
        out.action = if foreign.is_empty() {
            Action::Unchanged
        } else {
            Action::Change
        };
        out.fields = foreign;
        out.fields.extend(expected);
        out.class = (!out.fields.is_empty()).then(|| object_class(&out.fields));
        return Ok(out);
    }
    let mut git_side = body.clone();
    // The agent never reports its own bookkeeping as a change.
    if let Some(a) = git_side["metadata"]["annotations"].as_object_mut() {
        a.shift_remove(REVISION_ANNOTATION);
    }
    for d in compare(&git_side, &live, &managed.applied_by(AGENT_FIELD_MANAGER)) {
        let managers = owners(&d.pointer);
        // Git has never owned a look-alike's fields: applying takes them over, it does not
        // undo anyone's change to what the agent applied.
        let class = if out.unmanaged && out.break_glass.is_none() {
            Class::Pending
        } else {
            field_class(&managers, out.break_glass.is_some())
        };
        out.fields.push(FieldChange {
            pointer: d.pointer,
            git: d.desired,
            live: d.live,
            managers,
            class,
            ignored_by: None,
            removed: false,
            since: None,
            sensitive: Vec::new(),
        });
    }
    out.fields
        .extend(removals(&live, &after, &managed, out.break_glass.is_some()));
    out.fields.extend(foreign);
    out.fields.extend(expected);
    out.class = Some(object_class(&out.fields));
    Ok(out)
}

/// Ignored fields whose live value differs from Git's: not changes (the agent leaves them
/// alone too), but shown, so a reader sees the difference and who it is left to.
fn ignored_differences(
    rules: &AgentRules,
    git: &Value,
    live: &Value,
    ignored: &[String],
    owners: &dyn Fn(&str) -> Vec<String>,
) -> Vec<FieldChange> {
    ignored
        .iter()
        .filter_map(|p| {
            let git_value = git.pointer(p)?;
            let live_value = live_pointer(git, live, p).and_then(|lp| live.pointer(&lp));
            (live_value != Some(git_value)).then(|| {
                let (mut g, mut l) = (git_value.clone(), live_value.cloned());
                if renderer::drift::is_secret_value(git, p) {
                    g = Value::from(renderer::drift::REDACTED);
                    l = l.map(|_| Value::from(renderer::drift::REDACTED));
                }
                FieldChange {
                    pointer: p.clone(),
                    git: g,
                    live: l,
                    managers: owners(p),
                    class: Class::Expected,
                    ignored_by: Some(rules.reason(p, git)),
                    removed: false,
                    since: None,
                    sensitive: Vec::new(),
                }
            })
        })
        .collect()
}

/// Fields the agent's apply removes: it owns them and Git no longer sets them.
fn removals(
    live: &Value,
    after: &Value,
    managed: &ManagedFields,
    break_glass: bool,
) -> Vec<FieldChange> {
    predict::changes(Some(live), after)
        .into_iter()
        .filter(|c| c.op == ChangeOp::Remove)
        .map(|c| FieldChange {
            managers: managed
                .owners(live, &c.pointer)
                .into_iter()
                .map(|m| m.manager.clone())
                .collect(),
            pointer: c.pointer,
            git: Value::Null,
            live: c.before,
            class: if break_glass {
                Class::BreakGlass
            } else {
                Class::Pending
            },
            ignored_by: None,
            removed: true,
            since: None,
            sensitive: Vec::new(),
        })
        .collect()
}

/// The foreign additions on `live`: defaults are told apart by a dry-run create of Git's
/// object under a generated name (only when there is a candidate, so usually no request).
pub(crate) async fn foreign_fields(
    session: &Session,
    resource: &(ApiResource, ApiCapabilities),
    body: &Value,
    live: &Value,
    ignored: &[String],
) -> anyhow::Result<Vec<FieldChange>> {
    let key = object_key(live);
    let candidates = foreign::foreign_additions(body, live, None, ignored)
        .with_context(|| format!("{key}: reading managedFields"))?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let defaults =
        live::dry_run_create(&session.client, &session.namespace, resource, body).await?;
    let found = foreign::foreign_additions(body, live, Some(&defaults), ignored)
        .with_context(|| format!("{key}: reading managedFields"))?;
    Ok(found
        .into_iter()
        .map(|f| {
            let mut value = live.pointer(&f.pointer).cloned();
            if renderer::drift::is_secret(live) {
                value = value.map(|_| Value::from(renderer::drift::REDACTED));
            }
            FieldChange {
                git: Value::Null,
                live: value,
                managers: vec![f.manager],
                class: Class::Foreign,
                ignored_by: None,
                removed: false,
                since: f.time,
                sensitive: f.sensitive,
                pointer: f.pointer,
            }
        })
        .collect())
}

/// Why one field differs, from who owns it live.
pub fn field_class(managers: &[String], break_glass_active: bool) -> Class {
    if break_glass_active {
        return Class::BreakGlass;
    }
    let ours = [AGENT_FIELD_MANAGER, PLUGIN_FIELD_MANAGER];
    if managers.iter().any(|m| !ours.contains(&m.as_str())) {
        Class::HarmfulDrift
    } else {
        Class::Pending
    }
}

/// An object's class: its most urgent field's, or `Expected` when the API server's answer
/// differs only in fields Git does not set.
pub fn object_class(fields: &[FieldChange]) -> Class {
    fields
        .iter()
        .map(|f| f.class)
        .min()
        .unwrap_or(Class::Expected)
}

fn text_diff(live: Option<&Value>, after: &Value, key: &str) -> Option<String> {
    object_diff(
        live.map(without_server_fields),
        Some(without_server_fields(after)),
        ("live", "git"),
        key,
        DiffOptions::default(),
    )
}

pub fn summarise(objects: &[ObjectDiff]) -> Summary {
    let mut s = Summary::default();
    for o in objects {
        if o.error.is_some() {
            s.errors += 1;
            continue;
        }
        match o.action {
            Action::Create => s.create += 1,
            Action::Change => s.change += 1,
            Action::Prune => s.prune += 1,
            Action::Unchanged => s.unchanged += 1,
            Action::Refused => s.refused += 1,
        }
        s.unmanaged += usize::from(o.unmanaged);
        match o.class {
            Some(Class::HarmfulDrift) => s.harmful_drift += 1,
            Some(Class::Foreign) => s.foreign += 1,
            Some(Class::Pending) => s.pending += 1,
            Some(Class::Expected) => s.expected += 1,
            Some(Class::BreakGlass) => s.break_glass += 1,
            None => {}
        }
    }
    s
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Per object: a header saying what and why, the field reasons, then the unified diff;
/// a summary at the end.
pub fn format_text(r: &DiffReport, color: bool) -> String {
    let mut out = String::new();
    for o in &r.objects {
        if o.action == Action::Unchanged && o.note.is_none() && o.fields.is_empty() {
            continue;
        }
        let key = format!("{}/{}", o.kind, o.name);
        if let Some(error) = &o.error {
            let _ = writeln!(
                out,
                "# {key}: {}",
                Style::Red.paint(&format!("error: {error}"), color)
            );
            continue;
        }
        let action = match o.action {
            Action::Create => "create",
            Action::Change => "change",
            Action::Prune => "prune",
            Action::Unchanged => "unchanged",
            Action::Refused => "refused",
        };
        let mut header = format!("# {key}: {action}");
        if let Some(class) = o.class {
            let style = match class {
                Class::HarmfulDrift | Class::Foreign => Style::Red,
                Class::BreakGlass | Class::Pending => Style::Yellow,
                Class::Expected => Style::Dim,
            };
            let _ = write!(header, " ({})", style.paint(class.label(), color));
        }
        if let Some(why) = &o.refused {
            let _ = write!(header, ", {}", Style::Red.paint(why, color));
        } else if o.unmanaged {
            header.push_str(", not yet managed: applying adopts it");
        }
        if let Some(note) = &o.note {
            let _ = write!(header, ", {note}");
        }
        out.push_str(&Style::Bold.paint(&header, color));
        out.push('\n');
        if let Some(bg) = &o.break_glass {
            let _ = writeln!(
                out,
                "#   break-glass by {} until {}: {}",
                bg.by, bg.until, bg.reason
            );
        }
        for f in &o.fields {
            let by = if f.managers.is_empty() {
                String::new()
            } else {
                format!(" [{}]", f.managers.join(", "))
            };
            let class = match &f.ignored_by {
                Some(why) => format!("{}: ignored, {why}", f.class.label()),
                None => f.class.label().to_string(),
            };
            if f.class == Class::Foreign {
                let _ = writeln!(out, "#   {}", foreign_line(f, color));
                continue;
            }
            if f.removed {
                let _ = writeln!(
                    out,
                    "#   {}: removed (Git no longer sets it) ({class}){by}",
                    f.pointer
                );
                continue;
            }
            if f.git == renderer::drift::REDACTED {
                // A Secret value (decrypted from SOPS or not): compared, never shown.
                let _ = writeln!(out, "#   {}: changed (redacted) ({class}){by}", f.pointer);
                continue;
            }
            let _ = writeln!(
                out,
                "#   {}: live {} -> git {} ({class}){by}",
                f.pointer,
                show(f.live.as_ref()),
                show(Some(&f.git)),
            );
        }
        for p in o
            .ignored
            .iter()
            .filter(|p| !o.fields.iter().any(|f| &f.pointer == *p))
        {
            let _ = writeln!(out, "#   {p}: ignored (left to its owner)");
        }
        if let Some(diff) = &o.diff {
            out.push_str(&unified_color(diff, color));
        }
    }
    let s = &r.summary;
    let _ = writeln!(
        out,
        "Summary: {} to create, {} to change, {} to prune, {} unchanged",
        s.create, s.change, s.prune, s.unchanged
    );
    let mut why = Vec::new();
    for (n, label) in [
        (s.harmful_drift, "harmful drift"),
        (s.foreign, "foreign addition"),
        (s.pending, "pending change"),
        (s.break_glass, "break-glass"),
        (s.expected, "expected"),
        (s.unmanaged, "unmanaged look-alike"),
        (s.errors, "error"),
    ] {
        if n > 0 {
            why.push(format!("{n} {label}"));
        }
    }
    if !why.is_empty() {
        let _ = writeln!(out, "         {}", why.join(", "));
    }
    if !r.agent {
        out.push_str("         (no agent status in the namespace: nothing is pruned)\n");
    }
    match r.matches_applied {
        Some(true) => {
            let _ = writeln!(
                out,
                "Render {} is the one the agent applied.",
                &r.render_digest[..12]
            );
        }
        Some(false) => {
            let _ = writeln!(
                out,
                "Render {} differs from the one the agent applied.",
                &r.render_digest[..12]
            );
        }
        None => {}
    }
    out
}

/// A foreign addition in one line: where, who, when, and why it matters for security.
pub fn foreign_line(f: &FieldChange, color: bool) -> String {
    let mut what = f.class.label().to_string();
    if !f.sensitive.is_empty() {
        what = format!(
            "{what}, {}: {}",
            Style::Red.paint("security-sensitive", color),
            f.sensitive.join(", ")
        );
    }
    let since = f
        .since
        .as_deref()
        .map(|t| format!(" at {t}"))
        .unwrap_or_default();
    format!(
        "{}: added live by {}{since} ({what}), Git never sets it",
        f.pointer,
        f.managers.join(", ")
    )
}

/// `unified_diff` colors when asked; the stored diff is plain so JSON stays clean.
fn unified_color(diff: &str, color: bool) -> String {
    if !color {
        return diff.to_string();
    }
    diff.lines()
        .map(|l| {
            let style = if l.starts_with("+++") || l.starts_with("---") {
                Some(Style::Bold)
            } else if l.starts_with('+') {
                Some(Style::Green)
            } else if l.starts_with('-') {
                Some(Style::Red)
            } else if l.starts_with("@@") {
                Some(Style::Cyan)
            } else {
                None
            };
            match style {
                Some(s) => format!("{}\n", s.paint(l, true)),
                None => format!("{l}\n"),
            }
        })
        .collect()
}

/// Counts per class, for `doctor`.
pub fn classes(r: &DiffReport) -> BTreeMap<Class, Vec<String>> {
    let mut out: BTreeMap<Class, Vec<String>> = BTreeMap::new();
    for o in &r.objects {
        if let (Some(c), false) = (o.class, o.action == Action::Unchanged) {
            out.entry(c)
                .or_default()
                .push(format!("{}/{}", o.kind, o.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(class: Class) -> FieldChange {
        FieldChange {
            pointer: "/spec/x".into(),
            git: json!(1),
            live: Some(json!(2)),
            managers: vec![],
            class,
            ignored_by: None,
            removed: false,
            since: None,
            sensitive: Vec::new(),
        }
    }

    #[test]
    fn field_classes() {
        let m = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            field_class(&m(&["gitops-agent", "kubectl-set"]), false),
            Class::HarmfulDrift
        );
        assert_eq!(field_class(&m(&["gitops-agent"]), false), Class::Pending);
        assert_eq!(field_class(&m(&[]), false), Class::Pending);
        assert_eq!(field_class(&m(&["kubectl-edit"]), true), Class::BreakGlass);
    }

    #[test]
    fn object_class_is_the_most_urgent() {
        assert_eq!(object_class(&[]), Class::Expected);
        assert_eq!(
            object_class(&[change(Class::Pending), change(Class::HarmfulDrift)]),
            Class::HarmfulDrift
        );
        assert_eq!(
            object_class(&[change(Class::HarmfulDrift), change(Class::BreakGlass)]),
            Class::BreakGlass
        );
    }

    fn report() -> DiffReport {
        let deploy =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}});
        let mut changed = skeleton(&deploy, Action::Change);
        changed.fields = vec![FieldChange {
            pointer: "/spec/template/spec/containers/0/image".into(),
            git: json!("api:1"),
            live: Some(json!("api:hotfix")),
            managers: vec!["gitops-agent".into(), "kubectl-set".into()],
            class: Class::HarmfulDrift,
            ignored_by: None,
            removed: false,
            since: None,
            sensitive: Vec::new(),
        }];
        changed.class = Some(Class::HarmfulDrift);
        changed.diff = crate::output::unified_diff::unified_diff(
            "image: api:hotfix\n",
            "image: api:1\n",
            "live/Deployment/api",
            "git/Deployment/api",
            DiffOptions::default(),
        );
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}});
        let mut created = skeleton(&cm, Action::Create);
        created.class = Some(Class::Pending);
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}});
        let unchanged = skeleton(&svc, Action::Unchanged);
        let mut old = skeleton(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old"}}),
            Action::Prune,
        );
        old.class = Some(Class::Pending);
        let objects = vec![created, changed, old, unchanged];
        DiffReport {
            namespace: "shop".into(),
            revision: None,
            path: "overlays/prod".into(),
            agent: true,
            render_digest: String::new(),
            matches_applied: None,
            summary: summarise(&objects),
            objects,
        }
    }

    #[test]
    fn summary_and_exit_status() {
        let r = report();
        assert_eq!(r.summary.create, 1);
        assert_eq!(r.summary.change, 1);
        assert_eq!(r.summary.prune, 1);
        assert_eq!(r.summary.unchanged, 1);
        assert_eq!(r.summary.harmful_drift, 1);
        assert_eq!(r.summary.pending, 2);
        assert_eq!(r.exit_status(), ExitStatus::Failure);
        let mut same = r.clone();
        same.objects.retain(|o| o.action == Action::Unchanged);
        assert_eq!(same.exit_status(), ExitStatus::Success);
        let mut broken = same.clone();
        broken.summary.errors = 1;
        assert_eq!(broken.exit_status(), ExitStatus::Error);
        let c = classes(&r);
        assert_eq!(c[&Class::HarmfulDrift], ["Deployment/api"]);
    }

    #[test]
    fn text_snapshot() {
        insta::assert_snapshot!(format_text(&report(), false));
    }

    #[test]
    fn json_field_names_are_stable() {
        let json = serde_json::to_value(report()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "namespace",
                "revision",
                "path",
                "agent",
                "renderDigest",
                "matchesApplied",
                "objects",
                "summary"
            ]
        );
        let o = &json["objects"][1];
        let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "apiVersion",
                "kind",
                "name",
                "action",
                "class",
                "unmanaged",
                "fields",
                "ignored",
                "breakGlass",
                "note",
                "diff",
                "error",
                "changes"
            ]
        );
        assert_eq!(o["class"], "harmfulDrift");
        assert_eq!(o["fields"][0]["managers"][1], "kubectl-set");
        assert_eq!(json["summary"]["harmfulDrift"], 1);
    }

    #[test]
    fn ignored_fields_that_differ_are_expected_and_leave_the_exit_status_at_zero() {
        let status = SyncStatus {
            ignore_fields: vec!["Deployment:/spec/replicas".into()],
            ..Default::default()
        };
        let rules = AgentRules::new(&Rendered { objects: vec![] }, &[], Some(&status));
        let git = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api"}, "spec": {"replicas": 3, "paused": false}});
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api"}, "spec": {"replicas": 7, "paused": false}});
        let ignored = rules.rules.ignored_pointers(&git);
        let owners = |_: &str| vec!["kubectl-scale".to_string()];
        let fields = ignored_differences(&rules, &git, &live, &ignored, &owners);
        assert_eq!(fields.len(), 1, "{fields:?}");
        assert_eq!(fields[0].class, Class::Expected);
        assert_eq!(
            (&fields[0].git, fields[0].live.as_ref()),
            (&json!(3), Some(&json!(7)))
        );
        assert_eq!(
            fields[0].ignored_by.as_deref(),
            Some("the agent runs with --ignore-field Deployment:/spec/replicas")
        );
        assert!(ignored_differences(&rules, &git, &git, &ignored, &owners).is_empty());

        let mut unchanged = skeleton(&git, Action::Unchanged);
        unchanged.class = Some(Class::Expected);
        unchanged.ignored = ignored;
        unchanged.fields = fields;
        let objects = vec![unchanged];
        let r = DiffReport {
            namespace: "shop".into(),
            revision: None,
            path: "overlays/prod".into(),
            agent: true,
            render_digest: String::new(),
            matches_applied: None,
            summary: summarise(&objects),
            objects,
        };
        assert_eq!(r.exit_status(), ExitStatus::Success);
        let text = format_text(&r, false);
        assert!(
            text.contains("# Deployment/api: unchanged (expected)\n#   /spec/replicas: live 7 -> git 3 (expected: ignored, the agent runs with --ignore-field Deployment:/spec/replicas) [kubectl-scale]\n"),
            "{text}"
        );
        assert!(!text.contains("ignored (left to its owner)"), "{text}");
    }

    #[test]
    fn pruned_members_show_a_removal_unless_opted_out() {
        let m = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "uid": "u"}, "data": {"a": "b"}});
        let p = pruned(m.clone());
        assert_eq!(p.action, Action::Prune);
        let d = p.diff.unwrap();
        assert!(d.contains("-  a: b") && !d.contains("uid"), "{d}");
        let mut keep = m;
        keep["metadata"]["annotations"] = json!({PRUNE_ANNOTATION: PRUNE_DISABLED});
        let k = pruned(keep);
        assert_eq!(k.action, Action::Unchanged);
        assert!(k.note.unwrap().contains(PRUNE_DISABLED));
    }

    #[test]
    fn secret_values_never_appear_in_diffs() {
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}});
        let after = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "b3RoZXI="}});
        let d = text_diff(Some(&live), &after, "Secret/db").unwrap();
        assert!(!d.contains("aHVudGVyMg") && !d.contains("b3RoZXI"), "{d}");
        assert!(d.contains("password"), "{d}");
    }
}
