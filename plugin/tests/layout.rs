//! The plugin's top-level modules form no import cycle: `commands/*` sit on `cluster/`, `git/`,
//! `output/`, `plan/`, `install/` and `release/`, and only `cli.rs` (and the crate root) sit on
//! `commands/`. Read from the source so a new `use crate::…` that closes a loop fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level module a file belongs to: `src/cluster/live.rs` → `cluster`,
/// `src/cli.rs` → `cli`; the crate root and the binaries belong to none.
fn top_module(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" | "bin" => None,
        name => Some(name.trim_end_matches(".rs").to_string()),
    }
}

/// The top-level modules named by `crate::…` paths in `source`, comments excluded.
fn referenced_modules(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let preceded_by_ident = rest[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + "crate::".len()..];
            if preceded_by_ident {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c}`: every first segment of the group.
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    let name = ident(part.trim());
                    if !name.is_empty() {
                        found.insert(name.to_string());
                    }
                }
                continue;
            }
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name.to_string());
            }
        }
    }
    found
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

fn collect(dir: &Path, root: &Path, graph: &mut Graph) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, root, graph);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let Some(from) = top_module(path.strip_prefix(root).unwrap()) else {
            continue;
        };
        let source = fs::read_to_string(&path).unwrap();
        let edges = graph.entry(from.clone()).or_default();
        edges.extend(
            referenced_modules(&source)
                .into_iter()
                .filter(|m| *m != from),
        );
    }
}

/// One cycle, as the list of modules around it, if the graph has any. Edges to names that
/// are not modules of the graph (items of the crate root such as `ExitStatus`) are ignored.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|n| n == node).unwrap();
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Visiting);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next)
                && let Some(cycle) = visit(next, graph, marks, path)
            {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for (from, to) in edges {
        graph
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string());
        graph.entry(to.to_string()).or_default();
    }
    graph
}

#[test]
fn the_checker_finds_cycles_and_only_cycles() {
    let acyclic = graph_of(&[
        ("cli", "commands"),
        ("commands", "output"),
        ("cli", "output"),
    ]);
    assert_eq!(find_cycle(&acyclic), None);
    let cyclic = graph_of(&[
        ("cli", "commands"),
        ("commands", "cluster"),
        ("cluster", "cli"),
        ("commands", "output"),
    ]);
    let cycle = find_cycle(&cyclic).expect("cli → commands → cluster → cli");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    assert!(find_cycle(&graph_of(&[("a", "a")])).is_some());
}

#[test]
fn references_are_read_from_use_lines_and_inline_paths() {
    let source = "use crate::output::printer::Printer;\n\
                  use crate::{cluster, git::blame};\n\
                  // crate::commented::out\n\
                  let x = crate::plan::change_plan::editable(); // trailing\n\
                  let y = mycrate::not_this;\n";
    let found: Vec<String> = referenced_modules(source).into_iter().collect();
    assert_eq!(found, ["cluster", "git", "output", "plan"]);
    assert_eq!(
        top_module(Path::new("cluster/live.rs")).as_deref(),
        Some("cluster")
    );
    assert_eq!(top_module(Path::new("cli.rs")).as_deref(), Some("cli"));
    assert_eq!(top_module(Path::new("lib.rs")), None);
}

#[test]
fn no_import_cycle_among_top_level_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    collect(&root, &root, &mut graph);
    assert!(
        graph.contains_key("commands") && graph.contains_key("cli"),
        "{graph:?}"
    );
    assert!(
        !graph["commands"].contains("cli"),
        "commands/* must not import cli.rs (the shared flags live in cluster/ and output/)"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn few_files_are_left_at_the_top() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "lib.rs" && name != "main.rs")
        .collect();
    assert!(files.len() <= 6, "{files:?}");
}
