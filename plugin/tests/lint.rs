//! `kubectl gitops lint`, run as users run it, on the seed tree and on a fixture repository
//! with one case of every rule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-gitops");
/// Values in the fixture that must never be printed.
const SECRET_VALUES: &[&str] = &[
    "Plaintext-Never-Print-Me",
    "literal-never-print-me",
    "AKIAZ7Q3NEVERPRINT01",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint-repo")
}

fn lint(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("lint")
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("KUBECONFIG")
        .env("HOME", dir)
        .output()
        .expect("run kubectl-gitops")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fixture as a Git repository on `main`, with a `production` branch holding the prod
/// overlay with other content (an environment kept on a branch).
fn fixture_repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), tmp.path());
    let d = tmp.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "fixture"]);
    git(d, &["checkout", "-q", "-b", "production"]);
    std::fs::write(
        d.join("overlays/prod/widget.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gadget\n",
    )
    .unwrap();
    git(d, &["commit", "-q", "-am", "prod differs"]);
    git(d, &["checkout", "-q", "main"]);
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn findings(out: &Output) -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    doc["findings"].as_array().unwrap().clone()
}

#[test]
fn seed_tree_has_no_error_and_exits_0() {
    let out = lint(&repo_root(), &["examples/catalog-api", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let errors: Vec<Value> = findings(&out)
        .into_iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert_eq!(errors, Vec::<Value>::new());
    let text = lint(&repo_root().join("examples/catalog-api"), &[]);
    assert_eq!(text.status.code(), Some(0));
    assert!(stdout(&text).contains("0 error(s)"), "{}", stdout(&text));
}

#[test]
fn every_rule_is_found_with_its_location_and_fix() {
    let repo = fixture_repo();
    let out = lint(repo.path(), &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "errors exit 1");
    let found = findings(&out);
    let rules: BTreeSet<&str> = found.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    let every: BTreeSet<&str> = lint::RULES.iter().map(|r| r.id).collect();
    assert_eq!(rules, every, "{found:#?}");
    for f in &found {
        let file = f["file"].as_str().unwrap();
        assert!(repo.path().join(file).is_file(), "{f}");
        assert!(f["line"].as_u64().unwrap() >= 1, "{f}");
        assert!(!f["fix"].as_str().unwrap().is_empty(), "{f}");
        assert!(
            ["error", "warning"].contains(&f["severity"].as_str().unwrap()),
            "{f}"
        );
    }
    let at = |rule: &str| -> BTreeSet<String> {
        found
            .iter()
            .filter(|f| f["rule"] == rule)
            .map(|f| format!("{}:{}", f["file"].as_str().unwrap(), f["line"]))
            .collect()
    };
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        at("plaintext-secrets"),
        set(&[
            "overlays/prod/kustomization.yaml:15",
            "overlays/prod/secret.yaml:6"
        ])
    );
    assert_eq!(at("credentials"), set(&["overlays/prod/configmap.yaml:7"]));
    assert_eq!(at("mutable-images"), set(&["overlays/prod/worker.yaml:17"]));
    assert_eq!(
        at("schema-unknown-field"),
        set(&["overlays/prod/worker.yaml:18"])
    );
    assert_eq!(at("schema-type"), set(&["overlays/prod/worker.yaml:6"]));
    assert_eq!(at("schema-required"), set(&["base/service.yaml:9"]));
    assert_eq!(
        at("schema-unknown-kind"),
        set(&["overlays/prod/widget.yaml:2"])
    );
    assert_eq!(
        at("cluster-scoped"),
        set(&["overlays/prod/clusterrole.yaml:2"])
    );
    assert_eq!(at("hpa-replicas"), set(&["base/deployment.yaml:6"]));
    assert_eq!(
        at("copied-yaml"),
        set(&["overlays/staging/deployment.yaml:1"])
    );
    assert_eq!(
        at("codeowners"),
        set(&["overlays/prod/kustomization.yaml:1"])
    );
    assert_eq!(
        at("branch-per-environment"),
        set(&["overlays/prod/kustomization.yaml:1"])
    );
    assert_eq!(at("render-error").len(), 1);
    assert!(
        at("render-error")
            .iter()
            .next()
            .unwrap()
            .starts_with("overlays/broken/kustomization.yaml:")
    );
}

#[test]
fn secret_values_are_never_printed() {
    let repo = fixture_repo();
    for format in ["text", "json", "sarif"] {
        let out = lint(repo.path(), &["-o", format, "-v"]);
        let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        for value in SECRET_VALUES {
            assert!(!all.contains(value), "{format} output prints {value}");
        }
        assert!(all.contains("plaintext-secrets"), "{format}");
    }
}

#[test]
fn text_is_grouped_by_file_and_colourless_when_piped() {
    let repo = fixture_repo();
    let out = lint(repo.path(), &[]);
    let text = stdout(&out);
    assert!(!text.contains('\x1b'), "{text}");
    let worker = text
        .find("overlays/prod/worker.yaml\n")
        .expect("a file heading");
    let rest = &text[worker..];
    assert!(rest.contains("  17:"), "{rest}");
    assert!(rest.contains("fix: "), "{rest}");
    assert_eq!(text.matches("overlays/prod/worker.yaml\n").count(), 1);
    let coloured = Command::new(BIN)
        .args(["lint", "--color", "always"])
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!stdout(&coloured).contains('\x1b'), "NO_COLOR wins");
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let schema: Value = serde_json::from_str(include_str!("testdata/sarif-schema-2.1.0.json"))
        .expect("schema parses");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let repo = fixture_repo();
    let out = lint(repo.path(), &["-o", "sarif"]);
    assert_eq!(out.status.code(), Some(1));
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert!(results.len() >= lint::RULES.len());
    // A mistake the validator must catch, so the check above can fail.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn fail_on_and_paths() {
    let repo = fixture_repo();
    // The staging overlay has only warnings: 0 by default, 1 with --fail-on warning.
    let staging = lint(repo.path(), &["--path", "overlays/staging"]);
    assert_eq!(staging.status.code(), Some(0), "{}", stdout(&staging));
    assert!(stdout(&staging).contains("warning"), "{}", stdout(&staging));
    let strict = lint(
        repo.path(),
        &["--path", "overlays/staging", "--fail-on", "warning"],
    );
    assert_eq!(strict.status.code(), Some(1));
    // lint itself failing is 2, with the reason.
    for args in [
        &["--path", "no/such/dir"][..],
        &["--path", "../.."][..],
        &["--path", "base/deployment.yaml"][..],
    ] {
        let out = lint(repo.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error:"),
            "{args:?}"
        );
    }
}

#[test]
fn repository_config_and_inline_ignores() {
    let repo = fixture_repo();
    let d = repo.path();
    std::fs::create_dir_all(d.join(".kubectl-gitops")).unwrap();
    std::fs::write(
        d.join(".kubectl-gitops/lint.yaml"),
        "rules:\n  copied-yaml: off\n  resource-limits: error\nexceptions:\n- rule: privileged\n  paths: [overlays/prod/worker.yaml]\n  reason: a node agent\n",
    )
    .unwrap();
    let worker = std::fs::read_to_string(d.join("overlays/prod/worker.yaml")).unwrap();
    std::fs::write(
        d.join("overlays/prod/worker.yaml"),
        worker.replace(
            "image: busybox:latest",
            "image: busybox:latest # lint:ignore mutable-images pinned by the release job",
        ),
    )
    .unwrap();
    let found = findings(&lint(d, &["-o", "json"]));
    let rules: BTreeSet<&str> = found.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    for gone in ["copied-yaml", "privileged", "mutable-images"] {
        assert!(!rules.contains(gone), "{gone} still reported");
    }
    assert!(
        found
            .iter()
            .any(|f| f["rule"] == "resource-limits" && f["severity"] == "error")
    );
    std::fs::write(
        d.join(".kubectl-gitops/lint.yaml"),
        "rules:\n  typo-rule: off\n",
    )
    .unwrap();
    let bad = lint(d, &[]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains(".kubectl-gitops/lint.yaml:2"), "{err}");
}

#[test]
fn pre_commit_hook_runs_lint() {
    let text = std::fs::read_to_string(repo_root().join(".pre-commit-hooks.yaml")).unwrap();
    let docs = renderer::yaml::parse_documents(&text).unwrap();
    let hook = &docs[0].value[0];
    assert_eq!(hook["id"], "kubectl-gitops-lint");
    assert_eq!(hook["language"], "system");
    assert_eq!(hook["pass_filenames"], false);
    let entry = hook["entry"].as_str().unwrap();
    let mut words = entry.split_whitespace();
    assert_eq!(words.next(), Some("kubectl-gitops"));
    let seed = Command::new(BIN)
        .args(words.clone())
        .current_dir(repo_root().join("examples/catalog-api"))
        .output()
        .unwrap();
    assert_eq!(seed.status.code(), Some(0), "{}", stdout(&seed));
    let repo = fixture_repo();
    let bad = Command::new(BIN)
        .args(words)
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(1),
        "the hook blocks a commit with errors"
    );
}
