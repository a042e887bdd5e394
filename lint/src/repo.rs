//! Rules over the repository as a whole: which kustomizations to build, CODEOWNERS for
//! production overlays, overlays that copy objects, environments kept on branches.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regex::Regex;
use renderer::provenance::for_each_leaf;
use renderer::{EntryKind, Rendered, SetBy, Source};
use serde_json::Value;

use crate::finding::Finding;
use crate::rules::{BRANCH_PER_ENVIRONMENT, CODEOWNERS, COPIED_YAML};

pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];
const CODEOWNERS_FILES: &[&str] = &[
    "CODEOWNERS",
    ".github/CODEOWNERS",
    ".gitlab/CODEOWNERS",
    "docs/CODEOWNERS",
];
/// Path segments that name a production environment.
const PRODUCTION: &[&str] = &["prod", "production", "prd", "live"];
/// Branch names that name an environment.
const ENVIRONMENTS: &[&str] = &[
    "dev",
    "development",
    "test",
    "qa",
    "uat",
    "stage",
    "staging",
    "preprod",
    "pre-prod",
    "prod",
    "production",
];
/// Share of equal fields from which two definitions of one object count as a copy.
const COPY_SIMILARITY: f64 = 0.6;
/// Bound on the directory walk, for hostile trees.
const MAX_DEPTH: usize = 32;

/// One kustomization of the repository.
#[derive(Debug, Clone)]
pub struct Kustomization {
    /// The directory, relative to the root ("" for the root).
    pub dir: String,
    /// The kustomization file.
    pub file: String,
    /// `kind: Component`: never built on its own.
    pub component: bool,
    /// Directories it includes (resources, components, bases), normalised.
    pub includes: Vec<String>,
}

/// Every kustomization under the root, skipping hidden directories.
pub fn discover(source: &dyn Source) -> Vec<Kustomization> {
    let mut out = Vec::new();
    walk(source, "", 0, &mut out);
    out
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn walk(source: &dyn Source, dir: &str, depth: usize, out: &mut Vec<Kustomization>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(names) = source.list(dir) else { return };
    out.extend(read_kustomization(source, dir, &names));
    for name in names {
        if name.starts_with('.') {
            continue;
        }
        let path = join(dir, &name);
        if source.kind(&path) == Some(EntryKind::Dir) {
            walk(source, &path, depth + 1, out);
        }
    }
}

/// The kustomization in `dir`, if there is one.
pub fn discover_dir(source: &dyn Source, dir: &str) -> Option<Kustomization> {
    let names = source.list(dir).ok()?;
    read_kustomization(source, dir, &names)
}

fn read_kustomization(source: &dyn Source, dir: &str, names: &[String]) -> Option<Kustomization> {
    let name = KUSTOMIZATION_FILES
        .iter()
        .find(|n| names.iter().any(|m| m == *n))?;
    let file = join(dir, name);
    let doc = source
        .read(&file)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| renderer::yaml::parse_documents(&t).ok())
        .and_then(|d| d.into_iter().next())
        .map(|d| d.value)
        .unwrap_or(Value::Null);
    let includes = ["resources", "components", "bases"]
        .iter()
        .flat_map(|k| doc[*k].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .filter_map(|p| normalise(dir, p))
        .collect();
    Some(Kustomization {
        dir: dir.to_string(),
        file,
        component: doc["kind"] == "Component",
        includes,
    })
}

/// `dir/rel` without `.`/`..`; `None` when it leaves the root.
fn normalise(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// The kustomizations no other kustomization includes: building these covers the rest.
pub fn roots(all: &[Kustomization]) -> Vec<&Kustomization> {
    let included: BTreeSet<&str> = all
        .iter()
        .flat_map(|k| k.includes.iter().map(String::as_str))
        .collect();
    all.iter()
        .filter(|k| !k.component && !included.contains(k.dir.as_str()))
        .collect()
}

/// Whether a directory is a production overlay: one of its segments names production.
pub fn is_production(dir: &str) -> bool {
    dir.split('/').any(|seg| {
        seg.split(['-', '_', '.'])
            .any(|part| PRODUCTION.contains(&part.to_ascii_lowercase().as_str()))
    })
}

/// A CODEOWNERS file: (pattern, has owners), in file order (the last match wins).
pub struct CodeOwners {
    rules: Vec<(Regex, bool)>,
}

impl CodeOwners {
    pub fn load(source: &dyn Source) -> Option<CodeOwners> {
        let text = CODEOWNERS_FILES
            .iter()
            .find_map(|f| source.read(f).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())?;
        Some(CodeOwners::parse(&text))
    }

    pub fn parse(text: &str) -> CodeOwners {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let pattern = words.next()?;
                let owned = words.next().is_some_and(|w| !w.starts_with('#'));
                Some((codeowners_pattern(pattern), owned))
            })
            .collect();
        CodeOwners { rules }
    }

    /// Whether `path` has an owner (the last matching line names one).
    pub fn owns(&self, path: &str) -> bool {
        self.rules
            .iter()
            .rev()
            .find(|(re, _)| re.is_match(path))
            .is_some_and(|(_, owned)| *owned)
    }
}

/// gitignore-style CODEOWNERS pattern: anchored when it starts with or contains a `/`.
fn codeowners_pattern(pattern: &str) -> Regex {
    let inner = pattern.trim_end_matches('/');
    let anchored = pattern.starts_with('/') || inner.trim_start_matches('/').contains('/');
    let g = crate::config::glob(inner);
    if anchored {
        g
    } else {
        // Matches at any depth: allow any leading directories.
        let body = g.as_str().trim_start_matches('^');
        Regex::new(&format!("^(?:.*/)?{body}")).unwrap_or(g)
    }
}

pub fn check_codeowners(
    owners: Option<&CodeOwners>,
    targets: &[&Kustomization],
    out: &mut Vec<Finding>,
) {
    for k in targets.iter().filter(|k| is_production(&k.dir)) {
        let owned = owners.is_some_and(|o| o.owns(&k.file));
        if !owned {
            out.push(Finding::new(
                CODEOWNERS,
                &k.file,
                1,
                format!(
                    "production overlay {} has no CODEOWNERS entry{}",
                    if k.dir.is_empty() {
                        "."
                    } else {
                        k.dir.as_str()
                    },
                    if owners.is_none() {
                        " (the repository has no CODEOWNERS file)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
}

/// One definition of an object in a resource file.
struct Definition {
    file: String,
    line: u32,
    leaves: BTreeSet<String>,
}

/// Objects defined in more than one resource file with mostly the same fields: an overlay
/// copied a base instead of patching it. Reported at the copy: the file in a root
/// kustomization (an overlay), else the later path.
///
/// Definitions are read from the rendered objects' files and from the resource files every
/// kustomization of the repository lists (`all`), so linting one overlay still finds the base
/// it copied; findings are reported only in rendered files.
pub fn check_copies(
    source: &dyn Source,
    renders: &[&Rendered],
    roots: &[&Kustomization],
    all: &[Kustomization],
    out: &mut Vec<Finding>,
) {
    let mut rendered: BTreeSet<String> = BTreeSet::new();
    for r in renders {
        for o in &r.objects {
            if let Some(kind) = o.provenance().get("kind")
                && kind.origin.set_by == SetBy::Resource
            {
                rendered.insert(kind.origin.file.to_string());
            }
        }
    }
    let mut files = rendered.clone();
    files.extend(
        all.iter()
            .flat_map(|k| k.includes.iter())
            .filter(|p| source.kind(p) == Some(EntryKind::File))
            .cloned(),
    );
    let mut defs: BTreeMap<(String, String, String), Vec<Definition>> = BTreeMap::new();
    for file in &files {
        let Some(docs) = source
            .read(file)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| renderer::yaml::parse_documents(&t).ok())
        else {
            continue;
        };
        for d in docs {
            let v = &d.value;
            let (Some(api), Some(kind), Some(name)) = (
                v["apiVersion"].as_str(),
                v["kind"].as_str(),
                v["metadata"]["name"].as_str(),
            ) else {
                continue;
            };
            let mut leaves = BTreeSet::new();
            for_each_leaf(v, &mut |p, leaf| {
                leaves.insert(format!("{p}={leaf}"));
            });
            defs.entry((api.into(), kind.into(), name.into()))
                .or_default()
                .push(Definition {
                    file: file.clone(),
                    line: d.start.line,
                    leaves,
                });
        }
    }
    let root_dirs: Vec<&str> = roots.iter().map(|k| k.dir.as_str()).collect();
    let in_root = |file: &str| {
        let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
        root_dirs.contains(&dir)
    };
    for ((_, kind, name), list) in &defs {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if a.file == b.file {
                    continue;
                }
                let shared = a.leaves.intersection(&b.leaves).count();
                let smaller = a.leaves.len().min(b.leaves.len()).max(1);
                let similarity = shared as f64 / smaller as f64;
                if similarity < COPY_SIMILARITY {
                    continue;
                }
                let (copy, original) = match (in_root(&a.file), in_root(&b.file)) {
                    (true, false) => (a, b),
                    (false, true) => (b, a),
                    _ if a.file > b.file => (a, b),
                    _ => (b, a),
                };
                if !rendered.contains(&copy.file) {
                    continue;
                }
                let mut f = Finding::new(
                    COPIED_YAML,
                    &copy.file,
                    copy.line.max(1),
                    format!(
                        "{kind}/{name} is a copy of {}:{} ({:.0}% of its fields are the same)",
                        original.file,
                        original.line.max(1),
                        similarity * 100.0
                    ),
                );
                f.object = Some(format!("{kind}/{name}"));
                out.push(f);
            }
        }
    }
}

/// An overlay as another branch holds it.
#[derive(Debug, Clone)]
pub struct BranchOverlay {
    pub branch: String,
    pub kustomization: Kustomization,
    /// The branch's copy of the overlay directory differs from the checked-out one.
    pub differs: bool,
}

pub fn is_environment_branch(branch: &str) -> bool {
    let last = branch.rsplit('/').next().unwrap_or(branch);
    ENVIRONMENTS.contains(&last.to_ascii_lowercase().as_str())
        || branch.starts_with("env/")
        || branch.starts_with("environments/")
}

/// Environment branches holding the same overlays with other content.
pub fn check_branches(overlays: &[BranchOverlay], out: &mut Vec<Finding>) {
    let mut by_file: HashMap<&str, Vec<&str>> = HashMap::new();
    for o in overlays
        .iter()
        .filter(|o| o.differs && is_environment_branch(&o.branch))
    {
        by_file
            .entry(o.kustomization.file.as_str())
            .or_default()
            .push(&o.branch);
    }
    let mut files: Vec<_> = by_file.into_iter().collect();
    files.sort();
    for (file, mut branches) in files {
        branches.sort();
        out.push(Finding::new(
            BRANCH_PER_ENVIRONMENT,
            file,
            1,
            format!(
                "branch{} {} hold{} this overlay with different content",
                if branches.len() == 1 { "" } else { "es" },
                branches.join(", "),
                if branches.len() == 1 { "s" } else { "" }
            ),
        ));
    }
}
