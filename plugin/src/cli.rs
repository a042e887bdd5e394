//! The command line, as clap derive types. Parsing only: no I/O happens here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

use crate::cluster::kube_context::parse_request_timeout;

const RENDER_EXAMPLES: &str = "\
Examples:
  # Render the prod overlay exactly as `kubectl kustomize` would
  kubectl gitops render examples/catalog-api/overlays/prod

  # Render what was committed at a tag, ignoring uncommitted edits
  kubectl gitops render overlays/prod --revision v1.4.2

  # Show which file each object came from
  kubectl gitops render overlays/prod --show-origins";

const VERSION_EXAMPLES: &str = "\
Examples:
  # Print the plugin version and the commit it was built from
  kubectl gitops version";

const COMPLETION_EXAMPLES: &str = "\
Examples:
  # Load completions for `kubectl-gitops` into the current bash session
  source <(kubectl gitops completion bash)

  # Install zsh completions
  kubectl gitops completion zsh > \"${fpath[1]}/_kubectl-gitops\"

  # Complete `kubectl gitops <TAB>` through kubectl (kubectl >= 1.26):
  # put the kubectl_complete-gitops executable next to kubectl-gitops on PATH";

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-gitops",
    bin_name = "kubectl gitops",
    version,
    about = "Make Git the source of truth for a Kubernetes namespace",
    propagate_version = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a Kustomize overlay from the working tree or from a Git revision
    #[command(after_help = RENDER_EXAMPLES)]
    Render(RenderArgs),
    /// Print the plugin version
    #[command(after_help = VERSION_EXAMPLES)]
    Version(VersionArgs),
    /// Print a shell completion script
    #[command(after_help = COMPLETION_EXAMPLES)]
    Completion(CompletionArgs),
    /// Show what the agent last synced, health, break-glass overrides and failures
    #[command(after_help = crate::commands::status::EXAMPLES)]
    Status(crate::commands::status::StatusArgs),
    /// Explain where a live field's value comes from: Git file:line, commit, owner, verdict
    #[command(after_help = crate::commands::explain::EXAMPLES)]
    Explain(crate::commands::explain::ExplainArgs),
    /// Compare Git with the cluster through a server-side dry-run, and classify each change
    #[command(after_help = crate::commands::diff::EXAMPLES)]
    Diff(crate::commands::diff::DiffArgs),
    /// Diagnose why a commit is not live: revision, render, agent, then the live state
    #[command(after_help = crate::commands::doctor::EXAMPLES)]
    Doctor(crate::commands::doctor::DoctorArgs),
    /// Change a live object in an emergency: audited, time-limited, respected by the agent
    #[command(after_help = crate::commands::break_glass::EXAMPLES)]
    BreakGlass(crate::commands::break_glass::BreakGlassArgs),
    /// Write a live object's out-of-Git changes into the overlay, verified by rendering
    #[command(after_help = crate::commands::backfill::EXAMPLES)]
    Backfill(crate::commands::backfill::BackfillArgs),
    /// Run the agent in a namespace: render its manifests for a repository, show, ask, apply
    #[command(after_help = crate::commands::install::EXAMPLES)]
    Install(crate::commands::install::InstallArgs),
    /// Remove the agent from a namespace, keeping or deleting what it managed
    #[command(after_help = crate::commands::uninstall::EXAMPLES)]
    Uninstall(crate::commands::uninstall::UninstallArgs),
    /// Tag what staging runs (Synced and healthy) and point production at the tag
    #[command(after_help = crate::commands::promote::EXAMPLES)]
    Promote(crate::commands::promote::PromoteArgs),
    /// Point production back at an earlier release tag, after showing what changes
    #[command(after_help = crate::commands::rollback::EXAMPLES)]
    Rollback(crate::commands::rollback::RollbackArgs),
    /// List the revisions production has run, from Git and the agent's status
    #[command(after_help = crate::commands::history::EXAMPLES)]
    History(crate::commands::history::HistoryArgs),
}

/// kubectl's connection flags, accepted by every subcommand so muscle memory carries over.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Kubernetes options")]
pub struct KubeArgs {
    /// Path to the kubeconfig file (otherwise $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// The namespace (default: the context's namespace, else `default`)
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,
    /// How long to wait for a single server request, e.g. 30s or 1m; 0 waits forever
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        default_value = "0",
        value_parser = parse_request_timeout
    )]
    pub request_timeout: RequestTimeout,
}

/// `--request-timeout`; `None` waits forever. A newtype because clap treats a bare
/// `Option` field as "flag may be absent" rather than as the parsed value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTimeout(pub Option<Duration>);

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Output options")]
pub struct OutputArgs {
    /// Print only results and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Explain what is being done
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to color output; NO_COLOR always disables it
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Color when writing to a terminal
    #[default]
    Auto,
    /// Color even when piped (NO_COLOR still wins)
    Always,
    /// Never color
    Never,
}

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

#[derive(Debug, Clone, Args)]
pub struct VersionArgs {}

#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell to generate the script for
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-gitops").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn render_defaults() {
        let cli = parse(&["render", "overlays/prod"]).unwrap();
        let Command::Render(args) = cli.command else {
            panic!("not render")
        };
        assert_eq!(args.dir, PathBuf::from("overlays/prod"));
        assert_eq!(args.revision, None);
        assert_eq!(args.reorder, Reorder::Legacy);
        assert_eq!(args.output, OutputFormat::Yaml);
        assert!(!args.show_origins && !args.show_secrets);
        assert_eq!(cli.kube.request_timeout, RequestTimeout(None));
        assert_eq!(cli.output.color, ColorChoice::Auto);
    }

    #[test]
    fn render_flags() {
        let cli = parse(&[
            "render",
            "d",
            "--revision",
            "v1",
            "--reorder",
            "none",
            "-o",
            "json",
            "--show-origins",
        ])
        .unwrap();
        let Command::Render(args) = cli.command else {
            panic!("not render")
        };
        assert_eq!(args.revision.as_deref(), Some("v1"));
        assert_eq!(args.reorder, Reorder::None);
        assert_eq!(args.output, OutputFormat::Json);
        assert!(args.show_origins);
    }

    #[test]
    fn kubectl_flags_work_before_and_after_the_subcommand() {
        for args in [
            &["-n", "team-a", "--context", "dev", "render", "d"][..],
            &["render", "d", "-n", "team-a", "--context", "dev"][..],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.kube.namespace.as_deref(), Some("team-a"), "{args:?}");
            assert_eq!(cli.kube.context.as_deref(), Some("dev"), "{args:?}");
        }
        let cli = parse(&[
            "version",
            "--kubeconfig",
            "/k",
            "--cluster",
            "c",
            "--user",
            "u",
            "--request-timeout",
            "1m",
        ])
        .unwrap();
        assert_eq!(cli.kube.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(cli.kube.cluster.as_deref(), Some("c"));
        assert_eq!(cli.kube.user.as_deref(), Some("u"));
        assert_eq!(
            cli.kube.request_timeout,
            RequestTimeout(Some(Duration::from_secs(60)))
        );
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["render", "d", "-o", "toml"][..],
            &["render", "d", "--reorder", "random"][..],
            &["version", "--request-timeout", "soon"][..],
            &["completion", "powershell"][..],
            &["render"][..],
        ] {
            let err = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn quiet_and_verbose_conflict() {
        assert!(parse(&["-q", "-v", "version"]).is_err());
        let cli = parse(&["version", "-q", "--color", "always"]).unwrap();
        assert!(cli.output.quiet);
        assert_eq!(cli.output.color, ColorChoice::Always);
    }

    #[test]
    fn every_subcommand_has_an_example() {
        for sub in Cli::command().get_subcommands() {
            let after = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                after.contains("kubectl gitops "),
                "{} has no example",
                sub.get_name()
            );
        }
    }

    #[test]
    fn usage_says_kubectl_gitops() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("Usage: kubectl gitops "), "{help}");
    }
}
