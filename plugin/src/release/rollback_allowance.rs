//! The line next to the production agent's revision that lets the agent move back to an older
//! commit: the agent refuses a commit that does not descend from the one it applied unless
//! told it is a rollback. `rollback` writes it for the exact commit of its tag (so a tag
//! re-pointed later to some other old commit is still refused); `promote` removes it.

use renderer::protocol::AGENT_CONFIG_ALLOW_ROLLBACK_KEY;

use crate::constants::AGENT_ALLOW_ROLLBACK_ARG;
use crate::release::repo::RevisionSetting;

/// `text` with the allowance after 1-based `revision_line` set to `commit`, or removed when
/// `commit` is `None`. An allowance already on the next line is replaced.
pub fn set_allowance(
    text: &str,
    revision_line: u32,
    setting: RevisionSetting,
    commit: Option<&str>,
) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let Some(index) = (revision_line as usize).checked_sub(1) else {
        return text.to_string();
    };
    let Some(revision) = lines.get(index).cloned() else {
        return text.to_string();
    };
    let existing = lines.get(index + 1).is_some_and(|l| is_allowance(l));
    let new_line = commit.map(|sha| {
        let indent = &revision[..revision.len() - revision.trim_start().len()];
        match setting {
            // Quoted: a SHA of digits only would read as a number.
            RevisionSetting::ConfigMap => {
                format!("{indent}{AGENT_CONFIG_ALLOW_ROLLBACK_KEY}: \"{sha}\"\n")
            }
            RevisionSetting::AgentArg => format!("{indent}- {AGENT_ALLOW_ROLLBACK_ARG}={sha}\n"),
        }
    });
    if !revision.ends_with('\n') && new_line.is_some() && !existing {
        lines[index].push('\n');
    }
    match (existing, new_line) {
        (true, Some(l)) => lines[index + 1] = l,
        (true, None) => {
            lines.remove(index + 1);
        }
        (false, Some(l)) => lines.insert(index + 1, l),
        (false, None) => {}
    }
    lines.concat()
}

fn is_allowance(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with(&format!("{AGENT_CONFIG_ALLOW_ROLLBACK_KEY}:"))
        || t.trim_start_matches('-')
            .trim_start()
            .trim_start_matches(['"', '\''])
            .starts_with(&format!("{AGENT_ALLOW_ROLLBACK_ARG}="))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789012345678901234567890123456789";

    #[test]
    fn the_config_map_gets_a_quoted_key_next_to_the_revision() {
        let text = "kind: ConfigMap\ndata:\n  revision: v1.4.2\n";
        let with = set_allowance(text, 3, RevisionSetting::ConfigMap, Some(SHA));
        assert_eq!(
            with,
            format!("kind: ConfigMap\ndata:\n  revision: v1.4.2\n  allow-rollback-to: \"{SHA}\"\n")
        );
        let other = "a".repeat(40);
        let replaced = set_allowance(&with, 3, RevisionSetting::ConfigMap, Some(&other));
        assert!(
            replaced.contains(&other) && !replaced.contains(SHA),
            "{replaced}"
        );
        assert_eq!(
            set_allowance(&with, 3, RevisionSetting::ConfigMap, None),
            text
        );
        assert_eq!(
            set_allowance(text, 3, RevisionSetting::ConfigMap, None),
            text
        );
        // Without a final line break.
        let bare = "data:\n  revision: v1";
        assert_eq!(
            set_allowance(bare, 2, RevisionSetting::ConfigMap, Some(SHA)),
            format!("data:\n  revision: v1\n  allow-rollback-to: \"{SHA}\"\n")
        );
    }

    #[test]
    fn the_deployment_gets_an_argument_after_revision() {
        let text = "        args:\n        - --revision=v1.6.0\n        - --interval=1m\n";
        let with = set_allowance(text, 2, RevisionSetting::AgentArg, Some(SHA));
        assert_eq!(
            with,
            format!(
                "        args:\n        - --revision=v1.6.0\n        - --allow-rollback-to={SHA}\n        - --interval=1m\n"
            )
        );
        assert_eq!(
            set_allowance(&with, 2, RevisionSetting::AgentArg, None),
            text
        );
    }
}
