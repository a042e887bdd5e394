//! `kubectl gitops lint [REPO_DIR] [--path OVERLAY]...`: the review gate, no cluster needed.
//! Rules live in the `lint` crate (shared with the agent's `--refuse`); this module picks the
//! targets, adds the branch-per-environment check (it needs Git) and prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use lint::repo::{BranchOverlay, Kustomization};
use lint::{Finding, Report, Severity};
use renderer::FsSource;
use serde_json::{Value, json};

use crate::ExitStatus;
use crate::output::printer::{Printer, Style};

pub const EXAMPLES: &str = "\
Examples:
  # Lint every kustomization of the repository in the current directory
  kubectl gitops lint

  # Only the production overlay, as SARIF for GitHub code scanning
  kubectl gitops lint . --path overlays/prod -o sarif > lint.sarif

  # Fail the build on warnings too
  kubectl gitops lint --fail-on warning";

/// Where SARIF consumers resolve the relative file names.
const SARIF_ROOT: &str = "SRCROOT";
const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const INFORMATION_URI: &str = "https://github.com/kubectl-gitops/kubectl-gitops";

#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// The repository to lint (default: the current directory)
    #[arg(value_name = "REPO_DIR", default_value = ".")]
    pub repo: PathBuf,
    /// Lint only this kustomization directory, relative to REPO_DIR (repeatable; default: every
    /// kustomization no other one includes)
    #[arg(long = "path", value_name = "OVERLAY")]
    pub paths: Vec<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = LintFormat::Text)]
    pub output: LintFormat,
    /// Exit 1 when a finding is at or above this severity
    #[arg(long, value_enum, default_value_t = FailOn::Error, value_name = "SEVERITY")]
    pub fail_on: FailOn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// For people, grouped by file
    Text,
    /// For scripts
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and GitLab
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Note,
    /// Always exit 0 when lint ran
    Never,
}

pub fn run(args: &LintArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let root = args
        .repo
        .canonicalize()
        .with_context(|| format!("{}: no such directory", args.repo.display()))?;
    if !root.is_dir() {
        bail!("{}: not a directory", args.repo.display());
    }
    let source = FsSource::new(&root).with_context(|| root.display().to_string())?;
    let targets = args
        .paths
        .iter()
        .map(|p| target_dir(&root, p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let spinner = printer.spinner("linting");
    let mut report = lint::lint(&source, (!targets.is_empty()).then_some(targets.as_slice()))?;
    spinner.finish_and_clear();
    add_branch_findings(&source, &root, &mut report)?;
    printer.verbose(&format!(
        "built {} kustomization(s), {} objects; {} finding(s) ignored inline",
        report.targets.len(),
        report.objects,
        report.ignored
    ));
    let text = match args.output {
        LintFormat::Text => text(&report, printer.color()),
        LintFormat::Json => pretty(&json_report(&report)),
        LintFormat::Sarif => pretty(&sarif(&report, &root)),
    };
    printer.result(&text).context("writing to stdout")?;
    let threshold = match args.fail_on {
        FailOn::Error => Some(Severity::Error),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Note => Some(Severity::Note),
        FailOn::Never => None,
    };
    Ok(match threshold {
        Some(t) if lint::fails(&report.findings, t) => ExitStatus::Failure,
        _ => ExitStatus::Success,
    })
}

/// `--path` relative to the repository, normalised; refused when it leaves it.
fn target_dir(root: &Path, path: &str) -> anyhow::Result<String> {
    let real = root
        .join(path)
        .canonicalize()
        .with_context(|| format!("--path {path}: no such directory under {}", root.display()))?;
    let rel = real
        .strip_prefix(root)
        .map_err(|_| anyhow::anyhow!("--path {path}: outside the repository {}", root.display()))?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    match parts {
        Some(parts) => Ok(parts.join("/")),
        None => bail!("--path {path}: not valid UTF-8"),
    }
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    text.push('\n');
    text
}

/// Other branches holding the linted overlays with different content: environments kept
/// on branches. Nothing to do outside a Git repository.
fn add_branch_findings(source: &FsSource, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let Ok(repo) = git2::Repository::discover(root) else {
        return Ok(());
    };
    let (Some(workdir), Ok(head)) = (repo.workdir(), repo.head()) else {
        return Ok(());
    };
    let workdir = workdir
        .canonicalize()
        .context("the repository's working tree")?;
    let Ok(prefix) = root.strip_prefix(&workdir) else {
        return Ok(());
    };
    let head_name = head.shorthand().unwrap_or_default().to_string();
    let head_tree = head.peel_to_tree().context("HEAD")?;
    let overlays: Vec<&Kustomization> = report
        .kustomizations
        .iter()
        .filter(|k| report.targets.contains(&k.dir))
        .collect();
    let mut found = Vec::new();
    for branch in repo.branches(None).context("listing branches")? {
        let (branch, _) = branch.context("listing branches")?;
        let Some(name) = branch.name().ok().flatten().map(str::to_string) else {
            continue;
        };
        let short = name.rsplit('/').next().unwrap_or(&name);
        if name == head_name || short == head_name || name.ends_with("/HEAD") {
            continue;
        }
        let Ok(tree) = branch.get().peel_to_tree() else {
            continue;
        };
        for k in &overlays {
            let path = prefix.join(&k.dir);
            let theirs = tree.get_path(&path).ok().map(|e| e.id());
            let ours = head_tree.get_path(&path).ok().map(|e| e.id());
            if let Some(theirs) = theirs {
                found.push(BranchOverlay {
                    branch: name.clone(),
                    kustomization: (*k).clone(),
                    differs: Some(theirs) != ours,
                });
            }
        }
    }
    let mut raw = Vec::new();
    lint::repo::check_branches(&found, &mut raw);
    let mut gate = lint::Gate::new(source)?;
    report.findings.extend(gate.admit(raw));
    report.findings.sort();
    Ok(())
}

fn counts(findings: &[Finding]) -> BTreeMap<Severity, usize> {
    let mut counts = BTreeMap::new();
    for f in findings {
        *counts.entry(f.severity).or_insert(0) += 1;
    }
    counts
}

fn summary(report: &Report) -> String {
    let c = counts(&report.findings);
    let n = |s| c.get(&s).copied().unwrap_or(0);
    let files = report
        .findings
        .iter()
        .map(|f| f.file.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    format!(
        "{} error(s), {} warning(s), {} note(s) in {files} file(s); {} kustomization(s) built, {} objects",
        n(Severity::Error),
        n(Severity::Warning),
        n(Severity::Note),
        report.targets.len(),
        report.objects
    )
}

/// Grouped by file: `line:col severity rule message`, then the fix.
fn text(report: &Report, color: bool) -> String {
    let mut out = String::new();
    let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        by_file.entry(&f.file).or_default().push(f);
    }
    for (file, findings) in by_file {
        let _ = writeln!(out, "{}", Style::Bold.paint(file, color));
        for f in findings {
            let style = match f.severity {
                Severity::Error => Style::Red,
                Severity::Warning => Style::Yellow,
                Severity::Note => Style::Cyan,
            };
            let at = format!("{}:{}", f.line, f.col.max(1));
            let _ = writeln!(
                out,
                "  {at:<8} {}  {}  {}",
                style.paint(&format!("{:<7}", f.severity.as_str()), color),
                f.message,
                Style::Dim.paint(&format!("[{}]", f.rule), color)
            );
            let _ = writeln!(out, "           fix: {}", f.fix());
        }
        out.push('\n');
    }
    out.push_str(&summary(report));
    out.push('\n');
    out
}

fn json_report(report: &Report) -> Value {
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "file": f.file,
                "line": f.line,
                "column": f.col,
                "rule": f.rule,
                "severity": f.severity,
                "object": f.object,
                "message": f.message,
                "why": f.why(),
                "fix": f.fix(),
            })
        })
        .collect();
    let c = counts(&report.findings);
    json!({
        "findings": findings,
        "summary": {
            "errors": c.get(&Severity::Error).copied().unwrap_or(0),
            "warnings": c.get(&Severity::Warning).copied().unwrap_or(0),
            "notes": c.get(&Severity::Note).copied().unwrap_or(0),
            "kustomizations": report.targets,
            "objects": report.objects,
            "ignoredInline": report.ignored,
        }
    })
}

/// SARIF 2.1.0: one run, every rule described, results relative to `SRCROOT`.
fn sarif(report: &Report, root: &Path) -> Value {
    let rules: Vec<Value> = lint::RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": {"text": r.why},
                "help": {"text": r.fix},
                "defaultConfiguration": {"level": r.severity.as_str()},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut region = json!({"startLine": f.line.max(1)});
            if f.col > 0 {
                region["startColumn"] = json!(f.col);
            }
            let mut message = f.message.clone();
            let _ = write!(message, ". Fix: {}", f.fix());
            json!({
                "ruleId": f.rule,
                "ruleIndex": lint::RULES.iter().position(|r| r.id == f.rule).unwrap_or(0),
                "level": f.severity.as_str(),
                "message": {"text": message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file, "uriBaseId": SARIF_ROOT},
                        "region": region,
                    }
                }],
            })
        })
        .collect();
    let mut root_uri = format!("file://{}", root.display());
    if !root_uri.ends_with('/') {
        root_uri.push('/');
    }
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": crate::constants::BIN_NAME,
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "originalUriBaseIds": {SARIF_ROOT: {"uri": root_uri}},
            "results": results,
        }]
    })
}
