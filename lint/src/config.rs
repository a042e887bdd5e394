//! The repository's own lint settings (`.kubectl-gitops/lint.yaml`) and inline
//! `# lint:ignore RULE reason` comments.
//!
//! ```yaml
//! rules:
//!   resource-limits: off            # disable a rule
//!   hpa-replicas: error             # change its severity
//!   mutable-images:
//!     severity: error
//!     requireDigests: true          # a tag is not enough: pin digests
//! exceptions:
//!   - rule: privileged
//!     paths: ["infra/node-exporter/**"]
//!     reason: node agents need the host network
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use renderer::{Source, SourceError};
use serde_json::Value;

use crate::finding::Finding;
use crate::rules::{MUTABLE_IMAGES, Severity, rule};

pub const CONFIG_FILE: &str = ".kubectl-gitops/lint.yaml";

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: u32,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Off,
    Severity(Severity),
}

#[derive(Debug, Clone)]
struct Exception {
    rules: Vec<String>,
    paths: Vec<Regex>,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    settings: HashMap<String, Setting>,
    exceptions: Vec<Exception>,
    pub require_digests: bool,
}

impl Config {
    /// Reads `.kubectl-gitops/lint.yaml` from the root of `source`; defaults when absent.
    pub fn load(source: &dyn Source) -> Result<Config, ConfigError> {
        match source.read(CONFIG_FILE) {
            Ok(bytes) => Config::parse(&String::from_utf8_lossy(&bytes)),
            Err(SourceError::NotFound { .. }) => Ok(Config::default()),
            Err(e) => Err(ConfigError {
                file: CONFIG_FILE.into(),
                line: 0,
                message: e.to_string(),
            }),
        }
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let err = |line: u32, message: String| ConfigError {
            file: CONFIG_FILE.into(),
            line,
            message,
        };
        let docs = renderer::yaml::parse_documents(text).map_err(|e| err(e.line, e.message))?;
        let Some(doc) = docs.into_iter().next() else {
            return Ok(Config::default());
        };
        let line_of = |ptr: &str| doc.positions.get(ptr).map_or(0, |p| p.line);
        let mut config = Config::default();
        if doc.value.is_null() {
            return Ok(config);
        }
        let Some(top) = doc.value.as_object() else {
            return Err(err(
                1,
                "expected a mapping with `rules` and `exceptions`".into(),
            ));
        };
        for key in top.keys() {
            if key != "rules" && key != "exceptions" {
                return Err(err(
                    line_of(&format!("/{key}")),
                    format!("unknown key {key:?} (expected `rules` or `exceptions`)"),
                ));
            }
        }
        for (id, value) in doc.value["rules"].as_object().into_iter().flatten() {
            let ptr = format!("/rules/{}", renderer::yaml::escape_pointer(id));
            if rule(id).is_none() {
                return Err(err(line_of(&ptr), format!("unknown rule {id:?}")));
            }
            let setting = |v: &Value| -> Result<Setting, ConfigError> {
                match v {
                    Value::Bool(false) => Ok(Setting::Off),
                    Value::String(s) if s == "off" || s == "disabled" => Ok(Setting::Off),
                    Value::String(s) => {
                        Severity::parse(s).map(Setting::Severity).ok_or_else(|| {
                            err(
                                line_of(&ptr),
                                format!("{id}: {s:?} is not off, error, warning or note"),
                            )
                        })
                    }
                    _ => Err(err(
                        line_of(&ptr),
                        format!("{id}: expected off, error, warning or note"),
                    )),
                }
            };
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        match k.as_str() {
                            "severity" => {
                                config.settings.insert(id.clone(), setting(v)?);
                            }
                            "requireDigests" if id == MUTABLE_IMAGES => {
                                config.require_digests = v.as_bool().unwrap_or(false);
                            }
                            other => {
                                return Err(err(
                                    line_of(&format!("{ptr}/{other}")),
                                    format!("{id}: unknown setting {other:?}"),
                                ));
                            }
                        }
                    }
                }
                v => {
                    config.settings.insert(id.clone(), setting(v)?);
                }
            }
        }
        for (i, e) in doc.value["exceptions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let ptr = format!("/exceptions/{i}");
            let strings = |k: &str| -> Vec<String> {
                match &e[k] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect(),
                    _ => vec![],
                }
            };
            let mut rules = strings("rule");
            rules.extend(strings("rules"));
            if let Some(bad) = rules.iter().find(|r| *r != "*" && rule(r).is_none()) {
                return Err(err(line_of(&ptr), format!("unknown rule {bad:?}")));
            }
            let paths = strings("paths");
            if rules.is_empty() || paths.is_empty() {
                return Err(err(
                    line_of(&ptr),
                    "an exception needs `rule` (or `rules`) and `paths`".into(),
                ));
            }
            config.exceptions.push(Exception {
                rules,
                paths: paths.iter().map(|p| glob(p)).collect(),
            });
        }
        Ok(config)
    }

    /// The finding as configured: `None` when disabled or excepted, else with its severity.
    pub fn apply(&self, mut finding: Finding) -> Option<Finding> {
        match self.settings.get(finding.rule) {
            Some(Setting::Off) => return None,
            Some(Setting::Severity(s)) => finding.severity = *s,
            None => {}
        }
        let excepted = self.exceptions.iter().any(|e| {
            e.rules.iter().any(|r| r == "*" || r == finding.rule)
                && e.paths.iter().any(|p| p.is_match(&finding.file))
        });
        (!excepted).then_some(finding)
    }
}

/// A path glob (`*` within a segment, `**` across segments; a directory covers its contents)
/// as an anchored regex.
pub fn glob(pattern: &str) -> Regex {
    let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    if !re.ends_with('/') {
        re.push_str("(?:/.*)?");
    } else {
        re.push_str(".*");
    }
    re.push('$');
    Regex::new(&re).unwrap_or_else(|_| Regex::new("$^").expect("never-matching regex"))
}

fn ignore_comment() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"#\s*lint:ignore\s+([A-Za-z0-9_,*-]+)").expect("ignore regex compiles")
    })
}

/// Inline ignores, read once per file.
#[derive(Default)]
pub struct InlineIgnores {
    files: HashMap<String, Vec<String>>,
}

impl InlineIgnores {
    /// Whether `# lint:ignore RULE` on the finding's line, or alone on the line above it,
    /// names the finding's rule (or `*`).
    pub fn ignores(&mut self, source: &dyn Source, finding: &Finding) -> bool {
        if finding.line == 0 || finding.file.is_empty() {
            return false;
        }
        let lines = self.files.entry(finding.file.clone()).or_insert_with(|| {
            source
                .read(&finding.file)
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .lines()
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        });
        let names = |line: Option<&String>, alone: bool| {
            line.and_then(|l| {
                if alone && !l.trim_start().starts_with('#') {
                    return None;
                }
                ignore_comment()
                    .captures(l)
                    .map(|c| c[1].split(',').any(|r| r == "*" || r == finding.rule))
            })
            .unwrap_or(false)
        };
        let i = finding.line as usize - 1;
        names(lines.get(i), false) || (i > 0 && names(lines.get(i - 1), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("infra/**").is_match("infra/a/b.yaml"));
        assert!(glob("infra").is_match("infra/a.yaml"));
        assert!(glob("**/prod/*.yaml").is_match("apps/x/prod/d.yaml"));
        assert!(!glob("**/prod/*.yaml").is_match("apps/x/prod/sub/d.yaml"));
        assert!(!glob("infra/**").is_match("infrastructure/a.yaml"));
    }

    #[test]
    fn settings_and_exceptions() {
        let c = Config::parse(
            "rules:\n  resource-limits: off\n  hpa-replicas: error\n  mutable-images:\n    requireDigests: true\nexceptions:\n- rule: privileged\n  paths: [infra/**]\n  reason: host agents\n",
        )
        .unwrap();
        assert!(c.require_digests);
        let f = |rule, file: &str| Finding::new(rule, file, 3, "m");
        assert!(
            c.apply(f(crate::rules::RESOURCE_LIMITS, "a.yaml"))
                .is_none()
        );
        assert_eq!(
            c.apply(f(crate::rules::HPA_REPLICAS, "a.yaml"))
                .unwrap()
                .severity,
            Severity::Error
        );
        assert!(
            c.apply(f(crate::rules::PRIVILEGED, "infra/x.yaml"))
                .is_none()
        );
        assert!(
            c.apply(f(crate::rules::PRIVILEGED, "apps/x.yaml"))
                .is_some()
        );
    }

    #[test]
    fn bad_config_names_the_line() {
        let e = Config::parse("rules:\n  no-such-rule: off\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = Config::parse("rules:\n  privileged: loud\n").unwrap_err();
        assert!(e.message.contains("loud"), "{e}");
        let e = Config::parse("exceptions:\n- rule: privileged\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }
}
