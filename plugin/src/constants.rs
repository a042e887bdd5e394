//! Every name the plugin shows or looks up, so renames happen in one place.

/// The executable kubectl discovers on `PATH`.
pub const BIN_NAME: &str = "kubectl-gitops";
/// How users invoke us; used in usage text and examples.
pub const DISPLAY_NAME: &str = "kubectl gitops";
/// kubectl (>= 1.26) runs this executable to complete `kubectl gitops <TAB>`.
pub const COMPLETE_BIN_NAME: &str = "kubectl_complete-gitops";

/// <https://no-color.org>: set and non-empty disables color.
pub const ENV_NO_COLOR: &str = "NO_COLOR";
/// kubectl's list of kubeconfig files, merged first-wins.
pub const ENV_KUBECONFIG: &str = "KUBECONFIG";
/// Set by build.rs (or by packagers building without a .git directory).
pub const ENV_GIT_COMMIT: &str = "GITOPS_GIT_COMMIT";

/// Where kubectl looks when neither `--kubeconfig` nor `KUBECONFIG` is set, relative to `$HOME`.
pub const DEFAULT_KUBECONFIG: &str = ".kube/config";
/// kubectl's namespace when neither `-n` nor the context names one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Files that make a directory a kustomization, in kustomize's lookup order.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The agent's flag naming the Git revision it follows; `promote` and `rollback` edit it.
pub const AGENT_REVISION_ARG: &str = "--revision";
/// The agent's flag naming the one older commit it may move back to; `rollback` writes it
/// next to [`AGENT_REVISION_ARG`], `promote` removes it.
pub const AGENT_ALLOW_ROLLBACK_ARG: &str = "--allow-rollback-to";
/// The agent's flag naming the overlay it renders; finds which manifest is whose agent.
pub const AGENT_PATH_ARG: &str = "--path";
/// Branches `promote --hotfix` creates from a production tag.
pub const HOTFIX_BRANCH_PREFIX: &str = "hotfix/";
/// Commits and tags the plugin makes when Git has no user configured.
pub const FALLBACK_SIGNATURE: (&str, &str) = ("kubectl-gitops", "kubectl-gitops@localhost");

/// How many objects `diff` compares at once (each a GET and a server-side dry-run apply).
pub const DIFF_CONCURRENCY: usize = 16;

/// Where `sops` (and so the plugin) reads age private keys from: the keys themselves, or a
/// file of them.
pub const SOPS_AGE_KEY_ENV: &str = "SOPS_AGE_KEY";
pub const SOPS_AGE_KEY_FILE_ENV: &str = "SOPS_AGE_KEY_FILE";
/// How many namespaces `status -A` reads at once when it may not list ConfigMaps cluster-wide.
pub const FLEET_NAMESPACE_CONCURRENCY: usize = 16;
/// How often `status --watch` reads again.
pub const STATUS_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
