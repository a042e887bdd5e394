//! ApplySet identity and the parent's group-kind list, exactly as KEP-3659 specifies.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The ID of the ApplySet whose parent is `kind` `name` in `namespace` (API group `group`, `""`
/// for the core group): `applyset-<base64url(sha256("<name>.<namespace>.<kind>.<group>"))>-v1`,
/// unpadded, as the KEP and kubectl compute it.
pub fn applyset_id(name: &str, namespace: &str, kind: &str, group: &str) -> String {
    let digest = Sha256::digest(format!("{name}.{namespace}.{kind}.{group}").as_bytes());
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    format!("applyset-{encoded}-v1")
}

/// A Kubernetes kind and its API group (`""` for core).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl GroupKind {
    pub fn new(group: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            kind: kind.into(),
        }
    }

    /// From an `apiVersion` such as `apps/v1` or `v1`.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        Self::new(group, kind)
    }
}

impl std::fmt::Display for GroupKind {
    /// `Kind.group`, or just `Kind` for the core group (the KEP's annotation format).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// The `contains-group-kinds` value: sorted, de-duplicated, comma-separated.
pub fn format_group_kinds<'a>(kinds: impl IntoIterator<Item = &'a GroupKind>) -> String {
    let mut names: Vec<String> = kinds.into_iter().map(ToString::to_string).collect();
    names.sort();
    names.dedup();
    names.join(",")
}

/// Parses a `contains-group-kinds` value; the kind is everything before the first dot.
pub fn parse_group_kinds(value: &str) -> Vec<GroupKind> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('.') {
            Some((kind, group)) => GroupKind::new(group, kind),
            None => GroupKind::new("", s),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_matches_kubectl_vector() {
        // kubectl's own test vector (staging/src/k8s.io/kubectl/pkg/cmd/apply/applyset_test.go).
        assert_eq!(
            applyset_id("my-set", "test", "Secret", ""),
            "applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1"
        );
    }

    #[test]
    fn id_depends_on_every_part() {
        let base = applyset_id("a", "b", "ConfigMap", "");
        assert_ne!(base, applyset_id("a", "c", "ConfigMap", ""));
        assert_ne!(base, applyset_id("a", "b", "Secret", ""));
        assert_ne!(base, applyset_id("a", "b", "ConfigMap", "x"));
    }

    #[test]
    fn group_kinds_round_trip_sorted() {
        let kinds = [
            GroupKind::from_api_version("apps/v1", "Deployment"),
            GroupKind::from_api_version("v1", "Service"),
            GroupKind::from_api_version("v1", "ConfigMap"),
            GroupKind::from_api_version("apps/v1", "Deployment"),
            GroupKind::from_api_version("rbac.authorization.k8s.io/v1", "Role"),
        ];
        let value = format_group_kinds(&kinds);
        assert_eq!(
            value,
            "ConfigMap,Deployment.apps,Role.rbac.authorization.k8s.io,Service"
        );
        let parsed = parse_group_kinds(&value);
        assert_eq!(
            parsed[2],
            GroupKind::new("rbac.authorization.k8s.io", "Role")
        );
        assert_eq!(parsed.len(), 4);
    }
}
