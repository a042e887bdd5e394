//! The review gate: rules over a Kustomize repository and over the objects of one render.
//!
//! [`lint`] builds every root kustomization of a repository (or the given ones) with the shared
//! renderer and runs every rule; [`guard`] runs the object rules the agent was told to enforce
//! over the render of one revision. Both apply the repository's `.kubectl-gitops/lint.yaml` and
//! inline `# lint:ignore RULE reason` comments, so a finding means the same in both places.
//! Pure: files come through a [`renderer::Source`], nothing else is read.

pub mod checks;
pub mod config;
pub mod finding;
pub mod repo;
pub mod rules;
pub mod schema;

use renderer::{RenderError, RenderOptions, Rendered, Source};

pub use config::{Config, ConfigError};
pub use finding::Finding;
pub use rules::{RULES, Rule, Severity};

use checks::ObjectContext;
use config::InlineIgnores;
use repo::Kustomization;
use schema::Crds;

#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{path}: no kustomization file (kustomization.yaml, kustomization.yml or Kustomization)"
    )]
    NoKustomization { path: String },
    #[error("{0}")]
    UnknownRule(String),
}

/// What `lint` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Sorted by file, line, rule; de-duplicated (a base reached by three overlays is
    /// reported once).
    pub findings: Vec<Finding>,
    /// The kustomization directories that were built.
    pub targets: Vec<String>,
    /// Every kustomization found (or the targets, when given).
    pub kustomizations: Vec<Kustomization>,
    /// How many objects were rendered, over all targets.
    pub objects: usize,
    /// Findings silenced by inline comments.
    pub ignored: usize,
}

/// Applies configuration and inline ignores to raw findings.
pub struct Gate<'a> {
    source: &'a dyn Source,
    config: Config,
    inline: InlineIgnores,
    ignored: usize,
}

impl<'a> Gate<'a> {
    pub fn new(source: &'a dyn Source) -> Result<Self, ConfigError> {
        Ok(Gate {
            source,
            config: Config::load(source)?,
            inline: InlineIgnores::default(),
            ignored: 0,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn admit(&mut self, findings: Vec<Finding>) -> Vec<Finding> {
        let mut out = Vec::new();
        for f in findings {
            let Some(f) = self.config.apply(f) else {
                continue;
            };
            if self.inline.ignores(self.source, &f) {
                self.ignored += 1;
                continue;
            }
            out.push(f);
        }
        out
    }
}

/// A render error as a finding at its file and line.
pub fn render_finding(err: &RenderError) -> Finding {
    let mut message = err.message.clone();
    if !err.chain.is_empty() {
        message.push_str(&format!(
            " (kustomization chain: {})",
            err.chain.join(" -> ")
        ));
    }
    let mut f = Finding::new(rules::RENDER_ERROR, &err.file, err.line.max(1), message);
    f.col = err.col;
    f
}

/// Lints the repository in `source`: every root kustomization, or `targets` (directories
/// relative to the root).
pub fn lint(source: &dyn Source, targets: Option<&[String]>) -> Result<Report, LintError> {
    let mut gate = Gate::new(source)?;
    let all = repo::discover(source);
    let chosen: Vec<Kustomization> = match targets {
        Some(dirs) => dirs
            .iter()
            .map(|d| {
                repo::discover_dir(source, d).ok_or_else(|| LintError::NoKustomization {
                    path: if d.is_empty() { ".".into() } else { d.clone() },
                })
            })
            .collect::<Result<_, _>>()?,
        None => repo::roots(&all).into_iter().cloned().collect(),
    };
    let renders = render_all(source, &chosen);
    let mut raw = Vec::new();
    let mut ok: Vec<&Rendered> = Vec::new();
    for r in &renders {
        match r {
            Ok(rendered) => ok.push(rendered),
            Err(e) => raw.push(render_finding(e)),
        }
    }
    let crds = Crds::from_objects(ok.iter().flat_map(|r| r.objects.iter()));
    let mut ctx = ObjectContext::new(source, &crds, gate.config().require_digests);
    for r in &ok {
        raw.extend(checks::check_objects(&mut ctx, &r.objects));
    }
    let chosen_refs: Vec<&Kustomization> = chosen.iter().collect();
    let owners = repo::CodeOwners::load(source);
    repo::check_codeowners(owners.as_ref(), &chosen_refs, &mut raw);
    repo::check_copies(source, &ok, &chosen_refs, &all, &mut raw);
    let mut findings = gate.admit(raw);
    findings.sort();
    findings.dedup();
    Ok(Report {
        findings,
        targets: chosen.iter().map(|k| k.dir.clone()).collect(),
        objects: ok.iter().map(|r| r.objects.len()).sum(),
        kustomizations: if targets.is_some() { chosen } else { all },
        ignored: gate.ignored,
    })
}

/// Renders the targets on up to as many threads as there are cores.
fn render_all(
    source: &dyn Source,
    targets: &[Kustomization],
) -> Vec<Result<Rendered, RenderError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(targets.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<Rendered, RenderError>>>> =
        std::sync::Mutex::new((0..targets.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(k) = targets.get(i) else { break };
                    let dir = if k.dir.is_empty() { "." } else { &k.dir };
                    let r = renderer::render(source, dir, &RenderOptions::default());
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every target rendered"))
        .collect()
}

/// Checks the names given to the agent's `--refuse`: object rules only.
pub fn parse_refuse(names: &[String]) -> Result<Vec<&'static str>, LintError> {
    names
        .iter()
        .map(|n| {
            rules::OBJECT_RULES
                .iter()
                .copied()
                .find(|r| r == n)
                .ok_or_else(|| {
                    LintError::UnknownRule(format!(
                        "unknown guardrail {n:?}; one of: {}",
                        rules::OBJECT_RULES.join(", ")
                    ))
                })
        })
        .collect()
}

/// The agent's guardrails: findings of the `refuse` rules over the render of one revision
/// (any severity: a refused rule refuses). The repository's lint configuration and inline
/// ignores apply, as they do for `lint`.
pub fn guard(
    source: &dyn Source,
    rendered: &Rendered,
    refuse: &[&'static str],
) -> Result<Vec<Finding>, LintError> {
    if refuse.is_empty() {
        return Ok(Vec::new());
    }
    let mut gate = Gate::new(source)?;
    let crds = Crds::from_objects(&rendered.objects);
    let mut ctx = ObjectContext::new(source, &crds, gate.config().require_digests);
    ctx.only = Some(refuse.to_vec());
    let raw = checks::check_objects(&mut ctx, &rendered.objects)
        .into_iter()
        .filter(|f| refuse.contains(&f.rule))
        .collect();
    let mut findings = gate.admit(raw);
    findings.sort();
    findings.dedup();
    Ok(findings)
}

/// Whether any finding is at or above `threshold`.
pub fn fails(findings: &[Finding], threshold: Severity) -> bool {
    findings.iter().any(|f| f.severity >= threshold)
}

#[cfg(test)]
mod testutil;
