//! Completion for `kubectl gitops <TAB>`. kubectl (>= 1.26) runs `kubectl_complete-gitops`
//! with the words typed after `kubectl gitops`, the last being the partial word, and reads
//! back Cobra's `__complete` format: one `value<TAB>description` per line, then `:<directive>`.
//!
//! The walk is driven by the clap definition, so new subcommands and flags complete
//! without touching this file.

use std::path::PathBuf;

use clap::{Arg, ArgAction, Command, CommandFactory, ValueHint};

use crate::cli::Cli;
use crate::cluster::KubeArgs;
use crate::cluster::kube_context::{KubeEnv, kubeconfig_paths, load_kubeconfig};

/// Cobra's `ShellCompDirective` bits.
pub mod directive {
    /// Let the shell complete file names.
    pub const DEFAULT: u32 = 0;
    pub const NO_FILE_COMP: u32 = 4;
    pub const FILTER_DIRS: u32 = 16;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub help: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completions {
    pub candidates: Vec<Candidate>,
    pub directive: u32,
}

impl Completions {
    /// Cobra's wire format, as kubectl expects it.
    pub fn to_cobra(&self) -> String {
        let mut out = String::new();
        for c in &self.candidates {
            out.push_str(&c.value);
            if let Some(help) = &c.help {
                out.push('\t');
                out.push_str(help);
            }
            out.push('\n');
        }
        out.push_str(&format!(":{}\n", self.directive));
        out
    }
}

/// Completes the last word of `words` (which may be empty).
pub fn complete(words: &[String], env: &KubeEnv) -> Completions {
    let mut cmd = Cli::command();
    cmd.build();
    let (current, typed) = match words.split_last() {
        Some((last, before)) => (last.as_str(), before),
        None => ("", &[][..]),
    };

    let mut cmd = &cmd;
    let mut positionals = 0;
    let mut pending_value: Option<&Arg> = None;
    let mut only_positionals = false;
    let mut kubeconfig: Option<PathBuf> = None;
    for word in typed {
        if let Some(arg) = pending_value.take() {
            if arg.get_id() == "kubeconfig" {
                kubeconfig = Some(PathBuf::from(word));
            }
            continue;
        }
        if !only_positionals && word == "--" {
            only_positionals = true;
        } else if !only_positionals && let Some(long) = word.strip_prefix("--") {
            let (name, inline) = long
                .split_once('=')
                .map_or((long, None), |(n, v)| (n, Some(v)));
            let arg = cmd.get_arguments().find(|a| a.get_long() == Some(name));
            match (arg, inline) {
                (Some(arg), Some(value)) if arg.get_id() == "kubeconfig" => {
                    kubeconfig = Some(PathBuf::from(value));
                }
                (Some(arg), None) if takes_value(arg) => pending_value = Some(arg),
                _ => {}
            }
        } else if !only_positionals && word.len() > 1 && word.starts_with('-') {
            // A short cluster like `-qn`: only its last letter can still want a value.
            let last = word.chars().last().expect("non-empty");
            let arg = cmd.get_arguments().find(|a| a.get_short() == Some(last));
            if let Some(arg) = arg.filter(|a| takes_value(a)) {
                pending_value = Some(arg);
            }
        } else if let Some(sub) = cmd.find_subcommand(word).filter(|_| positionals == 0) {
            cmd = sub;
        } else {
            positionals += 1;
        }
    }

    if let Some(arg) = pending_value {
        return values_of(arg, current, "", kubeconfig, env);
    }
    if !only_positionals && current.starts_with('-') {
        if let Some((flag, value)) = current.strip_prefix("--").and_then(|c| c.split_once('=')) {
            return match cmd.get_arguments().find(|a| a.get_long() == Some(flag)) {
                Some(arg) => values_of(arg, value, &format!("--{flag}="), kubeconfig, env),
                None => nothing(),
            };
        }
        return flags_of(cmd, current);
    }
    if positionals == 0 && cmd.has_subcommands() {
        let candidates = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name().starts_with(current))
            .map(|s| Candidate {
                value: s.get_name().to_string(),
                help: about(s),
            })
            .collect();
        return Completions {
            candidates,
            directive: directive::NO_FILE_COMP,
        };
    }
    match cmd.get_positionals().nth(positionals) {
        Some(arg) => values_of(arg, current, "", kubeconfig, env),
        None => nothing(),
    }
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

fn about(cmd: &Command) -> Option<String> {
    cmd.get_about().map(|s| s.to_string())
}

fn nothing() -> Completions {
    Completions {
        candidates: Vec::new(),
        directive: directive::NO_FILE_COMP,
    }
}

fn flags_of(cmd: &Command, current: &str) -> Completions {
    let mut candidates = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let help = arg.get_help().map(|h| h.to_string());
        if let Some(long) = arg.get_long() {
            candidates.push(Candidate {
                value: format!("--{long}"),
                help: help.clone(),
            });
        }
        if let Some(short) = arg.get_short() {
            candidates.push(Candidate {
                value: format!("-{short}"),
                help,
            });
        }
    }
    // `--help` and `--version` are added by clap at build time; keep them last.
    candidates.retain(|c| c.value.starts_with(current));
    Completions {
        candidates,
        directive: directive::NO_FILE_COMP,
    }
}

/// Values for one argument: its enum values, names from the kubeconfig, or a file hint.
fn values_of(
    arg: &Arg,
    current: &str,
    prefix: &str,
    kubeconfig: Option<PathBuf>,
    env: &KubeEnv,
) -> Completions {
    let enumerated: Vec<Candidate> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| Candidate {
            value: v.get_name().to_string(),
            help: v.get_help().map(|h| h.to_string()),
        })
        .collect();
    let candidates = if !enumerated.is_empty() {
        enumerated
    } else if let Some(names) = kubeconfig_names(arg.get_id().as_str(), kubeconfig, env) {
        names
            .into_iter()
            .map(|value| Candidate { value, help: None })
            .collect()
    } else {
        return Completions {
            candidates: Vec::new(),
            directive: match arg.get_value_hint() {
                ValueHint::DirPath => directive::FILTER_DIRS,
                ValueHint::FilePath | ValueHint::AnyPath => directive::DEFAULT,
                _ => directive::NO_FILE_COMP,
            },
        };
    };
    let candidates = candidates
        .into_iter()
        .filter(|c| c.value.starts_with(current))
        .map(|c| Candidate {
            value: format!("{prefix}{}", c.value),
            help: c.help,
        })
        .collect();
    Completions {
        candidates,
        directive: directive::NO_FILE_COMP,
    }
}

/// Context, cluster and user names, read from the same files kubectl would use.
fn kubeconfig_names(id: &str, kubeconfig: Option<PathBuf>, env: &KubeEnv) -> Option<Vec<String>> {
    if !matches!(id, "context" | "cluster" | "user") {
        return None;
    }
    let args = KubeArgs {
        kubeconfig,
        ..KubeArgs::default()
    };
    let paths = kubeconfig_paths(args.kubeconfig.as_deref(), env);
    // A broken kubeconfig must not make the shell print errors mid-line.
    let config = load_kubeconfig(&paths, args.kubeconfig.is_some()).unwrap_or_default();
    Some(match id {
        "context" => config.contexts.into_iter().map(|c| c.name).collect(),
        "cluster" => config.clusters.into_iter().map(|c| c.name).collect(),
        _ => config.auth_infos.into_iter().map(|u| u.name).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(words: &[&str]) -> Completions {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        complete(&words, &KubeEnv::default())
    }

    fn values(c: &Completions) -> Vec<&str> {
        c.candidates.iter().map(|c| c.value.as_str()).collect()
    }

    #[test]
    fn subcommands_at_the_top() {
        let c = run(&[""]);
        for sub in ["render", "version", "completion"] {
            assert!(
                values(&c).contains(&sub),
                "{sub} missing from {:?}",
                values(&c)
            );
        }
        assert!(
            !values(&c).iter().any(|v| v.starts_with('-')),
            "{:?}",
            values(&c)
        );
        assert_eq!(c.directive, directive::NO_FILE_COMP);
        assert_eq!(values(&run(&["rend"])), ["render"]);
    }

    #[test]
    fn render_dir_completes_directories() {
        let c = run(&["render", ""]);
        assert!(c.candidates.is_empty());
        assert_eq!(c.directive, directive::FILTER_DIRS);
    }

    #[test]
    fn enum_values_complete_after_flags() {
        assert_eq!(values(&run(&["render", "dir", "-o", ""])), ["yaml", "json"]);
        assert_eq!(values(&run(&["render", "--reorder", "l"])), ["legacy"]);
        assert_eq!(values(&run(&["render", "--output=j"])), ["--output=json"]);
        assert_eq!(values(&run(&["completion", ""])), ["bash", "zsh", "fish"]);
    }

    #[test]
    fn global_flags_complete_on_subcommands() {
        let c = run(&["render", "--cont"]);
        assert_eq!(values(&c), ["--context"]);
        let all = values(&run(&["render", "-"])).join(" ");
        for flag in [
            "--kubeconfig",
            "--namespace",
            "-n",
            "--request-timeout",
            "--revision",
            "--quiet",
        ] {
            assert!(all.contains(flag), "{flag} missing from {all}");
        }
    }

    #[test]
    fn flag_values_are_not_taken_for_subcommands() {
        // `-n render` means namespace "render"; the next word is still a subcommand.
        assert_eq!(values(&run(&["-n", "render", "v"])), ["version"]);
    }

    #[test]
    fn contexts_come_from_the_kubeconfig_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "contexts:\n- name: dev\n  context: {cluster: c}\n- name: prod\n  context: {cluster: c}\n",
        )
        .unwrap();
        let words = [
            "--kubeconfig",
            path.to_str().unwrap(),
            "render",
            "--context",
            "p",
        ];
        assert_eq!(values(&run(&words)), ["prod"]);
        // Without a kubeconfig there is nothing to offer, and no file names either.
        let c = run(&["--context", ""]);
        assert!(c.candidates.is_empty());
        assert_eq!(c.directive, directive::NO_FILE_COMP);
    }

    #[test]
    fn cobra_format_ends_with_the_directive() {
        let c = Completions {
            candidates: vec![Candidate {
                value: "render".into(),
                help: Some("Render".into()),
            }],
            directive: 4,
        };
        assert_eq!(c.to_cobra(), "render\tRender\n:4\n");
    }
}
