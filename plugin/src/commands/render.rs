//! `kubectl gitops render DIR [--revision REV]`: what `kubectl kustomize DIR` prints, from
//! the working tree or from a commit.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum, ValueHint};
use gittree::GitTreeSource;
use renderer::redact::redact;
use renderer::{FsSource, Provenance, RenderError, RenderOptions, Rendered, SetBy, Source};
use serde_json::{Value, json};

use crate::ExitStatus;
use crate::output::printer::Printer;

pub const EXAMPLES: &str = "\
Examples:
  # Render the prod overlay exactly as `kubectl kustomize` would
  kubectl gitops render examples/catalog-api/overlays/prod

  # Render what was committed at a tag, ignoring uncommitted edits
  kubectl gitops render overlays/prod --revision v1.4.2

  # Show which file each object came from
  kubectl gitops render overlays/prod --show-origins";

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// The kustomization directory
    #[arg(value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,
    /// Render the tree of this commit, tag or branch instead of the working tree
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Order of the output objects, as `kubectl kustomize --reorder`
    #[arg(long, value_enum, default_value_t = Reorder::Legacy)]
    pub reorder: Reorder,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// Precede every object with comments naming the files its fields came from
    #[arg(long)]
    pub show_origins: bool,
    /// Print Secret values instead of `*** (N bytes)`
    #[arg(long)]
    pub show_secrets: bool,
    /// Print only the digest of the rendered set: the agent publishes the same one
    /// (`appliedDigest` in `status -o json`) for the revision it applied
    #[arg(long, conflicts_with_all = ["show_origins", "show_secrets"])]
    pub digest: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Reorder {
    /// Namespaces and CRDs first, webhooks last (kustomize's default)
    Legacy,
    /// Keep the order in which resources are listed
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
}

/// Where the files come from and which directory inside it to render.
struct Located {
    source: Box<dyn Source>,
    /// `/`-separated, relative to the source root, as `renderer::Source` expects.
    dir: String,
    /// The directory on disk that source paths are relative to.
    root: PathBuf,
}

pub fn run(args: &RenderArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    if args.show_origins && args.output == OutputFormat::Json {
        bail!("--show-origins writes YAML comments and cannot be combined with -o json");
    }
    let located = locate(&args.dir, args.revision.as_deref())?;
    printer.verbose(&format!(
        "rendering {:?} under {}",
        located.dir,
        located.root.display()
    ));
    let options = RenderOptions {
        reorder: match args.reorder {
            Reorder::Legacy => renderer::Reorder::Legacy,
            Reorder::None => renderer::Reorder::None,
        },
    };
    if let Err(err) = crate::git::sops_keys::discover() {
        printer.warn(&format!("SOPS keys: {err}"));
    }
    let (rendered, undecrypted) =
        crate::plan::desired::render_decrypting(located.source.as_ref(), &located.dir, &options)
            .map_err(|err| locate_error(err, &located.root))?;
    printer.verbose(&format!("rendered {} objects", rendered.objects.len()));
    let text = if args.digest {
        format!("{}\n", crate::plan::desired::digest(&rendered))
    } else {
        format(&rendered, args)
    };
    printer.result(&text).context("writing to stdout")?;
    // The objects above kept these files' encrypted values.
    for failure in &undecrypted {
        printer.warn(&format!(
            "not decrypted: {}",
            failure.error.to_string().replacen(
                &failure.path,
                &display_path(&located.root, &failure.path),
                1
            )
        ));
    }
    Ok(if undecrypted.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// Picks the source root. Overlays reach into `../../base`, so the root cannot be DIR
/// itself: it is the Git working copy containing DIR, or `/` outside of one (which is as
/// far as `kubectl kustomize` lets resources reach anyway).
fn locate(dir: &Path, revision: Option<&str>) -> anyhow::Result<Located> {
    let real = dir
        .canonicalize()
        .with_context(|| format!("{}: no such directory", dir.display()))?;
    if !real.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let (source, root): (Box<dyn Source>, PathBuf) = match revision {
        Some(revision) => {
            let source = GitTreeSource::at_revision(&real, revision)?;
            let Some(root) = source.workdir() else {
                bail!("{}: the repository has no working copy", dir.display());
            };
            let root = root
                .canonicalize()
                .with_context(|| root.display().to_string())?;
            (Box::new(source), root)
        }
        None => {
            let root = git2::Repository::discover(&real)
                .ok()
                .and_then(|repo| repo.workdir().map(Path::to_path_buf))
                .and_then(|root| root.canonicalize().ok())
                .unwrap_or_else(|| PathBuf::from("/"));
            let source = FsSource::new(&root).with_context(|| root.display().to_string())?;
            (Box::new(source), root)
        }
    };
    let dir = relative(&real, &root)?;
    Ok(Located { source, dir, root })
}

fn relative(path: &Path, root: &Path) -> anyhow::Result<String> {
    let rel = path
        .strip_prefix(root)
        .with_context(|| format!("{} is not inside {}", path.display(), root.display()))?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    match parts {
        Some(parts) => Ok(parts.join("/")),
        None => bail!("{}: path is not valid UTF-8", path.display()),
    }
}

/// Renderer errors name files relative to the source root; users need a path they can open
/// from where they are.
fn locate_error(mut err: RenderError, root: &Path) -> RenderError {
    err.file = display_path(root, &err.file);
    err
}

fn display_path(root: &Path, file: &str) -> String {
    let absolute = root.join(file);
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|c| c.canonicalize().ok());
    match cwd
        .as_deref()
        .and_then(|cwd| absolute.strip_prefix(cwd).ok())
    {
        Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => absolute.display().to_string(),
    }
}

/// The text to print. Without Secrets and origins this is exactly `Rendered::to_yaml`, so
/// the output stays byte-identical to `kubectl kustomize`.
fn format(rendered: &Rendered, args: &RenderArgs) -> String {
    // Only Secrets (and Lists, which may hold some) are redacted, on a copy; the rest are
    // printed as rendered.
    let values: Vec<Cow<'_, Value>> = rendered
        .objects
        .iter()
        .map(|o| {
            let kind = o.value.get("kind").and_then(Value::as_str).unwrap_or("");
            if args.show_secrets || !(kind == "Secret" || kind.ends_with("List")) {
                return Cow::Borrowed(&o.value);
            }
            let mut value = o.value.clone();
            redact(&mut value);
            Cow::Owned(value)
        })
        .collect();
    match args.output {
        OutputFormat::Json => {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": values});
            let mut text = serde_json::to_string_pretty(&list).expect("JSON values serialize");
            text.push('\n');
            text
        }
        OutputFormat::Yaml if args.show_origins => {
            let mut out = String::new();
            for (i, (object, value)) in rendered.objects.iter().zip(&values).enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&origin_comments(object.provenance()));
                out.push_str(&renderer::yaml::to_yaml(value.as_ref()));
            }
            out
        }
        OutputFormat::Yaml => renderer::yaml::to_yaml_stream(values.iter().map(AsRef::as_ref)),
    }
}

/// `# Source: file:line` for the object, then one line per field set somewhere else (a
/// patch, a transformer, another file): the answer to "why does this field have this value".
pub fn origin_comments(provenance: &Provenance) -> String {
    let mut out = String::new();
    let primary = ["kind", "metadata.name"]
        .iter()
        .find_map(|p| provenance.get(*p))
        .or_else(|| provenance.values().next());
    let Some(primary) = primary else {
        return out;
    };
    let _ = writeln!(
        out,
        "# Source: {}:{}",
        primary.origin.file, primary.origin.line
    );
    for (path, origin) in provenance {
        let origin = &origin.origin;
        if origin.set_by == primary.origin.set_by && origin.file == primary.origin.file {
            continue;
        }
        let by = match origin.set_by {
            SetBy::Resource => "resource",
            SetBy::Patch => "patch",
            SetBy::Generator => "generator",
            SetBy::Transformer(name) => name,
        };
        let _ = writeln!(out, "# {path}: {}:{} ({by})", origin.file, origin.line);
    }
    out
}
