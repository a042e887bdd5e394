//! `kubectl gitops break-glass`: an audited, time-limited change to a live object that the
//! agent leaves alone until it expires. Annotations first, then the change, both under the
//! break-glass field manager, so `managedFields` shows who changed what outside Git.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use renderer::protocol::{BREAK_GLASS_FIELD_MANAGER, BreakGlass, TOOLING_NAME, event_reason};
use serde::Serialize;
use serde_json::{Value, json};

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::live::{self, Kinds, annotations, object_key};
use crate::cluster::session::{Session, block_on};
use crate::cluster::tracked;
use crate::output::printer::Printer;
use crate::output::report::{DataFormat, relative, serialize};
use crate::plan::change_plan::{
    self, EnvSet, PatchType, PlannedPatch, editable, merge_diff, touched_paths,
};

pub const EXAMPLES: &str = "\
Examples:
  # Roll back the image for 2 hours while the fix goes through Git
  kubectl gitops break-glass deploy/catalog-api --reason \"INC-42: 1.4.2 leaks memory\" \\
      --for 2h --set-image api=registry.example.com/catalog-api:1.4.1

  # Scale up and raise the log level; print the plan without changing anything
  kubectl gitops break-glass deploy/catalog-api --reason \"INC-43\" --for 30m \\
      --scale 6 --set-env api:LOG_LEVEL=debug --dry-run

  # Edit the live object in $EDITOR, like kubectl edit
  kubectl gitops break-glass deploy/catalog-api --reason \"INC-44\" --for 1h --edit

  # Which overrides are active, and end one now so the agent reconciles it
  kubectl gitops break-glass list
  kubectl gitops break-glass end deploy/catalog-api";

/// `list` and `end` are words in the first position rather than clap subcommands: clap's bash
/// completion cannot name nested subcommands of a dashed command, and an object is always
/// KIND/NAME, so the two never collide.
#[derive(Debug, Clone, Args)]
pub struct OpenArgs {
    /// The object as KIND/NAME (e.g. deploy/catalog-api), or `list`, or `end KIND/NAME`
    #[arg(value_name = "KIND/NAME|list|end")]
    pub object: String,
    /// With `end`: the object whose break-glass ends
    #[arg(value_name = "KIND/NAME")]
    pub end_object: Option<String>,
    /// Why: an incident id and a few words; recorded on the object and in the backfill commit
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// How long the agent leaves the object alone, e.g. 30m, 2h, 1h30m (at most 24h, the agent's default maximum)
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    /// Set a container's image
    #[arg(long, value_name = "CONTAINER=IMAGE")]
    pub set_image: Vec<String>,
    /// Set an environment variable (in every container without CONTAINER:)
    #[arg(long, value_name = "[CONTAINER:]NAME=VALUE")]
    pub set_env: Vec<String>,
    /// Set spec.replicas
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub scale: Option<i64>,
    /// Apply a patch file (YAML or JSON)
    #[arg(long, value_name = "FILE")]
    pub patch: Option<PathBuf>,
    /// The patch type of --patch
    #[arg(long = "type", value_enum, default_value_t = PatchType::Strategic, requires = "patch")]
    pub patch_type: PatchType,
    /// Edit the live object in $EDITOR and send what changed
    #[arg(long, conflicts_with_all = ["set_image", "set_env", "scale", "patch"])]
    pub edit: bool,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
    /// Print what would be done and stop
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of `list`
    #[arg(short, long, value_enum, default_value_t = DataFormat::Text)]
    pub output: DataFormat,
}

pub type BreakGlassArgs = OpenArgs;

pub fn run(args: &OpenArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let action = args.object.as_str();
    if action != "end" && args.end_object.is_some() {
        bail!("break-glass takes one KIND/NAME (a second one only after `end`)");
    }
    if action == "end" && args.end_object.is_none() {
        bail!("break-glass end needs the object: break-glass end KIND/NAME");
    }
    if action != "list" && action != "end" {
        if args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            bail!("--reason is required: say why (an incident id and a few words)");
        }
        if args.duration.is_none() {
            bail!("--for is required: how long the agent leaves {action} alone, e.g. 30m or 2h");
        }
    }
    block_on(async {
        let session = Session::connect(kube).await?;
        match (action, &args.end_object) {
            ("list", _) => run_list(args.output, &session, printer).await,
            ("end", Some(object)) => run_end(object, args, &session, printer).await,
            _ => run_open(args, &session, printer).await,
        }
    })?
}

/// The live object a KIND/NAME argument names, with the API to patch it through.
pub struct Target {
    pub key: String,
    pub name: String,
    api: Api<DynamicObject>,
    resource: ApiResource,
    pub live: Value,
}

pub async fn live_target(session: &Session, kinds: &Kinds, typed: &str) -> anyhow::Result<Target> {
    let (kind_text, name) = typed
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
        .ok_or_else(|| anyhow!("{typed}: expected KIND/NAME, e.g. deploy/catalog-api"))?;
    let gk = kinds
        .by_name(kind_text)
        .ok_or_else(|| anyhow!("{typed}: the API server has no kind {kind_text:?}"))?;
    let (ar, caps) = kinds
        .resolve(&gk)
        .ok_or_else(|| anyhow!("{typed}: the API server does not serve {gk}"))?;
    let resource = (ar.clone(), caps.clone());
    let mut live = live::get(&session.client, &session.namespace, &resource, name)
        .await?
        .ok_or_else(|| {
            anyhow!(
                "{}/{name} not found in namespace {}",
                ar.kind,
                session.namespace
            )
        })?;
    live["apiVersion"] = Value::from(ar.api_version.clone());
    live["kind"] = Value::from(ar.kind.clone());
    Ok(Target {
        key: format!("{}/{name}", ar.kind),
        name: name.to_string(),
        api: api_for(session, &ar, &caps),
        resource: ar,
        live,
    })
}

fn api_for(session: &Session, ar: &ApiResource, caps: &ApiCapabilities) -> Api<DynamicObject> {
    match caps.scope {
        Scope::Namespaced => Api::namespaced_with(session.client.clone(), &session.namespace, ar),
        Scope::Cluster => Api::all_with(session.client.clone(), ar),
    }
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(BREAK_GLASS_FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

async fn send(target: &Target, plan: &PlannedPatch) -> anyhow::Result<()> {
    let patch = match plan.patch_type {
        PatchType::Strategic => Patch::Strategic(&plan.body),
        PatchType::Merge => Patch::Merge(&plan.body),
        PatchType::Json => Patch::Json::<&Value>(
            serde_json::from_value(plan.body.clone())
                .context("--patch with --type json must be a JSON Patch array")?,
        ),
    };
    target
        .api
        .patch(&target.name, &params(), &patch)
        .await
        .with_context(|| format!("patching {}", target.key))?;
    Ok(())
}

/// Who the API server says we are: the name the audit log will show for our requests.
async fn whoami(session: &Session) -> anyhow::Result<String> {
    let api: Api<SelfSubjectReview> = Api::all(session.client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .context("asking the API server who we are (SelfSubjectReview)")?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| anyhow!("the SelfSubjectReview returned no user name"))
}

/// Asks unless `--yes`; refuses rather than guessing when nobody can answer.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question}: stdin is not a terminal, pass --yes to proceed without asking");
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .context("reading the confirmation")
}

/// Every change flag turned into patches, in the order they are sent.
fn plan(args: &OpenArgs, target: &Target) -> anyhow::Result<Vec<PlannedPatch>> {
    let mut plans = Vec::new();
    if !args.set_image.is_empty() {
        let sets = args
            .set_image
            .iter()
            .map(|s| change_plan::parse_image_arg(s))
            .collect::<Result<Vec<_>, _>>()?;
        plans.push(change_plan::plan_set_image(&target.live, &sets)?);
    }
    if !args.set_env.is_empty() {
        let sets = args
            .set_env
            .iter()
            .map(|s| change_plan::parse_env_arg(s))
            .collect::<Result<Vec<EnvSet>, _>>()?;
        plans.push(change_plan::plan_set_env(&target.live, &sets)?);
    }
    if let Some(replicas) = args.scale {
        plans.push(change_plan::plan_scale(&target.live, replicas)?);
    }
    if let Some(file) = &args.patch {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading --patch {}", file.display()))?;
        let body = parse_one(&text).with_context(|| format!("--patch {}", file.display()))?;
        let summary = match args.patch_type {
            PatchType::Json => vec![format!(
                "{}: JSON patch {} ({} operations)",
                target.key,
                file.display(),
                body.as_array().map_or(0, Vec::len)
            )],
            _ => touched_paths(&body)
                .into_iter()
                .map(|p| format!("{}: {p} from {}", target.key, file.display()))
                .collect(),
        };
        plans.push(PlannedPatch {
            patch_type: args.patch_type,
            body,
            summary,
        });
    }
    if args.edit
        && let Some(p) = edit(target)?
    {
        plans.push(p);
    }
    Ok(plans)
}

fn parse_one(text: &str) -> anyhow::Result<Value> {
    let mut docs = renderer::yaml::parse_documents(text)?
        .into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null());
    let first = docs.next().ok_or_else(|| anyhow!("is empty"))?;
    if docs.next().is_some() {
        bail!("holds more than one document");
    }
    Ok(first)
}

/// `kubectl edit`: the live object in $EDITOR, what changed sent as a merge patch.
fn edit(target: &Target) -> anyhow::Result<Option<PlannedPatch>> {
    let original = editable(&target.live);
    let header = format!(
        "# Editing {} under break-glass. Lines starting with '#' are ignored;\n\
         # an unchanged or empty file cancels.\n",
        target.key
    );
    let text = format!("{header}{}", renderer::yaml::to_yaml(&original));
    let Some(edited) = dialoguer::Editor::new()
        .extension(".yaml")
        .edit(&text)
        .context("running $EDITOR")?
    else {
        return Ok(None);
    };
    if edited.trim().is_empty() {
        return Ok(None);
    }
    let edited = parse_one(&edited).context("the edited object")?;
    Ok(merge_diff(&original, &edited).map(|body| PlannedPatch {
        patch_type: PatchType::Merge,
        summary: touched_paths(&body)
            .into_iter()
            .map(|p| format!("{}: {p} (edited)", target.key))
            .collect(),
        body,
    }))
}

async fn run_open(
    args: &OpenArgs,
    session: &Session,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let object = &args.object;
    let (Some(reason), Some(duration)) = (&args.reason, &args.duration) else {
        bail!("break-glass needs --reason and --for");
    };
    let reason = reason.trim();
    let duration = change_plan::parse_duration(duration)?;
    if args.set_image.is_empty()
        && args.set_env.is_empty()
        && args.scale.is_none()
        && args.patch.is_none()
        && !args.edit
    {
        printer.info(
            "no change flag given: only the annotations are written; change the object \
             with --set-image, --set-env, --scale, --patch or --edit",
        );
    }
    let kinds = Kinds::discover(&session.client).await?;
    let target = live_target(session, &kinds, object).await?;
    if target.live["kind"] == "Secret" {
        printer.warn("Secret values changed here can never be backfilled into Git");
    }
    let plans = plan(args, &target)?;
    if args.edit && plans.is_empty() {
        printer.info("edit cancelled, no changes made");
        return Ok(ExitStatus::Success);
    }
    let by = whoami(session).await?;
    let since = Timestamp::now();
    let until = since
        .checked_add(duration)
        .context("--for reaches past the end of time")?;
    let bg = BreakGlass {
        by,
        reason: reason.to_string(),
        since,
        until,
    };
    let existing = annotations(&target.live);
    if let Ok(Some(old)) = BreakGlass::from_annotations(&existing) {
        printer.warn(&format!(
            "{} already has a break-glass by {} ({}), until {}; it is replaced",
            target.key, old.by, old.reason, old.until
        ));
    }

    printer.info(&format!(
        "break-glass on {} in namespace {} by {} until {} ({}): {}",
        target.key,
        session.namespace,
        bg.by,
        bg.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        relative(bg.until, since),
        bg.reason
    ));
    printer.info("  1. annotate it so the agent leaves it alone until then");
    for (i, plan) in plans.iter().enumerate() {
        for line in &plan.summary {
            printer.info(&format!("  {}. {line}", i + 2));
        }
        printer.verbose(&format!(
            "     {:?} patch: {}",
            plan.patch_type,
            serde_json::to_string(&plan.body).unwrap_or_default()
        ));
    }
    if args.dry_run {
        printer.info("dry run: nothing changed");
        return Ok(ExitStatus::Success);
    }
    if !confirm(&format!("Change {} outside Git?", target.key), args.yes)? {
        printer.info("aborted, nothing changed");
        return Ok(ExitStatus::Failure);
    }

    let annotate = PlannedPatch {
        patch_type: PatchType::Merge,
        body: json!({"metadata": {"annotations": bg.to_annotations()}}),
        summary: Vec::new(),
    };
    send(&target, &annotate).await?;
    for plan in &plans {
        if let Err(err) = send(&target, plan).await {
            // Without the change the override only blocks the agent: give the object back.
            if let Err(undo) = send(&target, &remove_annotations()).await {
                printer.warn(&format!(
                    "removing the break-glass annotations again failed: {undo:#}"
                ));
            }
            return Err(err.context("the change was refused; break-glass annotations removed"));
        }
    }
    let summary: Vec<String> = plans.iter().flat_map(|p| p.summary.clone()).collect();
    let message = format!(
        "break-glass by {} until {}: {}{}{}",
        bg.by,
        bg.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        bg.reason,
        if summary.is_empty() { "" } else { "; " },
        summary.join("; ")
    );
    record_event(
        session,
        &target,
        event_reason::BREAK_GLASS_STARTED,
        &message,
        printer,
    )
    .await;
    printer.info(&format!(
        "{} is yours until {}. Bring the change into Git with `kubectl gitops backfill {}`, \
         or end it now with `kubectl gitops break-glass end {}`",
        target.key,
        bg.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        object,
        object
    ));
    Ok(ExitStatus::Success)
}

fn remove_annotations() -> PlannedPatch {
    let nulls: serde_json::Map<String, Value> = BreakGlass::annotation_keys()
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    PlannedPatch {
        patch_type: PatchType::Merge,
        body: json!({"metadata": {"annotations": nulls}}),
        summary: Vec::new(),
    }
}

/// The audit trail `kubectl describe` shows. A missing Event permission must not undo an
/// emergency change that already happened, so failures are only warned about.
async fn record_event(
    session: &Session,
    target: &Target,
    reason: &str,
    message: &str,
    printer: &Printer,
) {
    let now = Time(Timestamp::now());
    let meta = &target.live["metadata"];
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", target.name)),
            namespace: Some(session.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(target.resource.api_version.clone()),
            kind: Some(target.resource.kind.clone()),
            name: Some(target.name.clone()),
            namespace: Some(session.namespace.clone()),
            uid: meta["uid"].as_str().map(str::to_string),
            resource_version: meta["resourceVersion"].as_str().map(str::to_string),
            ..Default::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some("Warning".to_string()),
        source: Some(EventSource {
            component: Some(TOOLING_NAME.to_string()),
            ..Default::default()
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(session.client.clone(), &session.namespace);
    if let Err(err) = api.create(&PostParams::default(), &event).await {
        printer.warn(&format!(
            "recording the {reason} Event on {} failed: {err}",
            target.key
        ));
    }
}

async fn run_end(
    object: &str,
    args: &OpenArgs,
    session: &Session,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let kinds = Kinds::discover(&session.client).await?;
    let target = live_target(session, &kinds, object).await?;
    let current = BreakGlass::from_annotations(&annotations(&target.live));
    match &current {
        Ok(None) => {
            printer.info(&format!("{} has no break-glass annotations", target.key));
            return Ok(ExitStatus::Success);
        }
        Ok(Some(bg)) => printer.info(&format!(
            "ending break-glass on {} (by {}, {}, until {}): the agent reconciles it to Git now",
            target.key, bg.by, bg.reason, bg.until
        )),
        Err(e) => printer.info(&format!(
            "removing unreadable break-glass annotations from {} ({e}): the agent reconciles it",
            target.key
        )),
    }
    if args.dry_run {
        printer.info("dry run: nothing changed");
        return Ok(ExitStatus::Success);
    }
    if !confirm(
        &format!("Give {} back to Git (undoing the change)?", target.key),
        args.yes,
    )? {
        printer.info("aborted, nothing changed");
        return Ok(ExitStatus::Failure);
    }
    send(&target, &remove_annotations()).await?;
    let by = whoami(session)
        .await
        .unwrap_or_else(|_| "unknown".to_string());
    record_event(
        session,
        &target,
        event_reason::BREAK_GLASS_ENDED,
        &format!("break-glass ended by {by}"),
        printer,
    )
    .await;
    printer.info(&format!("break-glass on {} ended", target.key));
    Ok(ExitStatus::Success)
}

/// One row of `break-glass list`; field names are part of `-o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    pub kind: String,
    pub name: String,
    pub by: String,
    pub reason: String,
    pub since: Timestamp,
    pub until: Timestamp,
    pub active: bool,
}

async fn run_list(
    output: DataFormat,
    session: &Session,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let ns = &session.namespace;
    let kinds = Kinds::discover(&session.client).await?;
    let parent = tracked::read_parent(&session.client, ns)
        .await?
        .ok_or_else(|| anyhow!("no agent has synced namespace {ns}: nothing is managed here"))?;
    let members = live::members(
        &session.client,
        ns,
        &kinds,
        &parent.group_kinds,
        &tracked::set_id(ns),
    )
    .await?;
    let now = Timestamp::now();
    let mut rows = Vec::new();
    for obj in &members {
        match BreakGlass::from_annotations(&annotations(obj)) {
            Ok(None) => {}
            Ok(Some(bg)) => rows.push(Override {
                kind: obj["kind"].as_str().unwrap_or_default().to_string(),
                name: obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                active: bg.is_active(now),
                by: bg.by,
                reason: bg.reason,
                since: bg.since,
                until: bg.until,
            }),
            Err(e) => printer.warn(&format!("{}: {e}", object_key(obj))),
        }
    }
    if let Some(text) = serialize(&rows, output) {
        printer.result(&text).context("writing to stdout")?;
        return Ok(ExitStatus::Success);
    }
    if rows.is_empty() {
        printer.info(&format!("no break-glass overrides in namespace {ns}"));
        return Ok(ExitStatus::Success);
    }
    printer
        .result(&format_rows(&rows, now))
        .context("writing to stdout")?;
    Ok(ExitStatus::Success)
}

pub fn format_rows(rows: &[Override], now: Timestamp) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let state = if r.active {
                format!("active, ends {}", relative(r.until, now))
            } else {
                format!("expired {} (backfill or end it)", relative(r.until, now))
            };
            [
                format!("{}/{}", r.kind, r.name),
                r.by.clone(),
                state,
                r.reason.clone(),
                String::new(),
            ]
        })
        .collect();
    let header = ["OBJECT", "BY", "STATE", "REASON"];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |c: [&str; 4]| {
        format!(
            "{:w0$}  {:w1$}  {:w2$}  {}\n",
            c[0],
            c[1],
            c[2],
            c[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };
    out.push_str(&line(header));
    for c in &cells {
        out.push_str(&line([&c[0], &c[1], &c[2], &c[3]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_rows_say_active_or_expired() {
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let row = |name: &str, until: &str, active| Override {
            kind: "Deployment".into(),
            name: name.into(),
            by: "alice".into(),
            reason: "INC-1".into(),
            since: "2026-11-26T11:00:00Z".parse().unwrap(),
            until: until.parse().unwrap(),
            active,
        };
        let text = format_rows(
            &[
                row("api", "2026-11-26T13:00:00Z", true),
                row("worker", "2026-11-26T11:30:00Z", false),
            ],
            now,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("OBJECT"), "{text}");
        assert!(
            lines[1].contains("Deployment/api") && lines[1].contains("active"),
            "{text}"
        );
        assert!(
            lines[2].contains("expired") && lines[2].ends_with("INC-1"),
            "{text}"
        );
    }

    #[test]
    fn removing_annotations_nulls_every_key() {
        let body = remove_annotations().body;
        for key in BreakGlass::annotation_keys() {
            assert!(body["metadata"]["annotations"][key].is_null());
            assert!(body["metadata"]["annotations"].get(key).is_some());
        }
    }
}
