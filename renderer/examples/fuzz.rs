//! A structure-aware mutation fuzzer for the YAML and kustomization parsing (stable Rust,
//! no coverage feedback). See `renderer/FUZZING.md`.
//!
//! ```text
//! cargo run --release -p renderer --example fuzz -- --seconds 300 --seed 1
//! cargo run --release -p renderer --example fuzz -- --replay SEED ITER   # print one input
//! ```
//!
//! The process supervises a worker (itself, with `--worker`) run under `ulimit -v`, so that
//! aborts (stack overflow, allocation failure) and hangs are findings too. Every input is a
//! pure function of (seed, iteration), so the supervisor regenerates the input a dead or
//! stuck worker was on. The worker catches panics with `catch_unwind`, times each
//! iteration and watches its resident memory.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use renderer::{EntryKind, RenderOptions, Reorder, Source, SourceError};

/// An iteration slower than this is a finding.
const SLOW: Duration = Duration::from_secs(2);
/// Resident memory above this after an iteration is a finding.
const MAX_RSS: u64 = 1_500 * 1024 * 1024;
/// Virtual-memory cap of the worker (KiB, for `ulimit -v`).
const ULIMIT_KB: u64 = 6 * 1024 * 1024;
/// A worker silent this long is hung.
const HANG: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The in-memory tree: the renderer's own input trait over a map of path -> bytes.

#[derive(Clone, Default)]
struct MemSource {
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
}

impl MemSource {
    fn new(files: BTreeMap<String, Vec<u8>>) -> Self {
        let mut dirs = BTreeSet::new();
        dirs.insert(String::new());
        for p in files.keys() {
            let mut cur = p.as_str();
            while let Some(i) = cur.rfind('/') {
                cur = &cur[..i];
                dirs.insert(cur.to_string());
            }
        }
        Self { files, dirs }
    }
}

impl Source for MemSource {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| SourceError::NotFound {
                path: path.to_string(),
            })
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        if self.files.contains_key(path) {
            Some(EntryKind::File)
        } else if self.dirs.contains(path) {
            Some(EntryKind::Dir)
        } else {
            None
        }
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        if !self.dirs.contains(path) {
            return Err(SourceError::NotFound {
                path: path.to_string(),
            });
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut names = BTreeSet::new();
        for p in self.files.keys().chain(self.dirs.iter()) {
            if let Some(rest) = p.strip_prefix(&prefix)
                && !rest.is_empty()
                && p.len() > path.len()
            {
                names.insert(rest.split('/').next().unwrap_or(rest).to_string());
            }
        }
        Ok(names.into_iter().collect())
    }
}

// ---------------------------------------------------------------------------------------
// Seeds.

#[derive(Clone)]
struct Seed {
    name: String,
    files: BTreeMap<String, Vec<u8>>,
    /// Directories holding a kustomization file.
    targets: Vec<String>,
}

struct Corpus {
    seeds: Vec<Seed>,
    /// Every line of every seed file, for splicing.
    lines: Vec<Vec<u8>>,
    /// Every seed file, for whole-file splicing.
    files: Vec<Vec<u8>>,
}

fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, base, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            let rel = p
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, bytes);
        }
    }
}

fn seed_of(name: String, files: BTreeMap<String, Vec<u8>>) -> Seed {
    let mut targets: Vec<String> = files
        .keys()
        .filter_map(|p| {
            let (dir, file) = p.rsplit_once('/').unwrap_or(("", p));
            matches!(
                file,
                "kustomization.yaml" | "kustomization.yml" | "Kustomization"
            )
            .then(|| dir.to_string())
        })
        .collect();
    if targets.is_empty() {
        targets.push(String::new());
    }
    Seed {
        name,
        files,
        targets,
    }
}

fn load_corpus() -> Corpus {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    let fixtures = manifest.join("tests/fixtures");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    cases.sort();
    for case in cases.into_iter().filter(|p| p.is_dir()) {
        let mut files = BTreeMap::new();
        walk(&case, &case, &mut files);
        files.remove("target");
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        seeds.push(seed_of(format!("fixtures/{name}"), files));
    }
    let examples = manifest.parent().unwrap().join("examples");
    let mut files = BTreeMap::new();
    walk(&examples, &examples, &mut files);
    if !files.is_empty() {
        seeds.push(seed_of("examples".into(), files));
    }
    let mut lines = Vec::new();
    let mut all = Vec::new();
    for s in &seeds {
        for f in s.files.values() {
            all.push(f.clone());
            for l in f.split_inclusive(|&b| b == b'\n') {
                lines.push(l.to_vec());
            }
        }
    }
    Corpus {
        seeds,
        lines,
        files: all,
    }
}

// ---------------------------------------------------------------------------------------
// Randomness: every input is a function of (seed, iteration).

struct Rng(u64);

impl Rng {
    fn new(seed: u64, iter: u64) -> Self {
        let mut r = Rng(seed ^ iter.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

// ---------------------------------------------------------------------------------------
// Mutations.

const KUSTOMIZATION_FIELDS: &[&str] = &[
    "resources",
    "bases",
    "components",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "namePrefix",
    "nameSuffix",
    "namespace",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "images",
    "replicas",
    "replacements",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "vars",
    "configurations",
    "crds",
    "transformers",
    "generators",
    "validators",
    "openapi",
    "sortOptions",
    "buildMetadata",
    "helmCharts",
    "helmGlobals",
    "kind",
    "apiVersion",
    "metadata",
    "namePrefx",
    "unknownField",
    "<<",
    "",
];

const VALUES: &[&str] = &[
    "",
    "~",
    "null",
    "[]",
    "{}",
    "[a]",
    "{a: b}",
    "3",
    "-1",
    "1e400",
    "0x1F",
    "0o17",
    ".nan",
    "-.inf",
    "yes",
    "true",
    "'x'",
    "\"\\u0000\"",
    "\"\\x85\"",
    "\"\\uD800\"",
    "|\n  a\n  b",
    ">-\n  a",
    "|2-\n   x",
    "- a\n- b",
    "[{name: x, count: many}]",
    "[{path: p.yaml, target: {kind: '(', name: '['}}]",
    "[{patch: '[{op: add, path: /x, value: 1}]', target: {kind: ConfigMap}}]",
    "[{patch: 'kind: ConfigMap', target: {name: '.*'}}]",
    "[{name: c, literals: [a=b, '=', 'x'], files: [../x, /etc/passwd, k=.]}]",
    "[{name: c, envs: [missing.env], behavior: merge}]",
    "[{source: {kind: ConfigMap, name: c, fieldPath: data.x}, targets: [{select: {kind: '*'}, fieldPaths: ['spec.[x=y].z', 'a.*.b', '']}]}]",
    "[{name: v, objref: {kind: ConfigMap, name: c, apiVersion: v1}, fieldref: {fieldpath: data.missing}}]",
    "{legacySortOptions: {orderFirst: [x], orderLast: [y]}, order: legacy}",
    "[managedByLabel, originAnnotations, transformerAnnotations, bogus]",
    "[{name: nginx, newName: 'a:b@c', newTag: '', digest: sha256:x}]",
    "!!binary aGVsbG8=",
    "!!int x",
    "!!float abc",
    "!!timestamp 2001-13-45",
    "!!map [a]",
    "!!seq {a: b}",
    "!custom {a: b}",
    "!<tag:yaml.org,2002:str> 1",
    "*nope",
    "&a [*a]",
];

const PATHS: &[&str] = &[
    "..",
    ".",
    "./",
    "../..",
    "../x.yaml",
    "/etc/passwd",
    "/",
    "",
    "//",
    "a/../../b",
    "./kustomization.yaml",
    "kustomization.yaml",
    "self",
    "loop",
    "r.yaml",
    "r.yaml",
    "nested/r2.yaml",
    "https://github.com/x/y//z?ref=v1",
    "git@github.com:x/y.git",
    "C:\\x",
    "~/x",
    "%2e%2e",
    "\u{0}",
    "a\nb",
];

const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    "? ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "*a ",
    "!!str ",
    "!!binary ",
    "!!int ",
    "!!null ",
    "!foo ",
    "|",
    "|-",
    ">+",
    "'",
    "\"",
    "#",
    "%YAML 1.1\n",
    "%TAG ! x\n",
    "---",
    "---\n",
    "...\n",
    "\t",
    "\r\n",
    "\r",
    "<<: ",
    "<<: *a\n",
    "\u{feff}",
    "\u{85}",
    "\u{2028}",
    "\u{0}",
    "\\",
    "@",
    "`",
    "%",
    "~",
    "0",
    "1",
    "-1",
    "1.",
    ".5",
    "0x",
    "true",
    "null",
    "yes",
    "\u{1b}",
    "\u{7f}",
    "é",
    "😀",
];

const INTERESTING_BYTES: &[u8] = &[
    0, 0xff, 0xfe, 0xc3, 0x80, 0xe2, 0xef, 0xbb, 0xbf, b'\t', b'\r', b'\n', b':', b'-', b'[', b']',
    b'{', b'}', b'&', b'*', b'!', b'|', b'>', b'#', b'%', b'"', b'\'', b' ', b'?', b',', b'\\',
    0x1b, 0x7f, b'0',
];

fn line_ranges(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < b.len() {
        out.push((start, b.len()));
    }
    out
}

fn alias_bomb(rng: &mut Rng) -> String {
    let levels = 3 + rng.below(12);
    let width = 2 + rng.below(9);
    let mut s = String::from("a0: &a0 [\"lol\"]\n");
    for l in 1..levels {
        let refs = vec![format!("*a{}", l - 1); width].join(", ");
        s.push_str(&format!("a{l}: &a{l} [{refs}]\n"));
    }
    if rng.chance(2) {
        // Mapping merges instead of sequences.
        s.push_str(&format!(
            "m: &m {{k: *a{}}}\nn: {{<<: [*m, *m], z: *m}}\n",
            levels - 1
        ));
    }
    s
}

fn deep_nesting(rng: &mut Rng) -> String {
    let n = [10, 100, 127, 128, 129, 200, 255, 256, 1_000, 5_000, 20_000][rng.below(11)];
    match rng.below(5) {
        0 => "[".repeat(n) + &"]".repeat(if rng.chance(2) { n } else { 0 }),
        1 => "{a: ".repeat(n) + "x" + &"}".repeat(n),
        2 => "- ".repeat(n) + "x\n",
        3 => {
            let mut s = String::new();
            for i in 0..n.min(3_000) {
                s.push_str(&" ".repeat(i));
                s.push_str("a:\n");
            }
            s
        }
        _ => {
            let mut s = String::from("x: &r\n");
            for i in 0..n.min(500) {
                s.push_str(&" ".repeat(2 + i));
                s.push_str("- \n");
            }
            s.push_str("y: [*r, *r, *r]\n");
            s
        }
    }
}

/// Applies one mutation to `file` of `files`; returns its name.
fn mutate(
    rng: &mut Rng,
    corpus: &Corpus,
    files: &mut BTreeMap<String, Vec<u8>>,
    file: &str,
    target: &str,
) -> &'static str {
    let kdir = |p: &str| {
        if target.is_empty() {
            p.to_string()
        } else {
            format!("{target}/{p}")
        }
    };
    let mut b = files.get(file).cloned().unwrap_or_default();
    let lines = line_ranges(&b);
    let pos = rng.below(b.len() + 1);
    let name = match rng.below(34) {
        0 => {
            if !b.is_empty() {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            "bit-flip"
        }
        1 => {
            b.insert(pos, *rng.pick(INTERESTING_BYTES));
            "insert-byte"
        }
        2 => {
            b.insert(pos, rng.next() as u8);
            "insert-random-byte"
        }
        3 => {
            let len = 1 + rng.below(16);
            let end = (pos + len).min(b.len());
            b.drain(pos.min(end)..end);
            "delete-bytes"
        }
        4 => {
            let len = rng.below(64);
            let end = (pos + len).min(b.len());
            let chunk = b[pos.min(end)..end].to_vec();
            let at = rng.below(b.len() + 1);
            b.splice(at..at, chunk);
            "duplicate-bytes"
        }
        5 => {
            let l = rng.pick(&corpus.lines).clone();
            let at = lines.get(rng.below(lines.len().max(1))).map_or(0, |r| r.0);
            b.splice(at..at, l);
            "splice-line"
        }
        6 => {
            if let Some(&(s, e)) = lines.get(rng.below(lines.len().max(1))) {
                b.drain(s..e);
            }
            "delete-line"
        }
        7 => {
            if let Some(&(s, e)) = lines.get(rng.below(lines.len().max(1))) {
                let l = b[s..e].to_vec();
                let at = lines[rng.below(lines.len())].0;
                b.splice(at..at, l);
            }
            "duplicate-line"
        }
        8 => {
            if lines.len() >= 2 {
                let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                let (i, j) = (i.min(j), i.max(j));
                if i != j {
                    let li = b[lines[i].0..lines[i].1].to_vec();
                    let lj = b[lines[j].0..lines[j].1].to_vec();
                    b.splice(lines[j].0..lines[j].1, li);
                    b.splice(lines[i].0..lines[i].1, lj);
                }
            }
            "swap-lines"
        }
        9 => {
            if let Some(&(s, _)) = lines.get(rng.below(lines.len().max(1))) {
                if rng.chance(2) {
                    let n = 1 + rng.below(4);
                    b.splice(s..s, std::iter::repeat_n(b' ', n));
                } else {
                    let n = b[s..].iter().take_while(|&&c| c == b' ').count();
                    let k = 1 + rng.below(n.max(1));
                    b.drain(s..s + k.min(n));
                }
            }
            "indent-shift"
        }
        10 => {
            // Duplicate a key line (and its block) right after itself.
            if let Some(&(s, e)) = lines.get(rng.below(lines.len().max(1))) {
                let l = b[s..e].to_vec();
                if l.contains(&b':') {
                    b.splice(e..e, l);
                }
            }
            "duplicate-key"
        }
        11 => {
            // Anchor a value and alias it elsewhere.
            if lines.len() >= 2 {
                let (s, e) = lines[rng.below(lines.len())];
                if let Some(c) = b[s..e].iter().position(|&c| c == b':') {
                    b.splice(s + c + 1..s + c + 1, b" &a".iter().copied());
                    let (s2, e2) = lines[rng.below(lines.len())];
                    let target_line = &b[s2..e2.min(b.len())];
                    if let Some(c2) = target_line.iter().position(|&c| c == b':') {
                        let at = s2 + c2 + 1;
                        let end = b[at..]
                            .iter()
                            .position(|&c| c == b'\n')
                            .map_or(b.len(), |x| at + x);
                        b.splice(at..end, b" *a".iter().copied());
                    }
                }
            }
            "anchor-alias"
        }
        12 => {
            let bomb = alias_bomb(rng);
            if rng.chance(2) {
                b = bomb.into_bytes();
            } else {
                b.extend_from_slice(bomb.as_bytes());
            }
            "alias-bomb"
        }
        13 => {
            let tag = *rng.pick(&[
                "!!binary ",
                "!!int ",
                "!!str ",
                "!!map ",
                "!!seq ",
                "!!null ",
                "!!float ",
                "!!bool ",
                "!!timestamp ",
                "!!merge ",
                "!!set ",
                "!!omap ",
                "!custom ",
                "! ",
                "!<tag:yaml.org,2002:str> ",
                "!<!> ",
                "!!python/object ",
            ]);
            if let Some(&(s, e)) = lines.get(rng.below(lines.len().max(1))) {
                let at = b[s..e]
                    .iter()
                    .position(|&c| c == b':')
                    .map_or(s, |c| s + c + 2)
                    .min(b.len());
                b.splice(at..at, tag.bytes());
            }
            "tag"
        }
        14 => {
            // Block value -> flow value, or a flow line.
            if let Some(&(s, e)) = lines.get(rng.below(lines.len().max(1))) {
                let l = String::from_utf8_lossy(&b[s..e]).into_owned();
                if let Some((k, _)) = l.split_once(':') {
                    let v = rng.pick(&["{}", "[]", "{a: [b, {c: d}]}", "[a, b", "{a", "{? a : b}"]);
                    let repl = format!("{k}: {v}\n");
                    b.splice(s..e, repl.into_bytes());
                }
            }
            "flow"
        }
        15 => {
            if let Some(&(s, _)) = lines.get(rng.below(lines.len().max(1))) {
                let n = b[s..].iter().take_while(|&&c| c == b' ').count();
                b.splice(s..s + n, std::iter::once(b'\t'));
            }
            "tab-indent"
        }
        16 => {
            let n = [1_000, 65_536, 100_000, 1_000_000][rng.below(4)];
            let c = *rng.pick(&["x", "a ", "\\", "é", "'", "#"]);
            let mut long = c.repeat(n / c.len());
            if rng.chance(2) {
                long = format!("\"{long}\"");
            }
            b.splice(pos..pos, long.into_bytes());
            "long-scalar"
        }
        17 => {
            let d = deep_nesting(rng);
            if rng.chance(2) {
                b = d.into_bytes();
            } else {
                let at = lines.get(rng.below(lines.len().max(1))).map_or(0, |r| r.0);
                b.splice(at..at, d.into_bytes());
            }
            "deep-nesting"
        }
        18 => {
            let at = if rng.chance(2) { 0 } else { pos };
            b.splice(at..at, "\u{feff}".bytes());
            "bom"
        }
        19 => {
            b.insert(pos, 0);
            "nul"
        }
        20 => {
            let bad: &[&[u8]] = &[
                b"\xff",
                b"\xc3",
                b"\xc3\x28",
                b"\xe2\x82",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
                b"\xc0\xaf",
            ];
            b.splice(pos..pos, rng.pick(bad).iter().copied());
            "invalid-utf8"
        }
        21 => {
            let sep = rng.pick(&[
                "---\n",
                "...\n",
                "--- \n",
                "--- |\n",
                "---\n...\n---\n",
                "--- !!map\n",
                "...",
                "---",
            ]);
            let at = if rng.chance(2) {
                lines.get(rng.below(lines.len().max(1))).map_or(0, |r| r.0)
            } else {
                pos
            };
            b.splice(at..at, sep.bytes());
            "doc-separator"
        }
        22 => {
            let f = rng.pick(KUSTOMIZATION_FIELDS);
            let v = rng.pick(VALUES);
            let v = if v.contains('\n') {
                format!("\n  {}", v.replace('\n', "\n  "))
            } else {
                format!(" {v}")
            };
            let at = if rng.chance(2) {
                b.len()
            } else {
                lines.get(rng.below(lines.len().max(1))).map_or(0, |r| r.0)
            };
            if at > 0 && b.get(at - 1) != Some(&b'\n') {
                b.insert(at, b'\n');
                b.splice(at + 1..at + 1, format!("{f}:{v}\n").into_bytes());
            } else {
                b.splice(at..at, format!("{f}:{v}\n").into_bytes());
            }
            "kustomization-field"
        }
        23 => {
            let field = rng.pick(&[
                "resources",
                "components",
                "bases",
                "crds",
                "configurations",
                "patchesStrategicMerge",
                "transformers",
                "generators",
            ]);
            let p = rng.pick(PATHS);
            let entry = format!("\n{field}:\n- {:?}\n", p);
            b.extend_from_slice(entry.as_bytes());
            "path-entry"
        }
        24 => {
            // Self- and mutually-referencing kustomizations.
            files.insert(
                kdir("self/kustomization.yaml"),
                b"resources:\n- .\n- ../self\n".to_vec(),
            );
            files.insert(
                kdir("loop/kustomization.yaml"),
                b"resources:\n- ..\n".to_vec(),
            );
            b.extend_from_slice(b"\nresources:\n- self\n- loop\n- .\n");
            "self-reference"
        }
        25 => {
            // A whole other seed file, or a resource file referenced from here.
            let other = rng.pick(&corpus.files).clone();
            if rng.chance(2) {
                b = other;
            } else {
                files.insert(kdir("nested/r2.yaml"), other);
                b.extend_from_slice(b"\nresources:\n- nested/r2.yaml\n");
            }
            "splice-file"
        }
        26 => {
            b = b
                .iter()
                .flat_map(|&c| {
                    if c == b'\n' {
                        vec![b'\r', b'\n']
                    } else {
                        vec![c]
                    }
                })
                .collect();
            "crlf"
        }
        27 => {
            let t = rng.pick(TOKENS);
            b.splice(pos..pos, t.bytes());
            "token"
        }
        28 => {
            let n = rng.below(4) + 1;
            for _ in 0..n {
                let t = rng.pick(TOKENS);
                let p = rng.below(b.len() + 1);
                b.splice(p..p, t.bytes());
            }
            "tokens"
        }
        29 => {
            b.truncate(pos);
            "truncate"
        }
        30 => {
            // Numbers: replace a digit run with an edge case.
            if let Some(start) = (0..b.len())
                .map(|k| (pos + k) % b.len())
                .find(|&k| b[k].is_ascii_digit())
            {
                let end = b[start..]
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .map_or(b.len(), |x| start + x);
                let n = rng.pick(&[
                    "99999999999999999999999",
                    "-0",
                    "1e400",
                    "0x7fffffffffffffff",
                    "-9223372036854775809",
                    "18446744073709551616",
                    ".nan",
                    "0o777",
                    "1_000",
                    "0b101",
                    "4294967296",
                    "",
                ]);
                b.splice(start..end, n.bytes());
            }
            "number"
        }
        31 => {
            // Complex keys and merge keys.
            let s = rng.pick(&[
                "? [a, b]\n: c\n",
                "? {a: b}\n: c\n",
                "<<: {a: b}\n",
                "<<: [*a]\n",
                "<<: 3\n",
                "? |\n  x\n: y\n",
                "1: a\n",
                "true: b\n",
                "~: c\n",
                "[a]: b\n",
                "&a a: *a\n",
            ]);
            let at = lines.get(rng.below(lines.len().max(1))).map_or(0, |r| r.0);
            b.splice(at..at, s.bytes());
            "complex-key"
        }
        32 => {
            // Empty / whitespace-only / comment-only files.
            b = rng
                .pick(&[
                    "", "\n", "#", "# c\n", "---", "...", " ", "\t", "\u{feff}", "null", "~", "[]",
                    "{}", "3", "x",
                ])
                .as_bytes()
                .to_vec();
            "trivial-file"
        }
        _ => {
            // Replace a scalar value with a value from the pool.
            if let Some(&(s, e)) = lines.get(rng.below(lines.len().max(1))) {
                let l = String::from_utf8_lossy(&b[s..e]).into_owned();
                if let Some((k, _)) = l.split_once(": ") {
                    let v = rng.pick(VALUES).replace('\n', " ");
                    b.splice(s..e, format!("{k}: {v}\n").into_bytes());
                }
            }
            "value-swap"
        }
    };
    files.insert(file.to_string(), b);
    name
}

struct Input {
    seed_name: String,
    target: String,
    reorder: Reorder,
    ops: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
    /// Files to feed `parse_documents` directly.
    mutated: Vec<String>,
}

fn generate(corpus: &Corpus, seed: u64, iter: u64) -> Input {
    let mut rng = Rng::new(seed, iter);
    let s = rng.pick(&corpus.seeds).clone();
    let target = rng.pick(&s.targets).clone();
    let mut files = s.files;
    let kfile = files
        .keys()
        .find(|p| {
            let (dir, f) = p.rsplit_once('/').unwrap_or(("", p));
            dir == target && (f.starts_with("kustomization") || f == "Kustomization")
        })
        .cloned()
        .unwrap_or_else(|| {
            if target.is_empty() {
                "kustomization.yaml".into()
            } else {
                format!("{target}/kustomization.yaml")
            }
        });
    let n = 1 + rng.below(6);
    let mut ops = Vec::new();
    let mut mutated = Vec::new();
    for _ in 0..n {
        let file = if rng.chance(2) {
            kfile.clone()
        } else {
            let keys: Vec<&String> = files.keys().collect();
            (*rng.pick(&keys)).clone()
        };
        let op = mutate(&mut rng, corpus, &mut files, &file, &target);
        ops.push(format!("{op} {file}"));
        if !mutated.contains(&file) {
            mutated.push(file);
        }
    }
    let reorder = if rng.chance(2) {
        Reorder::Legacy
    } else {
        Reorder::None
    };
    Input {
        seed_name: s.name,
        target,
        reorder,
        ops,
        files,
        mutated,
    }
}

// ---------------------------------------------------------------------------------------
// Running one input.

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let bt = std::backtrace::Backtrace::force_capture();
        let thread = std::thread::current();
        let msg = format!(
            "thread '{}' panicked at {}\n{bt}",
            thread.name().unwrap_or("<unnamed>"),
            info
        );
        if let Ok(mut v) = PANICS.lock() {
            v.push(msg);
        }
    }));
}

/// Runs the input; `Err(report)` if anything panicked.
fn run(input: &Input) -> Result<(), String> {
    let mut failures = Vec::new();
    for f in &input.mutated {
        let bytes = &input.files[f];
        let text = String::from_utf8_lossy(bytes);
        if catch_unwind(|| {
            let _ = renderer::yaml::parse_documents(&text);
        })
        .is_err()
        {
            failures.push(format!("parse_documents({f})"));
        }
    }
    let src = MemSource::new(input.files.clone());
    let opts = RenderOptions {
        reorder: input.reorder,
    };
    if catch_unwind(AssertUnwindSafe(|| {
        if let Ok(r) = renderer::render(&src, &input.target, &opts) {
            let _ = r.to_yaml();
            for o in &r.objects {
                let _ = o.provenance().len();
            }
        }
    }))
    .is_err()
    {
        failures.push(format!("render({:?})", input.target));
    }
    let panics = std::mem::take(&mut *PANICS.lock().unwrap_or_else(|e| e.into_inner()));
    if failures.is_empty() && panics.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{}", failures.join(", "), panics.join("\n")))
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|x| x.parse().ok()))
        })
        .unwrap_or(0)
}

fn describe(input: &Input, seed: u64, iter: u64) -> String {
    let mut s = format!(
        "seed {seed} iteration {iter}\nfrom: {}\ntarget: {:?}\nreorder: {:?}\nmutations:\n",
        input.seed_name, input.target, input.reorder
    );
    for op in &input.ops {
        s.push_str(&format!("  {op}\n"));
    }
    s.push_str("files:\n");
    for (p, b) in &input.files {
        s.push_str(&format!("  {p} ({} bytes)\n", b.len()));
    }
    s
}

fn save(out: &Path, kind: &str, seed: u64, iter: u64, input: &Input, report: &str) -> PathBuf {
    let dir = out.join(format!("{kind}-{seed}-{iter}"));
    let tree = dir.join("tree");
    for (p, b) in &input.files {
        let path = tree.join(p);
        let _ = std::fs::create_dir_all(path.parent().unwrap());
        let _ = std::fs::write(path, b);
    }
    let _ = std::fs::write(
        dir.join("README.txt"),
        format!("{kind}\n{}\n{report}\n", describe(input, seed, iter)),
    );
    eprintln!("=== FINDING ({kind}) saved to {}", dir.display());
    eprintln!("{}", describe(input, seed, iter));
    for p in &input.mutated {
        let b = &input.files[p];
        let shown = String::from_utf8_lossy(&b[..b.len().min(2_000)]).into_owned();
        eprintln!("--- {p}:\n{shown}\n");
    }
    eprintln!("{}", &report[..report.len().min(6_000)]);
    dir
}

/// The signature of a panic report: the first "panicked at" location.
fn signature(report: &str) -> String {
    report
        .lines()
        .find(|l| l.contains("panicked at"))
        .map(|l| {
            l.split("panicked at")
                .nth(1)
                .unwrap_or(l)
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| report.lines().next().unwrap_or("").to_string())
}

fn worker(seed: u64, start: u64, deadline: Instant, out: &Path) {
    install_hook();
    let corpus = load_corpus();
    let mut stdout = std::io::stdout().lock();
    let mut seen = HashSet::new();
    let mut iter = start;
    let mut slowest = (Duration::ZERO, start);
    while Instant::now() < deadline {
        let _ = writeln!(stdout, "I {iter}");
        let _ = stdout.flush();
        let input = generate(&corpus, seed, iter);
        let t = Instant::now();
        let result = run(&input);
        let took = t.elapsed();
        if took > slowest.0 {
            slowest = (took, iter);
        }
        if let Err(report) = result
            && seen.insert(signature(&report))
        {
            save(out, "panic", seed, iter, &input, &report);
            let _ = writeln!(stdout, "F panic {iter}");
        }
        if took > SLOW {
            save(out, "slow", seed, iter, &input, &format!("took {took:?}"));
            let _ = writeln!(stdout, "F slow {iter}");
        }
        let rss = rss_bytes();
        if rss > MAX_RSS {
            save(
                out,
                "memory",
                seed,
                iter,
                &input,
                &format!("resident {rss} bytes after the iteration"),
            );
            let _ = writeln!(stdout, "F memory {iter}");
        }
        iter += 1;
    }
    let _ = writeln!(
        stdout,
        "D {iter} {} {} {}",
        slowest.0.as_micros(),
        slowest.1,
        peak_rss_kb()
    );
}

// ---------------------------------------------------------------------------------------
// The supervisor.

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = arg(&args, "--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let out = arg(&args, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-findings"));
    if let Some(i) = args.iter().position(|a| a == "--replay") {
        let s: u64 = args[i + 1].parse().expect("seed");
        let it: u64 = args[i + 2].parse().expect("iteration");
        let corpus = load_corpus();
        let input = generate(&corpus, s, it);
        install_hook();
        let t = Instant::now();
        let r = run(&input);
        let dir = save(
            &out,
            "replay",
            s,
            it,
            &input,
            &format!("{r:?} in {:?}", t.elapsed()),
        );
        println!("{}", dir.display());
        return;
    }
    if args.iter().any(|a| a == "--worker") {
        let start: u64 = arg(&args, "--start")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let secs: f64 = arg(&args, "--for")
            .and_then(|s| s.parse().ok())
            .unwrap_or(60.0);
        worker(
            seed,
            start,
            Instant::now() + Duration::from_secs_f64(secs),
            &out,
        );
        return;
    }
    let seconds: f64 = arg(&args, "--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let corpus = load_corpus();
    eprintln!(
        "fuzz: seed {seed}, {seconds} s, {} seeds ({} files, {} lines), findings -> {}",
        corpus.seeds.len(),
        corpus.files.len(),
        corpus.lines.len(),
        out.display()
    );
    let exe = std::env::current_exe().expect("current exe");
    let began = Instant::now();
    let end = began + Duration::from_secs_f64(seconds);
    let mut next = 0u64;
    let mut findings: Vec<String> = Vec::new();
    let mut slowest = (0u128, 0u64);
    let mut peak_kb = 0u64;
    let mut restarts = 0;
    let mut last_report = Instant::now();
    while Instant::now() < end {
        let left = (end - Instant::now()).as_secs_f64();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {ULIMIT_KB}; exec \"$0\" \"$@\""))
            .arg(&exe)
            .args([
                "--worker",
                "--seed",
                &seed.to_string(),
                "--start",
                &next.to_string(),
            ])
            .args(["--for", &format!("{left:.3}"), "--out"])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let err_thread = std::thread::spawn(move || {
            let mut tail = Vec::new();
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{l}");
                tail.push(l);
                if tail.len() > 200 {
                    tail.remove(0);
                }
            }
            tail.join("\n")
        });
        let mut current = next;
        let mut done = false;
        let mut hung = false;
        loop {
            match rx.recv_timeout(HANG) {
                Ok(l) => {
                    let mut w = l.split_whitespace();
                    match w.next() {
                        Some("I") => {
                            current = w.next().and_then(|x| x.parse().ok()).unwrap_or(current)
                        }
                        Some("F") => findings.push(l[2..].to_string()),
                        Some("D") => {
                            let v: Vec<u64> = w.filter_map(|x| x.parse().ok()).collect();
                            if v.len() == 4 {
                                next = v[0];
                                if v[1] as u128 > slowest.0 {
                                    slowest = (v[1] as u128, v[2]);
                                }
                                peak_kb = peak_kb.max(v[3]);
                            }
                            done = true;
                        }
                        _ => {}
                    }
                    if last_report.elapsed() > Duration::from_secs(30) {
                        last_report = Instant::now();
                        let secs = began.elapsed().as_secs_f64();
                        eprintln!(
                            "fuzz: {:.0} s, {} iterations ({:.0}/s), {} findings",
                            secs,
                            current,
                            current as f64 / secs,
                            findings.len()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    hung = true;
                    let _ = child.kill();
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait().expect("wait worker");
        let tail = err_thread.join().unwrap_or_default();
        if done && status.success() {
            continue;
        }
        // The worker died (abort, OOM, signal) or hung on `current`: regenerate it.
        restarts += 1;
        let kind = if hung { "hang" } else { "crash" };
        let input = generate(&corpus, seed, current);
        let report = format!("worker {status}; last stderr:\n{tail}");
        save(&out, kind, seed, current, &input, &report);
        findings.push(format!("{kind} {current}"));
        next = current + 1;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "fuzz done: seed {seed}, {secs:.1} s, {next} iterations, {:.1} iterations/s, {} findings {:?}, {restarts} worker restarts, slowest iteration {} ({:.1} ms), worker peak RSS {} MiB",
        next as f64 / secs,
        findings.len(),
        findings,
        slowest.1,
        slowest.0 as f64 / 1000.0,
        peak_kb / 1024
    );
}
