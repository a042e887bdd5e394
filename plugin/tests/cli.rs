//! The built `kubectl-gitops` binary, run as users run it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-gitops");
const COMPLETE_BIN: &str = env!("CARGO_BIN_EXE_kubectl_complete-gitops");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn prod_overlay() -> PathBuf {
    repo_root().join("examples/catalog-api/overlays/prod")
}

/// Runs the plugin with an environment that cannot leak the developer's kubeconfig or
/// color preferences into the result.
fn gitops_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("KUBECONFIG")
        .env("HOME", dir)
        .output()
        .expect("run kubectl-gitops")
}

fn gitops(args: &[&str]) -> Output {
    gitops_in(&repo_root(), args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// `kubectl kustomize`, the oracle; `None` when kubectl is not installed.
fn kubectl_kustomize(dir: &Path) -> Option<String> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        stderr(&out)
    );
    Some(stdout(&out))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A Git repository holding a copy of examples/catalog-api, committed and tagged `v1`.
fn catalog_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/catalog-api"), dir.path());
    let repo = git2::Repository::init(dir.path()).unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    let commit = repo
        .commit(Some("HEAD"), &sig, &sig, "catalog", &tree, &[])
        .unwrap();
    let object = repo.find_object(commit, None).unwrap();
    repo.tag_lightweight("v1", &object, false).unwrap();
    dir
}

#[test]
fn render_is_byte_identical_to_kubectl_kustomize() {
    let out = gitops(&["render", "examples/catalog-api/overlays/prod"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = stdout(&out);
    // The snapshot was produced by `kubectl kustomize` (v5.5.0) and keeps the check alive
    // on machines without kubectl.
    insta::assert_snapshot!("render_prod", ours);
    if let Some(oracle) = kubectl_kustomize(&prod_overlay()) {
        assert_eq!(ours, oracle);
    }
}

#[test]
fn render_from_another_directory_and_by_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = gitops_in(dir.path(), &["render", prod_overlay().to_str().unwrap()]);
    let relative = gitops(&["render", "examples/catalog-api/overlays/prod"]);
    assert!(absolute.status.success(), "{}", stderr(&absolute));
    assert_eq!(stdout(&absolute), stdout(&relative));
}

#[test]
fn render_revision_ignores_the_dirty_working_tree() {
    let repo = catalog_repo();
    let patch = repo.path().join("overlays/prod/deployment-prod.yaml");
    let committed = fs::read_to_string(&patch).unwrap();
    fs::write(&patch, committed.replace("replicas: 3", "replicas: 7")).unwrap();

    let dirty = gitops_in(repo.path(), &["render", "overlays/prod"]);
    let at_tag = gitops_in(
        repo.path(),
        &["render", "overlays/prod", "--revision", "v1"],
    );
    let at_head = gitops_in(
        repo.path(),
        &["render", "overlays/prod", "--revision", "HEAD"],
    );
    for out in [&dirty, &at_tag, &at_head] {
        assert!(out.status.success(), "{}", stderr(out));
    }
    assert!(stdout(&dirty).contains("replicas: 7"));
    assert!(stdout(&at_tag).contains("replicas: 3"));
    assert!(!stdout(&at_tag).contains("replicas: 7"));
    assert_eq!(stdout(&at_tag), stdout(&at_head));
    // Apart from the edited field, the committed revision renders like the real overlay.
    assert_eq!(
        stdout(&dirty).replace("replicas: 7", "replicas: 3"),
        stdout(&at_tag)
    );
    assert_eq!(
        stdout(&at_tag),
        stdout(&gitops(&["render", "examples/catalog-api/overlays/prod"]))
    );
    // The working copy was not touched by reading the revision.
    assert!(fs::read_to_string(&patch).unwrap().contains("replicas: 7"));
}

#[test]
fn render_revision_does_not_see_uncommitted_files() {
    let repo = catalog_repo();
    let k = repo.path().join("overlays/prod/kustomization.yaml");
    let text = fs::read_to_string(&k).unwrap();
    fs::write(
        &k,
        text.replace("resources:\n", "resources:\n- extra.yaml\n"),
    )
    .unwrap();
    fs::write(
        repo.path().join("overlays/prod/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n",
    )
    .unwrap();
    let dirty = gitops_in(repo.path(), &["render", "overlays/prod"]);
    let committed = gitops_in(
        repo.path(),
        &["render", "overlays/prod", "--revision", "v1"],
    );
    assert!(stdout(&dirty).contains("name: extra"), "{}", stderr(&dirty));
    assert!(
        !stdout(&committed).contains("name: extra"),
        "{}",
        stderr(&committed)
    );
}

#[test]
fn unknown_revision_is_an_error_naming_it() {
    let repo = catalog_repo();
    let out = gitops_in(
        repo.path(),
        &["render", "overlays/prod", "--revision", "v9"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("\"v9\""), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn render_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("kustomization.yaml"),
        "resources:\n- deployment.yaml\n- missing.yaml\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("deployment.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
    )
    .unwrap();
    let out = gitops_in(dir.path(), &["render", "."]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("kustomization.yaml"), "{err}");
    assert!(err.contains("missing.yaml"), "{err}");

    fs::write(dir.path().join("deployment.yaml"), "kind: [unclosed\n").unwrap();
    fs::write(
        dir.path().join("kustomization.yaml"),
        "resources:\n- deployment.yaml\n",
    )
    .unwrap();
    let err = stderr(&gitops_in(dir.path(), &["render", "."]));
    assert!(err.contains("deployment.yaml:"), "{err}");
}

#[test]
fn missing_directory_is_exit_code_2() {
    let out = gitops(&["render", "examples/does-not-exist"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("examples/does-not-exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_are_exit_code_2() {
    let out = gitops(&["render"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Usage: kubectl gitops render"),
        "{}",
        stderr(&out)
    );
    assert_eq!(gitops(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(
        gitops(&["render", ".", "-o", "toml"]).status.code(),
        Some(2)
    );
}

#[test]
fn help_and_version_are_exit_code_0() {
    assert_eq!(gitops(&["--help"]).status.code(), Some(0));
    let out = gitops(&["version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("kubectl-gitops {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.ends_with('\n'));
}

#[test]
fn color_is_forced_by_flag_and_killed_by_no_color() {
    let colored = gitops(&["--color", "always", "render", "nope"]);
    assert!(stderr(&colored).contains('\x1b'), "{}", stderr(&colored));
    let plain = Command::new(BIN)
        .args(["--color", "always", "render", "nope"])
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(2));
    assert!(!stderr(&plain).contains('\x1b'), "{}", stderr(&plain));
    assert!(stderr(&plain).starts_with("error: "));
    // Piped output is never colored by default.
    assert!(!stderr(&gitops(&["render", "nope"])).contains('\x1b'));
}

#[test]
fn quiet_keeps_results_and_verbose_explains() {
    let quiet = gitops(&["render", "examples/catalog-api/overlays/prod", "-q"]);
    assert!(stdout(&quiet).contains("kind: Deployment"));
    assert!(quiet.stderr.is_empty(), "{}", stderr(&quiet));
    let verbose = gitops(&["render", "examples/catalog-api/overlays/prod", "-v"]);
    assert!(
        stderr(&verbose).contains("rendered 4 objects"),
        "{}",
        stderr(&verbose)
    );
    assert_eq!(stdout(&verbose), stdout(&quiet));
}

#[test]
fn render_json_is_a_list() {
    let out = gitops(&["render", "examples/catalog-api/overlays/prod", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["ServiceAccount", "ConfigMap", "Service", "Deployment"]
    );
}

#[test]
fn reorder_none_keeps_input_order() {
    let out = gitops(&[
        "render",
        "examples/catalog-api/overlays/prod",
        "--reorder",
        "none",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    // base/kustomization.yaml lists deployment, service, serviceaccount; generators come last.
    assert_eq!(
        kinds,
        ["Deployment", "Service", "ServiceAccount", "ConfigMap"]
    );
}

#[test]
fn show_origins_names_patches_and_transformers() {
    let out = gitops(&[
        "render",
        "examples/catalog-api/overlays/prod",
        "--show-origins",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("# Source: examples/catalog-api/base/deployment.yaml:"),
        "{text}"
    );
    assert!(
        text.contains("# spec.replicas: examples/catalog-api/overlays/prod/deployment-prod.yaml:"),
        "{text}"
    );
    // Without the comments, it is the plain rendering.
    let stripped: String = text
        .lines()
        .filter(|l| !l.starts_with("# "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        stripped,
        stdout(&gitops(&["render", "examples/catalog-api/overlays/prod"]))
    );
    assert_eq!(
        gitops(&["render", ".", "--show-origins", "-o", "json"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn secrets_are_redacted_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("kustomization.yaml"),
        "secretGenerator:\n- name: db\n  literals:\n  - password=hunter2\n",
    )
    .unwrap();
    let redacted = gitops_in(dir.path(), &["render", "."]);
    assert!(redacted.status.success(), "{}", stderr(&redacted));
    let text = stdout(&redacted);
    assert!(text.contains("password: '*** (7 bytes)'"), "{text}");
    assert!(!text.contains("aHVudGVyMg=="), "{text}");
    let shown = stdout(&gitops_in(dir.path(), &["render", ".", "--show-secrets"]));
    assert!(shown.contains("password: aHVudGVyMg=="), "{shown}");
    if let Some(oracle) = kubectl_kustomize(dir.path()) {
        assert_eq!(shown, oracle);
    }
}

#[test]
fn completion_scripts_for_each_shell() {
    let bash = stdout(&gitops(&["completion", "bash"]));
    assert!(bash.contains("_kubectl__gitops()"), "{bash}");
    assert!(bash.contains("render"));
    let zsh = stdout(&gitops(&["completion", "zsh"]));
    assert!(zsh.starts_with("#compdef kubectl-gitops"), "{zsh}");
    let fish = stdout(&gitops(&["completion", "fish"]));
    assert!(fish.contains("complete -c kubectl-gitops"), "{fish}");
}

/// Drives the generated bash function the way bash's completion machinery does.
fn bash_complete(words: &[&str]) -> Option<String> {
    let script = stdout(&gitops(&["completion", "bash"]));
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    // bash calls the function with the command, the current word and the previous word.
    let (current, previous) = (words[words.len() - 1], words[words.len() - 2]);
    let program = format!(
        "{script}\nCOMP_WORDS=({}); COMP_CWORD={}; _kubectl__gitops {} '{current}' '{previous}'; \
         echo \"${{COMPREPLY[*]}}\"",
        quoted.join(" "),
        words.len() - 1,
        words[0],
    );
    let out = Command::new("bash").arg("-c").arg(program).output().ok()?;
    Some(stdout(&out).trim().to_string())
}

#[test]
fn bash_completion_reaches_subcommand_flags() {
    let Some(values) = bash_complete(&["kubectl-gitops", "render", "--reorder", ""]) else {
        return; // no bash on this machine
    };
    assert_eq!(values, "legacy none");
    let flags = bash_complete(&["kubectl-gitops", "render", "--rev"]).unwrap();
    assert_eq!(flags, "--revision");
}

#[test]
fn kubectl_plugin_completion_speaks_cobra() {
    let out = Command::new(COMPLETE_BIN)
        .args(["render", "x", "--output", ""])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "yaml\njson\n:4\n");
    let out = Command::new(COMPLETE_BIN).arg("").output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("render\tRender a Kustomize overlay"),
        "{text}"
    );
    assert!(text.ends_with(":4\n"), "{text}");
}

#[test]
fn subcommand_help_snapshots() {
    for sub in ["render", "version", "completion"] {
        let out = gitops(&[sub, "--help"]);
        assert!(out.status.success());
        insta::assert_snapshot!(format!("help_{sub}"), stdout(&out));
    }
}

#[test]
fn release_help_snapshots() {
    for sub in ["promote", "rollback", "history"] {
        let out = gitops(&[sub, "--help"]);
        assert!(out.status.success(), "{}", stderr(&out));
        insta::assert_snapshot!(format!("help_{sub}"), stdout(&out));
    }
}

/// The release commands check what they can before reaching for a cluster.
#[test]
fn release_usage_errors_are_exit_code_2() {
    let dir = catalog_repo();
    for (args, says) in [
        (&["promote", "--tag", "v1.5.0"][..], "--from"),
        (
            &["promote", "--from", "s", "--to", "p", "--tag", "1.5"][..],
            "semver",
        ),
        (&["rollback", "--to", "latest"][..], "semver"),
        (
            &[
                "promote",
                "--hotfix",
                "--from-tag",
                "v1.5.0",
                "--tag",
                "v1.6.0",
            ][..],
            "1.5.<higher patch>",
        ),
        (
            &[
                "promote",
                "--hotfix",
                "--from-tag",
                "v1.5.0",
                "--tag",
                "v1.5.1",
            ][..],
            "tag v1.5.0 is not in this clone",
        ),
    ] {
        let out = gitops_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn hotfix_dry_run_plans_the_branch_and_creates_nothing() {
    let dir = catalog_repo();
    let repo = git2::Repository::open(dir.path()).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    repo.tag("v1.5.0", head.as_object(), &sig, "release", false)
        .unwrap();
    let out = gitops_in(
        dir.path(),
        &[
            "promote",
            "--hotfix",
            "--from-tag",
            "v1.5.0",
            "--tag",
            "v1.5.1",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "will create branch hotfix/v1.5.1 at v1.5.0 ({})",
            &head.id().to_string()[..12]
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        repo.find_branch("hotfix/v1.5.1", git2::BranchType::Local)
            .is_err()
    );
}
