//! Unified diffs of two renderings of one object, in `diff -u` format so that `patch` and
//! every pager already understand it. Colors are applied from the diff's structure rather
//! than by sniffing line prefixes, which would misread a removed line that starts with `--`.

use renderer::redact::redact_pair;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::output::printer::Style;

/// Lines of context around each change, as `diff -u` and `kubectl diff`.
pub const DEFAULT_CONTEXT: usize = 3;
/// The label of the missing side when an object is created or deleted.
pub const NO_FILE: &str = "/dev/null";

#[derive(Debug, Clone, Copy)]
pub struct DiffOptions {
    pub context: usize,
    pub color: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            context: DEFAULT_CONTEXT,
            color: false,
        }
    }
}

/// One object, `before` → `after`, as YAML with Secret values redacted: the one way every
/// command shows an object change. A side that is `None` does not exist and is labelled
/// [`NO_FILE`]; the other is `<prefix>/<key>`. `None` when both render the same.
pub fn object_diff(
    before: Option<Value>,
    after: Option<Value>,
    (before_prefix, after_prefix): (&str, &str),
    key: &str,
    options: DiffOptions,
) -> Option<String> {
    let label = |side: &Option<Value>, prefix: &str| {
        side.as_ref()
            .map_or(NO_FILE.to_string(), |_| format!("{prefix}/{key}"))
    };
    let (before_label, after_label) = (label(&before, before_prefix), label(&after, after_prefix));
    let mut before = before.unwrap_or(Value::Null);
    let mut after = after.unwrap_or(Value::Null);
    redact_pair(&mut before, &mut after);
    let yaml = |v: &Value| {
        if v.is_null() {
            String::new()
        } else {
            renderer::yaml::to_yaml(v)
        }
    };
    unified_diff(
        &yaml(&before),
        &yaml(&after),
        &before_label,
        &after_label,
        options,
    )
}

/// The diff from `before` to `after`, or `None` when they are identical.
pub fn unified_diff(
    before: &str,
    after: &str,
    before_label: &str,
    after_label: &str,
    options: DiffOptions,
) -> Option<String> {
    if before == after {
        return None;
    }
    let diff = TextDiff::from_lines(before, after);
    let paint = |style: Style, text: &str| style.paint(text, options.color).into_owned();
    let mut out = String::new();
    out.push_str(&paint(Style::Bold, &format!("--- {before_label}")));
    out.push('\n');
    out.push_str(&paint(Style::Bold, &format!("+++ {after_label}")));
    out.push('\n');
    let mut unified = diff.unified_diff();
    unified.context_radius(options.context);
    for hunk in unified.iter_hunks() {
        out.push_str(&paint(Style::Cyan, &hunk.header().to_string()));
        out.push('\n');
        for change in hunk.iter_changes() {
            let (sign, style) = match change.tag() {
                ChangeTag::Delete => ('-', Some(Style::Red)),
                ChangeTag::Insert => ('+', Some(Style::Green)),
                ChangeTag::Equal => (' ', None),
            };
            let line = format!(
                "{sign}{}",
                change.as_str().unwrap_or_default().trim_end_matches('\n')
            );
            match style {
                Some(style) => out.push_str(&paint(style, &line)),
                None => out.push_str(&line),
            }
            out.push('\n');
            if change.missing_newline() {
                out.push_str("\\ No newline at end of file\n");
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: catalog-api
spec:
  replicas: 2
  template:
    spec:
      containers:
      - image: registry.example.com/catalog-api:1.4.1
        name: api
";

    #[test]
    fn identical_texts_have_no_diff() {
        assert_eq!(
            unified_diff(LIVE, LIVE, "a", "b", DiffOptions::default()),
            None
        );
    }

    #[test]
    fn formats_like_diff_u() {
        let git = LIVE
            .replace("replicas: 2", "replicas: 3")
            .replace("1.4.1", "1.4.2");
        let diff = unified_diff(
            LIVE,
            &git,
            "live/Deployment/catalog-api",
            "git/Deployment/catalog-api",
            DiffOptions::default(),
        )
        .unwrap();
        let expected = "\
--- live/Deployment/catalog-api
+++ git/Deployment/catalog-api
@@ -3,9 +3,9 @@
 metadata:
   name: catalog-api
 spec:
-  replicas: 2
+  replicas: 3
   template:
     spec:
       containers:
-      - image: registry.example.com/catalog-api:1.4.1
+      - image: registry.example.com/catalog-api:1.4.2
         name: api
";
        assert_eq!(diff, expected);
    }

    #[test]
    fn context_radius_is_honoured() {
        let git = LIVE.replace("replicas: 2", "replicas: 3");
        let diff = unified_diff(
            LIVE,
            &git,
            "a",
            "b",
            DiffOptions {
                context: 0,
                color: false,
            },
        )
        .unwrap();
        assert_eq!(
            diff,
            "--- a\n+++ b\n@@ -6 +6 @@\n-  replicas: 2\n+  replicas: 3\n"
        );
    }

    #[test]
    fn created_objects_diff_against_dev_null() {
        let diff = unified_diff(
            "",
            "kind: Service\n",
            NO_FILE,
            "git/Service/x",
            DiffOptions::default(),
        )
        .unwrap();
        assert_eq!(
            diff,
            "--- /dev/null\n+++ git/Service/x\n@@ -0,0 +1 @@\n+kind: Service\n"
        );
    }

    #[test]
    fn missing_trailing_newline_is_marked() {
        let diff = unified_diff("a: 1\n", "a: 2", "x", "y", DiffOptions::default()).unwrap();
        assert!(
            diff.ends_with("+a: 2\n\\ No newline at end of file\n"),
            "{diff}"
        );
    }

    #[test]
    fn color_follows_structure_not_prefixes() {
        // A removed line whose content starts with "--" must be red, not a bold header.
        let diff = unified_diff(
            "-- x\nkeep\n",
            "keep\n",
            "a",
            "b",
            DiffOptions {
                context: 3,
                color: true,
            },
        )
        .unwrap();
        let lines: Vec<&str> = diff.lines().collect();
        assert_eq!(lines[0], "\x1b[1m--- a\x1b[0m");
        assert_eq!(lines[2], "\x1b[36m@@ -1,2 +1 @@\x1b[0m");
        assert_eq!(lines[3], "\x1b[31m--- x\x1b[0m");
        assert_eq!(lines[4], " keep");
    }
}
