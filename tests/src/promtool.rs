//! Prometheus's `promtool`, built by `scripts/promtool` from the Go module and cached outside
//! the clone, and the little PromQL reading the monitoring tests need.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

use crate::cluster::workspace_root;

/// The cached promtool binary (built on first use: a few minutes, once per machine).
pub fn promtool() -> Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!("promtool unavailable: {e}"))
}

fn build() -> Result<PathBuf> {
    let script = workspace_root().join("scripts/promtool");
    let output = Command::new(&script)
        .arg("build")
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} build", script.display()))?;
    if !output.status.success() {
        bail!("{} build failed with {}", script.display(), output.status);
    }
    let path = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| anyhow!("{} build printed no path", script.display()))?;
    if !path.is_file() {
        bail!(
            "{} build printed {}, not a file",
            script.display(),
            path.display()
        );
    }
    Ok(path)
}

/// Runs promtool with `args` in `dir`, feeding `stdin`; returns (success, stdout + stderr).
pub fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> Result<(bool, String)> {
    use std::io::Write as _;
    let mut child = Command::new(promtool()?)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting promtool")?;
    let mut input = child.stdin.take().context("promtool stdin")?;
    if let Some(text) = stdin {
        input.write_all(text.as_bytes())?;
    }
    drop(input);
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// PromQL words that are not metric names: operators, modifiers, and the aggregations, which
/// may be followed by `by (...)` rather than `(`.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names a PromQL expression selects: identifiers that are not functions (followed
/// by `(`), keywords, label names (inside `{}` or a grouping clause), strings, numbers or
/// durations.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Depth of `{...}` and whether the next `(...)` is a grouping clause's label list.
    let mut braces = 0usize;
    let mut label_list = false;
    let mut in_labels = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '{' => {
                braces += 1;
                i += 1;
            }
            '}' => {
                braces = braces.saturating_sub(1);
                i += 1;
            }
            '[' => {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
                i += 1;
            }
            '(' => {
                if label_list {
                    in_labels += 1;
                    label_list = false;
                }
                i += 1;
            }
            ')' => {
                in_labels = in_labels.saturating_sub(1);
                i += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or a duration such as 5m or 1h30m.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                let lower = word.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    label_list = true;
                } else if braces == 0
                    && in_labels == 0
                    && next != Some(&'(')
                    && !KEYWORDS.contains(&lower.as_str())
                {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skip_functions_labels_and_durations() {
        let expr = r#"histogram_quantile(0.95, sum by (namespace, le) (rate(a_bucket{namespace=~"x|y", le!="1"}[5m])))
            * on (namespace, pod) group_left (tracked_ref, revision) b_info
            and time() - c_seconds offset 1h > 3600 unless d:recorded{} or bool_like"#;
        let names: Vec<String> = metric_names(expr).into_iter().collect();
        assert_eq!(
            names,
            ["a_bucket", "b_info", "bool_like", "c_seconds", "d:recorded"]
        );
    }

    #[test]
    fn strings_and_numbers_are_not_names() {
        assert!(metric_names(r#"count("gitops_x") + 1e3 + 0x1f + vector(1)"#).is_empty());
        assert_eq!(
            metric_names("sum without (pod) (x)")
                .into_iter()
                .collect::<Vec<_>>(),
            ["x"]
        );
    }
}
