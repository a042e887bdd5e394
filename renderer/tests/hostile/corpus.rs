//! The hostile repository corpus: trees that anyone who can push might commit, each of
//! which must fail with a clear error naming a file, never panic, hang or exhaust memory.
//! Shared by the renderer's test (`tests/hostile.rs`) and the agent's memory measurement.

#![allow(dead_code)]

use std::path::Path;

/// One input: files to write, symlinks to make, and a word the error must contain.
pub struct Case {
    pub name: &'static str,
    pub files: Vec<(String, Vec<u8>)>,
    /// (link path, target)
    pub links: Vec<(&'static str, &'static str)>,
    /// Lower-case text the error message must contain.
    pub expect: &'static str,
}

impl Case {
    fn new(name: &'static str, expect: &'static str) -> Self {
        Case {
            name,
            files: vec![],
            links: vec![],
            expect,
        }
    }
    fn file(mut self, path: &str, body: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.to_string(), body.into()));
        self
    }
    fn link(mut self, path: &'static str, target: &'static str) -> Self {
        self.links.push((path, target));
        self
    }
    /// Writes the tree under `root`.
    pub fn write(&self, root: &Path) {
        for (path, body) in &self.files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        for (path, target) in &self.links {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
        }
    }
}

const K: &str = "kustomization.yaml";

fn kust(resources: &[&str]) -> String {
    format!(
        "resources:\n{}",
        resources
            .iter()
            .map(|r| format!("- {r}\n"))
            .collect::<String>()
    )
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
}

/// A 1 MiB key over many leaves, in a 2 MiB file: every leaf's path repeats the key.
fn long_key_over_leaves() -> Vec<u8> {
    let mut s = cm("c");
    // Flow style: block keys are capped at 1024 characters by YAML itself.
    s.push_str(&format!("spec: {{{}: {{", "k".repeat(1 << 20)));
    let mut i = 0;
    while s.len() < (2 << 20) - 16 {
        s.push_str(&format!("a{i}: 1, "));
        i += 1;
    }
    s.push_str("z: 1}}\n");
    s.into_bytes()
}

fn billion_laughs() -> String {
    let mut s =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\na0: &a0 [lol]\n");
    for l in 1..12 {
        s.push_str(&format!(
            "a{l}: &a{l} [{}]\n",
            vec![format!("*a{}", l - 1); 9].join(", ")
        ));
    }
    s
}

/// Ten levels, each with two kustomizations that both include the next level under
/// different prefixes: 2^n builds of the same files.
fn diamond(levels: usize) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(K.to_string(), kust(&["l0a", "l0b"]).into_bytes())];
    for l in 0..levels {
        for side in ["a", "b"] {
            let body = if l + 1 == levels {
                format!("namePrefix: {side}-\nresources:\n- cm.yaml\n")
            } else {
                format!(
                    "namePrefix: {side}-\nresources:\n- ../l{}a\n- ../l{}b\n",
                    l + 1,
                    l + 1
                )
            };
            files.push((format!("l{l}{side}/{K}"), body.into_bytes()));
            files.push((format!("l{l}{side}/cm.yaml"), cm("c").into_bytes()));
        }
    }
    files
}

pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::new("long-key-over-many-leaves", "key")
            .file(K, kust(&["big.yaml"]))
            .file("big.yaml", long_key_over_leaves()),
        Case::new("flow-key-1mib", "key")
            .file(K, kust(&["big.yaml"]))
            .file("big.yaml", format!("{}data: {{{}: v}}\n", cm("c"), "k".repeat(1 << 20))),
        Case::new("symlinks-to-dot-fan-out", "cycle")
            .file(K, kust(&["a", "b"]))
            .link("a", ".")
            .link("b", "."),
        Case::new("symlink-to-parent", "cycle")
            .file(K, kust(&["sub"]))
            .file(&format!("sub/{K}"), kust(&["up"]))
            .link("sub/up", ".."),
        Case::new("self-reference", "cycle").file(K, kust(&["."])),
        Case::new("mutual-reference", "cycle")
            .file(K, kust(&["a"]))
            .file(&format!("a/{K}"), kust(&["../b"]))
            .file(&format!("b/{K}"), kust(&["../a"])),
        Case::new("symlink-loop", "no such file")
            .file(K, kust(&["x/cm.yaml"]))
            .link("x", "y")
            .link("y", "x"),
        Case::new("symlink-absolute", "no such file")
            .file(K, kust(&["passwd"]))
            .link("passwd", "/etc/passwd"),
        Case::new("symlink-climbs-out", "no such file")
            .file(K, kust(&["up/etc/passwd"]))
            .link("up", "../../../../../../.."),
        Case::new("path-climbs-out", "outside").file(K, kust(&["../../../../etc/passwd"])),
        Case::new("billion-laughs", "aliasing")
            .file(K, kust(&["bomb.yaml"]))
            .file("bomb.yaml", billion_laughs()),
        Case::new("billion-laughs-in-kustomization", "aliasing").file(
            K,
            billion_laughs().replace("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n", ""),
        ),
        Case::new("deep-flow-nesting", "recursion limit")
            .file(K, kust(&["deep.yaml"]))
            .file(
                "deep.yaml",
                format!("{}data: {}{}\n", cm("c"), "[".repeat(100_000), "]".repeat(100_000)),
            ),
        Case::new("deep-block-nesting", "nested too deeply")
            .file(K, kust(&["deep.yaml"]))
            .file("deep.yaml", {
                let mut s = cm("c");
                for d in 0..2000 {
                    s.push_str(&format!("{}k:\n", " ".repeat(d)));
                }
                s
            }),
        Case::new("huge-resource-blob", "too large")
            .file(K, kust(&["blob.yaml"]))
            .file("blob.yaml", {
                let mut s = cm("c");
                s.push_str(&format!("data:\n  x: {}\n", "y".repeat(20 << 20)));
                s
            }),
        Case::new("huge-generator-file", "too large")
            .file(K, "configMapGenerator:\n- name: g\n  files:\n  - blob.bin\n")
            .file("blob.bin", vec![b'z'; 20 << 20]),
        Case::new("huge-kustomization", "too large").file(K, {
            let mut s = String::from("commonLabels:\n");
            let mut i = 0;
            while s.len() < 20 << 20 {
                s.push_str(&format!("  l{i}: v\n"));
                i += 1;
            }
            s
        }),
        Case::new("too-many-nodes", "more than 100000 nodes")
            .file(K, kust(&["wide.yaml"]))
            .file("wide.yaml", {
                let mut s = cm("c");
                s.push_str("spec: [");
                s.push_str(&"1,".repeat(1_500_000));
                s.push_str("1]\n");
                s
            }),
        Case::new("invalid-utf8-resource", "utf-8")
            .file(K, kust(&["bad.yaml"]))
            .file("bad.yaml", [cm("c").as_bytes(), b"data:\n  x: \xff\xfe\n"].concat()),
        Case::new("invalid-utf8-kustomization", "utf-8").file(K, b"resources:\n- \xc3\x28\n".to_vec()),
        Case::new("duplicate-keys", "already defined")
            .file(K, kust(&["dup.yaml"]))
            .file("dup.yaml", format!("{}data:\n  a: 1\n  a: 2\n", cm("c"))),
        Case::new("control-characters", "control characters")
            .file(K, kust(&["ctl.yaml"]))
            .file("ctl.yaml", format!("{}data:\n  a: \"\u{1b}[2J\u{7}\"\n", cm("c"))),
        Case::new("nul-bytes", "control characters")
            .file(K, kust(&["nul.yaml"]))
            .file("nul.yaml", format!("{}data:\n  a: x\0y\n", cm("c"))),
        Case::new("unterminated-flow", "")
            .file(K, kust(&["u.yaml"]))
            .file("u.yaml", format!("{}data: {{a: [1, 2\n", cm("c"))),
        Case::new("unterminated-quote", "")
            .file(K, kust(&["u.yaml"]))
            .file("u.yaml", format!("{}data:\n  a: \"never closed\n", cm("c"))),
        Case::new("resource-not-a-mapping", "mapping")
            .file(K, kust(&["s.yaml"]))
            .file("s.yaml", "- a\n- b\n"),
        Case::new("kustomization-is-a-directory", "")
            .file("kustomization.yaml/x", "a: b\n"),
        Case::new("missing-resource", "no such file").file(K, kust(&["nope.yaml"])),
        Case::new("remote-resource", "not supported")
            .file(K, kust(&["https://example.com/evil?ref=main"])),
        Case::new("component-cycle", "cycle")
            .file(K, "components:\n- c\n")
            .file(
                &format!("c/{K}"),
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents:\n- ../c\n",
            ),
        Case::new("non-string-key", "not a string")
            .file(K, kust(&["k.yaml"]))
            .file("k.yaml", format!("{}data:\n  1: x\n", cm("c"))),
        Case::new("alias-as-long-key", "key")
            .file(K, kust(&["k.yaml"]))
            .file(
                "k.yaml",
                format!("{}x: &k {}\ndata:\n  *k : v\n", cm("c"), "q".repeat(1 << 20)),
            ),
        Case::new("exec-plugin", "")
            .file(K, "generators:\n- gen.yaml\n")
            .file(
                "gen.yaml",
                "apiVersion: someteam.example.com/v1\nkind: Evil\nmetadata:\n  name: e\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: /bin/sh\n",
            ),
    ];
    // Many files, each under the per-document node limit: the render-wide one stops them.
    let mut wide = Case::new("many-wide-files", "yaml nodes");
    let names: Vec<String> = (0..12).map(|i| format!("w{i}.yaml")).collect();
    wide.files.push((
        K.to_string(),
        kust(&names.iter().map(String::as_str).collect::<Vec<_>>()).into_bytes(),
    ));
    for (i, n) in names.iter().enumerate() {
        let mut s = cm(&format!("c{i}"));
        s.push_str("data: {");
        for j in 0..45_000 {
            s.push_str(&format!("k{j}: v, "));
        }
        s.push_str("z: v}\n");
        wide.files.push((n.clone(), s.into_bytes()));
    }
    v.push(wide);
    let mut d = Case::new("diamond-fan-out", "builds");
    d.files = diamond(22);
    v.push(d);
    let mut deep = Case::new("deep-kustomization-chain", "nested");
    // A chain of 80 nested kustomizations, each in the previous one's directory.
    let mut dir = String::new();
    for _ in 0..80 {
        deep.files
            .push((format!("{dir}{K}"), kust(&["d"]).into_bytes()));
        dir.push_str("d/");
    }
    deep.files
        .push((format!("{dir}{K}"), kust(&["cm.yaml"]).into_bytes()));
    deep.files
        .push((format!("{dir}cm.yaml"), cm("c").into_bytes()));
    v.push(deep);
    v
}
