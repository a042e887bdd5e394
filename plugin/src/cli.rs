//! The command line, as clap derive types. Parsing only: no I/O happens here.

use clap::{Parser, Subcommand};

use crate::cluster::KubeArgs;
use crate::output::OutputArgs;

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
    #[command(after_help = crate::commands::render::EXAMPLES)]
    Render(crate::commands::render::RenderArgs),
    /// Print the plugin version
    #[command(after_help = crate::commands::version::EXAMPLES)]
    Version(crate::commands::version::VersionArgs),
    /// Print a shell completion script
    #[command(after_help = crate::commands::completion::EXAMPLES)]
    Completion(crate::commands::completion::CompletionArgs),
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
    /// Show a prune the agent held back as too large, and approve it for one revision
    #[command(after_help = crate::commands::prune::EXAMPLES)]
    Prune(crate::commands::prune::PruneArgs),
    /// List the revisions production has run, from Git and the agent's status
    #[command(after_help = crate::commands::history::EXAMPLES)]
    History(crate::commands::history::HistoryArgs),
    /// Edit a SOPS-encrypted file: decrypted only in a private temporary file
    #[command(after_help = crate::commands::secret::EXAMPLES)]
    Secret(crate::commands::secret::SecretArgs),
    /// Check a repository before the agent sees it: render, schema, secrets, images, policy
    #[command(after_help = crate::commands::lint::EXAMPLES)]
    Lint(crate::commands::lint::LintArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::cluster::RequestTimeout;
    use crate::commands::completion::CompletionShell;
    use crate::commands::render::{OutputFormat, Reorder};
    use crate::output::ColorChoice;

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

    /// Issue #14: `--request-timeout=99999999999999999999h` panicked in the parser.
    #[test]
    fn absurd_request_timeouts_are_usage_errors_naming_the_flag() {
        for value in [
            "99999999999999999999h",
            "1e300s",
            "2562048h",
            "99999999999999999999",
        ] {
            let err = parse(&["version", &format!("--request-timeout={value}")])
                .err()
                .unwrap_or_else(|| panic!("{value} parsed"));
            assert_eq!(err.exit_code(), 2, "{value}");
            assert!(
                err.to_string().contains("--request-timeout"),
                "{value}: {err}"
            );
        }
        assert!(parse(&["version", "--request-timeout=2562047h"]).is_ok());
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
    fn read_only_subcommands_show_an_example_in_their_help() {
        let mut cli = Cli::command();
        for sub in ["diff", "explain", "status", "doctor"] {
            let help = cli
                .find_subcommand_mut(sub)
                .unwrap_or_else(|| panic!("no {sub} subcommand"))
                .render_help()
                .to_string();
            assert!(
                help.contains("Examples:") && help.contains(&format!("  kubectl gitops {sub} ")),
                "{sub} --help has no example:\n{help}"
            );
        }
    }

    #[test]
    fn usage_says_kubectl_gitops() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("Usage: kubectl gitops "), "{help}");
    }

    #[test]
    fn every_bash_dispatch_target_has_a_case() {
        let bash = crate::commands::completion::script(CompletionShell::Bash, &mut Cli::command());
        let targets: Vec<&str> = bash
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("cmd=\"")
                    .and_then(|r| r.strip_suffix('"'))
            })
            .filter(|target| !target.is_empty())
            .collect();
        assert!(targets.len() >= 4, "{targets:?}");
        for target in targets {
            assert!(
                bash.contains(&format!("\n        {target})\n")),
                "no case for {target}"
            );
        }
    }
}
