//! `kubectl gitops backfill`: write a live object's out-of-Git changes (typically a
//! break-glass) into the overlay as the smallest reviewable change, verified by rendering.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use git2::{IndexAddOption, Repository, Signature};
use jiff::Timestamp;
use renderer::drift::{ManagedFields, compare};
use renderer::protocol::{AGENT_FIELD_MANAGER, BREAK_GLASS_FIELD_MANAGER, BreakGlass, PREFIX};
use renderer::provenance::{FieldOrigin, FieldPath, SetBy};
use renderer::{FsSource, RenderedObject, Source};
use serde_json::Value;

use crate::ExitStatus;
use crate::cluster::KubeArgs;
use crate::cluster::live::{self, Kinds, annotations};
use crate::cluster::session::{Session, block_on};
use crate::cluster::tracked;
use crate::commands::break_glass::{confirm, live_target};
use crate::constants::KUSTOMIZATION_FILES;
use crate::git::local_repo::{LocalRepo, short};
use crate::output::printer::Printer;
use crate::output::unified_diff::{DiffOptions, unified_diff};
use crate::plan::backfill_edit::{
    Leaf, add_patch_entry, branch_name, edit_line_value, patch_document, tag_only_change,
};
use crate::plan::desired;

pub const EXAMPLES: &str = "\
Examples:
  # Show what bringing the live Deployment into the prod overlay would change
  kubectl gitops backfill deploy/catalog-api --overlay overlays/prod --dry-run

  # Write it, and commit on a new branch for review
  kubectl gitops backfill deploy/catalog-api --commit

  # Commit on a named branch and push it to origin
  kubectl gitops backfill deploy/catalog-api --branch inc-42-backfill --push";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Into {
    /// Only files under the overlay directory change
    Overlay,
    /// Lines where the base sets a field may be edited too
    Base,
}

#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// The object, as KIND/NAME
    #[arg(value_name = "KIND/NAME")]
    pub object: String,
    /// The overlay directory (default: the path the agent tracks)
    #[arg(long, value_name = "DIR")]
    pub overlay: Option<String>,
    /// A clone of the tracked repository (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Branch to commit on (default: backfill/<kind>-<name>-<timestamp>)
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// Commit the change on a new branch
    #[arg(long)]
    pub commit: bool,
    /// Commit, then push the branch to origin
    #[arg(long)]
    pub push: bool,
    /// Commit, signed with your Git signing set-up (gpg or ssh, as `git commit -S`)
    #[arg(long)]
    pub sign: bool,
    /// Where fields set by the base are written
    #[arg(long, value_enum, default_value_t = Into::Overlay)]
    pub into: Into,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
    /// Show the change and leave the working tree as it was
    #[arg(long)]
    pub dry_run: bool,
    /// Edit the working tree even when its overlay renders differently from the revision the
    /// agent applied (pending Git changes); the live changes are still found against the
    /// applied revision, so pending changes are kept, not reverted
    #[arg(long)]
    pub from_worktree: bool,
}

/// One file's content before and after.
struct FileEdit {
    rel: String,
    before: Option<String>,
    after: String,
}

pub fn run(args: &BackfillArgs, kube: &KubeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    block_on(async {
        let session = Session::connect(kube).await?;
        run_async(args, &session, printer).await
    })?
}

async fn run_async(
    args: &BackfillArgs,
    session: &Session,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let ns = &session.namespace;
    let kinds = Kinds::discover(&session.client).await?;
    let target = live_target(session, &kinds, &args.object).await?;
    let local = LocalRepo::open(args.repo.as_deref())?;
    let parent = tracked::read_parent(&session.client, ns).await?;
    let overlay = match (
        &args.overlay,
        parent.as_ref().and_then(|p| p.status.as_ref()),
    ) {
        (Some(o), _) => o.trim_matches('/').to_string(),
        (None, Some(s)) => s.path.trim_matches('/').to_string(),
        (None, None) => bail!("no agent status in namespace {ns}: pass --overlay DIR"),
    };
    let hpas = live::hpas(&session.client, ns, &kinds).await?;
    let live = &target.live;
    let set_id = tracked::set_id(ns);

    let worktree =
        FsSource::new(&local.root).with_context(|| format!("opening {}", local.root.display()))?;
    let rendered = render_object(&worktree, &overlay, &target.key, &hpas);
    if target.live["kind"] == "Secret" && rendered.is_err() {
        bail!(
            "{}: Secret values are never written to Git, and {overlay} has no SOPS-encrypted \
             file for it. Put the new value in your secret store (or a SOPS file, a \
             SealedSecret or an ExternalSecret that Git references), then run \
             `kubectl gitops break-glass end {}`",
            target.key,
            args.object
        );
    }
    let (object, rules) = rendered?;
    if backfill_leaves(&object, live, ns, &set_id, &rules)?.is_empty() {
        printer.info(&format!(
            "{} already matches {overlay}: nothing to backfill",
            target.key
        ));
        return Ok(ExitStatus::Success);
    }
    // What runs is what the agent applied: the live changes are found against that revision,
    // so a Git change the agent has not applied yet is never taken for drift and reverted.
    let applied = parent
        .as_ref()
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.last_applied_revision.clone());
    let leaves = match &applied {
        Some(rev) => {
            let source = local.source_at(rev).with_context(|| {
                format!("the agent applied {rev}, which this clone does not have: fetch it")
            })?;
            let (applied_object, applied_rules) =
                render_object(&source, &overlay, &target.key, &hpas)?;
            if !args.from_worktree && overlay_differs(&worktree, &source, &overlay)? {
                bail!(
                    "the working tree's {overlay} renders differently from {}, the revision \
                     the agent applied (Git changes not applied yet): commit and let the agent \
                     apply them, or pass --from-worktree to edit the working tree anyway",
                    short(rev)
                );
            }
            backfill_leaves(&applied_object, live, ns, &set_id, &applied_rules)?
        }
        None => backfill_leaves(&object, live, ns, &set_id, &rules)?,
    };
    if leaves.is_empty() {
        printer.info(&format!(
            "{} matches what the agent applied: nothing to backfill",
            target.key
        ));
        return Ok(ExitStatus::Success);
    }
    let is_secret = live["kind"] == "Secret";
    let edits = if is_secret {
        // Only ever as a SOPS file, encrypted before it is written.
        let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let (rel, before, after) =
            crate::plan::backfill_secret::plan(&local.root, &object, live, &now)?;
        vec![FileEdit {
            rel,
            before: Some(before),
            after,
        }]
    } else {
        plan_edits(&local.root, &overlay, &object, live, &leaves, args.into)?
    };
    // Secret values stay out of the commit message too.
    let leaves: Vec<Leaf> = leaves
        .into_iter()
        .map(|l| Leaf {
            value: if is_secret
                && (l.pointer.starts_with("/data") || l.pointer.starts_with("/stringData"))
            {
                Value::from(renderer::drift::REDACTED)
            } else {
                l.value
            },
            ..l
        })
        .collect();

    // Write, render again, and keep the change only if Git now says what the cluster says.
    write_edits(&local.root, &edits, false)?;
    let verified = render_object(&worktree, &overlay, &target.key, &hpas)
        .and_then(|(o, r)| backfill_leaves(&o, live, ns, &set_id, &r))
        // Pending Git changes may still differ from live; only the backfilled fields count.
        .map(|rest| {
            rest.into_iter()
                .filter(|r| leaves.iter().any(|l| l.pointer == r.pointer))
                .collect::<Vec<_>>()
        });
    match verified {
        Ok(rest) if rest.is_empty() => {}
        Ok(rest) => {
            write_edits(&local.root, &edits, true)?;
            bail!(
                "the edited {overlay} still differs from the live {} at {}; nothing was changed",
                target.key,
                rest.iter()
                    .map(|d| d.pointer.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Err(e) => {
            write_edits(&local.root, &edits, true)?;
            return Err(e.context("rendering the edited overlay; nothing was changed"));
        }
    }
    for edit in &edits {
        let before = edit.before.as_deref().unwrap_or("");
        let label_a = if edit.before.is_some() {
            format!("a/{}", edit.rel)
        } else {
            "/dev/null".to_string()
        };
        let options = DiffOptions {
            color: printer.color(),
            ..Default::default()
        };
        if let Some(diff) = unified_diff(
            before,
            &edit.after,
            &label_a,
            &format!("b/{}", edit.rel),
            options,
        ) {
            printer.result(&diff).context("writing to stdout")?;
        }
    }
    if args.dry_run {
        write_edits(&local.root, &edits, true)?;
        printer.info("dry run: working tree left as it was");
        return Ok(ExitStatus::Success);
    }
    printer.info(&format!(
        "{overlay} now renders {} exactly as it is live",
        target.key
    ));
    if !(args.commit || args.push || args.sign) {
        printer.info("review and commit the change, or run again with --commit");
        return Ok(ExitStatus::Success);
    }
    let bg = BreakGlass::from_annotations(&annotations(live))
        .ok()
        .flatten();
    let branch = args.branch.clone().unwrap_or_else(|| {
        branch_name(
            target.live["kind"].as_str().unwrap_or_default(),
            &target.name,
            &Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string(),
        )
    });
    if !confirm(&format!("Commit on new branch {branch}?"), args.yes)? {
        printer.info("not committed; the working tree keeps the change");
        return Ok(ExitStatus::Failure);
    }
    let message = commit_message(&target.key, &leaves, bg.as_ref());
    let mut sha = commit(&local.repo, &branch, &edits, &message)?;
    if args.sign {
        sha = sign_head(&local.root, &local.repo)
            .with_context(|| format!("the unsigned commit {} is on branch {branch}", &sha[..12]))?;
    }
    printer.info(&format!("committed {} on branch {branch}", &sha[..12]));
    if args.push {
        crate::release::repo::push(
            &local.repo,
            &[format!("refs/heads/{branch}:refs/heads/{branch}")],
        )?;
        printer.info(&format!("pushed {branch} to origin"));
    }
    Ok(ExitStatus::Success)
}

/// Whether the overlay renders differently in the two sources.
fn overlay_differs(a: &dyn Source, b: &dyn Source, overlay: &str) -> anyhow::Result<bool> {
    let render = |s: &dyn Source| {
        desired::render(s, overlay)
            .map(|r| desired::digest(&r))
            .map_err(|e| anyhow!("rendering {overlay}: {e}"))
    };
    Ok(render(a)? != render(b)?)
}

fn render_object(
    source: &dyn Source,
    overlay: &str,
    key: &str,
    hpas: &[Value],
) -> anyhow::Result<(RenderedObject, renderer::drift::IgnoreRules)> {
    let (rendered, undecrypted) = desired::render_decrypting(source, overlay, &Default::default())
        .map_err(|e| anyhow!("rendering {overlay}: {e}"))?;
    if let Some(failure) = undecrypted.first() {
        // Comparing ciphertext with live values would "backfill" every encrypted field.
        bail!("rendering {overlay}: {}", failure.error);
    }
    let rules = desired::ignore_rules(&rendered, hpas);
    let object = rendered
        .objects
        .into_iter()
        .find(|o| live::object_key(&o.value) == key)
        .ok_or_else(|| anyhow!("{key} is not rendered by {overlay}"))?;
    Ok((object, rules))
}

/// The live fields Git should say: fields Git sets with another live value, and fields the
/// break-glass manager set that Git does not set at all. Other managers' fields (HPA,
/// controllers) are not Git's business and stay out.
fn backfill_leaves(
    object: &RenderedObject,
    live: &Value,
    ns: &str,
    set_id: &str,
    rules: &renderer::drift::IgnoreRules,
) -> anyhow::Result<Vec<Leaf>> {
    // A Secret from Git may say stringData; live, and in managedFields, it is data.
    let mut desired_obj = renderer::drift::normalise_secret(&object.value);
    renderer::protocol::decorate(&mut desired_obj, ns, set_id);
    rules.strip_ignored(&mut desired_obj);
    let managed = ManagedFields::from_object(live).context("reading managedFields")?;
    let owned = managed.applied_by(AGENT_FIELD_MANAGER);
    let mut leaves = Vec::new();
    for drift in compare(&desired_obj, live, &owned) {
        let Some(value) = drift.live else { continue };
        if drift.pointer.starts_with("/metadata/annotations/")
            && drift.pointer.contains("kubectl-gitops.dev")
        {
            continue;
        }
        if let Some(p) = desired::live_pointer(&desired_obj, live, &drift.pointer) {
            leaves.push(Leaf { pointer: p, value });
        }
    }
    let escaped_prefix = format!("/metadata/annotations/{}", PREFIX.replace('/', "~1"));
    for entry in managed
        .entries
        .iter()
        .filter(|e| e.info.manager == BREAK_GLASS_FIELD_MANAGER)
    {
        for p in entry.fields.pointers(live) {
            let Some(value) = live.pointer(&p) else {
                continue;
            };
            if value.is_object() || value.is_array() || p.starts_with(&escaped_prefix) {
                continue;
            }
            if desired::live_pointer(live, &desired_obj, &p).is_none()
                && !leaves.iter().any(|l| l.pointer == p)
            {
                leaves.push(Leaf {
                    pointer: p,
                    value: value.clone(),
                });
            }
        }
    }
    leaves.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    Ok(leaves)
}

/// In-place edits where an allowed file's patch sets the field; one new patch for the rest.
fn plan_edits(
    root: &Path,
    overlay: &str,
    object: &RenderedObject,
    live: &Value,
    leaves: &[Leaf],
    into: Into,
) -> anyhow::Result<Vec<FileEdit>> {
    let mut by_pointer: BTreeMap<String, &FieldOrigin> = BTreeMap::new();
    for (text, origin) in object.provenance() {
        if let Ok(path) = text.parse::<FieldPath>()
            && let Some(p) = desired::pointer_of(&path, &object.value)
            && let Some(lp) = desired::live_pointer(&object.value, live, &p)
        {
            by_pointer.insert(lp, origin);
        }
    }
    let in_overlay = |file: &str| file.starts_with(&format!("{overlay}/"));
    let mut files: BTreeMap<String, FileEdit> = BTreeMap::new();
    let mut rest = Vec::new();
    for leaf in leaves {
        let key = leaf
            .pointer
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .replace("~1", "/")
            .replace("~0", "~");
        let allowed = |o: &&&FieldOrigin| match into {
            Into::Overlay => in_overlay(&o.origin.file),
            Into::Base => true,
        };
        let in_place = by_pointer.get(&leaf.pointer).filter(allowed).and_then(|o| {
            match o.origin.set_by {
                SetBy::Patch => Some((*o, key.clone(), leaf.value.clone())),
                SetBy::Resource if into == Into::Base => {
                    Some((*o, key.clone(), leaf.value.clone()))
                }
                // A patch cannot change an image the `images:` transformer sets (it runs after
                // patches), so a new tag goes where the transformer takes it from.
                SetBy::Transformer("images") => {
                    let desired_image = desired::live_pointer(live, &object.value, &leaf.pointer)
                        .and_then(|p| object.value.pointer(&p))
                        .and_then(Value::as_str)?;
                    let tag = tag_only_change(desired_image, leaf.value.as_str()?)?;
                    Some((*o, "newTag".to_string(), Value::from(tag)))
                }
                _ => None,
            }
        });
        let Some((origin, key, value)) = in_place else {
            rest.push(leaf.clone());
            continue;
        };
        let file = origin.origin.file.to_string();
        if !files.contains_key(&file) {
            let before = std::fs::read_to_string(root.join(&file))
                .with_context(|| format!("reading {file}"))?;
            files.insert(
                file.clone(),
                FileEdit {
                    rel: file.clone(),
                    before: Some(before.clone()),
                    after: before,
                },
            );
        }
        let edit = files.get_mut(&file).expect("inserted above");
        match edit_line_value(&file, &edit.after, origin.origin.line, &key, &value) {
            Ok(after) => edit.after = after,
            // A flow mapping or a multi-line value: a new patch says it as clearly.
            Err(_) => rest.push(leaf.clone()),
        }
    }
    let mut edits: Vec<FileEdit> = files
        .into_values()
        .filter(|e| e.before.as_deref() != Some(&e.after))
        .collect();
    if !rest.is_empty() {
        let kind = live["kind"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let name = live["metadata"]["name"].as_str().unwrap_or_default();
        let file_name = format!("backfill-{kind}-{name}.yaml");
        let rel = format!("{overlay}/{file_name}");
        let before = std::fs::read_to_string(root.join(&rel)).ok();
        if before.is_some() {
            bail!("{rel} already exists: merge or remove it, then backfill again");
        }
        edits.push(FileEdit {
            rel,
            before: None,
            after: renderer::yaml::to_yaml(&patch_document(live, &rest)),
        });
        let kfile = KUSTOMIZATION_FILES
            .iter()
            .map(|f| format!("{overlay}/{f}"))
            .find(|f| root.join(f).is_file())
            .ok_or_else(|| anyhow!("{overlay}: no kustomization.yaml"))?;
        let text = std::fs::read_to_string(root.join(&kfile))
            .with_context(|| format!("reading {kfile}"))?;
        edits.push(FileEdit {
            after: add_patch_entry(&text, &file_name),
            before: Some(text),
            rel: kfile,
        });
    }
    Ok(edits)
}

/// Writes the new contents, or with `undo` puts the old ones back (deleting new files).
fn write_edits(root: &Path, edits: &[FileEdit], undo: bool) -> anyhow::Result<()> {
    for e in edits {
        let path = root.join(&e.rel);
        match (undo, &e.before) {
            (false, _) => std::fs::write(&path, &e.after),
            (true, Some(before)) => std::fs::write(&path, before),
            (true, None) => std::fs::remove_file(&path),
        }
        .with_context(|| format!("writing {}", e.rel))?;
    }
    Ok(())
}

fn commit_message(key: &str, leaves: &[Leaf], bg: Option<&BreakGlass>) -> String {
    let mut message = format!("backfill {key} from the live cluster\n\n");
    if let Some(bg) = bg {
        message.push_str(&format!(
            "Break-glass by {} at {}: {}\n\n",
            bg.by, bg.since, bg.reason
        ));
    }
    for l in leaves {
        message.push_str(&format!("  {} = {}\n", l.pointer, l.value));
    }
    message
}

/// git2 cannot sign: like `promote --sign`, hand it to `git`, which knows the user's gpg or
/// ssh set-up. Amending keeps the tree, so the signed commit is the one just verified.
fn sign_head(root: &Path, repo: &Repository) -> anyhow::Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "commit",
            "--amend",
            "--no-edit",
            "--no-verify",
            "--gpg-sign",
        ])
        .output()
        .context("running git commit --amend --gpg-sign")?;
    if !out.status.success() {
        bail!(
            "git commit --gpg-sign: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(repo
        .head()
        .context("reading HEAD")?
        .peel_to_commit()
        .context("HEAD is not a commit")?
        .id()
        .to_string())
}

/// Commits only the edited files on a new branch starting at HEAD, and checks it out.
fn commit(
    repo: &Repository,
    branch: &str,
    edits: &[FileEdit],
    message: &str,
) -> anyhow::Result<String> {
    let head = repo
        .head()
        .context("reading HEAD")?
        .peel_to_commit()
        .context("HEAD is not a commit")?;
    if repo.find_branch(branch, git2::BranchType::Local).is_ok() {
        bail!("branch {branch} already exists; pass another --branch");
    }
    repo.branch(branch, &head, false)
        .with_context(|| format!("creating branch {branch}"))?;
    repo.set_head(&format!("refs/heads/{branch}"))
        .with_context(|| format!("switching to {branch}"))?;
    let mut index = repo.index().context("reading the index")?;
    let paths: Vec<&str> = edits.iter().map(|e| e.rel.as_str()).collect();
    // The commit is HEAD plus the backfill's files only, never whatever else the user staged.
    index
        .read_tree(&head.tree().context("reading HEAD's tree")?)
        .context("reading HEAD's tree")?;
    index
        .add_all(paths.iter(), IndexAddOption::DEFAULT, None)
        .context("staging the backfill")?;
    let tree = repo.find_tree(index.write_tree()?)?;
    // The user's staged changes stay staged, with the backfill's files on top.
    index.read(true).context("reading the index")?;
    index
        .add_all(paths.iter(), IndexAddOption::DEFAULT, None)
        .context("staging the backfill")?;
    index.write().context("writing the index")?;
    let sig = repo
        .signature()
        .or_else(|_| Signature::now("kubectl-gitops", "kubectl-gitops@localhost"))?;
    let oid = repo
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&head])
        .context("committing")?;
    Ok(oid.to_string())
}
