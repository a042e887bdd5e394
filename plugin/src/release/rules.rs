//! Pure rules of `promote`, `rollback` and `history`: which tags are releases, which new tag
//! is allowed, and where in the repository the production agent's `--revision` is written.
//! No I/O, so each rule is unit tested; the Git side is in [`crate::release_git`].

use semver::Version;

use crate::constants::{AGENT_PATH_ARG, AGENT_REVISION_ARG};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("{tag}: release tags are v<MAJOR>.<MINOR>.<PATCH> (semver with a `v`), e.g. v1.5.0")]
    NotSemver { tag: String },
    #[error("{tag} is not newer than the latest release {latest}; use `rollback` to go back")]
    NotNewer { tag: String, latest: String },
    #[error("a hotfix of {from} is {from_major}.{from_minor}.<higher patch>, not {tag}")]
    NotAPatchBump {
        from: String,
        tag: String,
        from_major: u64,
        from_minor: u64,
    },
    #[error("{file}:{line}: expected `- {AGENT_REVISION_ARG}=<rev>` on this line")]
    NoRevisionLine { file: String, line: u32 },
}

/// The version of a release tag: `v` followed by semver.
pub fn release_version(tag: &str) -> Result<Version, ReleaseError> {
    tag.strip_prefix('v')
        .and_then(|v| Version::parse(v).ok())
        .ok_or_else(|| ReleaseError::NotSemver {
            tag: tag.to_string(),
        })
}

/// The highest release among `tags` (others are ignored), as `(tag, version)`.
pub fn latest_release<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<(&'a str, Version)> {
    tags.into_iter()
        .filter_map(|t| release_version(t).ok().map(|v| (t, v)))
        .max_by(|a, b| a.1.cmp(&b.1))
}

/// A promotion moves forward: the new tag must be newer than every release of its
/// `MAJOR.MINOR` line, or, opening a new line, newer than every release so far. So a hotfix
/// v1.5.1 can ship after v1.6.0 exists, but v1.5.0 cannot reappear as v1.4.9.
pub fn check_promote_tag<'a>(
    tag: &str,
    existing: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<Version, ReleaseError> {
    let version = release_version(tag)?;
    let same_line = existing.clone().into_iter().filter(|t| {
        release_version(t).is_ok_and(|v| v.major == version.major && v.minor == version.minor)
    });
    let latest = latest_release(same_line).or_else(|| latest_release(existing));
    if let Some((latest, latest_version)) = latest
        && version <= latest_version
    {
        return Err(ReleaseError::NotNewer {
            tag: tag.to_string(),
            latest: latest.to_string(),
        });
    }
    Ok(version)
}

/// A hotfix changes only the patch number of the release it fixes, so it never claims to
/// contain a minor release's features.
pub fn check_hotfix_tag(from: &str, tag: &str) -> Result<Version, ReleaseError> {
    let base = release_version(from)?;
    let version = release_version(tag)?;
    if version.major != base.major || version.minor != base.minor || version <= base {
        return Err(ReleaseError::NotAPatchBump {
            from: from.to_string(),
            tag: tag.to_string(),
            from_major: base.major,
            from_minor: base.minor,
        });
    }
    Ok(version)
}

/// `hotfix/v1.5.1`: the branch a hotfix is made on.
pub fn hotfix_branch(tag: &str) -> String {
    format!("{}{tag}", crate::constants::HOTFIX_BRANCH_PREFIX)
}

/// One gitops-agent container found in a manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentArgs {
    /// 1-based line of the `--revision=` argument.
    pub line: u32,
    pub revision: String,
    /// The `--path=` argument, if any.
    pub path: Option<String>,
}

/// The value of an argument line such as `- --revision=main` (optionally quoted).
fn arg_value<'a>(line: &'a str, flag: &str) -> Option<&'a str> {
    let item = line.trim_start().strip_prefix('-')?.trim_start();
    let item = match item.chars().next() {
        Some(q @ ('"' | '\'')) => item[1..].split(q).next()?,
        _ => item.split(" #").next()?.trim_end(),
    };
    item.strip_prefix(flag)?.strip_prefix('=')
}

/// Every document of `text` that passes `--revision=` to an agent: the line and value, and
/// the `--path=` given in the same document. Documents are split at `---` lines so a file
/// holding a staging and a prod agent yields both.
pub fn find_agent_args(text: &str) -> Vec<AgentArgs> {
    let mut found = Vec::new();
    let mut current: Option<AgentArgs> = None;
    let mut path: Option<String> = None;
    let mut flush = |current: &mut Option<AgentArgs>, path: &mut Option<String>| {
        if let Some(mut a) = current.take() {
            a.path = path.take();
            found.push(a);
        }
        *path = None;
    };
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            flush(&mut current, &mut path);
            continue;
        }
        if let Some(v) = arg_value(line, AGENT_REVISION_ARG) {
            current = Some(AgentArgs {
                line: i as u32 + 1,
                revision: v.to_string(),
                path: None,
            });
        } else if let Some(v) = arg_value(line, AGENT_PATH_ARG) {
            path = Some(v.trim_matches('/').to_string());
        }
    }
    flush(&mut current, &mut path);
    found
}

/// `text` with the `--revision=` argument on 1-based `line` set to `revision`; the rest of
/// the file, indentation and quoting included, stays byte for byte.
pub fn set_revision(
    file: &str,
    text: &str,
    line: u32,
    revision: &str,
) -> Result<String, ReleaseError> {
    edit_line(file, text, line, |original| {
        let old = arg_value(original, AGENT_REVISION_ARG)?;
        let marker = format!("{AGENT_REVISION_ARG}={old}");
        let at = original.find(&marker)?;
        Some(format!(
            "{}{AGENT_REVISION_ARG}={revision}{}",
            &original[..at],
            &original[at + marker.len()..]
        ))
    })
}

/// `text` with 1-based `line` replaced by what `edit` makes of it (line ending included); every
/// other byte stays. `edit` returning `None`, or no such line, is [`ReleaseError::NoRevisionLine`].
pub fn edit_line(
    file: &str,
    text: &str,
    line: u32,
    edit: impl FnOnce(&str) -> Option<String>,
) -> Result<String, ReleaseError> {
    let no_line = || ReleaseError::NoRevisionLine {
        file: file.to_string(),
        line,
    };
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let index = (line as usize).checked_sub(1).ok_or_else(no_line)?;
    let original = *lines.get(index).ok_or_else(no_line)?;
    let edited = edit(original).ok_or_else(no_line)?;
    lines[index] = &edited;
    Ok(lines.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_tags_are_v_semver() {
        assert_eq!(release_version("v1.5.0").unwrap(), Version::new(1, 5, 0));
        assert!(release_version("v1.5.0-rc.1").is_ok());
        for bad in ["1.5.0", "v1.5", "release-1", "vx"] {
            assert_eq!(
                release_version(bad),
                Err(ReleaseError::NotSemver { tag: bad.into() })
            );
        }
    }

    #[test]
    fn promote_moves_forward_only() {
        let tags = ["v1.4.2", "v1.10.0", "nightly", "v1.9.9"];
        assert_eq!(
            latest_release(tags).map(|(t, _)| t),
            Some("v1.10.0"),
            "semver order, not string order"
        );
        assert!(check_promote_tag("v1.11.0", tags).is_ok());
        assert!(check_promote_tag("v2.0.0", []).is_ok());
        assert!(
            check_promote_tag("v1.9.10", tags).is_ok(),
            "a patch of an older line (a hotfix)"
        );
        let err = check_promote_tag("v1.8.0", tags).unwrap_err();
        assert_eq!(
            err.to_string(),
            "v1.8.0 is not newer than the latest release v1.10.0; use `rollback` to go back"
        );
        let err = check_promote_tag("v1.9.9", tags).unwrap_err();
        assert!(err.to_string().contains("latest release v1.9.9"), "{err}");
        assert!(check_promote_tag("v1.10.0", tags).is_err());
        assert!(check_promote_tag("v1.10.0-rc.1", tags).is_err());
    }

    #[test]
    fn hotfix_is_a_patch_bump() {
        assert!(check_hotfix_tag("v1.5.0", "v1.5.1").is_ok());
        assert!(check_hotfix_tag("v1.5.0", "v1.5.7").is_ok());
        for bad in ["v1.6.0", "v1.5.0", "v2.5.1", "v1.4.9"] {
            let err = check_hotfix_tag("v1.5.0", bad).unwrap_err();
            assert!(err.to_string().contains("1.5.<higher patch>"), "{err}");
        }
        assert_eq!(hotfix_branch("v1.5.1"), "hotfix/v1.5.1");
    }

    const TWO_AGENTS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: gitops-agent
  namespace: staging
spec:
  template:
    spec:
      containers:
      - name: agent
        args:
        - --repo=https://git.example.com/deploy.git
        - --path=overlays/staging
        - --revision=main
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: gitops-agent
  namespace: prod
spec:
  template:
    spec:
      containers:
      - name: agent
        args:
        - \"--revision=v1.4.2\" # pinned
        - --path=overlays/prod/
";

    #[test]
    fn finds_each_agent_with_its_path() {
        assert_eq!(
            find_agent_args(TWO_AGENTS),
            [
                AgentArgs {
                    line: 14,
                    revision: "main".into(),
                    path: Some("overlays/staging".into())
                },
                AgentArgs {
                    line: 27,
                    revision: "v1.4.2".into(),
                    path: Some("overlays/prod".into())
                },
            ]
        );
        assert!(find_agent_args("kind: ConfigMap\ndata:\n  a: --revision=x\n").is_empty());
    }

    #[test]
    fn set_revision_changes_one_line() {
        let out = set_revision("a.yaml", TWO_AGENTS, 14, "v1.5.0").unwrap();
        assert_eq!(
            out,
            TWO_AGENTS.replace("- --revision=main", "- --revision=v1.5.0")
        );
        let err = set_revision("a.yaml", TWO_AGENTS, 13, "v1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.yaml:13: expected `- --revision=<rev>` on this line"
        );
        assert!(set_revision("a.yaml", TWO_AGENTS, 99, "v1").is_err());
    }
}
