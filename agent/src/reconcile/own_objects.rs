//! The agent's own objects are not Git's to declare.
//!
//! Whoever can push could otherwise replace the agent's Deployment (its image, its flags), widen
//! its Role, rebind its ServiceAccount, take its Lease, or drop one of them from Git later and
//! have the agent prune itself. A render declaring any of them is refused as a whole, naming the
//! object and its file, unless `--manage-own-objects` says Git may.

use renderer::protocol::{
    AGENT_CONFIG_NAME, AGENT_CREDENTIALS_PREFIX, AGENT_NAME, GroupKind, PARENT_NAME,
};

use super::plan::Desired;

/// The kinds `manifests/base` (and leader election) name [`AGENT_NAME`].
const NAMED_LIKE_THE_AGENT: [(&str, &str); 6] = [
    ("", "ServiceAccount"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("apps", "Deployment"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("coordination.k8s.io", "Lease"),
];

/// Why `d` is one of the agent's own objects, if it is. The health rules ConfigMap
/// (`--health-rules-configmap`) is not among them: Git may manage it (see the README).
pub fn own_object(d: &Desired) -> Option<&'static str> {
    let gk = &d.key.group_kind;
    let name = d.key.name.as_str();
    let is = |group: &str, kind: &str| *gk == GroupKind::new(group, kind);
    if name == AGENT_NAME
        && NAMED_LIKE_THE_AGENT
            .iter()
            .any(|(group, kind)| is(group, kind))
    {
        return Some("the agent's own object (manifests/base)");
    }
    if is("", "ConfigMap") {
        if name == AGENT_CONFIG_NAME {
            return Some("the agent's self-management ConfigMap (only --config-path renders it)");
        }
        if name == PARENT_NAME {
            return Some("the agent's own ApplySet parent");
        }
    }
    if is("", "Secret")
        && name
            .strip_prefix(AGENT_CREDENTIALS_PREFIX)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    {
        return Some("the agent's Git credentials");
    }
    None
}

/// One line per own object of a render: object, file and why.
pub fn refusals(desired: &[Desired]) -> Vec<String> {
    desired
        .iter()
        .filter_map(|d| {
            let why = own_object(d)?;
            let at = d
                .origin
                .as_deref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default();
            Some(format!(
                "{}{at} is {why}; Git may not declare it (start the agent with --manage-own-objects to allow it)",
                d.key
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(api_version: &str, kind: &str, name: &str) -> Desired {
        Desired::from_object(
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}),
            Some(format!("agent/{kind}.yaml:1")),
        )
        .unwrap()
    }

    #[test]
    fn the_agents_objects_are_refused_naming_object_and_file() {
        let own = [
            object("v1", "ServiceAccount", "gitops-agent"),
            object("rbac.authorization.k8s.io/v1", "Role", "gitops-agent"),
            object(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                "gitops-agent",
            ),
            object("apps/v1", "Deployment", "gitops-agent"),
            object("networking.k8s.io/v1", "NetworkPolicy", "gitops-agent"),
            object("coordination.k8s.io/v1", "Lease", "gitops-agent"),
            object("v1", "ConfigMap", "gitops-agent"),
            object("v1", "ConfigMap", "kubectl-gitops"),
            object("v1", "Secret", "gitops-agent-credentials-5f8k2"),
        ];
        let lines = refusals(&own);
        assert_eq!(lines.len(), own.len(), "{lines:#?}");
        assert!(
            lines[2].starts_with("RoleBinding.rbac.authorization.k8s.io/gitops-agent (agent/RoleBinding.yaml:1) is the agent's own object"),
            "{}",
            lines[2]
        );
        assert!(lines.iter().all(|l| l.contains("--manage-own-objects")));
    }

    #[test]
    fn same_names_of_other_kinds_and_other_names_pass() {
        let fine = [
            object("v1", "Service", "gitops-agent"),
            object("apps/v1", "Deployment", "gitops-agent-docs"),
            object("v1", "ConfigMap", "gitops-agent-settings"),
            object("v1", "Secret", "gitops-agent-credentialsx"),
            object("example.com/v1", "Role", "gitops-agent"),
            // Documented: Git may manage the health rules.
            object("v1", "ConfigMap", "gitops-agent-health"),
        ];
        assert_eq!(refusals(&fine), Vec::<String>::new());
    }
}
