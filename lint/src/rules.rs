//! Every rule: its ID, default severity, why it matters and how to fix it. The one table both
//! `kubectl gitops lint` and the agent's `--refuse` read.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "note" | "info" => Some(Severity::Note),
            "warning" | "warn" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    /// One line: why this is a problem.
    pub why: &'static str,
    /// One line: what to do instead.
    pub fix: &'static str,
}

pub const RENDER_ERROR: &str = "render-error";
pub const SCHEMA_UNKNOWN_KIND: &str = "schema-unknown-kind";
pub const SCHEMA_UNKNOWN_FIELD: &str = "schema-unknown-field";
pub const SCHEMA_TYPE: &str = "schema-type";
pub const SCHEMA_REQUIRED: &str = "schema-required";
pub const PLAINTEXT_SECRETS: &str = "plaintext-secrets";
pub const CREDENTIALS: &str = "credentials";
pub const MUTABLE_IMAGES: &str = "mutable-images";
pub const CLUSTER_SCOPED: &str = "cluster-scoped";
pub const RESOURCE_LIMITS: &str = "resource-limits";
pub const PRIVILEGED: &str = "privileged";
pub const CODEOWNERS: &str = "codeowners";
pub const COPIED_YAML: &str = "copied-yaml";
pub const HPA_REPLICAS: &str = "hpa-replicas";
pub const BRANCH_PER_ENVIRONMENT: &str = "branch-per-environment";

pub const RULES: &[Rule] = &[
    Rule {
        id: RENDER_ERROR,
        severity: Severity::Error,
        why: "the kustomization does not build, so nothing of it can be applied",
        fix: "fix the file and line named; `kubectl gitops render DIR` shows the same error",
    },
    Rule {
        id: SCHEMA_UNKNOWN_KIND,
        severity: Severity::Error,
        why: "the Kubernetes 1.36 API has no such kind and no CRD in the repository defines it",
        fix: "correct apiVersion/kind, or commit the CustomResourceDefinition next to its objects",
    },
    Rule {
        id: SCHEMA_UNKNOWN_FIELD,
        severity: Severity::Error,
        why: "the API server drops or rejects fields its schema does not have (often a typo or wrong indentation)",
        fix: "correct the field name or its indentation, or remove it",
    },
    Rule {
        id: SCHEMA_TYPE,
        severity: Severity::Error,
        why: "the value has the wrong type for its field, so the API server rejects the object",
        fix: "write the value with the type the schema expects (quote strings, unquote numbers)",
    },
    Rule {
        id: SCHEMA_REQUIRED,
        severity: Severity::Error,
        why: "a required field is missing, so the API server rejects the object",
        fix: "add the field named",
    },
    Rule {
        id: PLAINTEXT_SECRETS,
        severity: Severity::Error,
        why: "a Secret in Git in plaintext is readable by everyone who can read the repository, forever",
        fix: "encrypt it with SOPS (`sops -e -i FILE`) or keep it out of Git (External Secrets, sealed secrets)",
    },
    Rule {
        id: CREDENTIALS,
        severity: Severity::Error,
        why: "a credential in a ConfigMap or env value is stored unencrypted and shown to anyone who can read the object",
        fix: "rotate the credential, move it into an encrypted Secret and reference it (secretKeyRef / envFrom.secretRef)",
    },
    Rule {
        id: MUTABLE_IMAGES,
        severity: Severity::Error,
        why: "`latest`, a missing tag (or a tag where digests are required) can point at different images over time, so Git no longer says what runs",
        fix: "pin an immutable version tag or a digest (`image@sha256:...`), e.g. with the kustomization `images:` field",
    },
    Rule {
        id: CLUSTER_SCOPED,
        severity: Severity::Error,
        why: "a cluster-scoped object in a namespaced overlay affects every namespace, and a per-namespace agent refuses it",
        fix: "move it to a cluster-level kustomization applied by cluster administrators",
    },
    Rule {
        id: RESOURCE_LIMITS,
        severity: Severity::Warning,
        why: "a container without CPU and memory limits can starve its neighbours on the node",
        fix: "set resources.limits.cpu and resources.limits.memory (a patch per overlay if sizes differ)",
    },
    Rule {
        id: PRIVILEGED,
        severity: Severity::Warning,
        why: "privileged containers, privilege escalation and host namespaces give a compromised container the node",
        fix: "drop privileged/hostNetwork/hostPID/hostIPC and added capabilities; set allowPrivilegeEscalation: false",
    },
    Rule {
        id: CODEOWNERS,
        severity: Severity::Warning,
        why: "a production overlay without a CODEOWNERS entry can be changed without review by its owners",
        fix: "add a CODEOWNERS line for the overlay directory (e.g. `/overlays/prod/ @team-leads`)",
    },
    Rule {
        id: COPIED_YAML,
        severity: Severity::Warning,
        why: "an overlay that copies a whole object instead of patching a base drifts from it silently",
        fix: "reference the base in `resources:` and keep only the differing fields in a patch",
    },
    Rule {
        id: HPA_REPLICAS,
        severity: Severity::Warning,
        why: "spec.replicas in Git fights the HorizontalPodAutoscaler that targets the workload",
        fix: "remove spec.replicas, or add the annotation `kubectl-gitops.dev/ignore-fields: /spec/replicas`",
    },
    Rule {
        id: BRANCH_PER_ENVIRONMENT,
        severity: Severity::Warning,
        why: "environments on branches drift apart and promotion becomes a merge instead of a reviewed change",
        fix: "keep one branch with an overlay per environment, and promote by changing the overlay or a tag",
    },
];

pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Rules that judge rendered objects alone, and so can be enforced by the agent on a revision.
pub const OBJECT_RULES: &[&str] = &[
    SCHEMA_UNKNOWN_KIND,
    SCHEMA_UNKNOWN_FIELD,
    SCHEMA_TYPE,
    SCHEMA_REQUIRED,
    PLAINTEXT_SECRETS,
    CREDENTIALS,
    MUTABLE_IMAGES,
    CLUSTER_SCOPED,
    RESOURCE_LIMITS,
    PRIVILEGED,
    HPA_REPLICAS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_documented() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        for r in RULES {
            assert!(!r.why.is_empty() && !r.fix.is_empty(), "{}", r.id);
        }
        for id in OBJECT_RULES {
            assert!(rule(id).is_some(), "{id}");
        }
    }
}
